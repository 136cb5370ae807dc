//! Mini-batch training: the O(k · nnz) gradient, lazily applied, in parallel and deterministic.
//!
//! # Batch order
//! Rows are visited in their stored order, every epoch, in consecutive mini-batches of
//! `batch_size` rows (the last one may be shorter). SageMaker FM reads its RecordIO channel
//! sequentially and does not shuffle; callers who want shuffling permute the rows themselves.
//!
//! # Threads
//! An epoch is trained in segments of about `SEGMENT_ROWS` rows. The threads of a segment (at most
//! one per `MIN_PARALLEL_ROWS` batch rows) stay up for the whole segment and meet at a spinning
//! barrier twice a batch; no per-batch task is spawned. With
//! [`TrainConfig::adaptive_threads`], each segment runs on all the threads or on one, whichever
//! measured faster: two threads can lose to one when a batch is little work (small `k`, a model
//! that fits the caches) or when the cores are shared, as on small virtual machines.
//!
//! # One mini-batch
//! 1. Each thread, over its contiguous share of the rows: ŷ and `s_f = Σᵢ v_if xᵢ` with the
//!    weights as they were before the batch, the loss, and the gradient scale
//!    `g_r = ∂ℓ/∂ŷ · sample_weight · rescale_grad` (∂ℓ/∂ŷ = ŷ − y for the regressor,
//!    σ(ŷ) − y for the classifier). The weights of rows a few ahead are prefetched. With several
//!    threads, each also files its rows' entries under the part of the features that owns them
//!    (a hash of the feature's block of `OWNER_BLOCK` picks the part).
//! 2. Thread 0 adds the loss statistics and the bias gradient `Σ_r g_r` in row order and updates
//!    the bias. For each part, one thread takes the part's entries in row order, summing
//!    `∂/∂wᵢ = Σ_r g_r x_ri`, `Σ_r g_r x_ri²` and `Σ_r g_r x_ri s_rf` into a slot per feature
//!    (found through a per-feature mark, so nothing is sorted by feature); then it forms
//!    `∂/∂v_if = Σ_r g_r x_ri s_rf − v_if Σ_r g_r x_ri²` (so `V` is read once a feature, not once
//!    an entry) and applies the optimizer update to row `i` of `w` and `V` and of its state
//!    ([`super::optim`]), prefetching the rows of the features a few ahead. Rows of absent
//!    features are never touched.
//!
//! Every sum is taken in row order whatever the thread count, so results are bit-identical for
//! any `n_threads`, not only for a fixed one, and for any choice of the adaptive thread count.

use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use rayon::prelude::*;

use super::model::{check_values, Task, Weights, WeightsMut};
use super::optim::Optimizer;
use super::{log_loss, sigmoid, Feature};
use crate::csr::{CsrIndex, CsrView, Values};
use crate::error::{Error, Result};
use crate::parallel::Monitor;

/// What one call to [`fit_epochs`] does.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainConfig {
    /// Loss to minimise.
    pub task: Task,
    /// Passes over the data.
    pub epochs: usize,
    /// Rows per mini-batch (`mini_batch_size`).
    pub batch_size: usize,
    /// Update rule and its hyperparameters.
    pub optimizer: Optimizer,
    /// Let measurement decide, every few dozen batches, whether the pool's threads or a single one
    /// train them (more threads do not always pay: small batches, small `k`, shared cores); with
    /// `false`, every thread of the pool takes part. Results are the same either way.
    pub adaptive_threads: bool,
}

/// Optimizer state (`f32`, see [`super::optim`]) owned by the caller, weight-major: the [`super::OptimizerKind::n_slots`] slots
/// (Adam: m then v; AdaGrad: h; SGD: none) of a row sit together, `[feature][slot]` for the
/// linear weights and `[feature][slot][factor]` for the factors, so one update touches adjacent
/// memory.
pub struct OptimizerState<'a> {
    pub(crate) bias: &'a mut [f32],
    pub(crate) linear: &'a mut [f32],
    pub(crate) factors: &'a mut [f32],
    /// Updates applied so far (Adam's `t`); incremented once per mini-batch.
    pub t: u64,
}

impl<'a> OptimizerState<'a> {
    /// State of `n_slots` (bias), `d × n_slots` (linear) and `d × n_slots × k` (factors)
    /// values, checked against the weights by [`fit_epochs`].
    pub fn new(bias: &'a mut [f32], linear: &'a mut [f32], factors: &'a mut [f32], t: u64) -> Self {
        OptimizerState {
            bias,
            linear,
            factors,
            t,
        }
    }
}

/// Training statistics of one epoch, gathered with the weights each row saw during the pass.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct EpochStats {
    /// Rows seen.
    pub rows: u64,
    /// Σ (ŷ − y)² (regressor) or Σ log loss (classifier), unweighted.
    pub loss_sum: f64,
    /// Classifier only: rows with label 1 scored σ(ŷ) ≥ 0.5.
    pub true_positives: u64,
    /// Classifier only: rows with label 0 scored σ(ŷ) ≥ 0.5.
    pub false_positives: u64,
    /// Classifier only: rows with label 0 scored σ(ŷ) < 0.5.
    pub true_negatives: u64,
    /// Classifier only: rows with label 1 scored σ(ŷ) < 0.5.
    pub false_negatives: u64,
}

/// Rows between two progress reports.
const PROGRESS_ROWS: u64 = 1 << 16;

/// Trains for `config.epochs` passes over `x`, updating `weights` and `state` in place, and
/// returns the statistics of each epoch. `labels` (and `sample_weight`, which scales each row's
/// gradient) hold one value per row; the labels keep their own dtype (float32 labels are not copied).
///
/// Non-finite predictions or weights stop training with [`Error::Diverged`]; the weights are then
/// left as they were at that point.
#[allow(clippy::too_many_arguments)]
pub fn fit_epochs<I: CsrIndex, M: Monitor + ?Sized>(
    x: &CsrView<'_, I>,
    values: Values<'_>,
    labels: Values<'_>,
    sample_weight: Option<&[f64]>,
    weights: &mut WeightsMut<'_>,
    state: &mut OptimizerState<'_>,
    config: &TrainConfig,
    monitor: &M,
) -> Result<Vec<EpochStats>> {
    check_config(config, weights, state)?;
    weights.view().check_columns(x.n_cols())?;
    check_values(x, values.len())?;
    check_rows(x.n_rows(), labels, sample_weight, config.task)?;
    with_values!(values, v => {
        check_finite(x, v)?;
        let data = Data {
            x,
            values: v,
            labels,
            sample_weight,
        };
        train(&data, weights, state, config, monitor)
    })
}

fn check_config(config: &TrainConfig, weights: &WeightsMut<'_>, state: &OptimizerState<'_>) -> Result<()> {
    if config.batch_size == 0 || u32::try_from(config.batch_size).is_err() {
        return Err(Error::invalid(format!(
            "mini_batch_size must lie in 1..2^32, got {}",
            config.batch_size
        )));
    }
    config.optimizer.validate()?;
    let slots = config.optimizer.kind.n_slots();
    let d = weights.linear.len();
    let expected = [
        ("bias", state.bias.len(), slots),
        ("linear", state.linear.len(), slots * d),
        ("factors", state.factors.len(), slots * weights.factors.len()),
    ];
    for (name, got, want) in expected {
        if got != want {
            return Err(Error::invalid(format!(
                "{name} optimizer state holds {got} values, {:?} needs {want}",
                config.optimizer.kind
            )));
        }
    }
    Ok(())
}

