//! A test's scratch directory, shared by the unit tests (`testutil`), the integration tests (`common`) and the
//! CLI's tests, which include this file by path.

use std::ops::Deref;
use std::path::{Path, PathBuf};

/// A fresh, empty directory for one test: removed when dropped, but kept for inspection when the test fails
/// (panics).
pub struct Scratch(PathBuf);

impl Scratch {
    /// Empties `dir` (whatever an earlier process of the same id left there) and creates it.
    pub fn fresh(dir: PathBuf) -> Scratch {
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
}

impl Deref for Scratch {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl AsRef<Path> for Scratch {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}
