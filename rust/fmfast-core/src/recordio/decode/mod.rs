//! Framed `aialgs.data.Record`s back into CSR arrays, in parallel, validating everything.
//!
//! A record's `features["values"]` tensor is sparse when it has keys or a shape (keys index
//! the values, `shape = [n_cols]`) and dense otherwise (the values are the whole row). All
//! records must agree on the feature dimension, the tensor types and whether labels are present.
//!
//! * `decoded`: what decoding gives back ([`Decoded`], [`FeatureValues`], [`Indices`]) and what
//!   every record must share ([`Signature`]).
//! * `record`: the general decoder, one record at a time, into one task's rows.
//! * `canonical`: the fast path for records in the exact layout the SageMaker SDK writes.
//! * `fused`: a run of such records decoded in one pass straight into the output arrays
//!   ([`FusedRows`]), for a stream read a batch at a time.
//! * `assemble`: the parallel tasks and the output arrays they are appended to
//!   ([`decode_records`], [`decode_buffer`]).

mod assemble;
mod canonical;
mod decoded;
mod fused;
mod record;

pub(crate) use assemble::PROGRESS_RECORDS;
pub use assemble::{decode_buffer, decode_records, decode_scanned, DecodeScratch};
pub use decoded::{Decoded, FeatureValues, Indices, Signature, MAX_FEATURE_DIM};
pub use fused::FusedRows;

#[cfg(test)]
mod tests {
    use super::assemble::{extrapolate, reserve_output, BLOCK_RECORDS, TASK_RECORDS};
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
    #[cfg_attr(miri, ignore = "too slow for miri: needs more than BLOCK_RECORDS records")]
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
