//! The first pass's register-blocked kernel: approximate scores of [`MR`] queries against one
//! panel of [`NR`] items, and which of them reach each query's threshold.
//!
//! Two implementations compute the same integer products and the float32 epilogue the bound of
//! [`super::quantized`] covers: [`Portable`] (plain Rust, any target) and, on x86-64 CPUs that
//! have them, AVX2 + FMA (`vpmaddwd`: 16 int16 multiply-adds per instruction).

/// Queries per register block.
pub(super) const MR: usize = 6;
/// Items per panel (two AVX2 registers of 8 lanes).
pub(super) const NR: usize = 16;

/// One register block of queries: codes (`n_pairs × MR` joined pairs, see
/// [`super::quantized::Queries`]), scales, offsets and thresholds.
pub(super) struct QueryBlock<'a> {
    pub pairs: &'a [i32],
    pub scales: &'a [f32; MR],
    pub offsets: &'a [f32; MR],
    pub thresholds: &'a [f32; MR],
}

/// One panel of items: codes (`n_pairs × 2NR`, interleaved), scales and offsets.
pub(super) struct Panel<'a> {
    pub codes: &'a [i16],
    pub scales: &'a [f32; NR],
    pub offsets: &'a [f32; NR],
}

/// Approximate scores of a block against a panel; bit `j` of `mask[r]` is set when score
/// `(r, j)` is at least `thresholds[r]` (never for NaN). Rows whose mask is 0 may hold anything.
pub(super) struct Hits {
    pub scores: [[f32; NR]; MR],
    pub mask: [u32; MR],
    /// The OR of `mask`: zero when nothing passed (the common case, tested first).
    pub any: u32,
}

/// A kernel: `score` computes [`Hits`] (inlined into the scan loop).
pub(super) trait MicroKernel: Copy {
    fn score(self, block: &QueryBlock, panel: &Panel) -> Hits;
}

/// Plain Rust, vectorised by the compiler where it can.
#[derive(Clone, Copy)]
pub(super) struct Portable;

impl MicroKernel for Portable {
    #[inline(always)]
    fn score(self, block: &QueryBlock, panel: &Panel) -> Hits {
        let mut acc = [[0i32; NR]; MR];
        for (a, b) in block.pairs.chunks_exact(MR).zip(panel.codes.chunks_exact(2 * NR)) {
            for (acc_r, &joined) in acc.iter_mut().zip(a) {
                // The low and high int16 of the joined pair (truncation, arithmetic shift).
                let (lo, hi) = (i32::from(joined as i16), joined >> 16);
                for (acc_rj, codes) in acc_r.iter_mut().zip(b.chunks_exact(2)) {
                    // |codes| ≤ qmax: no overflow (see `quantized::qmax`).
                    *acc_rj += lo * i32::from(codes[0]) + hi * i32::from(codes[1]);
                }
            }
        }
        let mut hits = Hits {
            scores: [[0.0; NR]; MR],
            mask: [0; MR],
            any: 0,
        };
        for (r, acc_r) in acc.iter().enumerate() {
            for (j, &dot) in acc_r.iter().enumerate() {
                let x = dot as f32 * (block.scales[r] * panel.scales[j]) + (block.offsets[r] + panel.offsets[j]);
                hits.scores[r][j] = x;
                hits.mask[r] |= u32::from(x >= block.thresholds[r]) << j;
            }
            hits.any |= hits.mask[r];
        }
        hits
    }
}
