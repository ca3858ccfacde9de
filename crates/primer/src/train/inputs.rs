//! The files a pretraining run reads and records (its corpus, BERT's validation corpus and tokenizer): checked
//! before the run writes anything, and on `--resume` compared as files rather than as spellings of a path.

use crate::error::{Error, Result};
use crate::progress::ReadingBar;
use crate::train::checkpoint::absolute;
use std::path::Path;

/// Refuses a path the run could not record: the run saves the absolute path of its inputs in its JSON files
/// (`trainer_state.json`, `train_config.json`), which hold UTF-8 text only, so a name with other bytes would
/// fail only at the first checkpoint, after the run had written its first files.
pub(crate) fn check_recordable(path: &Path) -> Result<()> {
    if absolute(path).to_str().is_some() {
        return Ok(());
    }
    Err(Error::format(
        path,
        "the path is not valid UTF-8, and the run records it in its JSON files, which hold UTF-8 text only: \
         rename the file (or link to it under a UTF-8 name)",
    ))
}

/// Refuses an input the run cannot read, before it writes anything: anything but a regular file (a pipe, a
/// FIFO, `/dev/stdin` on a pipe, `<(…)`, a directory), since an input is read more than once (a pipe gives its
/// text once, and a FIFO blocks forever on the second open); and on `resume`, a file that is no longer where
/// the run recorded it, with the hint to give `flag` (`--corpus`) where it is now. A missing file on a fresh run
/// is left to the reader, which names it.
pub(crate) fn check_readable(path: &Path, flag: &str, resume: bool) -> Result<()> {
    match std::fs::metadata(path) {
        Ok(m) if m.is_file() => Ok(()),
        Ok(m) if m.is_dir() => Err(Error::format(
            path,
            format!("is a directory: {flag} names a text file"),
        )),
        Ok(_) => Err(Error::format(
            path,
            format!(
                "is not a regular file (a pipe, FIFO or device, such as /dev/stdin or <(…)): {flag} is read \
                 more than once, so save it to a file first (`cat … > corpus.txt`) and pass that"
            ),
        )),
        Err(e) if resume && e.kind() == std::io::ErrorKind::NotFound => Err(Error::format(
            path,
            format!(
                "no such file: the run's {} is no longer there; pass {flag} with where it is now",
                flag.trim_start_matches('-')
            ),
        )),
        Err(e) => Err(Error::io(path)(e)),
    }
}

/// Refuses to resume the run in `out` on `file` (its `what`, `bytes` long now) when it had `started` bytes when
/// the run started: a resumed run reads its text again, and would otherwise go on with other data.
pub(crate) fn check_unchanged(
    file: &Path,
    what: &str,
    bytes: u64,
    (started, started_crc): (Option<u64>, Option<u32>),
    out: &Path,
) -> Result<()> {
    let keep = format!(
        "a resumed run keeps its {what} as it was (start a new run to use the changed one)"
    );
    match started {
        Some(started) if started != bytes => Err(Error::format(
            file,
            format!(
                "is {bytes} bytes, but the run in {} started on {started} bytes: {keep}",
                out.display(),
            ),
        )),
        // the CRC is read only when the sizes agree
        Some(_) if started_crc.is_some() && started_crc != Some(content_crc(file)?) => Err(Error::format(
            file,
            format!(
                "has other bytes than when the run in {} started, at the same size ({bytes} bytes): {keep}",
                out.display(),
            ),
        )),
        _ => Ok(()),
    }
}

/// The CRC-32 of a file's bytes, to tell a file from another of the same size.
pub(crate) fn content_crc(path: &Path) -> Result<u32> {
    let mut crc = crc32fast::Hasher::new();
    crc_update(&mut crc, path)?;
    Ok(crc.finalize())
}

/// Feeds a file's bytes to `crc`, read in pieces (a corpus may be larger than memory); returns their number.
pub(crate) fn crc_update(crc: &mut crc32fast::Hasher, path: &Path) -> Result<u64> {
    use std::io::Read;
    let mut file = std::fs::File::open(path).map_err(Error::io(path))?;
    let bar = ReadingBar::over_file("checksumming", path)?;
    let mut buf = vec![0u8; 1 << 20];
    let mut bytes = 0u64;
    loop {
        let n = file.read(&mut buf).map_err(Error::io(path))?;
        if n == 0 {
            return Ok(bytes);
        }
        crc.update(&buf[..n]);
        bytes += n as u64;
        bar.advance(n as u64);
    }
}

/// Whether `given`, on `--resume`, names the input the run recorded as `saved`: the same path, or the same
/// file by another name (relative to the working directory, through `./` or a link), or any file when the saved
/// one is no longer there (it has moved).
pub fn same_input(saved: &Path, given: &Path) -> bool {
    !saved.exists() || same_file(saved, given)
}

/// Whether two paths name one file: the same spelling, the same absolute path, or the same file by another name
/// (through `./`, `..` or a link).
pub(crate) fn same_file(a: &Path, b: &Path) -> bool {
    a == b
        || absolute(a) == absolute(b)
        || matches!((a.canonicalize(), b.canonicalize()), (Ok(x), Ok(y)) if x == y)
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use crate::testutil::scratch_dir;
    use std::os::unix::ffi::OsStrExt;

    #[test]
    fn only_regular_files_with_utf8_names_are_inputs() {
        let d = scratch_dir("inputs", "kinds");
        let file = d.join("c.txt");
        std::fs::write(&file, "text\n").unwrap();
        assert!(check_readable(&file, "--corpus", false).is_ok());
        assert!(check_recordable(&file).is_ok());
        let e = check_readable(&d, "--corpus", false)
            .unwrap_err()
            .to_string();
        assert!(e.contains("is a directory"), "{e}");
        // a FIFO is refused without opening it (opening one blocks until a writer comes)
        let fifo = d.join("ff");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        let e = check_readable(&fifo, "--val-corpus", false)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("ff: is not a regular file")
                && e.contains("--val-corpus is read more than once"),
            "{e}"
        );
        let e = check_readable(Path::new("/dev/null"), "--corpus", false).unwrap_err();
        assert!(e.to_string().contains("save it to a file first"), "{e}");
        // missing: named by the reader on a fresh run, with the flag to pass on a resumed one
        let gone = d.join("gone.txt");
        let e = check_readable(&gone, "--corpus", false).unwrap_err();
        assert!(e.to_string().contains("No such file"), "{e}");
        let e = check_readable(&gone, "--val-corpus", true).unwrap_err();
        assert!(
            e.to_string().contains(
                "the run's val-corpus is no longer there; pass --val-corpus with where it is now"
            ),
            "{e}"
        );
        let bad = d.join(std::ffi::OsStr::from_bytes(b"bad\xffname.txt"));
        let e = check_recordable(&bad).unwrap_err().to_string();
        assert!(e.contains("not valid UTF-8") && e.contains("bad"), "{e}");
    }

    #[test]
    fn the_same_file_by_another_name_is_the_same_input() {
        let d = scratch_dir("inputs", "same");
        let (a, b) = (d.join("a.txt"), d.join("b.txt"));
        std::fs::write(&a, "a\n").unwrap();
        std::fs::write(&b, "b\n").unwrap();
        assert!(same_input(&a, &d.join(".").join("a.txt")));
        std::os::unix::fs::symlink(&a, d.join("link.txt")).unwrap();
        assert!(same_input(&a, &d.join("link.txt")));
        assert!(!same_input(&a, &b));
        // a saved input that has moved may be named where it is now
        assert!(same_input(&d.join("moved.txt"), &b));
    }
}
