//! The fused decoder: a run of RecordIO frames holding the SageMaker SDK's sparse float32 records
//! (the layout [`canonical`] recognises) walked and decoded in one pass, on one thread, straight
//! into the output CSR arrays: no frame vector, no per-task arrays and no copy of them into the
//! output, as the general decoder (`assemble`) needs to decode in parallel.
//!
//! It decodes only what the general decoder decodes to the same arrays: records in parts, records
//! of another layout or type, records that disagree with the first, and anything malformed make it
//! give up (`None`), and its caller then decodes the same bytes with the general decoder, which
//! owns every rule beyond the layout and reports what is wrong.

use super::assemble::narrow_indices;
use super::canonical::{canonical, push_keys};
use super::decoded::{fixed, Decoded, FeatureValues, Indices};
use crate::recordio::frame::{padded, Header, HEADER};

/// CSR arrays (and labels) filled record by record by [`FusedRows::extend`].
pub struct FusedRows {
    indptr: Vec<i32>,
    indices: Vec<i32>,
    values: Vec<f32>,
    labels: Vec<f32>,
    /// The first record's dimension and whether it has a label, which every later record shares.
    signature: Option<(u64, bool)>,
}

impl FusedRows {
    /// Empty arrays with room for `rows` records of `nnz` values in all.
    pub fn with_capacity(rows: usize, nnz: usize) -> Self {
        let mut indptr = Vec::with_capacity(rows + 1);
        indptr.push(0);
        FusedRows {
            indptr,
            indices: Vec::with_capacity(nnz),
            values: Vec::with_capacity(nnz),
            labels: Vec::with_capacity(rows),
            signature: None,
        }
    }

    /// Records decoded so far.
    pub fn n_rows(&self) -> usize {
        self.indptr.len() - 1
    }

    /// Values decoded so far.
    pub fn nnz(&self) -> usize {
        self.indices.len()
    }

    /// Decodes up to `max_records` whole frames from the start of `bytes` (which starts at a frame
    /// header), stopping early at a frame that `bytes` holds only part of; returns the bytes and
    /// the records decoded. `None` (the rows then hold a part of a record) when a frame is not
    /// an SDK record that agrees with the first: the general decoder must decode these bytes.
    pub fn extend(&mut self, bytes: &[u8], max_records: usize) -> Option<(usize, usize)> {
        let mut pos = 0;
        for done in 0..max_records {
            let Some(header) = bytes.get(pos..pos + HEADER) else {
                return Some((pos, done));
            };
            let header = Header::parse(fixed(header), 0, 0).ok()?;
            let body = pos + HEADER;
            // Only whole records: the parts of a record in parts are joined by the general decoder.
            let (0, Some(payload)) = (header.flag, bytes.get(body..body + header.len)) else {
                return (header.flag == 0).then_some((pos, done));
            };
            let end = body + padded(header.len);
            if end > bytes.len() {
                return Some((pos, done));
            }
            self.push(payload)?;
            pos = end;
        }
        Some((pos, max_records))
    }

    /// Appends one record's payload; `None` (and a part of it, perhaps, appended) where it is not
    /// an SDK record that agrees with the first.
    #[inline(always)]
    fn push(&mut self, payload: &[u8]) -> Option<()> {
        let record = canonical(payload)?;
        let signature = (record.dim, record.label.is_some());
        match self.signature {
            Some(first) if first != signature => return None,
            Some(_) => {}
            // Keys below the dimension then fit the narrow index type (the general decoder's rule
            // is checked again by `finish`, on the bytes decoded).
            None if record.dim > i32::MAX as u64 => return None,
            None => self.signature = Some(signature),
        }
        let n_values = record.values.len() / 4;
        let before = self.indices.len();
        if !push_keys(record.keys, record.dim, n_values, &mut self.indices) || self.indices.len() - before != n_values {
            return None;
        }
        // A loop rather than `extend`: the call `extend` makes costs more than a record's few values.
        self.values.reserve(n_values);
        for bytes in record.values.chunks_exact(4) {
            self.values.push(f32::from_le_bytes(fixed(bytes)));
        }
        if let Some(label) = record.label {
            self.labels.push(f32::from_le_bytes(label));
        }
        self.indptr.push(i32::try_from(self.indices.len()).ok()?);
        Some(())
    }

