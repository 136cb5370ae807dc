//! Mini-batch training: the O(k · nnz) gradient, lazily applied, in parallel and deterministic.
//!
//! # Batch order
//! Rows are visited in their stored order, every epoch, in consecutive mini-batches of
//! `batch_size` rows (the last one may be shorter). SageMaker FM reads its RecordIO channel
//! sequentially and does not shuffle; callers who want shuffling permute the rows themselves.
//!
//! # One mini-batch
//! 1. In parallel over chunks of rows: ŷ and `s_f = Σᵢ v_if xᵢ` of every row, with the weights as
//!    they were before the batch.
//! 2. In row order, on the calling thread: the loss statistics and the per-row gradient scale
//!    `g_r = ∂ℓ/∂ŷ · sample_weight · rescale_grad` (∂ℓ/∂ŷ = ŷ − y for the regressor,
//!    σ(ŷ) − y for the classifier); the bias gradient `Σ_r g_r`.
//! 3. Concurrently with 1., as it depends on X alone: the batch's (feature, entry) pairs sorted by
//!    feature then entry, giving the distinct features in ascending order, each with its entries
//!    in row order.
//! 4. In parallel over disjoint ranges of those features: `∂/∂wᵢ = Σ_r g_r x_ri` and
//!    `∂/∂v_if = Σ_r g_r x_ri (s_rf − v_if x_ri)`, summed in row order, then the optimizer update
//!    of row `i` of `w` and `V` and of its state ([`super::optim`]). Rows of absent features are
//!    never touched.
//!
//! Every sum is taken in row order whatever the thread count, so results are bit-identical for
//! any `n_threads`, not only for a fixed one.

use std::ops::Range;

use rayon::prelude::*;

use super::model::{check_values, Task, WeightsMut};
use super::optim::{Optimizer, Rule};
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
}

/// Optimizer state owned by the caller, weight-major: the [`super::OptimizerKind::n_slots`] slots
/// (Adam: m then v; AdaGrad: h; SGD: none) of a row sit together, `[feature][slot]` for the
/// linear weights and `[feature][slot][factor]` for the factors, so one update touches adjacent
/// memory.
pub struct OptimizerState<'a> {
    pub(crate) bias: &'a mut [f64],
    pub(crate) linear: &'a mut [f64],
    pub(crate) factors: &'a mut [f64],
    /// Updates applied so far (Adam's `t`); incremented once per mini-batch.
    pub t: u64,
}

