//! Concurrent mini-batches (Hogwild-style), the schedule of [`TrainConfig::deterministic`] `false`.
//!
//! The threads claim an epoch's mini-batches one at a time, in order, from a counter, and each
//! trains the batch it holds while the others train theirs, against the one shared model,
//! without locks or barriers: they meet only at the epoch's end (for its checkpoint), so a thread
//! that starts late or that the operating system pauses holds up nobody. A
//! [`Worker`] trains a batch in three steps:
//!
//! 1. gather: it numbers the batch's features in order of first occurrence, copies their rows of
//!    `w`, `V` and optimizer state, and the bias and its state, out of the shared model into arrays
//!    of its own, and the batch's rows into a small CSR matrix over those numbers;
//! 2. train: the deterministic schedule's own code ([`Trainer`], on this one thread) trains that
//!    batch on the copy: the same scores, gradient sums and lazy updates, in the same order;
//! 3. scatter: it writes the updated rows back.
//!
//! # What the race allows
//! Every access to the shared model is a relaxed atomic load or store of one `f32` (see
//! `super::shared`): no value is ever torn, but a row may be read while another thread writes it
//! (some of its values old, some new). A batch's scores and gradients use the weights as they
//! were when it started (stale by the batches other threads finish meanwhile, at most one each).
//! Weights are written back as a difference: a weight that nobody changed since the gather gets
//! the new value exactly; one that another thread changed meanwhile gets the other thread's value
//! plus this batch's change, so concurrent updates of a shared feature (the bias, in every batch)
//! add up instead of the last one erasing the others. Only a write that lands between another
//! thread's load and store of the same value (a few instructions) is lost. Optimizer state is
//! written back as computed, the last writer winning: it is a running average or sum of squared
//! gradients, valid whichever writer wins, and never made negative by a sum of differences.
//!
//! One thread never takes this path ([`super::train`]): with `n_threads = 1` both schedules are
//! the same code, and give the same bits.

use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

use super::batch::{prefetch_feature, Data, Slots, Trainer, NO_SLOT, PROGRESS_ROWS};
use super::config::{EpochStats, OptimizerState, TrainConfig};
use super::model::WeightsMut;
use super::schedule::Schedule;
use super::shared::{Ptr, Scratch, SharedModel, SharedScratch};
use super::Feature;
use crate::csr::{CsrIndex, CsrView};
use crate::error::{Error, Result};
use crate::memory::try_filled;
use crate::parallel::{Monitor, Unmonitored};

/// Features looked ahead when prefetching the rows to gather.
const PREFETCH_FEATURES: usize = 16;

/// One thread's copy of the part of the model that its current batch touches, and the buffers
/// that train it. Aligned to two cache lines (the unit that x86 prefetches together), so that the
/// `Vec` lengths that one worker updates at every entry share no line with its neighbour's fields.
#[repr(align(128))]
pub(super) struct Worker {
    /// Optimizer state values per weight.
    n_slots: usize,
    /// Per feature of the model: its number in the current batch, else [`NO_SLOT`].
    number: Vec<u32>,
    /// The model's feature of each number.
    features: Vec<u32>,
    /// The batch's rows over the features' numbers.
    indptr: Vec<i64>,
    indices: Vec<i64>,
    /// The copy that trains: bias, `w`, `V` and their state, one row per number.
    bias: Vec<f32>,
    linear: Vec<f32>,
    factors: Vec<f32>,
    bias_state: Vec<f32>,
    linear_state: Vec<f32>,
    factor_state: Vec<f32>,
    /// The weights as gathered, to write back the difference.
    gathered_bias: Vec<f32>,
    gathered_linear: Vec<f32>,
    gathered_factors: Vec<f32>,
    scratch: Scratch,
    slots: Slots,
    /// [`Trainer`]'s per-feature marks, one per number.
    marks: Vec<AtomicU32>,
    /// The statistics of the batches trained since the last [`Worker::take_stats`].
    stats: Mutex<Vec<EpochStats>>,
}

