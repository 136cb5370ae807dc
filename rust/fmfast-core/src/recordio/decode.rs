//! Framed `aialgs.data.Record`s back into CSR arrays, in parallel, validating everything.
//!
//! A record's `features["values"]` tensor is sparse when it has keys or a shape (keys index
//! the values, `shape = [n_cols]`) and dense otherwise (the values are the whole row). All
//! records must agree on the feature dimension, the tensor types and whether labels are present.

use std::ops::Deref;

use rayon::prelude::*;

use super::frame::{Frame, FrameScanner};
use super::tensor::{unpacked_wire_type, TensorKind};
use super::wire::{Cursor, LEN, VARINT};
use crate::csr::CsrIndex;
use crate::error::{Error, Result};
use crate::memory::advise_huge_pages;
use crate::parallel::Monitor;

/// Records decoded by one parallel task.
const TASK_RECORDS: usize = 4096;
/// Records decoded between two progress reports (and Ctrl-C checks).
const PROGRESS_RECORDS: usize = 1 << 17;
/// Records decoded in parallel before their values are appended to the output arrays: few
/// enough that the tasks' intermediate arrays (reused from block to block, ~6 MB for typical
/// float32 records) mostly stay in the last-level cache until they are copied, many enough that
/// the synchronisations between blocks are rare (on a busy machine each one can wait for a
/// descheduled thread).
const BLOCK_RECORDS: usize = 1 << 16;
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
    fn new(kind: TensorKind) -> Self {
        Self::with_capacity(kind, 0)
    }

    /// `spare` emptied when it holds `kind` values (keeping its allocation), else new values.
    fn reuse(spare: &mut Option<FeatureValues>, kind: TensorKind, capacity: usize) -> Self {
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
    fn read_field(&mut self, cursor: &mut Cursor, wire_type: u8) -> std::result::Result<(), String> {
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
fn fixed<const N: usize>(bytes: &[u8]) -> [u8; N] {
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

/// The rows decoded by one task.
struct Chunk<I> {
    signature: Option<Signature>,
    first: (u64, u64),
    row_ends: Vec<I>,
    indices: Vec<I>,
    values: Option<FeatureValues>,
    labels: Option<FeatureValues>,
    /// Scratch space for one record's shape, reused so that records cost no allocation.
    shape: Vec<u64>,
    /// The value arrays of the previous task this chunk decoded, reused by the next.
    spare: (Option<FeatureValues>, Option<FeatureValues>),
}

/// A tensor's fields as found in one record.
struct Tensor<'a> {
    kind: TensorKind,
    bytes: &'a [u8],
}

impl<I: CsrIndex> Chunk<I> {
    fn new(frames: &[Frame]) -> Self {
        let mut chunk = Chunk {
            signature: None,
            first: (0, 0),
            row_ends: Vec::new(),
            indices: Vec::new(),
            values: None,
            labels: None,
            shape: Vec::new(),
            spare: (None, None),
        };
        chunk.reset(frames);
        chunk
    }

    /// Empties the chunk for decoding `frames`, keeping its allocations (so that a chunk reused
    /// from block to block writes to memory that is already mapped and cached).
    fn reset(&mut self, frames: &[Frame]) {
        self.signature = None;
        self.first = frames.first().map_or((0, 0), |f| (f.record, f.offset));
        self.row_ends.clear();
        self.row_ends.reserve(frames.len());
        self.indices.clear();
        // A guess that avoids regrowth for typical sparse float32 records (~9 bytes an entry).
        self.indices
            .reserve(frames.iter().map(|f| f.payload.len()).sum::<usize>() / 9);
        if let Some(values) = self.values.take() {
            self.spare.0 = Some(values);
        }
        if let Some(labels) = self.labels.take() {
            self.spare.1 = Some(labels);
        }
    }

    fn push(&mut self, frame: &Frame) -> Result<()> {
        if self.push_canonical(&frame.payload) {
            return Ok(());
        }
        let at = |message: String| Error::recordio(frame.record, frame.offset, message);
        let (features, label) = split_record(&frame.payload).map_err(at)?;
        let features = features.ok_or_else(|| at("record has no features[\"values\"]".into()))?;
        let label_kind = label.as_ref().map(|t| t.kind);
        let n_cols = self.push_features(&features).map_err(at)?;
        let signature = Signature {
            n_cols,
            features: features.kind,
            labels: label_kind,
        };
        match &self.signature {
            Some(first) => first.check(&signature, frame.record, frame.offset)?,
            None => self.signature = Some(signature),
        }
        if let Some(label) = label {
            let spare = &mut self.spare.1;
            let labels = self
                .labels
                .get_or_insert_with(|| FeatureValues::reuse(spare, label.kind, 0));
            let before = labels.len();
            read_tensor::<i64>(&label, labels, &mut Vec::new(), &mut Vec::new()).map_err(at)?;
            if labels.len() != before + 1 {
                return Err(at(format!("label has {} values, expected 1", labels.len() - before)));
            }
        }
        let end = I::from_u64(self.indices.len() as u64)
            .ok_or_else(|| at("too many stored values for the index type".into()))?;
        self.row_ends.push(end);
        Ok(())
    }

    /// The fast path for records laid out exactly as the SageMaker SDK writes sparse float32 rows
    /// (see [`canonical`]): appends the record and returns `true` when it is valid and agrees
    /// with the chunk, else changes nothing and returns `false` so that the general path decodes
    /// it (and reports what is wrong with it).
    fn push_canonical(&mut self, payload: &[u8]) -> bool {
        let Some(record) = canonical(payload).filter(|r| r.dim <= MAX_FEATURE_DIM) else {
            return false;
        };
        let float32 = |v: &Option<FeatureValues>| v.as_ref().is_none_or(|v| v.kind() == TensorKind::Float32);
        let signature = Signature {
            n_cols: record.dim,
            features: TensorKind::Float32,
            labels: record.label.map(|_| TensorKind::Float32),
        };
        if !float32(&self.values) || !float32(&self.labels) || self.signature.is_some_and(|s| s != signature) {
            return false;
        }
        let keys_before = self.indices.len();
        let n_values = record.values.len() / 4;
        let keys_ok = push_keys(record.keys, record.dim, n_values, &mut self.indices);
        let end = I::from_u64(self.indices.len() as u64);
        let (true, Some(end)) = (keys_ok && self.indices.len() - keys_before == n_values, end) else {
            self.indices.truncate(keys_before);
            return false;
        };
        let capacity = self.indices.capacity();
        let spare = &mut self.spare.0;
        let values = self
            .values
            .get_or_insert_with(|| FeatureValues::reuse(spare, TensorKind::Float32, capacity));
        if let FeatureValues::F32(values) = values {
            values.extend(record.values.chunks_exact(4).map(|b| f32::from_le_bytes(fixed(b))));
        }
        if let Some(label) = record.label {
            let spare = &mut self.spare.1;
            let labels = self
                .labels
                .get_or_insert_with(|| FeatureValues::reuse(spare, TensorKind::Float32, 0));
            if let FeatureValues::F32(labels) = labels {
                labels.push(f32::from_le_bytes(label));
            }
        }
        self.signature = Some(signature);
        self.row_ends.push(end);
        true
    }

    /// Appends one record's keys and values; returns its feature dimension.
    fn push_features(&mut self, tensor: &Tensor) -> std::result::Result<u64, String> {
        let capacity = self.indices.capacity();
        let spare = &mut self.spare.0;
        let values = self
            .values
            .get_or_insert_with(|| FeatureValues::reuse(spare, tensor.kind, capacity));
        if values.kind() != tensor.kind {
            return Err(format!(
                "features are a {}, earlier records a {}",
                tensor.kind.name(),
                values.kind().name()
            ));
        }
        let values_before = values.len();
        let keys_before = self.indices.len();
        let shape = &mut self.shape;
        shape.clear();
        read_tensor(tensor, values, &mut self.indices, shape)?;
        let n_values = values.len() - values_before;
        let n_keys = self.indices.len() - keys_before;
        let n_cols = match (shape.as_slice(), n_keys) {
            ([], 0) | ([_], 0) if n_values > 0 => {
                // Dense: the values are the whole row.
                if let [dim] = shape[..] {
                    if dim != n_values as u64 {
                        return Err(format!("dense tensor of {n_values} values has shape [{dim}]"));
                    }
                }
                self.indices.extend((0..n_values as u64).filter_map(I::from_u64));
                if self.indices.len() - keys_before != n_values {
                    return Err(format!("dense tensor of {n_values} values is too wide"));
                }
                n_values as u64
            }
            ([], 0) => 0,
            ([], _) => return Err("sparse tensor (with keys) has no shape".into()),
            ([dim], _) => {
                if *dim > MAX_FEATURE_DIM {
                    return Err(format!(
                        "shape [{dim}] exceeds the largest feature dimension {MAX_FEATURE_DIM}"
                    ));
                }
                if n_keys != n_values {
                    return Err(format!("{n_keys} keys but {n_values} values"));
                }
                if let Some(bad) = self.indices[keys_before..]
                    .iter()
                    .find(|k| k.to_u64().is_none_or(|k| k >= *dim))
                {
                    return Err(format!(
                        "key {} is outside shape [{dim}]",
                        bad.to_u64().unwrap_or(u64::MAX)
                    ));
                }
                *dim
            }
            (dims, _) => return Err(format!("shape has {} dimensions, expected 1", dims.len())),
        };
        Ok(n_cols)
    }
}

/// Appends packed varint `keys`, each below `dim` and representable as `I`, to `out` (whose
/// capacity is made to hold `expected` more); `false` as soon as one is not (or is malformed).
#[inline(always)]
fn push_keys<I: CsrIndex>(mut keys: &[u8], dim: u64, expected: usize, out: &mut Vec<I>) -> bool {
    out.reserve(expected);
    while !keys.is_empty() {
        // Keys of up to 21 bits (3 bytes) are decoded without the general loop.
        let (key, used) = match *keys {
            [b0, ..] if b0 < 0x80 => (u64::from(b0), 1),
            [b0, b1, ..] if b1 < 0x80 => (u64::from(b0 & 0x7f) | (u64::from(b1) << 7), 2),
            [b0, b1, b2, ..] if b2 < 0x80 => (
                u64::from(b0 & 0x7f) | (u64::from(b1 & 0x7f) << 7) | (u64::from(b2) << 14),
                3,
            ),
            _ => {
                let mut cursor = Cursor::new(keys);
                match cursor.varint() {
                    Ok(key) => (key, cursor.position()),
                    Err(_) => return false,
                }
            }
        };
        match I::from_u64(key) {
            Some(k) if key < dim => out.push(k),
            _ => return false,
        }
        keys = keys.get(used..).unwrap_or_default();
    }
    true
}

/// A sparse float32 record in the exact layout the SageMaker SDK writes.
struct Canonical<'a> {
    /// Packed float32 values (a multiple of 4 bytes).
    values: &'a [u8],
    /// Packed varint keys.
    keys: &'a [u8],
    /// The one dimension of the shape.
    dim: u64,
    /// The one float32 label, when there is one.
    label: Option<[u8; 4]>,
}

/// `payload` as a [`Canonical`] record: `features {"values": Value {float32_tensor {values?, keys?,
/// shape: [dim]}}}` then optionally `label {"values": Value {float32_tensor {values: [label]}}}`,
/// each field once, in this order, with nothing else; `None` for anything else (valid or not),
/// which the general decoder then handles.
#[inline]
fn canonical(payload: &[u8]) -> Option<Canonical<'_>> {
    const FLOAT32_TENSOR: u8 = (2 << 3) | LEN;
    let mut record = Cursor::new(payload);
    let tensor = canonical_entry(&mut record, (1 << 3) | LEN, FLOAT32_TENSOR)?;
    let label = if record.is_done() {
        None
    } else {
        match canonical_entry(&mut record, (2 << 3) | LEN, FLOAT32_TENSOR)? {
            &[0x0a, 4, b0, b1, b2, b3] => Some([b0, b1, b2, b3]),
            _ => return None,
        }
    };
    if !record.is_done() {
        return None;
    }
    let mut tensor = Cursor::new(tensor);
    let mut field = |tag: u8| match tensor.eat(tag) {
        true => tensor.len_delimited().ok(),
        false => Some(&[][..]),
    };
    let (values, keys) = (field((1 << 3) | LEN)?, field((2 << 3) | LEN)?);
    if !tensor.eat((3 << 3) | LEN) {
        return None;
    }
    let mut shape = Cursor::new(tensor.len_delimited().ok()?);
    let dim = shape.varint().ok()?;
    if !shape.is_done() || !tensor.is_done() || values.len() % 4 != 0 {
        return None;
    }
    Some(Canonical {
        values,
        keys,
        dim,
        label,
    })
}

