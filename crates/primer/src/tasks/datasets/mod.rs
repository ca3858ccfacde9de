//! Readers for the labelled data of each task: classification rows (TSV, CSV, JSON Lines),
//! CoNLL tagged sentences, JointBERT intent and slot files, and SQuAD v1.1 questions. Every
//! error names the file and the line (or the SQuAD question) that is wrong.

mod conll;
mod joint;
mod squad;
mod text;

pub use conll::{read_conll, TaggedSentence};
pub use joint::{read_joint, SlotExample, JOINT_FILES};
pub use squad::{read_squad, Answer, QaExample};
pub use text::{read_text_examples, Columns, TextExample};

use crate::error::{Error, Result};
use std::path::Path;

/// The text of `path`, without a leading byte-order mark. Invalid UTF-8 is an error naming the
/// line.
fn read_utf8(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).map_err(Error::io(path))?;
    let mut text = String::from_utf8(bytes).map_err(|e| {
        let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
        let line = 1 + valid.iter().filter(|&&b| b == b'\n').count();
        Error::format(path, format!("line {line}: invalid UTF-8"))
    })?;
    if text.starts_with('\u{feff}') {
        text.drain(..'\u{feff}'.len_utf8());
    }
    Ok(text)
}

/// The lines of `text` numbered from 1, without their line ends ("\n" or "\r\n").
fn numbered_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines().enumerate().map(|(i, line)| (i + 1, line))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_drops_a_byte_order_mark_and_names_the_line_of_bad_utf8() {
        let dir = crate::testutil::scratch_dir("datasets", "utf8");
        let path = dir.join("a.txt");
        std::fs::write(&path, "\u{feff}x\r\ny\n").unwrap();
        let text = read_utf8(&path).unwrap();
        assert_eq!(
            numbered_lines(&text).collect::<Vec<_>>(),
            [(1, "x"), (2, "y")]
        );
        std::fs::write(&path, b"ok\nfine\nbad \xff\n").unwrap();
        let err = read_utf8(&path).unwrap_err().to_string();
        assert!(err.ends_with("a.txt: line 3: invalid UTF-8"), "{err}");
    }
}
