//! Who trains what: how many threads train a fit ([`shared_batch_threads`]), the segments of its
//! epochs ([`segment_batches`]) and how many threads train each ([`ThreadChooser`]), and the
//! numbered tasks into which a segment's mini-batches are cut ([`Schedule`]).

use std::ops::Range;

use super::config::TrainConfig;

/// Batch rows per thread below which training uses fewer threads.
const MIN_PARALLEL_ROWS: usize = 64;
/// Bytes of weights and optimizer state up to which a model, small enough to stay in the caches
/// (this machine: 1 MiB of L2 a core, 32 MiB of L3 shared), trains on one thread when the core
/// chooses. Two threads on such a model gain only while the cores are free: on this 2-vCPU VM,
/// MovieLens-100K's models (2,625 features; 0.1 MB at SGD k = 8 to 2.0 MB at Adam k = 64) ran at
/// 1.5-1.8x one thread in quiet moments and at about 0.6x in its slow periods, and its fits are
/// too short (7 segments an epoch) for the [`ThreadChooser`]'s probes to pay: they put 32% of an
/// epoch on the count that loses. One thread gives up the gains and is never slower. The 5M
/// set's models (120,000 features; 4.3 to 94 MB), whose fits are hundreds of segments, keep the
/// chooser. The bound lies between the two.
pub(super) const CACHED_MODEL_BYTES: usize = 3 << 20;
/// Rows of an epoch trained by one crew of threads (whole batches, at least one; 16 batches of
/// SageMaker's default size); [`ThreadChooser`] picks each crew's size.
pub(super) const SEGMENT_ROWS: usize = 16_000;
/// [`SEGMENT_ROWS`] for the concurrent schedule (`super::hogwild`), whose threads meet only
/// between segments: at each meeting one thread waits for the other's last batch and the pool is
/// woken again, so its segments are longer. 64 batches of SageMaker's default size: 1.8-2.7 ms
/// of two threads at SGD k = 8 on rows shaped like the 5M set's, 9-11 ms at Adam k = 64, of
/// which a meeting idled a thread for a median 18-101 µs and 245-250 µs (0.3-2.7% and 1.2-1.4%
/// of the threads' time) in quiet moments (docs/benchmarks.md, "The concurrent schedule's
/// thread chooser").
pub(super) const CONCURRENT_SEGMENT_ROWS: usize = 64_000;
/// Segments between two measurements of both thread counts.
const CHOOSER_CYCLE: usize = 64;
/// Measuring segments at the start of a cycle: all threads, one, all, one.
const PROBES: usize = 4;
/// One thread is chosen only when it took less than this share of the time a row took on all:
/// short measurements are noisy, and the extra threads usually pay.
const ONE_THREAD_MARGIN: f64 = 0.9;

/// Threads, of the pool's `max`, that share the batches of a fit with `batch_rows` rows a batch:
/// at most one per [`MIN_PARALLEL_ROWS`] rows, so that each has a batch share worth the meetings;
/// and with `adaptive`, one when the model and its optimizer state (`model_bytes`) fit in
/// [`CACHED_MODEL_BYTES`]. Results do not depend on it: they are identical for every thread count.
pub(super) fn shared_batch_threads(max: usize, batch_rows: usize, model_bytes: usize, adaptive: bool) -> usize {
    if adaptive && model_bytes <= CACHED_MODEL_BYTES {
        return 1;
    }
    max.min(batch_rows / MIN_PARALLEL_ROWS).max(1)
}

/// Batches of `batch_size` rows in a segment: [`CONCURRENT_SEGMENT_ROWS`] for the concurrent
/// schedule, [`SEGMENT_ROWS`] for the deterministic one, in whole batches, at least one.
pub(super) fn segment_batches(batch_size: usize, concurrent: bool) -> usize {
    let rows = if concurrent {
        CONCURRENT_SEGMENT_ROWS
    } else {
        SEGMENT_ROWS
    };
    (rows / batch_size).max(1)
}

/// Chooses how many threads train each segment. With `adaptive` off it is always `max`. With it
/// on, each [`CHOOSER_CYCLE`] starts with [`PROBES`] segments alternately on `max` threads and on
/// one, and runs the rest on one thread only if its faster probe beat the faster probe on `max`
/// by [`ONE_THREAD_MARGIN`] (the faster of two, so that a moment's slowdown of the machine does
/// not decide). The segments that then run on `max` threads are measured too, and the rest of
/// the cycle goes to one thread as soon as the faster of the last two loses to the one-thread
/// probe by the margin: a cycle can last seconds (64 of the concurrent schedule's segments are
/// about 4 M rows), and the machine may get busy after its probes. A fit of no more segments
/// than [`PROBES`] would be all probes, with no segment left to use what they found (and its
/// fixed costs weigh most): it trains on one thread. It serves both schedules: the deterministic
/// one's results do not depend on the choice (they are identical for every thread count), and
/// the concurrent one's segments on one thread are trained as the deterministic schedule trains
/// them.
pub(super) struct ThreadChooser {
    max: usize,
    adaptive: bool,
    /// Segments trained so far.
    segments: usize,
    /// The least seconds per row measured in this cycle on one thread, and on `max` threads by
    /// the probes, then by the last two segments on them.
    one: f64,
    all: f64,
    /// Seconds per row of the last segment on `max` threads.
    last_all: f64,
}

