//! Rows and labels into framed `aialgs.data.Record`s, byte for byte what the SageMaker SDK writes.
//!
//! Per row the SDK writes `features["values"]` as a tensor with the row's values, then (sparse
//! only) its column keys and `shape = [n_cols]`, then `label["values"]` as a one-element tensor.
//! Rows are encoded in parallel chunks that are emitted in order, so the bytes never depend on the
//! thread count.

use std::ops::Range;

use rayon::prelude::*;

use super::frame::{padded, HEADER, MAGIC, MAX_PAYLOAD};
use super::tensor::{packed_len, put_packed, Scalar, TensorKind};
use super::wire::{len_field_size, varint_len, Put};
use crate::csr::{column_error, CsrIndex, CsrView, Values};
use crate::error::{Error, Result};
use crate::parallel::Monitor;

/// Rows between two progress reports (and Ctrl-C checks).
const BLOCK_ROWS: usize = 1 << 17;
/// Rows encoded between two hand-overs to the sink (a divisor of [`BLOCK_ROWS`]): the buffers of
/// the stage being written and of the stage being encoded (~8 MB each for typical float32 rows)
/// mostly stay in the last-level cache, while stages are few enough (one synchronisation each)
/// that a thread descheduled on a busy machine rarely holds the other one up.
const STAGE_ROWS: usize = 1 << 16;
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

impl<'a> From<CsrView<'a, i32>> for Layout<'a> {
    fn from(view: CsrView<'a, i32>) -> Self {
        Layout::CsrI32(view)
    }
}

