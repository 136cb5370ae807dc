//! What decoding gives back ([`Decoded`]: CSR arrays and labels, typed as the records' tensors)
//! and what every record of a stream must share ([`Signature`]).

use crate::error::{Error, Result};
use crate::recordio::tensor::{unpacked_wire_type, TensorKind};
use crate::recordio::wire::{Cursor, LEN};

/// The largest feature dimension a record may declare: shapes become NumPy/scipy dimensions,
/// which are signed 64-bit integers.
pub const MAX_FEATURE_DIM: u64 = i64::MAX as u64;

/// A typed, owned array of tensor values.
#[derive(Clone, Debug, PartialEq)]
pub enum FeatureValues {
    F32(Vec<f32>),
    F64(Vec<f64>),
    I32(Vec<i32>),
}

impl FeatureValues {
    pub(super) fn new(kind: TensorKind) -> Self {
        Self::with_capacity(kind, 0)
    }

    /// `spare` emptied when it holds `kind` values (keeping its allocation), else new values.
    pub(super) fn reuse(spare: &mut Option<FeatureValues>, kind: TensorKind, capacity: usize) -> Self {
        match spare.take() {
            Some(mut values) if values.kind() == kind => {
                match &mut values {
                    FeatureValues::F32(v) => v.clear(),
                    FeatureValues::F64(v) => v.clear(),
                    FeatureValues::I32(v) => v.clear(),
                }
                values
            }
            _ => Self::with_capacity(kind, capacity),
        }
    }

    fn with_capacity(kind: TensorKind, capacity: usize) -> Self {
        match kind {
            TensorKind::Float32 => FeatureValues::F32(Vec::with_capacity(capacity)),
            TensorKind::Float64 => FeatureValues::F64(Vec::with_capacity(capacity)),
            TensorKind::Int32 => FeatureValues::I32(Vec::with_capacity(capacity)),
        }
    }

    /// The tensor type these values came from.
    pub fn kind(&self) -> TensorKind {
        match self {
            FeatureValues::F32(_) => TensorKind::Float32,
            FeatureValues::F64(_) => TensorKind::Float64,
            FeatureValues::I32(_) => TensorKind::Int32,
        }
    }

    /// Number of values.
    pub fn len(&self) -> usize {
        match self {
            FeatureValues::F32(v) => v.len(),
            FeatureValues::F64(v) => v.len(),
            FeatureValues::I32(v) => v.len(),
        }
    }

    /// Whether there are no values.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends the elements of a `values` field (packed or not) from `cursor`.
    pub(super) fn read_field(&mut self, cursor: &mut Cursor, wire_type: u8) -> std::result::Result<(), String> {
        let kind = self.kind();
        if wire_type == LEN {
            let bytes = cursor.len_delimited()?;
            return self.extend_packed(bytes);
        }
        if wire_type != unpacked_wire_type(kind) {
            return Err(format!("{} values have wire type {wire_type}", kind.name()));
        }
        match self {
            FeatureValues::F32(v) => v.push(f32::from_le_bytes(fixed(cursor.take(4)?))),
            FeatureValues::F64(v) => v.push(f64::from_le_bytes(fixed(cursor.take(8)?))),
            FeatureValues::I32(v) => v.push(cursor.varint()? as i32),
        }
        Ok(())
    }

    fn extend_packed(&mut self, bytes: &[u8]) -> std::result::Result<(), String> {
        let width = match self.kind() {
            TensorKind::Float32 => 4,
            TensorKind::Float64 => 8,
            TensorKind::Int32 => 1,
        };
        if bytes.len() % width != 0 {
            return Err(format!(
                "packed {} values of {} bytes, not a multiple of {width}",
                self.kind().name(),
                bytes.len()
            ));
        }
        match self {
            FeatureValues::F32(v) => v.extend(bytes.chunks_exact(4).map(|b| f32::from_le_bytes(fixed(b)))),
            FeatureValues::F64(v) => v.extend(bytes.chunks_exact(8).map(|b| f64::from_le_bytes(fixed(b)))),
            FeatureValues::I32(v) => {
                let mut cursor = Cursor::new(bytes);
                while !cursor.is_done() {
                    v.push(cursor.varint()? as i32);
                }
            }
        }
        Ok(())
    }
}

/// `N` bytes from a slice that is known to hold exactly `N`.
#[inline]
pub(super) fn fixed<const N: usize>(bytes: &[u8]) -> [u8; N] {
    bytes.try_into().unwrap_or([0; N])
}

/// `indptr` and `indices` in the narrowest type scipy would use.
#[derive(Debug)]
pub enum Indices {
    I32 { indptr: Vec<i32>, indices: Vec<i32> },
    I64 { indptr: Vec<i64>, indices: Vec<i64> },
}

/// Decoded records: a CSR matrix and, when the records carry them, labels.
#[derive(Debug)]
pub struct Decoded {
    /// Number of records (rows).
    pub n_rows: usize,
    /// Feature dimension shared by every record (0 for no records).
    pub n_cols: u64,
    /// Row pointers and column indices.
    pub indices: Indices,
    /// Stored values, typed as the records' feature tensors.
    pub values: FeatureValues,
    /// One label per record, typed as the label tensors.
    pub labels: Option<FeatureValues>,
}

impl Decoded {
    /// What every record shared.
    pub fn signature(&self) -> Signature {
        Signature {
            n_cols: self.n_cols,
            features: self.values.kind(),
            labels: self.labels.as_ref().map(FeatureValues::kind),
        }
    }
}

/// What every record of a stream must share; the first record sets it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Signature {
    /// Feature dimension.
    pub n_cols: u64,
    /// Tensor type of the features.
    pub features: TensorKind,
    /// Tensor type of the labels, `None` when records have no label.
    pub labels: Option<TensorKind>,
}

impl Signature {
    /// Errors unless `other` (seen at `record`/`offset`) agrees with `self`.
    pub fn check(&self, other: &Signature, record: u64, offset: u64) -> Result<()> {
        let differ = |what: String| Err(Error::recordio(record, offset, what));
        if other.n_cols != self.n_cols {
            return differ(format!(
                "feature dimension {} differs from {} in earlier records",
                other.n_cols, self.n_cols
            ));
        }
        if other.features != self.features {
            return differ(format!(
                "features are a {}, earlier records a {}",
                other.features.name(),
                self.features.name()
            ));
        }
        if other.labels != self.labels {
            let name = |l: Option<TensorKind>| l.map_or("no label", TensorKind::name);
            return differ(format!(
                "label is {}, earlier records {}",
                name(other.labels),
                name(self.labels)
            ));
        }
        Ok(())
    }
}
