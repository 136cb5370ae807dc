//! One sweep of ALS or Gibbs sampling over every parameter, libFM's way: an error cache
//! `e_r = y_r − ŷ_r` per row and, for the factor `f` being swept, `q_r = Σᵢ v_if x_ri`, so that each
//! coordinate θ costs O(entries of its column).
//!
//! ŷ is linear in each θ: `ŷ = g_θ + θ h_θ(x)` with `h = 1` (bias), `xᵢ` (`wᵢ`) and
//! `xᵢ (q − v_if xᵢ)` (`v_if`). With row weights `r`, noise precision `α` and a normal prior
//! `N(μ, 1/λ)` on θ, θ's conditional posterior is normal with
//!
//! ```text
//! precision p = α Σ r h² + λ,   mean m = (α Σ r h (e + θ h) + λ μ) / p.
//! ```
//!
//! MCMC draws θ ← m + z / √p, z from [`Draws`]; ALS sets θ ← m with `α = 1`, `μ = 0` and its
//! fixed λ: the exact minimiser of `Σ r (y − ŷ)² + λ θ²` in θ. Each new θ is stored as `f32`
//! and the caches move by what was stored: `e −= Δθ h`, `q += Δθ xᵢ`.
//!
//! Adaptive ALS (mean-field variational Bayes) sets θ ← m too, with MCMC's priors and α, and
//! keeps θ's variance `s = 1/p`: a factor's `h` is uncertain through the other factors it
//! multiplies, `Var h = xᵢ² (σ − xᵢ² s_if)` with the row cache `σ_r = Σᵢ x_ri² s_if`, so `p`
//! gains `α Σ r Var h` (the mean `m` does not change). Where MCMC draws α and the priors,
//! adaptive ALS takes the means of the same distributions, the variances added to the squares.
//!
//! Order of a sweep: (MCMC, adaptive ALS) α, then `w0`, then (MCMC, adaptive ALS) the linear
//! priors of every group, then every `wᵢ`; then for each factor f: `q` (and `σ`), (MCMC,
//! adaptive ALS) the priors of factor f of every group, every `v_if`. Coordinates go in column order, one [`Design::runs`] at a time: the columns of a run
//! share no row, so their conditionals do not depend on each other and their updates touch
//! different rows of `e` and `q`: the threads take them at the same time, each row of the caches
//! written by one thread (relaxed atomics, so that no `unsafe` is needed), and the result is
//! exactly the sequential one, for every thread count. A column of a short run (the
//! implicit-feedback block's columns share rows) is itself shared by the threads when it is long:
//! its sums are cut into fixed chunks added in order, its cache updates touch distinct rows; the
//! result is again the same for every thread count.

use std::sync::atomic::{AtomicU64, Ordering};

use rayon::prelude::*;

use super::design::Design;
use super::draws::Draws;
use super::Method;
use crate::error::{Error, Result};
use crate::fm::model::WeightsMut;
use crate::memory::{try_collect, try_filled};
use crate::parallel::Monitor;

/// Columns of a run below which it is swept on one thread (scheduling would cost more).
const PARALLEL_COLUMNS: usize = 64;
/// Rows per task when the factor cache is recomputed.
const ROWS_PER_TASK: usize = 4096;
/// Entries of a column one task sums or updates; longer columns are shared by the pool's threads
/// (under miri, few: its small tests then reach the shared path too).
const ENTRIES_PER_TASK: usize = if cfg!(miri) { 64 } else { 2048 };
/// Columns swept on one thread between two checks for Ctrl-C.
const COLUMNS_PER_CHECK: usize = 256;

/// What each draw of a sweep is for: the stream of sweep `s` is `8 s + kind`.
#[derive(Clone, Copy)]
enum Kind {
    Alpha = 0,
    Bias = 1,
    LinearPrecision = 2,
    LinearMean = 3,
    Linear = 4,
    FactorPrecision = 5,
    FactorMean = 6,
    Factor = 7,
}

