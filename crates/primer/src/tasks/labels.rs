//! Label sets: the names of a task's classes (or tags), whose positions are the ids a model
//! predicts.

use crate::error::{Error, Result};
use std::cmp::Ordering;
use std::path::Path;

/// The label that unknown labels map to, when a set has it (as in JointBERT's label files).
const UNK: &str = "UNK";

/// Labels named in the error for an unknown label, before "…".
const SHOWN: usize = 8;

/// An ordered set of label names; ids are positions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LabelSet {
    pub names: Vec<String>,
}

impl LabelSet {
    /// Distinct labels in sorted order (numeric-looking labels like "0","1","10" sort
    /// numerically, others lexically; numeric ones come first).
    pub fn from_labels<'a>(labels: impl IntoIterator<Item = &'a str>) -> LabelSet {
        let mut names: Vec<&str> = labels.into_iter().collect();
        names.sort_by(|a, b| label_order(a, b));
        names.dedup();
        LabelSet {
            names: names.into_iter().map(str::to_string).collect(),
        }
    }

    /// One label per non-empty line (trimmed), file order; error naming file+line on
    /// duplicates; error if empty.
    pub fn from_file(path: &Path) -> Result<LabelSet> {
        let text = std::fs::read_to_string(path).map_err(Error::io(path))?;
        let mut names: Vec<String> = Vec::new();
        let mut lines: Vec<usize> = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let name = line.trim();
            if name.is_empty() {
                continue;
            }
            if let Some(k) = names.iter().position(|n| n == name) {
                let msg = format!("line {}: label {name:?} repeats line {}", i + 1, lines[k]);
                return Err(Error::format(path, msg));
            }
            names.push(name.to_string());
            lines.push(i + 1);
        }
        if names.is_empty() {
            return Err(Error::format(
                path,
                "no labels (expected one label per line)",
            ));
        }
        Ok(LabelSet { names })
    }

    /// Number of labels.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Whether there are no labels.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// The name of label `id` (panics when `id` is not below `len()`).
    pub fn name(&self, id: usize) -> &str {
        &self.names[id]
    }

    /// Id of `label`. A label not in the set maps to the id of "UNK" when the set has one;
    /// otherwise an error naming `path` and `line`, where the label was read, and some of
    /// the labels there are.
    pub fn id(&self, label: &str, path: &Path, line: usize) -> Result<usize> {
        let position = |name: &str| self.names.iter().position(|n| n == name);
        if let Some(id) = position(label).or_else(|| position(UNK)) {
            return Ok(id);
        }
        let mut known: Vec<String> = self
            .names
            .iter()
            .take(SHOWN)
            .map(|n| format!("{n:?}"))
            .collect();
        if self.len() > SHOWN {
            known.push(format!("… {} in all", self.len()));
        }
        let msg = format!(
            "line {line}: label {label:?} is not among the model's labels ({})",
            known.join(", ")
        );
        Err(Error::format(path, msg))
    }
}

/// Numbers (by value) before other labels (lexically); equal numbers such as "1" and "1.0"
/// by their text.
fn label_order(a: &str, b: &str) -> Ordering {
    let number = |s: &str| s.parse::<f64>().ok().filter(|x| x.is_finite());
    match (number(a), number(b)) {
        (Some(x), Some(y)) => x.total_cmp(&y).then_with(|| a.cmp(b)),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => a.cmp(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(set: &LabelSet) -> Vec<&str> {
        set.names.iter().map(String::as_str).collect()
    }

    #[test]
    fn labels_are_distinct_and_numbers_sort_by_value() {
        let set = LabelSet::from_labels(["10", "2", "0", "2", "-1", "1"]);
        assert_eq!(names(&set), ["-1", "0", "1", "2", "10"]);
        let set = LabelSet::from_labels(["neutral", "entailment", "contradiction", "neutral"]);
        assert_eq!(names(&set), ["contradiction", "entailment", "neutral"]);
        let set = LabelSet::from_labels(["b", "10", "a", "9", "nan", "inf"]);
        assert_eq!(names(&set), ["9", "10", "a", "b", "inf", "nan"]);
        assert!(LabelSet::from_labels([]).is_empty());
    }

    #[test]
    fn ids_are_positions_and_unknown_labels_map_to_unk_if_present() {
        let path = Path::new("dev.tsv");
        let set = LabelSet::from_labels(["pos", "neg"]);
        assert_eq!((set.len(), set.name(1)), (2, "pos"));
        assert_eq!(set.id("pos", path, 3).unwrap(), 1);
        let err = set.id("meh", path, 7).unwrap_err().to_string();
        assert!(err.starts_with("dev.tsv: line 7: label \"meh\""), "{err}");
        assert!(err.contains("(\"neg\", \"pos\")"), "{err}");

        let with_unk = LabelSet {
            names: vec!["PAD".into(), "UNK".into(), "O".into()],
        };
        assert_eq!(with_unk.id("O", path, 1).unwrap(), 2);
        assert_eq!(with_unk.id("B-new", path, 1).unwrap(), 1);

        let many = LabelSet::from_labels(["a", "b", "c", "d", "e", "f", "g", "h", "i", "j"]);
        let err = many.id("z", path, 2).unwrap_err().to_string();
        assert!(
            err.contains("\"h\", … 10 in all)") && !err.contains("\"i\""),
            "{err}"
        );
    }

    #[test]
    fn files_keep_their_order_and_reject_repeats() {
        let dir = crate::testutil::scratch_dir("labels", "files");
        let path = dir.join("labels.txt");
        std::fs::write(&path, "UNK\n  PlayMusic \n\nAddToPlaylist\r\n").unwrap();
        let set = LabelSet::from_file(&path).unwrap();
        assert_eq!(names(&set), ["UNK", "PlayMusic", "AddToPlaylist"]);

        std::fs::write(&path, "O\nB-x\n\nO\n").unwrap();
        let err = LabelSet::from_file(&path).unwrap_err().to_string();
        assert!(
            err.ends_with("labels.txt: line 4: label \"O\" repeats line 1"),
            "{err}"
        );

        std::fs::write(&path, "\n \n").unwrap();
        let err = LabelSet::from_file(&path).unwrap_err().to_string();
        assert!(err.contains("labels.txt: no labels"), "{err}");

        let missing = dir.join("missing.txt");
        let err = LabelSet::from_file(&missing).unwrap_err().to_string();
        assert!(err.contains("missing.txt"), "{err}");
    }
}