impl<'a> From<CsrView<'a, i64>> for Layout<'a> {
    fn from(view: CsrView<'a, i64>) -> Self {
        Layout::CsrI64(view)
    }
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

    /// Sparse rows from CSR arrays, checked as [`CsrView::new`] does, except that the column
    /// indices are checked by the encoder as it writes them (same error, one pass fewer).
    pub fn csr<I: CsrIndex>(indptr: &'a [I], indices: &'a [I], values: Values<'a>, n_cols: u64) -> Result<Self>
    where
        CsrView<'a, I>: Into<Layout<'a>>,
    {
        let view = CsrView::new_columns_unchecked(indptr, indices, values.len(), n_cols)?;
        Ok(Rows {
            layout: view.into(),
            values,
        })
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
/// `sink` in order, a task's worth of rows at a time. Everything is validated before the first
/// byte reaches `sink` only per stage; callers that need all-or-nothing output write to an
/// [`super::AtomicFile`].
///
/// The buffers are reused from stage to stage, and stage `i` is handed to `sink` while stage
/// `i + 1` is encoded, so writing overlaps encoding and memory stays bounded.
pub fn encode_rows(
    rows: &Rows,
    labels: Option<Values>,
    options: &EncodeOptions,
    monitor: &dyn Monitor,
    sink: impl FnMut(&[u8]) -> Result<()> + Send,
) -> Result<()> {
    encode_rows_reusing(&mut StageBuffers::default(), rows, labels, options, monitor, sink)
}

/// The buffers that [`encode_rows_reusing`] encodes into: about two stages of records (~16 MB for
/// typical float32 rows). A writer that encodes batch after batch keeps them, so that a batch
/// reuses the memory of the one before rather than allocating it again, growing it by doubling
/// (zeroing and copying) and taking a page fault for every 4 KiB of it.
#[derive(Default)]
pub struct StageBuffers {
    writing: Vec<StageBuffer>,
    encoding: Vec<StageBuffer>,
}

/// [`encode_rows`] into `buffers`, left holding their memory for the next call.
pub fn encode_rows_reusing(
    buffers: &mut StageBuffers,
    rows: &Rows,
    labels: Option<Values>,
    options: &EncodeOptions,
    monitor: &dyn Monitor,
    mut sink: impl FnMut(&[u8]) -> Result<()> + Send,
) -> Result<()> {
    let n_rows = rows.n_rows();
    check_labels(n_rows, labels)?;
    let StageBuffers { writing, encoding } = buffers;
    let mut n_writing = 0;
    let mut done = 0;
    while done < n_rows {
        let stage = done..(done + STAGE_ROWS).min(n_rows);
        let tasks = task_ranges(stage.clone());
        if encoding.len() < tasks.len() {
            encoding.resize_with(tasks.len(), StageBuffer::default);
        }
        let (written, encoded) = rayon::join(
            || writing[..n_writing].iter().try_for_each(|buf| sink(buf.bytes())),
            || {
                let results: Vec<Result<()>> = encoding[..tasks.len()]
                    .par_iter_mut()
                    .zip(tasks.par_iter())
                    .map(|(buf, range)| {
                        buf.used = 0;
                        encode_range(rows, labels, options, range.clone(), buf)
                    })
                    .collect();
                first_error(results)
            },
        );
        written?;
        encoded?;
        std::mem::swap(writing, encoding);
        n_writing = tasks.len();
        done = stage.end;
        if done % BLOCK_ROWS == 0 || done == n_rows {
            monitor.progress(done as u64)?;
        }
    }
    writing[..n_writing].iter().try_for_each(|buf| sink(buf.bytes()))
}

/// The exact encoded size of every row, validated, ready for [`encode_into`].
pub struct EncodedSize {
    tasks: Vec<usize>,
}

impl EncodedSize {
    /// Total bytes of the encoded rows.
    pub fn total(&self) -> usize {
        self.tasks.iter().sum()
    }
}

/// Validates every row and computes the bytes [`encode_into`] will write, in parallel.
pub fn encoded_size(rows: &Rows, labels: Option<Values>, options: &EncodeOptions) -> Result<EncodedSize> {
    check_labels(rows.n_rows(), labels)?;
    let results: Vec<Result<usize>> = task_ranges(0..rows.n_rows())
        .into_par_iter()
        .map(|range| {
            let mut size = SizeOnly(0);
            encode_range(rows, labels, options, range, &mut size)?;
            Ok(size.0)
        })
        .collect();
    let tasks = results.into_iter().collect::<Result<Vec<_>>>()?;
    Ok(EncodedSize { tasks })
}

/// Encodes every row into `out`, which must be exactly [`EncodedSize::total`] bytes, in parallel,
/// each task writing its own part of `out` in place.
pub fn encode_into(
    rows: &Rows,
    labels: Option<Values>,
    options: &EncodeOptions,
    size: &EncodedSize,
    monitor: &dyn Monitor,
    out: &mut [u8],
) -> Result<()> {
    let changed = || Error::invalid("the input arrays changed while they were being encoded");
    let n_rows = rows.n_rows();
    let ranges = task_ranges(0..n_rows);
    if out.len() != size.total() || ranges.len() != size.tasks.len() {
        return Err(changed());
    }
    let mut parts = Vec::with_capacity(ranges.len());
    let mut rest = out;
    for &len in &size.tasks {
        let (head, tail) = std::mem::take(&mut rest).split_at_mut(len);
        parts.push(head);
        rest = tail;
    }
    let tasks_per_block = BLOCK_ROWS / TASK_ROWS;
    for (block, (ranges, parts)) in ranges
        .chunks(tasks_per_block)
        .zip(parts.chunks_mut(tasks_per_block))
        .enumerate()
    {
        let results: Vec<Result<()>> = parts
            .par_iter_mut()
            .zip(ranges.par_iter())
            .map(|(part, range)| {
                let mut slot = InPlace(std::mem::take(part));
                encode_range(rows, labels, options, range.clone(), &mut slot)?;
                if slot.0.is_empty() {
                    Ok(())
                } else {
                    Err(changed())
                }
            })
            .collect();
        first_error(results)?;
        monitor.progress(((block + 1) * BLOCK_ROWS).min(n_rows) as u64)?;
    }
    Ok(())
}

fn check_labels(n_rows: usize, labels: Option<Values>) -> Result<()> {
    match labels {
        Some(labels) if labels.len() != n_rows => {
            Err(Error::invalid(format!("{n_rows} rows but {} labels", labels.len())))
        }
        _ => Ok(()),
    }
}

/// `range` cut into the rows of parallel tasks.
fn task_ranges(range: Range<usize>) -> Vec<Range<usize>> {
    range
        .clone()
        .step_by(TASK_ROWS)
        .map(|start| start..(start + TASK_ROWS).min(range.end))
        .collect()
}

/// The first error in task order (so that it does not depend on the thread count).
fn first_error(results: Vec<Result<()>>) -> Result<()> {
    results.into_iter().collect()
}

/// Where the records of one task go: each record asks for exactly its size and fills all of it.
trait Out {
    /// The next `len` bytes; `None` when a size computed beforehand no longer holds.
    fn next(&mut self, len: usize) -> Option<&mut [u8]>;
}

/// A buffer reused from stage to stage: `buf` only grows, and its first `used` bytes hold the
/// records encoded so far (the rest is left over from earlier stages and gets overwritten).
#[derive(Default)]
struct StageBuffer {
    buf: Vec<u8>,
    used: usize,
}

impl StageBuffer {
    fn bytes(&self) -> &[u8] {
        &self.buf[..self.used]
    }
}

impl Out for StageBuffer {
    #[inline]
    fn next(&mut self, len: usize) -> Option<&mut [u8]> {
        let start = self.used;
        self.used += len;
        if self.buf.len() < self.used {
            self.buf.resize(self.used.max(2 * self.buf.len()), 0);
        }
        self.buf.get_mut(start..self.used)
    }
}

/// Fills a slice sized beforehand by [`encoded_size`].
struct InPlace<'a>(&'a mut [u8]);

impl Out for InPlace<'_> {
    #[inline]
    fn next(&mut self, len: usize) -> Option<&mut [u8]> {
        if len > self.0.len() {
            return None;
        }
        let (head, tail) = std::mem::take(&mut self.0).split_at_mut(len);
        self.0 = tail;
        Some(head)
    }
}

