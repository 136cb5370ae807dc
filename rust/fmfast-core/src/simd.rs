//! Run-time SIMD dispatch, one pattern for every hot loop: a token type per instruction set,
//! which only its `detect` makes, and only on a CPU that has that set. A hot loop takes the token
//! by value and passes it to its `#[target_feature]` twin; holding one is the proof that calling
//! the twin is sound, so the `unsafe` call states one invariant, checked once, at detection.

/// Proof that the running CPU has AVX2 and FMA: only [`Avx2::detect`] makes one.
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Avx2(());

#[cfg(target_arch = "x86_64")]
impl Avx2 {
    /// The token, where the CPU has AVX2 and FMA.
    pub(crate) fn detect() -> Option<Self> {
        (is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")).then_some(Avx2(()))
    }
}
