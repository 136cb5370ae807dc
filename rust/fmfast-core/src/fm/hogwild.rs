//! Concurrent mini-batches (Hogwild), the schedule of [`TrainConfig::deterministic`] `false`.
//!
//! The threads claim a segment's mini-batches one at a time, in order, from a counter, and each
//! trains the batch it holds while the others train theirs, against the one shared model,
//! without locks or barriers: they meet only at the segment's end (`CONCURRENT_SEGMENT_ROWS`, for
//! the thread chooser and, at an epoch's end, its checkpoint), so a thread that starts late or
//! that the operating system pauses holds up nobody for long. A segment that the chooser gives
//! one thread is trained by the calling thread alone, batch after batch: as the deterministic
//! schedule trains it on one thread. A [`Worker`] trains a
//! batch with the deterministic schedule's own code ([`Trainer`], on this one thread, with its own
//! scratch, gradient slots and per-feature marks), directly on the shared model, which it holds as
//! [`SharedModel::concurrent`]: the same scores, gradient sums and lazy updates, in the same
//! order, and the same work per sample as one thread, but for the copies of each row to and from
//! a buffer in L1 (`super::shared`).
//!
//! # What the race allows
//! Every access to the shared model is a relaxed atomic load or store, or a vector move that does
//! what those do for eight or four `f32` at once (`super::racy`): no value is ever torn, but a row
//! may be read while another thread writes it (some of its values old, some new). A batch scores its rows with the weights as they are when each row is scored (stale by
//! the updates other threads make meanwhile, at most one batch each). Each feature's update reads
//! its weights and optimizer state right before and writes them right after (a few dozen
//! instructions at k = 8), so concurrent updates of a shared feature (the bias, in every batch)
//! add up, and the optimizer state (Adam's moments, AdaGrad's sums) follows every update; only an
//! update that another thread stores within that window is lost (overwritten).
//!
//! A pool of one thread never takes this path ([`super::train`]): with `n_threads = 1` both
//! schedules are the same code, and give the same bits.

use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

use super::batch::{Data, Slots, Trainer, NO_SLOT, PROGRESS_ROWS};
use super::config::{EpochStats, TrainConfig};
use super::schedule::Schedule;
use super::shared::{Scratch, SharedModel, SharedScratch};
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

    /// Trains batch `batch` of `epoch` on `model`, concurrent or this thread's alone (the fit
    /// started at update count `t0`); on failure, the error and the update count.
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

/// A concurrent segment (`super::schedule::segment_batches`) and what its threads share beside
/// the model: the monitor and the fit's progress.
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

/// Trains the batches of `segment` on `threads` threads of the current pool, one [`Worker`] each
/// (one thread: this one, with the first worker); adds their statistics to `stats` and returns
/// the first error, with the update count then.
#[allow(clippy::too_many_arguments)]
pub(super) fn run_segment<I: CsrIndex, T: Feature, M: Monitor + ?Sized>(
    data: &Data<'_, I, T>,
    config: &TrainConfig,
    model: SharedModel,
    workers: &[Mutex<Worker>],
    threads: usize,
    segment: &Segment<'_, M>,
    stats: &mut EpochStats,
) -> Option<(Error, u64)> {
    let n_rows = data.x.n_rows();
    // One thread has the model to itself: it trains in place, without the racy copies, as the
    // deterministic schedule does (on a loaded machine the copies made one thread 1.4x slower,
    // which the chooser would compare two threads against).
    let model = if threads == 1 { model } else { model.concurrent() };
    let next = AtomicUsize::new(segment.batches.start);
    let stop = AtomicBool::new(false);
    let failure = Mutex::new(None);
    let fail = |err: Error, t: u64| {
        if let Ok(mut failure) = failure.lock() {
            failure.get_or_insert((err, t));
        }
        stop.store(true, Ordering::Relaxed);
    };
    let claim_batches = |worker: &Mutex<Worker>| {
        let mut worker = worker.lock().unwrap_or_else(|e| e.into_inner());
        while !stop.load(Ordering::Relaxed) {
            let batch = next.fetch_add(1, Ordering::Relaxed);
            if batch >= segment.batches.end {
                return;
            }
            let rows = batch * config.batch_size..((batch + 1) * config.batch_size).min(n_rows);
            let t = segment.t0 + (segment.epoch * segment.per_epoch + batch) as u64;
            // Ctrl-C is asked for between batches too: a segment of wide rows or many factors
            // may last longer than the second within which training must stop.
            if segment.monitor.stop_requested() {
                fail(Error::Interrupted, t);
                return;
            }
            let n = rows.len() as u64;
            if let Some((err, t)) = worker.train_batch(data, config, model, segment.epoch, batch, segment.t0) {
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
    };
    match workers.first() {
        Some(first) if threads == 1 => claim_batches(first),
        _ => {
            rayon::broadcast(|context| {
                if let Some(worker) = workers[..threads.min(workers.len())].get(context.index()) {
                    claim_batches(worker);
                }
            });
        }
    }
    for worker in workers {
        let worker = worker.lock().unwrap_or_else(|e| e.into_inner());
        add(stats, &worker.take_stats(segment.epoch));
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
pub(super) fn workers(d: usize, batch_rows: usize, k: usize, epochs: usize) -> Result<Vec<Mutex<Worker>>> {
    (0..rayon::current_num_threads())
        .map(|_| Worker::new(d, batch_rows, k, epochs).map(Mutex::new))
        .collect()
}
