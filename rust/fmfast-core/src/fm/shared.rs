//! The one place where the training threads share memory: the weights, the optimizer state and
//! the per-batch buffers, as raw pointers that every thread of a segment holds at once.
//!
//! # Invariant
//! [`super::train`] takes these pointers from the weights, the state and a [`Scratch`], which it
//! borrows mutably, afresh for each segment, and does not touch that memory through anything else
//! until the segment ends; so the pointers never outlive a use of the borrows they came from.
//! Between two barriers of [`super::batch::Trainer`], every element is either only read, by any
//! thread, or read and written by the one task that owns it:
//!
//! * phase 1: the weights and state are only read; a task writes its own rows (`share`) of the
//!   scratch buffers and its own entry lists;
//! * phase 2: the scratch buffers are only read; the task of part 0 writes the bias and its state,
//!   and the task of each part the rows of `w`, `V` and state of the features that part owns
//!   (`batch::owner`), each once.
//!
//! Each `unsafe` call site names which of these cases it is, and `debug_assert!`s check the
//! bounds here and the ownership there (they run in `cargo test` and under miri).
//!
//! # The concurrent schedule
//! With `deterministic = false` ([`super::hogwild`]) each thread runs a [`super::batch::Trainer`]
//! of its own, on mini-batches of its own, on a replica of the model that it alone reads and
//! writes between two of the schedule's merges, so the batch code runs in place on it as on the
//! deterministic schedule's model. Only the bias and its state, which every batch updates, stay
//! shared by all threads ([`SharedModel::replica`]): each access to them is a relaxed atomic load
//! or store, and the trainer never takes a slice of them but copies them into a small buffer of
//! its own ([`RowBuffer`]). So the races allowed on the bias (a lost or mixed update, never a torn
//! value) are not undefined behaviour. The merges run between barriers of the concurrent schedule,
//! each thread on a range of features of its own in the master and in every replica.

use std::sync::atomic::{AtomicU32, Ordering};

use super::config::OptimizerState;
use super::model::{Weights, WeightsMut};
use crate::error::Error;
use crate::memory::try_filled;

/// Per-batch buffers, one entry (or `k`) per batch row.
pub(super) struct Scratch {
    /// `s_rf`, rows × k.
    s: Vec<f64>,
    /// ŷ of each row.
    scores: Vec<f64>,
    /// `g_r` of each row.
    g: Vec<f64>,
    /// Loss of each row.
    loss: Vec<f64>,
    /// Classifier: 0 true positive, 1 false positive, 2 true negative, 3 false negative.
    outcome: Vec<u8>,
    /// With several parts, per phase-1 task and part (`task * parts + part`): the task's entries
    /// of that part's features in row order, as (row, entry) offsets in the batch.
    entries: Vec<Vec<(u32, u32)>>,
}

impl Scratch {
    /// Buffers for batches of up to `batch_rows` rows, trained on up to `max_threads` threads, or
    /// an error when `batch_rows × k` is beyond memory.
    pub(super) fn new(batch_rows: usize, k: usize, max_threads: usize) -> Result<Self, Error> {
        let what = "the training scratch (mini-batch rows × num_factors); lower num_factors or mini_batch_size";
        Ok(Scratch {
            s: try_filled(batch_rows, k, 0.0, what)?,
            scores: try_filled(batch_rows, 1, 0.0, what)?,
            g: try_filled(batch_rows, 1, 0.0, what)?,
            loss: try_filled(batch_rows, 1, 0.0, what)?,
            outcome: try_filled(batch_rows, 1, 0, what)?,
            // At most 2·threads phase-1 tasks a batch (`Schedule::new`), each sorting for
            // 2·threads parts.
            entries: vec![Vec::new(); 4 * max_threads * max_threads],
        })
    }
}

/// A slice shared between the training threads: its start and length.
pub(super) struct Ptr<E> {
    start: *mut E,
    len: usize,
}

// By hand: a derive would require `E: Copy` (the entry lists are `Vec`s).
impl<E> Clone for Ptr<E> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<E> Copy for Ptr<E> {}

