//! Bayesian Factorization Machines by Gibbs sampling (MCMC) and their alternating least squares
//! (ALS), one sweep structure for both (Rendle 2012, libFM's `-method mcmc` and `-method als`),
//! and adaptive ALS: ALS whose L2 strengths are re-estimated every sweep (mean-field variational
//! Bayes with MCMC's priors).
//!
//! * `design`: `X` by rows and by columns, and its runs of columns that share no row.
//! * [`draws`]: the random numbers, a pure function of what they are drawn for.
//! * `sweep`: one sweep over every parameter (the caches, the conditionals, the priors).
//!
//! [`fit_bayes`] runs the sweeps of a fit: it keeps every `thin`-th sample after the burn-in (the
//! last sweep's always) in caller-owned arrays, so that predictions on new data average the
//! kept samples' predictions, and reports the error of the running posterior mean of the
//! predictions after every sweep. MCMC may run several independent chains side by side (one sweep
//! of each in parallel, then the next): their kept samples together are the posterior. Everything
//! is exact for every thread count: a fit gives the same numbers on one thread as on many.

mod design;
pub mod draws;
mod sweep;

use rayon::prelude::*;

use super::model::{check_values, predict, Weights, WeightsMut};
use crate::csr::{CsrIndex, CsrView, Values};
use crate::error::{Error, Result};
use crate::memory::{try_collect, try_filled};
use crate::parallel::{Monitor, Unmonitored};
use design::Design;
use draws::chain_seed;
use sweep::{Chain, RowNoise};

/// How each coordinate is set.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Method {
    /// The conditional mode: coordinate descent on the objective of SageMaker's weight decays
    /// (`*_wd`), `mean(r · (y − ŷ)²) + Σ wd θ²` over the rows' weights `r`, the mean loss SGD
    /// and Adam minimise: each coordinate's L2 strength on the summed loss is `λ = wd · Σ r`.
    Als { bias: f64, linear: f64, factors: f64 },
    /// ALS whose L2 strengths tune themselves: mean-field variational Bayes with MCMC's priors.
    /// Each coordinate is set to the mean of its approximate posterior, whose precision also
    /// counts the variances of the factors it multiplies; every sweep re-estimates the noise
    /// precision and each group's priors (per factor) as the means of the distributions MCMC
    /// draws them from, the variances added to the squares. Nothing is chosen by hand.
    AdaptiveAls,
    /// A draw from the conditional posterior; priors and noise precision are sampled too.
    Mcmc,
}

/// MCMC's model of the noise (without [`BayesData::noise_groups`], which replaces it).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Noise {
    /// One noise precision for every row (libFM's).
    Shared,
    /// A row's noise precision is the product of one precision per one-hot group of features (every
    /// row has exactly one nonzero value among the group's columns: the user of a rating, its
    /// movie), the precision of the row's level in that group; the levels of a group share a Gamma
    /// prior whose rate is drawn. Without one-hot groups (one group for every feature, or none
    /// one-hot), one precision for every row, as [`Noise::Shared`].
    PerLevel,
}

/// What one call to [`fit_bayes`] does.
#[derive(Clone, Debug, PartialEq)]
pub struct BayesConfig {
    /// ALS or MCMC.
    pub method: Method,
    /// Sweeps over every parameter (`epochs`).
    pub sweeps: usize,
    /// MCMC: first sweeps whose samples are not kept.
    pub burn_in: usize,
    /// MCMC: most samples kept, evenly spaced among the sweeps after the burn-in.
    pub posterior_samples: usize,
    /// Seed of the draws (of the first chain; the others' are derived from it).
    pub seed: u64,
    /// MCMC: independent chains, all from the caller's start, each with its own draws; each keeps
    /// its samples as one chain would. ALS (deterministic): 1.
    pub chains: usize,
    /// MCMC's noise model; ALS: [`Noise::Shared`].
    pub noise: Noise,
}

