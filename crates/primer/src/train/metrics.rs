//! The metrics log of a run: `metrics.jsonl`, one JSON object per line.
//!
//! Each record is written and flushed as one line, so a crash of the process loses nothing
//! already written. A crash in the middle of a write can leave a torn last line without its
//! newline; readers skip it and [`MetricsWriter::open`] cuts it off before appending.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::train::atomic::write_atomic;

/// One metrics record: the JSON object of one line.
pub type Record = Map<String, Value>;

/// Appends records to a metrics file, one JSON object per line, flushed line by line.
pub struct MetricsWriter {
    path: PathBuf,
    file: File,
}

impl MetricsWriter {
    /// Opens `path` for appending (creating it if needed), or empties it first if `truncate`.
    pub fn open(path: &Path, truncate: bool) -> Result<Self> {
        let file = if truncate {
            OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .open(path)
        } else {
            drop_torn_tail(path)?;
            OpenOptions::new().append(true).create(true).open(path)
        }
        .map_err(Error::io(path))?;
        Ok(Self {
            path: path.to_path_buf(),
            file,
        })
    }

    /// Appends `record` (which must be a JSON object) as one line and flushes it.
    pub fn write(&mut self, record: &Value) -> Result<()> {
        if !record.is_object() {
            return Err(Error::format(
                &self.path,
                format!("a metrics record must be a JSON object, got {record}"),
            ));
        }
        let mut line = record.to_string();
        line.push('\n');
        self.file
            .write_all(line.as_bytes())
            .and_then(|()| self.file.flush())
            .map_err(Error::io(&self.path))
    }
}

/// Reads every record of a metrics file. Blank lines and a torn last line (no newline and not
/// valid JSON, left by a crash mid-write) are skipped; any other malformed line is an error
/// naming the file and line number.
pub fn read_metrics(path: &Path) -> Result<Vec<Record>> {
    let text = fs::read_to_string(path).map_err(Error::io(path))?;
    Ok(parse_lines(path, &text)?
        .into_iter()
        .map(|line| line.record)
        .collect())
}

/// Drops the records whose `"step"` is greater than `step`, keeping the others byte for byte
/// (records without a step stay). Used when a run resumes from an earlier checkpoint so the
/// log does not hold the abandoned steps twice. A missing file is left missing.
pub fn truncate_after_step(path: &Path, step: u64) -> Result<()> {
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io(path)(e)),
    };
    let mut kept = String::with_capacity(text.len());
    for line in parse_lines(path, &text)? {
        let keep = match line.record.get("step") {
            None => true,
            Some(v) => match v.as_u64() {
                Some(s) => s <= step,
                None => match v.as_f64() {
                    Some(s) => s <= step as f64,
                    None => {
                        return Err(Error::format(
                            path,
                            format!("line {}: \"step\" is not a number: {v}", line.number),
                        ))
                    }
                },
            },
        };
        if keep {
            kept.push_str(line.text);
            kept.push('\n');
        }
    }
    write_atomic(path, kept.as_bytes())
}

/// A parsed line of a metrics file.
struct Line<'a> {
    /// 1-based line number in the file.
    number: usize,
    /// The line as written, without its newline.
    text: &'a str,
    record: Record,
}

fn parse_lines<'a>(path: &Path, text: &'a str) -> Result<Vec<Line<'a>>> {
    let complete = text.ends_with('\n');
    let count = text.lines().count();
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let number = i + 1;
        if raw.trim().is_empty() {
            continue;
        }
        let torn = !complete && number == count;
        match serde_json::from_str::<Value>(raw) {
            Ok(Value::Object(record)) => out.push(Line {
                number,
                text: raw,
                record,
            }),
            Err(_) if torn => {}
            Ok(other) => {
                return Err(Error::format(
                    path,
                    format!("line {number}: expected a JSON object, got {other}"),
                ))
            }
            Err(e) => return Err(Error::format(path, format!("line {number}: {e}"))),
        }
    }
    Ok(out)
}

