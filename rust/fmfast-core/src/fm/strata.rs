//! The stratified concurrent schedule (DSGD, Gemulla et al. 2011, for FM rows): the threads of
//! [`TrainConfig::deterministic`] `false` train at the same time, but never the same model rows.
//!
//! # The plan
//! Every feature is hashed into `2T` buckets for `T` threads (blocks of consecutive features, as
//! `super::batch::owner` hashes them for the deterministic schedule's parts, so that the threads
//! write no cache line in common either). The round-robin ("circle") tournament on the buckets
//! gives `2T − 1` strata, each `T` disjoint bucket pairs, every pair in exactly one stratum. A row
//! whose features lie in the buckets of one pair belongs to that pair's stratum and to the thread
//! that trains the pair (a row within one bucket: to stratum 0, in the pair holding the bucket).
//! In a stratum each thread trains its rows, in their order, in mini-batches of `batch_size`, on
//! the shared model, while no other thread reads or writes those rows' features
//! ([`SharedModel::disjoint`]: phase 2 updates them in place; phase 1 copies each row it scores,
//! as Hogwild does, since a view of the whole model would overlap the other threads' writes). The
//! threads share only the bias: each trains a copy of its own (with its optimizer state), and the
//! copies are averaged at the stratum's end (each thread trains its copy for a whole stratum,
//! hundreds of batches, so that each is an estimate of the same optimum: the sum of their moves
//! would step twice). When every row is stratified, every result depends on the rows alone, not
//! on how the threads interleave: the schedule is deterministic for a given thread count,
//! whatever the thread chooser gives each segment (one thread trains the threads' shares one
//! after the other).
//!
//! Which data gets which: rows of one or two buckets (one-hot user + item data, such as
//! MovieLens or the 5M set, always) are stratified; rows of three buckets or more (multi-field
//! data) are trained after the strata, each epoch, by Hogwild (`super::hogwild`); and a fit whose
//! plan leaves more than half of the rows to Hogwild, or whose strata are badly unbalanced (a
//! column in most rows puts most rows in one pair), is trained by Hogwild alone ([`Plan::new`]
//! returns `None`).
//!
//! # The copy
//! Once per fit, a counting sort files the rows under their groups ([`Plan`]), and each group's
//! rows (indices, values, labels, sample weights) are copied into arrays of their own
//! ([`Group`]), the groups in parallel, so that each is trained as contiguous rows by the
//! unchanged batch code ([`Trainer`](super::batch::Trainer) through [`Worker`]). Errors name the
//! caller's row numbers ([`Data::row_numbers`]), and a mini-batch by its update count within the
//! epoch.

use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use rayon::prelude::*;

use super::batch::{owner, Data, PROGRESS_ROWS};
use super::checkpoint::Checkpoint;
use super::config::{EpochStats, OptimizerState, TrainConfig};
use super::hogwild::{self, Worker};
use super::model::WeightsMut;
use super::schedule::{segment_batches, ThreadChooser, CONCURRENT_SEGMENT_ROWS};
use super::shared::SharedModel;
use super::Feature;
use crate::csr::{CsrIndex, CsrView, Values};
use crate::error::{Error, Result};
use crate::memory::{advise_huge_pages, try_filled};
use crate::parallel::Monitor;

/// Least share of the threads' time that the strata keep busy (the rows over `T` times the sum
/// of each stratum's largest share); below it, Hogwild trains the fit. Two Hogwild threads ran
/// 1.2-1.5x one thread on the 5M set (docs/benchmarks.md): strata whose threads idle a quarter
/// of the time would gain no more.
const MIN_BALANCE: f64 = 0.75;

/// Threads up to which a fit is stratified (beyond, Hogwild trains it): the plan files each row
/// under one of `(2T − 1)·T + 1` groups in a byte.
const MAX_THREADS: usize = 11;

/// Rows classified by one task of the plan's counting sort.
const CHUNK_ROWS: usize = 1 << 16;