impl BayesConfig {
    /// Checks the counts: at least one sweep and one chain (one for ALS); MCMC keeps at least one
    /// sample after its burn-in.
    pub fn validate(&self) -> Result<()> {
        if self.sweeps == 0 {
            return Err(Error::invalid("epochs (the number of sweeps) must be at least 1"));
        }
        if self.chains == 0 || (self.chains > 1 && !matches!(self.method, Method::Mcmc)) {
            return Err(Error::invalid(format!(
                "num_chains must be at least 1, and 1 for optimizer 'als' (its sweeps draw nothing: \
                 every chain would be the same), got {}",
                self.chains
            )));
        }
        if self.noise != Noise::Shared && !matches!(self.method, Method::Mcmc) {
            return Err(Error::invalid("noise 'per-level' applies to optimizer 'mcmc' only"));
        }
        if let Method::Als { bias, linear, factors } = self.method {
            for (name, value) in [("bias_wd", bias), ("linear_wd", linear), ("factors_wd", factors)] {
                if !(value.is_finite() && value >= 0.0) {
                    return Err(Error::invalid(format!(
                        "{name} must be a finite number >= 0, got {value}"
                    )));
                }
            }
        } else if matches!(self.method, Method::Mcmc) && (self.burn_in >= self.sweeps || self.posterior_samples == 0) {
            return Err(Error::invalid(format!(
                "optimizer 'mcmc' needs burn_in ({}) below epochs ({}) and posterior_samples ({}) of at least 1",
                self.burn_in, self.sweeps, self.posterior_samples
            )));
        }
        Ok(())
    }

    /// Sweeps between two kept samples.
    fn thin(&self) -> usize {
        (self.sweeps - self.burn_in).div_ceil(self.posterior_samples)
    }

    /// Number of samples a complete fit keeps, over all its chains: 0 for ALS (`usize::MAX` when
    /// it does not fit in a `usize`: no memory holds them).
    pub fn kept(&self) -> usize {
        match self.method {
            Method::Als { .. } | Method::AdaptiveAls => 0,
            Method::Mcmc => (self.sweeps - self.burn_in)
                .div_ceil(self.thin())
                .saturating_mul(self.chains),
        }
    }

    /// Whether the sample of sweep `s` (from 0) is kept: every `thin`-th after the burn-in,
    /// counted back from the last.
    fn keeps(&self, s: usize) -> bool {
        matches!(self.method, Method::Mcmc) && s >= self.burn_in && (self.sweeps - 1 - s) % self.thin() == 0
    }
}

/// Caller-owned arrays of the kept samples: `kept` biases, `kept × d` linear weights and
/// `kept × d × k` factors. Sample `j · chains + c` is chain `c`'s `j`-th: the samples of the
/// first sweeps kept come first, whichever chain drew them. And the mean over the kept samples of
/// each level's noise precision, one vector per factor of the rows' noise precisions (the one-hot
/// groups in order, or the `noise_groups`; none with one precision for every row): the factors'
/// scales are determined only in their product, a row's precision.
pub struct Samples<'a> {
    pub bias: &'a mut [f32],
    pub linear: &'a mut [f32],
    pub factors: &'a mut [f32],
    pub noise_precisions: Vec<Vec<f64>>,
}

/// The error of a sweep: `Σ (y − ŷ)²` over the training rows and, when an evaluation set was
/// given, over its rows, ŷ the running mean of the kept samples' predictions, of every chain
/// (the mean of the chains' sweep before the first sample is kept, and always for ALS); and
/// whether its samples were kept.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct SweepStats {
    pub train_sse: f64,
    pub eval_sse: Option<f64>,
    pub kept: bool,
}

/// An evaluation set: its labels and a function that scores its rows with given weights.
pub struct EvalSet<'a> {
    pub labels: &'a [f64],
    pub score: &'a (dyn Fn(&Weights<'_>) -> Result<Vec<f64>> + Sync),
}

