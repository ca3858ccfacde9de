//! Intent and slot examples in JointBERT's layout (ATIS, SNIPS): a split directory holding
//! `seq.in` (words), `seq.out` (one slot tag per word) and `label` (the intent), line by line.

use super::{numbered_lines, read_utf8};
use crate::error::{Error, Result};
use std::path::Path;

/// An utterance's words, their slot tags and its intent, with its line in the files.
#[derive(Clone, Debug)]
pub struct SlotExample {
    pub words: Vec<String>,
    pub slots: Vec<String>,
    pub intent: String,
    pub line: usize,
}

/// The files of a JointBERT split directory: words, slot tags, intents.
pub const JOINT_FILES: [&str; 3] = ["seq.in", "seq.out", "label"];

/// JointBERT split directory `dir/{split}/{seq.in, seq.out, label}` (whitespace-separated
/// words/tags, one line per example; trailing spaces are fine). Errors: a missing file (named),
/// differing line counts among the three files, a line whose seq.in and seq.out token counts
/// differ (naming seq.out and the line, with both counts), a line without words or intent, no
/// examples.
pub fn read_joint(dir: &Path, split: &str) -> Result<Vec<SlotExample>> {
    let split_dir = dir.join(split);
    let [words_path, slots_path, intent_path] = JOINT_FILES.map(|f| split_dir.join(f));
    let lines = |path: &Path| -> Result<Vec<String>> {
        Ok(numbered_lines(&read_utf8(path)?)
            .map(|(_, l)| l.to_string())
            .collect())
    };
    let (words, slots, intents) = (
        lines(&words_path)?,
        lines(&slots_path)?,
        lines(&intent_path)?,
    );
    if words.len() != slots.len() || words.len() != intents.len() {
        let msg = format!(
            "the files differ in length: seq.in has {} lines, seq.out {}, label {}",
            words.len(),
            slots.len(),
            intents.len()
        );
        return Err(Error::format(&split_dir, msg));
    }
    let mut examples = Vec::with_capacity(words.len());
    for (i, ((w, s), intent)) in words.iter().zip(&slots).zip(&intents).enumerate() {
        let line = i + 1;
        let split_words =
            |l: &str| -> Vec<String> { l.split_whitespace().map(str::to_string).collect() };
        let (words, slots, intent) = (split_words(w), split_words(s), intent.trim());
        if words.is_empty() {
            return Err(Error::format(&words_path, format!("line {line}: no words")));
        }
        if slots.len() != words.len() {
            let msg = format!(
                "line {line}: {} tags, but seq.in has {} words",
                slots.len(),
                words.len()
            );
            return Err(Error::format(&slots_path, msg));
        }
        if intent.is_empty() {
            return Err(Error::format(
                &intent_path,
                format!("line {line}: no intent"),
            ));
        }
        examples.push(SlotExample {
            words,
            slots,
            intent: intent.to_string(),
            line,
        });
    }
    if examples.is_empty() {
        return Err(Error::format(&split_dir, "the split has no examples"));
    }
    Ok(examples)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_string).collect()
    }

    /// A split directory "train" under a fresh directory, with these three files.
    fn split(test: &str, words: &str, slots: &str, intents: &str) -> crate::testutil::Scratch {
        let dir = crate::testutil::scratch_dir("joint", test);
        std::fs::create_dir(dir.join("train")).unwrap();
        for (name, text) in [("seq.in", words), ("seq.out", slots), ("label", intents)] {
            std::fs::write(dir.join("train").join(name), text).unwrap();
        }
        dir
    }

    #[test]
    fn lines_of_the_three_files_make_examples() {
        let dir = split(
            "read",
            "listen to westbam \nadd clásicos\n",
            "O O B-artist \nO B-playlist \n",
            "PlayMusic\nAddToPlaylist\n",
        );
        let got = read_joint(&dir, "train").unwrap();
        let summary: Vec<_> = got
            .iter()
            .map(|e| (e.words.clone(), e.slots.clone(), e.intent.as_str(), e.line))
            .collect();
        assert_eq!(
            summary,
            [
                (
                    strings("listen to westbam"),
                    strings("O O B-artist"),
                    "PlayMusic",
                    1
                ),
                (
                    strings("add clásicos"),
                    strings("O B-playlist"),
                    "AddToPlaylist",
                    2
                ),
            ]
        );
    }

    #[test]
    fn mismatched_files_are_errors_naming_file_and_line() {
        let cases = [
            (
                "a b\nc d\n",
                "O O\nO\n",
                "X\nY\n",
                "seq.out: line 2: 1 tags, but seq.in has 2 words",
            ),
            (
                "a b\nc\n",
                "O O\nO\n",
                "X\n",
                "train: the files differ in length: seq.in has 2 lines, seq.out 2, label 1",
            ),
            ("a\n \n", "O\n\n", "X\nY\n", "seq.in: line 2: no words"),
            ("a\n", "O\n", " \n", "label: line 1: no intent"),
            ("", "", "", "train: the split has no examples"),
        ];
        for (i, (words, slots, intents, want)) in cases.into_iter().enumerate() {
            let dir = split(&format!("bad{i}"), words, slots, intents);
            let err = read_joint(&dir, "train").unwrap_err().to_string();
            assert!(err.contains(want), "{err}");
        }
        let dir = split("missing", "a\n", "O\n", "X\n");
        let err = read_joint(&dir, "dev").unwrap_err().to_string();
        assert!(
            err.contains(&format!("dev{}seq.in", std::path::MAIN_SEPARATOR)),
            "{err}"
        );
    }
}