// SAFETY: the threads access disjoint elements, or only read, between barriers (module invariant).
unsafe impl<E: Send> Send for Ptr<E> {}
// SAFETY: as for `Send`: shared use follows the module invariant.
unsafe impl<E: Send> Sync for Ptr<E> {}

impl<E> Ptr<E> {
    fn of(slice: &mut [E]) -> Self {
        Ptr {
            start: slice.as_mut_ptr(),
            len: slice.len(),
        }
    }

    /// The address of element `at`, for prefetching only (never dereferenced).
    #[inline(always)]
    pub(super) fn hint(self, at: usize) -> *const E {
        self.start.wrapping_add(at)
    }

    /// `len` elements from `at`.
    ///
    /// # Safety
    /// In bounds, and no thread writes them while the result lives (module invariant).
    #[inline(always)]
    pub(super) unsafe fn slice<'a>(self, at: usize, len: usize) -> &'a [E] {
        debug_assert!(
            at.checked_add(len).is_some_and(|end| end <= self.len),
            "{at}+{len} > {}",
            self.len
        );
        // SAFETY: in bounds of the slice `self` was made from (caller), which outlives the
        // segment; nothing writes these elements meanwhile (caller).
        unsafe { std::slice::from_raw_parts(self.start.add(at), len) }
    }

    /// `len` elements from `at`, to write.
    ///
    /// # Safety
    /// As [`Ptr::slice`], and no other thread reads or writes them while the result lives: the
    /// calling task owns them (module invariant).
    #[inline(always)]
    #[allow(clippy::mut_from_ref)]
    pub(super) unsafe fn slice_mut<'a>(self, at: usize, len: usize) -> &'a mut [E] {
        debug_assert!(
            at.checked_add(len).is_some_and(|end| end <= self.len),
            "{at}+{len} > {}",
            self.len
        );
        // SAFETY: in bounds (caller); the calling task owns these elements (caller).
        unsafe { std::slice::from_raw_parts_mut(self.start.add(at), len) }
    }
}

// `Ptr::atomics` views an `f32` as an `AtomicU32`: same size, and alignment no stricter.
const _: () = assert!(
    std::mem::size_of::<f32>() == std::mem::size_of::<AtomicU32>()
        && std::mem::align_of::<AtomicU32>() <= std::mem::align_of::<f32>()
);

impl Ptr<f32> {
    /// `len` elements from `at` as atomics (their bits), for the concurrent schedule.
    ///
    /// # Safety
    /// In bounds, and while the result lives every access to these elements, from any thread, is
    /// atomic (the concurrent schedule's invariant, in the module documentation).
    #[inline(always)]
    pub(super) unsafe fn atomics<'a>(self, at: usize, len: usize) -> &'a [AtomicU32] {
        debug_assert!(
            at.checked_add(len).is_some_and(|end| end <= self.len),
            "{at}+{len} > {}",
            self.len
        );
        // SAFETY: in bounds (caller) of the slice `self` was made from, which outlives the
        // segment, and aligned for `AtomicU32` (the assertion above); only atomic accesses
        // meanwhile (caller).
        unsafe { std::slice::from_raw_parts(self.start.add(at).cast::<AtomicU32>(), len) }
    }
}

/// The weights and optimizer state, as raw pointers (lengths checked by `train::check_config`).
#[derive(Clone, Copy)]
pub(super) struct SharedModel {
    pub(super) d: usize,
    pub(super) k: usize,
    pub(super) bias: Ptr<f32>,
    pub(super) linear: Ptr<f32>,
    pub(super) factors: Ptr<f32>,
    pub(super) bias_state: Ptr<f32>,
    pub(super) linear_state: Ptr<f32>,
    pub(super) factor_state: Ptr<f32>,
    /// Whether other trainers read and write the bias and its state at the same time (a replica
    /// of the concurrent schedule): then every access to them is atomic.
    shared_bias: bool,
}

