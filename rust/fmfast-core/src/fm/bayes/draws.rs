//! The random numbers of Gibbs sampling, addressed by what they are drawn for.
//!
//! Every draw is a pure function of `(seed, stream, index)`: 64 random bits are
//! `mix(mix(mix(seed + G) + stream) + index)` with SplitMix64's finaliser `mix` and its increment
//! `G`. A coordinate's draw therefore does not depend on which thread takes it nor on when, which
//! makes block Gibbs over many threads give the sampler's result for every thread count, and lets
//! the NumPy reference (`fmfast.training._reference`) replay exactly the same numbers.
//!
//! * uniform: `((bits >> 11) + 1) · 2⁻⁵³`, in (0, 1];
//! * normal (index `i`): Box–Muller of the uniforms `u₁` (index `2i`) and `u₂` (`2i + 1`),
//!   `√(−2 ln u₁) · cos(2π u₂)`;
//! * gamma (slot `s`, shape `a ≥ 1`, rate `b`): Marsaglia and Tsang's method; attempt `t` reads
//!   the normal at index `s · 2²⁰ + 2t` and the uniform at `2 · (s · 2²⁰ + 2t + 1)`, so that
//!   slots never share numbers.
//!
//! Chain `c` of a fit of several chains draws with the seed [`chain_seed`]`(seed, c)`: the first
//! chain's is `seed` itself, so a fit of one chain draws what it drew before there were chains.

/// SplitMix64's increment (the golden ratio in 64 bits).
const GOLDEN: u64 = 0x9e37_79b9_7f4a_7c15;
/// Indices of one gamma slot's attempts (2 each): 2²⁰ of them, far beyond the few it needs
/// (more than 95% of attempts accept).
const GAMMA_SLOT: u64 = 1 << 20;

/// SplitMix64's output function: a bijection of 64-bit words that mixes every input bit.
#[inline]
fn mix(z: u64) -> u64 {
    let z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    let z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The seed of chain `chain` (from 0) of a fit seeded `seed`: `seed` for the first chain, a mix of
/// both for the others (distinct for distinct chains: `mix` is a bijection).
pub fn chain_seed(seed: u64, chain: u64) -> u64 {
    if chain == 0 {
        seed
    } else {
        mix(mix(seed.wrapping_add(GOLDEN)) ^ chain)
    }
}

/// The draws of one seed.
#[derive(Clone, Copy, Debug)]
pub struct Draws {
    key: u64,
}

impl Draws {
    /// The draws of `seed`.
    pub fn new(seed: u64) -> Self {
        Draws {
            key: mix(seed.wrapping_add(GOLDEN)),
        }
    }

    /// A uniform number in (0, 1].
    #[inline]
    pub fn uniform(&self, stream: u64, index: u64) -> f64 {
        let bits = mix(mix(self.key.wrapping_add(stream)).wrapping_add(index));
        ((bits >> 11) + 1) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// A standard normal number.
    #[inline]
    pub fn normal(&self, stream: u64, index: u64) -> f64 {
        let u1 = self.uniform(stream, 2 * index);
        let u2 = self.uniform(stream, 2 * index + 1);
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    /// A Gamma(`shape`, `rate`) number (mean `shape / rate`), `shape ≥ 1`.
    pub fn gamma(&self, stream: u64, slot: u64, shape: f64, rate: f64) -> f64 {
        let d = shape - 1.0 / 3.0;
        let c = 1.0 / (9.0 * d).sqrt();
        let first = slot * GAMMA_SLOT;
        for attempt in 0..GAMMA_SLOT / 2 {
            let index = first + 2 * attempt;
            let z = self.normal(stream, index);
            let v = 1.0 + c * z;
            if v <= 0.0 {
                continue;
            }
            let v = v * v * v;
            let u = self.uniform(stream, 2 * (index + 1));
            if u.ln() < 0.5 * z * z + d - d * v + d * v.ln() {
                return d * v / rate;
            }
        }
        // Unreachable in practice (each attempt accepts with probability > 0.95): the mean.
        shape / rate
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg_attr(miri, ignore = "too slow for miri: 200,000 draws; the other tests draw too")]
    fn draws_have_their_moments() {
        let draws = Draws::new(7);
        let n = 200_000u64;
        let normals: Vec<f64> = (0..n).map(|i| draws.normal(3, i)).collect();
        let mean = normals.iter().sum::<f64>() / n as f64;
        let var = normals.iter().map(|z| (z - mean).powi(2)).sum::<f64>() / n as f64;
        assert!(mean.abs() < 0.01 && (var - 1.0).abs() < 0.01, "{mean} {var}");
        let (shape, rate) = (2.5, 4.0);
        let gammas: Vec<f64> = (0..20_000u64).map(|s| draws.gamma(5, s, shape, rate)).collect();
        let mean = gammas.iter().sum::<f64>() / gammas.len() as f64;
        let var = gammas.iter().map(|g| (g - mean).powi(2)).sum::<f64>() / gammas.len() as f64;
        assert!((mean - shape / rate).abs() < 0.01, "{mean}");
        assert!((var - shape / (rate * rate)).abs() < 0.01, "{var}");
    }

    #[test]
    fn a_draw_depends_on_its_address_only() {
        // The uniforms (integer arithmetic only): miri perturbs `ln` and `cos` on every call.
        let (a, b) = (Draws::new(1), Draws::new(2));
        assert_eq!(a.uniform(4, 9).to_bits(), Draws::new(1).uniform(4, 9).to_bits());
        assert_ne!(a.uniform(4, 9), b.uniform(4, 9));
        assert_ne!(a.uniform(4, 9), a.uniform(5, 9));
        assert_ne!(a.uniform(4, 9), a.uniform(4, 10));
    }
}
