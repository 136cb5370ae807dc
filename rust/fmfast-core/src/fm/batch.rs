//! The threads of one segment ([`Trainer`]): the two phases of each mini-batch, the buffers the
//! threads share, prefetching, and which part of the features each phase-2 task updates
//! ([`owner`]).

use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Mutex;

use super::config::{EpochStats, TrainConfig};
use super::lanes::{Lanes, Scalar};
use super::model::{with_factors, Factors, Task};
use super::optim::{OptimizerKind, Rule, Rules};
use super::schedule::{Job, Schedule};
use super::shared::{RowBuffer, SharedModel, SharedScratch};
use super::{log_loss, sigmoid, Feature};
use crate::csr::{CsrIndex, CsrView, Values};
use crate::error::Error;
use crate::parallel::Monitor;
#[cfg(target_arch = "x86_64")]
use crate::simd::Avx2;

/// The training data, validated.
pub(super) struct Data<'a, I, T> {
    pub(super) x: &'a CsrView<'a, I>,
    pub(super) values: &'a [T],
    pub(super) labels: Values<'a>,
    pub(super) sample_weight: Option<&'a [f64]>,
}

/// Rows between two progress reports.
pub(super) const PROGRESS_ROWS: u64 = 1 << 16;
/// `marks` value of a feature without a gradient slot.
pub(super) const NO_SLOT: u32 = u32::MAX;
/// Busy-wait rounds at a barrier before yielding the core to others.
const SPINS_BEFORE_YIELD: u32 = 1 << 8;

/// Rows (phase 1) and features (phase 2) looked ahead when prefetching weights and state.
const PREFETCH_ROWS: usize = 16;
const PREFETCH_FEATURES: usize = 16;
/// Factor state values a feature up to which phase 1 prefetches the state as well.
const SMALL_STATE: usize = 32;

