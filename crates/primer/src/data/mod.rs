//! Corpora and the data fed to training.

pub mod text_chunks;
pub mod tokens;
