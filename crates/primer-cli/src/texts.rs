//! Texts a command works on: its arguments, or `--input FILE` with one text per line (`-` reads standard input),
//! so that a dataset's worth of texts needs no shell quoting and each result lines up with its input line.

use anyhow::{bail, Context, Result};
use std::io::Read;
use std::path::{Path, PathBuf};

/// The `--input` flag, flattened into a command whose positional argument is named `texts`.
#[derive(clap::Args)]
pub struct InputFile {
    /// Read the texts from FILE instead, one per line (`-`: standard input); every line is a text, an empty one
    /// too, so the outputs line up with the lines.
    #[arg(long, value_name = "FILE", conflicts_with = "texts")]
    input: Option<PathBuf>,
}

/// Texts and where each came from, for error messages.
pub struct Texts {
    pub texts: Vec<String>,
    file: Option<String>,
}

impl Texts {
    /// The arguments' texts, or the lines of `--input`.
    pub fn read(input: &InputFile, args: Vec<String>) -> Result<Texts> {
        let Some(path) = &input.input else {
            return Ok(Texts {
                texts: args,
                file: None,
            });
        };
        let (bytes, name) = if path == Path::new("-") {
            let mut bytes = Vec::new();
            std::io::stdin()
                .read_to_end(&mut bytes)
                .context("reading texts from standard input")?;
            (bytes, "standard input".to_string())
        } else {
            let bytes = std::fs::read(path)
                .with_context(|| format!("reading texts from {}", path.display()))?;
            (bytes, path.display().to_string())
        };
        let texts = lines(&bytes, &name)?;
        Ok(Texts {
            texts,
            file: Some(name),
        })
    }

    /// Where text `i` came from: "FILE line N" or "text N" (both counted from 1).
    pub fn whence(&self, i: usize) -> String {
        match &self.file {
            Some(f) => format!("{f} line {}", i + 1),
            None => format!("text {}", i + 1),
        }
    }
}

/// The lines of `bytes` (a final newline ends the last line rather than starting an empty one; a `\r` before a
/// newline is dropped), refused when there are none or one is not UTF-8.
fn lines(bytes: &[u8], name: &str) -> Result<Vec<String>> {
    if bytes.is_empty() {
        bail!("{name} is empty: --input wants one text per line");
    }
    // a byte-order mark is not part of the first text (but counts in the offsets)
    let bom = "\u{feff}".as_bytes();
    let (bytes, mut offset) = match bytes.strip_prefix(bom) {
        Some(rest) => (rest, bom.len()),
        None => (bytes, 0),
    };
    let body = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    let mut out = Vec::new();
    for (i, raw) in body.split(|&b| b == b'\n').enumerate() {
        let line = raw.strip_suffix(b"\r").unwrap_or(raw);
        match std::str::from_utf8(line) {
            Ok(s) => out.push(s.to_string()),
            Err(e) => bail!(
                "{name} line {} is not UTF-8 (byte offset {} of the file)",
                i + 1,
                offset + e.valid_up_to()
            ),
        }
        offset += raw.len() + 1;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::lines;

    #[test]
    fn every_line_is_a_text_and_bad_bytes_are_placed() {
        let got = lines(b"\xef\xbb\xbfa [MASK]\r\n\nlast", "f.txt").unwrap();
        assert_eq!(got, ["a [MASK]", "", "last"]);
        assert_eq!(lines(b"one\n", "f.txt").unwrap(), ["one"]);
        assert_eq!(lines(b"\n", "f.txt").unwrap(), [""]);
        let e = lines(b"", "f.txt").unwrap_err().to_string();
        assert!(e.contains("f.txt is empty"), "{e}");
        let e = lines(b"\xef\xbb\xbfok\r\nfine\nbad \xff here\n", "f.txt")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("f.txt line 3 is not UTF-8 (byte offset 16"),
            "{e}"
        );
    }
}
