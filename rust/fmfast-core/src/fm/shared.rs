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
//! With `deterministic = false` ([`super::hogwild`]) the threads of a segment read and write the
//! shared weights and state at the same time, without any ownership: during such a segment every
//! access to them is a relaxed atomic one ([`Ptr::atomics`]), never a plain read or write, so the
//! races it allows (a lost or mixed update, never a torn value) are not undefined behaviour. Each
//! thread's batch is trained by [`super::batch::Trainer`] on a copy of its own, under the first
//! invariant.

use std::sync::atomic::AtomicU32;

use super::config::OptimizerState;
use super::model::WeightsMut;
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
        }
    }
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
