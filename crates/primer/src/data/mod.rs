//! Corpora and the data fed to training.

pub mod atomic_file;
pub mod text_chunks;
pub mod tokens;
