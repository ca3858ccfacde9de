//! Extractive question answering in SQuAD v1.1 JSON: articles of paragraphs, each a context and
//! questions whose answers are spans of it.

use super::read_utf8;
use crate::error::{Error, Result};
use serde_json::Value;
use std::ops::Range;
use std::path::Path;

/// A question about a context, with its gold answers; `article` is the index of its article
/// in the file.
#[derive(Clone, Debug)]
pub struct QaExample {
    pub id: String,
    pub article: usize,
    pub question: String,
    pub context: String,
    pub answers: Vec<Answer>,
}

/// `start` is a BYTE offset into `context` (SQuAD's `answer_start` counts characters, i.e.
/// Unicode code points; converted while reading).
#[derive(Clone, Debug)]
pub struct Answer {
    pub text: String,
    pub start: usize,
}

/// SQuAD v1.1 JSON (`data[].paragraphs[].{context, qas[].{id, question, answers[].{text,
/// answer_start}}}`), articles whose index (file order) is in `articles` (None = all). Errors
/// name the file and, where it applies, the question id: an answer's text not found at its
/// answer_start in the context, a question without answers (SQuAD v2's unanswerable ones);
/// JSON that is not SQuAD-shaped (saying which field); a range of articles reaching past the
/// file's (which would score fewer than asked, without a word); no questions selected.
pub fn read_squad(path: &Path, articles: Option<Range<usize>>) -> Result<Vec<QaExample>> {
    let root: Value = serde_json::from_str(&read_utf8(path)?)
        .map_err(|e| Error::format(path, format!("invalid JSON: {e}")))?;
    let json = Json { path };
    let data = json.array(&root, "data", "the top level")?;
    if let Some(r) = articles.as_ref().filter(|r| r.end > data.len()) {
        return Err(Error::format(
            path,
            format!(
                "articles {}:{} reach past the file's {} articles (0:{} is all of them)",
                r.start,
                r.end,
                data.len(),
                data.len()
            ),
        ));
    }
    let mut examples = Vec::new();
    for (a, article) in data.iter().enumerate() {
        if articles.as_ref().is_some_and(|r| !r.contains(&a)) {
            continue;
        }
        let at = format!("data[{a}]");
        for (p, paragraph) in json.array(article, "paragraphs", &at)?.iter().enumerate() {
            let at = format!("{at}.paragraphs[{p}]");
            let context = json.string(paragraph, "context", &at)?;
            for (q, qa) in json.array(paragraph, "qas", &at)?.iter().enumerate() {
                let id = json.string(qa, "id", &format!("{at}.qas[{q}]"))?;
                let at = format!("question {id}");
                let answers = json.array(qa, "answers", &at)?;
                if answers.is_empty() {
                    return Err(Error::format(path, format!("{at} has no answers")));
                }
                let answers = answers
                    .iter()
                    .map(|answer| json.answer(answer, context, &at))
                    .collect::<Result<_>>()?;
                examples.push(QaExample {
                    id: id.to_string(),
                    article: a,
                    question: json.string(qa, "question", &at)?.to_string(),
                    context: context.to_string(),
                    answers,
                });
            }
        }
    }
    if examples.is_empty() {
        let msg = match articles {
            Some(r) => format!(
                "no questions in articles {r:?} (the file has {})",
                data.len()
            ),
            None => "the file has no questions".to_string(),
        };
        return Err(Error::format(path, msg));
    }
    Ok(examples)
}

/// Fields of the SQuAD JSON in `path`, with errors that say where the shape is wrong.
struct Json<'p> {
    path: &'p Path,
}

impl Json<'_> {
    /// Field `key` of the object `v`, found at `at`.
    fn field<'v>(&self, v: &'v Value, key: &str, at: &str) -> Result<&'v Value> {
        v.get(key).ok_or_else(|| {
            let what = if v.is_object() {
                format!("has no {key:?}")
            } else {
                "is not an object".into()
            };
            self.wrong(format!("{at} {what}"))
        })
    }

    fn array<'v>(&self, v: &'v Value, key: &str, at: &str) -> Result<&'v Vec<Value>> {
        let field = self.field(v, key, at)?;
        field
            .as_array()
            .ok_or_else(|| self.wrong(format!("{key:?} of {at} is not an array")))
    }

    fn string<'v>(&self, v: &'v Value, key: &str, at: &str) -> Result<&'v str> {
        let field = self.field(v, key, at)?;
        field
            .as_str()
            .ok_or_else(|| self.wrong(format!("{key:?} of {at} is not a string")))
    }

    /// An answer of the question `at` about `context`, checked to be there.
    fn answer(&self, answer: &Value, context: &str, at: &str) -> Result<Answer> {
        let text = self.string(answer, "text", &format!("an answer of {at}"))?;
        let chars = self.field(answer, "answer_start", &format!("an answer of {at}"))?;
        let chars = chars.as_u64().ok_or_else(|| {
            self.wrong(format!(
                "\"answer_start\" of an answer of {at} is not a whole number"
            ))
        })?;
        let start = usize::try_from(chars).ok().and_then(|c| {
            context
                .char_indices()
                .map(|(b, _)| b)
                .chain([context.len()])
                .nth(c)
        });
        match start {
            Some(start) if context[start..].starts_with(text) => Ok(Answer {
                text: text.to_string(),
                start,
            }),
            _ => {
                let found: String = context
                    .chars()
                    .skip(chars as usize)
                    .take(text.chars().count())
                    .collect();
                let msg = format!(
                    "{at}: answer {text:?} is not at its answer_start {chars} in the context \
                     (found {found:?} there)"
                );
                Err(Error::format(self.path, msg))
            }
        }
    }

    /// The file is not SQuAD-shaped, as `msg` says.
    fn wrong(&self, msg: String) -> Error {
        Error::format(self.path, format!("not SQuAD v1.1 JSON: {msg}"))
    }
}

#[cfg(test)]
mod tests;