/// Only counts bytes (and validates): the first pass of encoding in place.
struct SizeOnly(usize);

/// Encodes rows `range` into `out`.
fn encode_range(
    rows: &Rows,
    labels: Option<Values>,
    options: &EncodeOptions,
    range: Range<usize>,
    out: &mut impl Sink,
) -> Result<()> {
    let template = Template::new(rows, options);
    let enc = Encoder {
        labels,
        options,
        template: &template,
    };
    with_values!(rows.values, values => match rows.layout {
        Layout::CsrI32(csr) => encode_sparse(out, csr, values, &enc, range),
        Layout::CsrI64(csr) => encode_sparse(out, csr, values, &enc, range),
        Layout::Dense { n_cols, .. } => encode_dense(out, n_cols, values, &enc, range),
    })
}

/// What every record of a call shares: the labels, the options and the constant bytes.
struct Encoder<'a> {
    labels: Option<Values<'a>>,
    options: &'a EncodeOptions,
    template: &'a Template,
}

/// A few bytes that every record repeats, written as one slice.
#[derive(Clone, Copy, Default)]
struct Piece {
    bytes: [u8; 16],
    len: usize,
}

impl Piece {
    /// The bytes `write` puts (at most 16).
    fn of(write: impl FnOnce(&mut Put)) -> Self {
        let mut bytes = [0; 16];
        let mut put = Put::new(&mut bytes);
        write(&mut put);
        let len = put.pos();
        Piece { bytes, len }
    }

