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
        .map_err(Error::io(&tmp))
        .and_then(|file| {
            let mut w = BufWriter::new(file);
            write(&mut w)?;
            let file = w
                .into_inner()
                .map_err(|e| Error::io(&tmp)(e.into_error()))?;
            file.sync_all().map_err(Error::io(&tmp))
        })
        .and_then(|()| fs::rename(&tmp, path).map_err(Error::io(path)));
    if result.is_err() {
        // Best effort: the temporary may not exist if it could not be created.
        let _ = fs::remove_file(&tmp);
        return result;
    }
    sync_dir(path);
    Ok(())
}

/// A fresh hidden name in the directory of `path`: `.<stem>.tmp-<pid>-<n>[.<ext>]`.
fn temp_sibling(path: &Path) -> Result<PathBuf> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let stem = path
        .file_stem()
        .ok_or_else(|| Error::Config(format!("{}: not a file path", path.display())))?;
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut name = format!(".{}.tmp-{}-{n}", stem.to_string_lossy(), std::process::id());
    if let Some(ext) = path.extension() {
        name.push('.');
        name.push_str(&ext.to_string_lossy());
    }
    Ok(path.with_file_name(name))
}

/// Makes the rename itself durable. Best effort: some file systems refuse to fsync a directory,
/// and the file content is already safe at this point.
fn sync_dir(path: &Path) {
    #[cfg(unix)]
    {
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
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
        fs::remove_dir_all(&dir).unwrap();
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
        fs::remove_dir_all(&dir).unwrap();
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
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn temp_name_keeps_extension_and_directory() {
        let tmp = temp_sibling(Path::new("/runs/a/loss.png")).unwrap();
        assert_eq!(tmp.parent(), Some(Path::new("/runs/a")));
        assert_eq!(tmp.extension().and_then(|e| e.to_str()), Some("png"));
        assert_ne!(tmp, temp_sibling(Path::new("/runs/a/loss.png")).unwrap());
    }

    #[test]
    fn missing_directory_is_an_error_naming_the_path() {
        let path = std::env::temp_dir().join("primer-no-such-dir-xyz/file.bin");
        let err = write_atomic(&path, b"x").unwrap_err();
        assert!(err.to_string().contains("primer-no-such-dir-xyz"));
    }
}
