//! int16 quantization of factor vectors, and the rigorous bound on how far an approximate score
//! computed from it can be from the exact one.
//!
//! Each row `s` is stored as `a · q` (`a` a float32 scale, `q` int16 with `|q| ≤ qmax`), so that
//! `⟨s_u, s_i⟩ ≈ a_u a_i ⟨q_u, q_i⟩` with an exact integer inner product. The first pass computes
//! `x = fl(fl(fl(I) · fl(a_u a_i)) + fl(c_u + c_i))` (or with one fused multiply-add), where `I` is
//! that integer product; [`Items::band`] returns `E_u` with `|x − y| ≤ E_u` for every item, where
//! `y` is the exact float32 score ([`super::exact::exact_score`]). See [`Items::band`] for the proof.

use rayon::prelude::*;

use super::exact::Side;
use super::kernel::{MR, NR};

/// Largest dimension the first pass takes (the rounding bound assumes `dim · 2⁻²⁴ < 1%`).
const MAX_DIM: usize = 100_000;
/// Largest magnitude of a score bound for which no float32 operation can overflow.
const MAX_MAGNITUDE: f64 = 1.2676506002282294e30; // 2^100
/// Unit roundoff of float32 (round to nearest).
const UNIT: f64 = 5.960464477539063e-8; // 2^-24
/// Covers every absolute error that underflow (subnormal results) adds to either computation.
const UNDERFLOW: f64 = 7.888609052210118e-31; // 2^-100

/// The largest `qmax` such that `n_pairs · 2 · qmax²` fits an `i32` (no overflow in the integer
/// inner product, nor in one `vpmaddwd` pair), capped to the int16 range.
pub(super) fn qmax(n_pairs: usize) -> i32 {
    let limit = (i32::MAX as f64 / (2 * n_pairs.max(1)) as f64).sqrt().floor();
    limit.min(f64::from(i16::MAX)) as i32
}

/// What quantizing one row leaves: its scale and the sizes the bound needs (all in f64).
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Row {
    /// `a`, float32 so that the kernels use exactly this value.
    pub scale: f32,
    /// `max_f |s_f − a q_f|`, measured.
    pub error: f64,
    /// `‖s‖₁`.
    pub l1: f64,
    /// `‖s‖∞`.
    pub max_abs: f64,
    /// `‖a q‖₁`.
    pub quantized_l1: f64,
}

/// Quantizes `s` into `q` (same length); `None` if a value is not finite.
pub(super) fn quantize(s: &[f32], qmax: i32, q: &mut [i16]) -> Option<Row> {
    if s.iter().any(|x| !x.is_finite()) {
        return None;
    }
    let max_abs = s.iter().fold(0f64, |m, &x| m.max(f64::from(x).abs()));
    let l1: f64 = s.iter().map(|&x| f64::from(x).abs()).sum();
    let mut scale = (max_abs / f64::from(qmax)) as f32;
    if !scale.is_normal() {
        // Zero, or so small that the scale would be subnormal: all-zero codes, and the whole
        // row counts as error.
        scale = 0.0;
    }
    let mut row = Row {
        scale,
        error: 0.0,
        l1,
        max_abs,
        quantized_l1: 0.0,
    };
    let (limit, a) = (f64::from(qmax), f64::from(scale));
    for (out, &x) in q.iter_mut().zip(s) {
        let x = f64::from(x);
        // Rounds half away from zero through an integer conversion (no libm call); any rounding
        // would do, since the error is measured below.
        let code = if a > 0.0 {
            let c = x / a;
            ((c + 0.5f64.copysign(c)) as i64 as f64).clamp(-limit, limit)
        } else {
            0.0
        };
        *out = code as i16;
        // Exact in f64: a 24-bit scale times a 16-bit code, then one subtraction (whose rounding,
        // 2⁻⁵³ relative, the 1% margin of the band covers).
        row.error = row.error.max((x - a * code).abs());
        row.quantized_l1 += (a * code).abs();
    }
    Some(row)
}

/// Round-to-nearest `f64 → f32`, then one step down if that rounded up: the largest float32
/// not above `x` (for `x` within the float32 range).
pub(super) fn round_down(x: f64) -> f32 {
    let f = x as f32;
    if f64::from(f) <= x || f.is_nan() {
        return f;
    }
    if f == 0.0 {
        return -f32::from_bits(1);
    }
    let bits = f.to_bits();
    // Finite `f` above `x`: the next float32 towards −∞ is one ulp away in the bit pattern.
    f32::from_bits(if f > 0.0 { bits - 1 } else { bits + 1 })
}

