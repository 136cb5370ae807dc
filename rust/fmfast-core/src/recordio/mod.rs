//! SageMaker's RecordIO-protobuf format: `aialgs.data.Record` messages in RecordIO frames.
//!
//! * [`wire`]: protobuf varints and tags.
//! * [`tensor`]: the three tensor element types and conversions into them.
//! * [`frame`]: the RecordIO framing (magic, length, padding, continuation flags).
//! * [`encode`]: rows (sparse or dense) and labels into framed records, in parallel.
//! * [`decode`]: framed records back into CSR arrays, in parallel.
//! * [`stream`]: bounded-memory batch reading from any `Read`.
//! * [`pool`]: arrays of decoded batches given back, for later batches to fill again.
//! * [`file`](mod@file): input files read whole, with errors that name them; atomic output files.

pub mod decode;
pub mod encode;
pub mod file;
pub mod frame;
pub mod pool;
pub mod stream;
pub mod tensor;
pub mod wire;

pub use decode::{decode_buffer, decode_records, Decoded, FeatureValues};
pub use encode::{
    encode_into, encode_rows, encode_rows_reusing, encoded_size, EncodeOptions, EncodedSize, Rows, StageBuffers,
};
pub use file::{open_input, read_input, AtomicFile};
pub use frame::{split_frames, Frame, FrameScanner, MAGIC};
pub use pool::{ArrayPool, Pooled};
pub use stream::RecordStream;
pub use tensor::TensorKind;
