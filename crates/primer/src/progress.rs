//! Progress bars on stderr, drawn only when it is a terminal: over the steps of a run, and over the bytes of
//! the files a run reads before its first step (a large corpus is read several times: to train a tokenizer,
//! to tokenize it, to checksum it).

use crate::error::{Error, Result};
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Duration;

fn style(template: &str) -> Result<ProgressStyle> {
    ProgressStyle::with_template(template).map_err(|e| Error::Config(e.to_string()))
}

/// A bar of `len` units starting at `pos`, hidden when stderr is not a terminal.
fn bar(len: u64, pos: u64) -> ProgressBar {
    if std::io::stderr().is_terminal() {
        ProgressBar::new(len).with_position(pos)
    } else {
        ProgressBar::hidden()
    }
}

/// A progress bar over `len` steps starting at `pos`, hidden when stderr is not a terminal.
pub(crate) fn progress_bar(len: usize, pos: usize) -> Result<ProgressBar> {
    let bar = bar(len as u64, pos as u64);
    bar.set_style(style(
        "{bar:16} {pos}/{len} [{elapsed_precise}<{eta_precise}] {wide_msg}",
    )?);
    Ok(bar)
}

/// Prints an evaluation line above the progress bar, or plainly when there is no terminal to draw it on.
pub(crate) fn report(bar: &ProgressBar, line: String) {
    if bar.is_hidden() {
        crate::say!("{line}");
    } else {
        bar.println(line);
    }
}

/// Files smaller than this are read in about a second or less, too soon for a bar to say anything.
const READING_BAR_BYTES: u64 = 16 << 20;

/// A bar over the bytes of files being read, under a line saying what is done ("tokenizing corpus.txt", then
/// "███░░  30% of 4.0 GiB [..] 20 MiB/s"),
/// hidden when stderr is not a terminal or the files are small, and cleared when dropped, on success and error
/// alike.
pub(crate) struct ReadingBar {
    bar: ProgressBar,
}

impl ReadingBar {
    /// A bar for `doing` (e.g. "tokenizing") `files`, over the sum of their sizes.
    pub(crate) fn over(doing: &str, files: &[PathBuf]) -> Result<Self> {
        let bytes = files
            .iter()
            .filter_map(|f| std::fs::metadata(f).ok())
            .map(|m| m.len())
            .sum();
        let names = match files {
            [one] => one.display().to_string(),
            _ => format!("{} files", files.len()),
        };
        let bar = if bytes < READING_BAR_BYTES {
            ProgressBar::hidden()
        } else {
            bar(bytes, 0)
        };
        bar.set_style(style(
            "{wide_msg}\n{bar:24} {percent:>3}% of {total_bytes} [{elapsed_precise}<{eta_precise}] {bytes_per_sec}",
        )?);
        bar.set_message(format!("{doing} {names}"));
        Ok(Self { bar })
    }

    /// A bar for `doing` one file.
    pub(crate) fn over_file(doing: &str, file: &Path) -> Result<Self> {
        Self::over(doing, &[file.to_path_buf()])
    }

    /// Counts `bytes` more as read.
    pub(crate) fn advance(&self, bytes: u64) {
        self.bar.inc(bytes);
    }

    /// Turns the bar into a spinner for `doing`, work after the reading whose length is not known (a
    /// tokenizer trainer choosing its vocabulary).
    pub(crate) fn then(&self, doing: String) {
        if let Ok(spinner) = style("{spinner} {msg} [{elapsed_precise}]") {
            self.bar.set_style(spinner);
        }
        self.bar.set_message(doing);
        self.bar.reset_elapsed();
        self.bar.enable_steady_tick(Duration::from_millis(120));
    }
}

impl Drop for ReadingBar {
    fn drop(&mut self) {
        self.bar.finish_and_clear();
    }
}