/// A normal prior `N(mean, 1/precision)`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Prior {
    pub(crate) mean: f64,
    pub(crate) precision: f64,
}

/// An `f64` shared between threads that never write the same one at the same time.
struct Cell(AtomicU64);

impl Cell {
    #[inline]
    fn get(&self) -> f64 {
        f64::from_bits(self.0.load(Ordering::Relaxed))
    }

    #[inline]
    fn set(&self, value: f64) {
        self.0.store(value.to_bits(), Ordering::Relaxed);
    }
}

impl Cell {
    fn new(value: f64) -> Self {
        Cell(AtomicU64::new(value.to_bits()))
    }
}

/// What a sweep reads and writes of one row, side by side: a coordinate's entries are rows in
/// no order that caches like, and one line then serves all three.
struct Row {
    /// `y − ŷ`.
    e: Cell,
    /// `Σᵢ v_if x_ri` for the factor being swept.
    q: Cell,
    /// The row's weight (1 when none were given), times its noise precision when the rows have
    /// their own (the sweep's `alpha` is then 1).
    r: f64,
}

/// MCMC's noise precisions per row: the product of one precision per factor, each the precision of
/// the row's level in that factor (e.g. the user of a rating and its movie: users differ in how
/// noisy their ratings are, movies in how predictable theirs are; Lakshminarayanan, Bouchard and
/// Archambeau 2011), and the rows' own weights.
pub(crate) struct RowNoise<'a> {
    weight: &'a [f64],
    factors: Vec<NoiseFactor<'a>>,
    /// Per row, the product of the precisions of the factors other than the one being drawn.
    others: Vec<f64>,
}

/// One factor of the rows' noise precisions: the level of each row, each level's current
/// precision and the sum of its rows' weights, and room for each level's squared errors.
struct NoiseFactor<'a> {
    of_row: &'a [u32],
    precisions: Vec<f64>,
    weights: Vec<f64>,
    sse: Vec<f64>,
}

impl<'a> RowNoise<'a> {
    /// The noise of rows of weights `weight` whose levels in each factor are `levels` (the level
    /// of each row, and the number of levels), every precision 1.
    pub(crate) fn new(weight: &'a [f64], levels: &'a [(Vec<u32>, usize)]) -> Result<Self> {
        let factors = levels
            .iter()
            .map(|(of_row, count)| {
                let mut weights = try_filled(*count, 1, 0.0, "the noise levels")?;
                for (&level, &r) in of_row.iter().zip(weight) {
                    weights[level as usize] += r;
                }
                Ok(NoiseFactor {
                    of_row,
                    precisions: try_filled(*count, 1, 1.0, "the noise levels")?,
                    weights,
                    sse: try_filled(*count, 1, 0.0, "the noise levels")?,
                })
            })
            .collect::<Result<_>>()?;
        Ok(RowNoise {
            weight,
            factors,
            others: try_filled(weight.len(), 1, 0.0, "the rows' noise precisions")?,
        })
    }

