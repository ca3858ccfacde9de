//! Writing a file so that readers see either the old file or the complete new one.

use crate::error::{Error, Result};
use std::fs::File;
use std::path::{Path, PathBuf};

/// Creates a temporary file next to `path`, lets `write` fill it, syncs it and renames it over
/// `path`. On any error the temporary file is removed and `path` is left untouched.
pub fn write_atomic<T>(path: &Path, write: impl FnOnce(&mut File) -> Result<T>) -> Result<T> {
    let tmp = temp_path(path)?;
    let result = File::create(&tmp)
        .map_err(Error::io(&tmp))
        .and_then(|mut file| {
            let value = write(&mut file)?;
            file.sync_all().map_err(Error::io(&tmp))?;
            Ok(value)
        })
        .and_then(|value| {
            std::fs::rename(&tmp, path).map_err(Error::io(path))?;
            Ok(value)
        });
    if result.is_err() {
        // The temporary file may not exist; there is nothing more to report about it.
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// `<dir>/.<name>.tmp-<pid>` next to `path`.
fn temp_path(path: &Path) -> Result<PathBuf> {
    let name = path
        .file_name()
        .ok_or_else(|| Error::format(path, "is not a file path"))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".tmp-{}", std::process::id()));
    Ok(path.with_file_name(tmp_name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn replaces_the_file_only_when_writing_succeeds() {
        let dir = std::env::temp_dir().join(format!("primer-atomic-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("out.bin");
        write_atomic(&path, |f| f.write_all(b"first").map_err(Error::io(&path))).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"first");
        let failed: Result<()> = write_atomic(&path, |f| {
            f.write_all(b"partial").map_err(Error::io(&path))?;
            Err(Error::Config("stop".into()))
        });
        assert!(failed.is_err());
        assert_eq!(std::fs::read(&path).unwrap(), b"first");
        let leftovers = std::fs::read_dir(&dir).unwrap().count();
        assert_eq!(leftovers, 1, "temporary file left behind");
    }
}
