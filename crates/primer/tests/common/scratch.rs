//! A test's scratch directory, shared by the unit tests (`testutil`), the integration tests (`common`) and the
//! CLI's tests, which include this file by path.

use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// A fresh, empty directory for one test: removed when dropped, but kept for inspection when the test fails
/// (panics).
pub struct Scratch(PathBuf);

impl Scratch {
    /// A directory under the system temp dir named for `kind`, this process, how many this process has made
    /// before and `name`: tests that run at once get directories of their own even when they ask for the same
    /// name (two tests sharing one helper's directory used to empty it under each other). Whatever an earlier
    /// process of the same id left there is removed first.
    pub fn fresh(kind: &str, name: &str) -> Scratch {
        static MADE: AtomicUsize = AtomicUsize::new(0);
        let n = MADE.fetch_add(1, Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("primer-{kind}-{}-{n}-{name}", std::process::id()));
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
