//! fmfast-core: the pure-Rust engine behind fmfast.
//!
//! * [`csr`]: validated, borrowed views of compressed-sparse-row matrices.
//! * [`recordio`]: SageMaker's RecordIO-protobuf training format, encoded and decoded in parallel.
//! * [`fm`]: Factorization Machines at SageMaker's semantics: scoring, gradients, optimizers, training.
//! * [`features`]: assembling a CSR feature matrix from one-hot, multi-hot and numeric blocks.
//! * [`tables`]: encoding Arrow record batches into feature matrices, and learning their vocabularies.
//! * [`memory`]: large fresh buffers (allocations that fail as errors, huge-page hints, zeroing in
//!   parallel).
//! * [`parallel`]: thread pools sized by the caller and the between-chunk progress/interrupt hook.
//! * `simd`: the token types that dispatch the hot loops to their AVX2 builds at run time.
//!
//! Nothing here knows Python: functions take slices and return [`Result`].

/// Runs `$body` with `$v` bound to the typed slice inside a [`csr::Values`], so that generic code
/// is instantiated once per element type.
macro_rules! with_values {
    ($values:expr, $v:ident => $body:expr) => {
        match $values {
            $crate::csr::Values::F32($v) => $body,
            $crate::csr::Values::F64($v) => $body,
            $crate::csr::Values::I32($v) => $body,
            $crate::csr::Values::I64($v) => $body,
        }
    };
}

pub mod csr;
pub mod error;
pub mod features;
pub mod fm;
pub mod memory;
pub mod parallel;
pub mod recordio;
mod simd;
pub mod tables;
pub mod text;
pub mod topk;

pub use error::{Error, Position, Result};
