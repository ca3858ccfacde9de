//! Tagged sentences in CoNLL column format (as CoNLL-2003 NER): one word per line, the word in
//! the first column and its tag in the last, sentences separated by blank lines.

use super::{numbered_lines, read_utf8};
use crate::error::{Error, Result};
use std::path::Path;

/// A sentence's words and their tags, with the line of its first word.
#[derive(Clone, Debug)]
pub struct TaggedSentence {
    pub words: Vec<String>,
    pub tags: Vec<String>,
    pub line: usize,
}

/// CoNLL column file: whitespace-separated columns, word first, tag in the last column;
/// `-DOCSTART-` lines skipped (they end a sentence); blank lines end sentences. Errors naming
/// file+line: a line whose column count differs from the file's first token line (ragged), a
/// line with a single column; a file with no sentences.
pub fn read_conll(path: &Path) -> Result<Vec<TaggedSentence>> {
    let text = read_utf8(path)?;
    let mut sentences = Vec::new();
    let mut current: Option<TaggedSentence> = None;
    // The column count of the first token line, and that line.
    let mut width: Option<(usize, usize)> = None;
    for (line, l) in numbered_lines(&text) {
        let columns: Vec<&str> = l.split_whitespace().collect();
        if columns.is_empty() || columns[0] == "-DOCSTART-" {
            sentences.extend(current.take());
            continue;
        }
        if columns.len() == 1 {
            let msg = format!("line {line}: one column; expected the word first and its tag last");
            return Err(Error::format(path, msg));
        }
        let (expected, first) = *width.get_or_insert((columns.len(), line));
        if columns.len() != expected {
            let msg = format!(
                "line {line}: {} columns, but line {first} has {expected}",
                columns.len()
            );
            return Err(Error::format(path, msg));
        }
        let sentence = current.get_or_insert_with(|| TaggedSentence {
            words: Vec::new(),
            tags: Vec::new(),
            line,
        });
        sentence.words.push(columns[0].to_string());
        sentence.tags.push(columns[expected - 1].to_string());
    }
    sentences.extend(current);
    if sentences.is_empty() {
        return Err(Error::format(path, "the file has no sentences"));
    }
    Ok(sentences)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn sentences_end_at_blank_lines_and_docstarts() {
        let dir = crate::testutil::scratch_dir("conll", "read");
        let path = dir.join("train.txt");
        let text = "-DOCSTART- -X- -X- O\n\nEU NNP B-NP B-ORG\nrejects VBZ B-VP O\r\n\n\n\
                    Peter NNP B-NP B-PER\nBlackburn NNP I-NP I-PER\n-DOCSTART- -X- -X- O\n\
                    BRUSSELS NNP B-NP B-LOC";
        std::fs::write(&path, text).unwrap();
        let got = read_conll(&path).unwrap();
        let summary: Vec<_> = got
            .iter()
            .map(|s| (s.words.clone(), s.tags.clone(), s.line))
            .collect();
        assert_eq!(
            summary,
            [
                (strings("EU rejects"), strings("B-ORG O"), 3),
                (strings("Peter Blackburn"), strings("B-PER I-PER"), 7),
                (strings("BRUSSELS"), strings("B-LOC"), 10),
            ]
        );

        std::fs::write(&path, "a\tB-X\nb   O\n").unwrap();
        assert_eq!(read_conll(&path).unwrap()[0].tags, strings("B-X O"));
    }

    #[test]
    fn ragged_and_untagged_lines_are_errors_naming_the_line() {
        let dir = crate::testutil::scratch_dir("conll", "errors");
        let path = dir.join("bad.txt");
        let cases = [
            (
                "-DOCSTART- O\n\nEU NNP B-ORG\nrejects O\n",
                "bad.txt: line 4: 2 columns, but line 3 has 3",
            ),
            ("EU B-ORG\n\nrejects\n", "bad.txt: line 3: one column"),
            (
                "-DOCSTART- -X- -X- O\n\n \n",
                "bad.txt: the file has no sentences",
            ),
        ];
        for (text, want) in cases {
            std::fs::write(&path, text).unwrap();
            let err = read_conll(&path).unwrap_err().to_string();
            assert!(err.contains(want), "{err}");
        }
    }
}
