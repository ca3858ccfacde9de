//! Opening a run's directory for training: a lock keeps a second primer process out while a run trains there,
//! and what a killed process left is put right first (a checkpoint it was writing finished or discarded, its
//! temporary files deleted), so that every check after sees a directory as a finished write leaves it.

use crate::error::{Error, Result};
use crate::train::atomic::is_temp_of;
use crate::train::checkpoint::RUN_FILES;
use crate::train::journal;
use std::fs::{File, TryLockError};
use std::path::Path;

/// Where a fresh GPT run writes its token file before it replaces `tokens.bin`.
pub(crate) const TOKENS_PARTIAL: &str = "tokens.bin.partial";

/// A run directory held by one primer process (see [`open_run_dir`]), until this is dropped.
pub(crate) struct RunLock {
    _held: Option<File>,
}

/// Opens `out` for a run: locks it against a second primer process, makes whole a checkpoint whose writing a
/// killed process cut short ([`journal::recover`]), and deletes the temporary files such a process leaves
/// (`.model.tmp-…`, `tokens.bin.partial`), which no run reads; other files are left alone. A directory that
/// does not exist is left to the checks that follow.
pub(crate) fn open_run_dir(out: &Path) -> Result<RunLock> {
    if !out.is_dir() {
        return Ok(RunLock { _held: None });
    }
    let lock = lock_dir(out)?;
    journal::recover(out)?;
    for entry in std::fs::read_dir(out).map_err(Error::io(out))? {
        let entry = entry.map_err(Error::io(out))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let leftover = name == TOKENS_PARTIAL
            || RUN_FILES
                .iter()
                .chain(&[TOKENS_PARTIAL])
                .any(|file| is_temp_of(name, file));
        if leftover && entry.file_type().is_ok_and(|t| t.is_file()) {
            let path = entry.path();
            std::fs::remove_file(&path).map_err(Error::io(&path))?;
        }
    }
    Ok(lock)
}

/// Locks `dir` until the returned lock is dropped or the process ends, however it ends; refuses if another
/// process holds it. Where the directory cannot be opened or locked (a file system without locks, say), the
/// run goes ahead unguarded, and a note says so.
pub(crate) fn lock_dir(dir: &Path) -> Result<RunLock> {
    let unguarded = |why: std::io::Error| {
        crate::say!(
            "note: {}: cannot lock the directory ({why}); a second primer process started on it could disturb this one",
            dir.display()
        );
        Ok(RunLock { _held: None })
    };
    let handle = match File::open(dir) {
        Ok(h) => h,
        Err(e) => return unguarded(e),
    };
    // a lock held only for a moment is waited for: a child process that another thread of this one is starting
    // shares the handles of the process, the lock of a run that has just ended included, until it runs its
    // program
    let mut attempt = 0;
    loop {
        match handle.try_lock() {
            Ok(()) => {
                return Ok(RunLock {
                    _held: Some(handle),
                })
            }
            Err(TryLockError::WouldBlock) if attempt < LOCK_ATTEMPTS => {
                attempt += 1;
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            Err(TryLockError::WouldBlock) => {
                return Err(Error::format(
                    dir,
                    "another primer process is training in this directory: wait for it to end, or choose \
                     another --out",
                ))
            }
            Err(TryLockError::Error(e)) => return unguarded(e),
        }
    }
}

/// How many times [`lock_dir`] tries again, 10 ms apart, before it takes a held lock for another run's.
const LOCK_ATTEMPTS: usize = 20;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{file_names, scratch_dir};
    use crate::train::checkpoint::check_resumable;

    #[test]
    fn opening_a_run_deletes_what_killed_runs_left_and_only_that() {
        let dir = scratch_dir("run-dir", "leftovers");
        let leftovers = [
            ".model.tmp-41-3.safetensors",
            ".tokens.bin.tmp-41-0.partial",
            "tokens.bin.partial",
            ".loss.tmp-7-12.png",
            ".metrics.tmp-7-1.jsonl",
        ];
        let others = [
            ".config.tmp-1-2.toml",
            ".model.tmp-notes",
            ".vocab.tmp-1-2.txt",
            "notes.txt",
            "trainer_state.json",
        ];
        for name in leftovers.iter().chain(&others) {
            std::fs::write(dir.join(name), "x").unwrap();
        }
        // a directory named as a temporary file is none
        std::fs::create_dir(dir.join(".config.tmp-3-4.json")).unwrap();
        open_run_dir(&dir).unwrap();
        let mut kept = others.map(String::from).to_vec();
        kept.insert(1, ".config.tmp-3-4.json".into());
        assert_eq!(file_names(&dir), kept);
    }

    #[test]
    fn a_second_process_is_kept_out_while_a_run_trains() {
        let dir = scratch_dir("run-dir", "locked");
        std::fs::write(dir.join("trainer_state.json"), "{}").unwrap();
        let lock = open_run_dir(&dir).unwrap();
        // another open file description of the directory, as another process has, is refused
        let e = open_run_dir(&dir).err().unwrap().to_string();
        assert!(e.contains("another primer process is training"), "{e}");
        let e = check_resumable(&dir).unwrap_err().to_string();
        assert!(e.contains("another primer process is training"), "{e}");
        drop(lock);
        check_resumable(&dir).unwrap();
        // a lock let go of within a moment (a child process starting in another thread shared it) is waited for:
        // 20 ms here, against the 200 waited
        let lock = open_run_dir(&dir).unwrap();
        let release = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(20));
            drop(lock);
        });
        open_run_dir(&dir).unwrap();
        release.join().unwrap();
    }
}
