//! primer: pre-train, then fine-tune transformer language models on a CPU engine of our own.

// Kernels take their buffers and sizes as plain arguments (llm.c style) rather than bundling them into structs.
#![allow(clippy::too_many_arguments)]

pub mod bench;
pub mod data;
pub mod engine;
pub mod error;
pub mod finetune;
pub mod hf;
pub mod infer;
pub mod models;
pub mod tasks;
pub mod tokenize;
pub mod train;
pub mod viz;

#[cfg(test)]
mod testutil;

pub use error::{Error, Result};