    #[inline(always)]
    fn bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// The bytes computed once per call rather than per record.
struct Template {
    /// A sparse tensor's `shape = [n_cols]` field (empty for dense rows).
    shape: Piece,
    /// The label entry up to its packed value, for each byte count of that value (1 to 10:
    /// float32 and float64 take 4 and 8, an int32 varint 1 to 10).
    label_heads: [Piece; 11],
}

impl Template {
    fn new(rows: &Rows, options: &EncodeOptions) -> Self {
        let n_cols = match rows.layout {
            Layout::CsrI32(csr) => Some(csr.n_cols()),
            Layout::CsrI64(csr) => Some(csr.n_cols()),
            Layout::Dense { .. } => None,
        };
        let shape = Piece::of(|out| {
            if let Some(n_cols) = n_cols {
                out.len_header(3, varint_len(n_cols));
                out.varint(n_cols);
            }
        });
        let mut label_heads = [Piece::default(); 11];
        for (label_len, head) in label_heads.iter_mut().enumerate().skip(1) {
            *head = Piece::of(|out| {
                let tensor = len_field_size(label_len);
                put_entry_header(out, 2, options.labels, tensor, entry_len(tensor));
                out.len_header(1, label_len);
            });
        }
        Template { shape, label_heads }
    }
}

/// What [`put_record`] hands a planned record to: a place to write it, or a byte count.
trait Sink {
    /// Writes (or counts) one record of `plan`.
    fn record<S: Scalar>(
        &mut self,
        plan: &Plan,
        features: &Features<S>,
        label: Option<Values>,
        enc: &Encoder,
    ) -> Result<()>;
}

impl<O: Out> Sink for O {
    #[inline]
    fn record<S: Scalar>(
        &mut self,
        plan: &Plan,
        features: &Features<S>,
        label: Option<Values>,
        enc: &Encoder,
    ) -> Result<()> {
        let out = self
            .next(plan.framed())
            .ok_or_else(|| Error::invalid("the input arrays changed while they were being encoded"))?;
        write_record(&mut Put::new(out), plan, features, label, enc);
        Ok(())
    }
}

impl Sink for SizeOnly {
    #[inline]
    fn record<S: Scalar>(&mut self, plan: &Plan, _: &Features<S>, _: Option<Values>, _: &Encoder) -> Result<()> {
        self.0 += plan.framed();
        Ok(())
    }
}

fn encode_sparse<I: CsrIndex, S: Scalar>(
    out: &mut impl Sink,
    csr: CsrView<I>,
    values: &[S],
    enc: &Encoder,
    range: Range<usize>,
) -> Result<()> {
    // Each row's keys are written as varints here first, which also gives their size.
    let mut keys = Vec::new();
    let n_cols = csr.n_cols();
    for row in range {
        let row_keys = csr.row_indices(row);
        let most = 10 * row_keys.len();
        if keys.len() < most {
            keys.resize(most, 0);
        }
        let mut put = Put::new(&mut keys);
        for &k in row_keys {
            // Checked here rather than in a pass of its own (see `Rows::csr`).
            match k.to_u64() {
                Some(column) if column < n_cols => put.varint(column),
                _ => return Err(column_error(row, k, n_cols)),
            }
        }
        let n_key_bytes = put.pos();
        let features = Features {
            values: &values[csr.row_range(row)],
            keys: Some(&keys[..n_key_bytes]),
        };
        put_record(out, row, &features, enc)?;
    }
    Ok(())
}

fn encode_dense<S: Scalar>(
    out: &mut impl Sink,
    n_cols: usize,
    values: &[S],
    enc: &Encoder,
    range: Range<usize>,
) -> Result<()> {
    for row in range {
        let features = Features {
            values: &values[row * n_cols..(row + 1) * n_cols],
            keys: None,
        };
        put_record(out, row, &features, enc)?;
    }
    Ok(())
}

/// One row's features: its values and, when sparse, its column keys (already encoded as packed
/// varints).
struct Features<'a, S> {
    values: &'a [S],
    keys: Option<&'a [u8]>,
}

/// A record's byte counts, computed once and used for both its size and its content.
struct Plan {
    /// Packed feature values.
    values: usize,
    /// Packed feature keys.
    keys: usize,
    /// The feature tensor message.
    tensor: usize,
    /// The features' `Value` message, around the tensor.
    value: usize,
    /// The features' map entry, around the `Value`.
    entry: usize,
    /// Packed label value, when there is a label.
    label: Option<usize>,
    /// The `Record` message.
    payload: usize,
}

impl Plan {
    /// Bytes of the framed record: header, payload and padding.
    #[inline]
    fn framed(&self) -> usize {
        HEADER + padded(self.payload)
    }
}

impl<S: Scalar> Features<'_, S> {
    #[inline(always)]
    fn put_tensor(&self, out: &mut Put, plan: &Plan, kind: TensorKind, template: &Template) {
        if plan.values > 0 {
            out.len_header(1, plan.values);
            put_packed(out, kind, self.values, plan.values);
        }
        if let Some(keys) = self.keys {
            if plan.keys > 0 {
                out.len_header(2, plan.keys);
                out.bytes(keys);
            }
        }
        out.bytes(template.shape.bytes());
    }
}

/// Bytes of the packed values, or an error naming the row and the value that does not fit.
#[inline(always)]
fn checked_values_len<S: Scalar>(
    row: usize,
    what: &str,
    values: &[S],
    kind: TensorKind,
    check_finite: bool,
) -> Result<usize> {
    if check_finite && !values.iter().all(|v| v.is_finite()) {
        return Err(not_finite(row, what, values));
    }
    packed_len(kind, values).map_err(|i| does_not_fit(row, what, values, i, kind))
}

#[cold]
#[inline(never)]
fn not_finite<S: Scalar>(row: usize, what: &str, values: &[S]) -> Error {
    let bad = values.iter().find(|v| !v.is_finite());
    let shown = bad.map_or_else(String::new, |bad| format!("{bad:?} "));
    Error::invalid(format!("row {row}: {what} {shown}is not finite"))
}

