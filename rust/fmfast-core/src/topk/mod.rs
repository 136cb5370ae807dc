//! Exact top-K by `offset_u + offset_i + ⟨u, i⟩` for many queries at once, without materialising
//! the score matrix.
//!
//! A Factorization Machine scores a user (or context) `x_u` with an item `x_i` on disjoint feature
//! columns as `c_u + c_i + ⟨s_u, s_i⟩`, where `s = Σ v x` and `c = w·x + ½(‖s‖² − Σ v²x²)` (plus
//! `w0` on one side): per-side sums computed once, then this kernel.
//!
//! The exact score of a pair is `exact::exact_score`; the result is the `k` best pairs by that
//! score (ties: lower item index first), as an exhaustive scan would rank them. Two ways get there:
//!
//! * `scan` (the default): a first pass over every item with int16 inner products (`quantized`,
//!   `kernel`, and `avx2` where the CPU has it) whose error is bounded rigorously keeps only the
//!   items that can still reach a query's `k`-th best exact score, and those few are rescored
//!   exactly;
//! * the exhaustive scan (`exact`), for inputs the first pass cannot bound (non-finite or extreme
//!   values), and as the reference the tests compare the first pass to.
//!
//! Queries are processed in parallel blocks; every query's result depends on its own row only, so
//! the output is the same for every thread count.

use rayon::prelude::*;

use crate::csr::{CsrIndex, CsrView};
use crate::error::{Error, Result};
use crate::parallel::Monitor;

#[cfg(target_arch = "x86_64")]
mod avx2;
mod exact;
mod kernel;
mod quantized;
mod scan;

pub use exact::Side;
use exact::{score_block, QUERY_BLOCK};
use scan::Kernel;

/// Parallel tasks between two progress reports.
const REPORT_TASKS: usize = 128;

/// How [`top_k_with`] finds the best items; results are identical, only the speed differs.
#[derive(Clone, Copy, Debug)]
enum Method {
    /// Every pair scored exactly (the tests' reference).
    #[cfg_attr(not(test), allow(dead_code))]
    Exhaustive,
    /// The quantized first pass with this kernel, then exact rescoring (see [`scan`]).
    Quantized(Kernel),
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
    top_k_with(queries, items, k, exclude, monitor, Method::Quantized(Kernel::detect()))
}