fn check_rows(n_rows: usize, labels: Values<'_>, sample_weight: Option<&[f64]>, task: Task) -> Result<()> {
    if labels.len() != n_rows {
        return Err(Error::invalid(format!(
            "X has {n_rows} rows but y has {} labels",
            labels.len()
        )));
    }
    if let Some(row) = (0..n_rows).find(|&row| !labels.get(row).is_finite()) {
        return Err(Error::invalid(format!(
            "label of row {row} is not finite: {}",
            labels.get(row)
        )));
    }
    if task == Task::BinaryClassifier {
        if let Some(row) = (0..n_rows).find(|&row| !matches!(labels.get(row), 0.0 | 1.0)) {
            return Err(Error::invalid(format!(
                "label of row {row} is {}; binary_classifier labels must be 0 or 1",
                labels.get(row)
            )));
        }
    }
    if let Some(weight) = sample_weight {
        if weight.len() != n_rows {
            return Err(Error::invalid(format!(
                "X has {n_rows} rows but sample_weight has {} values",
                weight.len()
            )));
        }
        if let Some(row) = weight.iter().position(|w| !(w.is_finite() && *w >= 0.0)) {
            return Err(Error::invalid(format!(
                "sample_weight of row {row} must be finite and >= 0, got {}",
                weight[row]
            )));
        }
    }
    Ok(())
}

fn check_finite<I: CsrIndex, T: Feature>(x: &CsrView<'_, I>, values: &[T]) -> Result<()> {
    // Whole chunks are tested without early exits (so that the test vectorises), and only the
    // first bad chunk is searched: a per-value `position_first` cost a quarter of an epoch.
    const CHUNK: usize = 1 << 16;
    let finite = |v: &T| v.to_f64().is_finite();
    let bad_chunk = values
        .par_chunks(CHUNK)
        .position_first(|chunk| !chunk.iter().fold(true, |all, v| all & finite(v)));
    let Some(at) = bad_chunk.and_then(|c| Some(c * CHUNK + values[c * CHUNK..].iter().position(|v| !finite(v))?))
    else {
        return Ok(());
    };
    // The first row whose entries end after `at`.
    let (mut low, mut high) = (0, x.n_rows());
    while low < high {
        let mid = low + (high - low) / 2;
        if x.row_range(mid).end <= at {
            low = mid + 1;
        } else {
            high = mid;
        }
    }
    Err(Error::invalid(format!(
        "X holds a non-finite value in row {low}: {}",
        values[at].to_f64()
    )))
}

/// The training data, validated.
struct Data<'a, I, T> {
    x: &'a CsrView<'a, I>,
    values: &'a [T],
    labels: Values<'a>,
    sample_weight: Option<&'a [f64]>,
}

fn train<I: CsrIndex, T: Feature, M: Monitor + ?Sized>(
    data: &Data<'_, I, T>,
    weights: &mut WeightsMut<'_>,
    state: &mut OptimizerState<'_>,
    config: &TrainConfig,
    monitor: &M,
) -> Result<Vec<EpochStats>> {
    let n_rows = data.x.n_rows();
    check_batch_entries(data.x, config.batch_size)?;
    let batch_rows = config.batch_size.min(n_rows);
    let max_threads = if batch_rows < MIN_PARALLEL_ROWS {
        1
    } else {
        rayon::current_num_threads().clamp(1, batch_rows / MIN_PARALLEL_ROWS)
    };
    let k = weights.k;
    let mut scratch = Scratch {
        s: vec![0.0; batch_rows * k],
        scores: vec![0.0; batch_rows],
        g: vec![0.0; batch_rows],
        loss: vec![0.0; batch_rows],
        outcome: vec![0; batch_rows],
        // At most 2·threads phase-1 tasks a batch (`Schedule::new`), each sorting for 2·threads parts.
        entries: vec![Vec::new(); 4 * max_threads * max_threads],
    };
    let marks: Vec<AtomicU32> = (0..weights.linear.len()).map(|_| AtomicU32::new(NO_SLOT)).collect();
    let (model, scratch) = (SharedModel::new(weights, state), SharedScratch::new(&mut scratch));
    let stats = Mutex::new(vec![EpochStats::default(); config.epochs]);
    let (t0, batches) = (state.t, n_rows.div_ceil(config.batch_size));
    let mut chooser = ThreadChooser::new(max_threads, config.adaptive_threads);
    let segment_batches = (SEGMENT_ROWS / config.batch_size).max(1);
    for epoch in 0..config.epochs {
        for first in (0..batches).step_by(segment_batches) {
            let segment = first..(first + segment_batches).min(batches);
            let threads = chooser.next();
            let trainer = Trainer {
                data,
                config,
                monitor,
                k,
                n_slots: config.optimizer.kind.n_slots(),
                schedule: Schedule::new(n_rows, config, threads, epoch, segment.clone()),
                model,
                scratch,
                marks: &marks,
                claimed: AtomicU64::new(0),
                finished: AtomicU64::new(0),
                bad_score: AtomicBool::new(false),
                stop: AtomicBool::new(false),
                failure: Mutex::new(None),
                stats: &stats,
                t0,
            };
            let started = Instant::now();
            if let Some((err, t)) = trainer.run_on(threads) {
                state.t = t;
                return Err(err);
            }
            let rows = (segment.end * config.batch_size).min(n_rows) - segment.start * config.batch_size;
            chooser.record(started.elapsed().as_secs_f64() / rows as f64);
        }
    }
    state.t = t0 + (batches * config.epochs) as u64;
    monitor.progress((n_rows * config.epochs) as u64)?;
    Ok(stats.into_inner().unwrap_or_else(|e| e.into_inner()))
}

/// Checks that every mini-batch's entries can be counted in `u32` (the gradient slots' marks).
fn check_batch_entries<I: CsrIndex>(x: &CsrView<'_, I>, batch_size: usize) -> Result<()> {
    let n_rows = x.n_rows();
    for (batch, start) in (0..n_rows).step_by(batch_size).enumerate() {
        let end = (start + batch_size).min(n_rows);
        let entries = x.row_range(end - 1).end - x.row_range(start).start;
        if u32::try_from(entries).is_err() {
            return Err(Error::invalid(format!(
                "mini-batch {batch} holds {entries} entries, more than 2^32 - 1; lower mini_batch_size"
            )));
        }
    }
    Ok(())
}

/// Rows of an epoch trained by one crew of threads (whole batches, at least one; 16 batches of
/// SageMaker's default size); [`ThreadChooser`] picks each crew's size.
const SEGMENT_ROWS: usize = 16_000;
/// Segments between two measurements of both thread counts.
const CHOOSER_CYCLE: usize = 64;
/// Measuring segments at the start of a cycle: all threads, one, all, one.
const PROBES: usize = 4;
/// One thread is chosen only when it took less than this share of the time a row took on all:
/// short measurements are noisy, and the extra threads usually pay.
const ONE_THREAD_MARGIN: f64 = 0.9;

