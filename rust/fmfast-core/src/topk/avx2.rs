//! The AVX2 + FMA kernel (x86-64 only, chosen at run time).

use std::arch::x86_64::*;

use super::kernel::{Hits, MicroKernel, Panel, QueryBlock, MR, NR};
pub(super) use crate::simd::Avx2;

impl MicroKernel for Avx2 {
    #[inline(always)]
    fn score(self, block: &QueryBlock, panel: &Panel) -> Hits {
        // SAFETY: `self` exists only where `detect` found AVX2 and FMA.
        unsafe { score(block, panel) }
    }
}

/// Eight-lane groups per panel.
const GROUPS: usize = NR / 8;

/// # Safety
/// The CPU must support AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn score(block: &QueryBlock, panel: &Panel) -> Hits {
    let mut acc = [[_mm256_setzero_si256(); GROUPS]; MR];
    for (a, b) in block.pairs.chunks_exact(MR).zip(panel.codes.chunks_exact(2 * NR)) {
        let mut items = [_mm256_setzero_si256(); GROUPS];
        for (g, group) in items.iter_mut().enumerate() {
            // SAFETY: `b` holds 2·NR int16, read as NR/8 unaligned groups of 16.
            *group = unsafe { _mm256_loadu_si256(b.as_ptr().add(16 * g).cast()) };
        }
        for (acc_r, &joined) in acc.iter_mut().zip(a) {
            let x = _mm256_set1_epi32(joined);
            for (acc_rg, &group) in acc_r.iter_mut().zip(&items) {
                // |codes| ≤ qmax: neither the pair sums nor the accumulation overflow.
                *acc_rg = _mm256_add_epi32(*acc_rg, _mm256_madd_epi16(x, group));
            }
        }
    }
    let (mut scale, mut offset) = ([_mm256_setzero_ps(); GROUPS], [_mm256_setzero_ps(); GROUPS]);
    for g in 0..GROUPS {
        // SAFETY: both arrays hold NR floats, read as NR/8 groups of 8.
        unsafe {
            scale[g] = _mm256_loadu_ps(panel.scales.as_ptr().add(8 * g));
            offset[g] = _mm256_loadu_ps(panel.offsets.as_ptr().add(8 * g));
        }
    }
    let mut hits = Hits {
        scores: [[0.0; NR]; MR],
        mask: [0; MR],
        any: 0,
    };
    for (r, acc_r) in acc.iter().enumerate() {
        let (us, uo, t) = (
            _mm256_set1_ps(block.scales[r]),
            _mm256_set1_ps(block.offsets[r]),
            _mm256_set1_ps(block.thresholds[r]),
        );
        let mut x = [_mm256_setzero_ps(); GROUPS];
        let mut mask = 0u32;
        for g in 0..GROUPS {
            // fl(I)·fl(a_u a_i) + fl(c_u + c_i) with one rounding for the multiply-add.
            x[g] = _mm256_fmadd_ps(
                _mm256_cvtepi32_ps(acc_r[g]),
                _mm256_mul_ps(us, scale[g]),
                _mm256_add_ps(uo, offset[g]),
            );
            // Ordered comparison: false for NaN (padding items, unbounded queries).
            mask |= (_mm256_movemask_ps(_mm256_cmp_ps::<_CMP_GE_OQ>(x[g], t)) as u32) << (8 * g);
        }
        hits.mask[r] = mask;
        hits.any |= mask;
        if mask != 0 {
            for (g, &xg) in x.iter().enumerate() {
                // SAFETY: each score row holds NR floats, written as NR/8 groups of 8.
                unsafe { _mm256_storeu_ps(hits.scores[r].as_mut_ptr().add(8 * g), xg) };
            }
        }
    }
    hits
}