/// The data of a fit: CSR rows, their labels, optional row weights, the group of each feature
/// (`groups[i] < n_groups`; its priors are shared within a group), and the range each sweep's
/// predictions are clipped to before they are averaged and scored (libFM clips every sample's
/// predictions to the training labels' range; `None`: not clipped).
pub struct BayesData<'a, I> {
    pub x: CsrView<'a, I>,
    pub values: Values<'a>,
    pub labels: &'a [f64],
    pub sample_weight: Option<&'a [f64]>,
    pub groups: &'a [u32],
    pub clip: Option<(f64, f64)>,
    /// MCMC: the group of each row (`< n_rows`) whose rows share a noise precision (e.g. the user
    /// of each rating: users differ in how noisy their ratings are); the groups' precisions share
    /// a Gamma prior whose rate is sampled too. It replaces the config's [`Noise`]. `None`: the
    /// config's.
    pub noise_groups: Option<&'a [u32]>,
}

/// Runs `config.sweeps` sweeps from the weights `w` (left at the last sweep's), filling `samples`
/// with the kept ones and pushing each sweep's statistics to `stats`. Stopped by `monitor`
/// (Ctrl-C), it returns [`Error::Interrupted`] with the complete sweeps' statistics and samples in
/// place, and `w` part-way through a sweep.
pub fn fit_bayes<I: CsrIndex, M: Monitor + ?Sized>(
    data: &BayesData<'_, I>,
    w: &mut WeightsMut<'_>,
    samples: &mut Samples<'_>,
    eval: Option<&EvalSet<'_>>,
    config: &BayesConfig,
    monitor: &M,
    stats: &mut Vec<SweepStats>,
) -> Result<()> {
    config.validate()?;
    let (n, d, k) = (data.x.n_rows(), w.linear.len(), w.k);
    w.view().check_columns(data.x.n_cols())?;
    check_values(&data.x, data.values.len())?;
    if data.labels.len() != n || data.sample_weight.is_some_and(|r| r.len() != n) || data.groups.len() != d {
        return Err(Error::invalid(format!(
            "{n} rows and {d} features need as many labels, row weights and feature groups"
        )));
    }
    // The groups' priors are held per group: codes beyond the features would size them.
    if let Some(&g) = data.groups.iter().find(|&&g| g as usize >= d) {
        return Err(Error::invalid(format!(
            "feature groups must be numbered below the number of features ({d}), got {g}"
        )));
    }
    if let Some(codes) = data.noise_groups {
        if !matches!(config.method, Method::Mcmc) {
            return Err(Error::invalid("noise_groups apply to optimizer 'mcmc' only"));
        }
        let max = codes.iter().max().map_or(0, |&g| g as usize);
        if codes.len() != n || max >= n {
            return Err(Error::invalid(format!(
                "noise_groups must hold one group a row ({n}), each below the number of rows, got {} \
                 codes, the largest {max}",
                codes.len()
            )));
        }
    }
    let kept = config.kept();
    if samples.bias.len() != kept || samples.linear.len() != kept * d || samples.factors.len() != kept * d * k {
        return Err(Error::invalid(format!("the sample arrays must hold {kept} samples")));
    }
    let ones;
    let weight = match data.sample_weight {
        Some(r) => r,
        None => {
            ones = try_filled(n, 1, 1.0, "the row weights")?;
            &ones
        }
    };
    let design = with_values!(data.values, v => Design::new(&data.x, v))?;
    // The levels of each factor of the rows' noise precisions, and how many each has.
    let noise_levels: Vec<(Vec<u32>, usize)> = match (data.noise_groups, config.noise) {
        (Some(codes), _) => vec![(
            try_collect(codes.len(), codes.iter().copied(), "the noise groups")?,
            codes.iter().max().map_or(0, |&g| g as usize + 1),
        )],
        (None, Noise::PerLevel) => design.one_hot_levels(data.groups)?,
        (None, Noise::Shared) => Vec::new(),
    };
    let fitted = predict(&data.x, data.values, &w.view(), &Unmonitored)?;
    let residuals = try_collect(n, data.labels.iter().zip(&fitted).map(|(y, p)| y - p), "the residuals")?;
    let method = match config.method {
        Method::Als { bias, linear, factors } => {
            let total: f64 = weight.iter().sum();
            Method::Als {
                bias: bias * total,
                linear: linear * total,
                factors: factors * total,
            }
        }
        other => other,
    };
    let (low, high) = data.clip.unwrap_or((f64::NEG_INFINITY, f64::INFINITY));
    if low.is_nan() || high.is_nan() || low > high {
        return Err(Error::invalid(format!("the clipping range [{low}, {high}] is empty")));
    }
    let clip = |p: f64| p.clamp(low, high);
    let chains = config.chains;
    // Chain 0 sweeps the caller's weights; the others sweep copies of the same start.
    let mut copies: Vec<(f32, Vec<f32>, Vec<f32>)> = (1..chains)
        .map(|_| {
            let linear = try_collect(d, w.linear.iter().copied(), "a chain's weights")?;
            Ok((
                *w.bias,
                linear,
                try_collect(d * k, w.factors.iter().copied(), "a chain's weights")?,
            ))
        })
        .collect::<Result<_>>()?;
    let mut weights: Vec<WeightsMut<'_>> = std::iter::once(WeightsMut {
        bias: &mut *w.bias,
        linear: &mut *w.linear,
        factors: &mut *w.factors,
        k,
    })
    .chain(copies.iter_mut().map(|(bias, linear, factors)| WeightsMut {
        bias,
        linear,
        factors,
        k,
    }))
    .collect();
    let mut states: Vec<Chain<'_>> = (0..chains)
        .map(|c| {
            let noise = if noise_levels.is_empty() {
                None
            } else {
                Some(RowNoise::new(weight, &noise_levels)?)
            };
            Chain::new(
                &design,
                weight,
                data.groups,
                noise,
                k,
                method,
                chain_seed(config.seed, c as u64),
                &residuals,
            )
        })
        .collect::<Result<_>>()?;
    let mut train = PooledMean::new(n, chains)?;
    let mut evaluated = eval.map(|set| PooledMean::new(set.labels.len(), chains)).transpose()?;
    let mut kept_sweeps = 0;
    let mut noise_sums: Vec<Vec<f64>> = noise_levels
        .iter()
        .map(|&(_, count)| try_filled(count, 1, 0.0, "the noise levels"))
        .collect::<Result<_>>()?;
    for s in 0..config.sweeps {
        // The chains do not depend on each other: each sweeps on the pool's threads at once.
        states
            .par_iter_mut()
            .zip(weights.par_iter_mut())
            .try_for_each(|(chain, w)| chain.sweep(s as u64, w, monitor))?;
        let keep = config.keeps(s);
        // The sweep's predictions count only when they are kept or while none is.
        if keep || kept_sweeps == 0 {
            train.start();
            for chain in &states {
                train.add(data.labels.iter().zip(chain.residuals()).map(|(y, e)| clip(y - e)));
            }
        }
        let train_sse = train.sse(data.labels, keep, kept_sweeps);
        if !train_sse.is_finite() {
            return Err(Error::invalid(format!(
                "sweep {s}: the training error is not finite (check X and y for extreme values)"
            )));
        }
        let eval_sse = match (eval, evaluated.as_mut()) {
            (Some(set), Some(mean)) => {
                if keep || kept_sweeps == 0 {
                    mean.start();
                    for w in &weights {
                        mean.add((set.score)(&w.view())?.into_iter().map(clip));
                    }
                }
                Some(mean.sse(set.labels, keep, kept_sweeps))
            }
            _ => None,
        };
        if keep {
            for (c, w) in weights.iter().enumerate() {
                let j = kept_sweeps * chains + c;
                samples.bias[j] = *w.bias;
                samples.linear[j * d..(j + 1) * d].copy_from_slice(w.linear);
                samples.factors[j * d * k..(j + 1) * d * k].copy_from_slice(w.factors);
            }
            kept_sweeps += 1;
            for chain in &states {
                for (sums, precisions) in noise_sums.iter_mut().zip(chain.noise_precisions()) {
                    sums.iter_mut().zip(precisions).for_each(|(sum, p)| *sum += p);
                }
            }
            let count = (kept_sweeps * chains) as f64;
            samples.noise_precisions = noise_sums
                .iter()
                .map(|sums| sums.iter().map(|sum| sum / count).collect())
                .collect();
        }
        stats.push(SweepStats {
            train_sse,
            eval_sse,
            kept: keep,
        });
        monitor.progress(((s + 1) * n) as u64)?;
    }
    Ok(())
}

