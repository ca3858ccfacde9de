//! Using trained models: text generation and beam search (GPT), fill-mask and sentence embeddings (BERT).

pub mod beam;
pub mod bert_batch;
pub mod embed;
pub mod fill_mask;
pub mod generate;
pub mod stop_strings;
