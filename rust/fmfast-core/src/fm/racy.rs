//! Copies of a row of the shared model to and from a thread's own buffer while other threads read
//! and write that row (the concurrent schedule, `super::shared`): four `f32` a move.
//!
//! # Why inline assembly
//! A data race on plain memory is undefined behaviour in Rust, so every value of the concurrent
//! model is an [`AtomicU32`], and the portable copy is one relaxed atomic load or store per value.
//! On x86 each of those is a plain 4-byte `mov`, but the compiler never merges atomic accesses, so
//! a row of 64 factors took 64 moves each way: the copies cost more instructions than the update
//! they surround (Adam, k = 64: 2x one thread's instructions per sample). A 16-byte `movups`
//! moves four values at once, and is what a relaxed load or store of each of them does on x86:
//! each 4-byte aligned value inside it is read or written whole (the memory system moves whole
//! cache lines; an aligned `f32` never spans two), with no order promised among them, which
//! relaxed accesses do not promise either.
//!
//! The compiler cannot emit such a move for atomics, so it is written as an `asm!` block. To the
//! compiler that block is opaque, like a call into code it cannot see: it assumes the block reads
//! (or writes) the memory behind its pointer, keeps it in order with its own accesses there, and
//! draws no conclusion from the values it gets, so the race is not undefined behaviour (the
//! technique of the `atomic-maybe-uninit` crate). What the block does is expressible in Rust as
//! four relaxed atomic accesses, the fallback below, and the values it returns are bits (any bit
//! pattern is an `f32`), so even a torn value could not make the program unsound, only a weight
//! wrong.
//!
//! Miri cannot run assembly: under miri, and off x86-64, the copies are the portable loop, which
//! miri checks. The moves are VEX-encoded where the trainer runs AVX2 lanes ([`Lanes::VEX`]): a
//! legacy SSE instruction among AVX code can cost a state transition on Intel CPUs.

use std::sync::atomic::{AtomicU32, Ordering};

use super::lanes::Lanes;

/// Copies `from` (values other threads may write meanwhile) into `into` (same length): each value
/// as it is at some moment of the copy. `lanes`: the instruction set the caller runs (its proof).
#[inline(always)]
pub(super) fn load<L: Lanes>(lanes: L, from: &[AtomicU32], into: &mut [f32]) {
    let _ = lanes;
    let len = from.len().min(into.len());
    let (from, into) = (&from[..len], &mut into[..len]);
    #[cfg(all(target_arch = "x86_64", not(miri)))]
    let (from, into) = {
        use std::arch::x86_64::_mm_storeu_ps;
        let whole = len - len % 4;
        for (four, out) in from[..whole].chunks_exact(4).zip(into[..whole].chunks_exact_mut(4)) {
            // SAFETY: `four` is 4 atomics, 16 readable bytes (`movups` needs no alignment); the
            // racing load is sound (module documentation); VEX only where a value of `L` proves
            // AVX (`Lanes::VEX`). `out` is 4 `f32`s, 16 writable bytes, borrowed mutably here
            // alone; SSE is part of x86-64.
            unsafe { _mm_storeu_ps(out.as_mut_ptr(), x86::load4(four.as_ptr(), L::VEX)) };
        }
        (&from[whole..], &mut into[whole..])
    };
    for (value, a) in into.iter_mut().zip(from) {
        *value = f32::from_bits(a.load(Ordering::Relaxed));
    }
}

/// Writes `from` into `into` (same length, values other threads may read or write meanwhile):
/// each value whole. `lanes`: as for [`load`].
#[inline(always)]
pub(super) fn store<L: Lanes>(lanes: L, from: &[f32], into: &[AtomicU32]) {
    let _ = lanes;
    let len = from.len().min(into.len());
    let (from, into) = (&from[..len], &into[..len]);
    #[cfg(all(target_arch = "x86_64", not(miri)))]
    let (from, into) = {
        use std::arch::x86_64::_mm_loadu_ps;
        let whole = len - len % 4;
        for (four, out) in from[..whole].chunks_exact(4).zip(into[..whole].chunks_exact(4)) {
            // SAFETY: `four` is 4 `f32`s, 16 readable bytes (an unaligned load needs no
            // alignment); SSE is part of x86-64. `out` is 4 atomics, 16 bytes that their
            // `UnsafeCell` lets a shared reference write; the racing store is sound (module
            // documentation); VEX only where a value of `L` proves AVX (`Lanes::VEX`).
            unsafe { x86::store4(out.as_ptr(), _mm_loadu_ps(four.as_ptr()), L::VEX) };
        }
        (&from[whole..], &into[whole..])
    };
    for (a, &value) in into.iter().zip(from) {
        a.store(value.to_bits(), Ordering::Relaxed);
    }
}

