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
//! of its own, on mini-batches of its own, against the one shared model, without any ownership:
//! another thread may read or write any row at any time. Such a model is
//! [`SharedModel::concurrent`], and the trainer then never takes a slice of it: phase 1 copies
//! each row's weights ([`Scorer`]) and phase 2 each feature's rows ([`SharedModel::rows_mut`])
//! into a small buffer of the thread's own ([`RowBuffer`]), and phase 2 stores them back right
//! after the update ([`SharedModel::store`]): eight or four values a move, each as a relaxed atomic access would, which is what
//! "atomic" means for these values below ([`super::racy`]). So the races it allows (a lost or
//! mixed update, never a torn value) are not undefined behaviour, and the batch code runs
//! unchanged on the copies, which stay in L1.

use std::sync::atomic::{AtomicU32, Ordering};

use super::config::OptimizerState;
use super::lanes::Lanes;
use super::model::{Factors, Weights, WeightsMut};
use super::racy;
use super::Feature;
use crate::csr::CsrIndex;
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
    /// Whether other trainers read and write this model at the same time (the concurrent
    /// schedule): then every access to it is atomic.
    concurrent: bool,
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
            concurrent: false,
        }
    }

    /// This model as the concurrent schedule shares it: every trainer may read and write any
    /// value at any time, so each access is a relaxed atomic one (module documentation).
    pub(super) fn concurrent(self) -> Self {
        SharedModel {
            concurrent: true,
            ..self
        }
    }

    /// What phase 1 scores with.
    ///
    /// # Safety
    /// No thread writes the weights while the result lives, unless the model is
    /// [`SharedModel::concurrent`] (module invariant).
    #[inline(always)]
    pub(super) unsafe fn scorer(&self) -> Scorer<'_> {
        if self.concurrent {
            // SAFETY: row 0 of the bias, read atomically.
            let bias = unsafe { self.bias.atomics(0, 1) }[0].load(Ordering::Relaxed);
            return Scorer::Copied {
                model: *self,
                bias: f64::from(f32::from_bits(bias)),
            };
        }
        // SAFETY: in bounds (lengths checked by `train::check_config`); nothing writes them
        // meanwhile (caller).
        Scorer::InPlace(unsafe {
            Weights {
                bias: f64::from(self.bias.slice(0, 1)[0]),
                linear: self.linear.slice(0, self.d),
                factors: self.factors.slice(0, self.d * self.k),
                k: self.k,
            }
        })
    }

    /// Rows `rows` (each a pointer, its first element and its length) of the model, to update:
    /// in place, or, if the model is [`SharedModel::concurrent`], copies in `buffer` loaded now
    /// ([`racy::load`], in the encoding of `lanes`), which [`SharedModel::store`] writes back (a
    /// store of another thread that lands in between is lost). Two calls, not one taking the
    /// update as a closure: the closure was not inlined, and its optimizer loop lost its
    /// specialisation.
    ///
    /// # Safety
    /// In bounds, and, unless the model is concurrent, the rows are the calling task's alone
    /// while the result lives (module invariant).
    #[inline(always)]
    pub(super) unsafe fn rows_mut<'b, L: Lanes, const N: usize>(
        &self,
        lanes: L,
        rows: [(Ptr<f32>, usize, usize); N],
        buffer: &'b mut RowBuffer,
    ) -> [&'b mut [f32]; N] {
        if !self.concurrent {
            // SAFETY: in bounds, and the task's alone (caller).
            return rows.map(|(p, at, len)| unsafe { p.slice_mut(at, len) });
        }
        let total = rows.iter().map(|&(_, _, len)| len).sum();
        let mut rest = room(&mut buffer.values, total);
        // A loop, not a `map` that loads in its closure: LLVM did not inline that `map`, and its
        // call cost more than the copies (callgrind).
        let mut copies = [(); N].map(|()| <&mut [f32]>::default());
        for (copy, (p, at, len)) in copies.iter_mut().zip(rows) {
            let (row, tail) = std::mem::take(&mut rest).split_at_mut(len);
            rest = tail;
            // SAFETY: in bounds (caller); the model is concurrent: only atomic accesses.
            racy::load(lanes, unsafe { p.atomics(at, len) }, row);
            *copy = row;
        }
        copies
    }

    /// Writes back the copies of `rows` that [`SharedModel::rows_mut`] made ([`racy::store`];
    /// nothing to do in place).
    ///
    /// # Safety
    /// As [`SharedModel::rows_mut`], with the same `rows`.
    #[inline(always)]
    pub(super) unsafe fn store<L: Lanes, const N: usize>(
        &self,
        lanes: L,
        rows: [(Ptr<f32>, usize, usize); N],
        buffer: &RowBuffer,
    ) {
        if !self.concurrent {
            return;
        }
        let mut copy = &buffer.values[..];
        for (p, at, len) in rows {
            let (values, tail) = copy.split_at(len);
            copy = tail;
            // SAFETY: in bounds (caller); the model is concurrent: only atomic accesses.
            racy::store(lanes, values, unsafe { p.atomics(at, len) });
        }
    }
}

