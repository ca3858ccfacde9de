//! primer: pre-train, then fine-tune transformer language models on a CPU engine of our own.

pub mod bench;
pub mod data;
pub mod engine;
pub mod error;
pub mod hf;
pub mod infer;
pub mod models;
pub mod tokenize;
pub mod train;
pub mod viz;

pub use error::{Error, Result};