impl Worker {
    /// A worker for a model of `d` features and batches of up to `batch_rows` rows.
    pub(super) fn new(d: usize, batch_rows: usize, k: usize, n_slots: usize) -> Result<Self> {
        Ok(Worker {
            n_slots,
            number: try_filled(d, 1, NO_SLOT, "a training thread's feature numbers (feature_dim)")?,
            features: Vec::new(),
            indptr: Vec::new(),
            indices: Vec::new(),
            bias: vec![0.0],
            linear: Vec::new(),
            factors: Vec::new(),
            bias_state: Vec::new(),
            linear_state: Vec::new(),
            factor_state: Vec::new(),
            gathered_bias: vec![0.0],
            gathered_linear: Vec::new(),
            gathered_factors: Vec::new(),
            scratch: Scratch::new(batch_rows, k, 1)?,
            slots: Slots::default(),
            marks: Vec::new(),
            stats: Mutex::new(vec![EpochStats::default()]),
        })
    }

    /// The statistics gathered since the last call, leaving zeros.
    fn take_stats(&self) -> EpochStats {
        let mut stats = self.stats.lock().unwrap_or_else(|e| e.into_inner());
        std::mem::take(&mut stats[0])
    }

    /// Trains batch `batch` (of `epoch`, rows `rows`) against the shared `model`; on failure, the
    /// error and the update count, and the shared model keeps nothing of this batch.
    #[allow(clippy::too_many_arguments)]
    fn train_batch<I: CsrIndex, T: Feature>(
        &mut self,
        data: &Data<'_, I, T>,
        config: &TrainConfig,
        model: SharedModel,
        epoch: usize,
        batch: usize,
        rows: Range<usize>,
        t: u64,
    ) -> Option<(Error, u64)> {
        self.gather(data.x, rows.clone(), model);
        let k = model.k;
        let entries = data.x.row_range(rows.start).start..data.x.row_range(rows.end - 1).end;
        // Every column is a number below the count, by construction.
        let x = match CsrView::new_columns_unchecked(
            &self.indptr,
            &self.indices,
            entries.len(),
            self.features.len() as u64,
        ) {
            Ok(x) => x,
            Err(err) => return Some((err, t)),
        };
        let local = Data {
            x: &x,
            values: &data.values[entries],
            labels: data.labels.slice(rows.clone()),
            sample_weight: data.sample_weight.map(|w| &w[rows.clone()]),
        };
        // The bias was gathered: one value.
        let mut weights = match WeightsMut::new(&mut self.bias[0], &mut self.linear, &mut self.factors, k) {
            Ok(weights) => weights,
            Err(err) => return Some((err, t)),
        };
        let mut state = OptimizerState::new(&mut self.bias_state, &mut self.linear_state, &mut self.factor_state, t);
        // One batch, numbered 0 of epoch 0, whose update is number `t + 1`.
        let schedule = Schedule::new(rows.len(), config, 1, 0, 0..1);
        let trainer = Trainer::new(
            &local,
            config,
            &Unmonitored,
            schedule,
            SharedModel::new(&mut weights, &mut state),
            SharedScratch::new(&mut self.scratch),
            &self.marks,
            &self.stats,
            t,
        );
        if let Some((err, t)) = trainer.run_here(&mut self.slots) {
            return Some((renumbered(err, epoch, batch, rows.start), t));
        }
        self.scatter(model);
        None
    }

    /// Step 1: numbers the features of `rows`, copies their rows of the shared model, and builds
    /// the batch's CSR matrix over the numbers.
    fn gather<I: CsrIndex>(&mut self, x: &CsrView<'_, I>, rows: Range<usize>, m: SharedModel) {
        let (k, ns) = (m.k, self.n_slots);
        self.features.clear();
        self.indices.clear();
        self.indptr.clear();
        self.indptr.push(0);
        for row in rows {
            for &column in x.row_indices(row) {
                // Columns were validated against d when the view was built.
                let i = column.to_u64().unwrap_or(0) as usize;
                if self.number[i] == NO_SLOT {
                    self.number[i] = self.features.len() as u32;
                    self.features.push(i as u32);
                }
                self.indices.push(i64::from(self.number[i]));
            }
            self.indptr.push(self.indices.len() as i64);
        }
        let n = self.features.len();
        if self.marks.len() < n {
            self.marks.resize_with(n, || AtomicU32::new(NO_SLOT));
        }
        load_rows(&mut self.bias, m.bias, &[0], 1);
        load_rows(&mut self.bias_state, m.bias_state, &[0], ns);
        for part in [
            &mut self.linear,
            &mut self.factors,
            &mut self.linear_state,
            &mut self.factor_state,
        ] {
            part.clear();
        }
        for (n, &i) in self.features.iter().enumerate() {
            // The rows are spread over the whole model: start loading those a few features
            // ahead (as the deterministic schedule does).
            if let Some(&ahead) = self.features.get(n + PREFETCH_FEATURES) {
                prefetch_feature(&m, ahead as usize, k, ns);
            }
            let i = [i];
            extend_rows(&mut self.linear, m.linear, &i, 1);
            extend_rows(&mut self.factors, m.factors, &i, k);
            extend_rows(&mut self.linear_state, m.linear_state, &i, ns);
            extend_rows(&mut self.factor_state, m.factor_state, &i, ns * k);
        }
        self.gathered_bias.clone_from(&self.bias);
        self.gathered_linear.clone_from(&self.linear);
        self.gathered_factors.clone_from(&self.factors);
    }

