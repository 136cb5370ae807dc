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
use super::canonical::{canonical, push_keys, short_head, LABEL_ENTRY_WORD};
use super::decoded::{fixed, Decoded, FeatureValues, Indices};
use crate::recordio::frame::{padded, Header, HEADER};
use crate::recordio::pool::ArrayPool;
use crate::recordio::wire::put_varint;

/// CSR arrays (and labels) filled record by record by [`FusedRows::extend`].
pub struct FusedRows {
    indptr: Vec<i32>,
    indices: Vec<i32>,
    values: Vec<f32>,
    labels: Vec<f32>,
    /// The first record's dimension and whether it has a label, which every later record shares.
    signature: Option<(u64, bool)>,
    /// The bytes that every later record repeats, taken from the signature ([`Skeleton`]).
    skeleton: Option<Skeleton>,
}

impl FusedRows {
    /// Empty arrays with room for `rows` records of `nnz` values in all, from `pool`'s.
    pub fn new(pool: &ArrayPool, rows: usize, nnz: usize) -> Self {
        let mut indptr = pool.take(rows + 1);
        indptr.push(0);
        FusedRows {
            indptr,
            indices: pool.take(nnz),
            values: pool.take(nnz),
            labels: pool.take(rows),
            signature: None,
            skeleton: None,
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
        let (mut pos, mut done) = (0, 0);
        while done < max_records {
            if let Some(skeleton) = self.skeleton {
                let (end, repeated) = self.extend_repeated(&skeleton, bytes, pos, max_records - done);
                (pos, done) = (end, done + repeated);
                if done == max_records {
                    break;
                }
            }
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
            done += 1;
        }
        Some((pos, done))
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
            None => {
                self.signature = Some(signature);
                self.skeleton = Some(Skeleton::new(record.dim, signature.1));
            }
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

    /// Appends the records from `bytes[pos]` on, up to `max_records`, as long as they are laid out
    /// as the first one ([`Skeleton::parse`]); returns where the last one ends and how many they
    /// are. The record after them (another layout, a frame that `bytes` holds only part of, or
    /// one that [`append_each`] refuses, with nothing of it appended) is left to
    /// [`FusedRows::push`]. Not inlined: the loop keeps its registers to itself.
    #[inline(never)]
    fn extend_repeated(
        &mut self,
        skeleton: &Skeleton,
        bytes: &[u8],
        mut pos: usize,
        max_records: usize,
    ) -> (usize, usize) {
        let mut done = 0;
        while done < max_records {
            let Some(row) = skeleton.parse(bytes, pos) else {
                break;
            };
            let n_values = row.values.len() / 4;
            let mut at = 0;
            let keys = append_each(&mut self.indices, n_values, || {
                let (key, used) = short_key(row.keys_and_shape.get(at..at + 4)?)?;
                at += used;
                (u64::from(key) < skeleton.dim).then_some(key as i32)
            });
            if !keys || at != row.keys_len {
                // The keys (if appended) are dropped, and `push` decodes the record again.
                self.indices.truncate(self.indptr.last().map_or(0, |&end| end as usize));
                break;
            }
            let mut values = row.values.chunks_exact(4);
            append_each(&mut self.values, n_values, || {
                Some(f32::from_le_bytes(fixed(values.next()?)))
            });
            if let Some(label) = row.label {
                self.labels.push(label);
            }
            // Fits: `finish` refuses a batch of more than `i32::MAX` bytes, and a value takes five.
            self.indptr.push(self.indices.len() as i32);
            pos = row.end;
            done += 1;
        }
        (pos, done)
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

/// What every record of a run repeats after the first: the shape field of its dimension as the SDK
/// writes it, and whether a label entry follows the features.
#[derive(Clone, Copy)]
struct Skeleton {
    dim: u64,
    labelled: bool,
    /// The shape field's bytes `0x1a, len, varint(dim)`, little-endian, and how many they are.
    shape: u128,
    shape_len: usize,
}

/// A record that [`Skeleton::parse`] recognised.
struct Repeated<'a> {
    /// Where its frame ends.
    end: usize,
    values: &'a [u8],
    /// The keys' bytes, then the shape field's.
    keys_and_shape: &'a [u8],
    keys_len: usize,
    label: Option<f32>,
}

impl Skeleton {
    fn new(dim: u64, labelled: bool) -> Self {
        let mut varint = Vec::with_capacity(10);
        put_varint(&mut varint, dim);
        let mut field = [0u8; 16];
        field[0] = 0x1a;
        field[1] = varint.len() as u8;
        field[2..2 + varint.len()].copy_from_slice(&varint);
        Skeleton {
            dim,
            labelled,
            shape: u128::from_le_bytes(field),
            shape_len: 2 + varint.len(),
        }
    }

    /// The record whose frame starts at `bytes[pos]` when it is laid out as the first one:
    /// a whole frame, a feature entry under 128 bytes ([`short_head`]), `values` and `keys`
    /// with lengths of one byte, the first record's shape field and label entry (or none).
    /// `None` for any other record (valid or not) and a frame that `bytes` holds only part of.
    ///
    /// Most records are read here, so at known places: the header, the 14 bytes of the head, the
    /// tensor's last 16 bytes (the shape field and bytes before it) and the label entry are each
    /// compared whole.
    #[inline(always)]
    fn parse<'a>(&self, bytes: &'a [u8], pos: usize) -> Option<Repeated<'a>> {
        let header = Header::parse(fixed(bytes.get(pos..pos + HEADER)?), 0, 0).ok()?;
        let end = pos + HEADER + padded(header.len);
        // A whole record (parts are joined by the general decoder), all of it in `bytes`.
        if header.flag != 0 || end > bytes.len() {
            return None;
        }
        let payload = &bytes[pos + HEADER..pos + HEADER + header.len];
        let (tensor, rest) = short_head(payload)?;
        let label = match *rest {
            [] if !self.labelled => None,
            [ref head @ .., b0, b1, b2, b3]
                if self.labelled && head.len() == 16 && u128::from_le_bytes(fixed(head)) == LABEL_ENTRY_WORD =>
            {
                Some(f32::from_le_bytes([b0, b1, b2, b3]))
            }
            _ => return None,
        };
        let tensor_end = 14 + tensor.len();
        let [0x0a, values_len, ref tensor @ ..] = *tensor else {
            return None;
        };
        let (values, tensor) = tensor.split_at_checked(usize::from(values_len))?;
        let [0x12, keys_len, ref keys_and_shape @ ..] = *tensor else {
            return None;
        };
        let tail = u128::from_le_bytes(fixed(payload.get(tensor_end.checked_sub(16)?..tensor_end)?));
        let keys_len = usize::from(keys_len);
        let layout = values_len < 0x80 && keys_len < 0x80 && values.len() % 4 == 0;
        let shape =
            keys_len + self.shape_len == keys_and_shape.len() && tail >> (8 * (16 - self.shape_len)) == self.shape;
        (layout && shape).then_some(Repeated {
            end,
            values,
            keys_and_shape,
            keys_len,
            label,
        })
    }
}

/// Appends `n` items, each the next of `next`, to `out`; `false`, with nothing appended, as soon
/// as `next` gives `None`. The items are written into `out`'s spare capacity, reserved once,
/// without a capacity check each.
#[inline(always)]
fn append_each<T>(out: &mut Vec<T>, n: usize, mut next: impl FnMut() -> Option<T>) -> bool {
    out.reserve(n);
    let Some(spare) = out.spare_capacity_mut().get_mut(..n) else {
        return false;
    };
    for slot in spare.iter_mut() {
        let Some(item) = next() else {
            return false;
        };
        slot.write(item);
    }
    let len = out.len() + n;
    // SAFETY: the loop wrote each of the `n` slots after the `len - n` initialised items (it
    // returns early otherwise), and `reserve` made the capacity at least `len`.
    unsafe { out.set_len(len) };
    true
}

/// The varint at the start of `word` (the next four bytes, or more), and the bytes it takes; `None`
/// for a varint longer than four bytes. Its length is where the first byte without the
/// continuation bit is, and its value the low seven bits of each of its bytes.
#[inline(always)]
fn short_key(word: &[u8]) -> Option<(u32, usize)> {
    /// The bits of a varint of 1, 2, 3 and 4 bytes.
    const MASKS: [u32; 4] = [0x7f, 0x3fff, 0x1f_ffff, 0xfff_ffff];
    let word = u32::from_le_bytes(fixed(word));
    let stops = !word & 0x8080_8080;
    let used = (stops.trailing_zeros() / 8) as usize;
    let key = (word & 0x7f) | (word >> 1 & 0x7f << 7) | (word >> 2 & 0x7f << 14) | (word >> 3 & 0x7f << 21);
    Some((key & MASKS.get(used)?, used + 1))
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
        let dims = prop::sample::select(vec![
            4u64,
            300,
            300,
            70_000,
            70_000,
            5_000_000,
            300_000_000,
            3_000_000_000,
            1 << 63,
        ]);
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
        let mut rows = FusedRows::new(&ArrayPool::default(), 0, 0);
        assert_eq!(rows.extend(&bytes, 10), Some((bytes.len(), 3)));
        // A frame cut short stops it, with what came before.
        assert_eq!(rows.extend(&bytes[..bytes.len() - 1], 10).map(|r| r.1), Some(2));
        let reversed = framed(&Spec { variant: 14, ..spec });
        assert_eq!(FusedRows::new(&ArrayPool::default(), 0, 0).extend(&reversed, 10), None);
    }
}
