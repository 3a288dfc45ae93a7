//! Replacing a file so that a crash leaves the old content or the new, never half of either.
//!
//! Invariants, in the order [`replace`] keeps them:
//! 1. The new content goes to a temporary file beside the target ([`temp_path`]: same
//!    directory, so the rename below never crosses a file system), through a buffered writer.
//! 2. The temporary file is flushed and `fsync`ed before it is renamed: after the rename its
//!    data is on disk, not only its name.
//! 3. `rename(2)` over the target is atomic: a reader (or the next start) sees the old file or
//!    the new one.
//! 4. The directory is `fsync`ed after the rename, so the new name survives a power loss.
//!
//! A crash before step 3 leaves a stray temporary file and the old target untouched; the next
//! [`replace`] truncates it, and [`remove_stray_temp`] deletes it at start. A failed step
//! removes the temporary file (best effort) and leaves the target as it was.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

/// Buffer of the writer into the temporary file: big enough that a state of a few MiB is a few
/// hundred `write(2)` calls, small next to the agent's heap.
const WRITE_BUFFER: usize = 64 * 1024;

/// A step of [`replace`] or [`remove_stray_temp`] failed.
#[derive(Debug, thiserror::Error)]
#[error("{op} {}: {source}", path.display())]
pub struct FileError {
    /// What was being done (`creating`, `writing`, `syncing`, `renaming into place`, ...).
    pub op: &'static str,
    /// The file or directory it was done to.
    pub path: PathBuf,
    /// The operating system's error.
    #[source]
    pub source: io::Error,
}

impl FileError {
    /// The error of `op` on `path`, for `map_err`.
    fn new(op: &'static str, path: &Path) -> impl FnOnce(io::Error) -> FileError {
        let path = path.to_path_buf();
        move |source| FileError { op, path, source }
    }
}

/// The temporary file [`replace`] writes before renaming it to `path`: `path` with `.tmp`
/// appended to its file name.
pub fn temp_path(path: &Path) -> PathBuf {
    let mut name = path
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(".tmp");
    path.with_file_name(name)
}

/// Writes `path` anew with what `write` writes (see the module's invariants). Returns the
/// bytes written. On an error the target is unchanged and the temporary file is removed.
///
/// # Errors
/// `write` failing, or any step of the file system's, naming the file.
pub fn replace(
    path: &Path,
    write: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> Result<u64, FileError> {
    let temp = temp_path(path);
    let written = write_synced(&temp, write);
    let result = written.and_then(|len| {
        std::fs::rename(&temp, path).map_err(FileError::new("renaming into place", &temp))?;
        sync_directory(path)?;
        Ok(len)
    });
    if result.is_err() {
        // Best effort: after a failed rename the temporary file may still be there.
        let _ = std::fs::remove_file(&temp);
    }
    result
}

/// Steps 1 and 2: the temporary file, written, flushed and synced. Returns its length.
fn write_synced(
    temp: &Path,
    write: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> Result<u64, FileError> {
    let file = File::create(temp).map_err(FileError::new("creating", temp))?;
    let mut out = BufWriter::with_capacity(WRITE_BUFFER, file);
    write(&mut out).map_err(FileError::new("writing", temp))?;
    let file = out
        .into_inner()
        .map_err(|e| FileError::new("writing", temp)(e.into_error()))?;
    file.sync_all().map_err(FileError::new("syncing", temp))?;
    let len = file
        .metadata()
        .map_err(FileError::new("reading the size of", temp))?;
    Ok(len.len())
}

/// Step 4: the directory holding `path`, synced so that the rename is durable.
fn sync_directory(path: &Path) -> Result<(), FileError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(FileError::new("syncing the directory", dir))
}

/// Deletes the temporary file a crash during [`replace`] left beside `path`. Returns whether
/// there was one.
///
/// # Errors
/// The file exists and cannot be removed.
pub fn remove_stray_temp(path: &Path) -> Result<bool, FileError> {
    let temp = temp_path(path);
    match std::fs::remove_file(&temp) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(FileError::new("removing", &temp)(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replace_writes_the_new_content_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("state.json");
        std::fs::write(&path, b"old").expect("old");
        let len = replace(&path, |w| w.write_all(b"new content")).expect("replaced");
        assert_eq!(len, 11);
        assert_eq!(std::fs::read(&path).expect("read"), b"new content");
        assert!(!temp_path(&path).exists());
    }

    #[test]
    fn a_failing_writer_leaves_the_old_file_and_no_temporary_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("state.json");
        std::fs::write(&path, b"old").expect("old");
        let err = replace(&path, |w| {
            w.write_all(b"half")?;
            Err(io::Error::other("encoder failed"))
        })
        .expect_err("fails");
        assert_eq!(err.op, "writing");
        assert_eq!(err.path, temp_path(&path));
        assert_eq!(std::fs::read(&path).expect("read"), b"old");
        assert!(!temp_path(&path).exists());
    }

    #[test]
    fn a_directory_that_does_not_exist_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("missing").join("state.json");
        let err = replace(&path, |w| w.write_all(b"x")).expect_err("fails");
        assert_eq!(err.op, "creating");
        assert!(err.to_string().contains("state.json.tmp"), "{err}");
    }

    #[test]
    fn a_stray_temporary_file_is_removed_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("state.json");
        std::fs::write(temp_path(&path), b"half written").expect("stray");
        assert!(remove_stray_temp(&path).expect("removed"));
        assert!(!temp_path(&path).exists());
        assert!(!remove_stray_temp(&path).expect("nothing to remove"));
    }
}
