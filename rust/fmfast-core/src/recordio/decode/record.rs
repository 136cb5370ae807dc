//! One record at a time: `features["values"]` and `label["values"]` found in a `Record`, their
//! tensors read and checked, and appended to the rows of one parallel task ([`Chunk`]).

use super::canonical::{canonical, push_keys};
use super::decoded::{fixed, FeatureValues, Signature, MAX_FEATURE_DIM};
use crate::csr::CsrIndex;
use crate::error::{Error, Result};
use crate::recordio::frame::Frame;
use crate::recordio::tensor::TensorKind;
use crate::recordio::wire::{Cursor, LEN, VARINT};

/// The rows decoded by one task.
pub(super) struct Chunk<I> {
    pub(super) signature: Option<Signature>,
    pub(super) first: (u64, u64),
    pub(super) row_ends: Vec<I>,
    pub(super) indices: Vec<I>,
    pub(super) values: Option<FeatureValues>,
    pub(super) labels: Option<FeatureValues>,
    /// Scratch space for one record's shape, reused so that records cost no allocation.
    pub(super) shape: Vec<u64>,
    /// The value arrays of the previous task this chunk decoded, reused by the next.
    pub(super) spare: (Option<FeatureValues>, Option<FeatureValues>),
}

/// A tensor's fields as found in one record.
struct Tensor<'a> {
    kind: TensorKind,
    bytes: &'a [u8],
}

impl<I: CsrIndex> Chunk<I> {
    pub(super) fn new(frames: &[Frame]) -> Self {
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
    pub(super) fn reset(&mut self, frames: &[Frame]) {
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

    pub(super) fn push(&mut self, frame: &Frame) -> Result<()> {
        if self.push_canonical(&frame.payload) {
            return Ok(());
        }
        self.push_general(frame)
    }

    /// Appends a record of any layout the decoder reads, or reports what is wrong with it.
    pub(super) fn push_general(&mut self, frame: &Frame) -> Result<()> {
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
            // A loop rather than `extend` over an iterator: this runs for every record, and the
            // call `extend` makes costs more than its few values.
            values.reserve(n_values);
            for bytes in record.values.chunks_exact(4) {
                values.push(f32::from_le_bytes(fixed(bytes)));
            }
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