/// Cuts a torn last line (bytes after the final newline) off an existing file, so appended
/// records start on a line of their own.
fn drop_torn_tail(path: &Path) -> Result<()> {
    let bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io(path)(e)),
    };
    if bytes.is_empty() || bytes.ends_with(b"\n") {
        return Ok(());
    }
    let keep = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    OpenOptions::new()
        .write(true)
        .open(path)
        .and_then(|f| f.set_len(keep as u64))
        .map_err(Error::io(path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A fresh directory and the path of a metrics file in it.
    fn scratch(name: &str) -> (crate::testutil::Scratch, PathBuf) {
        let dir = crate::testutil::scratch_dir("metrics", name);
        let path = dir.join("metrics.jsonl");
        (dir, path)
    }

    fn steps(path: &Path) -> Vec<u64> {
        read_metrics(path)
            .unwrap()
            .iter()
            .map(|r| r["step"].as_u64().unwrap())
            .collect()
    }

    #[test]
    fn round_trip_and_append() {
        let (_dir, path) = scratch("roundtrip");
        let mut w = MetricsWriter::open(&path, true).unwrap();
        w.write(&json!({"step": 1, "loss": 2.5, "lr": 1e-3}))
            .unwrap();
        w.write(&json!({"step": 2, "loss": 2.25, "note": "warmup"}))
            .unwrap();
        drop(w);
        let mut w = MetricsWriter::open(&path, false).unwrap();
        w.write(&json!({"step": 3, "loss": 2.0})).unwrap();
        drop(w);

        let records = read_metrics(&path).unwrap();
        assert_eq!(records.len(), 3);
        assert_eq!(records[0]["loss"], json!(2.5));
        assert_eq!(records[0]["lr"], json!(1e-3));
        assert_eq!(records[1]["note"], json!("warmup"));
        assert_eq!(records[2]["step"], json!(3));
        // One line per record, each complete.
        let text = fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 3);
        assert!(text.ends_with('\n'));

        // Opening with truncate empties the log.
        drop(MetricsWriter::open(&path, true).unwrap());
        assert!(read_metrics(&path).unwrap().is_empty());
    }

    #[test]
    fn non_object_record_is_rejected() {
        let (_dir, path) = scratch("nonobject");
        let mut w = MetricsWriter::open(&path, true).unwrap();
        assert!(w.write(&json!([1, 2])).is_err());
        assert!(read_metrics(&path).unwrap().is_empty());
    }

    #[test]
    fn malformed_line_error_names_file_and_line() {
        let (_dir, path) = scratch("malformed");
        fs::write(&path, "{\"step\": 1}\n\n{\"step\": 2,}\n{\"step\": 3}\n").unwrap();
        let msg = read_metrics(&path).unwrap_err().to_string();
        assert!(msg.contains("metrics.jsonl"), "{msg}");
        assert!(msg.contains("line 3"), "{msg}");

        fs::write(&path, "{\"step\": 1}\n[1]\n").unwrap();
        let msg = read_metrics(&path).unwrap_err().to_string();
        assert!(msg.contains("line 2") && msg.contains("object"), "{msg}");
    }

    #[test]
    fn torn_last_line_is_skipped_and_cut_before_append() {
        let (_dir, path) = scratch("torn");
        fs::write(&path, "{\"step\": 1}\n{\"step\": 2}\n{\"ste").unwrap();
        assert_eq!(steps(&path), vec![1, 2]);
        let mut w = MetricsWriter::open(&path, false).unwrap();
        w.write(&json!({"step": 3})).unwrap();
        assert_eq!(steps(&path), vec![1, 2, 3]);
    }

    #[test]
    fn truncate_after_step_drops_later_records_only() {
        let (_dir, path) = scratch("truncate");
        let mut w = MetricsWriter::open(&path, true).unwrap();
        for step in [0u64, 10, 20, 30, 40] {
            w.write(&json!({"step": step, "loss": 1.0 / (step + 1) as f64}))
                .unwrap();
        }
        w.write(&json!({"event": "eval", "acc": 0.5})).unwrap();
        drop(w);

        truncate_after_step(&path, 20).unwrap();
        let records = read_metrics(&path).unwrap();
        let kept: Vec<Option<u64>> = records
            .iter()
            .map(|r| r.get("step").and_then(Value::as_u64))
            .collect();
        assert_eq!(kept, vec![Some(0), Some(10), Some(20), None]);

        // A resumed run appends after the kept records.
        let mut w = MetricsWriter::open(&path, false).unwrap();
        w.write(&json!({"step": 30})).unwrap();
        assert_eq!(read_metrics(&path).unwrap().len(), 5);

        // Missing file: nothing to do.
        truncate_after_step(&path.with_file_name("absent.jsonl"), 5).unwrap();
    }

    #[test]
    fn truncate_rejects_non_numeric_step() {
        let (_dir, path) = scratch("badstep");
        fs::write(&path, "{\"step\": 1}\n{\"step\": \"two\"}\n").unwrap();
        let msg = truncate_after_step(&path, 5).unwrap_err().to_string();
        assert!(msg.contains("line 2"), "{msg}");
        // The file is untouched on error.
        assert_eq!(
            fs::read_to_string(&path).unwrap(),
            "{\"step\": 1}\n{\"step\": \"two\"}\n"
        );
    }
}
