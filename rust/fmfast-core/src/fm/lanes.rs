//! The loops over one row's k factors that training runs for every entry and feature (scoring,
//! gradient sums, the optimizer's step), written once for any CPU ([`Scalar`]) and once in
//! AVX2's four `f64` lanes ([`Avx2`]).
//!
//! Both give the same bits. Each factor is one lane and gets the scalar code's operations in the
//! scalar code's order: `f32` to `f64` conversions, multiplies and adds each rounded once (no FMA,
//! whose single rounding would differ), and the one sum across factors, [`sum_of_squares`],
//! already adds in four lanes `f mod 4`. LLVM does not vectorise these loops itself inside the
//! trainer (one scalar convert, multiply, add and store a factor), hence the explicit twin.

use super::model::sum_of_squares;
use super::optim::{OptimizerKind, Rule};
#[cfg(target_arch = "x86_64")]
pub(crate) use crate::simd::Avx2;

/// The per-factor arithmetic of training, on slices of one row's `k` values.
pub(crate) trait Lanes: Copy {
    /// Whether a value of this type proves that the CPU has AVX, so that code running these
    /// lanes may use VEX-encoded instructions (the copies of [`super::racy`]).
    // Read by the copies' x86 assembly alone, which miri does not run.
    #[cfg_attr(any(miri, not(target_arch = "x86_64")), allow(dead_code))]
    const VEX: bool;

    /// `s += x·v` factor by factor; returns `Σ_f v_f²` as [`sum_of_squares`] adds it.
    fn add_row(self, s: &mut [f64], v: &[f32], x: f64) -> f64;

    /// [`sum_of_squares`] of `a`.
    fn sum_of_squares(self, a: &[f64]) -> f64;

    /// `acc = a·s` (`acc` as long as `s`).
    fn set_scaled(self, acc: &mut [f64], s: &[f64], a: f64);

    /// `acc += a·s` (`acc` as long as `s`).
    fn add_scaled(self, acc: &mut [f64], s: &[f64], a: f64);

    /// `rule`'s step (of kind `kind`) of a row of factors `v` whose gradient is
    /// `grad_f − decay·v_f`, as [`Rule::apply_as`] takes it; whether every new value is finite.
    #[allow(clippy::too_many_arguments)]
    fn step(
        self,
        rule: &Rule,
        kind: OptimizerKind,
        v: &mut [f32],
        first: &mut [f32],
        second: &mut [f32],
        grad: &[f64],
        decay: f64,
    ) -> bool;
}

/// The portable loops, for any CPU (and the reference of [`Avx2`]'s).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Scalar;

impl Lanes for Scalar {
    const VEX: bool = false;

    #[inline(always)]
    fn add_row(self, s: &mut [f64], v: &[f32], x: f64) -> f64 {
        for (sf, &v) in s.iter_mut().zip(v) {
            *sf += f64::from(v) * x;
        }
        sum_of_squares(v)
    }

    #[inline(always)]
    fn sum_of_squares(self, a: &[f64]) -> f64 {
        sum_of_squares(a)
    }

    #[inline(always)]
    fn set_scaled(self, acc: &mut [f64], s: &[f64], a: f64) {
        for (acc, &s) in acc.iter_mut().zip(s) {
            *acc = a * s;
        }
    }

    #[inline(always)]
    fn add_scaled(self, acc: &mut [f64], s: &[f64], a: f64) {
        for (acc, &s) in acc.iter_mut().zip(s) {
            *acc += a * s;
        }
    }

    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn step(
        self,
        rule: &Rule,
        kind: OptimizerKind,
        v: &mut [f32],
        first: &mut [f32],
        second: &mut [f32],
        grad: &[f64],
        decay: f64,
    ) -> bool {
        rule.apply_as(kind, v, first, second, |f, v| grad[f] - decay * v)
    }
}

#[cfg(target_arch = "x86_64")]
impl Lanes for Avx2 {
    // Only `Avx2::detect` makes one, on a CPU with AVX2 (and so AVX).
    const VEX: bool = true;