/// The 16-byte moves, in assembly (module documentation).
#[cfg(all(target_arch = "x86_64", not(miri)))]
mod x86 {
    use std::arch::asm;
    use std::arch::x86_64::__m128;
    use std::sync::atomic::AtomicU32;

    /// The four values at `from`, in one 16-byte load (VEX-encoded if `vex`, a constant where
    /// inlined).
    ///
    /// # Safety
    /// `from` points to 4 readable atomics; with `vex`, the CPU has AVX.
    #[inline(always)]
    pub(super) unsafe fn load4(from: *const AtomicU32, vex: bool) -> __m128 {
        let four: __m128;
        // SAFETY: 16 readable bytes at `from` (caller), no alignment needed; AVX where `vex`
        // (caller). `readonly`: the block writes no memory; `pure`: it has no other effect.
        unsafe {
            if vex {
                asm!("vmovups {four}, xmmword ptr [{from}]", from = in(reg) from, four = lateout(xmm_reg) four,
                    options(nostack, preserves_flags, readonly, pure));
            } else {
                asm!("movups {four}, xmmword ptr [{from}]", from = in(reg) from, four = lateout(xmm_reg) four,
                    options(nostack, preserves_flags, readonly, pure));
            }
        }
        four
    }

    /// Stores `four` at `into`, in one 16-byte store (VEX-encoded if `vex`, a constant where
    /// inlined).
    ///
    /// # Safety
    /// `into` points to 4 atomics (which a shared reference may write); with `vex`, the CPU has
    /// AVX.
    #[inline(always)]
    pub(super) unsafe fn store4(into: *const AtomicU32, four: __m128, vex: bool) {
        // SAFETY: 16 writable bytes at `into` (caller), no alignment needed; AVX where `vex`
        // (caller).
        unsafe {
            if vex {
                asm!("vmovups xmmword ptr [{into}], {four}", into = in(reg) into, four = in(xmm_reg) four,
                    options(nostack, preserves_flags));
            } else {
                asm!("movups xmmword ptr [{into}], {four}", into = in(reg) into, four = in(xmm_reg) four,
                    options(nostack, preserves_flags));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "x86_64")]
    use crate::fm::lanes::Avx2;
    use crate::fm::lanes::Scalar;

    fn copies_every_value_of_every_length(lanes: impl Lanes) {
        // From every offset of a 16-byte line: the moves need no alignment.
        for (len, skip) in (0..=11).flat_map(|len| (0..4).map(move |skip| (len, skip))) {
            let from: Vec<AtomicU32> = (0..skip + len)
                .map(|i| AtomicU32::new((i as f32 + 0.5).to_bits()))
                .collect();
            let mut into = vec![f32::NAN; len + 1];
            load(lanes, &from[skip..], &mut into[..len]);
            let expected: Vec<f32> = (skip..skip + len).map(|i| i as f32 + 0.5).collect();
            assert_eq!(into[..len], expected[..], "length {len} from {skip}");
            assert!(into[len].is_nan(), "loaded past the end at length {len}");
            let back: Vec<AtomicU32> = (0..skip + len + 1)
                .map(|_| AtomicU32::new(f32::NAN.to_bits()))
                .collect();
            store(lanes, &expected, &back[skip..skip + len]);
            let stored: Vec<f32> = back.iter().map(|a| f32::from_bits(a.load(Ordering::Relaxed))).collect();
            assert_eq!(stored[skip..skip + len], expected[..], "length {len} from {skip}");
            assert!(stored[..skip].iter().all(|v| v.is_nan()), "stored before the start");
            assert!(stored[skip + len].is_nan(), "stored past the end at length {len}");
        }
    }

    #[test]
    fn copies_every_value_of_every_length_in_sse() {
        copies_every_value_of_every_length(Scalar);
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn copies_every_value_of_every_length_in_vex() {
        // Without AVX2 the trainer runs `Scalar` alone: nothing more to check.
        if let Some(token) = Avx2::detect() {
            copies_every_value_of_every_length(token);
        }
    }
}