/// The tensor of a map entry `{"values": Value {<tensor_tag>: tensor}}` under `entry_tag`.
#[inline(always)]
fn canonical_entry<'a>(cursor: &mut Cursor<'a>, entry_tag: u8, tensor_tag: u8) -> Option<&'a [u8]> {
    if !cursor.eat(entry_tag) {
        return None;
    }
    let mut entry = Cursor::new(cursor.len_delimited().ok()?);
    if !(entry.eat((1 << 3) | LEN) && entry.eat(6) && entry.take(6).ok()? == b"values" && entry.eat((2 << 3) | LEN)) {
        return None;
    }
    let mut value = Cursor::new(entry.len_delimited().ok()?);
    if !entry.is_done() || !value.eat(tensor_tag) {
        return None;
    }
    let tensor = value.len_delimited().ok()?;
    value.is_done().then_some(tensor)
}

/// Finds `features["values"]` and `label["values"]` in a `Record`.
fn split_record(payload: &[u8]) -> std::result::Result<(Option<Tensor<'_>>, Option<Tensor<'_>>), String> {
    let mut cursor = Cursor::new(payload);
    let (mut features, mut label) = (None, None);
    while !cursor.is_done() {
        let (field, wire_type) = cursor.key()?;
        match field {
            1 | 2 => {
                if wire_type != LEN {
                    return Err(format!("Record field {field} has wire type {wire_type}, expected 2"));
                }
                let entry = cursor.len_delimited()?;
                if let Some(tensor) = values_entry(entry)? {
                    let slot = if field == 1 { &mut features } else { &mut label };
                    if slot.replace(tensor).is_some() {
                        let map = if field == 1 { "features" } else { "label" };
                        return Err(format!("{map}[\"values\"] appears twice"));
                    }
                }
            }
            _ => cursor.skip(wire_type)?,
        }
    }
    Ok((features, label))
}