    /// The decoded arrays, as the general decoder gives them for the same `size` bytes; `None`
    /// where it would give wide (int64) indices.
    pub fn finish(self, size: usize) -> Option<Decoded> {
        let (n_cols, has_labels) = self.signature.unwrap_or((0, false));
        if !narrow_indices(n_cols, size) {
            return None;
        }
        Some(Decoded {
            n_rows: self.indptr.len() - 1,
            n_cols,
            indices: Indices::I32 {
                indptr: self.indptr,
                indices: self.indices,
            },
            values: FeatureValues::F32(self.values),
            labels: has_labels.then_some(FeatureValues::F32(self.labels)),
        })
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::super::record::Chunk;
    use super::*;
    use crate::error::Result;
    use crate::parallel::Unmonitored;
    use crate::recordio::frame::{frame, split_frames, MAGIC};
    use crate::recordio::stream::RecordStream;
    use crate::recordio::wire::put_varint;

    /// A length-delimited field.
    fn field(tag: u8, body: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        put_varint(&mut out, body.len() as u64);
        out.extend_from_slice(body);
        out
    }

    fn varints(values: &[u64]) -> Vec<u8> {
        let mut out = Vec::new();
        values.iter().for_each(|&v| put_varint(&mut out, v));
        out
    }

    /// A record to generate: the SDK's layout, or one of the ways of leaving it.
    #[derive(Clone, Debug)]
    struct Spec {
        values: Vec<i8>,
        keys: [u32; 4],
        dim: u64,
        label: Option<Vec<i8>>,
        /// Below 8: the SDK's layout (6: a long row); then a key outside the shape, one key too many, another
        /// dimension, float64 values, no shape, no keys (dense), the tensor's fields reversed, an
        /// unknown field in the tensor, a record in two parts.
        variant: u8,
    }

    /// Records that mostly agree with each other (one dimension, labels or not), some of them not.
    fn specs() -> impl Strategy<Value = Vec<Spec>> {
        let dims = prop::sample::select(vec![4u64, 300, 300, 70_000, 70_000, 3_000_000_000, 1 << 63]);
        let record = (
            prop::collection::vec(-3i8..4, 0..4),
            any::<[u32; 4]>(),
            prop::collection::vec(-3i8..4, 1..3).prop_map(|mut l| {
                l.truncate(if l[0] == 3 { 2 } else { 1 });
                l
            }),
            // Two thirds in the SDK's layout.
            (0u8..25).prop_map(|v| v.saturating_sub(8)),
        );
        (dims, any::<bool>(), prop::collection::vec(record, 0..6)).prop_map(|(dim, labelled, records)| {
            records
                .into_iter()
                .map(|(values, keys, label, variant)| Spec {
                    values,
                    keys,
                    dim: if variant == 10 { dim + 1 } else { dim },
                    label: (labelled != (variant == 15)).then_some(label),
                    variant,
                })
                .collect()
        })
    }

    /// `spec` as framed bytes.
    fn framed(spec: &Spec) -> Vec<u8> {
        let f32s = |v: &[i8]| -> Vec<u8> { v.iter().flat_map(|&x| f32::from(x).to_le_bytes()).collect() };
        // Long rows (entries of 128 bytes and more) take lengths of two bytes.
        let values = if spec.variant == 6 {
            spec.values.repeat(40)
        } else {
            spec.values.clone()
        };
        let mut values = f32s(&values);
        if spec.variant == 16 {
            // MXNet's writers split a record where the magic number stands (see `frame`).
            values.splice(0..0, MAGIC.to_le_bytes());
        }
        let n_keys = values.len() / 4 + usize::from(spec.variant == 9);
        let mut keys: Vec<u64> = (0..n_keys)
            .map(|i| (u64::from(spec.keys[i % 4]) + i as u64) % spec.dim)
            .collect();
        if let (8, Some(key)) = (spec.variant, keys.last_mut()) {
            *key = spec.dim;
        }
        let mut parts = vec![
            field(0x0a, &values),
            if spec.variant == 13 {
                Vec::new()
            } else {
                field(0x12, &varints(&keys))
            },
            if spec.variant == 12 {
                Vec::new()
            } else {
                field(0x1a, &varints(&[spec.dim]))
            },
        ];
        if spec.variant == 11 {
            let doubles: Vec<u8> = spec.values.iter().flat_map(|&x| f64::from(x).to_le_bytes()).collect();
            parts[0] = field(0x0a, &doubles);
        }
        if spec.variant == 14 {
            parts.reverse();
        }
        if spec.variant == 7 {
            parts.push(vec![0x20, 1]);
        }
        let kind = if spec.variant == 11 { 0x1a } else { 0x12 };
        let entry = |map: u8, tensor: &[u8], kind: u8| {
            field(
                map,
                &[field(0x0a, b"values"), field(0x12, &field(kind, tensor))].concat(),
            )
        };
        let mut payload = entry(0x0a, &parts.concat(), kind);
        if let Some(label) = &spec.label {
            payload.extend(entry(0x12, &field(0x0a, &f32s(label)), 0x12));
        }
        match payload.windows(4).position(|w| w == MAGIC.to_le_bytes()) {
            Some(at) if spec.variant == 16 => [frame(1, &payload[..at]), frame(3, &payload[at + 4..])].concat(),
            _ => frame(0, &payload),
        }
    }

    /// What a decoding gave: rows, columns, indptr, indices, values, labels.
    type Outcome = (usize, u64, Vec<i64>, Vec<i64>, FeatureValues, Option<FeatureValues>);

    fn widened(decoded: Decoded) -> Outcome {
        let (indptr, indices) = match decoded.indices {
            Indices::I32 { indptr, indices } => (
                indptr.into_iter().map(i64::from).collect(),
                indices.into_iter().map(i64::from).collect(),
            ),
            Indices::I64 { indptr, indices } => (indptr, indices),
        };
        (
            decoded.n_rows,
            decoded.n_cols,
            indptr,
            indices,
            decoded.values,
            decoded.labels,
        )
    }

    /// The general decoder alone (no fast path), record after record, with the index type
    /// `decode_buffer` picks: the oracle.
    fn general(bytes: &[u8]) -> Result<Outcome> {
        let frames = split_frames(bytes, 0)?;
        let mut probe = Chunk::<i64>::new(&frames);
        frames.first().map(|f| probe.push_general(f)).transpose()?;
        let n_cols = probe.signature.map_or(0, |s| s.n_cols);
        if narrow_indices(n_cols, bytes.len()) {
            general_as::<i32>(&frames)
        } else {
            general_as::<i64>(&frames)
        }
    }

    fn general_as<I: crate::csr::CsrIndex>(frames: &[crate::recordio::frame::Frame]) -> Result<Outcome> {
        let mut chunk = Chunk::<I>::new(frames);
        frames.iter().try_for_each(|f| chunk.push_general(f))?;
        let wide = |i: &I| i.to_u64().map_or(-1, |i| i as i64);
        let indptr = std::iter::once(0).chain(chunk.row_ends.iter().map(wide)).collect();
        let n_cols = chunk.signature.map_or(0, |s| s.n_cols);
        let values = chunk.values.unwrap_or(FeatureValues::F32(Vec::new()));
        Ok((
            frames.len(),
            n_cols,
            indptr,
            chunk.indices.iter().map(wide).collect(),
            values,
            chunk.labels,
        ))
    }

    /// The stream (the fused decoder, falling back to the general one) in batches of `batch`
    /// records, joined.
    fn streamed(bytes: &[u8], batch: usize) -> Result<Outcome> {
        let mut stream = RecordStream::new(bytes);
        let mut all: Outcome = (0, 0, vec![0], Vec::new(), FeatureValues::F32(Vec::new()), None);
        while let Some(decoded) = stream.next_batch(batch, &Unmonitored)? {
            let (rows, n_cols, indptr, indices, values, labels) = widened(decoded);
            let base = all.3.len() as i64;
            all.0 += rows;
            all.1 = n_cols;
            all.2.extend(indptr[1..].iter().map(|e| e + base));
            all.3.extend(indices);
            append(&mut all.4, values);
            match (&mut all.5, labels) {
                (Some(a), Some(b)) => append(a, b),
                (a, b) => *a = b,
            }
        }
        Ok(all)
    }

    fn append(all: &mut FeatureValues, more: FeatureValues) {
        match (all, more) {
            (all, more) if all.is_empty() => *all = more,
            (FeatureValues::F32(a), FeatureValues::F32(b)) => a.extend(b),
            (FeatureValues::F64(a), FeatureValues::F64(b)) => a.extend(b),
            (FeatureValues::I32(a), FeatureValues::I32(b)) => a.extend(b),
            (a, b) => *a = b,
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(if cfg!(miri) { 8 } else { 2000 }))]

        /// On generated records (the SDK's, others, and both corrupted), the stream gives what the
        /// general decoder gives, arrays or error (with its record and byte offset).
        #[test]
        fn the_fused_decoder_agrees_with_the_general_decoder(
            specs in specs(),
            corrupt in prop::option::weighted(0.3, (any::<usize>(), any::<u8>())),
            cut in prop::option::weighted(0.1, any::<usize>()),
        ) {
            let mut bytes: Vec<u8> = specs.iter().flat_map(framed).collect();
            if let (Some((at, byte)), false) = (corrupt, bytes.is_empty()) {
                let at = at % bytes.len();
                bytes[at] = byte;
            }
            if let Some(cut) = cut {
                bytes.truncate(cut % (bytes.len() + 1));
            }
            let expected = general(&bytes).map_err(|e| e.to_string());
            let whole = streamed(&bytes, usize::MAX).map_err(|e| e.to_string());
            prop_assert_eq!(&whole, &expected);
            if expected.is_ok() {
                for batch in [1, 2, 3] {
                    prop_assert_eq!(&streamed(&bytes, batch).map_err(|e| e.to_string()), &expected);
                }
            }
        }
    }

    #[test]
    fn sdk_records_take_the_fused_path() {
        let spec = Spec {
            values: vec![1, 2],
            keys: [1, 3, 0, 0],
            dim: 300,
            label: Some(vec![5]),
            variant: 0,
        };
        let bytes = framed(&spec).repeat(3);
        let mut rows = FusedRows::with_capacity(0, 0);
        assert_eq!(rows.extend(&bytes, 10), Some((bytes.len(), 3)));
        // A frame cut short stops it, with what came before.
        assert_eq!(rows.extend(&bytes[..bytes.len() - 1], 10).map(|r| r.1), Some(2));
        let reversed = framed(&Spec { variant: 14, ..spec });
        assert_eq!(FusedRows::with_capacity(0, 0).extend(&reversed, 10), None);
    }
}
