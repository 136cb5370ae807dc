//! Borrowed FM weights, the O(k · nnz) row score and parallel prediction.

use rayon::prelude::*;

use super::lanes::{Lanes, Scalar};
use super::Feature;
use crate::csr::{CsrIndex, CsrView, Values};
use crate::error::{Error, Result};
use crate::parallel::Monitor;

/// The number of factors `k` of the loops over factors: a constant ([`Fixed`]) for the sizes
/// [`with_factors!`] names, so that those loops compile to straight SIMD code without loop
/// control, or a run-time value ([`AnyK`]). Same arithmetic in the same order either way.
pub(crate) trait Factors: Copy {
    /// `k`.
    fn k(self) -> usize;
}

/// `k = K`, known when compiling.
#[derive(Clone, Copy)]
pub(crate) struct Fixed<const K: usize>;

impl<const K: usize> Factors for Fixed<K> {
    #[inline(always)]
    fn k(self) -> usize {
        K
    }
}

/// `k` known at run time only.
#[derive(Clone, Copy)]
pub(crate) struct AnyK(pub(crate) usize);

impl Factors for AnyK {
    #[inline(always)]
    fn k(self) -> usize {
        self.0
    }
}

/// Runs `$body` with `$f` bound to the [`Factors`] of `$k`: [`Fixed`] for 8, 16, 32 and 64 (the
/// usual sizes), [`AnyK`] otherwise, so that generic code is instantiated once for each.
macro_rules! with_factors {
    ($k:expr, $f:ident => $body:expr) => {
        match $k {
            8 => {
                let $f = $crate::fm::model::Fixed::<8>;
                $body
            }
            16 => {
                let $f = $crate::fm::model::Fixed::<16>;
                $body
            }
            32 => {
                let $f = $crate::fm::model::Fixed::<32>;
                $body
            }
            64 => {
                let $f = $crate::fm::model::Fixed::<64>;
                $body
            }
            k => {
                let $f = $crate::fm::model::AnyK(k);
                $body
            }
        }
    };
}
pub(crate) use with_factors;

/// What the model predicts, and so which loss training minimises.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Task {
    /// Squared error (`predictor_type="regressor"`).
    Regressor,
    /// Log loss of σ(ŷ) with labels 0/1 (`predictor_type="binary_classifier"`).
    BinaryClassifier,
}

impl Task {
    /// Parses SageMaker's `predictor_type`.
    pub fn parse(name: &str) -> Result<Self> {
        match name {
            "regressor" => Ok(Task::Regressor),
            "binary_classifier" => Ok(Task::BinaryClassifier),
            other => Err(Error::invalid(format!(
                "predictor_type must be 'regressor' or 'binary_classifier', got {other:?}"
            ))),
        }
    }
}

/// Read-only weights: bias `w0`, linear weights `w` (d) and factors `V` (d × k, row-major), stored
/// as `f32` like SageMaker FM's and read as `f64`.
#[derive(Clone, Copy)]
pub struct Weights<'a> {
    pub(crate) bias: f64,
    pub(crate) linear: &'a [f32],
    pub(crate) factors: &'a [f32],
    pub(crate) k: usize,
}

impl<'a> Weights<'a> {
    /// Checks that `factors` holds `linear.len() × num_factors` values and `num_factors ≥ 1`.
    pub fn new(bias: f64, linear: &'a [f32], factors: &'a [f32], num_factors: usize) -> Result<Self> {
        check_shapes(linear.len(), factors.len(), num_factors)?;
        Ok(Weights {
            bias,
            linear,
            factors,
            k: num_factors,
        })
    }

    /// Number of features `d`.
    pub fn feature_dim(&self) -> usize {
        self.linear.len()
    }

    /// Number of factors `k`.
    pub fn num_factors(&self) -> usize {
        self.k
    }

    /// Checks that a matrix has exactly `d` columns.
    pub(crate) fn check_columns(&self, n_cols: u64) -> Result<()> {
        if n_cols != self.linear.len() as u64 {
            return Err(Error::invalid(format!(
                "X has {n_cols} columns but the model has feature_dim {}",
                self.linear.len()
            )));
        }
        Ok(())
    }

    /// ŷ of one row; leaves `s_f = Σᵢ v_if xᵢ` in `s` (length k).
    ///
    /// `Σ_f v_if² xᵢ²` is taken as `xᵢ² · Σ_f v_if²` and every sum over f in four interleaved
    /// lanes ([`sum_of_squares`]), so that the loops vectorise and no long chain of dependent
    /// additions remains.
    #[inline(always)]
    pub(crate) fn score_row<I: CsrIndex, T: Feature>(&self, columns: &[I], values: &[T], s: &mut [f64]) -> f64 {
        self.score_row_as(AnyK(self.k), Scalar, columns, values, s)
    }

