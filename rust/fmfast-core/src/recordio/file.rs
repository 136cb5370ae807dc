//! Files: inputs opened so that a failure names them, and outputs that appear whole or not at
//! all (written to a temporary file beside the target and renamed over it on commit; dropped
//! uncommitted, the temporary file is removed).

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use tempfile::NamedTempFile;

use crate::error::{Error, Result};

/// Opens the file at `path` for reading; errors name it. A directory is refused here: the OS
/// opens one for reading and fails only at the first read, where the error no longer knows `path`.
pub fn open_input(path: &Path) -> Result<File> {
    let file = File::open(path).map_err(Error::file(path))?;
    if file.metadata().map_err(Error::file(path))?.is_dir() {
        return Err(Error::file(path)(io::ErrorKind::IsADirectory.into()));
    }
    Ok(file)
}

/// A file being written atomically. Writes of 64 KiB or more go straight to the file.
pub struct AtomicFile {
    target: PathBuf,
    writer: BufWriter<NamedTempFile>,
}

impl AtomicFile {
    /// Starts writing what will become `target`.
    pub fn create(target: impl AsRef<Path>) -> Result<Self> {
        let target = target.as_ref().to_path_buf();
        let dir = match target.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let temp = tempfile::Builder::new()
            .prefix(".fmfast-")
            .suffix(".tmp")
            .tempfile_in(dir)
            .map_err(Error::file(&target))?;
        Ok(AtomicFile {
            target,
            writer: BufWriter::with_capacity(64 << 10, temp),
        })
    }

    /// Writes `target` with `write`: the file appears only when `write` succeeds and it commits.
    pub fn write_with<T>(target: impl AsRef<Path>, write: impl FnOnce(&mut Self) -> Result<T>) -> Result<T> {
        let mut out = AtomicFile::create(target)?;
        let value = write(&mut out)?;
        out.commit()?;
        Ok(value)
    }

    /// Flushes and renames the temporary file over the target. Like `cp`, it does not fsync:
    /// readers never see a partial file, but durability across power loss is the OS's.
    pub fn commit(self) -> Result<()> {
        let temp = self.writer.into_inner().map_err(|e| e.into_error())?;
        temp.persist(&self.target)
            .map_err(|e| Error::file(&self.target)(e.error))?;
        Ok(())
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.writer.write(buf)
    }

    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.writer.write_all(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.writer.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The path and kind of an [`Error::File`], for asserting on.
    fn file_error(err: Error) -> (PathBuf, io::ErrorKind) {
        match err {
            Error::File { path, source } => (path, source.kind()),
            other => panic!("expected Error::File, got {other:?}"),
        }
    }

    #[test]
    fn inputs_that_cannot_be_read_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.recordio");
        let err = open_input(&missing).unwrap_err();
        assert!(err.to_string().starts_with(&missing.display().to_string()), "{err}");
        assert_eq!(file_error(err), (missing, io::ErrorKind::NotFound));
        let err = open_input(dir.path()).unwrap_err();
        assert_eq!(file_error(err), (dir.path().to_path_buf(), io::ErrorKind::IsADirectory));
    }

    #[test]
    fn outputs_that_cannot_be_created_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("no-such-dir").join("out.recordio");
        let err = AtomicFile::create(&target).err().unwrap();
        assert_eq!(file_error(err), (target, io::ErrorKind::NotFound));
        let mut over_a_directory = AtomicFile::create(dir.path()).unwrap();
        over_a_directory.write_all(b"x").unwrap();
        let err = over_a_directory.commit().unwrap_err();
        assert_eq!(file_error(err).0, dir.path());
    }
}