impl SharedModel {
    pub(super) fn new(weights: &mut WeightsMut<'_>, state: &mut OptimizerState<'_>) -> Self {
        SharedModel {
            d: weights.linear.len(),
            k: weights.k,
            bias: Ptr::of(std::slice::from_mut(weights.bias)),
            linear: Ptr::of(weights.linear),
            factors: Ptr::of(weights.factors),
            bias_state: Ptr::of(state.bias),
            linear_state: Ptr::of(state.linear),
            factor_state: Ptr::of(state.factors),
            shared_bias: false,
        }
    }

    /// A thread's replica of this model for the concurrent schedule: the weights and state of the
    /// features in `replica` (the thread's alone between merges), the bias and its state this
    /// model's, which every trainer may read and write at any time, so each access to them is a
    /// relaxed atomic one (module documentation).
    pub(super) fn replica(self, replica: &mut Replica) -> Self {
        SharedModel {
            linear: Ptr::of(&mut replica.linear),
            factors: Ptr::of(&mut replica.factors),
            linear_state: Ptr::of(&mut replica.linear_state),
            factor_state: Ptr::of(&mut replica.factor_state),
            shared_bias: true,
            ..self
        }
    }

    /// The four arrays of a feature's rows (`w`, its state, `V`, its state) and each one's values
    /// a feature, for merging replicas.
    pub(super) fn feature_arrays(&self, n_slots: usize) -> [(Ptr<f32>, usize); 4] {
        [
            (self.linear, 1),
            (self.linear_state, n_slots),
            (self.factors, self.k),
            (self.factor_state, n_slots * self.k),
        ]
    }

    /// What phase 1 scores with: the weights in place, and the bias as it is now.
    ///
    /// # Safety
    /// No thread writes the weights but the bias while the result lives (module invariant).
    #[inline(always)]
    pub(super) unsafe fn scorer(&self) -> Weights<'_> {
        let bias = if self.shared_bias {
            // SAFETY: row 0 of the bias, which every access of a replica's trainers reads or
            // writes atomically (module documentation).
            f32::from_bits(unsafe { self.bias.atomics(0, 1) }[0].load(Ordering::Relaxed))
        } else {
            // SAFETY: in bounds; nothing writes it meanwhile (caller).
            unsafe { self.bias.slice(0, 1)[0] }
        };
        // SAFETY: in bounds (lengths checked by `train::check_config`); nothing writes them
        // meanwhile (caller).
        unsafe {
            Weights {
                bias: f64::from(bias),
                linear: self.linear.slice(0, self.d),
                factors: self.factors.slice(0, self.d * self.k),
                k: self.k,
            }
        }
    }

    /// The bias and its state, to update: in place, or, if they are shared
    /// ([`SharedModel::replica`]), copies in `buffer` loaded now, one relaxed atomic value at a
    /// time, which [`SharedModel::store_bias`] writes back (a store of another thread that lands
    /// in between is lost).
    ///
    /// # Safety
    /// Unless they are shared, the bias and its state are the calling task's alone while the
    /// result lives (module invariant).
    #[inline(always)]
    pub(super) unsafe fn bias_mut<'b>(&self, n_slots: usize, buffer: &'b mut RowBuffer) -> [&'b mut [f32]; 2] {
        if !self.shared_bias {
            // SAFETY: in bounds (`train::check_config`), and the task's alone (caller).
            return unsafe { [self.bias.slice_mut(0, 1), self.bias_state.slice_mut(0, n_slots)] };
        }
        let copy = room(&mut buffer.values, 1 + n_slots);
        // SAFETY: in bounds; shared: only atomic accesses (module documentation).
        unsafe {
            load(self.bias.atomics(0, 1), &mut copy[..1]);
            load(self.bias_state.atomics(0, n_slots), &mut copy[1..]);
        }
        let (bias, state) = copy.split_at_mut(1);
        [bias, state]
    }

    /// Writes back the copies that [`SharedModel::bias_mut`] made, one relaxed atomic value at a
    /// time (nothing to do in place).
    #[inline(always)]
    pub(super) fn store_bias(&self, n_slots: usize, buffer: &RowBuffer) {
        if !self.shared_bias {
            return;
        }
        // SAFETY: in bounds; shared: only atomic accesses (module documentation).
        let shared = unsafe { [self.bias.atomics(0, 1), self.bias_state.atomics(0, n_slots)] };
        for (a, &value) in shared.into_iter().flatten().zip(&buffer.values) {
            a.store(value.to_bits(), Ordering::Relaxed);
        }
    }
}

