//! Concurrent mini-batches on per-thread replicas, the schedule of [`TrainConfig::deterministic`]
//! `false`.
//!
//! The threads claim an epoch's mini-batches one at a time, in order, from a counter, and each
//! trains the batch it holds while the others train theirs. A [`Worker`] trains a batch with the
//! deterministic schedule's own code ([`Trainer`], on this one thread, with its own scratch,
//! gradient slots and per-feature marks) in place on the thread's own replica of the model
//! ([`Replica`], [`SharedModel::replica`]): the same scores, gradient sums and lazy updates, in the
//! same order, and the same work per sample as one thread. Every round of batches the threads meet
//! and merge their replicas into the model ([`merge_values`]), then go on from the merged model.
//!
//! # Why replicas
//! Training each batch directly on one shared model (Hogwild, the previous design) had to copy
//! every row through relaxed atomic loads and stores (Rust allows no plain access that another
//! thread may race with), which alone cost 1.3-1.7x the CPU time of training in place (measured
//! on one thread, and on two threads each on a private model reached through the same copies),
//! and the rows that both threads write (popular items, the whole of a small model) moved
//! between the cores' caches: 2 threads trained at 0.6-1.2x the speed of one on idle cores. A
//! replica is trained in place, and no line of it is written by two cores.
//!
//! # Staleness and the merge
//! A round is at least [`ROUND_BATCHES`] batches a thread and at least [`ROUND_ENTRIES_PER_FEATURE`]
//! entries per feature of the model (so that the merge, a pass over every replica, stays a small
//! part of the round's work), but no more than an epoch's [`ROUNDS_PER_EPOCH`]th part, and ends at
//! the epoch's end: a thread sees the updates that the
//! others make to the features' rows at the next merge, at most one round later (the staleness
//! bound), and its own at once. At a merge every value of the features' weights and optimizer
//! state becomes the master's plus the sum of the threads' changes since the last merge (exactly a
//! thread's value where it alone changed it), as if the rounds' updates had been applied one after
//! another to the same values: Adam's moments and AdaGrad's sums of squares add up like the
//! weights (Adam's second moments kept ≥ 0). The bias, which every batch updates, is not
//! replicated: each thread updates the one shared bias and its state with relaxed atomic loads and
//! stores (Hogwild: an update that another thread stores within the window is lost).
//!
//! Memory: one replica of the features' weights and state per thread, beside the model.
//!
//! One thread never takes this path ([`super::train`]): with `n_threads = 1` both schedules are
//! the same code, and give the same bits.

use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex};

use super::batch::{Data, Slots, Trainer, NO_SLOT, PROGRESS_ROWS};
use super::config::{EpochStats, OptimizerState, TrainConfig};
use super::model::WeightsMut;
use super::schedule::Schedule;
use super::shared::{Replica, Scratch, SharedModel, SharedScratch};
use super::Feature;
use crate::csr::CsrIndex;
use crate::error::{Error, Result};
use crate::memory::try_filled;
use crate::parallel::{Monitor, Unmonitored};

/// One thread's buffers for training batches of its own. Aligned to two cache lines (the unit
/// that x86 prefetches together), so that the fields one worker updates at every batch share no
/// line with its neighbour's.
#[repr(align(128))]
pub(super) struct Worker {
    scratch: Scratch,
    slots: Slots,
    /// [`Trainer`]'s per-feature marks, one per feature of the model.
    marks: Vec<AtomicU32>,
    /// The statistics of each epoch's batches trained since the last [`Worker::take_stats`].
    stats: Mutex<Vec<EpochStats>>,
}

impl Worker {
    /// A worker for a model of `d` features, batches of up to `batch_rows` rows and `epochs`
    /// epochs.
    pub(super) fn new(d: usize, batch_rows: usize, k: usize, epochs: usize) -> Result<Self> {
        Ok(Worker {
            scratch: Scratch::new(batch_rows, k, 1)?,
            slots: Slots::default(),
            marks: (0..d).map(|_| AtomicU32::new(NO_SLOT)).collect(),
            stats: Mutex::new(try_filled(
                epochs,
                1,
                EpochStats::default(),
                "the statistics of every epoch",
            )?),
        })
    }

    /// The statistics of `epoch` gathered since the last call, leaving zeros.
    fn take_stats(&self, epoch: usize) -> EpochStats {
        let mut stats = self.stats.lock().unwrap_or_else(|e| e.into_inner());
        std::mem::take(&mut stats[epoch])
    }

