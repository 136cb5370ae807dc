//! Rows and labels into framed `aialgs.data.Record`s, byte for byte what the SageMaker SDK writes.
//!
//! Per row the SDK writes `features["values"]` as a tensor with the row's values, then (sparse
//! only) its column keys and `shape = [n_cols]`, then `label["values"]` as a one-element tensor.
//! Rows are encoded in parallel chunks that are emitted in order, so the bytes never depend on the
//! thread count.

use std::ops::Range;

use rayon::prelude::*;

use super::frame::{put_frame_header, MAX_PAYLOAD, PAD};
use super::tensor::{packed_len, put_packed, Scalar, TensorKind};
use super::wire::{len_field_size, put_len_header, put_varint, varint_len};
use crate::csr::{CsrIndex, CsrView, Values};
use crate::error::{Error, Result};
use crate::parallel::Monitor;

/// Rows handed to the encoder between two progress reports.
const BLOCK_ROWS: usize = 1 << 17;
/// Rows encoded by one parallel task.
const TASK_ROWS: usize = 4096;

/// The map key SageMaker algorithms use for both features and labels.
const VALUES_KEY: &[u8] = b"values";

/// How rows are laid out in the values array.
#[derive(Clone, Copy)]
pub enum Layout<'a> {
    /// Compressed sparse rows with int32 `indptr`/`indices`.
    CsrI32(CsrView<'a, i32>),
    /// Compressed sparse rows with int64 `indptr`/`indices`.
    CsrI64(CsrView<'a, i64>),
    /// A C-contiguous `n_rows × n_cols` array.
    Dense { n_rows: usize, n_cols: usize },
}

/// The rows to encode: a layout plus the values it indexes.
#[derive(Clone, Copy)]
pub struct Rows<'a> {
    layout: Layout<'a>,
    values: Values<'a>,
}

impl<'a> Rows<'a> {
    /// Sparse rows; `values` must have one entry per stored index (checked by [`CsrView::new`]).
    pub fn sparse(layout: Layout<'a>, values: Values<'a>) -> Self {
        Rows { layout, values }
    }

    /// Dense row-major rows; `values` must hold exactly `n_rows * n_cols` entries.
    pub fn dense(n_rows: usize, n_cols: usize, values: Values<'a>) -> Result<Self> {
        if n_rows.checked_mul(n_cols) != Some(values.len()) {
            return Err(Error::invalid(format!(
                "a dense {n_rows}x{n_cols} array needs {} values, got {}",
                n_rows.saturating_mul(n_cols),
                values.len()
            )));
        }
        Ok(Rows {
            layout: Layout::Dense { n_rows, n_cols },
            values,
        })
    }

    /// Number of rows.
    pub fn n_rows(&self) -> usize {
        match self.layout {
            Layout::CsrI32(csr) => csr.n_rows(),
            Layout::CsrI64(csr) => csr.n_rows(),
            Layout::Dense { n_rows, .. } => n_rows,
        }
    }
}

/// Which tensors to write and what to refuse.
#[derive(Clone, Copy, Debug)]
pub struct EncodeOptions {
    /// Tensor type of the features.
    pub features: TensorKind,
    /// Tensor type of the labels.
    pub labels: TensorKind,
    /// Refuse NaN and infinite feature values and labels.
    pub check_finite: bool,
}

impl Default for EncodeOptions {
    fn default() -> Self {
        EncodeOptions {
            features: TensorKind::Float32,
            labels: TensorKind::Float32,
            check_finite: false,
        }
    }
}