/// Chooses how many threads train each segment. With `adaptive` off it is always `max`. With it
/// on, each [`CHOOSER_CYCLE`] starts with [`PROBES`] segments alternately on `max` threads and on
/// one, and runs the rest on one thread only if its faster probe beat the faster probe on `max`
/// by [`ONE_THREAD_MARGIN`] (the faster of two, so that a moment's slowdown of the machine does
/// not decide). Results do not depend on the choice: they are identical for every thread count.
struct ThreadChooser {
    max: usize,
    adaptive: bool,
    /// Segments trained so far.
    segments: usize,
    /// The least seconds per row measured in this cycle on one thread and on `max` threads.
    one: f64,
    all: f64,
}

impl ThreadChooser {
    fn new(max: usize, adaptive: bool) -> Self {
        ThreadChooser {
            max,
            adaptive: adaptive && max > 1,
            segments: 0,
            one: f64::INFINITY,
            all: f64::INFINITY,
        }
    }

    fn next(&self) -> usize {
        match self.segments % CHOOSER_CYCLE {
            _ if !self.adaptive => self.max,
            probe if probe < PROBES => [self.max, 1][probe % 2],
            _ if self.one < ONE_THREAD_MARGIN * self.all => 1,
            _ => self.max,
        }
    }

    /// Takes the time per row of the segment just trained (only the probes' count).
    fn record(&mut self, seconds_per_row: f64) {
        let position = self.segments % CHOOSER_CYCLE;
        if position == 0 {
            (self.one, self.all) = (f64::INFINITY, f64::INFINITY);
        }
        if position < PROBES {
            let best = if position % 2 == 0 {
                &mut self.all
            } else {
                &mut self.one
            };
            *best = best.min(seconds_per_row);
        }
        self.segments += 1;
    }
}

/// Which batch, phase and share of it a task is, from its number; every thread computes the same.
///
/// The tasks cover batches `first..first + count` of one epoch. A batch is `a_tasks(n)` phase-1
/// tasks (consecutive rows) then `parts` phase-2 tasks (the features whose [`owner`] among `parts`
/// is the task's). A task may start once every task numbered before its phase's first has
/// finished.
#[derive(Clone, Copy)]
struct Schedule {
    n_rows: usize,
    batch_size: usize,
    /// Batches an epoch.
    batches: usize,
    epoch: usize,
    first: usize,
    count: usize,
    rows_per_task: usize,
    parts: usize,
    per_full_batch: usize,
    total: usize,
}

/// A task: phase 1 over rows `rows` of the batch, or phase 2 over feature part `part`.
struct Job {
    epoch: usize,
    batch: usize,
    /// The batch's rows.
    rows: Range<usize>,
    /// Phase 1: the share of the batch (offsets); phase 2: `None`.
    share: Option<Range<usize>>,
    part: usize,
    /// Number of the first task of this task's phase.
    phase_start: u64,
}

impl Schedule {
    fn new(n_rows: usize, config: &TrainConfig, threads: usize, epoch: usize, batches: Range<usize>) -> Self {
        let batch_size = config.batch_size.min(n_rows.max(1));
        let (rows_per_task, parts) = if threads == 1 {
            (batch_size, 1)
        } else {
            (batch_size.div_ceil(2 * threads).max(MIN_PARALLEL_ROWS / 2), 2 * threads)
        };
        // Only an epoch's last batch may be short, and it can only be a segment's last.
        let last = (batches.end * config.batch_size).min(n_rows) - (batches.end - 1) * config.batch_size;
        // `Scratch::entries` holds 2·threads lists for each of these tasks.
        debug_assert!(batch_size.div_ceil(rows_per_task) <= 2 * threads);
        let per_full_batch = config.batch_size.div_ceil(rows_per_task) + parts;
        let per_last_batch = last.div_ceil(rows_per_task) + parts;
        Schedule {
            n_rows,
            batch_size: config.batch_size,
            batches: n_rows.div_ceil(config.batch_size),
            epoch,
            first: batches.start,
            count: batches.len(),
            rows_per_task,
            parts,
            per_full_batch,
            total: (batches.len() - 1) * per_full_batch + per_last_batch,
        }
    }

    fn total(&self) -> u64 {
        self.total as u64
    }

    fn job(&self, id: u64) -> Job {
        let id = id as usize;
        let local = (id / self.per_full_batch).min(self.count - 1);
        let (batch, offset) = (self.first + local, id - local * self.per_full_batch);
        let start = batch * self.batch_size;
        let rows = start..(start + self.batch_size).min(self.n_rows);
        let a_tasks = rows.len().div_ceil(self.rows_per_task);
        let first = local * self.per_full_batch;
        let epoch = self.epoch;
        if offset < a_tasks {
            let share = offset * self.rows_per_task..((offset + 1) * self.rows_per_task).min(rows.len());
            Job {
                epoch,
                batch,
                rows,
                share: Some(share),
                part: 0,
                phase_start: first as u64,
            }
        } else {
            Job {
                epoch,
                batch,
                rows,
                share: None,
                part: offset - a_tasks,
                phase_start: (first + a_tasks) as u64,
            }
        }
    }
}

/// Batch rows per thread below which training uses fewer threads.
const MIN_PARALLEL_ROWS: usize = 64;
/// `marks` value of a feature without a gradient slot.
const NO_SLOT: u32 = u32::MAX;
/// Busy-wait rounds at a barrier before yielding the core to others.
const SPINS_BEFORE_YIELD: u32 = 1 << 8;

/// Per-batch buffers, one entry (or `k`) per batch row.
struct Scratch {
    /// `s_rf`, rows × k.
    s: Vec<f64>,
    /// ŷ of each row.
    scores: Vec<f64>,
    /// `g_r` of each row.
    g: Vec<f64>,
    /// Loss of each row.
    loss: Vec<f64>,
    /// Classifier: 0 true positive, 1 false positive, 2 true negative, 3 false negative.
    outcome: Vec<u8>,
    /// With several parts, per phase-1 task and part (`task * parts + part`): the task's entries
    /// of that part's features in row order, as (row, entry) offsets in the batch.
    entries: Vec<Vec<(u32, u32)>>,
}

/// A raw pointer shared between the training threads.
struct Ptr<E>(*mut E);

// By hand: a derive would require `E: Copy` (the entry lists are `Vec`s).
impl<E> Clone for Ptr<E> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<E> Copy for Ptr<E> {}

// SAFETY: the threads access disjoint parts, or read only, between barriers (see `Trainer`).
unsafe impl<E: Send> Send for Ptr<E> {}
unsafe impl<E: Send> Sync for Ptr<E> {}

impl<E> Ptr<E> {
    fn of(slice: &mut [E]) -> Self {
        Ptr(slice.as_mut_ptr())
    }

    /// `len` elements from `at`.
    ///
    /// # Safety
    /// In bounds of the original slice, and no other live reference to them is written to.
    #[inline(always)]
    unsafe fn slice<'a>(self, at: usize, len: usize) -> &'a [E] {
        std::slice::from_raw_parts(self.0.add(at), len)
    }

    /// # Safety
    /// As [`Ptr::slice`], and no other live reference to them at all.
    #[inline(always)]
    #[allow(clippy::mut_from_ref)]
    unsafe fn slice_mut<'a>(self, at: usize, len: usize) -> &'a mut [E] {
        std::slice::from_raw_parts_mut(self.0.add(at), len)
    }
}