/// The tensor of a map entry whose key is "values", `None` for other keys.
fn values_entry(entry: &[u8]) -> std::result::Result<Option<Tensor<'_>>, String> {
    let mut cursor = Cursor::new(entry);
    let (mut key, mut value): (&[u8], Option<&[u8]>) = (b"", None);
    while !cursor.is_done() {
        match cursor.key()? {
            (1, LEN) => key = cursor.len_delimited()?,
            (2, LEN) => value = Some(cursor.len_delimited()?),
            (field @ (1 | 2), wire_type) => return Err(format!("map entry field {field} has wire type {wire_type}")),
            (_, wire_type) => cursor.skip(wire_type)?,
        }
    }
    if key != b"values" {
        return Ok(None);
    }
    let mut cursor = Cursor::new(value.unwrap_or_default());
    let mut tensor = None;
    while !cursor.is_done() {
        let (field, wire_type) = cursor.key()?;
        match (TensorKind::from_field(field), field) {
            (Some(kind), _) if wire_type == LEN => {
                tensor = Some(Tensor {
                    kind,
                    bytes: cursor.len_delimited()?,
                })
            }
            (Some(kind), _) => return Err(format!("{} has wire type {wire_type}", kind.name())),
            (None, 9) => return Err("Bytes values are not supported (only Float32/Float64/Int32 tensors)".into()),
            (None, _) => cursor.skip(wire_type)?,
        }
    }
    tensor
        .map(Some)
        .ok_or_else(|| "Value holds no Float32/Float64/Int32 tensor".into())
}

