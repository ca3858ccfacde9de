//! A task's files → features for the model and the gold answers its metrics compare against; and the
//! `task.json` that a fine-tuned model directory carries (task, labels, lengths), so `eval` and `predict` read
//! data exactly as training did.

use super::features::{Feature, QaLimits, TextEncoder};
use super::model::Task;
use crate::engine::xent::IGNORE;
use crate::error::{Error, Result};
use crate::tasks::datasets::{self, Columns, QaExample};
use crate::tasks::labels::LabelSet;
use serde::{Deserialize, Serialize};
use std::ops::Range;
use std::path::{Path, PathBuf};

/// What a fine-tuned model directory records about its task (`OUT/task.json`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct TaskInfo {
    pub task: Task,
    /// `bert` or `gpt`.
    pub backbone: String,
    /// Classes, tags or intents, by id.
    pub labels: Vec<String>,
    /// Slot tags of the joint task.
    #[serde(default)]
    pub slot_labels: Vec<String>,
    pub max_len: usize,
    /// Classification file columns.
    #[serde(default)]
    pub text_column: String,
    #[serde(default)]
    pub pair_column: Option<String>,
    #[serde(default)]
    pub label_column: String,
    #[serde(default)]
    pub alpha: f32,
    #[serde(default)]
    pub doc_stride: usize,
    #[serde(default)]
    pub max_query_len: usize,
    #[serde(default)]
    pub max_answer_len: usize,
}

impl TaskInfo {
    pub fn qa_limits(&self) -> QaLimits {
        QaLimits {
            max_len: self.max_len,
            doc_stride: self.doc_stride,
            max_query_len: self.max_query_len,
            max_answer_len: self.max_answer_len,
        }
    }

    fn columns(&self) -> Columns {
        Columns {
            text: self.text_column.clone(),
            pair: self.pair_column.clone(),
            label: self.label_column.clone(),
        }
    }
}

/// Where a split's examples are: a file (classify, ner, qa) or a JointBERT directory and split name.
#[derive(Clone, Debug)]
pub struct Split {
    pub path: PathBuf,
    /// JointBERT split name (`train`, `dev`, `test`).
    pub joint_split: Option<String>,
    /// SQuAD articles to use (file order).
    pub articles: Option<Range<usize>>,
}

impl Split {
    pub fn file(path: &Path) -> Split {
        Split {
            path: path.to_path_buf(),
            joint_split: None,
            articles: None,
        }
    }
}

/// The gold answers of a split.
#[derive(Clone, Debug)]
pub enum Gold {
    Classes(Vec<usize>),
    Tags(Vec<Vec<String>>),
    Joint {
        intents: Vec<usize>,
        slots: Vec<Vec<String>>,
    },
    Qa(Vec<QaExample>),
}

/// A split ready for the model.
#[derive(Clone, Debug)]
pub struct Prepared {
    pub features: Vec<Feature>,
    pub gold: Gold,
}

/// Labels found in a training split (classes, tags or intents; slot tags).
pub fn labels_from_train(
    task: Task,
    split: &Split,
    cols: &Columns,
) -> Result<(LabelSet, LabelSet)> {
    let none = LabelSet { names: Vec::new() };
    Ok(match task {
        Task::Classify => {
            let ex = datasets::read_text_examples(&split.path, cols)?;
            (
                LabelSet::from_labels(ex.iter().map(|e| e.label.as_str())),
                none,
            )
        }
        Task::Ner => {
            let ex = datasets::read_conll(&split.path)?;
            let tags = ex.iter().flat_map(|s| s.tags.iter().map(String::as_str));
            (LabelSet::from_labels(tags), none)
        }
        Task::IntentSlot => {
            let dir = &split.path;
            let from_file = |name: &str| {
                let p = dir.join(name);
                p.exists().then(|| LabelSet::from_file(&p)).transpose()
            };
            let (intents, slots) = (from_file("intent_label.txt")?, from_file("slot_label.txt")?);
            let ex = if intents.is_none() || slots.is_none() {
                datasets::read_joint(dir, split.joint_split.as_deref().unwrap_or("train"))?
            } else {
                Vec::new()
            };
            let intents = intents
                .unwrap_or_else(|| LabelSet::from_labels(ex.iter().map(|e| e.intent.as_str())));
            let slots = slots.unwrap_or_else(|| {
                LabelSet::from_labels(ex.iter().flat_map(|e| e.slots.iter().map(String::as_str)))
            });
            (intents, slots)
        }
        Task::Qa => (none.clone(), none),
    })
}

