//! A checkpoint replaced as one unit. Its files are written into `DIR/.checkpoint-new/`; renaming that
//! directory to `DIR/.checkpoint-pending/` commits them; then each is renamed into `DIR`, over the old one, and
//! the emptied directory is removed. A process killed before the commit leaves the old checkpoint whole and an
//! unfinished `.checkpoint-new/`, which [`recover`] deletes; one killed after it leaves a `.checkpoint-pending/`
//! whose files [`recover`] moves into place. Either way `DIR` then holds one whole checkpoint, old or new.
//!
//! Each file moves by a rename, so a reader of `DIR` (a Hugging Face loader while training runs) sees every
//! file whole, old or new: `config.json` and `model.safetensors` match as long as a run keeps its config.

use crate::error::{Error, Result};
use crate::train::atomic::{crash_point, sync_dir};
use std::fs;
use std::path::Path;

/// Where the files of a checkpoint are written.
const STAGING: &str = ".checkpoint-new";
/// What [`STAGING`] is renamed to once it holds every file: the checkpoint is committed.
const PENDING: &str = ".checkpoint-pending";

/// Replaces files of `dir` as one unit with those `write` creates in the directory it is given (the same
/// names as in `dir`). If `write` fails, the files written so far are removed and `dir` is left as it was.
pub(crate) fn write_set(dir: &Path, write: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let (staging, pending) = (dir.join(STAGING), dir.join(PENDING));
    // an error here leaves alone a staging directory this call did not make
    fs::create_dir(&staging).map_err(Error::io(&staging))?;
    let staged = write(&staging).and_then(|()| {
        sync_dir(&staging);
        crash_point();
        fs::rename(&staging, &pending).map_err(Error::io(&pending))
    });
    if staged.is_err() {
        // best effort: what is left is deleted by the next `recover`
        let _ = fs::remove_dir_all(&staging);
        return staged;
    }
    sync_dir(dir);
    roll_forward(dir, &pending)
}

/// Makes `dir` hold one whole checkpoint after a process was killed while writing one: finishes a committed
/// set's moves, deletes an uncommitted one. Does nothing where no write was under way.
pub(crate) fn recover(dir: &Path) -> Result<()> {
    let pending = dir.join(PENDING);
    // not through a link: its target's files would be moved into `dir`
    let meta = fs::symlink_metadata(&pending);
    if meta.as_ref().is_ok_and(|m| m.file_type().is_symlink()) {
        return Err(Error::format(
            &pending,
            "is a link where primer keeps a checkpoint being written: remove it",
        ));
    }
    if meta.is_ok_and(|m| m.is_dir()) {
        roll_forward(dir, &pending)?;
    }
    let staging = dir.join(STAGING);
    if staging.exists() {
        fs::remove_dir_all(&staging).map_err(Error::io(&staging))?;
    }
    Ok(())
}

