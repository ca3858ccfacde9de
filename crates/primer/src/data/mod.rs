//! Data generation and loading.

pub mod synth;