/// Which rows each thread trains in each stratum, and the rows left to Hogwild: one list of row
/// numbers, grouped.
pub(super) struct Plan {
    threads: usize,
    /// Every row's number, group after group (group `stratum · threads + worker`, then the
    /// rest), each group's in the rows' order.
    order: Vec<u32>,
    /// Where each group starts in `order`, and where the last ends.
    bounds: Vec<usize>,
}

/// The pairs of the round-robin tournament on `2 · threads` buckets: `table[a · 2T + b]` is the
/// group (`stratum · threads + worker`) of a row whose buckets are `a` and `b`, and
/// `table[a · 2T + a]` that of a row within bucket `a` (stratum 0).
fn tournament(threads: usize) -> Vec<usize> {
    let n = 2 * threads;
    let mut table = vec![0; n * n];
    for round in 0..n - 1 {
        let pair = |i: usize| {
            if i == 0 {
                (n - 1, round)
            } else {
                ((round + i) % (n - 1), (round + n - 1 - i) % (n - 1))
            }
        };
        for worker in 0..threads {
            let (a, b) = pair(worker);
            let group = round * threads + worker;
            (table[a * n + b], table[b * n + a]) = (group, group);
            if round == 0 {
                (table[a * n + a], table[b * n + b]) = (group, group);
            }
        }
    }
    table
}

impl Plan {
    /// The plan of `data` for `threads` threads (at least two), or `None` when Hogwild should
    /// train the fit (module documentation).
    pub(super) fn new<I: CsrIndex, T>(data: &Data<'_, I, T>, threads: usize) -> Result<Option<Self>> {
        let (x, n) = (data.x, data.x.n_rows());
        if u32::try_from(n).is_err() || threads > MAX_THREADS {
            return Ok(None);
        }
        let buckets = 2 * threads;
        let groups = (buckets - 1) * threads + 1;
        let rest = groups - 1;
        let table = tournament(threads);
        let group_of = |row: usize| {
            let (mut first, mut second) = (usize::MAX, usize::MAX);
            for column in x.row_indices(row) {
                let bucket = owner(column.to_u64().unwrap_or(0) as usize, buckets);
                if bucket == first || bucket == second {
                    continue;
                }
                if first == usize::MAX {
                    first = bucket;
                } else if second == usize::MAX {
                    second = bucket;
                } else {
                    return rest;
                }
            }
            match (first, second) {
                // An empty row trains the bias alone: any thread's.
                (usize::MAX, _) => 0,
                (a, usize::MAX) => table[a * buckets + a],
                (a, b) => table[a * buckets + b],
            }
        };
        // A counting sort of the rows by group, in chunks classified in parallel, whose rows of
        // each group are then copied in parallel to their places (the chunk's share of the
        // group, after the earlier chunks' shares).
        let mut of = try_filled(n, 1, 0u8, "the group of every row")?;
        let counts: Vec<Vec<usize>> = of
            .par_chunks_mut(CHUNK_ROWS)
            .enumerate()
            .map(|(chunk, of)| {
                let mut counts = vec![0usize; groups];
                for (offset, group) in of.iter_mut().enumerate() {
                    let g = group_of(chunk * CHUNK_ROWS + offset);
                    counts[g] += 1;
                    // Fits: `threads` is at most `MAX_THREADS`.
                    *group = g as u8;
                }
                counts
            })
            .collect();
        let total = |group: usize| counts.iter().map(|counts| counts[group]).sum::<usize>();
        let stratified = n - total(rest);
        let longest: usize = (0..rest)
            .step_by(threads)
            .map(|stratum| (stratum..stratum + threads).map(total).max().unwrap_or(0))
            .sum();
        if 2 * stratified < n || (stratified as f64) < MIN_BALANCE * (threads * longest) as f64 {
            return Ok(None);
        }
        let mut order = try_filled(n, 1, 0u32, "the stratified order of the rows")?;
        // `shares[chunk][group]`: where the chunk's rows of the group go.
        let mut shares: Vec<Vec<&mut [u32]>> = counts.iter().map(|_| Vec::with_capacity(groups)).collect();
        let mut unplaced = &mut order[..];
        let mut bounds = vec![0];
        for group in 0..groups {
            for (chunk, counts) in counts.iter().enumerate() {
                let (share, after) = std::mem::take(&mut unplaced).split_at_mut(counts[group]);
                shares[chunk].push(share);
                unplaced = after;
            }
            bounds.push(n - unplaced.len());
        }
        shares.into_par_iter().enumerate().for_each(|(chunk, mut shares)| {
            let mut next = vec![0usize; groups];
            let first = chunk * CHUNK_ROWS;
            for (offset, &group) in of[first..(first + CHUNK_ROWS).min(n)].iter().enumerate() {
                let group = usize::from(group);
                // Fits: `n` does (checked above).
                shares[group][next[group]] = (first + offset) as u32;
                next[group] += 1;
            }
        });
        of.clear();
        Ok(Some(Plan { threads, order, bounds }))
    }

