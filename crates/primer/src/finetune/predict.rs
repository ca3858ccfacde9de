//! Predictions of a fine-tuned model on raw text: a label with probabilities (classify), entities with
//! character spans (ner), an answer span with its probability (qa), an intent with slot values (intent-slot).
//! Raw text is split into words as CoNLL and SNIPS write them (see [`split_words`]).

use super::data::TaskInfo;
use super::evaluate::{best_span, run, word_tags, Outputs};
use super::features::{Feature, TextEncoder};
use super::model::{Task, TaskModel};
use crate::engine::xent::{argmax, IGNORE};
use crate::error::{Error, Result};
use crate::tasks::datasets::QaExample;
use crate::tasks::metrics::chunks;
use serde::Serialize;

/// A labelled span of the input, in characters (`end` exclusive).
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Span {
    pub label: String,
    pub text: String,
    pub start: usize,
    pub end: usize,
}

/// One prediction.
#[derive(Clone, Debug, Serialize, PartialEq)]
#[serde(untagged)]
pub enum Prediction {
    Class {
        text: String,
        label: String,
        /// (label, probability), most likely first.
        probabilities: Vec<(String, f32)>,
    },
    Entities {
        text: String,
        entities: Vec<Span>,
    },
    Answer {
        question: String,
        answer: Span,
        probability: f32,
    },
    Intent {
        text: String,
        intent: String,
        probability: f32,
        slots: Vec<Span>,
    },
}

/// Softmax of a row.
fn softmax(row: &[f32]) -> Vec<f32> {
    let m = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let e: Vec<f32> = row.iter().map(|v| (v - m).exp()).collect();
    let s: f32 = e.iter().sum();
    e.iter().map(|v| v / s).collect()
}

/// Words of `text` with their character spans (`end` exclusive), split as the tagged corpora are (CoNLL-2003,
/// SNIPS): at whitespace, with punctuation at either end of a word split off one character at a time, while
/// punctuation inside a word stays ("top-rated", "U.S.-based"); a final "." stays on a word with another "." in it
/// ("U.K."), and a final "'s" is a word of its own ("Germany's" → "Germany", "'s").
pub fn split_words(text: &str) -> Vec<(String, usize, usize)> {
    let chars: Vec<char> = text.chars().collect();
    let mut words = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        if chars[i].is_whitespace() {
            i += 1;
            continue;
        }
        let start = i;
        while i < chars.len() && !chars[i].is_whitespace() {
            i += 1;
        }
        split_token(&chars, start, i, &mut words);
    }
    words
}

/// Appends the words of the whitespace-free token `chars[a..b]`.
fn split_token(
    chars: &[char],
    mut a: usize,
    mut b: usize,
    words: &mut Vec<(String, usize, usize)>,
) {
    let punct = |c: char| !c.is_alphanumeric();
    let word = |a: usize, b: usize| (chars[a..b].iter().collect::<String>(), a, b);
    while a < b && punct(chars[a]) {
        words.push(word(a, a + 1));
        a += 1;
    }
    let mut tail = Vec::new();
    while a < b && punct(chars[b - 1]) {
        let abbreviation = chars[b - 1] == '.' && chars[a..b - 1].contains(&'.');
        if abbreviation {
            break;
        }
        tail.push(word(b - 1, b));
        b -= 1;
    }
    let possessive =
        b >= a + 3 && matches!(chars[b - 2], '\'' | '’') && matches!(chars[b - 1], 's' | 'S');
    if possessive {
        words.push(word(a, b - 2));
        words.push(word(b - 2, b));
    } else if a < b {
        words.push(word(a, b));
    }
    words.extend(tail.into_iter().rev());
}

/// Entity spans (in characters of `text`) of word-level BIO `tags` over `words`.
fn spans(text: &str, words: &[(String, usize, usize)], tags: &[String]) -> Vec<Span> {
    let chars: Vec<char> = text.chars().collect();
    chunks(tags)
        .into_iter()
        .map(|(label, w0, w1)| {
            let (start, end) = (words[w0].1, words[w1 - 1].2);
            Span {
                label,
                text: chars[start..end].iter().collect(),
                start,
                end,
            }
        })
        .collect()
}