#[cold]
#[inline(never)]
fn does_not_fit<S: Scalar>(row: usize, what: &str, values: &[S], i: usize, kind: TensorKind) -> Error {
    Error::invalid(format!(
        "row {row}: {what} {:?} does not fit in a {}",
        values[i],
        kind.name()
    ))
}

/// Size of the `Value { kind: <tensor of tensor_len bytes> }` message.
#[inline(always)]
fn value_len(tensor_len: usize) -> usize {
    1 + varint_len(tensor_len as u64) + tensor_len
}

/// Size of a map entry `{key: "values", value: Value{tensor}}` around a value of `value_len`.
#[inline(always)]
fn entry_len_of_value(value_len: usize) -> usize {
    ENTRY_KEY.len() + 1 + varint_len(value_len as u64) + value_len
}

/// Size of a map entry `{key: "values", value: Value{tensor}}` around a tensor of `tensor_len`.
#[inline]
fn entry_len(tensor_len: usize) -> usize {
    entry_len_of_value(value_len(tensor_len))
}

/// The map entry's key field, `key: "values"`: the same in every entry.
const ENTRY_KEY: [u8; 2 + VALUES_KEY.len()] = {
    let mut key = [0; 2 + VALUES_KEY.len()];
    key[0] = super::wire::tag(1, super::wire::LEN);
    key[1] = VALUES_KEY.len() as u8;
    let mut i = 0;
    while i < VALUES_KEY.len() {
        key[2 + i] = VALUES_KEY[i];
        i += 1;
    }
    key
};

/// Writes `map_field { "values": Value { kind: <tensor of tensor_len bytes> } }`'s header, whose
/// entry is `entry` bytes long.
#[inline(always)]
fn put_entry_header(out: &mut Put, map_field: u8, kind: TensorKind, tensor_len: usize, entry: usize) {
    out.len_header(map_field, entry);
    out.bytes(&ENTRY_KEY);
    out.len_header(2, value_len(tensor_len));
    out.len_header(kind.field(), tensor_len);
}

/// Validates and sizes one record, and hands it to `out`.
#[inline]
fn put_record<S: Scalar>(out: &mut impl Sink, row: usize, features: &Features<S>, enc: &Encoder) -> Result<()> {
    let options = enc.options;
    let values = checked_values_len(row, "value", features.values, options.features, options.check_finite)?;
    let keys = features.keys.map_or(0, <[u8]>::len);
    let tensor = len_field_size(values) + len_field_size(keys) + enc.template.shape.len;
    let value = value_len(tensor);
    let entry = entry_len_of_value(value);
    let label_values = enc.labels.map(|labels| labels.slice(row..row + 1));
    let label = match label_values {
        Some(l) => Some(with_values!(l, l => {
            checked_values_len(row, "label", l, options.labels, options.check_finite)
        })?),
        None => None,
    };
    let mut payload = 1 + varint_len(entry as u64) + entry;
    if let Some(label) = label {
        payload += enc.template.label_heads[label].len + label;
    }
    if payload > MAX_PAYLOAD {
        return Err(too_large(row, payload));
    }
    let plan = Plan {
        values,
        keys,
        tensor,
        value,
        entry,
        label,
        payload,
    };
    out.record(&plan, features, label_values, enc)
}

#[cold]
#[inline(never)]
fn too_large(row: usize, payload: usize) -> Error {
    Error::invalid(format!(
        "row {row}: a record of {payload} bytes exceeds RecordIO's limit"
    ))
}