    /// [`Weights::score_row`] with `k` given as `factors` (a constant where [`Fixed`]) and the
    /// loops over factors run by `lanes` (the same bits whichever).
    #[inline(always)]
    pub(crate) fn score_row_as<F: Factors, L: Lanes, I: CsrIndex, T: Feature>(
        &self,
        factors: F,
        lanes: L,
        columns: &[I],
        values: &[T],
        s: &mut [f64],
    ) -> f64 {
        let k = factors.k();
        debug_assert_eq!(k, self.k);
        let s = &mut s[..k];
        s.fill(0.0);
        let mut linear = self.bias;
        let mut squares = 0.0;
        for (&column, &x) in columns.iter().zip(values) {
            // Columns were validated against d when the view was built.
            let i = column.to_u64().unwrap_or(0) as usize;
            let x = x.to_f64();
            linear += f64::from(self.linear[i]) * x;
            let v = &self.factors[i * k..(i + 1) * k];
            squares += x * x * lanes.add_row(s, v, x);
        }
        linear + 0.5 * (lanes.sum_of_squares(s) - squares)
    }
}

/// `Σ aᵢ²`, summed in four lanes (`i mod 4`) combined as `(l0 + l1) + (l2 + l3)`, then the
/// remainder in order: a fixed order, whatever the thread count.
#[inline(always)]
pub(crate) fn sum_of_squares<T: Copy + Into<f64>>(a: &[T]) -> f64 {
    let mut lanes = [0.0; 4];
    let chunks = a.chunks_exact(4);
    let rest = chunks.remainder();
    for chunk in chunks {
        for (lane, &value) in lanes.iter_mut().zip(chunk) {
            let value: f64 = value.into();
            *lane += value * value;
        }
    }
    let mut total = (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]);
    for &value in rest {
        let value: f64 = value.into();
        total += value * value;
    }
    total
}

/// Mutable weights, updated in place by training.
pub struct WeightsMut<'a> {
    pub(crate) bias: &'a mut f32,
    pub(crate) linear: &'a mut [f32],
    pub(crate) factors: &'a mut [f32],
    pub(crate) k: usize,
}

impl<'a> WeightsMut<'a> {
    /// Checks that `factors` holds `linear.len() × num_factors` values and `num_factors ≥ 1`.
    pub fn new(bias: &'a mut f32, linear: &'a mut [f32], factors: &'a mut [f32], num_factors: usize) -> Result<Self> {
        check_shapes(linear.len(), factors.len(), num_factors)?;
        Ok(WeightsMut {
            bias,
            linear,
            factors,
            k: num_factors,
        })
    }

    /// A read-only view of the current weights.
    pub fn view(&self) -> Weights<'_> {
        Weights {
            bias: f64::from(*self.bias),
            linear: self.linear,
            factors: self.factors,
            k: self.k,
        }
    }
}

fn check_shapes(d: usize, n_factors: usize, k: usize) -> Result<()> {
    if k == 0 {
        return Err(Error::invalid("num_factors must be at least 1"));
    }
    if d.checked_mul(k) != Some(n_factors) {
        return Err(Error::invalid(format!(
            "factors hold {n_factors} values, expected feature_dim {d} × num_factors {k}"
        )));
    }
    if u32::try_from(d).is_err() {
        return Err(Error::invalid(format!("feature_dim {d} exceeds 2^32 - 1")));
    }
    Ok(())
}

/// Number of stored entries of a validated view.
pub(crate) fn nnz<I: CsrIndex>(x: &CsrView<'_, I>) -> usize {
    x.n_rows().checked_sub(1).map_or(0, |last| x.row_range(last).end)
}

/// Checks that a values array has one entry per index.
pub(crate) fn check_values<I: CsrIndex>(x: &CsrView<'_, I>, n_values: usize) -> Result<()> {
    let nnz = nnz(x);
    if n_values != nnz {
        return Err(Error::invalid(format!("{nnz} indices but {n_values} values")));
    }
    Ok(())
}

/// Rows scored between two progress reports.
const PREDICT_CHUNK_ROWS: usize = 1 << 16;
/// Rows per rayon task.
const ROWS_PER_TASK: usize = 512;

/// Raw scores ŷ of every row of `x` (apply [`super::sigmoid`] for a classifier's probability).
pub fn predict<I: CsrIndex, M: Monitor + ?Sized>(
    x: &CsrView<'_, I>,
    values: Values<'_>,
    weights: &Weights<'_>,
    monitor: &M,
) -> Result<Vec<f64>> {
    weights.check_columns(x.n_cols())?;
    with_values!(values, v => predict_typed(x, v, weights, monitor))
}

fn predict_typed<I: CsrIndex, T: Feature, M: Monitor + ?Sized>(
    x: &CsrView<'_, I>,
    values: &[T],
    weights: &Weights<'_>,
    monitor: &M,
) -> Result<Vec<f64>> {
    let n_rows = x.n_rows();
    check_values(x, values.len())?;
    let mut scores = vec![0.0; n_rows];
    for (chunk_index, chunk) in scores.chunks_mut(PREDICT_CHUNK_ROWS).enumerate() {
        let first = chunk_index * PREDICT_CHUNK_ROWS;
        chunk.par_chunks_mut(ROWS_PER_TASK).enumerate().for_each(|(task, out)| {
            let mut s = vec![0.0; weights.k];
            let start = first + task * ROWS_PER_TASK;
            for (offset, score) in out.iter_mut().enumerate() {
                let row = start + offset;
                *score = weights.score_row(x.row_indices(row), &values[x.row_range(row)], &mut s);
            }
        });
        monitor.progress((first + chunk.len()) as u64)?;
    }
    Ok(scores)
}

