//! The fast path of [`super::top_k`]: an approximate first pass over every item, then exact
//! rescoring of the few items that can still make a query's top `k`.
//!
//! Why nothing is missed. For a query, let `x` be an item's approximate score, `y` its exact one,
//! and `E` the query's band: `|x − y| ≤ E` for every item ([`super::quantized`]). Among the
//! eligible (not excluded) items, let `T` be the `k`-th best `y` and `θ` the `k`-th largest `x`.
//! The `k` items of largest `x` all have `y ≥ θ − E`, so `T ≥ θ − E`. Every item of the exact top
//! `k`, ties included, has `y ≥ T`, hence `x ≥ T − E ≥ θ − 2E`. During the scan the running
//! `θ` only grows towards its final value, so an item is dropped only when `x < θ_running − 2E ≤
//! θ − 2E`: never one of the top `k`. The survivors are then scored exactly and ranked exactly as
//! the exhaustive scan ranks (score by `total_cmp`, then lower item index): the same result.
//! With fewer than `k` eligible items, `θ = −∞` and every eligible item is rescored.
//!
//! Thresholds are computed in f64 and rounded down to float32 ([`round_down`]), so that rounding
//! never lifts one above `θ − 2E`.

#[cfg(target_arch = "x86_64")]
use super::avx2::Avx2;
use super::exact::{exact_score, excluded_items, score_block, Best, Scored, Side};
use super::kernel::{MicroKernel, Panel, Portable, QueryBlock, MR, NR};
use super::quantized::{round_down, Items, Queries};
use crate::csr::{CsrIndex, CsrView};

/// Queries per parallel task: with `dim = 64`, 15 KiB of codes that stay in L1 with one panel
/// (2 KiB) while every register block goes over it.
pub(super) const QUERY_BLOCK: usize = 20 * MR;

/// Which kernel the first pass runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kernel {
    Portable,
    #[cfg(target_arch = "x86_64")]
    Avx2(Avx2),
}

impl Kernel {
    /// The fastest kernel this CPU supports.
    pub fn detect() -> Self {
        Self::avx2().unwrap_or(Kernel::Portable)
    }

    /// Every kernel this CPU supports (for tests).
    #[cfg(test)]
    pub fn available() -> Vec<Self> {
        [Some(Kernel::Portable), Self::avx2()].into_iter().flatten().collect()
    }

    /// The AVX2 kernel, where the CPU has AVX2 and FMA.
    #[cfg(target_arch = "x86_64")]
    fn avx2() -> Option<Self> {
        Avx2::detect().map(Kernel::Avx2)
    }

    #[cfg(not(target_arch = "x86_64"))]
    fn avx2() -> Option<Self> {
        None
    }
}

/// [`Pass::panels`] compiled with AVX2 and FMA enabled, so that the kernel inlines into its loops.
///
/// # Safety
/// The CPU must support AVX2 and FMA (the token says so).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn panels_avx2(token: Avx2, pass: &mut Pass) {
    pass.panels(token);
}

/// One top-K problem, ready for the first pass.
pub(super) struct Scan<'a, I: CsrIndex> {
    pub queries: &'a Side<'a>,
    pub items: &'a Side<'a>,
    pub packed: &'a Items,
    pub kernel: Kernel,
    pub k: usize,
    pub exclude: Option<&'a CsrView<'a, I>>,
}

impl<I: CsrIndex> Scan<'_, I> {
    /// The best `k` items of queries `range`, written like [`score_block`] writes them.
    pub fn block(&self, range: std::ops::Range<usize>, out_items: &mut [i64], out_scores: &mut [f32]) {
        let k = self.k;
        let quantized = Queries::new(self.queries, range.clone(), self.packed);
        let mut pass = Pass::new(self.packed, &quantized, k, |slot| {
            excluded_items(self.exclude, range.start + slot)
        });
        match self.kernel {
            Kernel::Portable => pass.panels(Portable),
            #[cfg(target_arch = "x86_64")]
            // SAFETY: the token proves that the CPU has AVX2 and FMA.
            Kernel::Avx2(token) => unsafe { panels_avx2(token, &mut pass) },
        }
        for ((slot, q), user) in range.enumerate().zip(pass.users) {
            let (items_out, scores_out) = (
                &mut out_items[slot * k..(slot + 1) * k],
                &mut out_scores[slot * k..(slot + 1) * k],
            );
            let Some(band) = user.band else {
                // A query the first pass cannot bound (non-finite or huge values): scored exactly.
                score_block(
                    self.queries,
                    self.items,
                    k,
                    self.exclude,
                    q..q + 1,
                    items_out,
                    scores_out,
                );
                continue;
            };
            let floor = round_down(f64::from(user.approx.threshold()) - 2.0 * band);
            let mut best = Best::new(k);
            for &(x, item) in &user.candidates {
                if x >= floor {
                    let candidate = Scored {
                        score: exact_score(self.queries, q, self.items, item as usize),
                        item,
                    };
                    if best.admits(&candidate) {
                        best.push(candidate);
                    }
                }
            }
            best.write(items_out, scores_out);
        }
    }
}