    /// Trains batch `batch` of `epoch` on the concurrent `model` (the fit started at update
    /// count `t0`); on failure, the error and the update count.
    fn train_batch<I: CsrIndex, T: Feature>(
        &mut self,
        data: &Data<'_, I, T>,
        config: &TrainConfig,
        model: SharedModel,
        epoch: usize,
        batch: usize,
        t0: u64,
    ) -> Option<(Error, u64)> {
        let schedule = Schedule::new(data.x.n_rows(), config, 1, epoch, batch..batch + 1);
        let scratch = SharedScratch::new(&mut self.scratch);
        let trainer = Trainer::new(
            data,
            config,
            &Unmonitored,
            schedule,
            model,
            scratch,
            &self.marks,
            &self.stats,
            t0,
        );
        trainer.run_here(&mut self.slots)
    }
}

/// Batches a thread trains at least between two merges (a thread that finds none left in the
/// round waits for the others' last ones: about half a batch each round).
pub(super) const ROUND_BATCHES: usize = 4;
/// Entries per feature of the model that the threads train at least between two merges (a merge
/// is a pass over every replica of every feature).
pub(super) const ROUND_ENTRIES_PER_FEATURE: usize = 16;

/// Rounds an epoch has at least (unless [`ROUND_BATCHES`] makes them longer): on a small data set,
/// [`ROUND_ENTRIES_PER_FEATURE`] alone made a round most of an epoch, and the staleness cost Adam
/// 5% of held-out RMSE in CI (`tests/training/test_fm_concurrent.py`: 6,000 rows, 450 features, a
/// round of 180 batches of 20 out of 300).
pub(super) const ROUNDS_PER_EPOCH: usize = 8;

/// Batches per round on `threads` threads, for data of `n_rows` rows and `nnz` entries, a model of
/// `d` features and batches of `batch_size` rows.
pub(super) fn round_batches(n_rows: usize, nnz: usize, d: usize, batch_size: usize, threads: usize) -> usize {
    let per_entry = n_rows as f64 / nnz.max(1) as f64;
    let for_merge = (ROUND_ENTRIES_PER_FEATURE as f64 * d as f64 * per_entry).ceil() as usize;
    let per_epoch = n_rows.div_ceil(batch_size.max(1));
    for_merge
        .div_ceil(batch_size)
        .min(per_epoch.div_ceil(ROUNDS_PER_EPOCH))
        .max(ROUND_BATCHES * threads)
}

/// A concurrent segment (an epoch, see `super::train`) and what its threads share beside the
/// model: the monitor and the fit's progress.
pub(super) struct Segment<'a, M: ?Sized> {
    pub(super) monitor: &'a M,
    pub(super) epoch: usize,
    pub(super) batches: Range<usize>,
    /// Batches an epoch.
    pub(super) per_epoch: usize,
    /// Batches a round (between two merges, [`round_batches`]).
    pub(super) round: usize,
    /// The update count before the fit.
    pub(super) t0: u64,
    /// Rows trained so far in the fit, over all epochs (for progress reports).
    pub(super) done: &'a AtomicU64,
}

