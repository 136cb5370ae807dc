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

/// A file being written atomically, streamed to the disk as it is written.
///
/// On Linux the bytes go to the disk without the page cache (`O_DIRECT`), a [`BLOCK`] at a time
/// from a buffer of our own: the kernel then copies nothing and reclaims no pages, so writing costs
/// wall time but almost no CPU (2 GiB with `write()`: 3.5 s of system time; with `O_DIRECT`: 0.11 s,
/// `docs/benchmarks.md`). Direct I/O writes only whole blocks at aligned offsets, from aligned
/// memory: the last, partial block is written through the page cache, so every file, of any size,
/// is byte for byte what was written, and a file smaller than a block never uses direct I/O.
///
/// Where the file system refuses direct I/O (`EINVAL`: tmpfs before Linux 6.6, some network and
/// overlay file systems, alignments larger than 4096), and on other systems, the file is written
/// through the page cache, streamed: each [`WRITEBACK_WINDOW`] written is handed to the disk at
/// once, and the window two behind it, written by then, is dropped from the page cache. Left to the
/// kernel, a file of gigabytes fills the page cache with dirty pages, each taken from memory that
/// must first be reclaimed (on a VM, backed by the host), and the writer is throttled once too many
/// are dirty: writing 1 GB took 1.8 s of system time that way, against 0.3 s streamed. The file then
/// costs the page cache two windows. Writes of 64 KiB or more go straight to the file.
pub struct AtomicFile {
    target: PathBuf,
    writer: BufWriter<NamedTempFile>,
    /// Bytes handed to `writer` so far.
    written: u64,
    /// The blocks of the file while it is written directly; `None` once it is written through
    /// `writer` (every byte before then went out in whole blocks).
    direct: Option<direct::Blocks>,
}

/// Bytes of a file handed to the disk at a time (see [`AtomicFile`]).
pub const WRITEBACK_WINDOW: u64 = 8 << 20;

/// Bytes of a file written directly at a time (see [`AtomicFile`]): a multiple of every logical
/// block size in use (512, 4096), large enough that the disk sees few requests, and small enough
/// that the two blocks a file holds (one written, one filled) cost little memory: with 8 MiB, a
/// 4M-row conversion's peak rose by some 30 MiB more (`tests/recordio/test_convert_table.py`).
pub const BLOCK: usize = 4 << 20;

impl AtomicFile {
    /// Starts writing what will become `target`.
    pub fn create(target: impl AsRef<Path>) -> Result<Self> {
        Self::create_with(target.as_ref(), direct::Block::aligned)
    }

    /// [`AtomicFile::create`], directly through the block that `block` makes, or through the page
    /// cache when it makes none (the tests' way to force either path).
    fn create_with(target: &Path, block: impl FnOnce() -> Option<direct::Block>) -> Result<Self> {
        let target = target.to_path_buf();
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
        // A file system that refuses direct I/O says so here (or at the first block written).
        let direct = match block() {
            Some(block) if direct::set(temp.as_file(), true).is_ok() => {
                Some(direct::Blocks::new(temp.as_file(), block).map_err(Error::file(&target))?)
            }
            _ => None,
        };
        Ok(AtomicFile {
            target,
            writer: BufWriter::with_capacity(64 << 10, temp),
            written: 0,
            direct,
        })
    }

    /// Writes `target` with `write`: the file appears only when `write` succeeds and it commits.
    pub fn write_with<T>(target: impl AsRef<Path>, write: impl FnOnce(&mut Self) -> Result<T>) -> Result<T> {
        let mut out = AtomicFile::create(target)?;
        let value = write(&mut out)?;
        out.commit()?;
        Ok(value)
    }

    /// Writes what is left and renames the temporary file over the target. Like `cp`, it does not
    /// fsync: readers never see a partial file, but durability across power loss is the OS's.
    pub fn commit(mut self) -> Result<()> {
        self.end_direct().map_err(Error::file(&self.target))?;
        let temp = self.writer.into_inner().map_err(|e| e.into_error())?;
        temp.persist(&self.target)
            .map_err(|e| Error::file(&self.target)(e.error))?;
        Ok(())
    }
}

