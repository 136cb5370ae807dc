//! Exact top-K by `offset_u + offset_i + ⟨u, i⟩` for many queries at once, without materialising
//! the score matrix.
//!
//! A Factorization Machine scores a user (or context) `x_u` with an item `x_i` on disjoint feature
//! columns as `c_u + c_i + ⟨s_u, s_i⟩`, where `s = Σ v x` and `c = w·x + ½(‖s‖² − Σ v²x²)` (plus
//! `w0` on one side): per-side sums computed once, then this kernel. Queries are processed in
//! parallel blocks; items in cache-sized tiles, each tile reused by every query of the block.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use rayon::prelude::*;

use crate::csr::{CsrIndex, CsrView};
use crate::error::{Error, Result};
use crate::parallel::Monitor;

/// Queries scored by one parallel task.
const QUERY_BLOCK: usize = 32;
/// Items per tile (with `dim = 64`, 64 KiB of f32: an L2-sized working set).
const ITEM_TILE: usize = 256;
/// Queries between two progress reports.
const REPORT_QUERIES: usize = 1 << 14;

/// Rows of vectors with one offset each: `offsets[r] + ⟨vectors[r], ·⟩`.
#[derive(Clone, Copy)]
pub struct Side<'a> {
    vectors: &'a [f32],
    offsets: &'a [f32],
    dim: usize,
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

    fn len(&self) -> usize {
        self.offsets.len()
    }

    #[inline]
    fn row(&self, r: usize) -> &'a [f32] {
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

/// A candidate in a bounded heap; the heap's top is the worst kept one.
#[derive(Clone, Copy)]
struct Scored {
    score: f32,
    item: u32,
}

