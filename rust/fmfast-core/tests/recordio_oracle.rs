//! The encoder checked against an independent protobuf decoder (prost, derived from the schema),
//! and encode → decode round trips on random matrices.

use std::collections::HashMap;

use fmfast_core::csr::{CsrView, Values};
use fmfast_core::parallel::{with_threads, Unmonitored};
use fmfast_core::recordio::decode::Indices;
use fmfast_core::recordio::encode::Layout;
use fmfast_core::recordio::{
    decode_records, encode_rows, split_frames, EncodeOptions, FeatureValues, Rows, TensorKind,
};
use proptest::prelude::*;

/// `aialgs.data.Record`, as prost derives it from the proto2 schema.
mod pb {
    use std::collections::HashMap;

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Float32Tensor {
        #[prost(float, repeated, tag = "1")]
        pub values: Vec<f32>,
        #[prost(uint64, repeated, tag = "2")]
        pub keys: Vec<u64>,
        #[prost(uint64, repeated, tag = "3")]
        pub shape: Vec<u64>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Int32Tensor {
        #[prost(int32, repeated, tag = "1")]
        pub values: Vec<i32>,
        #[prost(uint64, repeated, tag = "2")]
        pub keys: Vec<u64>,
        #[prost(uint64, repeated, tag = "3")]
        pub shape: Vec<u64>,
    }

    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Tensor {
        #[prost(message, tag = "2")]
        Float32(Float32Tensor),
        #[prost(message, tag = "7")]
        Int32(Int32Tensor),
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Value {
        #[prost(oneof = "Tensor", tags = "2, 7")]
        pub tensor: Option<Tensor>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Record {
        #[prost(map = "string, message", tag = "1")]
        pub features: HashMap<String, Value>,
        #[prost(map = "string, message", tag = "2")]
        pub label: HashMap<String, Value>,
    }
}

/// A random CSR matrix: (indptr, indices, values, n_cols).
fn csr_strategy() -> impl Strategy<Value = (Vec<i64>, Vec<i64>, Vec<f32>, u64)> {
    (
        1u64..300_000,
        prop::collection::vec(prop::collection::vec((0u64..1 << 40, -1e6f32..1e6), 0..6), 0..40),
    )
        .prop_map(|(n_cols, rows)| {
            let mut indptr = vec![0i64];
            let (mut indices, mut values) = (Vec::new(), Vec::new());
            for row in rows {
                for (column, value) in row {
                    indices.push((column % n_cols) as i64);
                    values.push(value);
                }
                indptr.push(indices.len() as i64);
            }
            (indptr, indices, values, n_cols)
        })
}

fn encode(rows: &Rows, labels: Option<Values>, options: &EncodeOptions, threads: usize) -> Vec<u8> {
    let mut out = Vec::new();
    with_threads(threads, || {
        encode_rows(rows, labels, options, &Unmonitored, |chunk| {
            out.extend_from_slice(chunk);
            Ok(())
        })
    })
    .unwrap();
    out
}

/// Each frame's payload parsed by prost.
fn prost_records(bytes: &[u8]) -> Vec<pb::Record> {
    let frames = split_frames(bytes, 0).unwrap();
    frames
        .iter()
        .map(|f| <pb::Record as prost::Message>::decode(&*f.payload).unwrap())
        .collect()
}

proptest! {
    #[test]
    fn prost_reads_what_the_encoder_writes((indptr, indices, values, n_cols) in csr_strategy(), labelled: bool) {
        let csr = CsrView::new(&indptr, &indices, values.len(), n_cols).unwrap();
        let labels: Vec<f32> = (0..csr.n_rows()).map(|i| i as f32 - 0.5).collect();
        let rows = Rows::sparse(Layout::CsrI64(csr), Values::F32(&values));
        let bytes = encode(&rows, labelled.then_some(Values::F32(&labels)), &EncodeOptions::default(), 2);
        let records = prost_records(&bytes);
        prop_assert_eq!(records.len(), csr.n_rows());
        for (row, record) in records.iter().enumerate() {
            let Some(pb::Tensor::Float32(tensor)) = &record.features["values"].tensor else { panic!("not float32") };
            let range = csr.row_range(row);
            prop_assert_eq!(&tensor.values, &values[range.clone()].to_vec());
            let keys: Vec<u64> = indices[range].iter().map(|&k| k as u64).collect();
            prop_assert_eq!(&tensor.keys, &keys);
            prop_assert_eq!(&tensor.shape, &vec![n_cols]);
            let expected_label: HashMap<String, pb::Value> = if labelled {
                let tensor = pb::Float32Tensor { values: vec![labels[row]], keys: vec![], shape: vec![] };
                HashMap::from([("values".to_string(), pb::Value { tensor: Some(pb::Tensor::Float32(tensor)) })])
            } else {
                HashMap::new()
            };
            prop_assert_eq!(&record.label, &expected_label);
        }
    }

    #[test]
    fn decode_inverts_encode_for_every_thread_count((indptr, indices, values, n_cols) in csr_strategy()) {
        let csr = CsrView::new(&indptr, &indices, values.len(), n_cols).unwrap();
        let rows = Rows::sparse(Layout::CsrI64(csr), Values::F32(&values));
        let one = encode(&rows, None, &EncodeOptions::default(), 1);
        prop_assert_eq!(&one, &encode(&rows, None, &EncodeOptions::default(), 3));
        let frames = split_frames(&one, 0).unwrap();
        let decoded = with_threads(2, || decode_records(&frames, &Unmonitored)).unwrap();
        prop_assert_eq!(decoded.n_rows, csr.n_rows());
        prop_assert_eq!(decoded.values, FeatureValues::F32(values.clone()));
        prop_assert!(decoded.labels.is_none());
        let Indices::I32 { indptr: got_indptr, indices: got_indices } = decoded.indices else { panic!("int64 indices") };
        prop_assert_eq!(got_indptr.iter().map(|&p| p as i64).collect::<Vec<_>>(), indptr);
        prop_assert_eq!(got_indices.iter().map(|&c| c as i64).collect::<Vec<_>>(), indices);
    }

    #[test]
    fn negative_int32_values_and_labels_survive(values in prop::collection::vec(any::<i32>(), 1..30)) {
        let n = values.len();
        let rows = Rows::dense(1, n, Values::I32(&values)).unwrap();
        let labels = [values[0] as i64];
        let options = EncodeOptions { features: TensorKind::Int32, labels: TensorKind::Int32, check_finite: true };
        let bytes = encode(&rows, Some(Values::I64(&labels)), &options, 1);
        let record = &prost_records(&bytes)[0];
        let Some(pb::Tensor::Int32(tensor)) = &record.features["values"].tensor else { panic!("not int32") };
        prop_assert_eq!(&tensor.values, &values);
        prop_assert!(tensor.keys.is_empty() && tensor.shape.is_empty());
        let Some(pb::Tensor::Int32(label)) = &record.label["values"].tensor else { panic!("not int32") };
        prop_assert_eq!(&label.values, &vec![values[0]]);
    }
}
