//! Using trained models: text generation (GPT), fill-mask and sentence embeddings (BERT).

pub mod bert_batch;
pub mod embed;
pub mod fill_mask;
pub mod generate;