/// The `k` largest approximate scores seen so far (values only; a min-heap).
struct Floor {
    k: usize,
    heap: Vec<f32>,
}

impl Floor {
    fn new(k: usize) -> Self {
        Floor {
            k,
            heap: Vec::with_capacity(k.min(1 << 16)),
        }
    }

    /// The `k`-th largest score so far, `−∞` until `k` were seen.
    fn threshold(&self) -> f32 {
        if self.heap.len() < self.k {
            f32::NEG_INFINITY
        } else {
            self.heap.first().copied().unwrap_or(f32::NEG_INFINITY)
        }
    }

    /// Adds a (finite) score.
    fn push(&mut self, x: f32) {
        if self.heap.len() < self.k {
            self.heap.push(x);
            let mut at = self.heap.len() - 1;
            while at > 0 && self.heap[at] < self.heap[(at - 1) / 2] {
                self.heap.swap(at, (at - 1) / 2);
                at = (at - 1) / 2;
            }
            return;
        }
        if self.heap.is_empty() || x <= self.heap[0] {
            return;
        }
        self.heap[0] = x;
        let n = self.heap.len();
        let mut at = 0;
        loop {
            let (left, right) = (2 * at + 1, 2 * at + 2);
            let mut low = at;
            if left < n && self.heap[left] < self.heap[low] {
                low = left;
            }
            if right < n && self.heap[right] < self.heap[low] {
                low = right;
            }
            if low == at {
                break;
            }
            self.heap.swap(at, low);
            at = low;
        }
    }
}

/// One query's state in the first pass.
struct User {
    /// `E`, or `None` when the query is scored exhaustively instead.
    band: Option<f64>,
    approx: Floor,
    /// Items that passed the threshold when they were scanned, with their approximate score.
    candidates: Vec<(f32, u32)>,
    excluded: Vec<u64>,
}

/// The first pass over every panel for one block of queries.
pub(super) struct Pass<'a> {
    packed: &'a Items,
    queries: &'a Queries,
    /// Per register block, each query's current `round_down(θ − 2E)` (`+∞`: never a hit).
    thresholds: Vec<[f32; MR]>,
    users: Vec<User>,
}

impl<'a> Pass<'a> {
    fn new(packed: &'a Items, queries: &'a Queries, k: usize, excluded: impl Fn(usize) -> Vec<u64>) -> Self {
        let mut thresholds = vec![[f32::INFINITY; MR]; queries.scales.len()];
        let users = (queries.bands.iter().enumerate())
            .map(|(slot, &band)| {
                if band.is_some() {
                    thresholds[slot / MR][slot % MR] = f32::NEG_INFINITY;
                }
                User {
                    band,
                    approx: Floor::new(k),
                    candidates: Vec::new(),
                    excluded: if band.is_some() { excluded(slot) } else { Vec::new() },
                }
            })
            .collect();
        Pass {
            packed,
            queries,
            thresholds,
            users,
        }
    }

    /// Scores every register block of queries against every panel (one panel at a time, so that
    /// it stays in L1), collecting candidates.
    #[inline(always)]
    pub fn panels<K: MicroKernel>(&mut self, kernel: K) {
        let n_pairs = self.packed.n_pairs;
        let panel_len = n_pairs * 2 * NR;
        let block_len = n_pairs * MR;
        for panel in 0..self.packed.n_panels() {
            let slots = panel * NR..(panel + 1) * NR;
            let (Some(codes), Ok(scales), Ok(offsets)) = (
                self.packed.codes.get(panel * panel_len..(panel + 1) * panel_len),
                <&[f32; NR]>::try_from(&self.packed.scales[slots.clone()]),
                <&[f32; NR]>::try_from(&self.packed.offsets[slots]),
            ) else {
                continue;
            };
            let items = Panel { codes, scales, offsets };
            for block in 0..self.thresholds.len() {
                let queries = QueryBlock {
                    pairs: &self.queries.pairs[block * block_len..(block + 1) * block_len],
                    scales: &self.queries.scales[block],
                    offsets: &self.queries.offsets[block],
                    thresholds: &self.thresholds[block],
                };
                let hits = kernel.score(&queries, &items);
                if hits.any != 0 {
                    self.take(block, panel, &hits.scores, &hits.mask);
                }
            }
        }
    }