/// Reads a tensor message: values into `values`, keys into `keys`, dimensions into `shape`.
fn read_tensor<I: CsrIndex>(
    tensor: &Tensor,
    values: &mut FeatureValues,
    keys: &mut Vec<I>,
    shape: &mut Vec<u64>,
) -> std::result::Result<(), String> {
    let mut cursor = Cursor::new(tensor.bytes);
    while !cursor.is_done() {
        let (field, wire_type) = cursor.key()?;
        match field {
            1 => values.read_field(&mut cursor, wire_type)?,
            2 => read_varints(&mut cursor, wire_type, "keys", |key| {
                keys.push(I::from_u64(key).ok_or_else(|| format!("key {key} is too large"))?);
                Ok(())
            })?,
            3 => read_varints(&mut cursor, wire_type, "shape", |dim| {
                shape.push(dim);
                Ok(())
            })?,
            _ => cursor.skip(wire_type)?,
        }
    }
    Ok(())
}

/// Feeds the elements of a packed or unpacked varint field to `sink`.
#[inline]
fn read_varints(
    cursor: &mut Cursor,
    wire_type: u8,
    what: &str,
    mut sink: impl FnMut(u64) -> std::result::Result<(), String>,
) -> std::result::Result<(), String> {
    match wire_type {
        LEN => {
            let mut packed = Cursor::new(cursor.len_delimited()?);
            while !packed.is_done() {
                sink(packed.varint()?)?;
            }
            Ok(())
        }
        VARINT => sink(cursor.varint()?),
        _ => Err(format!("{what} have wire type {wire_type}, expected 0 or 2")),
    }
}