    /// The rows of `group`, in their order.
    fn rows(&self, group: usize) -> &[u32] {
        &self.order[self.bounds[group]..self.bounds[group + 1]]
    }

    /// The groups of the plan: group `stratum · threads + worker`, then the rest.
    fn groups(&self) -> usize {
        self.bounds.len() - 1
    }
}

/// The rows of one group, copied in their order: training reads them as contiguous rows (read
/// from the caller's arrays in the plan's order, a thread's rows of a stratum were scattered
/// over all of them, and the 5M set trained at 1.1x one thread).
struct Group<I, T> {
    indptr: Vec<I>,
    indices: Vec<I>,
    values: Vec<T>,
    labels: Vec<f64>,
    sample_weight: Option<Vec<f64>>,
}

impl<I: CsrIndex, T: Feature> Group<I, T> {
    /// Rows `rows` of `data`, copied (an error, not an abort, when memory is short).
    fn copy(data: &Data<'_, I, T>, rows: &[u32]) -> Result<Self> {
        let x = data.x;
        let entries: usize = rows.iter().map(|&row| x.row_range(row as usize).len()).sum();
        let fail = |_| {
            Error::invalid(format!(
                "cannot allocate the stratified copy of the training data: {} rows, {entries} entries",
                rows.len()
            ))
        };
        let zero = I::from_u64(0).ok_or_else(|| Error::invalid("an index type without 0"))?;
        let mut group = Group {
            indptr: Vec::new(),
            indices: Vec::new(),
            values: Vec::new(),
            labels: Vec::new(),
            sample_weight: data.sample_weight.map(|_| Vec::new()),
        };
        group.indptr.try_reserve_exact(rows.len() + 1).map_err(fail)?;
        group.indices.try_reserve_exact(entries).map_err(fail)?;
        group.values.try_reserve_exact(entries).map_err(fail)?;
        group.labels.try_reserve_exact(rows.len()).map_err(fail)?;
        // Fresh memory of a size like the data's: a page fault every 4 KiB took most of the copy.
        advise_huge_pages(group.indptr.spare_capacity_mut());
        advise_huge_pages(group.indices.spare_capacity_mut());
        advise_huge_pages(group.values.spare_capacity_mut());
        advise_huge_pages(group.labels.spare_capacity_mut());
        group.indptr.push(zero);
        for &row in rows {
            let row = row as usize;
            group.indices.extend_from_slice(x.row_indices(row));
            group.values.extend_from_slice(&data.values[x.row_range(row)]);
            // Fits: no more entries than the caller's `indptr` counts in `I`.
            group
                .indptr
                .push(I::from_u64(group.indices.len() as u64).unwrap_or(zero));
            group.labels.push(data.labels.get(row));
        }
        if let (Some(copy), Some(weights)) = (&mut group.sample_weight, data.sample_weight) {
            copy.try_reserve_exact(rows.len()).map_err(fail)?;
            copy.extend(rows.iter().map(|&row| weights[row as usize]));
        }
        Ok(group)
    }

