//! primer: pre-train, then fine-tune transformer language models on a CPU engine of our own.

pub mod error;
pub mod train;
pub mod viz;

pub use error::{Error, Result};
pub mod engine;
pub mod hf;
pub mod models;
pub mod train;
pub mod bench;
