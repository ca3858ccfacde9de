//! The library's error type. Every error names what the user gave us that was wrong:
//! the file (and byte offset, line or tensor where it matters) or the option.

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading or writing a file failed.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A file exists but its content is not what it must be.
    #[error("{}: {msg}", path.display())]
    Format { path: PathBuf, msg: String },
    /// An option, configuration value or argument is invalid.
    #[error("{0}")]
    Config(String),
    /// The tokenizers crate reported a problem.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// For `map_err`: an I/O error about `path`.
    pub fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
        move |source| Error::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    /// A content error about `path`.
    pub fn format(path: &Path, msg: impl Into<String>) -> Error {
        Error::Format {
            path: path.to_path_buf(),
            msg: msg.into(),
        }
    }
}
