//! Files: output files that appear whole or not at all (written to a temporary file beside the
//! target, locked while written, and renamed over it on commit; dropped uncommitted, the temporary
//! file is removed), and whole input files read into memory.

use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use tempfile::NamedTempFile;

use crate::error::Result;
use crate::memory::advise_huge_pages;

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
        // Held until the file is committed or dropped: it tells the cleaners of stale temporaries
        // (`fmfast._atomic`) that a live writer owns this file.
        lock_exclusive(temp.as_file())?;
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

/// Takes an exclusive `flock` on `file`, released when it is closed.
#[cfg(unix)]
fn lock_exclusive(file: &std::fs::File) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: the descriptor stays open while `file` is borrowed, and flock touches no memory.
    match unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } {
        0 => Ok(()),
        _ => Err(std::io::Error::last_os_error()),
    }
}

/// Nothing to do where there is no `flock` (and no cleaner relying on it).
#[cfg(not(unix))]
fn lock_exclusive(_file: &std::fs::File) -> std::io::Result<()> {
    Ok(())
}

/// Everything `file` holds, read to its end. Read rather than mapped: a mapped file that another
/// process truncates kills the reader with SIGBUS, where a read just ends early (and the decoder
/// then reports the cut record). Read to the end rather than to the length the file reports, which
/// is 0 for pipes and FIFOs and may be stale: that length only sizes the first allocation.
pub fn read_whole(mut file: impl Read, size_hint: u64) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    if let Ok(hint) = usize::try_from(size_hint) {
        // One more byte than the hint, so that reaching the end costs no regrowth.
        if bytes.try_reserve_exact(hint.saturating_add(1)).is_ok() {
            advise_huge_pages(bytes.spare_capacity_mut());
        }
    }
    file.read_to_end(&mut bytes)?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_whole_stream_is_read_whatever_length_was_announced() {
        let data: Vec<u8> = (0..100_000u32).map(|i| i as u8).collect();
        for hint in [0, 10, 100_000, 1 << 40, u64::MAX] {
            assert_eq!(read_whole(&data[..], hint).unwrap(), data, "hint {hint}");
        }
    }
}