/// Writes one framed record of `plan` into `out`, which holds exactly `plan.framed()` bytes.
#[inline]
fn write_record<S: Scalar>(out: &mut Put, plan: &Plan, features: &Features<S>, label: Option<Values>, enc: &Encoder) {
    let options = enc.options;
    out.bytes(&(u64::from(MAGIC) | (plan.payload as u64) << 32).to_le_bytes());
    out.len_header(1, plan.entry);
    out.bytes(&ENTRY_KEY);
    out.len_header(2, plan.value);
    out.len_header(options.features.field(), plan.tensor);
    features.put_tensor(out, plan, options.features, enc.template);
    if let (Some(label), Some(label_len)) = (label, plan.label) {
        // Every label of a call has the same head up to its value, for the value's byte count.
        out.bytes(enc.template.label_heads[label_len].bytes());
        with_values!(label, l => put_packed(out, options.labels, l, label_len));
    }
    out.zero_rest();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parallel::Unmonitored;

    fn encoded(rows: &Rows, labels: Option<Values>) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        encode_rows(rows, labels, &EncodeOptions::default(), &Unmonitored, |chunk| {
            out.extend_from_slice(chunk);
            Ok(())
        })?;
        Ok(out)
    }

    #[test]
    fn csr_rows_check_their_columns_while_encoding() {
        let (indptr, values) = ([0i64, 1, 2], [1.0f32, 2.0]);
        let labels = Some(Values::F32(&[0.0, 1.0]));
        let good = Rows::csr(&indptr, &[1, 2], Values::F32(&values), 3).unwrap();
        let view = CsrView::new(&indptr, &[1i64, 2], 2, 3).unwrap();
        let checked = Rows::sparse(Layout::CsrI64(view), Values::F32(&values));
        assert_eq!(encoded(&good, labels).unwrap(), encoded(&checked, labels).unwrap());
        for (indices, message) in [
            ([1i64, 3], "row 1 has column 3, outside 0..3"),
            ([-1, 0], "row 0 has column a negative index"),
        ] {
            let rows = Rows::csr(&indptr, &indices, Values::F32(&values), 3).unwrap();
            let err = encoded(&rows, labels).unwrap_err().to_string();
            assert!(err.contains(message), "{err}");
            let err = encoded_size(&rows, labels, &EncodeOptions::default())
                .err()
                .unwrap()
                .to_string();
            assert!(err.contains(message), "{err}");
        }
        let err = Rows::csr(&indptr, &[0i64], Values::F32(&values), 3)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("1 indices but 2 values"), "{err}");
    }

    #[test]
    #[cfg_attr(
        miri,
        ignore = "too slow for miri: more than STAGE_ROWS rows; encoding_in_place_matches_the_stream runs the encoder"
    )]
    fn buffers_reused_by_later_calls_leave_nothing_of_earlier_ones() {
        // Wide rows first (large buffers), then narrower ones and fewer: stale bytes would show.
        let mut buffers = StageBuffers::default();
        for (n, width) in [(STAGE_ROWS + 5000, 9usize), (TASK_ROWS + 3, 2), (7, 0)] {
            let indptr: Vec<i64> = (0..=n).map(|r| (r * width) as i64).collect();
            let indices: Vec<i64> = (0..n * width).map(|i| (i % 1000) as i64).collect();
            let values: Vec<f32> = (0..n * width).map(|i| i as f32).collect();
            let labels: Vec<f32> = (0..n).map(|i| i as f32).collect();
            let rows = Rows::csr(&indptr, &indices, Values::F32(&values), 1000).unwrap();
            let labels = Some(Values::F32(&labels));
            let mut reused = Vec::new();
            encode_rows_reusing(
                &mut buffers,
                &rows,
                labels,
                &EncodeOptions::default(),
                &Unmonitored,
                |chunk| {
                    reused.extend_from_slice(chunk);
                    Ok(())
                },
            )
            .unwrap();
            assert_eq!(reused, encoded(&rows, labels).unwrap(), "{n} rows of {width}");
        }
    }

    #[test]
    fn encoding_in_place_matches_the_stream() {
        // Fewer rows under miri, which interprets every byte written.
        let n: i32 = if cfg!(miri) { 100 } else { 5000 };
        let indptr: Vec<i32> = (0..=n).map(|r| r * 3).collect();
        let indices: Vec<i32> = (0..3 * n).map(|i| (i * 7919) % 300_000).collect();
        let mut sorted = indices.clone();
        sorted.chunks_mut(3).for_each(|row| row.sort_unstable());
        let values: Vec<f64> = (0..3 * n).map(|i| f64::from(i) / 7.0).collect();
        let labels: Vec<i64> = (0..i64::from(n)).collect();
        let rows = Rows::csr(&indptr, &sorted, Values::F64(&values), 300_000).unwrap();
        let labels = Some(Values::I64(&labels));
        let streamed = encoded(&rows, labels).unwrap();
        let size = encoded_size(&rows, labels, &EncodeOptions::default()).unwrap();
        assert_eq!(size.total(), streamed.len());
        let mut in_place = vec![0xaa; size.total()];
        encode_into(
            &rows,
            labels,
            &EncodeOptions::default(),
            &size,
            &Unmonitored,
            &mut in_place,
        )
        .unwrap();
        assert_eq!(in_place, streamed);
    }
}