/// Encodes every row (with its label, when given) into framed records, handing the bytes to
/// `sink` in order, in owned chunks. Everything is validated before the first byte reaches `sink`
/// only per block; callers that need all-or-nothing output write to an [`super::AtomicFile`].
pub fn encode_rows(
    rows: &Rows,
    labels: Option<Values>,
    options: &EncodeOptions,
    monitor: &dyn Monitor,
    mut sink: impl FnMut(Vec<u8>) -> Result<()> + Send,
) -> Result<()> {
    let n_rows = rows.n_rows();
    if let Some(labels) = labels {
        if labels.len() != n_rows {
            return Err(Error::invalid(format!("{n_rows} rows but {} labels", labels.len())));
        }
    }
    // Block i is handed to `sink` while block i + 1 is encoded, so writing overlaps encoding.
    let mut pending: Vec<Vec<u8>> = Vec::new();
    let mut done = 0;
    while done < n_rows {
        let block_end = (done + BLOCK_ROWS).min(n_rows);
        let (written, encoded) = rayon::join(
            || pending.drain(..).try_for_each(&mut sink),
            || {
                (done..block_end)
                    .step_by(TASK_ROWS)
                    .collect::<Vec<_>>()
                    .into_par_iter()
                    .map(|start| encode_range(rows, labels, options, start..(start + TASK_ROWS).min(block_end)))
                    .collect::<Result<Vec<_>>>()
            },
        );
        written?;
        pending = encoded?;
        done = block_end;
        monitor.progress(done as u64)?;
    }
    pending.into_iter().try_for_each(sink)
}

/// Encodes rows `range` into one buffer.
fn encode_range(rows: &Rows, labels: Option<Values>, options: &EncodeOptions, range: Range<usize>) -> Result<Vec<u8>> {
    // Roughly the size of typical float32 rows, so that the buffer rarely has to grow.
    let mut out = Vec::with_capacity(range.len() * 64);
    with_values!(rows.values, values => match rows.layout {
        Layout::CsrI32(csr) => encode_sparse(&mut out, csr, values, labels, options, range),
        Layout::CsrI64(csr) => encode_sparse(&mut out, csr, values, labels, options, range),
        Layout::Dense { n_cols, .. } => encode_dense(&mut out, n_cols, values, labels, options, range),
    })?;
    Ok(out)
}

fn encode_sparse<I: CsrIndex, S: Scalar>(
    out: &mut Vec<u8>,
    csr: CsrView<I>,
    values: &[S],
    labels: Option<Values>,
    options: &EncodeOptions,
    range: Range<usize>,
) -> Result<()> {
    for row in range {
        let features = Features {
            values: &values[csr.row_range(row)],
            keys: Some((csr.row_indices(row), csr.n_cols())),
        };
        put_record(out, row, &features, labels, options)?;
    }
    Ok(())
}

fn encode_dense<S: Scalar>(
    out: &mut Vec<u8>,
    n_cols: usize,
    values: &[S],
    labels: Option<Values>,
    options: &EncodeOptions,
    range: Range<usize>,
) -> Result<()> {
    for row in range {
        let features = Features::<S, i32> {
            values: &values[row * n_cols..(row + 1) * n_cols],
            keys: None,
        };
        put_record(out, row, &features, labels, options)?;
    }
    Ok(())
}

/// One row's features: its values and, when sparse, its column keys and the column count.
struct Features<'a, S, I> {
    values: &'a [S],
    keys: Option<(&'a [I], u64)>,
}

/// Byte counts of a tensor's packed fields, computed once and used for both size and content.
struct TensorSizes {
    values: usize,
    keys: usize,
}

impl<S: Scalar, I: CsrIndex> Features<'_, S, I> {
    fn sizes(&self, row: usize, options: &EncodeOptions) -> Result<TensorSizes> {
        let values = checked_values_len(row, "value", self.values, options.features, options.check_finite)?;
        let keys = self
            .keys
            .map_or(0, |(keys, _)| keys.iter().map(|&k| varint_len(key(k))).sum());
        Ok(TensorSizes { values, keys })
    }

    /// Size of the `Float32Tensor`/`Float64Tensor`/`Int32Tensor` message.
    fn tensor_len(&self, sizes: &TensorSizes) -> usize {
        let shape = self.keys.map_or(0, |(_, n_cols)| len_field_size(varint_len(n_cols)));
        len_field_size(sizes.values) + len_field_size(sizes.keys) + shape
    }

    fn put_tensor(&self, out: &mut Vec<u8>, sizes: &TensorSizes, kind: TensorKind) {
        if sizes.values > 0 {
            put_len_header(out, 1, sizes.values);
            put_packed(out, kind, self.values);
        }
        if let Some((keys, n_cols)) = self.keys {
            if sizes.keys > 0 {
                put_len_header(out, 2, sizes.keys);
                for &k in keys {
                    put_varint(out, key(k));
                }
            }
            put_len_header(out, 3, varint_len(n_cols));
            put_varint(out, n_cols);
        }
    }
}