/// Phase 1's weights ([`SharedModel::scorer`]).
pub(super) enum Scorer<'a> {
    /// The whole model, read in place (the deterministic schedule: nothing writes it in phase 1).
    InPlace(Weights<'a>),
    /// A concurrent model, of which each row's weights are copied before it is scored, and the
    /// bias as the batch started.
    Copied { model: SharedModel, bias: f64 },
}

impl Scorer<'_> {
    /// ŷ of the row of `columns` and `values`, as [`Weights::score_row_as`]: on the model in place,
    /// or on a copy of the row's weights in `buffer` (the same values in the same order: the
    /// same arithmetic).
    #[inline(always)]
    pub(super) fn score_row_as<F: Factors, L: Lanes, I: CsrIndex, T: Feature>(
        &self,
        factors: F,
        lanes: L,
        columns: &[I],
        values: &[T],
        s: &mut [f64],
        buffer: &mut RowBuffer,
    ) -> f64 {
        let (model, bias) = match self {
            Scorer::InPlace(weights) => return weights.score_row_as(factors, lanes, columns, values, s),
            Scorer::Copied { model, bias } => (model, *bias),
        };
        let (k, n) = (factors.k(), columns.len());
        if buffer.ordinals.len() < n {
            buffer.ordinals.extend(buffer.ordinals.len() as i64..n as i64);
        }
        let copy = room(&mut buffer.values, n * (1 + k));
        let (linear, rest) = copy.split_at_mut(n);
        for ((&column, w), v) in columns.iter().zip(linear).zip(rest.chunks_exact_mut(k)) {
            // Columns were validated against d when the view was built; the model is concurrent:
            // only atomic accesses.
            let i = column.to_u64().unwrap_or(0) as usize;
            // SAFETY: in bounds (the view's columns), atomic (module documentation).
            let (shared_w, shared_v) = unsafe { (model.linear.atomics(i, 1), model.factors.atomics(i * k, k)) };
            racy::load(lanes, shared_w, std::slice::from_mut(w));
            racy::load(lanes, shared_v, v);
        }
        let (linear, factors_copy) = copy.split_at(n);
        let weights = Weights {
            bias,
            linear,
            factors: factors_copy,
            k,
        };
        weights.score_row_as(factors, lanes, &buffer.ordinals[..n], values, s)
    }
}

/// A thread's copies of the rows it trains on a [`SharedModel::concurrent`] model (they stay in
/// L1), never shrunk: one row's weights in phase 1, one feature's rows in phase 2.
#[derive(Default)]
pub(super) struct RowBuffer {
    values: Vec<f32>,
    /// `0, 1, 2, …`: the columns of a row's copy.
    ordinals: Vec<i64>,
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
