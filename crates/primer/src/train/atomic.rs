//! Crash-safe file replacement: write a temporary file next to the target, fsync it, then
//! rename it over the target. A reader (or a crash) sees either the old file or the new one,
//! never a half-written one.

use std::fs::{self, File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{Error, Result};

/// Replaces `path` with `bytes` atomically.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic_with(path, |w| w.write_all(bytes).map_err(Error::io(path)))
}

/// Replaces `path` atomically with what `write` streams into the writer it is given.
/// If `write` fails, the temporary file is removed and `path` is left untouched.
pub fn write_atomic_with<F>(path: &Path, write: F) -> Result<()>
where
    F: FnOnce(&mut BufWriter<File>) -> Result<()>,
{
    let tmp = temp_sibling(path)?;
    let result = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp)
        .map_err(|e| match path.parent() {
            // the usual cause: name the directory, not the temporary file no one asked for
            Some(dir)
                if e.kind() == std::io::ErrorKind::NotFound && !dir.as_os_str().is_empty() =>
            {
                Error::format(dir, "no such directory")
            }
            _ => Error::io(&tmp)(e),
        })
        .and_then(|file| {
            let mut w = BufWriter::new(file);
            write(&mut w)?;
            let file = w
                .into_inner()
                .map_err(|e| Error::io(&tmp)(e.into_error()))?;
            file.sync_all().map_err(Error::io(&tmp))
        })
        .and_then(|()| {
            crash_point();
            fs::rename(&tmp, path).map_err(Error::io(path))
        });
    if result.is_err() {
        // Best effort: the temporary may not exist if it could not be created.
        let _ = fs::remove_file(&tmp);
        return result;
    }
    sync_dir(match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    });
    Ok(())
}

/// A fresh hidden name in the directory of `path`: `.<stem>.tmp-<pid>-<n>[.<ext>]`.
fn temp_sibling(path: &Path) -> Result<PathBuf> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let (stem, ext) = stem_and_extension(path)
        .ok_or_else(|| Error::Config(format!("{}: not a file path", path.display())))?;
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    Ok(path.with_file_name(format!(".{stem}.tmp-{}-{n}{ext}", std::process::id())))
}

/// Whether `name` is a temporary name that [`write_atomic`] gives a new `target` (a file name, such as
/// `model.safetensors`): what a process killed while writing `target` leaves behind.
pub(crate) fn is_temp_of(name: &str, target: &str) -> bool {
    let Some((stem, ext)) = stem_and_extension(Path::new(target)) else {
        return false;
    };
    let counters = name
        .strip_prefix(&format!(".{stem}.tmp-"))
        .and_then(|rest| rest.strip_suffix(&ext));
    counters
        .and_then(|c| c.split_once('-'))
        .is_some_and(|(pid, n)| {
            [pid, n]
                .iter()
                .all(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
        })
}

/// The stem of `path`'s file name and its extension with the dot (`""` when it has none).
fn stem_and_extension(path: &Path) -> Option<(String, String)> {
    let stem = path.file_stem()?.to_string_lossy().into_owned();
    let ext = path
        .extension()
        .map_or(String::new(), |e| format!(".{}", e.to_string_lossy()));
    Some((stem, ext))
}

/// Makes the renames into `dir` durable. Best effort: some file systems refuse to fsync a directory,
/// and the files' content is already safe at this point.
pub(crate) fn sync_dir(dir: &Path) {
    #[cfg(unix)]
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    #[cfg(not(unix))]
    let _ = dir;
}

/// A point between two steps of a write where a test may stop it as a crash would (see
/// `testutil::crash_after`); outside tests, nothing.
pub(crate) fn crash_point() {
    #[cfg(test)]
    crate::testutil::crash_point();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> crate::testutil::Scratch {
        crate::testutil::scratch_dir("atomic", name)
    }

    fn entries(dir: &Path) -> Vec<String> {
        crate::testutil::file_names(dir)
    }

    #[test]
    fn replaces_existing_file_and_leaves_no_temp() {
        let dir = scratch("replace");
        let path = dir.join("state.bin");
        fs::write(&path, b"old content that is longer").unwrap();
        write_atomic(&path, b"new").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"new");
        assert_eq!(entries(&dir), vec!["state.bin".to_string()]);
    }

    #[test]
    fn failed_writer_keeps_old_file_and_removes_temp() {
        let dir = scratch("fail");
        let path = dir.join("ckpt.safetensors");
        fs::write(&path, b"good").unwrap();
        let err = write_atomic_with(&path, |w| {
            w.write_all(b"partial").unwrap();
            Err(Error::Config("writer gave up".into()))
        })
        .unwrap_err();
        assert!(err.to_string().contains("writer gave up"));
        assert_eq!(fs::read(&path).unwrap(), b"good");
        assert_eq!(entries(&dir), vec!["ckpt.safetensors".to_string()]);
    }

    #[test]
    fn streaming_writer_creates_new_file() {
        let dir = scratch("stream");
        let path = dir.join("out.txt");
        write_atomic_with(&path, |w| {
            for i in 0..3 {
                writeln!(w, "line {i}").map_err(Error::io(&path))?;
            }
            Ok(())
        })
        .unwrap();
        assert_eq!(
            fs::read_to_string(&path).unwrap(),
            "line 0\nline 1\nline 2\n"
        );
        assert_eq!(entries(&dir), vec!["out.txt".to_string()]);
    }

    #[test]
    fn temp_name_keeps_extension_and_directory() {
        let tmp = temp_sibling(Path::new("/runs/a/loss.png")).unwrap();
        assert_eq!(tmp.parent(), Some(Path::new("/runs/a")));
        assert_eq!(tmp.extension().and_then(|e| e.to_str()), Some("png"));
        assert_ne!(tmp, temp_sibling(Path::new("/runs/a/loss.png")).unwrap());
        // and is known for what it is, as a temporary of that name only
        let name = tmp.file_name().and_then(|n| n.to_str()).unwrap();
        assert!(is_temp_of(name, "loss.png"));
        assert!(!is_temp_of(name, "loss.svg") && !is_temp_of(name, "metrics.jsonl"));
        let bare = temp_sibling(Path::new("/runs/a/LICENSE")).unwrap();
        assert!(is_temp_of(
            bare.file_name().and_then(|n| n.to_str()).unwrap(),
            "LICENSE"
        ));
    }

    #[test]
    fn missing_directory_is_an_error_naming_the_path() {
        let path = std::env::temp_dir().join("primer-no-such-dir-xyz/file.bin");
        let err = write_atomic(&path, b"x").unwrap_err();
        assert!(err.to_string().contains("primer-no-such-dir-xyz"));
    }
}
