//! The one error type of the core: every fallible function returns [`Result`].

use std::io;
use std::path::{Path, PathBuf};

/// Where in a RecordIO stream something went wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    /// Zero-based index of the record.
    pub record: u64,
    /// Byte offset of the record's header from the start of the stream.
    pub offset: u64,
}

/// Everything that can go wrong in the core.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Caller-supplied arrays or arguments are inconsistent or out of range.
    #[error("{0}")]
    InvalidInput(String),
    /// A RecordIO stream is truncated, corrupt or not something fmfast can decode.
    #[error("record {} at byte offset {}: {message}", .position.record, .position.offset)]
    RecordIO { position: Position, message: String },
    /// A line of a text input (libSVM, CSV) could not be parsed.
    #[error("line {line}: {message}")]
    Parse { line: u64, message: String },
    /// Training produced a non-finite prediction, loss or weight.
    #[error("training diverged in epoch {epoch}, mini-batch {batch}: {what} is not finite; lower the learning rates or set clip_gradient")]
    Diverged { epoch: u64, batch: u64, what: String },
    /// The caller asked to stop (Ctrl-C) between two chunks of work.
    #[error("interrupted")]
    Interrupted,
    /// The operating system refused a read or a write.
    #[error(transparent)]
    Io(#[from] io::Error),
    /// The operating system refused to open, create or replace the file at `path`.
    #[error("{}: {source}", .path.display())]
    File { path: PathBuf, source: io::Error },
}

impl Error {
    /// Shorthand for [`Error::InvalidInput`].
    pub fn invalid(message: impl Into<String>) -> Self {
        Error::InvalidInput(message.into())
    }

    /// Shorthand for [`Error::RecordIO`].
    pub fn recordio(record: u64, offset: u64, message: impl Into<String>) -> Self {
        Error::RecordIO {
            position: Position { record, offset },
            message: message.into(),
        }
    }

    /// [`Error::File`] for `path`, to name the file an I/O error is about:
    /// `File::open(path).map_err(Error::file(path))`.
    pub fn file(path: &Path) -> impl FnOnce(io::Error) -> Error + '_ {
        move |source| Error::File {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// The core's result type.
pub type Result<T> = std::result::Result<T, Error>;
