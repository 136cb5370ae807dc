//! What a fit takes and gives back, beside the data and weights: its configuration
//! ([`TrainConfig`]), the optimizer state the caller owns ([`OptimizerState`]) and the statistics
//! of each epoch ([`EpochStats`]). Their own module, below `train`, `batch`, `schedule` and
//! `checkpoint`, which all use them, so that those import nothing from each other in a circle.

use super::model::Task;
use super::optim::Optimizer;

/// What one call to [`super::fit_epochs`] does.
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
    /// Let measurement decide, every few dozen batches, whether the pool's threads or a single
    /// one train the next ones (more threads do not always pay: a model in the caches, shared
    /// cores, threads that share one model's cache lines), and in the deterministic schedule
    /// train a model that fits one core's caches on one thread; with `false`, every thread of the
    /// pool takes part. Deterministic results are the same either way.
    pub adaptive_threads: bool,
    /// `true`: every thread works on the same mini-batch, and results are bit-identical for every
    /// thread count. `false`: each thread trains mini-batches of its own at the same time against
    /// the shared weights, without locks (`super::hogwild`): faster on several cores, but results
    /// depend on how the threads happened to interleave. One thread trains the same either way.
    pub deterministic: bool,
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
    /// values, checked against the weights by [`super::fit_epochs`].
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