/// ŷ of a row given as `(feature, value)` entries, by the O(k · n²) definition
/// `w0 + Σ wᵢxᵢ + Σ_{i<j} ⟨vᵢ, vⱼ⟩ xᵢxⱼ`, from `f64` weights: the oracle of the scoring and
/// gradient tests.
#[cfg(test)]
pub(crate) fn pairwise_score(bias: f64, linear: &[f64], factors: &[f64], k: usize, entries: &[(usize, f64)]) -> f64 {
    let mut y = bias;
    for (a, &(i, xi)) in entries.iter().enumerate() {
        y += linear[i] * xi;
        for &(j, xj) in &entries[a + 1..] {
            let dot: f64 = (0..k).map(|f| factors[i * k + f] * factors[j * k + f]).sum();
            y += dot * xi * xj;
        }
    }
    y
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parallel::{with_threads, Unmonitored};

    /// ŷ of a dense row by [`pairwise_score`].
    fn brute_force(w: &Weights<'_>, dense: &[f64]) -> f64 {
        let wide = |a: &[f32]| a.iter().map(|&v| f64::from(v)).collect::<Vec<f64>>();
        let entries: Vec<(usize, f64)> = dense.iter().copied().enumerate().collect();
        pairwise_score(w.bias, &wide(w.linear), &wide(w.factors), w.k, &entries)
    }

    #[test]
    fn predict_matches_the_pairwise_definition() {
        let (d, k) = (5, 3);
        let linear: Vec<f32> = (0..d).map(|i| 0.1 * i as f32 - 0.2).collect();
        let factors: Vec<f32> = (0..d * k).map(|i| ((i * 7 % 11) as f32 - 5.0) / 10.0).collect();
        let w = Weights::new(0.3, &linear, &factors, k).unwrap();
        let indptr = [0i64, 3, 3, 5];
        let indices = [0i64, 2, 4, 1, 3];
        let values = [1.0f32, -2.0, 0.5, 3.0, 1.5];
        let x = CsrView::new(&indptr, &indices, values.len(), d as u64).unwrap();
        let got = with_threads(2, || predict(&x, Values::F32(&values), &w, &Unmonitored)).unwrap();
        let dense = [
            vec![1.0, 0.0, -2.0, 0.0, 0.5],
            vec![0.0; 5],
            vec![0.0, 3.0, 0.0, 1.5, 0.0],
        ];
        for (row, expected) in dense.iter().enumerate() {
            let expected = brute_force(&w, expected);
            assert!(
                (got[row] - expected).abs() < 1e-12,
                "row {row}: {} vs {expected}",
                got[row]
            );
        }
    }

    #[test]
    fn every_k_gets_its_own_factors_and_the_same_scores() {
        for k in 1..=70 {
            assert_eq!(with_factors!(k, factors => factors.k()), k);
        }
        // A row with a repeated column, scored with k = 8 as a constant and as a run-time value.
        let (d, k) = (7, 8);
        let linear: Vec<f32> = (0..d).map(|i| 0.37 * i as f32 - 1.1).collect();
        let factors: Vec<f32> = (0..d * k).map(|i| ((i * 13 % 17) as f32 - 8.0) / 7.0).collect();
        let w = Weights::new(0.3, &linear, &factors, k).unwrap();
        let (columns, values) = ([0i64, 3, 6, 3], [1.5f64, -0.25, 3.0, 1e-3]);
        let (mut fixed, mut any) = (vec![0.0; k], vec![0.0; k]);
        let by_fixed = w.score_row_as(Fixed::<8>, Scalar, &columns, &values, &mut fixed);
        let by_any = w.score_row_as(AnyK(k), Scalar, &columns, &values, &mut any);
        assert_eq!(by_fixed.to_bits(), by_any.to_bits());
        let bits = |s: &[f64]| s.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&fixed), bits(&any));
    }

    #[test]
    fn rejects_mismatched_shapes() {
        let linear = [0.0; 4];
        assert!(Weights::new(0.0, &linear, &[0.0; 7], 2).is_err());
        assert!(Weights::new(0.0, &linear, &[], 0).is_err());
        let w = Weights::new(0.0, &linear, &[0.0; 8], 2).unwrap();
        let x = CsrView::new(&[0i32, 1], &[0], 1, 3).unwrap();
        let err = predict(&x, Values::F64(&[1.0]), &w, &Unmonitored).err().unwrap();
        assert!(err.to_string().contains("3 columns but the model has feature_dim 4"));
    }
}
