//! The exact score that defines the ranking ([`exact_score`]), the bounded heap that keeps a
//! query's best candidates ([`Best`]) and the exhaustive scan ([`score_block`]): the reference
//! that the first pass of `scan` must match, and its fallback for inputs it cannot bound.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use crate::csr::{CsrIndex, CsrView};
use crate::error::{Error, Result};

/// Queries scored by one parallel task of the exhaustive scan.
pub(super) const QUERY_BLOCK: usize = 32;
/// Items per tile of the exhaustive scan (with `dim = 64`, 64 KiB of f32: an L2-sized working set).
const ITEM_TILE: usize = 256;
/// Rows of vectors with one offset each: `offsets[r] + ⟨vectors[r], ·⟩`.
#[derive(Clone, Copy)]
pub struct Side<'a> {
    pub(super) vectors: &'a [f32],
    pub(super) offsets: &'a [f32],
    pub(super) dim: usize,
}

impl<'a> Side<'a> {
    /// Checks that `vectors` holds `offsets.len() × dim` values.
    pub fn new(vectors: &'a [f32], offsets: &'a [f32], dim: usize) -> Result<Self> {
        if offsets.len().checked_mul(dim) != Some(vectors.len()) {
            return Err(Error::invalid(format!(
                "{} vectors of dimension {dim} need {} values, got {}",
                offsets.len(),
                offsets.len().saturating_mul(dim),
                vectors.len()
            )));
        }
        Ok(Side { vectors, offsets, dim })
    }

    pub(super) fn len(&self) -> usize {
        self.offsets.len()
    }

    #[inline]
    pub(super) fn row(&self, r: usize) -> &'a [f32] {
        &self.vectors[r * self.dim..(r + 1) * self.dim]
    }
}

/// ⟨a, b⟩ in eight independent lanes, so that the compiler can vectorise it.
#[inline]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0f32; 8];
    let (a8, b8) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = a8.remainder().iter().zip(b8.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in a8.zip(b8) {
        for lane in 0..8 {
            lanes[lane] += x[lane] * y[lane];
        }
    }
    lanes.iter().sum::<f32>() + tail
}

/// The score that defines the ranking, computed the same way by every path: the float32 sum of
/// both offsets, plus [`dot`].
#[inline]
pub(super) fn exact_score(queries: &Side, q: usize, items: &Side, i: usize) -> f32 {
    queries.offsets[q] + items.offsets[i] + dot(queries.row(q), items.row(i))
}

/// A candidate in a bounded heap; the heap's top is the worst kept one.
#[derive(Clone, Copy)]
pub(super) struct Scored {
    pub(super) score: f32,
    pub(super) item: u32,
}

impl Scored {
    /// Better: higher score, then lower item index.
    pub(super) fn better(&self, other: &Scored) -> Ordering {
        self.score.total_cmp(&other.score).then(other.item.cmp(&self.item))
    }
}

impl PartialEq for Scored {
    fn eq(&self, other: &Self) -> bool {
        self.better(other) == Ordering::Equal
    }
}
impl Eq for Scored {}
impl PartialOrd for Scored {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Scored {
    /// Reversed, so that `BinaryHeap` (a max-heap) keeps the worst kept candidate on top.
    fn cmp(&self, other: &Self) -> Ordering {
        other.better(self)
    }
}

/// The best `k` of the candidates offered, in the order [`Scored::better`] defines.
pub(super) struct Best {
    k: usize,
    heap: BinaryHeap<Scored>,
}

impl Best {
    pub(super) fn new(k: usize) -> Self {
        Best {
            k,
            heap: BinaryHeap::with_capacity(k + 1),
        }
    }

    /// Whether `candidate` would be kept (the caller may then skip further checks).
    #[inline]
    pub(super) fn admits(&self, candidate: &Scored) -> bool {
        self.heap.len() < self.k || self.heap.peek().is_some_and(|worst| candidate.better(worst).is_gt())
    }

    #[inline]
    pub(super) fn push(&mut self, candidate: Scored) {
        self.heap.push(candidate);
        if self.heap.len() > self.k {
            self.heap.pop();
        }
    }

    /// Writes the kept candidates best first into the first slots of `items` and `scores` (the
    /// rest keep their padding).
    pub(super) fn write(self, items: &mut [i64], scores: &mut [f32]) {
        // `into_sorted_vec` is ascending by `Ord`, i.e. best first.
        for ((item, score), scored) in items.iter_mut().zip(scores.iter_mut()).zip(self.heap.into_sorted_vec()) {
            *item = i64::from(scored.item);
            *score = scored.score;
        }
    }
}

/// Row `q` of `exclude` as sorted item indices.
pub(super) fn excluded_items<I: CsrIndex>(exclude: Option<&CsrView<I>>, q: usize) -> Vec<u64> {
    let mut row: Vec<u64> = exclude
        .map(|e| e.row_indices(q).iter().filter_map(|c| c.to_u64()).collect())
        .unwrap_or_default();
    row.sort_unstable();
    row
}

/// Scores queries `range` against every item, keeping each query's best `k`.
pub(super) fn score_block<I: CsrIndex>(
    queries: &Side,
    items: &Side,
    k: usize,
    exclude: Option<&CsrView<I>>,
    range: std::ops::Range<usize>,
    out_items: &mut [i64],
    out_scores: &mut [f32],
) {
    let mut heaps: Vec<Best> = range.clone().map(|_| Best::new(k)).collect();
    let excluded: Vec<Vec<u64>> = range.clone().map(|q| excluded_items(exclude, q)).collect();
    for tile_start in (0..items.len()).step_by(ITEM_TILE) {
        let tile = tile_start..(tile_start + ITEM_TILE).min(items.len());
        for (slot, q) in range.clone().enumerate() {
            let heap = &mut heaps[slot];
            for i in tile.clone() {
                let candidate = Scored {
                    score: exact_score(queries, q, items, i),
                    item: i as u32,
                };
                if heap.admits(&candidate) && excluded[slot].binary_search(&(i as u64)).is_err() {
                    heap.push(candidate);
                }
            }
        }
    }
    for (slot, heap) in heaps.into_iter().enumerate() {
        heap.write(
            &mut out_items[slot * k..(slot + 1) * k],
            &mut out_scores[slot * k..(slot + 1) * k],
        );
    }
}
