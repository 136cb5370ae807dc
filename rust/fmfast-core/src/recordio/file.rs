//! Output files that appear whole or not at all: written to a temporary file beside the target
//! and renamed over it on commit; dropped uncommitted, the temporary file is removed.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use tempfile::NamedTempFile;

use crate::error::Result;

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
            .tempfile_in(dir)?;
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
        temp.persist(&self.target).map_err(|e| e.error)?;
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
