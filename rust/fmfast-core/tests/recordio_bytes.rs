//! The encoder checked byte for byte against a reference that builds each record as protobuf
//! does it, message by message (each inner message serialised, then wrapped in its tag and
//! length), for random shapes, every value, label and tensor type, both index widths, dense
//! rows, both output paths (streamed and in place) and several thread counts.

use fmfast_core::csr::{CsrView, Values};
use fmfast_core::parallel::{with_threads, Unmonitored};
use fmfast_core::recordio::encode::Layout;
use fmfast_core::recordio::{encode_into, encode_rows, encoded_size, EncodeOptions, Rows, TensorKind};
use proptest::prelude::*;

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Field `number` holding `bytes` (length-delimited).
fn field(out: &mut Vec<u8>, number: u8, bytes: &[u8]) {
    out.push(number << 3 | 2);
    varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// A tensor of `kind` holding `values` (exact in every type here), with keys and shape if sparse.
fn tensor(kind: TensorKind, values: &[f64], sparse: Option<(&[u64], u64)>) -> Vec<u8> {
    let mut packed = Vec::new();
    for &v in values {
        match kind {
            TensorKind::Float32 => packed.extend_from_slice(&(v as f32).to_le_bytes()),
            TensorKind::Float64 => packed.extend_from_slice(&v.to_le_bytes()),
            TensorKind::Int32 => varint(&mut packed, v as i32 as i64 as u64),
        }
    }
    let mut out = Vec::new();
    if !packed.is_empty() {
        field(&mut out, 1, &packed);
    }
    if let Some((keys, n_cols)) = sparse {
        let mut packed_keys = Vec::new();
        keys.iter().for_each(|&k| varint(&mut packed_keys, k));
        if !packed_keys.is_empty() {
            field(&mut out, 2, &packed_keys);
        }
        let mut shape = Vec::new();
        varint(&mut shape, n_cols);
        field(&mut out, 3, &shape);
    }
    out
}

/// `map_field { "values": Value { kind: tensor } }`.
fn entry(out: &mut Vec<u8>, map_field: u8, kind: TensorKind, tensor: &[u8]) {
    let kind_field = match kind {
        TensorKind::Float32 => 2,
        TensorKind::Float64 => 3,
        TensorKind::Int32 => 7,
    };
    let mut value = Vec::new();
    field(&mut value, kind_field, tensor);
    let mut map_entry = Vec::new();
    field(&mut map_entry, 1, b"values");
    field(&mut map_entry, 2, &value);
    field(out, map_field, &map_entry);
}

/// The framed records of `rows` (each its keys, if sparse, and values) and `labels`.
fn reference(
    rows: &[(Vec<u64>, Vec<f64>)],
    n_cols: Option<u64>,
    labels: Option<&[f64]>,
    options: &EncodeOptions,
) -> Vec<u8> {
    let mut out = Vec::new();
    for (row, (keys, values)) in rows.iter().enumerate() {
        let mut record = Vec::new();
        let sparse = n_cols.map(|n| (&keys[..], n));
        entry(
            &mut record,
            1,
            options.features,
            &tensor(options.features, values, sparse),
        );
        if let Some(labels) = labels {
            entry(
                &mut record,
                2,
                options.labels,
                &tensor(options.labels, &labels[row..=row], None),
            );
        }
        out.extend_from_slice(&0xCED7_230Au32.to_le_bytes());
        out.extend_from_slice(&(record.len() as u32).to_le_bytes());
        out.extend_from_slice(&record);
        out.resize(out.len().next_multiple_of(4), 0);
    }
    out
}

/// Values held in each array type the encoder reads, all exact (integers, or quarters for floats).
struct Typed {
    f32: Vec<f32>,
    f64: Vec<f64>,
    i32: Vec<i32>,
    i64: Vec<i64>,
}

impl Typed {
    fn new(values: &[f64]) -> Self {
        Typed {
            f32: values.iter().map(|&v| v as f32).collect(),
            f64: values.to_vec(),
            i32: values.iter().map(|&v| v as i32).collect(),
            i64: values.iter().map(|&v| v as i64).collect(),
        }
    }

    fn values(&self, ty: usize) -> Values<'_> {
        match ty {
            0 => Values::F32(&self.f32),
            1 => Values::F64(&self.f64),
            2 => Values::I32(&self.i32),
            _ => Values::I64(&self.i64),
        }
    }
}

const KINDS: [TensorKind; 3] = [TensorKind::Float32, TensorKind::Float64, TensorKind::Int32];

