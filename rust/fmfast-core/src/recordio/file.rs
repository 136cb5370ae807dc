//! Files: inputs opened and read so that a failure names them, and outputs that appear whole or
//! not at all (written to a temporary file beside the target, locked while written, and renamed
//! over it on commit; dropped uncommitted, the temporary file is removed).

use std::fs::File;
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use tempfile::NamedTempFile;

use crate::error::{Error, Result};
use crate::memory::zeroed_in_parallel;
use rayon::prelude::*;

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
        // Held until the file is committed or dropped: it tells the cleaners of stale temporaries
        // (`fmfast._atomic`) that a live writer owns this file.
        lock_exclusive(temp.as_file()).map_err(Error::file(&target))?;
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

/// Bytes read by one task when a file is read in parallel.
const READ_CHUNK: usize = 4 << 20;

/// Everything the file at `path` holds, read to its end; errors name it. Read rather than mapped: a mapped file that another
/// process truncates kills the reader with SIGBUS, where a read just ends early (and the decoder
/// then reports the cut record). Read to the end rather than to the length the file reports, which
/// is 0 for pipes and FIFOs and may be stale: that length only says what to read in parallel (the
/// page faults and copies of hundreds of MB take one core a good part of decoding's time).
pub fn read_input(path: &Path) -> Result<Vec<u8>> {
    read_whole(&open_input(path)?).map_err(Error::file(path))
}

/// Everything `file` holds; see [`read_input`].
fn read_whole(file: &File) -> io::Result<Vec<u8>> {
    let announced = usize::try_from(file.metadata()?.len()).unwrap_or(0);
    let mut bytes = Vec::new();
    // One more byte than announced, so that reaching the end costs no regrowth.
    if announced > 0 && bytes.try_reserve_exact(announced.saturating_add(1)).is_ok() {
        let buffer = zeroed_in_parallel(&mut bytes.spare_capacity_mut()[..announced]);
        let got = buffer
            .par_chunks_mut(READ_CHUNK)
            .enumerate()
            .map(|(i, chunk)| read_at(file, chunk, (i * READ_CHUNK) as u64))
            .collect::<std::io::Result<Vec<usize>>>()?;
        // The bytes are the file's up to the first chunk that came up short: the file shrank.
        let whole = got.iter().take_while(|&&n| n == READ_CHUNK).count();
        let valid = whole * READ_CHUNK + got.get(whole).copied().unwrap_or(0);
        // SAFETY: `zeroed_in_parallel` initialised the first `announced` bytes, and `valid` is at
        // most `announced` (a chunk reads no more than its length).
        unsafe { bytes.set_len(valid) };
        if valid < announced {
            return Ok(bytes);
        }
    }
    // What lies past the announced length: all of a pipe (which cannot seek, and needs not: the
    // parallel reads ran only for a length, which pipes do not announce), or what a file gained.
    let mut rest = file;
    if !bytes.is_empty() {
        rest.seek(SeekFrom::Start(bytes.len() as u64))?;
    }
    rest.read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// Fills `buf` from `file` at `offset`; fewer bytes only at the end of the file.
fn read_at(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match positional_read(file, &mut buf[got..], offset + got as u64) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

#[cfg(unix)]
fn positional_read(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
    std::os::unix::fs::FileExt::read_at(file, buf, offset)
}

#[cfg(windows)]
fn positional_read(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
    std::os::windows::fs::FileExt::seek_read(file, buf, offset)
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

    #[test]
    #[cfg_attr(miri, ignore = "too slow for miri: needs several READ_CHUNK chunks")]
    fn a_file_is_read_whole_past_its_parallel_chunks() {
        let data: Vec<u8> = (0..3 * READ_CHUNK as u32 + 12_345).map(|i| (i % 251) as u8).collect();
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(&data).unwrap();
        assert_eq!(read_whole(&file).unwrap(), data);
        file.set_len(0).unwrap();
        assert_eq!(read_whole(&file).unwrap(), b"");
    }
}