    #[inline(always)]
    fn add_row(self, s: &mut [f64], v: &[f32], x: f64) -> f64 {
        // SAFETY: `self` exists only where `detect` found AVX2.
        unsafe { avx2::add_row(s, v, x) }
    }

    #[inline(always)]
    fn sum_of_squares(self, a: &[f64]) -> f64 {
        // SAFETY: as above.
        unsafe { avx2::sum_of_squares(a) }
    }

    #[inline(always)]
    fn set_scaled(self, acc: &mut [f64], s: &[f64], a: f64) {
        // SAFETY: as above.
        unsafe { avx2::scaled::<false>(acc, s, a) }
    }

    #[inline(always)]
    fn add_scaled(self, acc: &mut [f64], s: &[f64], a: f64) {
        // SAFETY: as above.
        unsafe { avx2::scaled::<true>(acc, s, a) }
    }

    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn step(
        self,
        rule: &Rule,
        kind: OptimizerKind,
        v: &mut [f32],
        first: &mut [f32],
        second: &mut [f32],
        grad: &[f64],
        decay: f64,
    ) -> bool {
        // SAFETY: as above.
        unsafe { rule.apply_avx2(kind, v, first, second, grad, decay) }
    }
}

/// The AVX2 loops: whole groups of four factors in the lanes of a `__m256d`, the remainder
/// (k not a multiple of four) one factor at a time with the scalar code's operations.
#[cfg(target_arch = "x86_64")]
pub(crate) mod avx2 {
    use std::arch::x86_64::*;

    use super::{Lanes, Scalar};

    // Each function below needs AVX2, so only code compiled with it calls them without `unsafe`.
    // Their slices hold 4 values at every caller (`chunks_exact`), which lets the compiler drop
    // the `[..4]` checks.

    /// The first four `f32` of `four` widened to `f64` (exact).
    #[target_feature(enable = "avx2")]
    #[inline]
    pub(crate) fn widen(four: &[f32]) -> __m256d {
        let four = &four[..4];
        // SAFETY: `four` holds 4 floats.
        _mm256_cvtps_pd(unsafe { _mm_loadu_ps(four.as_ptr()) })
    }

    /// The first four `f64` of `four`.
    #[target_feature(enable = "avx2")]
    #[inline]
    pub(crate) fn load(four: &[f64]) -> __m256d {
        let four = &four[..4];
        // SAFETY: `four` holds 4 doubles.
        unsafe { _mm256_loadu_pd(four.as_ptr()) }
    }

    /// Stores `value` in the first four `f64` of `four`.
    #[target_feature(enable = "avx2")]
    #[inline]
    pub(crate) fn store(four: &mut [f64], value: __m256d) {
        let four = &mut four[..4];
        // SAFETY: `four` holds 4 doubles.
        unsafe { _mm256_storeu_pd(four.as_mut_ptr(), value) }
    }

    /// Stores `value` rounded to `f32` (as `as f32` rounds: to nearest, ties to even) in the
    /// first four `f32` of `four`; returns the rounded values.
    #[target_feature(enable = "avx2")]
    #[inline]
    pub(crate) fn store_narrowed(four: &mut [f32], value: __m256d) -> __m128 {
        let four = &mut four[..4];
        let narrow = _mm256_cvtpd_ps(value);
        // SAFETY: `four` holds 4 floats.
        unsafe { _mm_storeu_ps(four.as_mut_ptr(), narrow) };
        narrow
    }

    /// `g.clamp(-limit, limit)` in each lane: `min(limit, g)` and `max(-limit, ·)` return their
    /// second operand when unordered, so a NaN passes through as `clamp` passes it.
    #[target_feature(enable = "avx2")]
    #[inline]
    pub(crate) fn clamp(g: __m256d, limit: __m256d) -> __m256d {
        let low = _mm256_xor_pd(limit, _mm256_set1_pd(-0.0));
        _mm256_max_pd(low, _mm256_min_pd(limit, g))
    }