impl AtomicFile {
    /// Copies what fits of `buf` into the direct blocks, which are written as they fill; returns
    /// the bytes taken. Without blocks, takes none.
    fn write_direct(&mut self, buf: &[u8]) -> io::Result<usize> {
        let Some(blocks) = &mut self.direct else {
            return Ok(0);
        };
        let taken = blocks.fill(buf)?;
        if blocks.refused() {
            // Refused part way (file systems may check alignment only when writing): the rest
            // goes through the page cache, as every byte after it.
            self.end_direct()?;
        }
        Ok(taken)
    }

    /// Leaves direct I/O once the write in flight has ended: the bytes not yet written go through
    /// the page cache, and so does everything after them.
    fn end_direct(&mut self) -> io::Result<()> {
        let Some(blocks) = self.direct.take() else {
            return Ok(());
        };
        let rest = blocks.finish()?;
        direct::set(self.writer.get_ref().as_file(), false)?;
        for block in &rest {
            self.writer.write_all(block.unwritten())?;
            self.advance(block.unwritten().len());
        }
        Ok(())
    }

    /// Counts `n` more bytes written, streaming every window that they complete to the disk.
    fn advance(&mut self, n: usize) {
        let before = self.written;
        self.written += n as u64;
        let file = self.writer.get_ref().as_file();
        for end in (before / WRITEBACK_WINDOW + 1..=self.written / WRITEBACK_WINDOW).map(|w| w * WRITEBACK_WINDOW) {
            writeback::start(file, end - WRITEBACK_WINDOW);
            if let Some(old) = end.checked_sub(3 * WRITEBACK_WINDOW) {
                writeback::finish_and_drop(file, old);
            }
        }
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.direct.is_some() {
            return self.write_direct(buf);
        }
        let n = self.writer.write(buf)?;
        self.advance(n);
        Ok(n)
    }

    fn write_all(&mut self, mut buf: &[u8]) -> std::io::Result<()> {
        while self.direct.is_some() && !buf.is_empty() {
            let taken = self.write_direct(buf)?;
            buf = &buf[taken..];
        }
        self.writer.write_all(buf)?;
        self.advance(buf.len());
        Ok(())
    }

    /// Flushes what the page cache path buffers. A partial direct block stays in its buffer until
    /// [`AtomicFile::commit`]: no one reads the temporary file before then.
    fn flush(&mut self) -> std::io::Result<()> {
        self.writer.flush()
    }
}

/// Streaming a file's windows to the disk ([`AtomicFile`]). Both calls are hints: the data is
/// written whether or not they succeed (an error of the disk surfaces as it did without them,
/// that is not at all, since [`AtomicFile::commit`] does not fsync), so their errors are ignored.
#[cfg(target_os = "linux")]
mod writeback {
    use std::fs::File;
    use std::os::fd::AsRawFd;

    use super::WRITEBACK_WINDOW;

    /// Starts writing out the window at `offset`, without waiting.
    pub fn start(file: &File, offset: u64) {
        // SAFETY: the descriptor stays open while `file` is borrowed; sync_file_range touches no
        // memory of ours.
        unsafe {
            libc::sync_file_range(
                file.as_raw_fd(),
                offset as libc::off64_t,
                WRITEBACK_WINDOW as libc::off64_t,
                libc::SYNC_FILE_RANGE_WRITE,
            )
        };
    }

    /// Waits until the window at `offset` is on the disk, then drops it from the page cache
    /// (only clean pages are dropped: hence the wait).
    pub fn finish_and_drop(file: &File, offset: u64) {
        let (fd, start, len) = (
            file.as_raw_fd(),
            offset as libc::off64_t,
            WRITEBACK_WINDOW as libc::off64_t,
        );
        let all = libc::SYNC_FILE_RANGE_WAIT_BEFORE | libc::SYNC_FILE_RANGE_WRITE | libc::SYNC_FILE_RANGE_WAIT_AFTER;
        // SAFETY: as in `start`; posix_fadvise touches no memory of ours either.
        unsafe {
            libc::sync_file_range(fd, start, len, all);
            libc::posix_fadvise(fd, start, len, libc::POSIX_FADV_DONTNEED);
        }
    }
}

/// Elsewhere the page cache is left to the system.
#[cfg(not(target_os = "linux"))]
mod writeback {
    pub fn start(_file: &std::fs::File, _offset: u64) {}
    pub fn finish_and_drop(_file: &std::fs::File, _offset: u64) {}
}