/// Items quantized and packed for the kernels, with the maxima their bound needs.
///
/// Panels of [`NR`] items: for each pair of factors, the 16 items' two codes interleaved
/// (`codes[panel][pair][2j + h] = q_j[2·pair + h]`), so that one `vpmaddwd` multiplies a pair for
/// 8 items. Padding slots have scale 0 and offset NaN, so they never pass a threshold.
pub(super) struct Items {
    pub n_items: usize,
    pub dim: usize,
    pub n_pairs: usize,
    pub qmax: i32,
    pub codes: Vec<i16>,
    pub scales: Vec<f32>,
    pub offsets: Vec<f32>,
    max_l1: f64,
    max_abs: f64,
    max_error: f64,
    max_abs_offset: f64,
}

impl Items {
    /// `None` when the items cannot be bounded (a non-finite or huge value, or a huge dimension):
    /// the caller then scores every pair exactly.
    pub fn new(items: &Side) -> Option<Self> {
        let dim = items.dim;
        if dim == 0 || dim > MAX_DIM {
            return None;
        }
        let n_pairs = dim.div_ceil(2);
        let qmax = qmax(n_pairs);
        let n_items = items.len();
        let n_panels = n_items.div_ceil(NR);
        let panel_len = n_pairs * 2 * NR;
        let mut codes = vec![0i16; n_panels * panel_len];
        let mut scales = vec![0f32; n_panels * NR];
        let mut offsets = vec![f32::NAN; n_panels * NR];
        let rows: Vec<Option<Row>> = codes
            .par_chunks_mut(panel_len)
            .zip(scales.par_chunks_mut(NR).zip(offsets.par_chunks_mut(NR)))
            .enumerate()
            .flat_map_iter(|(panel, (block, (scales, offsets)))| {
                let mut q = vec![0i16; 2 * n_pairs];
                (0..NR)
                    .filter(move |j| panel * NR + j < n_items)
                    .map(|j| {
                        let i = panel * NR + j;
                        let row = quantize(items.row(i), qmax, &mut q[..dim])?;
                        for (pair, codes) in q.chunks_exact(2).enumerate() {
                            block[pair * 2 * NR + 2 * j] = codes[0];
                            block[pair * 2 * NR + 2 * j + 1] = codes[1];
                        }
                        scales[j] = row.scale;
                        offsets[j] = items.offsets[i];
                        items.offsets[i].is_finite().then_some(row)
                    })
                    .collect::<Vec<_>>()
            })
            .collect();
        let mut packed = Items {
            n_items,
            dim,
            n_pairs,
            qmax,
            codes,
            scales,
            offsets,
            max_l1: 0.0,
            max_abs: 0.0,
            max_error: 0.0,
            max_abs_offset: items.offsets.iter().fold(0f64, |m, &c| m.max(f64::from(c).abs())),
        };
        for row in rows {
            let row = row?;
            packed.max_l1 = packed.max_l1.max(row.l1);
            packed.max_abs = packed.max_abs.max(row.max_abs);
            packed.max_error = packed.max_error.max(row.error);
        }
        (packed.max_l1 <= MAX_MAGNITUDE && packed.max_abs_offset <= MAX_MAGNITUDE).then_some(packed)
    }

    /// Number of panels of [`NR`] items.
    pub fn n_panels(&self) -> usize {
        self.scales.len() / NR
    }

    /// `E_u`: a bound on `|x − y|` over every item for a query with quantized row `row` and
    /// offset `offset`, or `None` when the query's values are too large to bound (or not finite).
    ///
    /// With `s = â + e` (`â = a q`, `|e_f| ≤ error`) on both sides and `S = ⟨s_u, s_i⟩`:
    ///
    /// * quantization: `|S − ⟨â_u, â_i⟩| = |⟨e_u, s_i⟩ + ⟨â_u, e_i⟩| ≤ error_u ‖s_i‖₁ + ‖â_u‖₁ error_i`;
    /// * with `P = (‖s_u‖₁ + dim·error_u)(max ‖s_i‖∞ + error_i)`, which bounds `|⟨â_u, â_i⟩|`, `|S|`
    ///   and `Σ|s_uf s_if|`, and `C = |c_u| + max |c_i|`: the first pass rounds `I` (exact as an
    ///   integer), `a_u a_i`, their product, `c_u + c_i` and the sum: at most
    ///   `4.01·2⁻²⁴·P + 2.01·2⁻²⁴·C` away from `⟨â_u, â_i⟩ + c_u + c_i`;
    /// * the exact score: a float32 inner product with at most `m = dim + 10` roundings on any
    ///   path is within `γ_m Σ|s_uf s_if| ≤ 1.01·m·2⁻²⁴·P` of `S`, then two additions:
    ///   `1.01·2⁻²⁴·P + 2.01·2⁻²⁴·C` more;
    /// * underflow adds at most `2⁻¹¹⁹` (a subnormal `a_u a_i` times `|I| < 2³¹`) plus a few `2⁻¹⁵⁰`.
    ///
    /// The sum, times 1.01 (for the f64 evaluation of the bound itself), plus `2⁻¹⁰⁰`.
    pub fn band(&self, row: &Row, offset: f32) -> Option<f64> {
        if !offset.is_finite() {
            return None;
        }
        let p = (row.l1 + self.dim as f64 * row.error) * (self.max_abs + self.max_error);
        let c = f64::from(offset).abs() + self.max_abs_offset;
        if !(p <= MAX_MAGNITUDE && c <= MAX_MAGNITUDE) {
            return None;
        }
        let quantization = row.error * self.max_l1 + row.quantized_l1 * self.max_error;
        let rounding = (1.01 * (self.dim as f64 + 10.0) + 5.02) * UNIT * p + 4.02 * UNIT * c;
        Some(1.01 * (quantization + rounding) + UNDERFLOW)
    }
}