    /// The group's rows as a CSR view (their columns were checked in the caller's data).
    fn view(&self, n_cols: u64) -> Result<CsrView<'_, I>> {
        CsrView::new_columns_unchecked(&self.indptr, &self.indices, self.values.len(), n_cols)
    }

    /// The group as training data, with `x` its [`Group::view`] and `rows` the caller's row
    /// numbers.
    fn data<'a>(&'a self, x: &'a CsrView<'a, I>, rows: &'a [u32]) -> Data<'a, I, T> {
        Data {
            x,
            values: &self.values,
            labels: Values::F64(&self.labels),
            sample_weight: self.sample_weight.as_deref(),
            row_numbers: Some(rows),
        }
    }
}

/// A bias and its optimizer state, which a thread trains alone during a stratum.
struct Bias {
    value: f32,
    state: Vec<f32>,
}

/// Trains `config.epochs` passes of `data` as `plan` stratifies them, on the current pool's
/// threads (`plan.threads`), as `super::train::train` does with the other schedules: the same
/// checkpoints, progress, Ctrl-C and divergence errors.
#[allow(clippy::too_many_arguments)]
pub(super) fn train<I: CsrIndex, T: Feature, M: Monitor + ?Sized>(
    plan: &Plan,
    data: &Data<'_, I, T>,
    weights: &mut WeightsMut<'_>,
    state: &mut OptimizerState<'_>,
    mut checkpoint: Option<&mut Checkpoint<'_>>,
    config: &TrainConfig,
    monitor: &M,
) -> Result<Vec<EpochStats>> {
    let (threads, bs, n_rows) = (plan.threads, config.batch_size, data.x.n_rows());
    // The groups' copies, then `strata[stratum][worker]`.
    let n_strata = 2 * threads - 1;
    let groups: Vec<Group<I, T>> = (0..plan.groups())
        .into_par_iter()
        .map(|group| Group::copy(data, plan.rows(group)))
        .collect::<Result<_>>()?;
    let views: Vec<CsrView<'_, I>> = groups
        .iter()
        .map(|group| group.view(data.x.n_cols()))
        .collect::<Result<_>>()?;
    let datas: Vec<Data<'_, I, T>> = (groups.iter().zip(&views).enumerate())
        .map(|(at, (group, x))| group.data(x, plan.rows(at)))
        .collect();
    let strata: Vec<&[Data<'_, I, T>]> = datas[..n_strata * threads].chunks(threads).collect();
    let rest = &datas[n_strata * threads];
    let batches = |data: &Data<'_, I, T>| data.x.n_rows().div_ceil(bs);
    let longest = |stratum: &[Data<'_, I, T>]| stratum.iter().map(batches).max().unwrap_or(0);
    // Batches a worker trains in a segment of a stratum, and a segment of the rest.
    let per_segment = (CONCURRENT_SEGMENT_ROWS / (threads * bs)).max(1);
    let rest_segment = segment_batches(bs, true);
    let epoch_batches = datas.iter().map(batches).sum::<usize>();
    let segments =
        strata.iter().map(|s| longest(s).div_ceil(per_segment)).sum::<usize>() + batches(rest).div_ceil(rest_segment);
    let mut chooser = ThreadChooser::new(threads, config.adaptive_threads, config.epochs * segments);
    let workers = hogwild::workers(weights.linear.len(), bs.min(n_rows), weights.k, config.epochs)?;
    let mut stats = try_filled(config.epochs, 1, EpochStats::default(), "the statistics of every epoch")?;
    let mut biases: Vec<Bias> = (0..threads)
        .map(|_| Bias {
            value: 0.0,
            state: state.bias.to_vec(),
        })
        .collect();
    let done = AtomicU64::new(0);
    let t0 = state.t;
    for epoch in 0..config.epochs {
        // The update count before the stratum (or the rest).
        let mut base = t0 + (epoch * epoch_batches) as u64;
        let within = |base: u64| base - t0 - (epoch * epoch_batches) as u64;
        for &stratum in &strata {
            for bias in &mut biases {
                bias.value = *weights.bias;
                bias.state.copy_from_slice(state.bias);
            }
            let mut failed = None;
            for first in (0..longest(stratum)).step_by(per_segment) {
                if monitor.stop_requested() {
                    failed = Some((Error::Interrupted, base + first as u64));
                    break;
                }
                let model = SharedModel::new(weights, state);
                let models: Vec<SharedModel> = biases
                    .iter_mut()
                    .map(|bias| model.with_bias(&mut bias.value, &mut bias.state))
                    .collect();
                let segment = StratumSegment {
                    monitor,
                    epoch,
                    batches: first..first + per_segment,
                    base,
                    done: &done,
                };
                let threads = chooser.next();
                let started = Instant::now();
                failed = run_segment(stratum, config, &models, &workers, threads, &segment, &mut stats[epoch]);
                let rows: usize = stratum
                    .iter()
                    .map(|d| (segment.batches.end * bs).min(d.x.n_rows()).saturating_sub(first * bs))
                    .sum();
                chooser.record(started.elapsed().as_secs_f64() / rows.max(1) as f64);
                if failed.is_some() {
                    break;
                }
            }
            merge(&biases, weights.bias, state.bias);
            if let Some((err, t)) = failed {
                state.t = t;
                return Err(in_epoch(err, within(base)));
            }
            base += stratum.iter().map(batches).sum::<usize>() as u64;
        }
        let rest_batches = batches(rest);
        for first in (0..rest_batches).step_by(rest_segment) {
            if monitor.stop_requested() {
                state.t = base + first as u64;
                return Err(Error::Interrupted);
            }
            let segment = hogwild::Segment {
                monitor,
                epoch,
                batches: first..(first + rest_segment).min(rest_batches),
                per_epoch: rest_batches,
                t0: base - (epoch * rest_batches) as u64,
                done: &done,
            };
            let rows = (segment.batches.end * bs).min(rest.x.n_rows()) - first * bs;
            let model = SharedModel::new(weights, state);
            let threads = chooser.next();
            let started = Instant::now();
            let failed = hogwild::run_segment(rest, config, model, &workers, threads, &segment, &mut stats[epoch]);
            chooser.record(started.elapsed().as_secs_f64() / rows as f64);
            if let Some((err, t)) = failed {
                state.t = t;
                return Err(in_epoch(err, within(base)));
            }
        }
        if let Some(checkpoint) = checkpoint.as_deref_mut().filter(|_| epoch + 1 < config.epochs) {
            checkpoint.save(
                weights,
                state,
                t0 + (epoch_batches * (epoch + 1)) as u64,
                &stats[..=epoch],
            );
        }
    }
    state.t = t0 + (epoch_batches * config.epochs) as u64;
    monitor.progress((n_rows * config.epochs) as u64)?;
    Ok(stats)
}

/// `err` of a group's mini-batch, with the batch numbered by its update count within the epoch
/// (`offset`: the updates of the epoch before the group's first).
fn in_epoch(err: Error, offset: u64) -> Error {
    match err {
        Error::Diverged { epoch, batch, what } => Error::Diverged {
            epoch,
            batch: batch + offset,
            what,
        },
        other => other,
    }
}

/// The threads' biases and states, averaged (in `f64`, in thread order), into `bias` and `state`.
fn merge(biases: &[Bias], bias: &mut f32, state: &mut [f32]) {
    let n = biases.len() as f64;
    *bias = (biases.iter().map(|b| f64::from(b.value)).sum::<f64>() / n) as f32;
    for (slot, value) in state.iter_mut().enumerate() {
        *value = (biases.iter().map(|b| f64::from(b.state[slot])).sum::<f64>() / n) as f32;
    }
}

/// Batches `batches` of each thread's rows in one stratum, and what the threads share beside the
/// model.
struct StratumSegment<'a, M: ?Sized> {
    monitor: &'a M,
    epoch: usize,
    batches: Range<usize>,
    /// The update count before the stratum.
    base: u64,
    /// Rows trained so far in the fit, over all epochs (for progress reports).
    done: &'a AtomicU64,
}

/// Trains `segment` of a stratum: each worker the batches of its rows (`stratum[worker]`) on its
/// model (`models[worker]`: the shared one with its own bias), on `threads` threads of the
/// current pool (one: this one, worker after worker). Adds the statistics to `stats`; returns the
/// first error, with the update count then.
fn run_segment<I: CsrIndex, T: Feature, M: Monitor + ?Sized>(
    stratum: &[Data<'_, I, T>],
    config: &TrainConfig,
    models: &[SharedModel],
    workers: &[Mutex<Worker>],
    threads: usize,
    segment: &StratumSegment<'_, M>,
    stats: &mut EpochStats,
) -> Option<(Error, u64)> {
    let stop = AtomicBool::new(false);
    let failure = Mutex::new(None);
    let fail = |err: Error, t: u64| {
        if let Ok(mut failure) = failure.lock() {
            failure.get_or_insert((err, t));
        }
        stop.store(true, Ordering::Relaxed);
    };
    let train = |w: usize, model: SharedModel| {
        let mut worker = workers[w].lock().unwrap_or_else(|e| e.into_inner());
        let data = &stratum[w];
        let n = data.x.n_rows();
        let batches = n.div_ceil(config.batch_size);
        // The Trainer counts updates from `t0 + epoch · batches`.
        let t0 = segment.base - (segment.epoch * batches) as u64;
        for batch in segment.batches.start..segment.batches.end.min(batches) {
            let t = segment.base + batch as u64;
            if stop.load(Ordering::Relaxed) {
                return;
            }
            if segment.monitor.stop_requested() {
                fail(Error::Interrupted, t);
                return;
            }
            if let Some((err, t)) = worker.train_batch(data, config, model, segment.epoch, batch, t0) {
                fail(err, t);
                return;
            }
            let rows = (((batch + 1) * config.batch_size).min(n) - batch * config.batch_size) as u64;
            let done = segment.done.fetch_add(rows, Ordering::Relaxed) + rows;
            if done / PROGRESS_ROWS > (done - rows) / PROGRESS_ROWS {
                if let Err(err) = segment.monitor.progress(done) {
                    fail(err, t + 1);
                }
            }
        }
    };
    if threads == 1 {
        // Alone on the model: in place, as the deterministic schedule trains.
        for (w, &model) in models.iter().enumerate() {
            train(w, model);
        }
    } else {
        rayon::broadcast(|context| {
            if let Some(&model) = models.get(context.index()) {
                train(context.index(), model.disjoint());
            }
        });
    }
    for worker in workers {
        let worker = worker.lock().unwrap_or_else(|e| e.into_inner());
        hogwild::add(stats, &worker.take_stats(segment.epoch));
    }
    failure.into_inner().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::csr::{CsrView, Values};

    #[test]
    fn the_tournament_puts_every_pair_in_one_stratum_of_disjoint_pairs() {
        for threads in [2, 3, 4, 8] {
            let (n, table) = (2 * threads, tournament(threads));
            let mut seen = vec![0; (n - 1) * threads];
            for a in 0..n {
                for b in 0..n {
                    assert_eq!(table[a * n + b], table[b * n + a]);
                    if a < b {
                        seen[table[a * n + b]] += 1;
                    }
                }
                // A bucket alone goes with the pair of stratum 0 that holds it.
                let own = table[a * n + a];
                assert!(own < threads && (0..n).any(|b| b != a && table[a * n + b] == own));
            }
            // Each group (stratum, worker) is one pair, so each stratum's pairs are disjoint: a
            // bucket meets each other bucket once, in n − 1 strata of `threads` pairs.
            assert!(seen.iter().all(|&count| count == 1), "{threads}: {seen:?}");
        }
    }

    /// One-hot rows of `users` users and `items` items (item columns after the user columns),
    /// `extra` rows with a third column, and an empty row.
    fn ratings(n: usize, users: i64, items: i64, extra: usize) -> (Vec<i64>, Vec<i64>) {
        let (mut indptr, mut indices) = (vec![0i64], vec![]);
        let mut next = 7u64;
        let mut draw = |bound: i64| {
            next = next
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            ((next >> 33) % bound as u64) as i64
        };
        for row in 0..n {
            if row == n / 2 {
                indptr.push(indices.len() as i64);
                continue;
            }
            indices.extend([draw(users), users + draw(items)]);
            if row < extra {
                // A third column far from both: its own bucket, most of the time.
                indices.push(users + items + draw(1000));
            }
            indptr.push(indices.len() as i64);
        }
        (indptr, indices)
    }

    #[test]
    #[cfg_attr(miri, ignore = "too slow for miri: safe code; the stratified fit test runs the plan")]
    fn a_plan_puts_every_row_once_and_no_feature_in_two_threads_of_a_stratum() {
        let threads = 2;
        let (n, users, items) = (30_000, 3000, 700);
        let (indptr, indices) = ratings(n, users, items, 8_000);
        let d = (users + items + 1000) as u64;
        let x = CsrView::new(&indptr, &indices, indices.len(), d).unwrap();
        let (values, labels) = (vec![1.0f32; indices.len()], vec![0.0; n]);
        let data = Data {
            x: &x,
            values: &values,
            labels: Values::F64(&labels),
            sample_weight: None,
            row_numbers: None,
        };
        let plan = Plan::new(&data, threads).unwrap().expect("one-hot rows are stratified");
        assert_eq!(plan.groups(), 3 * threads + 1);
        let mut placed = vec![0; n];
        let buckets = |row: usize| {
            let mut of: Vec<usize> = x
                .row_indices(row)
                .iter()
                .map(|&i| owner(i as usize, 2 * threads))
                .collect();
            of.sort_unstable();
            of.dedup();
            of
        };
        for stratum in 0..2 * threads - 1 {
            let mut owned = vec![None; 2 * threads];
            for worker in 0..threads {
                let rows = plan.rows(stratum * threads + worker);
                // In the rows' order.
                assert!(rows.windows(2).all(|pair| pair[0] < pair[1]));
                for &row in rows {
                    let row = row as usize;
                    placed[row] += 1;
                    let of = buckets(row);
                    assert!(of.len() <= 2, "row {row}: {of:?}");
                    for bucket in of {
                        // A bucket belongs to one thread in a stratum.
                        assert_ne!(owned[bucket].replace(worker), Some(1 - worker), "row {row}");
                    }
                }
            }
        }
        let rest = plan.rows((2 * threads - 1) * threads);
        for &row in rest {
            placed[row as usize] += 1;
            assert!(buckets(row as usize).len() >= 3, "row {row}");
        }
        // Three columns in three of four buckets: 3/8 of the 8,000 rows that have them.
        assert!((2_500..3_500).contains(&rest.len()), "{}", rest.len());
        assert!(placed.iter().all(|&count| count == 1));

        // The copy of a group holds its rows.
        let group = Group::copy(&data, plan.rows(1)).unwrap();
        let view = group.view(d).unwrap();
        for (position, &row) in plan.rows(1).iter().enumerate() {
            assert_eq!(view.row_indices(position), x.row_indices(row as usize));
        }

        // A column in every row: one thread's group in each stratum holds all of its rows,
        // and the other idles (half the threads' time): Hogwild.
        let rows = 10_000;
        let every: Vec<i64> = (0..rows as i64).flat_map(|row| [0, 100 + row % 3000]).collect();
        let indptr: Vec<i64> = (0..=rows as i64).map(|row| 2 * row).collect();
        let x = CsrView::new(&indptr, &every, every.len(), 4000).unwrap();
        let labels = vec![0.0; rows];
        let skewed = Data {
            x: &x,
            values: &values[..every.len()],
            labels: Values::F64(&labels),
            sample_weight: None,
            row_numbers: None,
        };
        assert!(Plan::new(&skewed, threads).unwrap().is_none());
    }
}
