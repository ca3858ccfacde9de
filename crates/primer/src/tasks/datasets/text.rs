//! Classification examples: a text, optionally a second text (for sentence-pair tasks), and a
//! label, read from named columns of a TSV, CSV or JSON Lines file.

use super::{numbered_lines, read_utf8};
use crate::error::{Error, Result};
use serde_json::Value;
use std::path::Path;

/// Which columns of a classification file to read.
#[derive(Clone, Debug)]
pub struct Columns {
    pub text: String,
    pub pair: Option<String>,
    pub label: String,
}

/// One labelled text (or text pair), with the line of the file it starts on.
#[derive(Clone, Debug)]
pub struct TextExample {
    pub text: String,
    pub pair: Option<String>,
    pub label: String,
    pub line: usize,
}

/// Classification examples from TSV (.tsv / .txt: tab-separated, a header row names the
/// columns; quotes are ordinary characters, so GLUE TSV works as is), CSV (.csv: RFC 4180
/// quoting, a header row), or JSON Lines (.jsonl / .json: one object per line, values strings
/// or numbers; a number label like 1 becomes "1"). Texts are kept as they are; labels are
/// trimmed. Blank lines are skipped. Errors name the file and line: a missing column (listing
/// those that exist), a row with the wrong number of fields, an empty label, invalid JSON, no
/// examples at all.
pub fn read_text_examples(path: &Path, cols: &Columns) -> Result<Vec<TextExample>> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    let text = read_utf8(path)?;
    let examples = match ext.as_deref() {
        Some("tsv" | "txt") => read_tsv(path, &text, cols)?,
        Some("csv") => read_csv(path, &text, cols)?,
        Some("jsonl" | "json") => read_jsonl(path, &text, cols)?,
        _ => {
            let msg = "unknown kind of file: expected .tsv, .txt, .csv, .jsonl or .json";
            return Err(Error::format(path, msg));
        }
    };
    if examples.is_empty() {
        return Err(Error::format(
            path,
            "the file has no examples, only a header row",
        ));
    }
    Ok(examples)
}

/// The positions of the wanted columns in a header row.
struct Header {
    width: usize,
    text: usize,
    pair: Option<usize>,
    label: usize,
}

impl Header {
    /// Finds `cols` among the `names` of the header on `line`; a missing one is an error
    /// listing the names.
    fn new(path: &Path, line: usize, names: &[&str], cols: &Columns) -> Result<Header> {
        if names.iter().all(|n| n.trim().is_empty()) {
            let msg = "the file is empty: expected a header row naming the columns";
            return Err(Error::format(path, msg));
        }
        let find = |want: &str| {
            names.iter().position(|n| n.trim() == want).ok_or_else(|| {
                let have: Vec<String> = names.iter().map(|n| format!("{:?}", n.trim())).collect();
                let msg = format!(
                    "line {line}: no column {want:?} (the columns are {})",
                    have.join(", ")
                );
                Error::format(path, msg)
            })
        };
        Ok(Header {
            width: names.len(),
            text: find(&cols.text)?,
            pair: cols.pair.as_deref().map(find).transpose()?,
            label: find(&cols.label)?,
        })
    }

    /// The example in the `fields` of a row on `line`.
    fn example(&self, path: &Path, fields: &[&str], line: usize) -> Result<TextExample> {
        if fields.len() != self.width {
            let msg = format!(
                "line {line}: {} fields, but the header has {}",
                fields.len(),
                self.width
            );
            return Err(Error::format(path, msg));
        }
        labelled(
            path,
            line,
            fields[self.text],
            self.pair.map(|p| fields[p]),
            fields[self.label],
        )
    }
}

/// An example from its fields; an empty label is an error.
fn labelled(
    path: &Path,
    line: usize,
    text: &str,
    pair: Option<&str>,
    label: &str,
) -> Result<TextExample> {
    let label = label.trim();
    if label.is_empty() {
        return Err(Error::format(path, format!("line {line}: empty label")));
    }
    Ok(TextExample {
        text: text.to_string(),
        pair: pair.map(str::to_string),
        label: label.to_string(),
        line,
    })
}

fn read_tsv(path: &Path, text: &str, cols: &Columns) -> Result<Vec<TextExample>> {
    let mut lines = numbered_lines(text).filter(|(_, l)| !l.trim().is_empty());
    let (line, names) = lines
        .next()
        .map_or((1, vec![]), |(n, l)| (n, l.split('\t').collect()));
    let header = Header::new(path, line, &names, cols)?;
    lines
        .map(|(line, l)| header.example(path, &l.split('\t').collect::<Vec<_>>(), line))
        .collect()
}

fn read_csv(path: &Path, text: &str, cols: &Columns) -> Result<Vec<TextExample>> {
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .from_reader(text.as_bytes());
    let csv_error = |e: csv::Error| match e.position() {
        Some(pos) => Error::format(path, format!("line {}: {e}", pos.line())),
        None => Error::format(path, e.to_string()),
    };
    let names = reader.headers().map_err(csv_error)?.clone();
    let line = names.position().map_or(1, |p| p.line() as usize);
    let header = Header::new(path, line, &names.iter().collect::<Vec<_>>(), cols)?;
    let mut examples = Vec::new();
    for record in reader.records() {
        let record = record.map_err(csv_error)?;
        let line = record.position().map_or(0, |p| p.line() as usize);
        examples.push(header.example(path, &record.iter().collect::<Vec<_>>(), line)?);
    }
    Ok(examples)
}

fn read_jsonl(path: &Path, text: &str, cols: &Columns) -> Result<Vec<TextExample>> {
    let mut examples = Vec::new();
    for (line, l) in numbered_lines(text).filter(|(_, l)| !l.trim().is_empty()) {
        let bad = |msg: String| Error::format(path, format!("line {line}: {msg}"));
        let value: Value = serde_json::from_str(l).map_err(|e| {
            // serde_json's message ends with the position in `l`, which is line 1.
            let msg = e.to_string();
            let msg = msg.split(" at line ").next().unwrap_or_default();
            bad(format!(
                "invalid JSON at column {} ({msg}); expected one object per line",
                e.column()
            ))
        })?;
        let Value::Object(object) = &value else {
            return Err(bad(format!(
                "expected a JSON object, found {}",
                kind(&value)
            )));
        };
        let field = |name: &str| match object.get(name) {
            Some(Value::String(s)) => Ok(s.clone()),
            Some(Value::Number(n)) => Ok(n.to_string()),
            Some(other) => Err(bad(format!(
                "field {name:?} is {}; expected a string or a number",
                kind(other)
            ))),
            None => {
                let have: Vec<String> = object.keys().map(|k| format!("{k:?}")).collect();
                Err(bad(format!(
                    "no field {name:?} (the fields are {})",
                    have.join(", ")
                )))
            }
        };
        let pair = cols.pair.as_deref().map(field).transpose()?;
        examples.push(labelled(
            path,
            line,
            &field(&cols.text)?,
            pair.as_deref(),
            &field(&cols.label)?,
        )?);
    }
    Ok(examples)
}

/// What kind of JSON value `v` is, for messages.
fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests;