/// Decodes `frames` into one CSR matrix, in parallel, reporting progress in records.
pub fn decode_records(frames: &[Frame], monitor: &dyn Monitor) -> Result<Decoded> {
    let payload_bytes = frames.iter().map(|f| f.payload.len()).sum();
    let mut blocks = frames.chunks(BLOCK_RECORDS);
    decode_blocks(|| Ok(blocks.next()), payload_bytes, monitor)
}

/// Decodes a whole RecordIO stream held in memory, a block of frames at a time.
pub fn decode_buffer(bytes: &[u8], monitor: &dyn Monitor) -> Result<Decoded> {
    let mut scanner = FrameScanner::new(bytes, 0);
    decode_blocks(
        || {
            scanner
                .next_block(BLOCK_RECORDS)
                .map(|block| (!block.is_empty()).then_some(block))
        },
        bytes.len(),
        monitor,
    )
}

/// Decodes the blocks `next` yields; `size_bound` bounds the payload bytes in all of them.
fn decode_blocks<'f, B: Deref<Target = [Frame<'f>]> + Send + Sync>(
    mut next: impl FnMut() -> Result<Option<B>> + Send,
    size_bound: usize,
    monitor: &dyn Monitor,
) -> Result<Decoded> {
    let first = next()?;
    let n_cols = match first.as_deref().and_then(<[Frame]>::first) {
        Some(frame) => {
            let mut probe = Chunk::<i64>::new(std::slice::from_ref(frame));
            probe.push(frame)?;
            probe.signature.map_or(0, |s| s.n_cols)
        }
        None => 0,
    };
    // Every stored value takes at least one payload byte, so `size_bound` also bounds nnz.
    let decoded = if n_cols <= i32::MAX as u64 && size_bound <= i32::MAX as usize {
        let (n_rows, indptr, indices, values, labels) = decode_as::<i32, B>(first, next, size_bound, monitor)?;
        (n_rows, Indices::I32 { indptr, indices }, values, labels)
    } else {
        let (n_rows, indptr, indices, values, labels) = decode_as::<i64, B>(first, next, size_bound, monitor)?;
        (n_rows, Indices::I64 { indptr, indices }, values, labels)
    };
    let (n_rows, indices, values, labels) = decoded;
    Ok(Decoded {
        n_rows,
        n_cols,
        indices,
        values,
        labels,
    })
}

type Parts<I> = (usize, Vec<I>, Vec<I>, FeatureValues, Option<FeatureValues>);

