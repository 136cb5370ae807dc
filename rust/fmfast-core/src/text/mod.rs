//! Streaming parsers of text inputs (libSVM/libFM, CSV rating triples).
//!
//! * [`lines`]: files read in bounded blocks of whole lines, cut into numbered pieces that are
//!   parsed in parallel and joined in order.
//! * [`libsvm`]: `label index:value ...` lines (libSVM 1-based, libFM 0-based) into RecordIO.
//! * [`ratings_csv`]: `user,item,rating` triples into one-hot RecordIO rows plus vocabularies.
//!
//! Every converter makes two passes over its input and holds one block (plus its encoded bytes)
//! at a time, so memory is bounded by the block size, never by the file. Errors name the
//! 1-based line and the offending token as [`crate::Error::Parse`].

pub mod libsvm;
pub mod lines;
pub mod ratings_csv;

pub use libsvm::{convert_libsvm, LibsvmOptions, LibsvmSummary};
pub use ratings_csv::{convert_ratings_csv, RatingsSummary};