/// The weights and optimizer state, as raw pointers (lengths checked by [`check_config`]).
#[derive(Clone, Copy)]
struct SharedModel {
    d: usize,
    bias: Ptr<f32>,
    linear: Ptr<f32>,
    factors: Ptr<f32>,
    bias_state: Ptr<f32>,
    linear_state: Ptr<f32>,
    factor_state: Ptr<f32>,
}

impl SharedModel {
    fn new(weights: &mut WeightsMut<'_>, state: &mut OptimizerState<'_>) -> Self {
        SharedModel {
            d: weights.linear.len(),
            bias: Ptr(std::ptr::from_mut(weights.bias)),
            linear: Ptr::of(weights.linear),
            factors: Ptr::of(weights.factors),
            bias_state: Ptr::of(state.bias),
            linear_state: Ptr::of(state.linear),
            factor_state: Ptr::of(state.factors),
        }
    }
}

#[derive(Clone, Copy)]
struct SharedScratch {
    s: Ptr<f64>,
    scores: Ptr<f64>,
    g: Ptr<f64>,
    loss: Ptr<f64>,
    outcome: Ptr<u8>,
    entries: Ptr<Vec<(u32, u32)>>,
}

impl SharedScratch {
    fn new(scratch: &mut Scratch) -> Self {
        SharedScratch {
            s: Ptr::of(&mut scratch.s),
            scores: Ptr::of(&mut scratch.scores),
            g: Ptr::of(&mut scratch.g),
            loss: Ptr::of(&mut scratch.loss),
            outcome: Ptr::of(&mut scratch.outcome),
            entries: Ptr::of(&mut scratch.entries),
        }
    }
}

/// Rows (phase 1) and features (phase 2) looked ahead when prefetching weights and state.
const PREFETCH_ROWS: usize = 16;
const PREFETCH_FEATURES: usize = 16;
/// Factor state values a feature up to which phase 1 prefetches the state as well.
const SMALL_STATE: usize = 32;

/// Asks the CPU to start loading the cache lines of `len` values from `ptr` (a hint: no effect
/// on results). The model is far larger than the caches and each batch touches rows spread
/// over all of it, so training waits on memory unless the loads are started ahead.
#[inline(always)]
fn prefetch<E>(ptr: *const E, len: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        let bytes = len * std::mem::size_of::<E>();
        if bytes == 0 {
            return;
        }
        let start = ptr.cast::<i8>();
        // Every 64-byte line from the one holding the first byte to the one holding the last.
        let mut offset = -((start as usize % 64) as isize);
        while offset < bytes as isize {
            // SAFETY: prefetching never faults; the address is only a hint.
            unsafe { _mm_prefetch(start.wrapping_offset(offset), _MM_HINT_T0) };
            offset += 64;
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (ptr, len);
}

/// Which part of the features, among `parts`, feature `i` belongs to: a multiplicative hash of
/// its block of [`OWNER_BLOCK`] consecutive features, so that one-hot blocks spread evenly while
/// the marks, weights and state of neighbouring features, which share cache lines, are written by
/// one task (per-feature ownership had two cores writing the same lines: false sharing).
#[inline(always)]
fn owner(i: usize, parts: usize) -> usize {
    let block = (i / OWNER_BLOCK) as u32;
    ((u64::from(block.wrapping_mul(0x9e37_79b9)) * parts as u64) >> 32) as usize
}

/// Consecutive features that one phase-2 task updates together (two cache lines of marks, four of
/// linear weights).
const OWNER_BLOCK: usize = 32;

/// Gradient slots of the features one thread updates in the current batch.
#[derive(Default)]
struct Slots {
    /// The features, in order of first occurrence.
    features: Vec<u32>,
    /// `k + 2` sums of each, side by side: `∂/∂wᵢ = Σ_r g_r x_ri`, `Σ_r g_r x_ri²`, then
    /// `Σ_r g_r x_ri s_r` (`∂/∂vᵢ` is this less `Σ_r g_r x_ri² · vᵢ`).
    sums: Vec<f64>,
}

/// Training state shared by the threads.
///
/// The work is a fixed sequence of tasks ([`Schedule`]) that the threads claim in order from a
/// counter; a task waits (spinning, then yielding) until every task of the phases before its
/// own has finished. Per batch:
///
/// 1. phase 1, a few tasks of consecutive rows: `s`, ŷ, loss and `g_r` with the weights as they
///    were before the batch, written to those rows of the scratch buffers; with several parts,
///    each task also sorts its rows' entries by the part their feature belongs to;
/// 2. phase 2, one task per part of the features ([`owner`]): the task of part 0 also adds up the
///    loss statistics and the bias gradient in row order and updates the bias; each takes the
///    batch's entries of its features in row order, sums their gradients and updates their rows
///    of `w`, `V` and state.
///
/// Which thread runs a task does not matter: each feature's gradient is summed in row order by
/// one task, so results are bit-identical for any `n_threads`; and a thread that the operating
/// system pauses holds up the others only while it is inside a task.
struct Trainer<'a, I, T, M: ?Sized> {
    data: &'a Data<'a, I, T>,
    config: &'a TrainConfig,
    monitor: &'a M,
    k: usize,
    n_slots: usize,
    schedule: Schedule,
    model: SharedModel,
    scratch: SharedScratch,
    /// Per feature: its slot in its task's [`Slots`] during a batch, else [`NO_SLOT`].
    marks: &'a [AtomicU32],
    /// Tasks claimed so far (the next task's number).
    claimed: AtomicU64,
    /// Tasks finished so far.
    finished: AtomicU64,
    bad_score: AtomicBool,
    stop: AtomicBool,
    /// The error that stopped training, with the update count at that point.
    failure: Mutex<Option<(Error, u64)>>,
    stats: &'a Mutex<Vec<EpochStats>>,
    t0: u64,
}