fn decode_as<'f, I: CsrIndex, B: Deref<Target = [Frame<'f>]> + Send + Sync>(
    first: Option<B>,
    mut next: impl FnMut() -> Result<Option<B>> + Send,
    size_bound: usize,
    monitor: &dyn Monitor,
) -> Result<Parts<I>> {
    let zero = I::from_u64(0).ok_or_else(|| Error::invalid("index type cannot hold 0"))?;
    let mut indptr = vec![zero];
    let (mut indices, mut values, mut labels) = (Vec::new(), None::<FeatureValues>, None::<FeatureValues>);
    let mut signature: Option<Signature> = None;
    let mut block = first;
    // Reused from block to block.
    let mut all_chunks: Vec<Chunk<I>> = Vec::new();
    while let Some(frames) = block {
        let n_tasks = frames.len().div_ceil(TASK_RECORDS);
        if all_chunks.len() < n_tasks {
            all_chunks.resize_with(n_tasks, || Chunk::new(&[]));
        }
        let chunks = &mut all_chunks[..n_tasks];
        // The next block's frames are found while this block's records are decoded.
        let (decoded, following) = rayon::join(
            || {
                chunks
                    .par_iter_mut()
                    .zip(frames.par_chunks(TASK_RECORDS))
                    .map(|(chunk, task)| {
                        chunk.reset(task);
                        task.iter().try_for_each(|frame| chunk.push(frame))
                    })
                    .collect::<Vec<Result<()>>>()
            },
            &mut next,
        );
        // The first error in record order, whatever the thread count.
        decoded.into_iter().collect::<Result<()>>()?;
        let chunks = &all_chunks[..n_tasks];
        let (mut block_indices, mut block_values, mut block_labels) = (Vec::new(), Vec::new(), Vec::new());
        let mut block_nnz = 0;
        for chunk in chunks {
            let (Some(chunk_signature), Some(chunk_values)) = (chunk.signature, &chunk.values) else {
                continue;
            };
            match &signature {
                Some(first) => first.check(&chunk_signature, chunk.first.0, chunk.first.1)?,
                None => signature = Some(chunk_signature),
            }
            let base = (indices.len() + block_nnz) as u64;
            block_nnz += chunk.indices.len();
            for end in &chunk.row_ends {
                let end = end.to_u64().map(|e| e + base).and_then(I::from_u64);
                indptr.push(end.ok_or_else(|| Error::invalid("too many stored values for the index type"))?);
            }
            block_indices.push(chunk.indices.as_slice());
            block_values.push(chunk_values);
            block_labels.extend(chunk.labels.as_ref());
        }
        // The first block with values sizes the output arrays for the whole stream (see
        // `extrapolate`); later blocks ask for nothing more than they append.
        let (nnz_estimate, rows_estimate) = if indices.capacity() == 0 {
            let payload_bytes = frames.iter().map(|f| f.payload.len()).sum();
            let estimate = |part| extrapolate(part, payload_bytes, size_bound);
            (estimate(block_nnz), estimate(frames.len()))
        } else {
            (0, 0)
        };
        reserve_output(&mut indptr, rows_estimate + 1);
        par_append(&mut indices, &block_indices, nnz_estimate);
        par_append_values(&mut values, &block_values, nnz_estimate);
        par_append_values(&mut labels, &block_labels, rows_estimate);
        let done = indptr.len() - 1;
        let last = matches!(following, Ok(None));
        if last || done / PROGRESS_RECORDS != (done - frames.len()) / PROGRESS_RECORDS {
            monitor.progress(done as u64)?;
        }
        block = following?;
    }
    let values = values.unwrap_or_else(|| FeatureValues::new(TensorKind::Float32));
    Ok((indptr.len() - 1, indptr, indices, values, labels))
}

/// `part`, seen in the first `part_bytes` payload bytes, scaled to `size_bound` bytes (and at most
/// `size_bound`: every value and every record takes at least one byte). Overestimates cost only
/// address space: pages never written are never mapped.
fn extrapolate(part: usize, part_bytes: usize, size_bound: usize) -> usize {
    let scaled = part as f64 * size_bound as f64 / part_bytes.max(1) as f64;
    (scaled.ceil() as usize).clamp(part, size_bound.max(part))
}

/// Makes room for `capacity` elements in all in `dst`, in one allocation backed by huge pages
/// where the system allows it (output arrays are fresh memory: each 4 KiB page would otherwise
/// cost a page fault). Later growth, should the estimate fall short, is ordinary `Vec` growth; so
/// is all growth when the system refuses the estimate's address space.
fn reserve_output<T>(dst: &mut Vec<T>, capacity: usize) {
    if capacity > dst.capacity() && dst.try_reserve_exact(capacity - dst.len()).is_ok() {
        advise_huge_pages(dst.spare_capacity_mut());
    }
}

