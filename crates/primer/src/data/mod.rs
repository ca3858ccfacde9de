//! Corpora and the data fed to training: primer's own generated corpus, chunked reading, token files,
//! and BERT pretraining batches (segment corpora, masking).

pub mod bert_batches;
pub mod masking;
pub mod segments;
pub mod synth;
pub mod text_chunks;
pub mod tokens;