impl<I: CsrIndex, T: Feature, M: Monitor + ?Sized> Trainer<'_, I, T, M> {
    /// Runs the segment on `threads` threads of the current pool; returns the error that stopped
    /// it, with the update count at that point.
    fn run_on(self, threads: usize) -> Option<(Error, u64)> {
        if threads == 1 {
            self.run();
        } else {
            rayon::broadcast(|context| {
                if context.index() < threads {
                    self.run();
                }
            });
        }
        self.failure.into_inner().unwrap_or_else(|e| e.into_inner())
    }

    /// Claims and runs tasks until none is left or training stops.
    fn run(&self) {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2.
            return unsafe { self.run_avx2() };
        }
        self.run_body();
    }

    /// [`Trainer::run_body`] compiled for AVX2 (4 lanes of `f64`). No fused multiply-adds, so
    /// results are those of the portable build.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn run_avx2(&self) {
        self.run_body();
    }

    #[inline(always)]
    fn run_body(&self) {
        let schedule = &self.schedule;
        let mut slots = Slots::default();
        loop {
            let id = self.claimed.fetch_add(1, Ordering::Relaxed);
            if id >= schedule.total() || self.stop.load(Ordering::Relaxed) {
                return;
            }
            let task = schedule.job(id);
            if !self.wait_for(task.phase_start) {
                return;
            }
            self.run_task(&task, &mut slots);
            self.finished.fetch_add(1, Ordering::Release);
        }
    }

    /// Waits until `count` tasks have finished; `false` when training stopped meanwhile.
    fn wait_for(&self, count: u64) -> bool {
        let mut spins = 0u32;
        while self.finished.load(Ordering::Acquire) < count {
            if self.stop.load(Ordering::Relaxed) {
                return false;
            }
            if spins < SPINS_BEFORE_YIELD {
                spins += 1;
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
        !self.stop.load(Ordering::Relaxed)
    }

    /// Records the error that stops training (the first one wins).
    fn fail(&self, err: Error, t: u64) {
        if let Ok(mut failure) = self.failure.lock() {
            failure.get_or_insert((err, t));
        }
        self.stop.store(true, Ordering::Relaxed);
    }

    #[inline(always)]
    fn run_task(&self, task: &Job, slots: &mut Slots) {
        let schedule = &self.schedule;
        let n = task.rows.len();
        if let Some(share) = &task.share {
            self.score_rows(task.rows.start, share.clone(), n);
            if schedule.parts > 1 {
                self.sort_entries(task.rows.start, share.clone());
            }
            return;
        }
        let t = self.t0 + (task.epoch * schedule.batches + task.batch + 1) as u64;
        let diverged = |what: String| Error::Diverged {
            epoch: task.epoch as u64,
            batch: task.batch as u64,
            what,
        };
        if self.bad_score.load(Ordering::Relaxed) {
            if task.part == 0 {
                if let Err(what) = self.first_bad_score(task.rows.clone()) {
                    self.fail(diverged(what), t);
                }
            }
            return;
        }
        let mut finite = true;
        if task.part == 0 {
            let mut stats = self.stats.lock().unwrap_or_else(|e| e.into_inner());
            finite &= self.add_stats_and_update_bias(n, t, &mut stats[task.epoch]);
        }
        self.add_gradients(task.part, schedule.parts, task.rows.clone(), slots);
        finite &= self.update_features(t, slots);
        if !finite {
            self.fail(diverged("a weight".to_string()), t);
            return;
        }
        let done = (task.epoch * schedule.n_rows + task.rows.end) as u64;
        let before = done - n as u64;
        if task.part == 0 && done / PROGRESS_ROWS > before / PROGRESS_ROWS {
            if let Err(err) = self.monitor.progress(done) {
                self.fail(err, t);
            }
        }
    }

    /// Phase 1 for batch rows `share` (of `n` from `start`): `s`, ŷ, loss and `g_r`.
    #[inline(always)]
    fn score_rows(&self, start: usize, share: Range<usize>, n: usize) {
        let (data, k, m, ns) = (self.data, self.k, &self.model, self.n_slots);
        let x = data.x;
        // SAFETY: no thread writes the weights in this phase; each writes its own rows of scratch.
        let view = unsafe {
            Weights {
                bias: f64::from(*m.bias.0),
                linear: m.linear.slice(0, m.d),
                factors: m.factors.slice(0, m.d * k),
                k,
            }
        };
        let rescale = self.config.optimizer.rescale_grad.unwrap_or(1.0 / n as f64);
        let sc = &self.scratch;
        let (first, len) = (share.start, share.len());
        // SAFETY: `share` lies within the batch, which fits the buffers; the shares are disjoint.
        let (s, scores, g, loss, outcome) = unsafe {
            (
                sc.s.slice_mut(first * k, len * k),
                sc.scores.slice_mut(first, len),
                sc.g.slice_mut(first, len),
                sc.loss.slice_mut(first, len),
                sc.outcome.slice_mut(first, len),
            )
        };
        let mut bad = false;
        let end = start + first + len;
        for (offset, s) in s.chunks_exact_mut(k).enumerate() {
            let row = start + first + offset;
            if row + PREFETCH_ROWS < end {
                for column in x.row_indices(row + PREFETCH_ROWS) {
                    let i = column.to_u64().unwrap_or(0) as usize;
                    prefetch(m.linear.0.wrapping_add(i), 1);
                    prefetch(m.factors.0.wrapping_add(i * k), k);
                    // The marks, and a small state (a few lines a feature: the batch's fits the
                    // cache until phase 2), only for this thread's own phase 2: with several
                    // parts, another thread may write them, and reading them here would move
                    // their lines twice. A large state is prefetched in phase 2 only.
                    if self.schedule.parts == 1 {
                        prefetch(self.marks.as_ptr().wrapping_add(i), 1);
                        if ns * k <= SMALL_STATE {
                            prefetch(m.linear_state.0.wrapping_add(i * ns), ns);
                            prefetch(m.factor_state.0.wrapping_add(i * ns * k), ns * k);
                        }
                    }
                }
            }
            let score = view.score_row(x.row_indices(row), &data.values[x.row_range(row)], s);
            scores[offset] = score;
            if !score.is_finite() {
                bad = true;
                continue;
            }
            let y = data.labels.get(row);
            let dloss = match self.config.task {
                Task::Regressor => {
                    loss[offset] = (score - y) * (score - y);
                    score - y
                }
                Task::BinaryClassifier => {
                    let p = sigmoid(score);
                    loss[offset] = log_loss(score, y);
                    outcome[offset] = match (p >= 0.5, y == 1.0) {
                        (true, true) => 0,
                        (true, false) => 1,
                        (false, false) => 2,
                        (false, true) => 3,
                    };
                    p - y
                }
            };
            let weight = data.sample_weight.map_or(1.0, |w| w[row]);
            g[offset] = dloss * weight * rescale;
        }
        if bad {
            self.bad_score.store(true, Ordering::Relaxed);
        }
    }

    /// The divergence message of the first non-finite score of the batch.
    fn first_bad_score(&self, rows: Range<usize>) -> std::result::Result<(), String> {
        // SAFETY: after the barrier; nothing writes the scores.
        let scores = unsafe { self.scratch.scores.slice(0, rows.len()) };
        match scores.iter().position(|s| !s.is_finite()) {
            Some(offset) => Err(format!("the prediction for row {}", rows.start + offset)),
            None => Ok(()),
        }
    }

    /// Thread 0, phase 2: statistics and bias gradient in row order, then the bias update.
    #[inline(always)]
    fn add_stats_and_update_bias(&self, n: usize, t: u64, stats: &mut EpochStats) -> bool {
        let (sc, m) = (&self.scratch, &self.model);
        // SAFETY: after the barrier, only read; the bias and its state are thread 0's alone.
        let (g, loss, outcome, bias, bias_state) = unsafe {
            (
                sc.g.slice(0, n),
                sc.loss.slice(0, n),
                sc.outcome.slice(0, n),
                m.bias.slice_mut(0, 1),
                m.bias_state.slice_mut(0, self.n_slots),
            )
        };
        let mut bias_grad = 0.0;
        for (&gr, &l) in g.iter().zip(loss) {
            stats.loss_sum += l;
            bias_grad += gr;
        }
        if self.config.task == Task::BinaryClassifier {
            let mut counts = [0u64; 4];
            for &o in outcome {
                counts[usize::from(o)] += 1;
            }
            stats.true_positives += counts[0];
            stats.false_positives += counts[1];
            stats.true_negatives += counts[2];
            stats.false_negatives += counts[3];
        }
        stats.rows += n as u64;
        let optimizer = &self.config.optimizer;
        let (first, second) = slots(bias_state, 1);
        optimizer
            .rule(optimizer.bias, t)
            .apply(&[bias_grad], bias, first, second)
    }

    /// Phase 1, with several parts: files the entries of batch rows `share` (the batch starts at
    /// row `start`) under the part their feature belongs to, so that a phase-2 task reads only
    /// its own part's entries.
    #[inline(always)]
    fn sort_entries(&self, start: usize, share: Range<usize>) {
        let (x, parts) = (self.data.x, self.schedule.parts);
        let task = share.start / self.schedule.rows_per_task;
        // SAFETY: this task's lists (`Scratch::entries`, sized for the schedule) are its alone.
        let lists = unsafe { self.scratch.entries.slice_mut(task * parts, parts) };
        for list in lists.iter_mut() {
            list.clear();
        }
        let first_entry = x.row_range(start).start;
        for offset in share {
            let range = x.row_range(start + offset);
            for (entry, column) in range.zip(x.row_indices(start + offset)) {
                let i = column.to_u64().unwrap_or(0) as usize;
                // Offsets fit u32: rows by the batch size, entries by `check_batch_entries`.
                lists[owner(i, parts)].push((offset as u32, (entry - first_entry) as u32));
            }
        }
    }

    /// Phase 2, first half: sums the gradients of part `part` of `parts`'s features in row order.
    #[inline(always)]
    fn add_gradients(&self, part: usize, parts: usize, rows: Range<usize>, slots: &mut Slots) {
        let (data, k) = (self.data, self.k);
        let x = data.x;
        let n = rows.len();
        // SAFETY: after the barrier the scratch buffers are only read.
        let (s, g) = unsafe { (self.scratch.s.slice(0, n * k), self.scratch.g.slice(0, n)) };
        let row_s = |offset: usize| &s[offset * k..(offset + 1) * k];
        slots.features.clear();
        slots.sums.clear();
        if parts == 1 {
            for (offset, &gr) in g.iter().enumerate() {
                let row = rows.start + offset;
                let values = &data.values[x.row_range(row)];
                for (&column, &value) in x.row_indices(row).iter().zip(values) {
                    self.add_entry(column, value, row_s(offset), gr, slots);
                }
            }
            return;
        }
        let entries = x.row_range(rows.start).start..x.row_range(rows.end - 1).end;
        let (columns, values) = (&x.indices()[entries.clone()], &data.values[entries]);
        let tasks = n.div_ceil(self.schedule.rows_per_task);
        for task in 0..tasks {
            // SAFETY: after the barrier the lists are only read.
            let list = unsafe { self.scratch.entries.slice(task * parts + part, 1) };
            for &(offset, entry) in &list[0] {
                let (offset, entry) = (offset as usize, entry as usize);
                self.add_entry(columns[entry], values[entry], row_s(offset), g[offset], slots);
            }
        }
    }

    /// Adds one entry's gradient (`column`, `value`, and its row's `s` and `g_r`) to the slots.
    #[inline(always)]
    fn add_entry(&self, column: I, value: T, s: &[f64], gr: f64, slots: &mut Slots) {
        // Columns were validated against d when the view was built.
        let i = column.to_u64().unwrap_or(0) as usize;
        let x = value.to_f64();
        let gx = gr * x;
        let slot = self.marks[i].load(Ordering::Relaxed);
        if slot == NO_SLOT {
            // The feature's first entry in the batch starts its sums (no zeroing first).
            self.marks[i].store(slots.features.len() as u32, Ordering::Relaxed);
            slots.features.push(i as u32);
            slots.sums.extend([gx, gx * x]);
            slots.sums.extend(s.iter().map(|&s| gx * s));
            return;
        }
        let stride = self.k + 2;
        let sums = &mut slots.sums[slot as usize * stride..(slot as usize + 1) * stride];
        sums[0] += gx;
        sums[1] += gx * x;
        for (acc, &s) in sums[2..].iter_mut().zip(s) {
            *acc += gx * s;
        }
    }

    /// Phase 2, second half: updates the rows of `w`, `V` and state of the slots' features.
    #[inline(always)]
    fn update_features(&self, t: u64, slots: &mut Slots) -> bool {
        let (k, m) = (self.k, &self.model);
        let optimizer = &self.config.optimizer;
        let (linear_rule, factor_rule) = (
            optimizer.rule(optimizer.linear, t),
            optimizer.rule(optimizer.factors, t),
        );
        let ns = self.n_slots;
        let mut finite = true;
        let ahead = slots
            .features
            .iter()
            .skip(PREFETCH_FEATURES)
            .map(Some)
            .chain(std::iter::repeat(None));
        let features = slots.features.iter().zip(ahead);
        for ((&i, next), sums) in features.zip(slots.sums.chunks_exact_mut(k + 2)) {
            let (head, grad) = sums.split_at_mut(2);
            let (linear_grad, squares) = (head[0], head[1]);
            if let Some(&next) = next {
                let next = next as usize;
                prefetch(m.linear.0.wrapping_add(next), 1);
                prefetch(m.linear_state.0.wrapping_add(next * ns), ns);
                prefetch(m.factors.0.wrapping_add(next * k), k);
                prefetch(m.factor_state.0.wrapping_add(next * ns * k), ns * k);
            }
            let i = i as usize;
            self.marks[i].store(NO_SLOT, Ordering::Relaxed);
            // SAFETY: feature i is this thread's alone (`owner`) and appears once in `features`.
            let (w, w_state, v, v_state) = unsafe {
                (
                    m.linear.slice_mut(i, 1),
                    m.linear_state.slice_mut(i * ns, ns),
                    m.factors.slice_mut(i * k, k),
                    m.factor_state.slice_mut(i * ns * k, ns * k),
                )
            };
            let (first, second) = self::slots(w_state, 1);
            finite &= linear_rule.apply(&[linear_grad], w, first, second);
            for (grad, &v) in grad.iter_mut().zip(v.iter()) {
                *grad -= squares * f64::from(v);
            }
            let (first, second) = self::slots(v_state, k);
            finite &= factor_rule.apply(grad, v, first, second);
        }
        finite
    }
}

/// The first state slot of one weight group's row and the rest (the second slot, or nothing).
#[inline(always)]
fn slots(state: &mut [f32], len: usize) -> (&mut [f32], &mut [f32]) {
    let at = len.min(state.len());
    state.split_at_mut(at)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fm::model::pairwise_score;
    use crate::fm::{Group, OptimizerKind};
    use crate::parallel::{with_threads, Unmonitored};

    /// A small deterministic pseudo-random sequence in [-1, 1) (SplitMix64).
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> f64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^= z >> 31;
            (z >> 11) as f64 / (1u64 << 52) as f64 - 1.0
        }
    }

    struct Problem {
        indptr: Vec<i64>,
        indices: Vec<i64>,
        values: Vec<f64>,
        labels: Vec<f64>,
        d: usize,
        k: usize,
        bias: f32,
        linear: Vec<f32>,
        factors: Vec<f32>,
    }

    /// `n` rows over `d` features, the last feature never present.
    fn problem(n: usize, d: usize, k: usize, task: Task, seed: u64) -> Problem {
        let mut rng = Rng(seed);
        let (mut indptr, mut indices, mut values, mut labels) = (vec![0i64], vec![], vec![], vec![]);
        for _ in 0..n {
            for j in 0..d - 1 {
                if rng.next() > 0.2 {
                    indices.push(j as i64);
                    values.push(rng.next() * 2.0);
                }
            }
            indptr.push(indices.len() as i64);
            labels.push(match task {
                Task::Regressor => rng.next() * 3.0,
                Task::BinaryClassifier => f64::from(u8::from(rng.next() > 0.0)),
            });
        }
        Problem {
            indptr,
            indices,
            values,
            labels,
            d,
            k,
            bias: (rng.next() * 0.1) as f32,
            linear: (0..d).map(|_| (rng.next() * 0.3) as f32).collect(),
            factors: (0..d * k).map(|_| (rng.next() * 0.3) as f32).collect(),
        }
    }

    impl Problem {
        fn view(&self) -> CsrView<'_, i64> {
            CsrView::new(&self.indptr, &self.indices, self.values.len(), self.d as u64).unwrap()
        }

        /// Trains a copy; returns (bias, linear, factors, state arrays, stats).
        fn fit(&self, config: &TrainConfig, threads: usize) -> Result<Fitted> {
            let slots = config.optimizer.kind.n_slots();
            let mut fitted = Fitted {
                bias: self.bias,
                linear: self.linear.clone(),
                factors: self.factors.clone(),
                state: [
                    vec![0.0; slots],
                    vec![0.0; slots * self.d],
                    vec![0.0; slots * self.d * self.k],
                ],
                stats: vec![],
            };
            let [sb, sl, sf] = &mut fitted.state;
            let mut weights = WeightsMut::new(&mut fitted.bias, &mut fitted.linear, &mut fitted.factors, self.k)?;
            let mut state = OptimizerState::new(sb, sl, sf, 0);
            let x = self.view();
            fitted.stats = with_threads(threads, || {
                fit_epochs(
                    &x,
                    Values::F64(&self.values),
                    Values::F64(&self.labels),
                    None,
                    &mut weights,
                    &mut state,
                    config,
                    &Unmonitored,
                )
            })?;
            Ok(fitted)
        }

        /// Mean loss over all rows (½ squared error or log loss), by [`pairwise_score`] from `f64`
        /// weights, so that finite differences are not lost to `f32` rounding.
        fn loss(&self, task: Task, bias: f64, linear: &[f64], factors: &[f64]) -> f64 {
            let x = self.view();
            let total: f64 = (0..x.n_rows())
                .map(|row| {
                    let entries: Vec<(usize, f64)> = x
                        .row_indices(row)
                        .iter()
                        .map(|&i| i as usize)
                        .zip(self.values[x.row_range(row)].iter().copied())
                        .collect();
                    let z = pairwise_score(bias, linear, factors, self.k, &entries);
                    let y = self.labels[row];
                    match task {
                        Task::Regressor => 0.5 * (z - y) * (z - y),
                        Task::BinaryClassifier => log_loss(z, y),
                    }
                })
                .sum();
            total / x.n_rows() as f64
        }
    }

    #[derive(Debug, PartialEq)]
    struct Fitted {
        bias: f32,
        linear: Vec<f32>,
        factors: Vec<f32>,
        state: [Vec<f32>; 3],
        stats: Vec<EpochStats>,
    }

    fn config(task: Task, kind: OptimizerKind, epochs: usize, batch_size: usize) -> TrainConfig {
        TrainConfig {
            task,
            epochs,
            batch_size,
            optimizer: Optimizer::new(kind),
            adaptive_threads: false,
        }
    }

    #[test]
    fn gradient_matches_finite_differences() {
        for task in [Task::Regressor, Task::BinaryClassifier] {
            let p = problem(7, 5, 3, task, 11);
            // One full batch of SGD with lr 1 and no decay: new = old − ∇(mean loss).
            let mut config = config(task, OptimizerKind::Sgd, 1, 7);
            let unit = Group { lr: 1.0, wd: 0.0 };
            (config.optimizer.bias, config.optimizer.linear, config.optimizer.factors) = (unit, unit, unit);
            let fitted = p.fit(&config, 2).unwrap();
            let wide = |a: &[f32]| a.iter().map(|&w| f64::from(w)).collect::<Vec<f64>>();
            let (bias, linear, factors) = (f64::from(p.bias), wide(&p.linear), wide(&p.factors));
            let (new_linear, new_factors) = (wide(&fitted.linear), wide(&fitted.factors));
            let h = 1e-6;
            // The step is rounded to f32 when stored (~3e-8 here), far inside the tolerance.
            let check = |analytic: f64, plus: f64, minus: f64, what: String| {
                let numeric = (plus - minus) / (2.0 * h);
                assert!(
                    (analytic - numeric).abs() < 1e-6 * (1.0 + numeric.abs()),
                    "{what}: {analytic} vs {numeric}"
                );
            };
            let bias_plus = p.loss(task, bias + h, &linear, &factors);
            let bias_minus = p.loss(task, bias - h, &linear, &factors);
            check(
                bias - f64::from(fitted.bias),
                bias_plus,
                bias_minus,
                format!("{task:?} bias"),
            );
            for i in 0..p.d {
                let (mut plus, mut minus) = (linear.clone(), linear.clone());
                plus[i] += h;
                minus[i] -= h;
                let (lp, lm) = (
                    p.loss(task, bias, &plus, &factors),
                    p.loss(task, bias, &minus, &factors),
                );
                check(linear[i] - new_linear[i], lp, lm, format!("{task:?} w[{i}]"));
            }
            for j in 0..p.d * p.k {
                let (mut plus, mut minus) = (factors.clone(), factors.clone());
                plus[j] += h;
                minus[j] -= h;
                let (lp, lm) = (p.loss(task, bias, &linear, &plus), p.loss(task, bias, &linear, &minus));
                check(factors[j] - new_factors[j], lp, lm, format!("{task:?} V.flat[{j}]"));
            }
        }
    }

    #[test]
    fn absent_features_are_untouched_and_present_ones_move() {
        let p = problem(40, 6, 4, Task::Regressor, 3);
        let fitted = p.fit(&config(Task::Regressor, OptimizerKind::Adam, 3, 8), 2).unwrap();
        let (last, k) = (p.d - 1, p.k);
        assert_eq!(fitted.linear[last].to_bits(), p.linear[last].to_bits());
        assert_eq!(fitted.factors[last * k..], p.factors[last * k..]);
        // Adam state, weight-major: (m, v) per linear weight, (m row, v row) per factor row;
        // absent rows stay zero.
        assert_eq!(fitted.state[1][2 * last..], [0.0, 0.0]);
        assert!(fitted.state[2][2 * last * k..].iter().all(|&m| m == 0.0));
        assert!(fitted.state[2][..2 * last * k].iter().any(|&m| m != 0.0));
        assert!(fitted.linear[..last].iter().zip(&p.linear).all(|(a, b)| a != b));
    }

    #[test]
    fn results_are_identical_for_every_thread_count() {
        for kind in [OptimizerKind::Sgd, OptimizerKind::Adam, OptimizerKind::AdaGrad] {
            // Batches of 300 rows: up to 4 threads share each batch (MIN_PARALLEL_ROWS); 400
            // features make 13 blocks of `OWNER_BLOCK` for the phase-2 parts to share.
            let p = problem(1000, 400, 5, Task::BinaryClassifier, 5);
            let config = config(Task::BinaryClassifier, kind, 2, 300);
            let one = p.fit(&config, 1).unwrap();
            for threads in [2, 3, 4] {
                assert_eq!(one, p.fit(&config, threads).unwrap(), "{kind:?}, {threads} threads");
            }
        }
    }

    #[test]
    fn sparse_rows_give_identical_results_for_every_thread_count() {
        // Rows like user + item one-hot ones, every fifth empty and every seventh naming its user
        // twice: each part's entry lists hold few entries a row, some rows none.
        let mut p = problem(1000, 400, 4, Task::Regressor, 6);
        let mut rng = Rng(11);
        let (mut indptr, mut indices) = (vec![0i64], vec![]);
        for row in 0..1000 {
            if row % 5 != 0 {
                let user = ((rng.next() + 1.0) * 100.0) as i64;
                let item = 200 + ((rng.next() + 1.0) * 99.0) as i64;
                indices.extend([user, item]);
                if row % 7 == 0 {
                    indices.push(user);
                }
            }
            indptr.push(indices.len() as i64);
        }
        p.values = (0..indices.len()).map(|_| rng.next() + 1.5).collect();
        (p.indptr, p.indices) = (indptr, indices);
        for kind in [OptimizerKind::Sgd, OptimizerKind::Adam] {
            let config = config(Task::Regressor, kind, 2, 300);
            let one = p.fit(&config, 1).unwrap();
            for threads in [2, 3, 4] {
                assert_eq!(one, p.fit(&config, threads).unwrap(), "{kind:?}, {threads} threads");
            }
        }
    }

    #[test]
    fn adaptive_threads_change_nothing_but_speed() {
        // Three segments an epoch (of 125 batches), so the chooser runs some on 2 threads, some on 1.
        let p = problem(3 * SEGMENT_ROWS, 4, 3, Task::Regressor, 8);
        let mut config = config(Task::Regressor, OptimizerKind::Adam, 2, 128);
        let fixed = p.fit(&config, 1).unwrap();
        config.adaptive_threads = true;
        assert_eq!(fixed, p.fit(&config, 2).unwrap());
    }

    #[test]
    fn the_chooser_measures_both_counts_then_keeps_the_faster() {
        let mut chooser = ThreadChooser::new(4, true);
        // Probes: 4 threads took 2.0 then (a slow moment) 9.0, one thread 1.0 and 1.5.
        for (threads, seconds) in [(4, 2.0), (1, 1.0), (4, 9.0), (1, 1.5)] {
            assert_eq!(chooser.next(), threads);
            chooser.record(seconds);
        }
        for _ in PROBES..CHOOSER_CYCLE {
            assert_eq!(chooser.next(), 1);
            // Later segments do not move the choice, however they went.
            chooser.record(9.0);
        }
        // A new cycle measures both again: one thread is faster, but not by the margin.
        for (threads, seconds) in [(4, 1.0), (1, 0.95), (4, 1.2), (1, 0.97)] {
            assert_eq!(chooser.next(), threads);
            chooser.record(seconds);
        }
        assert_eq!(chooser.next(), 4);

        let mut fixed = ThreadChooser::new(4, false);
        fixed.record(9.0);
        fixed.record(1.0);
        assert_eq!(fixed.next(), 4);
        assert_eq!(ThreadChooser::new(1, true).next(), 1);
    }

    #[test]
    fn owners_keep_blocks_together_and_spread_them() {
        let parts = 4;
        let mut counts = [0usize; 4];
        for block in 0..1000 {
            let first = owner(block * OWNER_BLOCK, parts);
            assert!((0..OWNER_BLOCK).all(|j| owner(block * OWNER_BLOCK + j, parts) == first));
            counts[first] += 1;
        }
        assert!(counts.iter().all(|&c| (200..300).contains(&c)), "{counts:?}");
    }

    #[test]
    fn training_lowers_the_loss() {
        let p = problem(500, 10, 4, Task::Regressor, 9);
        let mut config = config(Task::Regressor, OptimizerKind::Adam, 20, 50);
        config.optimizer.linear.lr = 0.05;
        config.optimizer.factors.lr = 0.01;
        let fitted = p.fit(&config, 2).unwrap();
        let first = fitted.stats[0].loss_sum;
        let last = fitted.stats[19].loss_sum;
        assert_eq!(fitted.stats[0].rows, 500);
        assert!(last < 0.9 * first, "{first} -> {last}");
    }

    #[test]
    fn divergence_is_reported() {
        let mut p = problem(50, 6, 3, Task::Regressor, 2);
        p.labels.iter_mut().for_each(|y| *y *= 1e3);
        let mut config = config(Task::Regressor, OptimizerKind::Sgd, 50, 10);
        let huge = Group { lr: 1e3, wd: 0.0 };
        (config.optimizer.linear, config.optimizer.factors) = (huge, huge);
        match p.fit(&config, 1) {
            Err(Error::Diverged { epoch, what, .. }) => assert!(epoch < 50 && !what.is_empty()),
            other => panic!("expected divergence, got {other:?}"),
        }
    }

    #[test]
    fn float32_labels_are_checked_like_float64_ones() {
        let labels = [0.0f32, 1.0, f32::NAN];
        let err = check_rows(3, Values::F32(&labels), None, Task::Regressor)
            .unwrap_err()
            .to_string();
        assert!(err.contains("label of row 2 is not finite"), "{err}");
        let labels = [0.0f32, 0.5, 1.0];
        let err = check_rows(3, Values::F32(&labels), None, Task::BinaryClassifier)
            .unwrap_err()
            .to_string();
        assert!(err.contains("label of row 1 is 0.5"), "{err}");
        assert!(check_rows(3, Values::F32(&labels), None, Task::Regressor).is_ok());
        let err = check_rows(2, Values::F32(&labels), None, Task::Regressor)
            .unwrap_err()
            .to_string();
        assert!(err.contains("2 rows but y has 3 labels"), "{err}");
    }

    #[test]
    fn invalid_inputs_name_the_row() {
        let mut p = problem(5, 4, 2, Task::BinaryClassifier, 1);
        p.labels[3] = 2.0;
        let config = config(Task::BinaryClassifier, OptimizerKind::Adam, 1, 2);
        let err = p.fit(&config, 1).err().unwrap().to_string();
        assert!(err.contains("row 3") && err.contains("0 or 1"), "{err}");
        p.labels[3] = 1.0;
        let last = p.values.len() - 1;
        p.values[last] = f64::NAN;
        let row = p.indptr.iter().rposition(|&start| start as usize <= last).unwrap();
        let err = p.fit(&config, 1).err().unwrap().to_string();
        assert!(err.contains(&format!("non-finite value in row {row}:")), "{err}");
        p.values[last] = 1.0;
        let mut bad = config.clone();
        bad.batch_size = 0;
        assert!(p.fit(&bad, 1).err().unwrap().to_string().contains("mini_batch_size"));
    }

    #[test]
    fn the_first_non_finite_value_is_found_past_the_first_chunk() {
        // One entry a row, so the row is the value's index; two bad values, in different chunks.
        let n = 200_000;
        let indptr: Vec<i64> = (0..=n as i64).collect();
        let indices = vec![0i64; n];
        let mut values = vec![1.0f32; n];
        let x = CsrView::new(&indptr, &indices, n, 1).unwrap();
        assert!(check_finite(&x, &values).is_ok());
        values[150_001] = f32::NAN;
        values[70_000] = f32::INFINITY;
        let err = check_finite(&x, &values).unwrap_err().to_string();
        assert!(err.contains("non-finite value in row 70000: inf"), "{err}");
    }
}