impl Scored {
    /// Better: higher score, then lower item index.
    fn better(&self, other: &Scored) -> Ordering {
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

/// The `k` best items of each query: `(items, scores)`, each `n_queries × k`, best first; a
/// query with fewer than `k` eligible items is padded with item `-1` and score `-inf`.
/// `exclude`, when given, is a queries × items CSR matrix of items never to return.
pub fn top_k<I: CsrIndex>(
    queries: &Side,
    items: &Side,
    k: usize,
    exclude: Option<&CsrView<I>>,
    monitor: &dyn Monitor,
) -> Result<(Vec<i64>, Vec<f32>)> {
    if queries.dim != items.dim {
        return Err(Error::invalid(format!(
            "queries have dimension {}, items {}",
            queries.dim, items.dim
        )));
    }
    if u32::try_from(items.len()).is_err() {
        return Err(Error::invalid("more than 2^32 items"));
    }
    if let Some(exclude) = exclude {
        if exclude.n_rows() != queries.len() || exclude.n_cols() != items.len() as u64 {
            return Err(Error::invalid(format!(
                "exclude is {}x{}, expected {}x{} (queries x items)",
                exclude.n_rows(),
                exclude.n_cols(),
                queries.len(),
                items.len()
            )));
        }
    }
    let n = queries.len();
    if k == 0 {
        return Ok((Vec::new(), Vec::new()));
    }
    let mut out_items = vec![-1i64; n * k];
    let mut out_scores = vec![f32::NEG_INFINITY; n * k];
    let mut done = 0;
    for (items_part, scores_part) in out_items
        .chunks_mut(REPORT_QUERIES * k)
        .zip(out_scores.chunks_mut(REPORT_QUERIES * k))
    {
        let first = done;
        items_part
            .par_chunks_mut(QUERY_BLOCK * k)
            .zip(scores_part.par_chunks_mut(QUERY_BLOCK * k))
            .enumerate()
            .for_each(|(block, (block_items, block_scores))| {
                let start = first + block * QUERY_BLOCK;
                let end = (start + QUERY_BLOCK).min(n);
                score_block(queries, items, k, exclude, start..end, block_items, block_scores);
            });
        done += items_part.len() / k;
        monitor.progress(done as u64)?;
    }
    Ok((out_items, out_scores))
}

/// Scores queries `range` against every item, keeping each query's best `k`.
fn score_block<I: CsrIndex>(
    queries: &Side,
    items: &Side,
    k: usize,
    exclude: Option<&CsrView<I>>,
    range: std::ops::Range<usize>,
    out_items: &mut [i64],
    out_scores: &mut [f32],
) {
    let mut heaps: Vec<BinaryHeap<Scored>> = range.clone().map(|_| BinaryHeap::with_capacity(k + 1)).collect();
    let excluded: Vec<Vec<u64>> = range
        .clone()
        .map(|q| {
            let mut row: Vec<u64> = exclude
                .map(|e| e.row_indices(q).iter().filter_map(|c| c.to_u64()).collect())
                .unwrap_or_default();
            row.sort_unstable();
            row
        })
        .collect();
    for tile_start in (0..items.len()).step_by(ITEM_TILE) {
        let tile = tile_start..(tile_start + ITEM_TILE).min(items.len());
        for (slot, q) in range.clone().enumerate() {
            let (query, offset) = (queries.row(q), queries.offsets[q]);
            let heap = &mut heaps[slot];
            for i in tile.clone() {
                let candidate = Scored {
                    score: offset + items.offsets[i] + dot(query, items.row(i)),
                    item: i as u32,
                };
                let admits = heap.len() < k || heap.peek().is_some_and(|worst| candidate.better(worst).is_gt());
                if admits && excluded[slot].binary_search(&(i as u64)).is_err() {
                    heap.push(candidate);
                    if heap.len() > k {
                        heap.pop();
                    }
                }
            }
        }
    }
    for (slot, heap) in heaps.into_iter().enumerate() {
        // `into_sorted_vec` is ascending by `Ord`, i.e. best first.
        for (rank, scored) in heap.into_sorted_vec().into_iter().enumerate() {
            out_items[slot * k + rank] = i64::from(scored.item);
            out_scores[slot * k + rank] = scored.score;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parallel::Unmonitored;

    fn brute(queries: &Side, items: &Side, k: usize, exclude: &[Vec<u64>]) -> Vec<Vec<(i64, f32)>> {
        (0..queries.len())
            .map(|q| {
                let mut all: Vec<(i64, f32)> = (0..items.len())
                    .filter(|i| !exclude[q].contains(&(*i as u64)))
                    .map(|i| {
                        let s = queries.offsets[q] + items.offsets[i] + dot(queries.row(q), items.row(i));
                        (i as i64, s)
                    })
                    .collect();
                all.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
                all.truncate(k);
                all
            })
            .collect()
    }

    #[test]
    fn equals_brute_force_with_exclusions_ties_and_padding() {
        let dim = 11;
        let (n_q, n_i) = (70, 600);
        let value = |seed: usize| (((seed * 2_654_435_761) % 1000) as f32 / 250.0).round() - 2.0;
        let qv: Vec<f32> = (0..n_q * dim).map(value).collect();
        let iv: Vec<f32> = (0..n_i * dim).map(|s| value(s + 7)).collect();
        let qo: Vec<f32> = (0..n_q).map(|s| value(s + 3)).collect();
        let io: Vec<f32> = (0..n_i).map(|s| value(s + 5)).collect();
        let (queries, items) = (Side::new(&qv, &qo, dim).unwrap(), Side::new(&iv, &io, dim).unwrap());
        let exclude: Vec<Vec<u64>> = (0..n_q)
            .map(|q| (0..n_i as u64).filter(|i| (i + q as u64) % 3 == 0).collect())
            .collect();
        let mut indptr = vec![0i64];
        let mut indices = Vec::new();
        for row in &exclude {
            indices.extend(row.iter().rev().map(|&i| i as i64));
            indptr.push(indices.len() as i64);
        }
        let view = CsrView::new(&indptr, &indices, indices.len(), n_i as u64).unwrap();
        for k in [1, 10, 450] {
            let (got_items, got_scores) = top_k(&queries, &items, k, Some(&view), &Unmonitored).unwrap();
            for (q, want) in brute(&queries, &items, k, &exclude).into_iter().enumerate() {
                for rank in 0..k {
                    let got = (got_items[q * k + rank], got_scores[q * k + rank]);
                    assert_eq!(
                        got,
                        want.get(rank).copied().unwrap_or((-1, f32::NEG_INFINITY)),
                        "q {q} rank {rank}"
                    );
                }
            }
        }
    }

    #[test]
    fn mismatched_shapes_are_errors() {
        assert!(Side::new(&[0.0; 5], &[0.0; 2], 2).is_err());
        let (a, b) = (
            Side::new(&[0.0; 4], &[0.0; 2], 2).unwrap(),
            Side::new(&[0.0; 3], &[0.0; 1], 3).unwrap(),
        );
        assert!(top_k::<i32>(&a, &b, 1, None, &Unmonitored).is_err());
    }
}