impl ThreadChooser {
    /// A chooser of up to `max` threads for a fit of `segments` segments.
    pub(super) fn new(max: usize, adaptive: bool, segments: usize) -> Self {
        let max = if adaptive && segments <= PROBES { 1 } else { max };
        ThreadChooser {
            max,
            adaptive: adaptive && max > 1,
            segments: 0,
            one: f64::INFINITY,
            all: f64::INFINITY,
            last_all: f64::INFINITY,
        }
    }

    /// The most threads it gives a segment.
    pub(super) fn max(&self) -> usize {
        self.max
    }

    pub(super) fn next(&self) -> usize {
        match self.segments % CHOOSER_CYCLE {
            _ if !self.adaptive => self.max,
            probe if probe < PROBES => [self.max, 1][probe % 2],
            _ if self.one < ONE_THREAD_MARGIN * self.all => 1,
            _ => self.max,
        }
    }

    /// Takes the time per row of the segment just trained (on [`ThreadChooser::next`] threads).
    pub(super) fn record(&mut self, seconds_per_row: f64) {
        let position = self.segments % CHOOSER_CYCLE;
        if position == 0 {
            (self.one, self.all) = (f64::INFINITY, f64::INFINITY);
        }
        let on_all = self.next() == self.max;
        if position < PROBES && !on_all {
            self.one = self.one.min(seconds_per_row);
        } else if position < PROBES {
            self.all = self.all.min(seconds_per_row);
        } else if on_all {
            self.all = self.last_all.min(seconds_per_row);
        }
        if on_all {
            self.last_all = seconds_per_row;
        }
        self.segments += 1;
    }
}

/// The thread chooser of a fit that is trained in several calls, one per read of a stream
/// (`fit(path)`): each call goes on with the measurements of the calls before it, so that a cycle's
/// probes are paid once for all its segments, not once a call, and no call is too short to measure
/// (a stream's first reads, of 2 and 4 segments, would otherwise train on one thread). Empty until
/// the first call; results do not depend on it.
#[derive(Default)]
pub struct ThreadChoice(Option<ThreadChooser>);

impl ThreadChoice {
    /// The chooser of a call whose segments may use up to `max` threads: the one carried from
    /// earlier calls, made by the first; `None` for a call of another `max` (a last read of
    /// fewer rows than a batch), which then chooses on its own.
    pub(super) fn chooser(&mut self, max: usize, adaptive: bool) -> Option<&mut ThreadChooser> {
        // As many segments as there may be: the stream's length is not known.
        let chooser = self
            .0
            .get_or_insert_with(|| ThreadChooser::new(max, adaptive, usize::MAX));
        (chooser.max() == max).then_some(chooser)
    }
}

/// Which batch, phase and share of it a task is, from its number; every thread computes the same.
///
/// The tasks cover batches `first..first + count` of one epoch. A batch is `a_tasks(n)` phase-1
/// tasks (consecutive rows) then `parts` phase-2 tasks (the features whose `batch::owner` among
/// `parts` is the task's). A task may start once every task numbered before its phase's first has
/// finished.
#[derive(Clone, Copy)]
pub(super) struct Schedule {
    pub(super) n_rows: usize,
    pub(super) batch_size: usize,
    /// Batches an epoch.
    pub(super) batches: usize,
    pub(super) epoch: usize,
    pub(super) first: usize,
    pub(super) count: usize,
    pub(super) rows_per_task: usize,
    pub(super) parts: usize,
    pub(super) per_full_batch: usize,
    pub(super) total: usize,
}

/// A task: phase 1 over rows `rows` of the batch, or phase 2 over feature part `part`.
pub(super) struct Job {
    pub(super) epoch: usize,
    pub(super) batch: usize,
    /// The batch's rows.
    pub(super) rows: Range<usize>,
    /// Phase 1: the share of the batch (offsets); phase 2: `None`.
    pub(super) share: Option<Range<usize>>,
    pub(super) part: usize,
    /// Number of the first task of this task's phase.
    pub(super) phase_start: u64,
}