    /// Draws each factor's precisions in turn given the others', then sets each row's weight to
    /// its own times its precisions. The levels of a factor share a Gamma(NOISE_SHAPE, b) prior, b
    /// with a Gamma(1, 1) hyperprior, drawn first given the levels' precisions; then each level's
    /// precision given its rows' errors, each row's weighted by the other factors' precisions of
    /// that row. Factor `j` draws from the gamma slots after factor `j − 1`'s: its levels' slots
    /// `0..count`, then its rate's. Plain passes over the rows, one factor at a time.
    fn draw(&mut self, rows: &mut [Row], draws: &Draws, stream: u64) {
        let mut first = 0;
        for j in 0..self.factors.len() {
            self.others.fill(1.0);
            for other in self.factors.iter().enumerate().filter(|&(o, _)| o != j).map(|(_, f)| f) {
                for (product, &level) in self.others.iter_mut().zip(other.of_row) {
                    *product *= other.precisions[level as usize];
                }
            }
            let factor = &mut self.factors[j];
            let count = factor.precisions.len();
            let rate = draws.gamma(
                stream,
                first + count as u64,
                1.0 + NOISE_SHAPE * count as f64,
                1.0 + factor.precisions.iter().sum::<f64>(),
            );
            factor.sse.fill(0.0);
            for (((Row { e, .. }, &level), &r), &others) in
                rows.iter().zip(factor.of_row).zip(self.weight).zip(&self.others)
            {
                factor.sse[level as usize] += r * others * e.get() * e.get();
            }
            for (c, precision) in factor.precisions.iter_mut().enumerate() {
                let shape = NOISE_SHAPE + 0.5 * factor.weights[c];
                *precision = draws.gamma(stream, first + c as u64, shape, rate + 0.5 * factor.sse[c]);
            }
            first += count as u64 + 1;
        }
        for (row, &r) in rows.iter_mut().zip(self.weight) {
            row.r = r;
        }
        for factor in &self.factors {
            for (row, &level) in rows.iter_mut().zip(factor.of_row) {
                row.r *= factor.precisions[level as usize];
            }
        }
    }

    /// Each factor's current precisions.
    fn precisions(&self) -> impl Iterator<Item = &[f64]> + '_ {
        self.factors.iter().map(|factor| &factor.precisions[..])
    }
}

/// Shape of the Gamma prior the levels of a noise factor share: worth `2 × NOISE_SHAPE` rows at
/// the precision the levels have in common (its rate is drawn), so that a level of few rows is
/// pulled towards it rather than fitted to them.
const NOISE_SHAPE: f64 = 5.0;

/// Adaptive ALS's variances: of each linear weight, of each factor (`d × k`), and per row
/// `σ_r = Σᵢ x_ri² s_if` for the factor being swept. Written like the caches: one thread per
/// coordinate, one per row within a run.
struct Variances {
    linear: Vec<Cell>,
    factors: Vec<Cell>,
    rows: Vec<Cell>,
}

/// The state of a chain between coordinates: caches, hyperparameters and the draws.
pub(crate) struct Chain<'a> {
    design: &'a Design,
    /// Group of each feature, and the number of features in each group.
    groups: &'a [u32],
    group_sizes: Vec<usize>,
    method: Method,
    draws: Draws,
    rows: Vec<Row>,
    /// Adaptive ALS only.
    variances: Option<Variances>,
    /// MCMC with a noise precision per row.
    noise: Option<RowNoise<'a>>,
    /// Noise precision.
    pub(crate) alpha: f64,
    /// Per group: the prior of its linear weights; of its factors, `[group * k + f]`.
    pub(crate) linear_priors: Vec<Prior>,
    pub(crate) factor_priors: Vec<Prior>,
}