/// Reads `split` and encodes it. `limit` keeps the first N examples; `train` gives QA windows their targets.
pub fn prepare(
    enc: &TextEncoder,
    info: &TaskInfo,
    split: &Split,
    limit: Option<usize>,
    train: bool,
) -> Result<Prepared> {
    let labels = LabelSet {
        names: info.labels.clone(),
    };
    let slot_labels = LabelSet {
        names: info.slot_labels.clone(),
    };
    let take = limit.unwrap_or(usize::MAX);
    let path = &split.path;
    let prepared = match info.task {
        Task::Classify => {
            let ex = datasets::read_text_examples(path, &info.columns())?;
            let mut features = Vec::new();
            let mut gold = Vec::new();
            for e in ex.iter().take(take) {
                let id = labels.id(&e.label, path, e.line)?;
                let where_ = || format!("{} line {}", path.display(), e.line);
                features.push(enc.classify(
                    &e.text,
                    e.pair.as_deref(),
                    id as i32,
                    info.max_len,
                    &where_,
                )?);
                gold.push(id);
            }
            Prepared {
                features,
                gold: Gold::Classes(gold),
            }
        }
        Task::Ner => {
            let ex = datasets::read_conll(path)?;
            let mut features = Vec::new();
            let mut gold = Vec::new();
            for (i, s) in ex.iter().take(take).enumerate() {
                let tags = s
                    .tags
                    .iter()
                    .enumerate()
                    // one word per line, from the sentence's first
                    .map(|(w, t)| labels.id(t, path, s.line + w).map(|id| id as i32))
                    .collect::<Result<Vec<i32>>>()?;
                let mut f = enc.tag(&s.words, &tags, IGNORE, info.max_len)?;
                f.example = i;
                features.push(f);
                gold.push(s.tags.clone());
            }
            Prepared {
                features,
                gold: Gold::Tags(gold),
            }
        }
        Task::IntentSlot => {
            let name = split.joint_split.as_deref().unwrap_or("train");
            let ex = datasets::read_joint(path, name)?;
            let (mut features, mut intents, mut slots) = (Vec::new(), Vec::new(), Vec::new());
            let label_file = path.join(name).join("label");
            let slot_file = path.join(name).join("seq.out");
            for (i, e) in ex.iter().take(take).enumerate() {
                let intent = labels.id(&e.intent, &label_file, e.line)?;
                let tags = e
                    .slots
                    .iter()
                    .map(|t| slot_labels.id(t, &slot_file, e.line).map(|id| id as i32))
                    .collect::<Result<Vec<i32>>>()?;
                let mut f = enc.tag(&e.words, &tags, intent as i32, info.max_len)?;
                f.example = i;
                features.push(f);
                intents.push(intent);
                slots.push(e.slots.clone());
            }
            Prepared {
                features,
                gold: Gold::Joint { intents, slots },
            }
        }
        Task::Qa => {
            let ex: Vec<QaExample> = datasets::read_squad(path, split.articles.clone())?
                .into_iter()
                .take(take)
                .collect();
            let mut features = Vec::new();
            for (i, q) in ex.iter().enumerate() {
                let windows = enc
                    .qa(q, i, &info.qa_limits(), train)
                    .map_err(|e| Error::format(path, format!("question {}: {e}", q.id)))?;
                features.extend(windows);
            }
            Prepared {
                features,
                gold: Gold::Qa(ex),
            }
        }
    };
    if prepared.features.is_empty() {
        return Err(Error::format(path, "has no examples"));
    }
    Ok(prepared)
}
