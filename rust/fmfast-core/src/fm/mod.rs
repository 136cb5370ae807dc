//! Factorization Machines at Amazon SageMaker's semantics.
//!
//! The model scores a row `x` as
//!
//! ```text
//! ŷ = w0 + Σᵢ wᵢ xᵢ + ½ Σ_f [(Σᵢ v_if xᵢ)² − Σᵢ v_if² xᵢ²]
//! ```
//!
//! in O(k · nnz). A regressor minimises ½(ŷ − y)²; a binary classifier minimises the log loss of
//! σ(ŷ) against labels 0/1.
//!
//! * [`model`]: borrowed weights ([`Weights`], [`WeightsMut`]) and scoring ([`predict`]).
//! * [`optim`]: MXNet's SGD, Adam and AdaGrad with lazy (row-sparse) updates.
//! * [`config`]: what a fit takes and gives back ([`TrainConfig`], [`OptimizerState`],
//!   [`EpochStats`]).
//! * [`train`]: mini-batch training ([`fit_epochs`]), deterministic and parallel.
//!   [`train`] cuts each epoch into segments; `schedule` numbers the tasks of a segment's batches
//!   and chooses how many threads run them; `batch` holds those threads and the two phases of a
//!   mini-batch; `shared` is the one place where those threads share the weights and buffers
//!   through raw pointers. `hogwild` is the other schedule: threads training mini-batches of their
//!   own at the same time (`deterministic = false`). `lanes` holds the loops over one row's k
//!   factors that both run for every entry and feature, scalar and in AVX2's lanes (same bits).
//! * [`bayes`]: Bayesian FM by Gibbs sampling (MCMC) and ALS, sweeping one coordinate at a time.
//! * [`checkpoint`]: the copy of the model that [`fit_epochs`] takes at epoch ends, so that an
//!   interrupted fit keeps its last complete epoch.
//!
//! Weights and optimizer state are `f32` slices, as SageMaker FM stores them, owned by the caller:
//! nothing is kept between calls. Every computation on them is `f64` ([`optim`]). Feature values
//! may be any [`crate::csr::Values`] type; they are read as `f64`.

mod batch;
pub mod bayes;
pub mod checkpoint;
pub mod config;
mod hogwild;
mod lanes;
pub mod model;
pub mod optim;
mod racy;
mod schedule;
mod shared;
pub mod train;

pub use checkpoint::Checkpoint;
pub use config::{EpochStats, OptimizerState, TrainConfig};
pub use model::{predict, Task, Weights, WeightsMut};
pub use optim::{Group, Optimizer, OptimizerKind};
pub use schedule::ThreadChoice;
pub use train::fit_epochs;

/// A feature value type, read as `f64`.
pub trait Feature: Copy + Send + Sync + 'static {
    /// The value as `f64`.
    fn to_f64(self) -> f64;
}

impl Feature for f32 {
    #[inline]
    fn to_f64(self) -> f64 {
        f64::from(self)
    }
}

impl Feature for f64 {
    #[inline]
    fn to_f64(self) -> f64 {
        self
    }
}

impl Feature for i32 {
    #[inline]
    fn to_f64(self) -> f64 {
        f64::from(self)
    }
}

impl Feature for i64 {
    #[inline]
    fn to_f64(self) -> f64 {
        self as f64
    }
}

/// σ(z), computed without overflow for large |z|.
#[inline]
pub fn sigmoid(z: f64) -> f64 {
    if z >= 0.0 {
        1.0 / (1.0 + (-z).exp())
    } else {
        let e = z.exp();
        e / (1.0 + e)
    }
}

/// Log loss of σ(z) against label `y` ∈ {0, 1}: `max(z, 0) − z·y + ln(1 + e^−|z|)`.
#[inline]
pub fn log_loss(z: f64, y: f64) -> f64 {
    z.max(0.0) - z * y + (-z.abs()).exp().ln_1p()
}