/// Predictions for `texts` (classify: `A ||| B` for a classifier of pairs, a single-text one takes the text whole;
/// qa: the texts are questions about `context`).
/// An error about text `i` starts with `whence(i)` (where it came from: "FILE line N", "text N").
pub fn predict(
    model: &TaskModel,
    info: &TaskInfo,
    enc: &TextEncoder,
    texts: &[String],
    context: Option<&str>,
    whence: &dyn Fn(usize) -> String,
) -> Result<Vec<Prediction>> {
    let named = |i: usize, e: Error| Error::Config(format!("{}: {e}", whence(i)));
    match info.task {
        Task::Classify => {
            let feats = texts
                .iter()
                .enumerate()
                .map(|(i, t)| {
                    let (a, b) = match (&info.pair_column, t.split_once("|||")) {
                        (Some(_), Some((_, b))) if b.contains("|||") => {
                            let why = "holds ' ||| ' more than once; a pair is written `A ||| B`";
                            return Err(named(i, Error::Config(why.into())));
                        }
                        (Some(_), Some((a, b))) => (a.trim(), Some(b.trim())),
                        (Some(column), None) => {
                            return Err(named(
                                i,
                                Error::Config(format!(
                                    "this classifier reads pairs of texts (its data's {column} column was the \
                                     second): write them as `A ||| B`"
                                )),
                            ))
                        }
                        (None, _) => (t.as_str(), None),
                    };
                    enc.classify(a, b, IGNORE, info.max_len, &|| whence(i))
                })
                .collect::<Result<Vec<Feature>>>()?;
            let outs = run(model, enc, &feats, 32)?;
            Ok(texts
                .iter()
                .zip(&outs)
                .map(|(t, o)| {
                    let p = softmax(&o.seq);
                    let mut probs: Vec<(String, f32)> =
                        info.labels.iter().cloned().zip(p).collect();
                    probs.sort_by(|a, b| b.1.total_cmp(&a.1));
                    Prediction::Class {
                        text: t.clone(),
                        label: probs[0].0.clone(),
                        probabilities: probs,
                    }
                })
                .collect())
        }
        Task::Ner | Task::IntentSlot => {
            let words = texts.iter().map(|t| split_words(t)).collect::<Vec<_>>();
            let feats = words
                .iter()
                .enumerate()
                .map(|(i, w)| {
                    let ws: Vec<String> = w.iter().map(|x| x.0.clone()).collect();
                    enc.tag(&ws, &[], IGNORE, info.max_len)
                        .map_err(|e| named(i, e))
                })
                .collect::<Result<Vec<Feature>>>()?;
            for (i, f) in feats.iter().enumerate() {
                let tagged = f.word_starts.iter().flatten().count();
                if tagged < f.word_starts.len() {
                    eprintln!(
                        "note: {}: only its first {tagged} of {} words fit in the model's {} input tokens (its \
                         --max-len); the rest are not tagged",
                        whence(i),
                        f.word_starts.len(),
                        info.max_len
                    );
                }
            }
            let outs = run(model, enc, &feats, 32)?;
            let tag_names = if info.task == Task::Ner {
                &info.labels
            } else {
                &info.slot_labels
            };
            Ok(texts
                .iter()
                .zip(&words)
                .zip(feats.iter().zip(&outs))
                .map(|((t, w), (f, o))| {
                    let tags = word_tags(f, &o.tok, tag_names);
                    let entities = spans(t, w, &tags);
                    if info.task == Task::Ner {
                        Prediction::Entities {
                            text: t.clone(),
                            entities,
                        }
                    } else {
                        let p = softmax(&o.seq);
                        let i = argmax(&p);
                        Prediction::Intent {
                            text: t.clone(),
                            intent: info.labels[i].clone(),
                            probability: p[i],
                            slots: entities,
                        }
                    }
                })
                .collect())
        }
        Task::Qa => {
            let Some(context) = context else {
                return Err(Error::Config("question answering needs --context".into()));
            };
            // every question's windows, run together so that a long list is batched and shows progress
            let mut feats = Vec::new();
            let mut windows_of = Vec::with_capacity(texts.len());
            for (i, q) in texts.iter().enumerate() {
                let ex = QaExample {
                    id: i.to_string(),
                    article: 0,
                    question: q.clone(),
                    context: context.to_string(),
                    answers: Vec::new(),
                };
                let first = feats.len();
                feats.extend(
                    enc.qa(&ex, 0, &info.qa_limits(), false)
                        .map_err(|e| named(i, e))?,
                );
                windows_of.push(first..feats.len());
            }
            let outs = run(model, enc, &feats, 32)?;
            let mut out = Vec::new();
            for (q, range) in texts.iter().zip(windows_of) {
                let windows: Vec<(&Feature, &Outputs)> =
                    feats[range.clone()].iter().zip(&outs[range]).collect();
                let (span, prob) = match best_span(&windows, &info.qa_limits()) {
                    Some(((a, z), _, p)) => ((a, z), p),
                    None => ((0, 0), 0.0),
                };
                let start = context[..span.0].chars().count();
                let text = context[span.0..span.1].to_string();
                out.push(Prediction::Answer {
                    question: q.clone(),
                    answer: Span {
                        label: "answer".into(),
                        end: start + text.chars().count(),
                        text,
                        start,
                    },
                    probability: prob,
                });
            }
            Ok(out)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::split_words;

    fn words(text: &str) -> Vec<String> {
        split_words(text).into_iter().map(|w| w.0).collect()
    }

    #[test]
    fn words_are_split_as_the_tagged_corpora_write_them() {
        assert_eq!(
            words("Book a top-rated café (near U.K. office), Germany's best."),
            [
                "Book",
                "a",
                "top-rated",
                "café",
                "(",
                "near",
                "U.K.",
                "office",
                ")",
                ",",
                "Germany",
                "'s",
                "best",
                "."
            ]
        );
        assert_eq!(words("  \"Hi!\"  "), ["\"", "Hi", "!", "\""]);
        assert_eq!(
            words("U.S.-based 3.5 ..."),
            ["U.S.-based", "3.5", ".", ".", "."]
        );
        assert!(words(" \t\n").is_empty());
    }

    #[test]
    fn spans_are_character_offsets_of_the_text() {
        let text = "Pärchen in Zürich, bitte";
        for (w, a, b) in split_words(text) {
            let got: String = text.chars().skip(a).take(b - a).collect();
            assert_eq!(got, w);
        }
        let spans: Vec<(usize, usize)> = split_words(text).iter().map(|w| (w.1, w.2)).collect();
        assert_eq!(spans, [(0, 7), (8, 10), (11, 17), (17, 18), (19, 24)]);
    }
}