/// Asks the CPU to start loading the cache lines of `len` values from `ptr` (a hint: no effect
/// on results). The model is far larger than the caches and each batch touches rows spread
/// over all of it, so training waits on memory unless the loads are started ahead.
#[inline(always)]
pub(super) fn prefetch<E>(ptr: *const E, len: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        // An empty slice has no line (SGD's state): without this, the loop below still ran its
        // setup and fetched the line its pointer falls in, twice an entry and a feature.
        if len == 0 {
            return;
        }
        // Every 64-byte line from the one holding the first byte to the one holding the last.
        let skew = ptr as usize % 64;
        let line = ptr.cast::<i8>().wrapping_sub(skew);
        let end = skew + len * std::mem::size_of::<E>();
        let mut offset = 0;
        while offset < end {
            // SAFETY: prefetching never faults; the address is only a hint.
            unsafe { _mm_prefetch(line.wrapping_add(offset), _MM_HINT_T0) };
            offset += 64;
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (ptr, len);
}

/// Starts loading all that the update of feature `i` touches: its weight and `k` factors, and
/// their optimizer state (`ns` slots each).
#[inline(always)]
pub(super) fn prefetch_feature(m: &SharedModel, i: usize, k: usize, ns: usize) {
    prefetch(m.linear.hint(i), 1);
    prefetch(m.linear_state.hint(i * ns), ns);
    prefetch(m.factors.hint(i * k), k);
    prefetch(m.factor_state.hint(i * ns * k), ns * k);
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
pub(super) struct Slots {
    /// The features, in order of first occurrence.
    features: Vec<u32>,
    /// `k + 2` sums of each, side by side: `∂/∂wᵢ = Σ_r g_r x_ri`, `Σ_r g_r x_ri²`, then
    /// `Σ_r g_r x_ri s_r` (`∂/∂vᵢ` is this less `Σ_r g_r x_ri² · vᵢ`). Sized for every entry of
    /// the batch before it is gathered and never shrunk, so that a feature's first entry writes
    /// its sums in place; only the first `features.len()` are the batch's.
    sums: Vec<f64>,
    /// The copies of the rows trained on a concurrent model.
    buffer: RowBuffer,
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
pub(super) struct Trainer<'a, I, T, M: ?Sized> {
    data: &'a Data<'a, I, T>,
    config: &'a TrainConfig,
    monitor: &'a M,
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

impl<'a, I: CsrIndex, T: Feature, M: Monitor + ?Sized> Trainer<'a, I, T, M> {
    /// The threads of the segment that `schedule` covers.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn new(
        data: &'a Data<'a, I, T>,
        config: &'a TrainConfig,
        monitor: &'a M,
        schedule: Schedule,
        model: SharedModel,
        scratch: SharedScratch,
        marks: &'a [AtomicU32],
        stats: &'a Mutex<Vec<EpochStats>>,
        t0: u64,
    ) -> Self {
        Trainer {
            data,
            config,
            monitor,
            n_slots: config.optimizer.kind.n_slots(),
            schedule,
            model,
            scratch,
            marks,
            claimed: AtomicU64::new(0),
            finished: AtomicU64::new(0),
            bad_score: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            failure: Mutex::new(None),
            stats,
            t0,
        }
    }

    /// Runs the segment on `threads` threads of the current pool; returns the error that stopped
    /// it, with the update count at that point.
    pub(super) fn run_on(self, threads: usize) -> Option<(Error, u64)> {
        if threads == 1 {
            return self.run_here(&mut Slots::default());
        }
        rayon::broadcast(|context| {
            if context.index() < threads {
                self.run(&mut Slots::default());
            }
        });
        self.failure.into_inner().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs the segment on this thread alone with `slots` (kept by a caller that trains many
    /// segments of one batch, so that their buffers are not allocated again each time).
    pub(super) fn run_here(self, slots: &mut Slots) -> Option<(Error, u64)> {
        self.run(slots);
        self.failure.into_inner().unwrap_or_else(|e| e.into_inner())
    }

    /// Claims and runs tasks until none is left or training stops.
    fn run(&self, slots: &mut Slots) {
        #[cfg(target_arch = "x86_64")]
        if let Some(token) = Avx2::detect() {
            // SAFETY: the token proves that the CPU has AVX2.
            return unsafe { self.run_avx2(token, slots) };
        }
        self.run_body(slots, Scalar);
    }

    /// [`Trainer::run_body`] compiled for AVX2, with the loops over factors in its lanes
    /// ([`Lanes`]). FMA is not enabled, and rustc never contracts a multiply and an add anyway,
    /// so results are those of the portable build.
    ///
    /// # Safety
    /// The CPU must support AVX2 (the token says so).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn run_avx2(&self, token: Avx2, slots: &mut Slots) {
        self.run_body(slots, token);
    }

    #[inline(always)]
    fn run_body<L: Lanes>(&self, slots: &mut Slots, lanes: L) {
        let schedule = &self.schedule;
        loop {
            let id = self.claimed.fetch_add(1, Ordering::Relaxed);
            if id >= schedule.total() || self.stop.load(Ordering::Relaxed) {
                return;
            }
            let task = schedule.job(id);
            if !self.wait_for(task.phase_start) {
                return;
            }
            self.run_task(&task, slots, lanes);
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
    fn run_task<L: Lanes>(&self, task: &Job, slots: &mut Slots, lanes: L) {
        let schedule = &self.schedule;
        let n = task.rows.len();
        if let Some(share) = &task.share {
            self.score_rows(lanes, task.rows.start, share.clone(), n, &mut slots.buffer);
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
        let rules = self.config.optimizer.rules(t);
        if task.part == 0 {
            let mut stats = self.stats.lock().unwrap_or_else(|e| e.into_inner());
            finite &= self.add_stats_and_update_bias(lanes, n, &rules.bias, &mut stats[task.epoch], &mut slots.buffer);
        }
        self.add_gradients(lanes, task.part, schedule.parts, task.rows.clone(), slots);
        finite &= self.update_features(lanes, task.part, schedule.parts, &rules, slots);
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
    fn score_rows<L: Lanes>(&self, lanes: L, start: usize, share: Range<usize>, n: usize, buffer: &mut RowBuffer) {
        with_factors!(self.model.k, factors => self.score_rows_as(factors, lanes, start, share, n, buffer))
    }

    /// [`Trainer::score_rows`] with `k` given as `factors`.
    #[inline(always)]
    fn score_rows_as<F: Factors, L: Lanes>(
        &self,
        factors: F,
        lanes: L,
        start: usize,
        share: Range<usize>,
        n: usize,
        buffer: &mut RowBuffer,
    ) {
        let (data, k, m, ns) = (self.data, factors.k(), &self.model, self.n_slots);
        let x = data.x;
        // SAFETY: no thread writes the weights in this phase (unless the model is concurrent).
        let view = unsafe { m.scorer() };
        let rescale = self.config.optimizer.rescale_grad.unwrap_or(1.0 / n as f64);
        let sc = &self.scratch;
        let (first, len) = (share.start, share.len());
        // The shares are disjoint: the tasks' consecutive blocks of `rows_per_task` rows.
        debug_assert!(first % self.schedule.rows_per_task == 0 && len <= self.schedule.rows_per_task);
        debug_assert!(share.end <= n);
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
        // One task scores the whole batch with one part: it goes on with the rows after it (the
        // next batches'), so small batches are prefetched too. With several, each its share.
        let end = if self.schedule.parts == 1 {
            x.n_rows()
        } else {
            start + first + len
        };
        for (offset, s) in s.chunks_exact_mut(k).enumerate() {
            let row = start + first + offset;
            if row + PREFETCH_ROWS < end {
                for column in x.row_indices(row + PREFETCH_ROWS) {
                    let i = column.to_u64().unwrap_or(0) as usize;
                    prefetch(m.linear.hint(i), 1);
                    prefetch(m.factors.hint(i * k), k);
                    // The marks, and a small state (a few lines a feature: the batch's fits the
                    // cache until phase 2), only for this thread's own phase 2: with several
                    // parts, another thread may write them, and reading them here would move
                    // their lines twice. A large state is prefetched in phase 2 only.
                    if self.schedule.parts == 1 {
                        prefetch(self.marks.as_ptr().wrapping_add(i), 1);
                        if ns * k <= SMALL_STATE {
                            prefetch(m.linear_state.hint(i * ns), ns);
                            prefetch(m.factor_state.hint(i * ns * k), ns * k);
                        }
                    }
                }
            }
            let score = view.score_row_as(
                factors,
                lanes,
                x.row_indices(row),
                &data.values[x.row_range(row)],
                s,
                buffer,
            );
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
    fn add_stats_and_update_bias<L: Lanes>(
        &self,
        lanes: L,
        n: usize,
        rule: &Rule,
        stats: &mut EpochStats,
        buffer: &mut RowBuffer,
    ) -> bool {
        let (sc, m) = (&self.scratch, &self.model);
        // SAFETY: after the barrier, only read.
        let (g, loss, outcome) = unsafe { (sc.g.slice(0, n), sc.loss.slice(0, n), sc.outcome.slice(0, n)) };
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
        let rows = [(m.bias, 0, 1), (m.bias_state, 0, self.n_slots)];
        // SAFETY: the bias and its state are part 0's alone (unless the model is concurrent).
        let [bias, bias_state] = unsafe { m.rows_mut(lanes, rows, buffer) };
        let (first, second) = slots(bias_state, 1);
        let finite = rule.apply(&[bias_grad], bias, first, second);
        // SAFETY: as above.
        unsafe { m.store(lanes, rows, buffer) };
        finite
    }

    /// Phase 1, with several parts: files the entries of batch rows `share` (the batch starts at
    /// row `start`) under the part their feature belongs to, so that a phase-2 task reads only
    /// its own part's entries.
    #[inline(always)]
    fn sort_entries(&self, start: usize, share: Range<usize>) {
        let (x, parts) = (self.data.x, self.schedule.parts);
        let task = share.start / self.schedule.rows_per_task;
        debug_assert_eq!(share.start % self.schedule.rows_per_task, 0, "a share is one task's");
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
    fn add_gradients<L: Lanes>(&self, lanes: L, part: usize, parts: usize, rows: Range<usize>, slots: &mut Slots) {
        with_factors!(self.model.k, factors => self.add_gradients_as(factors, lanes, part, parts, rows, slots))
    }

    /// [`Trainer::add_gradients`] with `k` given as `factors`.
    #[inline(always)]
    fn add_gradients_as<F: Factors, L: Lanes>(
        &self,
        factors: F,
        lanes: L,
        part: usize,
        parts: usize,
        rows: Range<usize>,
        slots: &mut Slots,
    ) {
        let (data, k) = (self.data, factors.k());
        let x = data.x;
        let n = rows.len();
        // SAFETY: after the barrier the scratch buffers are only read.
        let (s, g) = unsafe { (self.scratch.s.slice(0, n * k), self.scratch.g.slice(0, n)) };
        let row_s = |offset: usize| &s[offset * k..(offset + 1) * k];
        slots.features.clear();
        // At most one slot an entry (of this part's: fewer with several parts).
        let entries = x.row_range(rows.start).start..x.row_range(rows.end - 1).end;
        let needed = entries.len() * (k + 2);
        if slots.sums.len() < needed {
            slots.sums.resize(needed, 0.0);
        }
        if parts == 1 {
            for (offset, &gr) in g.iter().enumerate() {
                let range = x.row_range(rows.start + offset);
                let values = &data.values[range.clone()];
                for (&column, &value) in x.indices()[range].iter().zip(values) {
                    self.add_entry(factors, lanes, column, value, row_s(offset), gr, slots);
                }
            }
            return;
        }
        let (columns, values) = (&x.indices()[entries.clone()], &data.values[entries]);
        let tasks = n.div_ceil(self.schedule.rows_per_task);
        for task in 0..tasks {
            // SAFETY: after the barrier the lists are only read.
            let list = unsafe { self.scratch.entries.slice(task * parts + part, 1) };
            for &(offset, entry) in &list[0] {
                let (offset, entry) = (offset as usize, entry as usize);
                let (column, value) = (columns[entry], values[entry]);
                self.add_entry(factors, lanes, column, value, row_s(offset), g[offset], slots);
            }
        }
    }

    /// Adds one entry's gradient (`column`, `value`, and its row's `s` and `g_r`) to the slots.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn add_entry<F: Factors, L: Lanes>(
        &self,
        factors: F,
        lanes: L,
        column: I,
        value: T,
        s: &[f64],
        gr: f64,
        slots: &mut Slots,
    ) {
        // Columns were validated against d when the view was built.
        let i = column.to_u64().unwrap_or(0) as usize;
        let x = value.to_f64();
        let gx = gr * x;
        let stride = factors.k() + 2;
        let slot = self.marks[i].load(Ordering::Relaxed);
        if slot == NO_SLOT {
            // The feature's first entry in the batch starts its sums (no zeroing first).
            let slot = slots.features.len();
            self.marks[i].store(slot as u32, Ordering::Relaxed);
            slots.features.push(i as u32);
            let sums = &mut slots.sums[slot * stride..(slot + 1) * stride];
            sums[0] = gx;
            sums[1] = gx * x;
            lanes.set_scaled(&mut sums[2..], s, gx);
            return;
        }
        let sums = &mut slots.sums[slot as usize * stride..(slot as usize + 1) * stride];
        sums[0] += gx;
        sums[1] += gx * x;
        lanes.add_scaled(&mut sums[2..], s, gx);
    }

    /// Phase 2, second half: updates the rows of `w`, `V` and state of the slots' features (those
    /// of part `part` of `parts`).
    #[inline(always)]
    fn update_features<L: Lanes>(&self, lanes: L, part: usize, parts: usize, rules: &Rules, slots: &mut Slots) -> bool {
        // One copy of the loop per rule, each without the rule's match and with its state's
        // offsets as constants.
        with_factors!(self.model.k, factors => match rules.factors.kind() {
            OptimizerKind::Sgd => {
                self.update_features_as(OptimizerKind::Sgd, factors, lanes, part, parts, rules, slots)
            }
            OptimizerKind::Adam => {
                self.update_features_as(OptimizerKind::Adam, factors, lanes, part, parts, rules, slots)
            }
            OptimizerKind::AdaGrad => {
                self.update_features_as(OptimizerKind::AdaGrad, factors, lanes, part, parts, rules, slots)
            }
        })
    }

    /// [`Trainer::update_features`] for rules of kind `kind` (a constant where it is inlined) and
    /// `k` given as `factors`.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn update_features_as<F: Factors, L: Lanes>(
        &self,
        kind: OptimizerKind,
        factors: F,
        lanes: L,
        part: usize,
        parts: usize,
        rules: &Rules,
        slots: &mut Slots,
    ) -> bool {
        let (k, m) = (factors.k(), &self.model);
        let (linear_rule, factor_rule) = (&rules.linear, &rules.factors);
        let ns = kind.n_slots();
        debug_assert_eq!(ns, self.n_slots);
        let mut finite = true;
        let features = slots.features.iter().zip(slots.sums.chunks_exact(k + 2));
        for (j, (&i, sums)) in features.enumerate() {
            let (head, grad) = sums.split_at(2);
            let (linear_grad, squares) = (head[0], head[1]);
            if let Some(&next) = slots.features.get(j + PREFETCH_FEATURES) {
                prefetch_feature(m, next as usize, k, ns);
            }
            let i = i as usize;
            debug_assert_eq!(
                owner(i, parts),
                part,
                "feature {i} updated by a task that does not own it"
            );
            // A feature listed twice would find its mark cleared the second time.
            debug_assert_ne!(
                self.marks[i].load(Ordering::Relaxed),
                NO_SLOT,
                "feature {i} listed twice"
            );
            self.marks[i].store(NO_SLOT, Ordering::Relaxed);
            let rows = [
                (m.linear, i, 1),
                (m.linear_state, i * ns, ns),
                (m.factors, i * k, k),
                (m.factor_state, i * ns * k, ns * k),
            ];
            // SAFETY: feature i is this thread's alone (`owner`, unless the model is concurrent)
            // and appears once in `features`.
            let [w, w_state, v, v_state] = unsafe { m.rows_mut(lanes, rows, &mut slots.buffer) };
            let (first, second) = self::slots(w_state, 1);
            finite &= linear_rule.apply_as(kind, w, first, second, |_, _| linear_grad);
            // ∂/∂v_if = Σ_r g_r x_ri s_rf − v_if Σ_r g_r x_ri², formed as the update reads v_if.
            let (first, second) = self::slots(v_state, k);
            finite &= lanes.step(factor_rule, kind, v, first, second, grad, squares);
            // SAFETY: as above.
            unsafe { m.store(lanes, rows, &slots.buffer) };
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
    use std::collections::HashMap;

    use super::*;
    use crate::fm::shared::{Scratch, SharedModel, SharedScratch};
    use crate::fm::{Optimizer, OptimizerKind, OptimizerState, WeightsMut};
    use crate::parallel::Unmonitored;

    #[test]
    fn scratch_beyond_memory_is_an_error() {
        for (rows, k) in [(1 << 20, 1 << 40), (usize::MAX, 2)] {
            let err = Scratch::new(rows, k, 1).err().expect("no scratch of that size");
            assert!(
                err.to_string().contains("lower num_factors or mini_batch_size"),
                "{err}"
            );
        }
    }

    /// Each feature's gradient sums (bit patterns) after phase 1 and the gathering half of phase 2
    /// of one batch, trained with the tasks and parts of `threads` threads, run one after another.
    fn gathered_sums(
        data: &Data<'_, i64, f64>,
        weights: &mut WeightsMut<'_>,
        threads: usize,
    ) -> HashMap<u32, Vec<u64>> {
        let n = data.x.n_rows();
        let config = TrainConfig {
            task: Task::Regressor,
            epochs: 1,
            batch_size: n,
            optimizer: Optimizer::new(OptimizerKind::Sgd),
            adaptive_threads: false,
            deterministic: true,
        };
        let mut state = OptimizerState::new(&mut [], &mut [], &mut [], 0);
        let mut scratch = Scratch::new(n, weights.k, threads).unwrap();
        let marks: Vec<AtomicU32> = (0..weights.linear.len()).map(|_| AtomicU32::new(NO_SLOT)).collect();
        let stats = Mutex::new(vec![EpochStats::default()]);
        let (model, shared) = (SharedModel::new(weights, &mut state), SharedScratch::new(&mut scratch));
        let schedule = Schedule::new(n, &config, threads, 0, 0..1);
        let trainer = Trainer::new(data, &config, &Unmonitored, schedule, model, shared, &marks, &stats, 0);
        let mut slots = Slots::default();
        for id in 0..schedule.total() {
            let task = schedule.job(id);
            if task.share.is_some() {
                trainer.run_task(&task, &mut slots, Scalar);
            }
        }
        let mut sums = HashMap::new();
        for part in 0..schedule.parts {
            trainer.add_gradients(Scalar, part, schedule.parts, 0..n, &mut slots);
            for (&i, feature_sums) in slots.features.iter().zip(slots.sums.chunks_exact(weights.k + 2)) {
                marks[i as usize].store(NO_SLOT, Ordering::Relaxed);
                let bits = feature_sums.iter().map(|v| v.to_bits()).collect();
                assert!(sums.insert(i, bits).is_none(), "feature {i} in two parts");
            }
        }
        sums
    }

    /// 300 rows: feature 0 in every row and three of 40 others, values spread over six orders of
    /// magnitude, so that each feature's f64 sums depend on the order of their terms; labels and
    /// initial factors (k of them) drawn alike.
    struct Problem {
        indptr: Vec<i64>,
        indices: Vec<i64>,
        values: Vec<f64>,
        labels: Vec<f64>,
        factors: Vec<f32>,
    }

    impl Problem {
        const ROWS: usize = 300;
        const FEATURES: usize = 41;

        fn new(k: usize) -> Self {
            let (mut indptr, mut indices, mut values) = (vec![0i64], vec![], vec![]);
            let mut next = 1u64;
            let mut draw = || {
                next = next
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                (next >> 11) as f64 / (1u64 << 53) as f64
            };
            for row in 0..Self::ROWS as i64 {
                indices.extend([0, 1 + row % 40, 1 + (row * 7 + 3) % 40, 1 + (row * 13 + 5) % 40]);
                for _ in 0..4 {
                    values.push(10f64.powf(6.0 * draw() - 3.0));
                }
                indptr.push(indices.len() as i64);
            }
            let labels = (0..Self::ROWS).map(|_| 5.0 * draw()).collect();
            let factors = (0..Self::FEATURES * k).map(|_| (draw() - 0.5) as f32).collect();
            Problem {
                indptr,
                indices,
                values,
                labels,
                factors,
            }
        }

        fn x(&self) -> CsrView<'_, i64> {
            CsrView::new(&self.indptr, &self.indices, self.values.len(), Self::FEATURES as u64).unwrap()
        }
    }

    #[test]
    fn each_part_gathers_its_entries_in_row_order() {
        let (d, k) = (Problem::FEATURES, 3);
        let problem = Problem::new(k);
        let x = problem.x();
        let data = Data {
            x: &x,
            values: &problem.values,
            labels: Values::F64(&problem.labels),
            sample_weight: None,
        };
        let (mut bias, mut linear, mut factors) = (0.1f32, vec![0.05f32; d], problem.factors.clone());
        let mut weights = WeightsMut::new(&mut bias, &mut linear, &mut factors, k).unwrap();
        let one = gathered_sums(&data, &mut weights, 1);
        assert_eq!(one.len(), d);
        for threads in [2, 3] {
            assert_eq!(one, gathered_sums(&data, &mut weights, threads), "{threads} threads");
        }
    }

    /// The bits of the weights and state after one epoch of batches of 7 rows of [`Problem`] with
    /// `kind` and `k` factors, trained on one thread with the loops over factors run by `lanes`.
    fn trained_bits(lanes: impl Lanes, kind: OptimizerKind, k: usize) -> Vec<u32> {
        let (n, d, batch) = (Problem::ROWS, Problem::FEATURES, 7);
        let problem = Problem::new(k);
        let x = problem.x();
        let data = Data {
            x: &x,
            values: &problem.values,
            labels: Values::F64(&problem.labels),
            sample_weight: None,
        };
        let mut optimizer = Optimizer::new(kind);
        // Values up to 1e3 would diverge unclipped; most gradients still fall inside the clip.
        optimizer.factors.lr = 0.01;
        optimizer.clip_gradient = Some(10.0);
        let config = TrainConfig {
            task: Task::Regressor,
            epochs: 1,
            batch_size: batch,
            optimizer,
            adaptive_threads: false,
            deterministic: true,
        };
        let ns = kind.n_slots();
        let (mut bias, mut linear, mut factors) = (0.1f32, vec![0.05f32; d], problem.factors.clone());
        let (mut bias_state, mut linear_state, mut factor_state) =
            (vec![0.0; ns], vec![0.0; d * ns], vec![0.0; d * ns * k]);
        {
            let mut weights = WeightsMut::new(&mut bias, &mut linear, &mut factors, k).unwrap();
            let mut state = OptimizerState::new(&mut bias_state, &mut linear_state, &mut factor_state, 0);
            let mut scratch = Scratch::new(batch, k, 1).unwrap();
            let marks: Vec<AtomicU32> = (0..d).map(|_| AtomicU32::new(NO_SLOT)).collect();
            let stats = Mutex::new(vec![EpochStats::default()]);
            let (model, shared) = (
                SharedModel::new(&mut weights, &mut state),
                SharedScratch::new(&mut scratch),
            );
            let schedule = Schedule::new(n, &config, 1, 0, 0..n.div_ceil(batch));
            let trainer = Trainer::new(&data, &config, &Unmonitored, schedule, model, shared, &marks, &stats, 0);
            let mut slots = Slots::default();
            // The order in which one thread claims the tasks (`run_body`).
            for id in 0..schedule.total() {
                trainer.run_task(&schedule.job(id), &mut slots, lanes);
            }
            assert!(trainer.failure.lock().unwrap().is_none());
        }
        let arrays = [
            &[bias][..],
            &linear,
            &factors,
            &bias_state,
            &linear_state,
            &factor_state,
        ];
        arrays.iter().flat_map(|a| a.iter().map(|v| v.to_bits())).collect()
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn avx2_trains_the_scalar_bits() {
        // Without AVX2 the trainer runs `Scalar` alone: nothing to compare.
        let Some(token) = Avx2::detect() else { return };
        for kind in [OptimizerKind::Sgd, OptimizerKind::Adam, OptimizerKind::AdaGrad] {
            for k in [3, 8, 65] {
                let scalar = trained_bits(Scalar, kind, k);
                // The factors moved (they follow the bias and the linear weights).
                let initial = Problem::new(k).factors;
                let factors = &scalar[1 + Problem::FEATURES..];
                let moved = initial.iter().zip(factors).all(|(a, &b)| a.to_bits() != b);
                assert!(moved, "{kind:?}, k = {k}");
                assert_eq!(scalar, trained_bits(token, kind, k), "{kind:?}, k = {k}");
            }
        }
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
}