    /// Step 3: writes the trained rows back (weights as differences, state as computed).
    fn scatter(&mut self, m: SharedModel) {
        let (k, ns) = (m.k, self.n_slots);
        merge_rows(m.bias, &[0], 1, &self.gathered_bias, &self.bias);
        store_rows(m.bias_state, &[0], ns, &self.bias_state);
        merge_rows(m.linear, &self.features, 1, &self.gathered_linear, &self.linear);
        merge_rows(m.factors, &self.features, k, &self.gathered_factors, &self.factors);
        store_rows(m.linear_state, &self.features, ns, &self.linear_state);
        store_rows(m.factor_state, &self.features, ns * k, &self.factor_state);
        // Numbers are per batch (a failed batch leaves them: training stops then).
        for &i in &self.features {
            self.number[i as usize] = NO_SLOT;
        }
    }
}

/// Rows `rows` (of `width` values each) of the shared `p`, one atomic at a time.
///
/// Every function below takes rows whose indices were validated against the model (the features
/// of a validated CSR view, or row 0 of the bias), in arrays whose lengths `train::check_config`
/// checked; during a concurrent segment, every access to the model is atomic.
#[inline(always)]
fn shared_rows(p: Ptr<f32>, rows: &[u32], width: usize) -> impl Iterator<Item = &[AtomicU32]> {
    rows.iter().map(move |&row| {
        // SAFETY: in bounds and atomic only, as the documentation above says.
        unsafe { p.atomics(row as usize * width, width) }
    })
}

/// `into` becomes rows `rows` of `p`, in that order.
fn load_rows(into: &mut Vec<f32>, p: Ptr<f32>, rows: &[u32], width: usize) {
    into.clear();
    extend_rows(into, p, rows, width);
}

/// Appends rows `rows` of `p` to `into`, in that order.
#[inline(always)]
fn extend_rows(into: &mut Vec<f32>, p: Ptr<f32>, rows: &[u32], width: usize) {
    for shared in shared_rows(p, rows, width) {
        into.extend(shared.iter().map(|a| f32::from_bits(a.load(Ordering::Relaxed))));
    }
}

/// Rows `rows` of `p` become `from`'s, in that order.
fn store_rows(p: Ptr<f32>, rows: &[u32], width: usize, from: &[f32]) {
    for (shared, values) in shared_rows(p, rows, width).zip(from.chunks_exact(width.max(1))) {
        for (a, &value) in shared.iter().zip(values) {
            a.store(value.to_bits(), Ordering::Relaxed);
        }
    }
}

/// Writes `new` over rows `rows` of `p`, which held `old` when gathered: each value exactly, if
/// no other thread changed it since; else as its current value plus `new − old`.
fn merge_rows(p: Ptr<f32>, rows: &[u32], width: usize, old: &[f32], new: &[f32]) {
    let rows = shared_rows(p, rows, width)
        .zip(old.chunks_exact(width))
        .zip(new.chunks_exact(width));
    for ((shared, old), new) in rows {
        for ((a, &old), &new) in shared.iter().zip(old).zip(new) {
            let now = a.load(Ordering::Relaxed);
            let value = if now == old.to_bits() {
                new
            } else {
                f32::from_bits(now) + (new - old)
            };
            a.store(value.to_bits(), Ordering::Relaxed);
        }
    }
}