/// Trains the batches of `segment` on every thread of the current pool, one [`Worker`] and one
/// [`Replica`] each, merging the replicas into `model` every round and at the end; adds their
/// statistics to `stats` and returns the first error, with the update count then (the model is
/// then as at the last merge).
pub(super) fn run_segment<I: CsrIndex, T: Feature, M: Monitor + ?Sized>(
    data: &Data<'_, I, T>,
    config: &TrainConfig,
    model: SharedModel,
    workers: &[Mutex<Worker>],
    replicas: &mut [Replica],
    segment: &Segment<'_, M>,
    stats: &mut EpochStats,
) -> Option<(Error, u64)> {
    let n_rows = data.x.n_rows();
    // Every thread of the pool takes part (`workers` and `replicas` were made for it).
    let threads = replicas.len().min(workers.len()).min(rayon::current_num_threads());
    let views: Vec<SharedModel> = replicas.iter_mut().map(|r| model.replica(r)).collect();
    let next = AtomicUsize::new(segment.batches.start);
    let meeting = Meeting::default();
    let stop = AtomicBool::new(false);
    let failure = Mutex::new(None);
    let fail = |err: Error, t: u64| {
        if let Ok(mut failure) = failure.lock() {
            failure.get_or_insert((err, t));
        }
        stop.store(true, Ordering::Relaxed);
        meeting.wake();
    };
    rayon::broadcast(|context| {
        let me = context.index();
        if me >= threads {
            return;
        }
        let (worker, view) = (&workers[me], views[me]);
        let mut worker = worker.lock().unwrap_or_else(|e| e.into_inner());
        let (mut round_end, mut meetings) = (segment.batches.start, 0);
        while round_end < segment.batches.end {
            round_end = (round_end + segment.round).min(segment.batches.end);
            // Only this round's batches: a thread that finds none left waits for the merge.
            while let Ok(batch) = next.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| {
                (b < round_end).then_some(b + 1)
            }) {
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                let rows = batch * config.batch_size..((batch + 1) * config.batch_size).min(n_rows);
                let t = segment.t0 + (segment.epoch * segment.per_epoch + batch) as u64;
                // A segment is a whole epoch, so Ctrl-C is asked for between batches.
                if segment.monitor.stop_requested() {
                    fail(Error::Interrupted, t);
                    return;
                }
                let n = rows.len() as u64;
                if let Some((err, t)) = worker.train_batch(data, config, view, segment.epoch, batch, segment.t0) {
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
            meetings += 1;
            if !meeting.wait(meetings * threads, &stop) {
                return;
            }
            // SAFETY: between two meetings no thread trains; each merges the features of its own
            // share, in the model and in every replica (module invariant of `super::shared`).
            unsafe { merge_share(&model, &views, config.optimizer.kind.n_slots(), me, threads) };
            meetings += 1;
            if !meeting.wait(meetings * threads, &stop) {
                return;
            }
        }
    });
    for worker in workers {
        let worker = worker.lock().unwrap_or_else(|e| e.into_inner());
        add(stats, &worker.take_stats(segment.epoch));
    }
    failure.into_inner().unwrap_or_else(|e| e.into_inner())
}

/// Where the threads of a segment meet between rounds: a count of arrivals that only grows. A
/// thread that arrives early sleeps rather than spins: on a loaded machine the thread it waits for
/// may be waiting for a core, which spinning would keep from it.
#[derive(Default)]
struct Meeting {
    arrived: Mutex<usize>,
    all_here: Condvar,
}

impl Meeting {
    /// Arrives, then waits until `count` arrivals in all; `false` when training stopped
    /// meanwhile (see [`Meeting::wake`]). The lock orders what each thread wrote before arriving
    /// before what all read after.
    fn wait(&self, count: usize, stop: &AtomicBool) -> bool {
        let mut arrived = self.arrived.lock().unwrap_or_else(|e| e.into_inner());
        *arrived += 1;
        if *arrived >= count {
            self.all_here.notify_all();
        }
        while *arrived < count && !stop.load(Ordering::Relaxed) {
            arrived = self.all_here.wait(arrived).unwrap_or_else(|e| e.into_inner());
        }
        !stop.load(Ordering::Relaxed)
    }

    /// Wakes the waiting threads after `stop` was set, so that they see it.
    fn wake(&self) {
        let _arrived = self.arrived.lock().unwrap_or_else(|e| e.into_inner());
        self.all_here.notify_all();
    }
}

/// Merges share `me` of `threads` of the features (a contiguous range) of `views` into `model`
/// ([`merge_values`]).
///
/// # Safety
/// No other thread reads or writes these features' values in `model` or in `views` meanwhile.
unsafe fn merge_share(model: &SharedModel, views: &[SharedModel], n_slots: usize, me: usize, threads: usize) {
    let d = model.d;
    let features = d * me / threads..d * (me + 1) / threads;
    let arrays = views.iter().map(|v| v.feature_arrays(n_slots)).collect::<Vec<_>>();
    for (a, (master, width)) in model.feature_arrays(n_slots).into_iter().enumerate() {
        let (at, len) = (features.start * width, features.len() * width);
        // SAFETY: in bounds (every array holds `d` rows of `width`); this thread's alone (caller).
        let master = unsafe { master.slice_mut(at, len) };
        // SAFETY: as above, in each replica.
        let mut copies: Vec<&mut [f32]> = arrays.iter().map(|r| unsafe { r[a].0.slice_mut(at, len) }).collect();
        // Adam's state rows are `m` then `v` (`super::optim`): the second half is `v`.
        let nonnegative_from = if a % 2 == 1 && n_slots == 2 { width / 2 } else { width };
        merge_values(master, &mut copies, width, nonnegative_from);
    }
}

/// Merges `copies` of rows of `width` values into `master`: each value becomes the master's plus
/// the sum of the copies' changes from it (a copy's own value where it alone changed it, bit for
/// bit), at least 0 from offset `nonnegative_from` of each row; then every copy takes it.
pub(super) fn merge_values(master: &mut [f32], copies: &mut [&mut [f32]], width: usize, nonnegative_from: usize) {
    let Some((first, others)) = copies.split_first_mut() else {
        return;
    };
    let mut merged = [0.0f32; MERGE_LINE];
    // By lines of 16 values, each folded without branches (vectorized): the first copy's value,
    // then each other copy's change from the master's added to it, or taken as it is where
    // nothing had changed the value yet.
    for start in (0..master.len()).step_by(MERGE_LINE) {
        let line = start..(start + MERGE_LINE).min(master.len());
        let (base, merged) = (&mut master[line.clone()], &mut merged[..line.len()]);
        merged.copy_from_slice(&first[line.clone()]);
        let mut changed = base.iter().zip(merged.iter()).fold(false, |c, (b, m)| c | (b != m));
        for copy in others.iter() {
            for ((m, &b), &v) in merged.iter_mut().zip(base.iter()).zip(&copy[line.clone()]) {
                changed |= v != b;
                *m = if v == b {
                    *m
                } else if *m == b {
                    v
                } else {
                    *m + (v - b)
                };
            }
        }
        // A line that no copy changed is left alone (not written back, which would cost the
        // memory traffic of changed lines).
        if !changed {
            continue;
        }
        for (j, m) in merged.iter_mut().enumerate() {
            if (start + j) % width >= nonnegative_from {
                *m = m.max(0.0);
            }
        }
        base.copy_from_slice(merged);
        first[line.clone()].copy_from_slice(merged);
        for copy in others.iter_mut() {
            copy[line.clone()].copy_from_slice(merged);
        }
    }
}

/// Values [`merge_values`] compares and copies at once (a cache line).
const MERGE_LINE: usize = 16;

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
pub(super) fn workers(d: usize, batch_rows: usize, k: usize, epochs: usize) -> Result<Vec<Mutex<Worker>>> {
    (0..rayon::current_num_threads())
        .map(|_| Worker::new(d, batch_rows, k, epochs).map(Mutex::new))
        .collect()
}

/// A replica of `weights` and `state` for every thread of the current pool.
pub(super) fn replicas(weights: &WeightsMut<'_>, state: &OptimizerState<'_>) -> Result<Vec<Replica>> {
    (0..rayon::current_num_threads())
        .map(|_| Replica::of(weights, state))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_merge_adds_up_the_changes_of_every_copy() {
        // Rows of 2: a weight-like value, then a value kept >= 0 (as Adam's v).
        let mut master = [1.0f32, 2.0, 3.0, 4.0, 1.0, 5.0];
        let mut first = [1.5f32, 2.0, 3.0, -1.0, 0.1, 5.0];
        let mut second = [1.0f32, 2.5, 3.0, 2.0, 1.0, 6.0];
        merge_values(&mut master, &mut [&mut first, &mut second], 2, 1);
        // 1.0 + 0.5 + 0; 2.0 + 0 + 0.5; unchanged; 4 − 5 − 2 < 0 → 0; 0.1 from the first alone,
        // bit for bit (1.0 + (0.1 − 1.0) is not 0.1 in f32); 5 + 0 + 1.
        assert_eq!(master, [1.5, 2.5, 3.0, 0.0, 0.1, 6.0]);
        assert_ne!(1.0f32 + (0.1f32 - 1.0), 0.1);
        assert_eq!((first, second), (master, master));
    }

    #[test]
    fn rounds_are_long_enough_for_the_merge_and_a_few_batches_a_thread_and_an_eighth_of_an_epoch_at_most() {
        // 10M rows of 2 entries over 120,000 features: 16 entries a feature are 960,000 rows.
        assert_eq!(round_batches(10_000_000, 20_000_000, 120_000, 1000, 2), 960);
        // 5M rows: an eighth of the epoch is shorter.
        assert_eq!(round_batches(5_000_000, 10_000_000, 120_000, 1000, 2), 625);
        // A small model: 4 batches a thread.
        assert_eq!(round_batches(1_000_000, 2_000_000, 10, 1000, 2), 8);
        assert_eq!(round_batches(10, 0, 0, 1, 1), 4);
    }
}
