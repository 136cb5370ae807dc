//! Copies of a row of the shared model to and from a thread's own buffer while other threads read
//! and write that row (the concurrent schedule, `super::shared`): eight or four `f32` a move.
//!
//! # Why inline assembly
//! A data race on plain memory is undefined behaviour in Rust, so every value of the concurrent
//! model is an [`AtomicU32`], and the portable copy is one relaxed atomic load or store per value.
//! On x86 each of those is a plain 4-byte `mov`, but the compiler never merges atomic accesses, so
//! a row of 64 factors took 64 moves each way: the copies cost more instructions than the update
//! they surround (Adam, k = 64: 2x one thread's instructions per sample). A 32-byte `vmovups`
//! (16 bytes: `movups`) moves eight (four) values at once, and is what a relaxed load or store of
//! each of them does on x86: each 4-byte aligned value inside it is read or written whole (the
//! memory system moves whole cache lines; an aligned `f32` never spans two), with no order promised
//! among them, which relaxed accesses do not promise either.
//!
//! The compiler cannot emit such a move for atomics, so it is written as an `asm!` block. To the
//! compiler that block is opaque, like a call into code it cannot see: it assumes the block reads
//! (or writes) the memory behind its pointer, keeps it in order with its own accesses there, and
//! draws no conclusion from the values it gets, so the race is not undefined behaviour (the
//! technique of the `atomic-maybe-uninit` crate). What the block does is expressible in Rust as
//! eight or four relaxed atomic accesses, the fallback below, and the values it returns are bits (any bit
//! pattern is an `f32`), so even a torn value could not make the program unsound, only a weight
//! wrong.
//!
//! Miri cannot run assembly: under miri, and off x86-64, the copies are the portable loop, which
//! miri checks. Where the trainer runs AVX2 lanes ([`Lanes::VEX`]) the moves are VEX-encoded,
//! 32 bytes wide (a legacy SSE instruction among AVX code can cost a state transition on Intel
//! CPUs); elsewhere they are SSE's 16 bytes, which every x86-64 CPU has.

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
    let (from, into) = if L::VEX {
        // SAFETY: a value of `L` proves AVX (`Lanes::VEX`).
        unsafe { x86::load_avx(from, into) }
    } else {
        x86::load_sse(from, into)
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
    let (from, into) = if L::VEX {
        // SAFETY: a value of `L` proves AVX (`Lanes::VEX`).
        unsafe { x86::store_avx(from, into) }
    } else {
        x86::store_sse(from, into)
    };
    for (a, &value) in into.iter().zip(from) {
        a.store(value.to_bits(), Ordering::Relaxed);
    }
}

/// The wide moves, in assembly (module documentation): each function copies the whole groups of
/// its width from the start of equally long slices and returns the rest of both. The private side
/// of each copy is a plain intrinsic load or store of the same width, so that the next read of a
/// loaded copy is forwarded from the store that wrote it.
#[cfg(all(target_arch = "x86_64", not(miri)))]
mod x86 {
    use std::arch::asm;
    use std::arch::x86_64::*;
    use std::sync::atomic::AtomicU32;

    // Every `asm!` below moves 16 or 32 bytes between a register and the atomics its slice holds
    // (`chunks_exact`), which need no alignment for `movups`; a shared reference may write them
    // (`UnsafeCell`); the race is sound (module documentation). `readonly` and `pure` on a load:
    // it writes no memory and has no other effect.

    /// [`super::load`] in legacy SSE moves, 4 values each (SSE is part of x86-64).
    #[inline(always)]
    pub(super) fn load_sse<'a, 'b>(from: &'a [AtomicU32], into: &'b mut [f32]) -> (&'a [AtomicU32], &'b mut [f32]) {
        let whole = from.len() - from.len() % 4;
        for (four, out) in from[..whole].chunks_exact(4).zip(into[..whole].chunks_exact_mut(4)) {
            let value: __m128;
            // SAFETY: see above.
            unsafe {
                asm!("movups {value}, xmmword ptr [{four}]", four = in(reg) four.as_ptr(), value = lateout(xmm_reg) value,
                    options(nostack, preserves_flags, readonly, pure));
                _mm_storeu_ps(out.as_mut_ptr(), value);
            }
        }
        (&from[whole..], &mut into[whole..])
    }