/// The running mean of the kept samples' clipped predictions on some rows, pooled over the chains.
struct PooledMean {
    /// Sum over the kept samples.
    sum: Vec<f64>,
    /// Sum over the chains of the last sweep's.
    sweep: Vec<f64>,
    chains: usize,
}

impl PooledMean {
    fn new(rows: usize, chains: usize) -> Result<Self> {
        Ok(PooledMean {
            sum: try_filled(rows, 1, 0.0, "the running mean of the predictions")?,
            sweep: try_filled(rows, 1, 0.0, "the running mean of the predictions")?,
            chains,
        })
    }

    /// Starts the sums of a sweep.
    fn start(&mut self) {
        self.sweep.fill(0.0);
    }

    /// Adds one chain's predictions to the sweep's.
    fn add(&mut self, predictions: impl Iterator<Item = f64>) {
        for (sum, p) in self.sweep.iter_mut().zip(predictions) {
            *sum += p;
        }
    }

    /// `Σ (y − ŷ)²` of the running mean after a sweep (which is kept or not; `kept_before` sweeps
    /// were), or of the mean of the sweep's chains while none is kept.
    fn sse(&mut self, labels: &[f64], keep: bool, kept_before: usize) -> f64 {
        if keep {
            for (sum, p) in self.sum.iter_mut().zip(&self.sweep) {
                *sum += p;
            }
        }
        let kept = kept_before + usize::from(keep);
        let (sums, count) = if kept > 0 {
            (&self.sum, kept * self.chains)
        } else {
            (&self.sweep, self.chains)
        };
        let count = count as f64;
        labels
            .iter()
            .zip(sums)
            .map(|(y, s)| {
                let error = y - s / count;
                error * error
            })
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parallel::with_threads;

    /// One-hot user + item rows (300 users, 200 items: runs long enough for the pool) and ratings.
    fn ratings(n: usize) -> (Vec<i64>, Vec<i64>, Vec<f32>, Vec<f64>) {
        let mut state = 12345u64;
        let mut next = |m: u64| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 33) % m
        };
        let mut indices = Vec::new();
        let mut labels = Vec::new();
        for _ in 0..n {
            let (u, i) = (next(300), next(200));
            indices.extend([u as i64, 300 + i as i64]);
            labels.push(1.0 + ((u * 7 + i * 3) % 5) as f64);
        }
        let indptr = (0..=n as i64).map(|r| 2 * r).collect();
        (indptr, indices, vec![1.0; 2 * n], labels)
    }

    /// The rows of [`ratings`] with two more columns in every row (an implicit-feedback block's
    /// columns share rows like these): columns longer than one task's entries.
    fn with_dense_columns(
        (indptr, indices, values, labels): (Vec<i64>, Vec<i64>, Vec<f32>, Vec<f64>),
    ) -> (Vec<i64>, Vec<i64>, Vec<f32>, Vec<f64>) {
        let (mut new_indices, mut new_values) = (Vec::new(), Vec::new());
        for r in 0..labels.len() {
            let range = indptr[r] as usize..indptr[r + 1] as usize;
            new_indices.extend_from_slice(&indices[range.clone()]);
            new_values.extend_from_slice(&values[range]);
            new_indices.extend([500, 501]);
            new_values.extend([(r % 7) as f32 / 7.0, 0.3]);
        }
        let indptr = (0..=labels.len() as i64).map(|r| 4 * r).collect();
        (indptr, new_indices, new_values, labels)
    }

    /// The final factors followed by the kept samples' factors, and each sweep's statistics.
    fn fit(method: Method, sweeps: usize, threads: usize, dense: bool) -> (Vec<f32>, Vec<SweepStats>) {
        fit_noise(method, Noise::Shared, sweeps, threads, dense)
    }

    /// [`fit`] with a noise model.
    fn fit_noise(
        method: Method,
        noise: Noise,
        sweeps: usize,
        threads: usize,
        dense: bool,
    ) -> (Vec<f32>, Vec<SweepStats>) {
        let (mut factors, samples, stats) = fit_chains(method, noise, sweeps, threads, dense, 9, 1);
        factors.extend(samples);
        (factors, stats)
    }

    /// A fit of `chains` chains seeded `seed` keeping 2 samples a chain: the final factors (of the
    /// first chain), the kept samples' factors and each sweep's statistics.
    fn fit_chains(
        method: Method,
        noise: Noise,
        sweeps: usize,
        threads: usize,
        dense: bool,
        seed: u64,
        chains: usize,
    ) -> (Vec<f32>, Vec<f32>, Vec<SweepStats>) {
        // Under miri, fewer rows: the runs of columns are as long (300 users, 200 items).
        let rows = ratings(if cfg!(miri) { 200 } else { 4000 });
        let (indptr, indices, values, labels) = if dense { with_dense_columns(rows) } else { rows };
        let (d, k) = (if dense { 502 } else { 500 }, 3);
        let x = CsrView::new(&indptr, &indices, values.len(), d as u64).unwrap();
        let groups: Vec<u32> = (0..d as u32)
            .map(|i| u32::from(i >= 300) + u32::from(i >= 500))
            .collect();
        let mut bias = 0.0f32;
        let mut linear = vec![0.0f32; d];
        let mut factors: Vec<f32> = (0..d * k).map(|i| ((i * 37 % 17) as f32 - 8.0) / 80.0).collect();
        let config = BayesConfig {
            method,
            sweeps,
            burn_in: 0,
            posterior_samples: 2,
            seed,
            chains,
            noise,
        };
        let (sf, stats) = with_threads(threads, || {
            let mut w = WeightsMut::new(&mut bias, &mut linear, &mut factors, k)?;
            sample(x, &values, &labels, &groups, None, &mut w, &config)
        })
        .unwrap();
        (factors, sf, stats)
    }

    /// `fit_bayes` of `x` (unweighted, unclipped) from `w`, its kept samples held in fresh arrays:
    /// the samples' factors and each sweep's statistics.
    fn sample(
        x: CsrView<'_, i64>,
        values: &[f32],
        labels: &[f64],
        groups: &[u32],
        noise_groups: Option<&[u32]>,
        w: &mut WeightsMut<'_>,
        config: &BayesConfig,
    ) -> Result<(Vec<f32>, Vec<SweepStats>)> {
        let (kept, d, k) = (config.kept(), w.linear.len(), w.k);
        let (mut sb, mut sl, mut sf) = (vec![0.0; kept], vec![0.0; kept * d], vec![0.0; kept * d * k]);
        let data = BayesData {
            x,
            values: Values::F32(values),
            labels,
            sample_weight: None,
            groups,
            clip: None,
            noise_groups,
        };
        let mut samples = Samples {
            bias: &mut sb,
            linear: &mut sl,
            factors: &mut sf,
            noise_precisions: Vec::new(),
        };
        let mut stats = Vec::new();
        fit_bayes(&data, w, &mut samples, None, config, &Unmonitored, &mut stats)?;
        Ok((sf, stats))
    }

    #[test]
    #[cfg_attr(miri, ignore = "too slow for miri: the block-parallel test runs the same sweeps")]
    fn chains_are_the_fits_of_their_seeds_side_by_side_for_every_thread_count() {
        let (sweeps, chains, seed) = (3, 3, 9);
        let (first, pooled, stats) = fit_chains(Method::Mcmc, Noise::Shared, sweeps, 2, true, seed, chains);
        assert_eq!(stats.len(), sweeps);
        let per_chain = pooled.len() / chains;
        assert_eq!(per_chain, 2 * 502 * 3, "two samples a chain");
        for c in 0..chains {
            let (last, single, _) = fit_chains(
                Method::Mcmc,
                Noise::Shared,
                sweeps,
                1,
                true,
                chain_seed(seed, c as u64),
                1,
            );
            if c == 0 {
                assert_eq!(first, last, "the caller's weights are the first chain's");
            }
            // Sample j of chain c is the pooled sample j * chains + c.
            let sample = 502 * 3;
            for j in 0..2 {
                assert_eq!(
                    single[j * sample..(j + 1) * sample],
                    pooled[(j * chains + c) * sample..(j * chains + c + 1) * sample],
                    "chain {c}, sample {j}"
                );
            }
        }
        for threads in [1, 4] {
            let again = fit_chains(Method::Mcmc, Noise::Shared, sweeps, threads, true, seed, chains);
            assert_eq!(
                (&first, &pooled, &stats),
                (&again.0, &again.1, &again.2),
                "{threads} threads"
            );
        }
        // The pooled running mean differs from the first chain's alone.
        let (_, _, alone) = fit_chains(Method::Mcmc, Noise::Shared, sweeps, 2, true, seed, 1);
        assert_ne!(stats.last().unwrap().train_sse, alone.last().unwrap().train_sse);
    }

    #[test]
    fn groups_are_refused_beyond_the_features_and_noise_groups_beyond_the_rows_and_for_als() {
        let (indptr, indices, values, labels) = ratings(20);
        let x = CsrView::new(&indptr, &indices, values.len(), 500).unwrap();
        let fit = |method, groups: &[u32], noise: Option<&[u32]>| {
            let (mut bias, mut linear, mut factors) = (0.0f32, vec![0.0f32; 500], vec![0.0f32; 500]);
            let mut w = WeightsMut::new(&mut bias, &mut linear, &mut factors, 1)?;
            let config = BayesConfig {
                method,
                sweeps: 1,
                burn_in: 0,
                posterior_samples: 1,
                seed: 0,
                chains: 1,
                noise: Noise::Shared,
            };
            sample(x, &values, &labels, groups, noise, &mut w, &config)
        };
        let groups = vec![0u32; 500];
        let by_row: Vec<u32> = (0..20).map(|r| r % 3).collect();
        assert!(fit(Method::Mcmc, &groups, Some(&by_row)).is_ok());
        let mut beyond = by_row.clone();
        beyond[7] = 20;
        for (method, noise) in [
            (Method::Mcmc, &beyond[..]),
            (Method::Mcmc, &by_row[..19]),
            (Method::AdaptiveAls, &by_row),
        ] {
            let err = fit(method, &groups, Some(noise)).unwrap_err().to_string();
            assert!(err.contains("noise_groups"), "{err}");
        }
        // A group code would size the groups' priors: one beyond the features is refused, not allocated.
        let mut far = groups.clone();
        far[3] = u32::MAX;
        for method in [Method::Mcmc, Method::AdaptiveAls] {
            let err = fit(method, &far, None).unwrap_err().to_string();
            assert!(
                err.contains("feature groups must be numbered below the number of features (500), got 4294967295"),
                "{err}"
            );
        }
    }

    #[test]
    fn als_runs_one_chain_and_mcmc_at_least_one() {
        let config = |method, chains| BayesConfig {
            method,
            sweeps: 2,
            burn_in: 0,
            posterior_samples: 2,
            seed: 0,
            chains,
            noise: Noise::Shared,
        };
        assert!(config(Method::Mcmc, 4).validate().is_ok());
        assert_eq!(config(Method::Mcmc, 4).kept(), 8);
        for (method, chains) in [(Method::Mcmc, 0), (Method::AdaptiveAls, 2), (Method::AdaptiveAls, 0)] {
            let err = config(method, chains).validate().unwrap_err().to_string();
            assert!(err.contains("num_chains must be at least 1"), "{err}");
        }
    }

    #[test]
    fn block_parallel_sweeps_are_the_sequential_ones_for_every_thread_count() {
        let methods = [
            Method::Mcmc,
            Method::AdaptiveAls,
            Method::Als {
                bias: 0.0,
                linear: 1e-3,
                factors: 1e-3,
            },
        ];
        // Under miri (slow), one sweep of MCMC on two threads, with the dense columns: the one-hot
        // runs in parallel and the long columns in chunks (the methods share the sweep's code).
        let (methods, sweeps, threads, dense): (&[Method], usize, &[usize], &[bool]) = if cfg!(miri) {
            (&methods[..1], 1, &[2], &[true])
        } else {
            (&methods, 4, &[2, 3], &[false, true])
        };
        // MCMC with a noise precision per user and per item too.
        let noises = |method| match method {
            Method::Mcmc => &[Noise::Shared, Noise::PerLevel][..],
            _ => &[Noise::Shared][..],
        };
        for &method in methods {
            for &noise in noises(method) {
                for &dense in dense {
                    let one = fit_noise(method, noise, sweeps, 1, dense);
                    for &threads in threads {
                        assert_eq!(
                            one,
                            fit_noise(method, noise, sweeps, threads, dense),
                            "{method:?}, {noise:?} on {threads} threads, dense columns: {dense}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    #[cfg_attr(miri, ignore = "too slow for miri: the block-parallel test runs the same sweeps")]
    fn per_level_noise_needs_one_hot_groups_and_mcmc() {
        // The users and items are one-hot groups: per-level noise changes the draws.
        let shared = fit_noise(Method::Mcmc, Noise::Shared, 2, 2, true);
        assert_ne!(shared, fit_noise(Method::Mcmc, Noise::PerLevel, 2, 2, true));
        // One group for every feature is not one-hot: one precision for every row, as shared.
        let (indptr, indices, values, labels) = ratings(500);
        let x = CsrView::new(&indptr, &indices, values.len(), 500).unwrap();
        let fit_one_group = |noise| {
            let (mut bias, mut linear, mut factors) = (0.0f32, vec![0.0f32; 500], vec![0.01f32; 1000]);
            let mut w = WeightsMut::new(&mut bias, &mut linear, &mut factors, 2).unwrap();
            let config = BayesConfig {
                method: Method::Mcmc,
                sweeps: 2,
                burn_in: 0,
                posterior_samples: 2,
                seed: 3,
                chains: 1,
                noise,
            };
            sample(x, &values, &labels, &[0; 500], None, &mut w, &config).unwrap()
        };
        assert_eq!(fit_one_group(Noise::Shared), fit_one_group(Noise::PerLevel));
        let err = BayesConfig {
            method: Method::AdaptiveAls,
            sweeps: 2,
            burn_in: 0,
            posterior_samples: 2,
            seed: 0,
            chains: 1,
            noise: Noise::PerLevel,
        }
        .validate()
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("noise 'per-level' applies to optimizer 'mcmc' only"),
            "{err}"
        );
    }

    #[test]
    #[cfg_attr(miri, ignore = "too slow for miri: the block-parallel test runs the same code")]
    fn als_sweeps_never_raise_the_training_error() {
        let method = Method::Als {
            bias: 0.0,
            linear: 0.0,
            factors: 0.0,
        };
        let (_, stats) = fit(method, 6, 2, true);
        for pair in stats.windows(2) {
            assert!(pair[1].train_sse <= pair[0].train_sse * (1.0 + 1e-12), "{stats:?}");
        }
    }
}
