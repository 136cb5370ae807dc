//! Decoding in parallel: blocks of frames split into tasks of [`TASK_RECORDS`] records, each
//! decoded into its own `Chunk`, then appended in order to output arrays sized once from the
//! first block, with progress reports between blocks.

use std::ops::Deref;

use rayon::prelude::*;

use super::decoded::{Decoded, FeatureValues, Indices, Signature};
use super::record::Chunk;
use crate::csr::CsrIndex;
use crate::error::{Error, Result};
use crate::memory::advise_huge_pages;
use crate::parallel::Monitor;
use crate::recordio::frame::{Frame, FrameScanner};
use crate::recordio::tensor::TensorKind;

/// Records decoded by one parallel task.
pub(super) const TASK_RECORDS: usize = 4096;
/// Records decoded between two progress reports (and Ctrl-C checks).
pub(crate) const PROGRESS_RECORDS: usize = 1 << 17;
/// Records decoded in parallel before their values are appended to the output arrays: few
/// enough that the tasks' intermediate arrays (reused from block to block, ~6 MB for typical
/// float32 records) mostly stay in the last-level cache until they are copied, many enough that
/// the synchronisations between blocks are rare (on a busy machine each one can wait for a
/// descheduled thread).
pub(super) const BLOCK_RECORDS: usize = 1 << 16;

/// Decodes `frames` into one CSR matrix, in parallel, reporting progress in records.
pub fn decode_records(frames: &[Frame], monitor: &dyn Monitor) -> Result<Decoded> {
    let payload_bytes = frames.iter().map(|f| f.payload.len()).sum();
    let mut blocks = frames.chunks(BLOCK_RECORDS);
    decode_blocks(
        || Ok(blocks.next()),
        payload_bytes,
        &mut DecodeScratch::default(),
        monitor,
    )
}

/// Decodes a whole RecordIO stream held in memory, a block of frames at a time.
pub fn decode_buffer(bytes: &[u8], monitor: &dyn Monitor) -> Result<Decoded> {
    decode_scanned(
        &mut FrameScanner::new(bytes, 0),
        usize::MAX,
        &mut DecodeScratch::default(),
        monitor,
    )
}

/// The tasks' intermediate arrays, kept from call to call by a caller that decodes a stream a batch
/// at a time: memory freed between batches would be given back to the system and mapped (page
/// faults, zeroing) again for the next.
#[derive(Default)]
pub struct DecodeScratch {
    narrow: Vec<Chunk<i32>>,
    wide: Vec<Chunk<i64>>,
}

/// Decodes the next `max_records` records (fewer at the end) that `scanner` finds, a block of
/// frames at a time (each block's frames are found while the previous block is decoded); the
/// scanner is left after the last of them.
pub fn decode_scanned(
    scanner: &mut FrameScanner,
    max_records: usize,
    scratch: &mut DecodeScratch,
    monitor: &dyn Monitor,
) -> Result<Decoded> {
    let size_bound = scanner.remaining();
    let mut left = max_records;
    decode_blocks(
        || {
            let block = scanner.next_block(BLOCK_RECORDS.min(left))?;
            left -= block.len();
            Ok((!block.is_empty()).then_some(block))
        },
        size_bound,
        scratch,
        monitor,
    )
}

/// Decodes the blocks `next` yields; `size_bound` bounds the payload bytes in all of them.
fn decode_blocks<'f, B: Deref<Target = [Frame<'f>]> + Send + Sync>(
    mut next: impl FnMut() -> Result<Option<B>> + Send,
    size_bound: usize,
    scratch: &mut DecodeScratch,
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
    let decoded = if narrow_indices(n_cols, size_bound) {
        let (n_rows, indptr, indices, values, labels) =
            decode_as::<i32, B>(first, next, size_bound, &mut scratch.narrow, monitor)?;
        (n_rows, Indices::I32 { indptr, indices }, values, labels)
    } else {
        let (n_rows, indptr, indices, values, labels) =
            decode_as::<i64, B>(first, next, size_bound, &mut scratch.wide, monitor)?;
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

/// Whether records of `n_cols` columns in `size_bound` bytes are decoded with int32 indices (as
/// scipy would index them), not int64: every stored value takes at least one byte, so `size_bound`
/// also bounds the number of values.
pub(super) fn narrow_indices(n_cols: u64, size_bound: usize) -> bool {
    n_cols <= i32::MAX as u64 && size_bound <= i32::MAX as usize
}

type Parts<I> = (usize, Vec<I>, Vec<I>, FeatureValues, Option<FeatureValues>);

fn decode_as<'f, I: CsrIndex, B: Deref<Target = [Frame<'f>]> + Send + Sync>(
    first: Option<B>,
    mut next: impl FnMut() -> Result<Option<B>> + Send,
    size_bound: usize,
    all_chunks: &mut Vec<Chunk<I>>,
    monitor: &dyn Monitor,
) -> Result<Parts<I>> {
    let zero = I::from_u64(0).ok_or_else(|| Error::invalid("index type cannot hold 0"))?;
    let mut indptr = vec![zero];
    let (mut indices, mut values, mut labels) = (Vec::new(), None::<FeatureValues>, None::<FeatureValues>);
    let mut signature: Option<Signature> = None;
    let mut block = first;
    // Reused from block to block (and from call to call, by a stream).
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
pub(super) fn extrapolate(part: usize, part_bytes: usize, size_bound: usize) -> usize {
    let scaled = part as f64 * size_bound as f64 / part_bytes.max(1) as f64;
    (scaled.ceil() as usize).clamp(part, size_bound.max(part))
}

/// Makes room for `capacity` elements in all in `dst`, in one allocation backed by huge pages
/// where the system allows it (output arrays are fresh memory: each 4 KiB page would otherwise
/// cost a page fault). Later growth, should the estimate fall short, is ordinary `Vec` growth; so
/// is all growth when the system refuses the estimate's address space.
pub(super) fn reserve_output<T>(dst: &mut Vec<T>, capacity: usize) {
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