fn top_k_with<I: CsrIndex>(
    queries: &Side,
    items: &Side,
    k: usize,
    exclude: Option<&CsrView<I>>,
    monitor: &dyn Monitor,
    method: Method,
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
    // The first pass needs bounded, finite item vectors; otherwise every pair is scored exactly.
    let first_pass = match method {
        Method::Quantized(kernel) => quantized::Items::new(items).map(|packed| (packed, kernel)),
        Method::Exhaustive => None,
    };
    let block = if first_pass.is_some() {
        scan::QUERY_BLOCK
    } else {
        QUERY_BLOCK
    };
    let mut out_items = vec![-1i64; n * k];
    let mut out_scores = vec![f32::NEG_INFINITY; n * k];
    let mut done = 0;
    for (items_part, scores_part) in out_items
        .chunks_mut(REPORT_TASKS * block * k)
        .zip(out_scores.chunks_mut(REPORT_TASKS * block * k))
    {
        let first = done;
        items_part
            .par_chunks_mut(block * k)
            .zip(scores_part.par_chunks_mut(block * k))
            .enumerate()
            .for_each(|(task, (block_items, block_scores))| {
                // Against many items, REPORT_TASKS blocks take seconds: skip the rest once stopped.
                if monitor.stop_requested() {
                    return;
                }
                let start = first + task * block;
                let range = start..(start + block).min(n);
                match &first_pass {
                    Some((packed, kernel)) => {
                        let scan = scan::Scan {
                            queries,
                            items,
                            packed,
                            kernel: *kernel,
                            k,
                            exclude,
                        };
                        scan.block(range, block_items, block_scores);
                    }
                    None => score_block(queries, items, k, exclude, range, block_items, block_scores),
                }
            });
        if monitor.stop_requested() {
            return Err(Error::Interrupted);
        }
        done += items_part.len() / k;
        monitor.progress(done as u64)?;
    }
    Ok((out_items, out_scores))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::exact::exact_score;
    use super::*;
    use crate::parallel::{with_threads, Unmonitored};

    /// Every pair scored with [`exact_score`], sorted by `total_cmp` then item: the definition.
    fn brute(queries: &Side, items: &Side, k: usize, exclude: &[Vec<u64>]) -> Vec<Vec<(i64, f32)>> {
        (0..queries.len())
            .map(|q| {
                let mut all: Vec<(i64, f32)> = (0..items.len())
                    .filter(|i| !exclude[q].contains(&(*i as u64)))
                    .map(|i| (i as i64, exact_score(queries, q, items, i)))
                    .collect();
                all.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
                all.truncate(k);
                all
            })
            .collect()
    }

    /// The exhaustive scan and the first pass with every kernel this CPU has.
    fn methods() -> Vec<Method> {
        let mut all = vec![Method::Exhaustive];
        all.extend(Kernel::available().into_iter().map(Method::Quantized));
        all
    }

    /// A problem: query and item vectors with offsets, and per-query excluded items.
    #[derive(Clone, Debug)]
    struct Problem {
        dim: usize,
        qv: Vec<f32>,
        qo: Vec<f32>,
        iv: Vec<f32>,
        io: Vec<f32>,
        exclude: Vec<Vec<u64>>,
    }

    impl Problem {
        fn new(dim: usize, qv: Vec<f32>, qo: Vec<f32>, iv: Vec<f32>, io: Vec<f32>) -> Self {
            let exclude = vec![Vec::new(); qo.len()];
            Problem {
                dim,
                qv,
                qo,
                iv,
                io,
                exclude,
            }
        }

        /// Asserts that every strategy returns exactly (bit for bit) the brute-force ranking.
        fn check(&self, k: usize) {
            let queries = Side::new(&self.qv, &self.qo, self.dim).unwrap();
            let items = Side::new(&self.iv, &self.io, self.dim).unwrap();
            let mut indptr = vec![0i64];
            let mut indices = Vec::new();
            for row in &self.exclude {
                indices.extend(row.iter().rev().map(|&i| i as i64));
                indptr.push(indices.len() as i64);
            }
            let view = CsrView::new(&indptr, &indices, indices.len(), items.len() as u64).unwrap();
            let want = brute(&queries, &items, k, &self.exclude);
            for method in methods() {
                let (got_items, got_scores) =
                    top_k_with(&queries, &items, k, Some(&view), &Unmonitored, method).unwrap();
                assert_eq!(got_items.len(), queries.len() * k);
                for (q, want) in want.iter().enumerate() {
                    for rank in 0..k {
                        let (item, score) = want.get(rank).copied().unwrap_or((-1, f32::NEG_INFINITY));
                        let got = (got_items[q * k + rank], got_scores[q * k + rank]);
                        assert!(
                            got.0 == item && got.1.to_bits() == score.to_bits(),
                            "{method:?}: query {q} rank {rank}: got {got:?}, want {:?}",
                            (item, score)
                        );
                    }
                }
            }
        }
    }

    /// Deterministic pseudo-random values: integers in -2..=2 (many ties) or Gaussian-like.
    fn values(n: usize, seed: u64, ties: bool) -> Vec<f32> {
        let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..n)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let u = (state >> 11) as f64 / (1u64 << 53) as f64;
                if ties {
                    (u * 5.0).floor() as f32 - 2.0
                } else {
                    // Sum of uniforms: roughly normal, unit variance.
                    let v = (0..3)
                        .map(|s| ((state >> (s * 20)) & 0xFFFFF) as f64 / 1048576.0)
                        .sum::<f64>();
                    ((v + u - 2.0) * 1.7) as f32
                }
            })
            .collect()
    }

    fn random_problem(dim: usize, n_q: usize, n_i: usize, seed: u64, ties: bool) -> Problem {
        Problem::new(
            dim,
            values(n_q * dim, seed, ties),
            values(n_q, seed + 1, ties),
            values(n_i * dim, seed + 2, ties),
            values(n_i, seed + 3, ties),
        )
    }

    #[test]
    fn equals_brute_force_with_exclusions_ties_and_padding() {
        let mut problem = random_problem(11, 70, 600, 1, true);
        problem.exclude = (0..70u64)
            .map(|q| (0..600).filter(|i| (i + q) % 3 == 0).collect())
            .collect();
        for k in [1, 10, 450] {
            problem.check(k);
        }
    }

    #[test]
    fn realistic_size_equals_brute_force() {
        let mut problem = random_problem(64, 130, 3000, 7, false);
        problem.exclude[3] = (0..3000).step_by(2).collect();
        problem.check(10);
        random_problem(33, 40, 700, 8, false).check(25);
    }

    #[test]
    fn same_result_for_every_thread_count_and_strategy() {
        let problem = random_problem(64, 500, 800, 3, false);
        let queries = Side::new(&problem.qv, &problem.qo, 64).unwrap();
        let items = Side::new(&problem.iv, &problem.io, 64).unwrap();
        let reference = top_k_with::<i64>(&queries, &items, 10, None, &Unmonitored, Method::Exhaustive).unwrap();
        for threads in [1, 2, 3] {
            for method in methods() {
                let got = with_threads(threads, || {
                    top_k_with::<i64>(&queries, &items, 10, None, &Unmonitored, method)
                })
                .unwrap();
                assert_eq!(got.0, reference.0, "{method:?}, {threads} threads");
                assert_eq!(got.1, reference.1, "{method:?}, {threads} threads");
            }
        }
    }

    #[test]
    fn all_ties_rank_by_item_index() {
        let (dim, n_i) = (8, 100);
        let mut problem = Problem::new(
            dim,
            vec![0.5; 3 * dim],
            vec![1.0; 3],
            vec![0.25; n_i * dim],
            vec![2.0; n_i],
        );
        problem.exclude[1] = vec![0, 2, 4];
        problem.check(7);
        problem.check(150);
    }

    #[test]
    fn items_in_increasing_score_order() {
        // Every item beats the previous ones: the running threshold rises at every panel.
        let (dim, n_i) = (4, 500);
        let iv: Vec<f32> = (0..n_i).flat_map(|i| [i as f32 * 0.01, 1.0, -1.0, 0.5]).collect();
        let io: Vec<f32> = (0..n_i).map(|i| i as f32 * 1e-3).collect();
        Problem::new(
            dim,
            vec![1.0, 0.0, 0.0, 0.0, 2.0, 1.0, 1.0, 0.0],
            vec![0.0, -3.0],
            iv,
            io,
        )
        .check(10);
    }

    #[test]
    fn huge_tiny_and_mixed_magnitudes() {
        let dim = 9;
        let base = random_problem(dim, 12, 300, 11, false);
        for (q_scale, i_scale) in [
            (1e12, 1e-6),
            (1e18, 1.0),
            (1e-30, 1e-8),
            (1e-41, 1.0),
            (1.0, 1e-44),
            (3e19, 3e19),
        ] {
            let mut problem = base.clone();
            // Scale half the queries and every third item, so that magnitudes mix within a problem.
            for (r, row) in problem.qv.chunks_mut(dim).enumerate() {
                if r % 2 == 0 {
                    row.iter_mut().for_each(|x| *x *= q_scale);
                }
            }
            for (r, row) in problem.iv.chunks_mut(dim).enumerate() {
                if r % 3 == 0 {
                    row.iter_mut().for_each(|x| *x *= i_scale);
                    problem.io[r] *= i_scale;
                }
            }
            problem.check(5);
        }
    }

    #[test]
    fn non_finite_values_rank_as_the_exhaustive_scan_does() {
        let dim = 6;
        let base = random_problem(dim, 8, 120, 5, false);
        let poisons: [(&str, usize, f32); 8] = [
            ("iv", 13, f32::NAN),
            ("iv", 40, f32::INFINITY),
            ("io", 7, f32::NEG_INFINITY),
            ("io", 99, f32::NAN),
            ("qv", 3, f32::NAN),
            ("qv", 20, f32::INFINITY),
            ("qo", 2, f32::NEG_INFINITY),
            ("qo", 5, -f32::NAN),
        ];
        for (field, at, value) in poisons {
            let mut problem = base.clone();
            match field {
                "iv" => problem.iv[at] = value,
                "io" => problem.io[at] = value,
                "qv" => problem.qv[at] = value,
                _ => problem.qo[at] = value,
            }
            problem.check(4);
            problem.check(130);
        }
    }

    #[test]
    fn degenerate_shapes() {
        // k above the item count, no items, no queries, every item excluded, dimension 1.
        random_problem(5, 4, 3, 1, false).check(10);
        random_problem(5, 4, 0, 2, false).check(3);
        random_problem(5, 0, 30, 3, false).check(3);
        let mut all_excluded = random_problem(5, 3, 40, 4, false);
        all_excluded.exclude[1] = (0..40).collect();
        all_excluded.check(5);
        random_problem(1, 20, 90, 5, true).check(6);
        random_problem(1, 20, 90, 6, false).check(6);
        // Zero vectors: the offsets alone rank.
        Problem::new(3, vec![0.0; 6], vec![0.0, -0.0], vec![0.0; 60], values(20, 9, true)).check(20);
        Problem::new(3, vec![-0.0; 6], vec![-0.0, 0.0], vec![-0.0; 60], vec![-0.0; 20]).check(5);
    }

    #[test]
    fn k_zero_and_mismatched_shapes() {
        let problem = random_problem(3, 2, 5, 1, false);
        let (queries, items) = (
            Side::new(&problem.qv, &problem.qo, 3).unwrap(),
            Side::new(&problem.iv, &problem.io, 3).unwrap(),
        );
        assert_eq!(
            top_k::<i32>(&queries, &items, 0, None, &Unmonitored).unwrap(),
            (vec![], vec![])
        );
        assert!(Side::new(&[0.0; 5], &[0.0; 2], 2).is_err());
        let (a, b) = (
            Side::new(&[0.0; 4], &[0.0; 2], 2).unwrap(),
            Side::new(&[0.0; 3], &[0.0; 1], 3).unwrap(),
        );
        assert!(top_k::<i32>(&a, &b, 1, None, &Unmonitored).is_err());
    }

    #[test]
    fn a_stop_request_ends_the_search_without_a_report() {
        struct Stopped;
        impl Monitor for Stopped {
            fn progress(&self, _done: u64) -> Result<()> {
                panic!("a stopped search reported progress");
            }
            fn stop_requested(&self) -> bool {
                true
            }
        }
        let problem = random_problem(4, 50, 40, 1, false);
        let (queries, items) = (
            Side::new(&problem.qv, &problem.qo, 4).unwrap(),
            Side::new(&problem.iv, &problem.io, 4).unwrap(),
        );
        let stopped = top_k::<i32>(&queries, &items, 5, None, &Stopped);
        assert!(matches!(stopped, Err(Error::Interrupted)), "{stopped:?}");
    }

    /// A value of one of the shapes that stress the bound: small integers (ties), ordinary
    /// floats, huge and tiny magnitudes, zeros of both signs, and rarely a non-finite one.
    fn value() -> impl Strategy<Value = f32> {
        prop_oneof![
            8 => (-3i32..=3).prop_map(|v| v as f32),
            8 => -4.0f32..4.0,
            2 => (-4.0f32..4.0, -40i32..40).prop_map(|(m, e)| m * 10f32.powi(e)),
            1 => prop_oneof![Just(0.0f32), Just(-0.0f32), Just(f32::MIN_POSITIVE), Just(1e-45f32)],
            1 => prop_oneof![Just(f32::NAN), Just(f32::INFINITY), Just(f32::NEG_INFINITY), Just(3e38f32)],
        ]
    }

    fn problem() -> impl Strategy<Value = (Problem, usize)> {
        (1usize..=17, 0usize..8, 0usize..70, 1usize..12).prop_flat_map(|(dim, n_q, n_i, k)| {
            (
                prop::collection::vec(value(), n_q * dim),
                prop::collection::vec(value(), n_q),
                prop::collection::vec(value(), n_i * dim),
                prop::collection::vec(value(), n_i),
                prop::collection::vec(prop::collection::vec(0..n_i.max(1) as u64, 0..n_i / 2 + 1), n_q),
            )
                .prop_map(move |(qv, qo, iv, io, mut exclude)| {
                    exclude.iter_mut().for_each(|row| row.retain(|&i| (i as usize) < n_i));
                    exclude.iter_mut().for_each(|row| {
                        row.sort_unstable();
                        row.dedup();
                    });
                    (
                        Problem {
                            exclude,
                            ..Problem::new(dim, qv, qo, iv, io)
                        },
                        k,
                    )
                })
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]

        #[test]
        fn every_strategy_equals_brute_force((problem, k) in problem()) {
            problem.check(k);
        }
    }
}
