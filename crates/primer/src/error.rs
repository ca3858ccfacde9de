//! The library's error type. Every error names what the user gave us that was wrong:
//! the file (and byte offset, line or tensor where it matters) or the option.

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading or writing a file failed. The OS's reason is part of the message and not also a `source`, so
    /// that `anyhow` prints it once.
    #[error("{}: {reason}", path.display())]
    Io {
        path: PathBuf,
        reason: std::io::Error,
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
        move |reason| Error::Io {
            path: path.to_path_buf(),
            reason,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_errors_name_the_file_and_carry_the_reason_once() {
        let path = Path::new("/no/such/dir/corpus.txt");
        let e = std::fs::read(path).map_err(Error::io(path)).unwrap_err();
        let msg = e.to_string();
        assert!(msg.starts_with("/no/such/dir/corpus.txt: "), "{msg}");
        assert!(msg.contains("No such file"), "{msg}");
        // a source would make the CLI print the reason a second time, under "Caused by"
        assert!(std::error::Error::source(&e).is_none());
    }
}
