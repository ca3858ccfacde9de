//! primer: pre-train, then fine-tune transformer language models on a CPU engine of our own.

pub mod data;
pub mod error;

pub use error::{Error, Result};
