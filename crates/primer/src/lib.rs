//! primer: pre-train, then fine-tune transformer language models on a CPU engine of our own.

// Kernels take their buffers and sizes as plain arguments (llm.c style) rather than bundling them into structs.
#![allow(clippy::too_many_arguments)]

pub mod bench;
pub mod data;
pub mod engine;
pub mod error;
pub mod finetune;
pub mod hf;
pub mod infer;
pub mod models;
mod progress;
pub mod tasks;
pub mod tokenize;
pub mod train;
pub mod viz;

#[cfg(test)]
mod testutil;

pub use error::{Error, Result};

/// `eprintln!` for long jobs: a line that cannot be written, because whatever read the log has gone away
/// (`primer pretrain … 2>&1 | head`), is dropped, and the run goes on to its next checkpoint instead of
/// panicking. (The CLI leaves SIGPIPE ignored for training commands, so such a write fails instead of killing.)
#[macro_export]
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

/// `println!` for long jobs, as [`say!`] is `eprintln!`.
#[macro_export]
macro_rules! tell {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}