/// Writing without the page cache ([`AtomicFile`]): whole blocks of aligned memory, at aligned
/// offsets of a file opened for direct I/O.
mod direct {
    use std::fs::File;
    use std::io::{self, Write};
    use std::sync::{Arc, Mutex};
    use std::thread::JoinHandle;

    use super::BLOCK;

    /// Alignment of direct I/O's memory, lengths and file offsets: a multiple of every logical
    /// block size in use (512, 4096).
    const ALIGN: usize = 4096;

    /// Bytes a block allocates: room for [`BLOCK`] bytes after any start within [`ALIGN`] bytes
    /// of an aligned address, and the tests' offset past it.
    const CAPACITY: usize = BLOCK + 2 * ALIGN;

    /// The memory of blocks no longer used, for the next ones (at most [`MAX_SPARE`]). Kept
    /// rather than freed: glibc raises its threshold for mapping allocations to the size of any
    /// mapped one freed, and then serves every allocation up to 4 MiB (a batch's CSR arrays) from
    /// its heaps, which hold on to more memory: a 4M-row conversion's peak rose by 20-50 MiB. A
    /// block reused is also not faulted in again for each shard.
    static SPARE: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());

    /// Blocks' memory kept in [`SPARE`] at most: one file's two blocks.
    const MAX_SPARE: usize = 2;

    /// A [`BLOCK`] of memory aligned to [`ALIGN`], filled, then written whole.
    pub struct Block {
        /// `start` bytes up to the aligned address, then the block's bytes. It never grows past
        /// the capacity it was made with, so it never moves.
        bytes: Vec<u8>,
        start: usize,
        /// Bytes past the aligned address where the block starts (0 but in tests).
        offset: usize,
        /// Bytes at the front of the block already in the file.
        written: usize,
    }

    impl Block {
        /// An empty block at an aligned address.
        pub fn aligned() -> Option<Block> {
            Some(Block::at(0))
        }

        /// An empty block `offset` bytes (less than [`ALIGN`]) past an aligned address: the tests'
        /// way to have direct writes refused by the file system.
        pub fn at(offset: usize) -> Block {
            let spare = SPARE.lock().ok().and_then(|mut spare| spare.pop());
            let mut bytes = spare.unwrap_or_else(|| Vec::with_capacity(CAPACITY));
            let start = (ALIGN - bytes.as_ptr().addr() % ALIGN) % ALIGN + offset;
            bytes.clear();
            bytes.resize(start, 0);
            Block {
                bytes,
                start,
                offset,
                written: 0,
            }
        }

        /// A block of no memory, never filled (what [`Blocks::finish`] leaves behind).
        fn empty() -> Block {
            Block {
                bytes: Vec::new(),
                start: 0,
                offset: 0,
                written: 0,
            }
        }

        /// Copies what fits of `buf` into the block; returns the bytes taken.
        pub fn fill(&mut self, buf: &[u8]) -> usize {
            let taken = buf.len().min(BLOCK - self.filled().len());
            self.bytes.extend_from_slice(&buf[..taken]);
            taken
        }

        /// The bytes filled in so far.
        pub fn filled(&self) -> &[u8] {
            &self.bytes[self.start..]
        }

        /// The bytes filled in and not yet in the file.
        pub fn unwritten(&self) -> &[u8] {
            &self.filled()[self.written..]
        }

        /// Whether the block holds a whole [`BLOCK`].
        pub fn is_full(&self) -> bool {
            self.filled().len() == BLOCK
        }

        /// Writes the whole block to `file` (opened for direct I/O, at an aligned offset), and
        /// empties it. Returns `false`, the block holding what is left to write, where the file
        /// system refused (`EINVAL`: a file system that checks alignment only when writing).
        pub fn write_to(&mut self, mut file: &File) -> io::Result<bool> {
            while self.written < self.filled().len() {
                match file.write(&self.bytes[self.start + self.written..]) {
                    Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                    Ok(n) => self.written += n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) if e.raw_os_error() == Some(libc::EINVAL) => return Ok(false),
                    Err(e) => return Err(e),
                }
            }
            self.bytes.truncate(self.start);
            self.written = 0;
            Ok(true)
        }
    }

    impl Drop for Block {
        /// Keeps the block's memory for the next block, unless enough is kept already.
        fn drop(&mut self) {
            let bytes = std::mem::take(&mut self.bytes);
            if bytes.capacity() >= CAPACITY {
                if let Ok(mut spare) = SPARE.lock() {
                    if spare.len() < MAX_SPARE {
                        spare.push(bytes);
                    }
                }
            }
        }
    }

    /// The blocks of a file written directly: each full block is written on a thread of its own
    /// while the next one is filled, so that the disk's time overlaps the caller's work (direct
    /// writes cost the caller no CPU, but wait for the disk). One write at a time, in order.
    pub struct Blocks {
        file: Arc<File>,
        filling: Block,
        /// The write of the block before `filling`, which hands the block back with its outcome.
        writing: Option<JoinHandle<Written>>,
        /// A block the file system refused, holding what it did not write.
        refused: Option<Block>,
    }

    /// A block back from its write, and whether the file system took all of it.
    type Written = (Block, io::Result<bool>);

    impl Blocks {
        /// Blocks like `block`, written to `file` (opened for direct I/O, at offset 0).
        pub fn new(file: &File, block: Block) -> io::Result<Blocks> {
            Ok(Blocks {
                file: Arc::new(file.try_clone()?),
                filling: block,
                writing: None,
                refused: None,
            })
        }

        /// Copies what fits of `buf` into the block being filled; returns the bytes taken. A full
        /// block goes to a thread that writes it, once the one before is written.
        pub fn fill(&mut self, buf: &[u8]) -> io::Result<usize> {
            let taken = self.filling.fill(buf);
            if self.filling.is_full() {
                let next = match self.wait()? {
                    Some(empty) => empty,
                    None if self.refused.is_some() => return Ok(taken),
                    None => Block::at(self.filling.offset),
                };
                let mut full = std::mem::replace(&mut self.filling, next);
                let file = Arc::clone(&self.file);
                let write = move || {
                    let outcome = full.write_to(&file);
                    (full, outcome)
                };
                self.writing = Some(std::thread::Builder::new().name("fmfast-write".into()).spawn(write)?);
            }
            Ok(taken)
        }

        /// Whether the file system refused a block: the file must go on through the page cache.
        pub fn refused(&self) -> bool {
            self.refused.is_some()
        }

        /// Waits for the write in flight; returns its block, emptied, unless it was refused (then
        /// kept in `refused`).
        fn wait(&mut self) -> io::Result<Option<Block>> {
            let Some(writing) = self.writing.take() else {
                return Ok(None);
            };
            let (block, outcome) = writing
                .join()
                .map_err(|_| io::Error::other("the thread writing the file panicked"))?;
            if outcome? {
                return Ok(Some(block));
            }
            self.refused = Some(block);
            Ok(None)
        }

        /// Waits for the write in flight, and returns the blocks whose bytes are still to be
        /// written, in order: a refused one's rest, then the one being filled.
        pub fn finish(mut self) -> io::Result<Vec<Block>> {
            self.wait()?;
            let filling = std::mem::replace(&mut self.filling, Block::empty());
            Ok(self.refused.take().into_iter().chain([filling]).collect())
        }
    }

    impl Drop for Blocks {
        /// A file dropped uncommitted waits for its last write (its result no longer matters).
        fn drop(&mut self) {
            if let Some(writing) = self.writing.take() {
                let _ = writing.join();
            }
        }
    }

    /// Turns direct I/O on or off for `file`; an error where the file system refuses it.
    #[cfg(all(target_os = "linux", not(miri)))]
    pub fn set(file: &File, on: bool) -> io::Result<()> {
        use std::os::fd::AsRawFd;

        let fd = file.as_raw_fd();
        // SAFETY: the descriptor stays open while `file` is borrowed; F_GETFL and F_SETFL read and
        // set its status flags and touch no memory of ours.
        let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
        if flags < 0 {
            return Err(io::Error::last_os_error());
        }
        let flags = if on {
            flags | libc::O_DIRECT
        } else {
            flags & !libc::O_DIRECT
        };
        // SAFETY: as above.
        match unsafe { libc::fcntl(fd, libc::F_SETFL, flags) } {
            0 => Ok(()),
            _ => Err(io::Error::last_os_error()),
        }
    }

    /// Elsewhere (and under miri, which has no direct I/O), files go through the page cache.
    #[cfg(not(all(target_os = "linux", not(miri))))]
    pub fn set(_file: &File, _on: bool) -> io::Result<()> {
        Err(io::ErrorKind::Unsupported.into())
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
    #[cfg_attr(miri, ignore = "too slow for miri: writes several windows")]
    fn a_file_streamed_out_window_by_window_keeps_every_byte() {
        let dir = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..4 * WRITEBACK_WINDOW as u32 + 777)
            .map(|i| (i % 253) as u8)
            .collect();
        let target = dir.path().join("out.recordio");
        let mut out = AtomicFile::create_with(&target, || None).unwrap();
        // Pieces small and large, so that windows end inside the buffer and inside a big write.
        let mut rest = &data[..];
        for size in [1usize, 70_000, 5 << 20, 3, 9 << 20].iter().cycle() {
            let (head, tail) = rest.split_at((*size).min(rest.len()));
            out.write_all(head).unwrap();
            rest = tail;
            if rest.is_empty() {
                break;
            }
        }
        assert_eq!(out.written, data.len() as u64);
        out.commit().unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), data);
        // Aborted after its windows went out, the file leaves nothing behind.
        let mut dropped = AtomicFile::create_with(&dir.path().join("dropped.recordio"), || None).unwrap();
        dropped.write_all(&data).unwrap();
        drop(dropped);
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["out.recordio"]);
    }

    /// How a test makes the block of an [`AtomicFile`] (see [`AtomicFile::create_with`]).
    type MakeBlock = fn() -> Option<direct::Block>;

    /// Bytes `0, 1, ..., 250, 0, 1, ...`: no block of them repeats the one before.
    fn numbered(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i % 251) as u8).collect()
    }

    /// Writes `data` through `out`, in pieces of cycling sizes (by `write` and `write_all`), so
    /// that blocks end inside pieces and pieces span blocks.
    fn write_in_pieces(out: &mut AtomicFile, data: &[u8]) {
        let mut rest = data;
        for (i, size) in [1usize, 4095, 70_000, BLOCK + 3, 5 << 20].iter().cycle().enumerate() {
            if rest.is_empty() {
                break;
            }
            let head = &rest[..(*size).min(rest.len())];
            let n = if i % 2 == 0 {
                out.write(head).unwrap()
            } else {
                out.write_all(head).map(|()| head.len()).unwrap()
            };
            rest = &rest[n..];
        }
    }

    #[test]
    #[cfg_attr(miri, ignore = "too slow for miri: writes blocks of 4 MiB")]
    fn every_path_writes_every_byte_around_the_block_bounds() {
        let dir = tempfile::tempdir().unwrap();
        // Whether this file system takes direct I/O: then the aligned block must keep it.
        let supported = direct::set(&tempfile::tempfile_in(dir.path()).unwrap(), true).is_ok();
        let paths: [(&str, MakeBlock); 3] = [
            ("direct", direct::Block::aligned),
            // Memory one byte off: file systems that check alignment (ext4, xfs) refuse the first
            // block with EINVAL, and the file goes on through the page cache from there.
            ("refused at the first block", || Some(direct::Block::at(1))),
            ("page cache", || None),
        ];
        let sizes = [0, 1, 4095, 4096, 4097, BLOCK - 1, BLOCK, BLOCK + 1, 2 * BLOCK + 4097];
        for (name, block) in paths {
            for size in sizes {
                let data = numbered(size);
                let target = dir.path().join(format!("{size}.recordio"));
                let mut out = AtomicFile::create_with(&target, block).unwrap();
                write_in_pieces(&mut out, &data);
                if name == "direct" && supported {
                    assert!(out.direct.is_some(), "{size} bytes left direct I/O");
                }
                out.commit().unwrap();
                assert!(std::fs::read(&target).unwrap() == data, "{name}, {size} bytes differ");
                // Dropped uncommitted, part way through a block, the file leaves nothing behind.
                let mut dropped = AtomicFile::create_with(&dir.path().join("dropped"), block).unwrap();
                write_in_pieces(&mut dropped, &data);
                drop(dropped);
                std::fs::remove_file(&target).unwrap();
                assert_eq!(
                    std::fs::read_dir(dir.path()).unwrap().count(),
                    0,
                    "{name}, {size} bytes"
                );
            }
        }
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