impl Schedule {
    pub(super) fn new(
        n_rows: usize,
        config: &TrainConfig,
        threads: usize,
        epoch: usize,
        batches: Range<usize>,
    ) -> Self {
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

    pub(super) fn total(&self) -> u64 {
        self.total as u64
    }

    pub(super) fn job(&self, id: u64) -> Job {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fit_shares_its_batches_only_when_each_thread_gets_work_beyond_the_caches() {
        let large = 4 * CACHED_MODEL_BYTES;
        // Large batches of a model beyond the caches: every thread.
        assert_eq!(shared_batch_threads(2, 1000, large, true), 2);
        assert_eq!(shared_batch_threads(16, 1000, large, true), 15);
        // Small batches: at most one thread per `MIN_PARALLEL_ROWS` rows, adaptive or not.
        assert_eq!(shared_batch_threads(2, 100, large, true), 1);
        assert_eq!(shared_batch_threads(4, 200, large, false), 3);
        assert_eq!(shared_batch_threads(2, 10, large, false), 1);
        // A model that fits the caches (MovieLens-100K's, Adam k = 64: 2,625 · 65 · 12 bytes):
        // one thread when measuring, every thread when told to use them all.
        let movielens = 2_625 * 65 * 12;
        assert_eq!(shared_batch_threads(2, 1000, movielens, true), 1);
        assert_eq!(shared_batch_threads(2, 1000, CACHED_MODEL_BYTES, true), 1);
        assert_eq!(shared_batch_threads(2, 1000, CACHED_MODEL_BYTES + 1, true), 2);
        assert_eq!(shared_batch_threads(2, 1000, movielens, false), 2);
    }

    #[test]
    fn concurrent_segments_are_longer_and_in_whole_batches() {
        // SageMaker's default batches: 16 a deterministic segment, 64 a concurrent one.
        assert_eq!(segment_batches(1000, false), 16);
        assert_eq!(segment_batches(1000, true), 64);
        // Rows per segment whatever the batch size, in whole batches: one batch at least.
        assert_eq!(segment_batches(1, true), CONCURRENT_SEGMENT_ROWS);
        assert_eq!(segment_batches(100, false), SEGMENT_ROWS / 100);
        assert_eq!(segment_batches(30_000, true), 2);
        assert_eq!(segment_batches(CONCURRENT_SEGMENT_ROWS + 1, true), 1);
        assert_eq!(segment_batches(SEGMENT_ROWS + 1, false), 1);
    }

    #[test]
    fn the_chooser_measures_both_counts_then_keeps_the_faster() {
        let mut chooser = ThreadChooser::new(4, true, 1000);
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

        // All threads won the probes but lose later (the machine got busy): a single slow segment
        // does not move the choice, two in a row do, for the rest of the cycle.
        let mut chooser = ThreadChooser::new(2, true, 1000);
        let probes = [(2, 1.0), (1, 1.5), (2, 1.1), (1, 1.6)];
        for (threads, seconds) in probes
            .into_iter()
            .chain([(2, 1.0), (2, 2.0), (2, 1.0), (2, 2.0), (2, 1.9)])
        {
            assert_eq!(chooser.next(), threads);
            chooser.record(seconds);
        }
        for _ in PROBES + 5..CHOOSER_CYCLE {
            assert_eq!(chooser.next(), 1);
            chooser.record(0.1);
        }
        assert_eq!(chooser.next(), 2);

        let mut fixed = ThreadChooser::new(4, false, 1000);
        fixed.record(9.0);
        fixed.record(1.0);
        assert_eq!(fixed.next(), 4);
        assert_eq!(ThreadChooser::new(1, true, 1000).next(), 1);
        // A fit that the probes would fill: one thread, unless told to use them all.
        assert_eq!(ThreadChooser::new(4, true, PROBES).next(), 1);
        assert_eq!(ThreadChooser::new(4, true, PROBES + 1).next(), 4);
        assert_eq!(ThreadChooser::new(4, false, 1).next(), 4);
    }

    #[test]
    fn a_choice_carried_from_call_to_call_measures_as_one_fit() {
        let mut choice = ThreadChoice::default();
        // Calls of 2, 2 and 3 segments (a stream's first reads): alone, each would train on one
        // thread; carried, they probe both counts once, then keep the faster (2 threads here).
        let mut counts = Vec::new();
        for (call, segments) in [2, 2, 3].into_iter().enumerate() {
            for segment in 0..segments {
                let chooser = choice.chooser(2, true).unwrap();
                counts.push(chooser.next());
                chooser.record(if chooser.next() == 2 { 1.0 } else { 1.5 });
                // A call for another thread count (a last read shorter than a batch) chooses on
                // its own and leaves the carried measurements as they were.
                if (call, segment) == (1, 0) {
                    assert!(choice.chooser(1, true).is_none());
                }
            }
        }
        assert_eq!(counts, [2, 1, 2, 1, 2, 2, 2]);
    }
}