    /// [`super::store`] in legacy SSE moves, 4 values each.
    #[inline(always)]
    pub(super) fn store_sse<'a, 'b>(from: &'a [f32], into: &'b [AtomicU32]) -> (&'a [f32], &'b [AtomicU32]) {
        let whole = from.len() - from.len() % 4;
        for (four, out) in from[..whole].chunks_exact(4).zip(into[..whole].chunks_exact(4)) {
            // SAFETY: see above.
            unsafe {
                let value = _mm_loadu_ps(four.as_ptr());
                asm!("movups xmmword ptr [{out}], {value}", out = in(reg) out.as_ptr(), value = in(xmm_reg) value,
                    options(nostack, preserves_flags));
            }
        }
        (&from[whole..], &into[whole..])
    }

    /// [`super::load`] in VEX moves: 8 values each, then 4.
    ///
    /// # Safety
    /// The CPU has AVX.
    #[target_feature(enable = "avx")]
    #[inline]
    pub(super) unsafe fn load_avx<'a, 'b>(
        from: &'a [AtomicU32],
        into: &'b mut [f32],
    ) -> (&'a [AtomicU32], &'b mut [f32]) {
        let eights = from.len() - from.len() % 8;
        for (eight, out) in from[..eights].chunks_exact(8).zip(into[..eights].chunks_exact_mut(8)) {
            let value: __m256;
            // SAFETY: see above; AVX (caller).
            unsafe {
                asm!("vmovups {value}, ymmword ptr [{eight}]", eight = in(reg) eight.as_ptr(), value = lateout(ymm_reg) value,
                    options(nostack, preserves_flags, readonly, pure));
                _mm256_storeu_ps(out.as_mut_ptr(), value);
            }
        }
        let whole = from.len() - from.len() % 4;
        for (four, out) in from[eights..whole]
            .chunks_exact(4)
            .zip(into[eights..whole].chunks_exact_mut(4))
        {
            let value: __m128;
            // SAFETY: see above; AVX (caller).
            unsafe {
                asm!("vmovups {value}, xmmword ptr [{four}]", four = in(reg) four.as_ptr(), value = lateout(xmm_reg) value,
                    options(nostack, preserves_flags, readonly, pure));
                _mm_storeu_ps(out.as_mut_ptr(), value);
            }
        }
        (&from[whole..], &mut into[whole..])
    }

    /// [`super::store`] in VEX moves: 8 values each, then 4.
    ///
    /// # Safety
    /// The CPU has AVX.
    #[target_feature(enable = "avx")]
    #[inline]
    pub(super) unsafe fn store_avx<'a, 'b>(from: &'a [f32], into: &'b [AtomicU32]) -> (&'a [f32], &'b [AtomicU32]) {
        let eights = from.len() - from.len() % 8;
        for (eight, out) in from[..eights].chunks_exact(8).zip(into[..eights].chunks_exact(8)) {
            // SAFETY: see above; AVX (caller).
            unsafe {
                let value = _mm256_loadu_ps(eight.as_ptr());
                asm!("vmovups ymmword ptr [{out}], {value}", out = in(reg) out.as_ptr(), value = in(ymm_reg) value,
                    options(nostack, preserves_flags));
            }
        }
        let whole = from.len() - from.len() % 4;
        for (four, out) in from[eights..whole]
            .chunks_exact(4)
            .zip(into[eights..whole].chunks_exact(4))
        {
            // SAFETY: see above; AVX (caller).
            unsafe {
                let value = _mm_loadu_ps(four.as_ptr());
                asm!("vmovups xmmword ptr [{out}], {value}", out = in(reg) out.as_ptr(), value = in(xmm_reg) value,
                    options(nostack, preserves_flags));
            }
        }
        (&from[whole..], &into[whole..])
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
        for (len, skip) in (0..=19).flat_map(|len| (0..4).map(move |skip| (len, skip))) {
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
