//! Training: the pretraining loops, learning-rate schedule, checkpoints, metrics logs and crash-safe writes.

pub mod atomic;
pub(crate) mod checkpoint;
#[cfg(test)]
mod crash_tests;
pub(crate) mod data_parallel;
pub(crate) mod inputs;
pub(crate) mod journal;
pub(crate) mod memory;
pub mod metrics;
pub mod pretrain_bert;
pub mod pretrain_gpt;
pub(crate) mod run_dir;
pub mod schedule;

pub use checkpoint::{check_resumable, clear_run, Start};
pub use inputs::same_input;