/// A validated CSR column index as the `uint64` key it is written as.
#[inline]
fn key<I: CsrIndex>(k: I) -> u64 {
    k.to_u64().unwrap_or(0)
}

/// Bytes of the packed values, or an error naming the row and the value that does not fit.
fn checked_values_len<S: Scalar>(
    row: usize,
    what: &str,
    values: &[S],
    kind: TensorKind,
    check_finite: bool,
) -> Result<usize> {
    if check_finite {
        if let Some(bad) = values.iter().find(|v| !v.is_finite()) {
            return Err(Error::invalid(format!("row {row}: {what} {bad:?} is not finite")));
        }
    }
    packed_len(kind, values).map_err(|i| {
        Error::invalid(format!(
            "row {row}: {what} {:?} does not fit in a {}",
            values[i],
            kind.name()
        ))
    })
}

/// Size of a map entry `{key: "values", value: Value{tensor}}` around a tensor of `tensor_len`.
fn entry_len(tensor_len: usize) -> usize {
    let value_len = 1 + varint_len(tensor_len as u64) + tensor_len;
    len_field_size(VALUES_KEY.len()) + 1 + varint_len(value_len as u64) + value_len
}

/// Appends `map_field { "values": Value { kind: <tensor of tensor_len bytes> } }`'s header.
fn put_entry_header(out: &mut Vec<u8>, map_field: u8, kind: TensorKind, tensor_len: usize) {
    put_len_header(out, map_field, entry_len(tensor_len));
    put_len_header(out, 1, VALUES_KEY.len());
    out.extend_from_slice(VALUES_KEY);
    put_len_header(out, 2, 1 + varint_len(tensor_len as u64) + tensor_len);
    put_len_header(out, kind.field(), tensor_len);
}

/// Appends one framed record.
fn put_record<S: Scalar, I: CsrIndex>(
    out: &mut Vec<u8>,
    row: usize,
    features: &Features<S, I>,
    labels: Option<Values>,
    options: &EncodeOptions,
) -> Result<()> {
    let sizes = features.sizes(row, options)?;
    let tensor_len = features.tensor_len(&sizes);
    let label_len = match labels {
        Some(labels) => Some(with_values!(labels, l => {
            checked_values_len(row, "label", &l[row..=row], options.labels, options.check_finite)
        })?),
        None => None,
    };
    let mut payload = len_field_size(entry_len(tensor_len));
    if let Some(label_len) = label_len {
        payload += len_field_size(entry_len(len_field_size(label_len)));
    }
    if payload > MAX_PAYLOAD {
        return Err(Error::invalid(format!(
            "row {row}: a record of {payload} bytes exceeds RecordIO's limit"
        )));
    }
    out.reserve(8 + payload + PAD);
    put_frame_header(out, payload);
    put_entry_header(out, 1, options.features, tensor_len);
    features.put_tensor(out, &sizes, options.features);
    if let (Some(labels), Some(label_len)) = (labels, label_len) {
        put_entry_header(out, 2, options.labels, len_field_size(label_len));
        put_len_header(out, 1, label_len);
        with_values!(labels, l => put_packed(out, options.labels, &l[row..=row]));
    }
    out.resize(out.len() + (PAD - payload % PAD) % PAD, 0);
    Ok(())
}