/// Queries quantized for the kernels, [`MR`] per register block: codes as `i32` pairs
/// (`pairs[block][pair][r] = q_r[2·pair] | q_r[2·pair + 1] << 16`), scales and offsets.
pub(super) struct Queries {
    pub pairs: Vec<i32>,
    pub scales: Vec<[f32; MR]>,
    pub offsets: Vec<[f32; MR]>,
    /// Per query, `E_u`, or `None` for a query the first pass cannot bound.
    pub bands: Vec<Option<f64>>,
}

impl Queries {
    /// Quantizes queries `range` of `queries` for the items `packed`.
    pub fn new(queries: &Side, range: std::ops::Range<usize>, packed: &Items) -> Self {
        let n = range.len();
        let n_blocks = n.div_ceil(MR);
        let n_pairs = packed.n_pairs;
        let mut out = Queries {
            pairs: vec![0; n_blocks * n_pairs * MR],
            scales: vec![[0.0; MR]; n_blocks],
            offsets: vec![[f32::NAN; MR]; n_blocks],
            bands: Vec::with_capacity(n),
        };
        let mut q = vec![0i16; 2 * n_pairs];
        for (slot, query) in range.enumerate() {
            let (block, r) = (slot / MR, slot % MR);
            let offset = queries.offsets[query];
            let band = quantize(queries.row(query), packed.qmax, &mut q[..packed.dim])
                .and_then(|row| Some((row, packed.band(&row, offset)?)));
            let Some((row, band)) = band else {
                out.bands.push(None);
                continue;
            };
            for (pair, codes) in q.chunks_exact(2).enumerate() {
                let joined = u32::from(codes[0] as u16) | (u32::from(codes[1] as u16) << 16);
                out.pairs[(block * n_pairs + pair) * MR + r] = joined as i32;
            }
            out.scales[block][r] = row.scale;
            out.offsets[block][r] = offset;
            out.bands.push(Some(band));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_down_never_rounds_up() {
        for x in [
            0.0,
            1.0,
            -1.0,
            1e-40,
            -1e-40,
            0.1,
            -0.1,
            3.0e38,
            1.0 + 1e-12,
            -(1.0 + 1e-12),
        ] {
            let f = round_down(x);
            assert!(f64::from(f) <= x, "{x} -> {f}");
            assert!(f64::from(f) > x - (x.abs() * 1e-6 + 1e-44), "{x} -> {f}");
        }
        assert_eq!(round_down(f64::NEG_INFINITY), f32::NEG_INFINITY);
    }

    #[test]
    fn quantization_error_is_measured() {
        let s = [1.0f32, -0.5, 0.25, 3.0, 1e-3, 0.0];
        let mut q = [0i16; 6];
        let row = quantize(&s, qmax(3), &mut q).unwrap_or_default();
        assert_eq!(i32::from(q[3]), qmax(3));
        for (&x, &c) in s.iter().zip(&q) {
            assert!((f64::from(x) - f64::from(row.scale) * f64::from(c)).abs() <= row.error);
        }
        assert!(row.error <= f64::from(row.scale) / 2.0 * 1.0001);
        assert!(quantize(&[f32::NAN], 10, &mut [0]).is_none());
        // A tiny row: zero codes, the whole row as error.
        let row = quantize(&[1e-44], qmax(1), &mut [0]).unwrap_or_default();
        assert_eq!((row.scale, row.error), (0.0, f64::from(1e-44f32)));
    }

    #[test]
    fn qmax_leaves_no_room_for_overflow() {
        for n_pairs in [1, 2, 3, 32, 1000, 50_000] {
            let m = i64::from(qmax(n_pairs));
            assert!(2 * n_pairs as i64 * m * m <= i64::from(i32::MAX));
            assert!(m <= i64::from(i16::MAX) && m >= 100);
        }
    }
}
