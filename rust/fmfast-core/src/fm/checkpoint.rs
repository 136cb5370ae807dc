//! The copy of the weights and optimizer state that [`super::fit_epochs`] takes at the end of every
//! epoch but the last, so that a fit stopped mid-epoch (Ctrl-C) still leaves its caller the model
//! of the last complete epoch, optimizer state included, with that epoch's update count.

use rayon::prelude::*;

use super::config::{EpochStats, OptimizerState};
use super::model::WeightsMut;
use crate::error::{Error, Result};

/// Values copied per rayon task: large enough that a task is worth starting.
const COPY_CHUNK: usize = 1 << 16;

/// Caller-owned arrays shaped like the weights and state being trained, and what they hold.
pub struct Checkpoint<'a> {
    weights: WeightsMut<'a>,
    state: OptimizerState<'a>,
    epochs: Vec<EpochStats>,
}

impl<'a> Checkpoint<'a> {
    /// Empty until the first epoch ends; [`super::fit_epochs`] checks the shapes.
    pub fn new(weights: WeightsMut<'a>, state: OptimizerState<'a>) -> Self {
        Checkpoint {
            weights,
            state,
            epochs: Vec::new(),
        }
    }

    /// The statistics of the epochs whose end it holds, one per epoch (none before the first ends).
    pub fn epochs(&self) -> &[EpochStats] {
        &self.epochs
    }

    /// The update count `t` at the end of the epochs it holds.
    pub fn t(&self) -> u64 {
        self.state.t
    }

    /// Checks that the arrays have the shapes of `weights` and `state`.
    pub(super) fn check(&self, weights: &WeightsMut<'_>, state: &OptimizerState<'_>) -> Result<()> {
        let (mine, theirs) = (arrays(&self.weights, &self.state), arrays(weights, state));
        for ((name, got), (_, want)) in mine.iter().zip(&theirs) {
            if got.len() != want.len() {
                return Err(Error::invalid(format!(
                    "checkpoint {name} holds {} values, the model {}",
                    got.len(),
                    want.len()
                )));
            }
        }
        Ok(())
    }

    /// Copies `weights` and `state`, at update count `t`, after the epochs of `epochs`.
    pub(super) fn save(&mut self, weights: &WeightsMut<'_>, state: &OptimizerState<'_>, t: u64, epochs: &[EpochStats]) {
        *self.weights.bias = *weights.bias;
        for (target, (_, source)) in self.arrays_mut().into_iter().zip(arrays(weights, state)) {
            target
                .par_chunks_mut(COPY_CHUNK)
                .zip(source.par_chunks(COPY_CHUNK))
                .for_each(|(to, from)| to.copy_from_slice(from));
        }
        self.state.t = t;
        self.epochs.clear();
        self.epochs.extend_from_slice(epochs);
    }

    /// The arrays of [`arrays`], writable.
    fn arrays_mut(&mut self) -> [&mut [f32]; 5] {
        let (weights, state) = (&mut self.weights, &mut self.state);
        [
            &mut *weights.linear,
            &mut *weights.factors,
            &mut *state.bias,
            &mut *state.linear,
            &mut *state.factors,
        ]
    }
}

/// The arrays of a model and its state, named, in a fixed order (the bias is one value).
fn arrays<'b>(weights: &'b WeightsMut<'_>, state: &'b OptimizerState<'_>) -> [(&'static str, &'b [f32]); 5] {
    [
        ("linear weights", &*weights.linear),
        ("factors", &*weights.factors),
        ("bias state", &*state.bias),
        ("linear state", &*state.linear),
        ("factor state", &*state.factors),
    ]
}
