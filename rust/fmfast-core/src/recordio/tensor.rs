//! The tensor element types of `aialgs.data.Value` and conversion of caller values into them.

use super::wire::{self, varint_len, Put};

/// Which tensor of the `Value` oneof a record uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TensorKind {
    /// `Float32Tensor` (field 2): the only type SageMaker FM trains on.
    Float32,
    /// `Float64Tensor` (field 3).
    Float64,
    /// `Int32Tensor` (field 7).
    Int32,
}

impl TensorKind {
    /// Field number of this tensor inside `Value`.
    pub const fn field(self) -> u8 {
        match self {
            TensorKind::Float32 => 2,
            TensorKind::Float64 => 3,
            TensorKind::Int32 => 7,
        }
    }

    /// The kind stored under `Value` field `field`, if it is a tensor fmfast reads.
    pub fn from_field(field: u64) -> Option<Self> {
        match field {
            2 => Some(TensorKind::Float32),
            3 => Some(TensorKind::Float64),
            7 => Some(TensorKind::Int32),
            _ => None,
        }
    }

    /// The protobuf message name, as error messages and `inspect` show it.
    pub const fn name(self) -> &'static str {
        match self {
            TensorKind::Float32 => "Float32Tensor",
            TensorKind::Float64 => "Float64Tensor",
            TensorKind::Int32 => "Int32Tensor",
        }
    }
}

/// An element type callers hand in, convertible to each tensor type.
pub trait Scalar: Copy + Send + Sync + std::fmt::Debug {
    /// As float32, `None` when a finite value is beyond float32's range.
    fn to_f32(self) -> Option<f32>;
    /// As float64 (always fits).
    fn to_f64(self) -> f64;
    /// As int32, `None` when the value is not an integer in int32's range.
    fn to_i32(self) -> Option<i32>;
    /// Whether the value is neither NaN nor infinite.
    fn is_finite(self) -> bool;
}

impl Scalar for f32 {
    fn to_f32(self) -> Option<f32> {
        Some(self)
    }
    fn to_f64(self) -> f64 {
        f64::from(self)
    }
    fn to_i32(self) -> Option<i32> {
        f64::from(self).to_i32()
    }
    fn is_finite(self) -> bool {
        f32::is_finite(self)
    }
}

impl Scalar for f64 {
    fn to_f32(self) -> Option<f32> {
        let narrowed = self as f32;
        (narrowed.is_finite() || !self.is_finite()).then_some(narrowed)
    }
    fn to_f64(self) -> f64 {
        self
    }
    fn to_i32(self) -> Option<i32> {
        (self.fract() == 0.0 && self >= f64::from(i32::MIN) && self <= f64::from(i32::MAX)).then_some(self as i32)
    }
    fn is_finite(self) -> bool {
        f64::is_finite(self)
    }
}

impl Scalar for i32 {
    fn to_f32(self) -> Option<f32> {
        Some(self as f32)
    }
    fn to_f64(self) -> f64 {
        f64::from(self)
    }
    fn to_i32(self) -> Option<i32> {
        Some(self)
    }
    fn is_finite(self) -> bool {
        true
    }
}

impl Scalar for i64 {
    fn to_f32(self) -> Option<f32> {
        Some(self as f32)
    }
    fn to_f64(self) -> f64 {
        self as f64
    }
    fn to_i32(self) -> Option<i32> {
        i32::try_from(self).ok()
    }
    fn is_finite(self) -> bool {
        true
    }
}

/// Bytes that `values` take as the packed `values` field of a `kind` tensor (without tag and
/// length), or the position of the first value that does not fit that type.
pub fn packed_len<S: Scalar>(kind: TensorKind, values: &[S]) -> Result<usize, usize> {
    match kind {
        TensorKind::Float32 => match values.iter().position(|v| v.to_f32().is_none()) {
            Some(bad) => Err(bad),
            None => Ok(4 * values.len()),
        },
        TensorKind::Float64 => Ok(8 * values.len()),
        TensorKind::Int32 => values.iter().enumerate().try_fold(0, |len, (i, v)| {
            // protobuf writes a negative int32 sign-extended to 64 bits: 10 bytes.
            v.to_i32().map(|v| len + varint_len(v as i64 as u64)).ok_or(i)
        }),
    }
}

/// Writes `values` in the packed layout of a `kind` tensor; each must fit (see [`packed_len`]),
/// and `bytes` must be what [`packed_len`] returned.
#[inline(always)]
pub fn put_packed<S: Scalar>(out: &mut Put, kind: TensorKind, values: &[S], bytes: usize) {
    match kind {
        TensorKind::Float32 => {
            for (slot, v) in out.take(bytes).chunks_exact_mut(4).zip(values) {
                slot.copy_from_slice(&v.to_f32().unwrap_or(f32::NAN).to_le_bytes());
            }
        }
        TensorKind::Float64 => {
            for (slot, v) in out.take(bytes).chunks_exact_mut(8).zip(values) {
                slot.copy_from_slice(&v.to_f64().to_le_bytes());
            }
        }
        TensorKind::Int32 => {
            for v in values {
                out.varint(v.to_i32().unwrap_or(0) as i64 as u64);
            }
        }
    }
}

/// The wire type a `kind` tensor's values use when not packed.
pub const fn unpacked_wire_type(kind: TensorKind) -> u8 {
    match kind {
        TensorKind::Float32 => wire::FIXED32,
        TensorKind::Float64 => wire::FIXED64,
        TensorKind::Int32 => wire::VARINT,
    }
}