/// Streamed and in-place encodings of `rows`, which must agree.
fn encoded(rows: &Rows, labels: Option<Values>, options: &EncodeOptions, threads: usize) -> Vec<u8> {
    with_threads(threads, || {
        let mut streamed = Vec::new();
        encode_rows(rows, labels, options, &Unmonitored, |chunk| {
            streamed.extend_from_slice(chunk);
            Ok(())
        })?;
        let size = encoded_size(rows, labels, options)?;
        let mut in_place = vec![0xee; size.total()];
        encode_into(rows, labels, options, &size, &Unmonitored, &mut in_place)?;
        assert_eq!(in_place, streamed, "in place and streamed differ");
        Ok(streamed)
    })
    .unwrap()
}

/// Random rows: the column count, and per row its (key, value) entries.
fn rows_strategy() -> impl Strategy<Value = (u64, Vec<Vec<(u64, i32)>>)> {
    // Column counts whose keys take 1 to 5 varint bytes, as wide tables' do.
    (
        prop_oneof![1u64..200, 1u64..20_000, 1u64..3_000_000, 1u64..1 << 34],
        0usize..8,
    )
        .prop_flat_map(|(n_cols, width)| {
            let row = prop::collection::vec((0..n_cols, -4000i32..4000), 0..=width);
            (Just(n_cols), prop::collection::vec(row, 0..60))
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn records_are_byte_for_byte_the_reference(
        (n_cols, raw) in rows_strategy(),
        value_type in 0usize..4,
        label_type in 0usize..5,
        kinds in (0usize..3, 0usize..3),
        wide_indices: bool,
        threads in 1usize..4,
    ) {
        let options = EncodeOptions { features: KINDS[kinds.0], labels: KINDS[kinds.1], check_finite: false };
        // Integers where an integer type holds or writes them, else quarters: exact in every type.
        let exact = |integer: bool, v: i32| if integer { f64::from(v) } else { f64::from(v) / 4.0 };
        let int_values = value_type >= 2 || options.features == TensorKind::Int32;
        let int_labels = label_type >= 2 || options.labels == TensorKind::Int32;
        let rows: Vec<(Vec<u64>, Vec<f64>)> = raw
            .iter()
            .map(|row| (row.iter().map(|e| e.0).collect(), row.iter().map(|e| exact(int_values, e.1)).collect()))
            .collect();
        let labels: Vec<f64> = (0..rows.len()).map(|r| exact(int_labels, r as i32 * 37 - 500)).collect();
        let values: Vec<f64> = rows.iter().flat_map(|r| r.1.iter().copied()).collect();
        let (typed, typed_labels) = (Typed::new(&values), Typed::new(&labels));
        let label_values = (label_type < 4).then(|| typed_labels.values(label_type));
        let expected_labels = (label_type < 4).then_some(&labels[..]);

        // Sparse rows, with int32 or int64 indptr and indices.
        let mut indptr = vec![0i64];
        let indices: Vec<i64> = rows.iter().flat_map(|r| r.0.iter().map(|&k| k as i64)).collect();
        rows.iter().for_each(|r| indptr.push(indptr[indptr.len() - 1] + r.0.len() as i64));
        let narrow = n_cols <= i32::MAX as u64 && !wide_indices;
        let (indptr32, indices32): (Vec<i32>, Vec<i32>) =
            (indptr.iter().map(|&p| p as i32).collect(), indices.iter().map(|&k| k as i32).collect());
        let sparse = if narrow {
            Rows::sparse(Layout::CsrI32(CsrView::new(&indptr32, &indices32, values.len(), n_cols).unwrap()), typed.values(value_type))
        } else {
            Rows::sparse(Layout::CsrI64(CsrView::new(&indptr, &indices, values.len(), n_cols).unwrap()), typed.values(value_type))
        };
        let expected = reference(&rows, Some(n_cols), expected_labels, &options);
        prop_assert_eq!(encoded(&sparse, label_values, &options, threads), expected);

        // Dense rows: the same values, padded to the widest row with zeros.
        let width = rows.iter().map(|r| r.1.len()).max().unwrap_or(0);
        let dense_rows: Vec<(Vec<u64>, Vec<f64>)> = rows
            .iter()
            .map(|r| (Vec::new(), r.1.iter().copied().chain(std::iter::repeat(0.0)).take(width).collect()))
            .collect();
        let dense_values: Vec<f64> = dense_rows.iter().flat_map(|r| r.1.iter().copied()).collect();
        let typed_dense = Typed::new(&dense_values);
        let dense = Rows::dense(rows.len(), width, typed_dense.values(value_type)).unwrap();
        let expected = reference(&dense_rows, None, expected_labels, &options);
        prop_assert_eq!(encoded(&dense, label_values, &options, threads), expected);
    }
}