/// Loads `from` into `into` (same length), one relaxed atomic value at a time.
#[inline(always)]
fn load(from: &[AtomicU32], into: &mut [f32]) {
    for (value, a) in into.iter_mut().zip(from) {
        *value = f32::from_bits(a.load(Ordering::Relaxed));
    }
}

/// A thread's copy of the shared bias and its state while it updates them
/// ([`SharedModel::bias_mut`]), never shrunk.
#[derive(Default)]
pub(super) struct RowBuffer {
    values: Vec<f32>,
}

/// One thread's replica of the weights and optimizer state of every feature (the concurrent
/// schedule's, [`SharedModel::replica`]); the bias is not replicated.
pub(super) struct Replica {
    linear: Vec<f32>,
    factors: Vec<f32>,
    linear_state: Vec<f32>,
    factor_state: Vec<f32>,
}

impl Replica {
    /// A copy of `weights` and `state`, or an error when it is beyond memory.
    pub(super) fn of(weights: &WeightsMut<'_>, state: &OptimizerState<'_>) -> Result<Self, Error> {
        let copy = |values: &[f32]| -> Result<Vec<f32>, Error> {
            let mut copy = Vec::new();
            copy.try_reserve_exact(values.len()).map_err(|_| {
                let bytes = std::mem::size_of_val(values);
                Error::invalid(format!(
                    "cannot allocate a replica of the model ({bytes} bytes) for each thread (deterministic=False)"
                ))
            })?;
            copy.extend_from_slice(values);
            Ok(copy)
        };
        Ok(Replica {
            linear: copy(weights.linear)?,
            factors: copy(weights.factors)?,
            linear_state: copy(state.linear)?,
            factor_state: copy(state.factors)?,
        })
    }
}

/// The first `len` values of `values`, grown to hold them.
#[inline(always)]
fn room(values: &mut Vec<f32>, len: usize) -> &mut [f32] {
    if values.len() < len {
        values.resize(len, 0.0);
    }
    &mut values[..len]
}

/// The [`Scratch`] buffers, as raw pointers.
#[derive(Clone, Copy)]
pub(super) struct SharedScratch {
    pub(super) s: Ptr<f64>,
    pub(super) scores: Ptr<f64>,
    pub(super) g: Ptr<f64>,
    pub(super) loss: Ptr<f64>,
    pub(super) outcome: Ptr<u8>,
    pub(super) entries: Ptr<Vec<(u32, u32)>>,
}

impl SharedScratch {
    pub(super) fn new(scratch: &mut Scratch) -> Self {
        SharedScratch {
            s: Ptr::of(&mut scratch.s),
            scores: Ptr::of(&mut scratch.scores),
            g: Ptr::of(&mut scratch.g),
            loss: Ptr::of(&mut scratch.loss),
            outcome: Ptr::of(&mut scratch.outcome),
            entries: Ptr::of(&mut scratch.entries),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_copies_every_value_of_every_length() {
        for len in 0..=11 {
            let from: Vec<AtomicU32> = (0..len).map(|i| AtomicU32::new((i as f32 + 0.5).to_bits())).collect();
            let mut into = vec![f32::NAN; len + 1];
            load(&from, &mut into[..len]);
            let expected: Vec<f32> = (0..len).map(|i| i as f32 + 0.5).collect();
            assert_eq!(into[..len], expected[..]);
            assert!(into[len].is_nan(), "wrote past the end at length {len}");
        }
    }
}