impl<'a> OptimizerState<'a> {
    /// State of `n_slots` (bias), `d × n_slots` (linear) and `d × n_slots × k` (factors)
    /// values, checked against the weights by [`fit_epochs`].
    pub fn new(bias: &'a mut [f64], linear: &'a mut [f64], factors: &'a mut [f64], t: u64) -> Self {
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
/// Rows per rayon task when scoring a batch.
const ROWS_PER_TASK: usize = 64;
/// Distinct features per rayon task when updating.
const FEATURES_PER_TASK: usize = 64;

/// Trains for `config.epochs` passes over `x`, updating `weights` and `state` in place, and
/// returns the statistics of each epoch. `labels` (and `sample_weight`, which scales each row's
/// gradient) hold one value per row.
///
/// Non-finite predictions or weights stop training with [`Error::Diverged`]; the weights are then
/// left as they were at that point.
#[allow(clippy::too_many_arguments)]
pub fn fit_epochs<I: CsrIndex, M: Monitor + ?Sized>(
    x: &CsrView<'_, I>,
    values: Values<'_>,
    labels: &[f64],
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

fn check_rows(n_rows: usize, labels: &[f64], sample_weight: Option<&[f64]>, task: Task) -> Result<()> {
    if labels.len() != n_rows {
        return Err(Error::invalid(format!(
            "X has {n_rows} rows but y has {} labels",
            labels.len()
        )));
    }
    if let Some(row) = labels.iter().position(|y| !y.is_finite()) {
        return Err(Error::invalid(format!(
            "label of row {row} is not finite: {}",
            labels[row]
        )));
    }
    if task == Task::BinaryClassifier {
        if let Some(row) = labels.iter().position(|&y| y != 0.0 && y != 1.0) {
            return Err(Error::invalid(format!(
                "label of row {row} is {}; binary_classifier labels must be 0 or 1",
                labels[row]
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
    let Some(at) = values.par_iter().position_first(|v| !v.to_f64().is_finite()) else {
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
    labels: &'a [f64],
    sample_weight: Option<&'a [f64]>,
}

/// Buffers reused from one mini-batch to the next.
#[derive(Default)]
struct Workspace {
    /// `s_rf`, batch rows × k.
    s: Vec<f64>,
    /// ŷ of each batch row.
    scores: Vec<f64>,
    /// `g_r` of each batch row.
    g: Vec<f64>,
    /// `feature << 32 | entry`, entry counted from the batch's first entry; sorted.
    keys: Vec<u64>,
    /// Batch row of each entry.
    entry_row: Vec<u32>,
    /// Distinct features of the batch, ascending.
    features: Vec<u32>,
    /// `keys[starts[u]..starts[u + 1]]` are the entries of `features[u]`.
    starts: Vec<u32>,
}

fn train<I: CsrIndex, T: Feature, M: Monitor + ?Sized>(
    data: &Data<'_, I, T>,
    weights: &mut WeightsMut<'_>,
    state: &mut OptimizerState<'_>,
    config: &TrainConfig,
    monitor: &M,
) -> Result<Vec<EpochStats>> {
    let n_rows = data.x.n_rows();
    for (batch, start) in (0..n_rows).step_by(config.batch_size).enumerate() {
        let end = (start + config.batch_size).min(n_rows);
        let entries = data.x.row_range(end - 1).end - data.x.row_range(start).start;
        if u32::try_from(entries).is_err() {
            return Err(Error::invalid(format!(
                "mini-batch {batch} holds {entries} entries, more than 2^32 - 1; lower mini_batch_size"
            )));
        }
    }
    let mut workspace = Workspace::default();
    let mut all_stats = Vec::with_capacity(config.epochs);
    let (mut done, mut reported) = (0u64, 0u64);
    for epoch in 0..config.epochs {
        let mut stats = EpochStats::default();
        for (batch, start) in (0..n_rows).step_by(config.batch_size).enumerate() {
            let rows = start..(start + config.batch_size).min(n_rows);
            done += rows.len() as u64;
            state.t += 1;
            train_batch(data, rows, weights, state, config, &mut workspace, &mut stats).map_err(|what| {
                Error::Diverged {
                    epoch: epoch as u64,
                    batch: batch as u64,
                    what,
                }
            })?;
            if done - reported >= PROGRESS_ROWS {
                monitor.progress(done)?;
                reported = done;
            }
        }
        all_stats.push(stats);
    }
    monitor.progress(done)?;
    Ok(all_stats)
}

/// One mini-batch; `Err` names what became non-finite.
fn train_batch<I: CsrIndex, T: Feature>(
    data: &Data<'_, I, T>,
    rows: Range<usize>,
    weights: &mut WeightsMut<'_>,
    state: &mut OptimizerState<'_>,
    config: &TrainConfig,
    ws: &mut Workspace,
    stats: &mut EpochStats,
) -> std::result::Result<(), String> {
    let (x, k, n) = (data.x, weights.k, rows.len());
    let start = rows.start;

    // 1. Scores and s of every row, in parallel; meanwhile (3.) the entries grouped by feature,
    // which depend on X alone.
    ws.s.resize(n * k, 0.0);
    ws.scores.resize(n, 0.0);
    ws.g.resize(n, 0.0);
    let view = weights.view();
    let Workspace {
        s,
        scores,
        g,
        keys,
        entry_row,
        features,
        starts,
    } = ws;
    rayon::join(
        || {
            s[..n * k]
                .par_chunks_mut(ROWS_PER_TASK * k)
                .zip(scores[..n].par_chunks_mut(ROWS_PER_TASK))
                .enumerate()
                .for_each(|(task, (s, scores))| {
                    for (offset, (s, score)) in s.chunks_mut(k).zip(scores).enumerate() {
                        let row = start + task * ROWS_PER_TASK + offset;
                        *score = view.score_row(x.row_indices(row), &data.values[x.row_range(row)], s);
                    }
                });
        },
        || group_entries(x, rows.clone(), keys, entry_row, features, starts),
    );

    // 2. Loss statistics and gradient scales, in row order.
    let rescale = config.optimizer.rescale_grad.unwrap_or(1.0 / n as f64);
    let mut bias_grad = 0.0;
    for (offset, (&score, g)) in scores[..n].iter().zip(&mut g[..n]).enumerate() {
        let row = start + offset;
        if !score.is_finite() {
            return Err(format!("the prediction for row {row}"));
        }
        let y = data.labels[row];
        let dloss = match config.task {
            Task::Regressor => {
                stats.loss_sum += (score - y) * (score - y);
                score - y
            }
            Task::BinaryClassifier => {
                let p = sigmoid(score);
                stats.loss_sum += log_loss(score, y);
                match (p >= 0.5, y == 1.0) {
                    (true, true) => stats.true_positives += 1,
                    (true, false) => stats.false_positives += 1,
                    (false, false) => stats.true_negatives += 1,
                    (false, true) => stats.false_negatives += 1,
                }
                p - y
            }
        };
        let weight = data.sample_weight.map_or(1.0, |w| w[row]);
        *g = dloss * weight * rescale;
        bias_grad += *g;
    }
    stats.rows += n as u64;

    // 4. Bias, then the rows of the features present, in parallel.
    let first_entry = x.row_range(start).start;
    let optimizer = &config.optimizer;
    let t = state.t;
    let (bias_first, bias_second) = slots(state.bias, 1);
    let mut finite = optimizer.rule(optimizer.bias, t).apply(
        &[bias_grad],
        std::slice::from_mut(weights.bias),
        bias_first,
        bias_second,
    );
    let n_slots = optimizer.kind.n_slots();
    let target = Rows {
        base: 0,
        linear: weights.linear,
        factors: weights.factors,
        linear_state: state.linear,
        factor_state: state.factors,
    };
    let update = Update {
        k,
        n_slots,
        keys,
        entry_row,
        values: &data.values[first_entry..],
        g,
        s,
        linear: optimizer.rule(optimizer.linear, t),
        factors: optimizer.rule(optimizer.factors, t),
    };
    finite &= update.rows(features, starts, target);
    if finite {
        Ok(())
    } else {
        Err("a weight".to_string())
    }
}

/// Fills `keys` with `feature << 32 | entry` (entry counted from the batch's first entry, which
/// [`train`] keeps below 2^32) sorted, `entry_row` with each entry's batch row, and `features` /
/// `starts` with the distinct features and where their entries start in `keys`.
fn group_entries<I: CsrIndex>(
    x: &CsrView<'_, I>,
    rows: Range<usize>,
    keys: &mut Vec<u64>,
    entry_row: &mut Vec<u32>,
    features: &mut Vec<u32>,
    starts: &mut Vec<u32>,
) {
    let first_entry = x.row_range(rows.start).start;
    keys.clear();
    entry_row.clear();
    for (offset, row) in rows.enumerate() {
        for (entry, column) in x.row_range(row).zip(x.row_indices(row)) {
            keys.push(column.to_u64().unwrap_or(0) << 32 | (entry - first_entry) as u64);
            entry_row.push(offset as u32);
        }
    }
    keys.sort_unstable();
    features.clear();
    starts.clear();
    for (position, key) in keys.iter().enumerate() {
        let feature = (key >> 32) as u32;
        if features.last() != Some(&feature) {
            features.push(feature);
            starts.push(position as u32);
        }
    }
    starts.push(keys.len() as u32);
}

/// The first state slot of one weight group's row and the rest (the second slot, or nothing).
fn slots(state: &mut [f64], len: usize) -> (&mut [f64], &mut [f64]) {
    let at = len.min(state.len());
    state.split_at_mut(at)
}

/// The rows of `w`, `V` and their state from feature `base` on, split between tasks.
struct Rows<'a> {
    base: usize,
    linear: &'a mut [f64],
    factors: &'a mut [f64],
    linear_state: &'a mut [f64],
    factor_state: &'a mut [f64],
}

impl<'a> Rows<'a> {
    /// Rows before `feature`, and rows from `feature` on.
    fn split_at(self, feature: usize, k: usize, n_slots: usize) -> (Rows<'a>, Rows<'a>) {
        let at = feature - self.base;
        let (linear_low, linear_high) = self.linear.split_at_mut(at);
        let (factors_low, factors_high) = self.factors.split_at_mut(at * k);
        let (linear_state_low, linear_state_high) = self.linear_state.split_at_mut(at * n_slots);
        let (factor_state_low, factor_state_high) = self.factor_state.split_at_mut(at * n_slots * k);
        (
            Rows {
                base: self.base,
                linear: linear_low,
                factors: factors_low,
                linear_state: linear_state_low,
                factor_state: factor_state_low,
            },
            Rows {
                base: feature,
                linear: linear_high,
                factors: factors_high,
                linear_state: linear_state_high,
                factor_state: factor_state_high,
            },
        )
    }
}

/// What the per-feature gradient and update read.
struct Update<'a, T> {
    k: usize,
    n_slots: usize,
    keys: &'a [u64],
    entry_row: &'a [u32],
    /// Values from the batch's first entry on.
    values: &'a [T],
    g: &'a [f64],
    s: &'a [f64],
    linear: Rule,
    factors: Rule,
}

impl<T: Feature> Update<'_, T> {
    /// Updates the rows of `features` (ascending, all at or after `rows.base`), splitting the
    /// work in halves; returns whether every updated weight is finite.
    fn rows(&self, features: &[u32], starts: &[u32], rows: Rows<'_>) -> bool {
        if features.len() <= FEATURES_PER_TASK {
            return self.leaf(features, starts, rows);
        }
        let mid = features.len() / 2;
        let (low, high) = rows.split_at(features[mid] as usize, self.k, self.n_slots);
        let (a, b) = rayon::join(
            || self.rows(&features[..mid], &starts[..=mid], low),
            || self.rows(&features[mid..], &starts[mid..], high),
        );
        a && b
    }

    fn leaf(&self, features: &[u32], starts: &[u32], rows: Rows<'_>) -> bool {
        let k = self.k;
        let mut grad = vec![0.0; k];
        let mut finite = true;
        for (u, &feature) in features.iter().enumerate() {
            let i = feature as usize - rows.base;
            let factors = i * k..(i + 1) * k;
            let mut linear_grad = 0.0;
            grad.fill(0.0);
            let v = &rows.factors[factors.clone()];
            for &key in &self.keys[starts[u] as usize..starts[u + 1] as usize] {
                let entry = (key & u64::from(u32::MAX)) as usize;
                let row = self.entry_row[entry] as usize;
                let x = self.values[entry].to_f64();
                let gx = self.g[row] * x;
                linear_grad += gx;
                for ((acc, &s), &v) in grad.iter_mut().zip(&self.s[row * k..(row + 1) * k]).zip(v) {
                    *acc += gx * (s - v * x);
                }
            }
            let slots = self.n_slots;
            let (first, second) = self::slots(&mut rows.linear_state[i * slots..(i + 1) * slots], 1);
            finite &= self
                .linear
                .apply(&[linear_grad], &mut rows.linear[i..=i], first, second);
            let state = &mut rows.factor_state[i * slots * k..(i + 1) * slots * k];
            let (first, second) = self::slots(state, k);
            finite &= self.factors.apply(&grad, &mut rows.factors[factors], first, second);
        }
        finite
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fm::{predict, Group, OptimizerKind, Weights};
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
        bias: f64,
        linear: Vec<f64>,
        factors: Vec<f64>,
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
            bias: rng.next() * 0.1,
            linear: (0..d).map(|_| rng.next() * 0.3).collect(),
            factors: (0..d * k).map(|_| rng.next() * 0.3).collect(),
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
                    &self.labels,
                    None,
                    &mut weights,
                    &mut state,
                    config,
                    &Unmonitored,
                )
            })?;
            Ok(fitted)
        }

        /// Mean loss over all rows (½ squared error or log loss) with the given weights.
        fn loss(&self, task: Task, bias: f64, linear: &[f64], factors: &[f64]) -> f64 {
            let w = Weights::new(bias, linear, factors, self.k).unwrap();
            let scores = predict(&self.view(), Values::F64(&self.values), &w, &Unmonitored).unwrap();
            let total: f64 = scores
                .iter()
                .zip(&self.labels)
                .map(|(&z, &y)| match task {
                    Task::Regressor => 0.5 * (z - y) * (z - y),
                    Task::BinaryClassifier => log_loss(z, y),
                })
                .sum();
            total / scores.len() as f64
        }
    }

    #[derive(Debug, PartialEq)]
    struct Fitted {
        bias: f64,
        linear: Vec<f64>,
        factors: Vec<f64>,
        state: [Vec<f64>; 3],
        stats: Vec<EpochStats>,
    }

    fn config(task: Task, kind: OptimizerKind, epochs: usize, batch_size: usize) -> TrainConfig {
        TrainConfig {
            task,
            epochs,
            batch_size,
            optimizer: Optimizer::new(kind),
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
            let h = 1e-6;
            let check = |analytic: f64, plus: f64, minus: f64, what: String| {
                let numeric = (plus - minus) / (2.0 * h);
                assert!(
                    (analytic - numeric).abs() < 1e-6 * (1.0 + numeric.abs()),
                    "{what}: {analytic} vs {numeric}"
                );
            };
            let bias_plus = p.loss(task, p.bias + h, &p.linear, &p.factors);
            let bias_minus = p.loss(task, p.bias - h, &p.linear, &p.factors);
            check(p.bias - fitted.bias, bias_plus, bias_minus, format!("{task:?} bias"));
            for i in 0..p.d {
                let (mut plus, mut minus) = (p.linear.clone(), p.linear.clone());
                plus[i] += h;
                minus[i] -= h;
                let (lp, lm) = (
                    p.loss(task, p.bias, &plus, &p.factors),
                    p.loss(task, p.bias, &minus, &p.factors),
                );
                check(p.linear[i] - fitted.linear[i], lp, lm, format!("{task:?} w[{i}]"));
            }
            for j in 0..p.d * p.k {
                let (mut plus, mut minus) = (p.factors.clone(), p.factors.clone());
                plus[j] += h;
                minus[j] -= h;
                let (lp, lm) = (
                    p.loss(task, p.bias, &p.linear, &plus),
                    p.loss(task, p.bias, &p.linear, &minus),
                );
                check(
                    p.factors[j] - fitted.factors[j],
                    lp,
                    lm,
                    format!("{task:?} V.flat[{j}]"),
                );
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
            let p = problem(300, 12, 5, Task::BinaryClassifier, 5);
            let config = config(Task::BinaryClassifier, kind, 2, 32);
            let one = p.fit(&config, 1).unwrap();
            for threads in [2, 3, 4] {
                assert_eq!(one, p.fit(&config, threads).unwrap(), "{kind:?}, {threads} threads");
            }
        }
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
}
