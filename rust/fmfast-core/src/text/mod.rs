//! Streaming parsers of text inputs (libSVM/libFM, ratings files).
//!
//! * [`lines`]: files read in bounded blocks of whole lines, cut into numbered pieces that are
//!   parsed in parallel and joined in order.
//! * [`libsvm`]: `label index:value ...` lines (libSVM 1-based, libFM 0-based) into RecordIO.
//! * [`ratings_csv`]: ratings files (CSV, TSV, MovieLens `::`) into arrays, or into one-hot RecordIO
//!   rows plus vocabularies.
//!
//! Every converter makes at most two passes over its input and holds one block (plus its encoded
//! bytes) at a time, so memory is bounded by the block size, never by the file; a reader into
//! arrays holds one block besides the arrays it returns. Errors name the
//! 1-based line and the offending token as [`crate::Error::Parse`].

pub mod libsvm;
pub mod lines;
pub mod ratings_csv;

pub use libsvm::{convert_libsvm, LibsvmOptions, LibsvmSummary};
pub use ratings_csv::{
    convert_ratings_csv, read_ratings, IdList, RatingsOptions, RatingsSummary, RatingsTable, Unknown, Vocabulary,
};