    /// `(l0 + l1) + (l2 + l3)` of the lanes, [`super::sum_of_squares`]'s combination.
    #[target_feature(enable = "avx2")]
    #[inline]
    fn combine(lanes: __m256d) -> f64 {
        let (low, high) = (_mm256_castpd256_pd128(lanes), _mm256_extractf128_pd::<1>(lanes));
        // [l0 + l1, l2 + l3]
        let pairs = _mm_add_pd(_mm_unpacklo_pd(low, high), _mm_unpackhi_pd(low, high));
        _mm_cvtsd_f64(pairs) + _mm_cvtsd_f64(_mm_unpackhi_pd(pairs, pairs))
    }

    /// [`Lanes::add_row`].
    #[target_feature(enable = "avx2")]
    #[inline]
    pub(crate) fn add_row(s: &mut [f64], v: &[f32], x: f64) -> f64 {
        // As `zip`: the shorter length (the same at every caller).
        let n = s.len().min(v.len());
        let (s, v) = (&mut s[..n], &v[..n]);
        let scale = _mm256_set1_pd(x);
        let mut squares = _mm256_setzero_pd();
        let (mut s_fours, v_fours) = (s.chunks_exact_mut(4), v.chunks_exact(4));
        for (s4, v4) in s_fours.by_ref().zip(v_fours.clone()) {
            let v4 = widen(v4);
            store(s4, _mm256_add_pd(load(s4), _mm256_mul_pd(v4, scale)));
            squares = _mm256_add_pd(squares, _mm256_mul_pd(v4, v4));
        }
        let mut total = combine(squares);
        let (s_rest, v_rest) = (s_fours.into_remainder(), v_fours.remainder());
        for (sf, &v) in s_rest.iter_mut().zip(v_rest) {
            let v = f64::from(v);
            *sf += v * x;
            total += v * v;
        }
        total
    }

    /// [`Lanes::sum_of_squares`].
    #[target_feature(enable = "avx2")]
    #[inline]
    pub(crate) fn sum_of_squares(a: &[f64]) -> f64 {
        let mut squares = _mm256_setzero_pd();
        let fours = a.chunks_exact(4);
        let rest = fours.remainder();
        for a4 in fours {
            let a4 = load(a4);
            squares = _mm256_add_pd(squares, _mm256_mul_pd(a4, a4));
        }
        let mut total = combine(squares);
        for &value in rest {
            total += value * value;
        }
        total
    }