/// Renames every file of the committed set `pending` into `dir` (in name order), then removes `pending`.
fn roll_forward(dir: &Path, pending: &Path) -> Result<()> {
    let mut names = Vec::new();
    for entry in fs::read_dir(pending).map_err(Error::io(pending))? {
        names.push(entry.map_err(Error::io(pending))?.file_name());
    }
    names.sort();
    for name in names {
        crash_point();
        let to = dir.join(&name);
        fs::rename(pending.join(&name), &to).map_err(Error::io(&to))?;
    }
    sync_dir(dir);
    crash_point();
    fs::remove_dir(pending).map_err(Error::io(pending))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{crash_after, file_names, scratch_dir, Scratch};

    /// A directory holding `a` and `b` with `old` in them.
    fn old_set(name: &str) -> Scratch {
        let dir = scratch_dir("journal", name);
        for f in ["a", "b"] {
            fs::write(dir.join(f), format!("old {f}")).unwrap();
        }
        dir
    }

    /// Writes `a` and `b` with `new` in them as one set.
    fn write_new(dir: &Path) -> Result<()> {
        write_set(dir, |d| {
            for f in ["a", "b"] {
                crate::train::atomic::write_atomic(&d.join(f), format!("new {f}").as_bytes())?;
            }
            Ok(())
        })
    }

    fn contents(dir: &Path) -> Vec<String> {
        ["a", "b"]
            .map(|f| fs::read_to_string(dir.join(f)).unwrap())
            .to_vec()
    }

    #[test]
    fn a_crash_anywhere_leaves_the_old_set_or_the_new_one() {
        let mut seen = Vec::new();
        for n in 0.. {
            let dir = old_set(&format!("crash{n}"));
            crash_after(Some(n));
            let run = std::panic::catch_unwind(|| write_new(&dir));
            crash_after(None);
            let crashed = run.is_err();
            recover(&dir).unwrap();
            assert_eq!(file_names(&dir), ["a", "b"], "crash at point {n}");
            let got = contents(&dir);
            assert!(
                got == ["old a", "old b"] || got == ["new a", "new b"],
                "crash at point {n}: {got:?}"
            );
            seen.push(got[0].clone());
            if !crashed {
                break;
            }
        }
        // two files: each written (2), the commit, each moved (2), the directory removed; then no crash
        assert_eq!(
            seen,
            ["old a", "old a", "old a", "new a", "new a", "new a", "new a"]
        );
    }

    #[test]
    fn a_failed_write_leaves_nothing_behind() {
        let dir = old_set("fail");
        let err = write_set(&dir, |d| {
            fs::write(d.join("a"), "half").unwrap();
            Err(Error::Config("disk full".into()))
        })
        .unwrap_err();
        assert!(err.to_string().contains("disk full"));
        assert_eq!(file_names(&dir), ["a", "b"]);
        assert_eq!(contents(&dir), ["old a", "old b"]);
    }

    #[test]
    fn recover_finishes_a_half_moved_set_and_deletes_an_unfinished_one() {
        let dir = old_set("half");
        // committed, `a` already moved: `b` follows
        fs::create_dir(dir.join(PENDING)).unwrap();
        fs::write(dir.join("a"), "new a").unwrap();
        fs::write(dir.join(PENDING).join("b"), "new b").unwrap();
        // a set begun after it (as no run does) and left unfinished, with a temporary file in it
        fs::create_dir(dir.join(STAGING)).unwrap();
        fs::write(dir.join(STAGING).join(".a.tmp-1-0"), "n").unwrap();
        recover(&dir).unwrap();
        assert_eq!(file_names(&dir), ["a", "b"]);
        assert_eq!(contents(&dir), ["new a", "new b"]);
        // a directory that needs nothing is left alone
        recover(&dir).unwrap();
        assert_eq!(contents(&dir), ["new a", "new b"]);
    }

    /// A staging directory this write did not make (another process's, where the lock could not be taken) is
    /// left alone when the write is refused; a link where the pending set goes is refused, not followed.
    #[test]
    fn another_writers_staging_and_a_linked_pending_set_are_left_alone() {
        let dir = old_set("foreign");
        fs::create_dir(dir.join(STAGING)).unwrap();
        fs::write(dir.join(STAGING).join("a"), "theirs").unwrap();
        assert!(write_new(&dir).is_err());
        assert_eq!(
            fs::read_to_string(dir.join(STAGING).join("a")).unwrap(),
            "theirs"
        );
        assert_eq!(contents(&dir), ["old a", "old b"]);

        #[cfg(unix)]
        {
            let elsewhere = old_set("foreign-target");
            fs::remove_dir_all(dir.join(STAGING)).unwrap();
            std::os::unix::fs::symlink(&elsewhere, dir.join(PENDING)).unwrap();
            let e = recover(&dir).unwrap_err().to_string();
            assert!(e.contains(PENDING) && e.contains("link"), "{e}");
            assert_eq!(
                file_names(&elsewhere),
                ["a", "b"],
                "the link's target is untouched"
            );
        }
    }
}
