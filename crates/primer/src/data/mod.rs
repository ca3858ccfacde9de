//! Corpora and the data fed to training: primer's own generated corpus, chunked reading, token files.

pub mod synth;
pub mod text_chunks;
pub mod tokens;