/// Appends `parts` to `dst` in order, copying them in parallel (page faults included); `capacity`
/// is passed to [`reserve_output`] first.
fn par_append<T: Copy + Send + Sync>(dst: &mut Vec<T>, parts: &[&[T]], capacity: usize) {
    reserve_output(dst, capacity);
    let total = parts.iter().map(|p| p.len()).sum();
    dst.reserve(total);
    let mut spare = &mut dst.spare_capacity_mut()[..total];
    let mut targets = Vec::with_capacity(parts.len());
    for part in parts {
        let (head, tail) = std::mem::take(&mut spare).split_at_mut(part.len());
        targets.push(head);
        spare = tail;
    }
    targets
        .into_par_iter()
        .zip(parts.par_iter())
        .for_each(|(target, part)| {
            for (slot, &value) in target.iter_mut().zip(part.iter()) {
                slot.write(value);
            }
        });
    // SAFETY: the targets tile the first `total` spare elements, and every one was written above.
    unsafe { dst.set_len(dst.len() + total) };
}

/// Appends typed value arrays (all of one tensor type, as the signature checks ensured) to `into`,
/// with room for `capacity` values.
fn par_append_values(into: &mut Option<FeatureValues>, parts: &[&FeatureValues], capacity: usize) {
    let Some(first) = parts.first() else { return };
    let into = into.get_or_insert_with(|| FeatureValues::new(first.kind()));
    macro_rules! typed {
        ($variant:ident, $dst:expr) => {{
            let slices: Vec<_> = parts
                .iter()
                .filter_map(|p| match p {
                    FeatureValues::$variant(v) => Some(v.as_slice()),
                    _ => None,
                })
                .collect();
            par_append($dst, &slices, capacity)
        }};
    }
    match into {
        FeatureValues::F32(dst) => typed!(F32, dst),
        FeatureValues::F64(dst) => typed!(F64, dst),
        FeatureValues::I32(dst) => typed!(I32, dst),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parallel::Unmonitored;
    use crate::recordio::frame::MAGIC;

    /// A length-delimited field.
    fn field(tag: u8, body: &[u8]) -> Vec<u8> {
        assert!(body.len() < 128);
        [&[tag, body.len() as u8][..], body].concat()
    }

    /// `Record { <map>: {"values": Value {float32_tensor: tensor}} ... }` framed; `tensor` and
    /// `label` are the tensors' field bytes.
    fn record(tensor: &[u8], label: Option<&[u8]>) -> Vec<u8> {
        let entry = |tag: u8, tensor: &[u8]| {
            let value = field(0x12, tensor);
            field(tag, &[field(0x0a, b"values"), field(0x12, &value)].concat())
        };
        let mut payload = entry(0x0a, tensor);
        if let Some(label) = label {
            payload.extend(entry(0x12, label));
        }
        let mut out = MAGIC.to_le_bytes().to_vec();
        out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        out.extend_from_slice(&payload);
        out.resize(8 + payload.len().div_ceil(4) * 4, 0);
        out
    }

    fn values(v: &[f32]) -> Vec<u8> {
        field(0x0a, &v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<_>>())
    }

    #[test]
    fn the_fast_path_agrees_with_the_general_decoder() {
        let (vals, keys, shape) = (values(&[1.5, 2.5]), field(0x12, &[1, 3]), field(0x1a, &[4]));
        let label = values(&[7.0]);
        // Canonical, then the same record with its tensor fields in another order (general path).
        let canonical = record(&[&vals[..], &keys, &shape].concat(), Some(&label));
        let reordered = record(&[&shape[..], &keys, &vals].concat(), Some(&label));
        let decode = |bytes: &[u8]| decode_buffer(bytes, &Unmonitored).unwrap();
        let (a, b) = (decode(&canonical), decode(&[&reordered[..], &canonical].concat()));
        assert_eq!((a.n_rows, a.n_cols, b.n_rows, b.n_cols), (1, 4, 2, 4));
        let Indices::I32 { indptr, indices } = b.indices else {
            panic!("int32 indices expected")
        };
        assert_eq!((indptr, indices), (vec![0, 2, 4], vec![1, 3, 1, 3]));
        assert_eq!(b.values, FeatureValues::F32(vec![1.5, 2.5, 1.5, 2.5]));
        assert_eq!(b.labels, Some(FeatureValues::F32(vec![7.0, 7.0])));
        assert_eq!(a.labels, Some(FeatureValues::F32(vec![7.0])));
    }

    #[test]
    fn output_arrays_grow_past_the_first_blocks_estimate() {
        // The first block's records hold one value, the later ones 20: the output arrays sized
        // from the first block must grow, and nothing may be lost when they do.
        let row = |n: u8| {
            let vals: Vec<f32> = (0..n).map(f32::from).collect();
            let keys: Vec<u8> = (0..n).collect();
            record(
                &[&values(&vals)[..], &field(0x12, &keys), &field(0x1a, &[64])].concat(),
                None,
            )
        };
        let (sparse, dense) = (row(1), row(20));
        let n_dense = 3 * TASK_RECORDS;
        let mut bytes = sparse.repeat(BLOCK_RECORDS);
        bytes.extend(dense.repeat(n_dense));
        let decoded = decode_buffer(&bytes, &Unmonitored).unwrap();
        let Indices::I32 { indptr, indices } = decoded.indices else {
            panic!("int32 indices expected")
        };
        assert_eq!((decoded.n_rows, decoded.n_cols), (BLOCK_RECORDS + n_dense, 64));
        assert_eq!(indptr.last().copied(), Some((BLOCK_RECORDS + 20 * n_dense) as i32));
        assert_eq!(&indices[BLOCK_RECORDS - 1..BLOCK_RECORDS + 2], &[0, 0, 1]);
        let FeatureValues::F32(values) = decoded.values else {
            panic!("float32 values expected")
        };
        assert_eq!(values.last(), Some(&19.0));
    }

    #[test]
    fn an_estimate_the_system_refuses_is_skipped() {
        let mut v: Vec<u64> = vec![1];
        reserve_output(&mut v, usize::MAX / 4);
        assert_eq!(v, [1]);
        reserve_output(&mut v, 1000);
        assert!(v.capacity() >= 1000);
    }

    #[test]
    fn extrapolation_is_bounded_by_the_input() {
        assert_eq!(extrapolate(10, 100, 1000), 100);
        assert_eq!(extrapolate(10, 100, 150), 15);
        // Never below what was seen, never above the bound otherwise.
        assert_eq!(extrapolate(10, 100, 5), 10);
        assert_eq!(extrapolate(10, 1, 100), 100);
        assert_eq!(extrapolate(0, 0, 1000), 0);
    }

    #[test]
    fn a_shape_beyond_the_largest_dimension_is_an_error() {
        // Varint 2^63: nine bytes of 0x80 and a final 1.
        let dim = [&[0x80u8; 9][..], &[1]].concat();
        let bad = record(
            &[&values(&[1.5])[..], &field(0x12, &[0]), &field(0x1a, &dim)].concat(),
            None,
        );
        let err = decode_buffer(&bad, &Unmonitored).unwrap_err().to_string();
        assert_eq!(
            err,
            "record 0 at byte offset 0: shape [9223372036854775808] exceeds the largest feature dimension 9223372036854775807"
        );
    }

    #[test]
    fn canonical_records_with_bad_contents_get_the_general_errors() {
        let (vals, shape) = (values(&[1.5, 2.5]), field(0x1a, &[4]));
        let good = record(&[&vals[..], &field(0x12, &[1, 3]), &shape].concat(), None);
        let cases = [
            (
                record(&[&vals[..], &field(0x12, &[1, 4]), &shape].concat(), None),
                "key 4 is outside shape [4]",
            ),
            (
                record(&[&vals[..], &field(0x12, &[1]), &shape].concat(), None),
                "1 keys but 2 values",
            ),
            (
                record(&[&vals[..], &field(0x12, &[1, 3]), &field(0x1a, &[5])].concat(), None),
                "dimension 5 differs",
            ),
            (
                record(
                    &[&vals[..], &field(0x12, &[1, 3]), &shape].concat(),
                    Some(&values(&[1.0, 2.0])),
                ),
                "label is Float32Tensor, earlier records no label",
            ),
        ];
        for (bad, message) in cases {
            let err = decode_buffer(&[&good[..], &bad].concat(), &Unmonitored)
                .unwrap_err()
                .to_string();
            assert!(err.contains(message), "{err} lacks {message}");
            assert!(
                err.starts_with(&format!("record 1 at byte offset {}", good.len())),
                "{err}"
            );
        }
        let two_labels = record(
            &[&vals[..], &field(0x12, &[1, 3]), &shape].concat(),
            Some(&values(&[1.0, 2.0])),
        );
        let err = decode_buffer(&two_labels, &Unmonitored).unwrap_err().to_string();
        assert!(err.contains("label has 2 values, expected 1"), "{err}");
    }
}
