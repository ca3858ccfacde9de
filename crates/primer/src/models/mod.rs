//! Model architectures, each in one file: configuration (Hugging Face compatible), parameter layout with
//! Hugging Face tensor names, forward and backward passes.

pub mod bert;
pub(crate) mod common;
pub mod gpt;