    /// [`Lanes::add_scaled`] (`ADD`) or [`Lanes::set_scaled`].
    #[target_feature(enable = "avx2")]
    #[inline]
    pub(crate) fn scaled<const ADD: bool>(acc: &mut [f64], s: &[f64], a: f64) {
        let n = acc.len().min(s.len());
        let (acc, s) = (&mut acc[..n], &s[..n]);
        let scale = _mm256_set1_pd(a);
        let (mut acc_fours, s_fours) = (acc.chunks_exact_mut(4), s.chunks_exact(4));
        for (acc4, s4) in acc_fours.by_ref().zip(s_fours.clone()) {
            let product = _mm256_mul_pd(scale, load(s4));
            store(
                acc4,
                if ADD {
                    _mm256_add_pd(load(acc4), product)
                } else {
                    product
                },
            );
        }
        let (acc_rest, s_rest) = (acc_fours.into_remainder(), s_fours.remainder());
        if ADD {
            Scalar.add_scaled(acc_rest, s_rest, a);
        } else {
            Scalar.set_scaled(acc_rest, s_rest, a);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fm::optim::Optimizer;

    /// Values from 1e-3 to 1e3 of both signs, so that every rounding shows.
    fn draws(n: usize, seed: u64) -> Vec<f64> {
        let mut state = seed;
        (0..n)
            .map(|_| {
                state = state
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                let unit = (state >> 11) as f64 / (1u64 << 53) as f64;
                let sign = if state & 1 == 0 { 1.0 } else { -1.0 };
                sign * 10f64.powf(6.0 * unit - 3.0)
            })
            .collect()
    }

    fn bits<T: Copy + Into<f64>>(a: &[T]) -> Vec<u64> {
        a.iter().map(|&v| v.into().to_bits()).collect()
    }

    /// Every [`Lanes`] method of `lanes` against [`Scalar`]'s, bit for bit, for k = 1 to 70.
    fn agrees_with_scalar(lanes: impl Lanes) {
        for k in 1..=70 {
            let a = draws(k, k as u64);
            let v: Vec<f32> = draws(k, 100 + k as u64).iter().map(|&x| x as f32).collect();
            let (mut s, mut s_scalar) = (a.clone(), a.clone());
            let squares = lanes.add_row(&mut s, &v, 0.37);
            assert_eq!(
                squares.to_bits(),
                Scalar.add_row(&mut s_scalar, &v, 0.37).to_bits(),
                "k = {k}"
            );
            assert_eq!(bits(&s), bits(&s_scalar), "k = {k}");
            assert_eq!(lanes.sum_of_squares(&a).to_bits(), Scalar.sum_of_squares(&a).to_bits());
            let (mut acc, mut acc_scalar) = (vec![0.0; k], vec![0.0; k]);
            lanes.set_scaled(&mut acc, &a, -1.7);
            Scalar.set_scaled(&mut acc_scalar, &a, -1.7);
            assert_eq!(bits(&acc), bits(&acc_scalar), "k = {k}");
            lanes.add_scaled(&mut acc, &s, 3.1);
            Scalar.add_scaled(&mut acc_scalar, &s, 3.1);
            assert_eq!(bits(&acc), bits(&acc_scalar), "k = {k}");
        }
    }

    /// [`Lanes::step`] of `lanes` against [`Scalar`]'s, bit for bit, for every rule, with and
    /// without clipping and decay, k = 1 to 70, and non-finite weights and gradients.
    fn steps_agree_with_scalar(lanes: impl Lanes) {
        for kind in [OptimizerKind::Sgd, OptimizerKind::Adam, OptimizerKind::AdaGrad] {
            for (clip, wd, t) in [(None, 0.0, 1), (Some(0.5), 0.01, 7)] {
                let mut optimizer = Optimizer::new(kind);
                optimizer.clip_gradient = clip;
                optimizer.factors.wd = wd;
                optimizer.factors.lr = 0.03;
                let rule = optimizer.rules(t).factors;
                for k in 1..=70 {
                    let ns = kind.n_slots();
                    let grad = draws(k, 7 * k as u64);
                    let mut v: Vec<f32> = draws(k, 11 * k as u64).iter().map(|&x| x as f32).collect();
                    let mut state: Vec<f32> = draws(ns * k, 13 * k as u64).iter().map(|&x| x.abs() as f32).collect();
                    if k == 9 {
                        (v[1], v[6]) = (f32::INFINITY, f32::NAN);
                    }
                    let (mut v_scalar, mut state_scalar) = (v.clone(), state.clone());
                    let (first, second) = state.split_at_mut(if ns == 0 { 0 } else { k });
                    let finite = lanes.step(&rule, kind, &mut v, first, second, &grad, 0.25);
                    let (first, second) = state_scalar.split_at_mut(if ns == 0 { 0 } else { k });
                    let finite_scalar = Scalar.step(&rule, kind, &mut v_scalar, first, second, &grad, 0.25);
                    assert_eq!(finite, finite_scalar, "{kind:?} k = {k}");
                    assert_eq!(finite, k != 9, "{kind:?} k = {k}");
                    assert_eq!(bits(&v), bits(&v_scalar), "{kind:?} k = {k}");
                    assert_eq!(bits(&state), bits(&state_scalar), "{kind:?} k = {k}");
                }
            }
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn avx2_gives_the_scalar_bits() {
        // Without AVX2 there is nothing to compare (the trainer runs `Scalar`).
        if let Some(token) = Avx2::detect() {
            agrees_with_scalar(token);
            steps_agree_with_scalar(token);
        }
    }
}