    /// Records the items of `panel` that reached the thresholds of register block `block`.
    #[inline(never)]
    fn take(&mut self, block: usize, panel: usize, scores: &[[f32; NR]; MR], masks: &[u32; MR]) {
        for (r, (&mask, scores)) in masks.iter().zip(scores).enumerate() {
            if mask == 0 {
                continue;
            }
            let Some(user) = self.users.get_mut(block * MR + r) else {
                continue;
            };
            let Some(band) = user.band else { continue };
            let before = user.approx.threshold();
            let mut mask = mask;
            while mask != 0 {
                let j = mask.trailing_zeros() as usize;
                mask &= mask - 1;
                let item = panel * NR + j;
                if item >= self.packed.n_items || user.excluded.binary_search(&(item as u64)).is_ok() {
                    continue;
                }
                user.candidates.push((scores[j], item as u32));
                user.approx.push(scores[j]);
            }
            let theta = user.approx.threshold();
            if theta != before {
                self.thresholds[block][r] = round_down(f64::from(theta) - 2.0 * band);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rows with magnitudes spread over many orders, ties and zeros.
    fn rows(n: usize, dim: usize, seed: u32) -> (Vec<f32>, Vec<f32>) {
        let mut state = seed.wrapping_mul(2_654_435_761) | 1;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state
        };
        let vectors = (0..n * dim)
            .map(|f| {
                let row_scale = 10f32.powi((f / dim) as i32 % 13 - 6);
                let v = (next() % 2001) as f32 / 1000.0 - 1.0;
                if next() % 7 == 0 {
                    (v * 4.0).round()
                } else {
                    v * row_scale
                }
            })
            .collect();
        let offsets = (0..n).map(|_| (next() % 2001) as f32 / 100.0 - 10.0).collect();
        (vectors, offsets)
    }

    /// `|x − y| ≤ E` for every (query, item) pair and every kernel: the bound the proof rests on.
    #[test]
    fn approximate_scores_lie_within_the_band() {
        for dim in [1, 7, 64, 65] {
            let (qv, qo) = rows(2 * MR + 1, dim, 1);
            let (iv, io) = rows(3 * NR + 5, dim, 2);
            let (queries, items) = (Side::new(&qv, &qo, dim).unwrap(), Side::new(&iv, &io, dim).unwrap());
            let Some(packed) = Items::new(&items) else {
                panic!("items must be bounded")
            };
            let quantized = Queries::new(&queries, 0..queries.len(), &packed);
            let thresholds = [f32::NEG_INFINITY; MR];
            let block_len = packed.n_pairs * MR;
            let panel_len = packed.n_pairs * 2 * NR;
            for kernel in Kernel::available() {
                for block in 0..quantized.scales.len() {
                    let query_block = QueryBlock {
                        pairs: &quantized.pairs[block * block_len..(block + 1) * block_len],
                        scales: &quantized.scales[block],
                        offsets: &quantized.offsets[block],
                        thresholds: &thresholds,
                    };
                    for panel in 0..packed.n_panels() {
                        let slots = panel * NR..(panel + 1) * NR;
                        let item_panel = Panel {
                            codes: &packed.codes[panel * panel_len..(panel + 1) * panel_len],
                            scales: (&packed.scales[slots.clone()]).try_into().unwrap(),
                            offsets: (&packed.offsets[slots]).try_into().unwrap(),
                        };
                        let hits = match kernel {
                            Kernel::Portable => Portable.score(&query_block, &item_panel),
                            #[cfg(target_arch = "x86_64")]
                            Kernel::Avx2(token) => token.score(&query_block, &item_panel),
                        };
                        for r in 0..MR {
                            let q = block * MR + r;
                            let Some(Some(band)) = quantized.bands.get(q) else {
                                continue;
                            };
                            for j in 0..NR {
                                let i = panel * NR + j;
                                let hit = hits.mask[r] >> j & 1 == 1;
                                assert_eq!(hit, i < items.len(), "{kernel:?} dim {dim} query {q} item {i}");
                                if hit {
                                    let (x, y) = (hits.scores[r][j], exact_score(&queries, q, &items, i));
                                    let gap = (f64::from(x) - f64::from(y)).abs();
                                    assert!(
                                        gap <= *band,
                                        "{kernel:?} dim {dim} query {q} item {i}: {x} vs {y}, band {band}"
                                    );
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn floor_keeps_the_kth_largest() {
        let mut floor = Floor::new(3);
        assert_eq!(floor.threshold(), f32::NEG_INFINITY);
        for x in [5.0, 1.0, 4.0, 2.0, 9.0, 3.0, 0.5] {
            floor.push(x);
        }
        assert_eq!(floor.threshold(), 4.0);
        let mut none = Floor::new(0);
        none.push(1.0);
        assert_eq!(none.threshold(), f32::NEG_INFINITY);
    }
}
