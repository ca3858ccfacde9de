//! Using trained models: text generation.

pub mod generate;