/// A batch's error as the whole fit names it: its epoch, its batch, and its row of the data (the
/// trainer numbered the batch's rows from 0).
fn renumbered(err: Error, epoch: usize, batch: usize, first_row: usize) -> Error {
    match err {
        Error::Diverged { what, .. } => {
            const ROW: &str = "the prediction for row ";
            let what = match what.strip_prefix(ROW).and_then(|row| row.parse::<usize>().ok()) {
                Some(row) => format!("{ROW}{}", first_row + row),
                None => what,
            };
            Error::Diverged {
                epoch: epoch as u64,
                batch: batch as u64,
                what,
            }
        }
        other => other,
    }
}

/// A concurrent segment (an epoch, see `super::train`) and what its threads share beside the
/// model: the monitor and the fit's progress.
pub(super) struct Segment<'a, M: ?Sized> {
    pub(super) monitor: &'a M,
    pub(super) epoch: usize,
    pub(super) batches: Range<usize>,
    /// Batches an epoch.
    pub(super) per_epoch: usize,
    /// The update count before the fit.
    pub(super) t0: u64,
    /// Rows trained so far in the fit, over all epochs (for progress reports).
    pub(super) done: &'a AtomicU64,
}

/// Trains the batches of `segment` on every thread of the current pool, one [`Worker`] each;
/// adds their statistics to `stats` and returns the first error, with the update count then.
pub(super) fn run_segment<I: CsrIndex, T: Feature, M: Monitor + ?Sized>(
    data: &Data<'_, I, T>,
    config: &TrainConfig,
    model: SharedModel,
    workers: &[Mutex<Worker>],
    segment: &Segment<'_, M>,
    stats: &mut EpochStats,
) -> Option<(Error, u64)> {
    let n_rows = data.x.n_rows();
    let next = AtomicUsize::new(segment.batches.start);
    let stop = AtomicBool::new(false);
    let failure = Mutex::new(None);
    let fail = |err: Error, t: u64| {
        if let Ok(mut failure) = failure.lock() {
            failure.get_or_insert((err, t));
        }
        stop.store(true, Ordering::Relaxed);
    };
    rayon::broadcast(|context| {
        let Some(worker) = workers.get(context.index()) else {
            return;
        };
        let mut worker = worker.lock().unwrap_or_else(|e| e.into_inner());
        while !stop.load(Ordering::Relaxed) {
            let batch = next.fetch_add(1, Ordering::Relaxed);
            if batch >= segment.batches.end {
                return;
            }
            let rows = batch * config.batch_size..((batch + 1) * config.batch_size).min(n_rows);
            let t = segment.t0 + (segment.epoch * segment.per_epoch + batch) as u64;
            // A segment is a whole epoch (no thread waits for the others before it ends), so
            // Ctrl-C is asked for between batches.
            if segment.monitor.stop_requested() {
                fail(Error::Interrupted, t);
                return;
            }
            let n = rows.len() as u64;
            if let Some((err, t)) = worker.train_batch(data, config, model, segment.epoch, batch, rows, t) {
                fail(err, t);
                return;
            }
            let done = segment.done.fetch_add(n, Ordering::Relaxed) + n;
            if done / PROGRESS_ROWS > (done - n) / PROGRESS_ROWS {
                if let Err(err) = segment.monitor.progress(done) {
                    fail(err, t + 1);
                }
            }
        }
    });
    for worker in workers {
        let worker = worker.lock().unwrap_or_else(|e| e.into_inner());
        add(stats, &worker.take_stats());
    }
    failure.into_inner().unwrap_or_else(|e| e.into_inner())
}

/// `into` becomes the statistics of both.
fn add(into: &mut EpochStats, more: &EpochStats) {
    into.rows += more.rows;
    into.loss_sum += more.loss_sum;
    into.true_positives += more.true_positives;
    into.false_positives += more.false_positives;
    into.true_negatives += more.true_negatives;
    into.false_negatives += more.false_negatives;
}

/// Workers for every thread of the current pool.
pub(super) fn workers(d: usize, batch_rows: usize, k: usize, n_slots: usize) -> Result<Vec<Mutex<Worker>>> {
    (0..rayon::current_num_threads())
        .map(|_| Worker::new(d, batch_rows, k, n_slots).map(Mutex::new))
        .collect()
}