impl<'a> Chain<'a> {
    /// A chain whose rows have residuals `residuals` and weights `weight`; `groups` holds the
    /// group of each feature (the groups are `0..=max`); `noise`, the factors of the rows' noise
    /// precisions (MCMC), if not one for all.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        design: &'a Design,
        weight: &'a [f64],
        groups: &'a [u32],
        noise: Option<RowNoise<'a>>,
        k: usize,
        method: Method,
        seed: u64,
        residuals: &[f64],
    ) -> Result<Self> {
        let n_groups = groups.iter().map(|&g| g as usize + 1).max().unwrap_or(1);
        let mut group_sizes = try_filled(n_groups, 1, 0, "the feature groups")?;
        for &g in groups {
            group_sizes[g as usize] += 1;
        }
        let start = Prior {
            mean: 0.0,
            precision: 1.0,
        };
        let variances = match method {
            Method::AdaptiveAls => {
                // Start from points: the initial weights, no variance.
                let zeros = |len: usize| try_collect(len, (0..len).map(|_| Cell::new(0.0)), "the variances");
                Some(Variances {
                    linear: zeros(groups.len())?,
                    factors: zeros(groups.len().saturating_mul(k))?,
                    rows: zeros(residuals.len())?,
                })
            }
            _ => None,
        };
        let rows = residuals.iter().zip(weight).map(|(&e, &r)| Row {
            e: Cell::new(e),
            q: Cell::new(0.0),
            r,
        });
        Ok(Chain {
            design,
            variances,
            noise,
            groups,
            group_sizes,
            method,
            draws: Draws::new(seed),
            rows: try_collect(residuals.len(), rows, "the rows' caches")?,
            alpha: 1.0,
            linear_priors: try_filled(n_groups, 1, start, "the feature groups' priors")?,
            factor_priors: try_filled(n_groups, k, start, "the feature groups' priors")?,
        })
    }

    /// The current precisions of each factor of the rows' noise (none with one for every row).
    pub(crate) fn noise_precisions(&self) -> impl Iterator<Item = &[f64]> + '_ {
        self.noise.iter().flat_map(RowNoise::precisions)
    }

    /// The current residuals `y − ŷ`.
    pub(crate) fn residuals(&self) -> impl Iterator<Item = f64> + '_ {
        self.rows.iter().map(|row| row.e.get())
    }

    /// One sweep (number `sweep` of the fit) over every parameter of `w`.
    pub(crate) fn sweep<M: Monitor + ?Sized>(&mut self, sweep: u64, w: &mut WeightsMut<'_>, monitor: &M) -> Result<()> {
        let stream = |kind: Kind| 8 * sweep + kind as u64;
        let mcmc = matches!(self.method, Method::Mcmc);
        let adaptive = self.variances.is_some();
        if let Some(noise) = &mut self.noise {
            noise.draw(&mut self.rows, &self.draws, stream(Kind::Alpha));
            self.alpha = 1.0;
        } else if mcmc || adaptive {
            let (mut n, mut sse) = (0.0, 0.0);
            for Row { e, r, .. } in &self.rows {
                n += r;
                sse += r * e.get() * e.get();
            }
            let shape = 1.0 + 0.5 * n;
            self.alpha = match &self.variances {
                None => self.draws.gamma(stream(Kind::Alpha), 0, shape, 1.0 + 0.5 * sse),
                Some(variances) => shape / (1.0 + 0.5 * (sse + self.prediction_variance(variances, w.factors, w.k))),
            };
        }
        // Bias: h = 1 on every row.
        let (mut ae, mut b) = (0.0, 0.0);
        for Row { e, r, .. } in &self.rows {
            ae += r * e.get();
            b += r;
        }
        let prior = match self.method {
            Method::Als { bias, .. } => Prior {
                mean: 0.0,
                precision: bias,
            },
            Method::AdaptiveAls | Method::Mcmc => Prior {
                mean: 0.0,
                precision: 0.0,
            },
        };
        let old = f64::from(*w.bias);
        let (new, _) = self.conditional(old, ae, b, 0.0, prior, stream(Kind::Bias), 0);
        *w.bias = new as f32;
        let delta = f64::from(*w.bias) - old;
        for Row { e, .. } in &self.rows {
            e.set(e.get() - delta);
        }
        // Linear weights.
        if mcmc {
            self.linear_priors = self.draw_priors(
                w.linear,
                1,
                0,
                stream(Kind::LinearPrecision),
                stream(Kind::LinearMean),
                &self.linear_priors,
            );
        } else if let Some(variances) = &self.variances {
            self.linear_priors = self.expected_priors(w.linear, &variances.linear, 1, 0);
        }
        let mut scratch = Vec::new();
        let linear = stream(Kind::Linear);
        self.sweep_runs(w.linear, 1, 0, &mut scratch, monitor, |chain, i, old| {
            chain.update_linear(i, old, linear)
        })?;
        // Factors, one f at a time.
        let k = w.k;
        for f in 0..k {
            self.fill_factor_cache(w.factors, k, f);
            if mcmc {
                let priors: Vec<Prior> = (0..self.group_sizes.len())
                    .map(|g| self.factor_priors[g * k + f])
                    .collect();
                let drawn = self.draw_priors(
                    w.factors,
                    k,
                    f,
                    stream(Kind::FactorPrecision),
                    stream(Kind::FactorMean),
                    &priors,
                );
                for (g, prior) in drawn.into_iter().enumerate() {
                    self.factor_priors[g * k + f] = prior;
                }
            } else if let Some(variances) = &self.variances {
                for (g, prior) in self
                    .expected_priors(w.factors, &variances.factors, k, f)
                    .into_iter()
                    .enumerate()
                {
                    self.factor_priors[g * k + f] = prior;
                }
            }
            let factor = stream(Kind::Factor);
            self.sweep_runs(w.factors, k, f, &mut scratch, monitor, |chain, i, old| {
                chain.update_factor(i, k, f, old, factor)
            })?;
        }
        Ok(())
    }

    /// θ's new value and precision from `ae = Σ r h e`, `b = Σ r h²`, `spread = Σ r Var h`
    /// (adaptive ALS; 0 otherwise) and its prior: the conditional mode (ALS) or a draw (MCMC,
    /// the normal at `(stream, index)`).
    #[inline]
    #[allow(clippy::too_many_arguments)]
    fn conditional(
        &self,
        theta: f64,
        ae: f64,
        b: f64,
        spread: f64,
        prior: Prior,
        stream: u64,
        index: u64,
    ) -> (f64, f64) {
        let (alpha, noise) = match self.method {
            Method::Als { .. } => (1.0, None),
            Method::AdaptiveAls => (self.alpha, None),
            Method::Mcmc => (self.alpha, Some((stream, index))),
        };
        let precision = alpha * (b + spread) + prior.precision;
        if precision <= 0.0 {
            // ALS without regularisation on a column without entries: nothing to fit.
            return (theta, precision);
        }
        let mean = (alpha * (ae + theta * b) + prior.precision * prior.mean) / precision;
        let new = match noise {
            Some((stream, index)) => mean + self.draws.normal(stream, index) / precision.sqrt(),
            None => mean,
        };
        (new, precision)
    }

    /// Adaptive ALS: `Σ r Var ŷ` under the mean-field posterior (independent coordinates, means
    /// `m`, variances `s`). With `aᵢ = v_if xᵢ` (mean `μᵢ`, variance `τᵢ`) and `cᵢ = μᵢ² + τᵢ`, the
    /// pairwise term `Σ_{i<j} aᵢ aⱼ` of factor f has variance
    /// `½((Σ c)² − Σ c²) − ½((Σ μ²)² − Σ μ⁴) + Σᵢ τᵢ ((Σ μ − μᵢ)² − (Σ μ² − μᵢ²))`;
    /// the linear term adds `Σ xᵢ² s_wᵢ`. O(k · nnz), rows in parallel, summed in a fixed order.
    fn prediction_variance(&self, variances: &Variances, factors: &[f32], k: usize) -> f64 {
        let chunks: Vec<f64> = self
            .rows
            .par_chunks(ROWS_PER_TASK)
            .enumerate()
            .map(|(task, chunk)| {
                let mut total = 0.0;
                for (offset, row) in chunk.iter().enumerate() {
                    let (columns, xs) = self.design.row(task * ROWS_PER_TASK + offset);
                    let mut variance: f64 = columns
                        .iter()
                        .zip(xs)
                        .map(|(&i, &x)| x * x * variances.linear[i as usize].get())
                        .sum();
                    for f in 0..k {
                        let moments = |i: u32, x: f64| {
                            let slot = i as usize * k + f;
                            (f64::from(factors[slot]) * x, variances.factors[slot].get() * x * x)
                        };
                        let (mut s1, mut s2, mut s4, mut c1, mut c2) = (0.0, 0.0, 0.0, 0.0, 0.0);
                        for (&i, &x) in columns.iter().zip(xs) {
                            let (mu, tau) = moments(i, x);
                            let (mu2, c) = (mu * mu, mu * mu + tau);
                            (s1, s2, s4, c1, c2) = (s1 + mu, s2 + mu2, s4 + mu2 * mu2, c1 + c, c2 + c * c);
                        }
                        variance += 0.5 * (c1 * c1 - c2) - 0.5 * (s2 * s2 - s4);
                        for (&i, &x) in columns.iter().zip(xs) {
                            let (mu, tau) = moments(i, x);
                            variance += tau * ((s1 - mu) * (s1 - mu) - (s2 - mu * mu));
                        }
                    }
                    total += row.r * variance;
                }
                total
            })
            .collect();
        chunks.iter().sum()
    }

    /// Adaptive ALS: each group's prior for column `f` of `values` (`d × stride`, variances
    /// alike): the means of what MCMC draws (see [`Chain::draw_priors`]) with `θ² + s` for `θ²`:
    /// `μ = Σ θ / (n + γ₀)`, then `λ = (n + 2) / (1 + μ² + Σ ((θ − μ)² + s))`.
    fn expected_priors(&self, values: &[f32], variances: &[Cell], stride: usize, f: usize) -> Vec<Prior> {
        let n_groups = self.group_sizes.len();
        let mut sum = vec![0.0; n_groups];
        for (i, &g) in self.groups.iter().enumerate() {
            sum[g as usize] += f64::from(values[i * stride + f]);
        }
        let means: Vec<f64> = (0..n_groups)
            .map(|g| sum[g] / (self.group_sizes[g] as f64 + 1.0))
            .collect();
        let mut squares = vec![0.0; n_groups];
        for (i, &g) in self.groups.iter().enumerate() {
            let deviation = f64::from(values[i * stride + f]) - means[g as usize];
            squares[g as usize] += deviation * deviation + variances[i * stride + f].get();
        }
        (0..n_groups)
            .map(|g| Prior {
                mean: means[g],
                precision: (self.group_sizes[g] as f64 + 2.0) / (1.0 + means[g] * means[g] + squares[g]),
            })
            .collect()
    }

    /// The prior of each group for column `f` of `values` (`d × stride`), drawn from its
    /// Normal-Gamma hyperprior (`μ₀ = 0`, `γ₀ = 1`, `α_λ = β_λ = 1`, libFM's) given the current
    /// values: λ ~ Gamma((n + 2) / 2, (1 + γ₀ μ² + Σ (θ − μ)²) / 2) with the previous μ, then
    /// μ ~ N(Σ θ / (n + γ₀), 1 / ((n + γ₀) λ)). Group `g`'s slot is `g · stride + f`.
    fn draw_priors(
        &self,
        values: &[f32],
        stride: usize,
        f: usize,
        precision_stream: u64,
        mean_stream: u64,
        previous: &[Prior],
    ) -> Vec<Prior> {
        let n_groups = self.group_sizes.len();
        let mut sum = vec![0.0; n_groups];
        let mut squares = vec![0.0; n_groups];
        for (i, &g) in self.groups.iter().enumerate() {
            let theta = f64::from(values[i * stride + f]);
            let g = g as usize;
            sum[g] += theta;
            let deviation = theta - previous[g].mean;
            squares[g] += deviation * deviation;
        }
        (0..n_groups)
            .map(|g| {
                let n = self.group_sizes[g] as f64;
                let mu = previous[g].mean;
                let slot = (g * stride + f) as u64;
                let precision = self.draws.gamma(
                    precision_stream,
                    slot,
                    0.5 * (n + 2.0),
                    0.5 * (1.0 + mu * mu + squares[g]),
                );
                let mean = sum[g] / (n + 1.0) + self.draws.normal(mean_stream, slot) / ((n + 1.0) * precision).sqrt();
                Prior { mean, precision }
            })
            .collect()
    }

    /// Updates column `f` of `values` (`d × stride`, feature-major) run by run; `update(chain, i,
    /// old)` returns feature `i`'s new value, moving the caches. The columns of a long run go to
    /// the pool's threads; their new values are stored once the run is done.
    fn sweep_runs<M: Monitor + ?Sized>(
        &self,
        values: &mut [f32],
        stride: usize,
        f: usize,
        scratch: &mut Vec<f32>,
        monitor: &M,
        update: impl Fn(&Self, usize, f64) -> f32 + Sync,
    ) -> Result<()> {
        let mut since_check = 0;
        for run in &self.design.runs {
            if run.len() >= PARALLEL_COLUMNS {
                scratch.clear();
                scratch.extend(run.clone().map(|i| values[i * stride + f]));
                scratch
                    .par_iter_mut()
                    .with_min_len(PARALLEL_COLUMNS / 2)
                    .enumerate()
                    .for_each(|(offset, value)| *value = update(self, run.start + offset, f64::from(*value)));
                for (i, &value) in run.clone().zip(scratch.iter()) {
                    values[i * stride + f] = value;
                }
                since_check = COLUMNS_PER_CHECK;
            } else {
                for i in run.clone() {
                    values[i * stride + f] = update(self, i, f64::from(values[i * stride + f]));
                }
                since_check += run.len();
            }
            if since_check >= COLUMNS_PER_CHECK {
                since_check = 0;
                if monitor.stop_requested() {
                    return Err(Error::Interrupted);
                }
            }
        }
        Ok(())
    }

    /// `wᵢ`'s new value (h = xᵢ; its draw is the normal `(stream, i)`); moves `e` by what is
    /// stored.
    #[inline]
    fn update_linear(&self, i: usize, old: f64, stream: u64) -> f32 {
        let column = self.design.column(i);
        let (ae, b) = self.column_sums(column, |row, x| {
            let rx = row.r * x;
            (rx * row.e.get(), rx * x)
        });
        let prior = match self.method {
            Method::Als { linear, .. } => Prior {
                mean: 0.0,
                precision: linear,
            },
            Method::AdaptiveAls | Method::Mcmc => self.linear_priors[self.groups[i] as usize],
        };
        let (new, precision) = self.conditional(old, ae, b, 0.0, prior, stream, i as u64);
        if let Some(variances) = &self.variances {
            variances.linear[i].set(1.0 / precision);
        }
        let new = new as f32;
        let delta = f64::from(new) - old;
        self.update_entries(column, |row, x| row.e.set(row.e.get() - delta * x));
        new
    }

    /// `v_if`'s new value (h = xᵢ (q − v_if xᵢ); its draw is the normal `(stream, i · k + f)`);
    /// moves `e` and `q` by what is stored.
    #[inline]
    fn update_factor(&self, i: usize, k: usize, f: usize, old: f64, stream: u64) -> f32 {
        let column = self.design.column(i);
        let (ae, b) = self.column_sums(column, |row, x| {
            let h = x * (row.q.get() - old * x);
            let rh = row.r * h;
            (rh * row.e.get(), rh * h)
        });
        let prior = match self.method {
            Method::Als { factors, .. } => Prior {
                mean: 0.0,
                precision: factors,
            },
            Method::AdaptiveAls | Method::Mcmc => self.factor_priors[self.groups[i] as usize * k + f],
        };
        let slot = i * k + f;
        // Adaptive ALS's variance terms index `variances.rows` by row, so they run over the column
        // in one pass, in order (deterministic; the implicit block's parallel chunks are MCMC's).
        let (rows, xs) = column;
        let spread = self.variances.as_ref().map_or(0.0, |variances| {
            // Σ r Var h over the column, then σ_r moves to the new variance.
            let own = variances.factors[slot].get();
            rows.iter()
                .zip(xs)
                .map(|(&row, &x)| {
                    let x2 = x * x;
                    self.rows[row as usize].r * x2 * (variances.rows[row as usize].get() - x2 * own)
                })
                .sum()
        });
        let (new, precision) = self.conditional(old, ae, b, spread, prior, stream, slot as u64);
        if let Some(variances) = &self.variances {
            let change = 1.0 / precision - variances.factors[slot].get();
            variances.factors[slot].set(1.0 / precision);
            for (&row, &x) in rows.iter().zip(xs) {
                let sigma = &variances.rows[row as usize];
                sigma.set(sigma.get() + change * x * x);
            }
        }
        let new = new as f32;
        let delta = f64::from(new) - old;
        if delta != 0.0 {
            self.update_entries(column, |Row { e, q, .. }, x| {
                let h = x * (q.get() - old * x);
                e.set(e.get() - delta * h);
                q.set(q.get() + delta * x);
            });
        }
        new
    }

    /// `Σ term(row, x)` (two sums at once) over a column's entries. A column longer than
    /// [`ENTRIES_PER_TASK`] is cut into chunks of that many, summed by the pool's threads and
    /// added in order: the same sums for every thread count (the implicit-feedback block's
    /// columns share rows, so they are swept one at a time, each by every thread).
    #[inline]
    fn column_sums(&self, (rows, xs): (&[u32], &[f64]), term: impl Fn(&Row, f64) -> (f64, f64) + Sync) -> (f64, f64) {
        let sums = |(rows, xs): (&[u32], &[f64])| {
            rows.iter().zip(xs).fold((0.0, 0.0), |(a, b), (&row, &x)| {
                let (ta, tb) = term(&self.rows[row as usize], x);
                (a + ta, b + tb)
            })
        };
        if rows.len() <= ENTRIES_PER_TASK {
            return sums((rows, xs));
        }
        let chunks: Vec<(f64, f64)> = rows
            .par_chunks(ENTRIES_PER_TASK)
            .zip(xs.par_chunks(ENTRIES_PER_TASK))
            .map(sums)
            .collect();
        chunks.iter().fold((0.0, 0.0), |(a, b), (ta, tb)| (a + ta, b + tb))
    }

    /// Runs `update(row, x)` on each entry of a column, in chunks of [`ENTRIES_PER_TASK`] on the
    /// pool's threads when it is longer. A column holds each row at most once ([`Design`] checks),
    /// so each row is written by one thread and the result does not depend on the order.
    #[inline]
    fn update_entries(&self, (rows, xs): (&[u32], &[f64]), update: impl Fn(&Row, f64) + Sync) {
        let run = |(rows, xs): (&[u32], &[f64])| {
            for (&row, &x) in rows.iter().zip(xs) {
                update(&self.rows[row as usize], x);
            }
        };
        if rows.len() <= ENTRIES_PER_TASK {
            run((rows, xs));
        } else {
            rows.par_chunks(ENTRIES_PER_TASK)
                .zip(xs.par_chunks(ENTRIES_PER_TASK))
                .for_each(run);
        }
    }

    /// `q_r = Σᵢ v_if x_ri` of every row (and adaptive ALS's `σ_r`), in parallel over rows.
    fn fill_factor_cache(&self, factors: &[f32], k: usize, f: usize) {
        if let Some(variances) = &self.variances {
            variances
                .rows
                .par_chunks(ROWS_PER_TASK)
                .enumerate()
                .for_each(|(task, chunk)| {
                    for (offset, sigma) in chunk.iter().enumerate() {
                        let (columns, xs) = self.design.row(task * ROWS_PER_TASK + offset);
                        let sum = columns
                            .iter()
                            .zip(xs)
                            .map(|(&i, &x)| variances.factors[i as usize * k + f].get() * x * x)
                            .sum();
                        sigma.set(sum);
                    }
                });
        }
        self.rows
            .par_chunks(ROWS_PER_TASK)
            .enumerate()
            .for_each(|(task, chunk)| {
                let first = task * ROWS_PER_TASK;
                for (offset, Row { q, .. }) in chunk.iter().enumerate() {
                    let (columns, xs) = self.design.row(first + offset);
                    let sum = columns
                        .iter()
                        .zip(xs)
                        .map(|(&i, &x)| f64::from(factors[i as usize * k + f]) * x)
                        .sum();
                    q.set(sum);
                }
            });
    }
}
