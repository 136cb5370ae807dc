//! MXNet's SGD, Adam and AdaGrad as SageMaker FM uses them, applied lazily to the rows present in
//! a mini-batch.
//!
//! `g` below is the batch gradient with `rescale_grad` applied (the mean over the batch when unset),
//! `clip(·)` clamps to `±clip_gradient` when it is set, `wd` and `lr` are the parameter group's
//! (bias, linear or factors):
//!
//! * SGD: `w ← w − lr·(clip(g) + wd·w)` (no state).
//! * Adam: `g' = clip(g + wd·w)`, `m ← β1·m + (1−β1)·g'`, `v ← β2·v + (1−β2)·g'²`,
//!   `w ← w − lr_t·m / (√v + ε)` with `lr_t = lr·√(1−β2ᵗ)/(1−β1ᵗ)`, `t` the number of updates so
//!   far including this one, counted per parameter array (every array is updated every batch, so
//!   it is the global batch count). State: `m`, `v`. Default ε = 1e-8.
//! * AdaGrad: `g' = clip(g)`, `h ← h + g'²`, `w ← w − lr·(g'/√(h + ε) + wd·w)`. State: `h`.
//!   Default ε = 1e-7.
//!
//! Weights and state are stored as `f32`, as in SageMaker FM (MXNet keeps optimizer state in the
//! weights' dtype), which halves the memory each update touches. The arithmetic is `f64`: each new
//! state value and weight is rounded to `f32` when stored, and the weight step uses the state
//! values before rounding.
//!
//! Lazy: rows of `w` and `V` whose feature does not occur in the batch keep their weights *and*
//! state (no decay, no moment update); the bias is updated every batch.

use crate::error::{Error, Result};

/// Which update rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OptimizerKind {
    /// Plain stochastic gradient descent (no momentum).
    Sgd,
    /// Adam with bias correction.
    Adam,
    /// AdaGrad.
    AdaGrad,
}

impl OptimizerKind {
    /// Parses `"sgd"`, `"adam"` or `"adagrad"`.
    pub fn parse(name: &str) -> Result<Self> {
        match name {
            "sgd" => Ok(OptimizerKind::Sgd),
            "adam" => Ok(OptimizerKind::Adam),
            "adagrad" => Ok(OptimizerKind::AdaGrad),
            other => Err(Error::invalid(format!(
                "optimizer must be 'sgd', 'adam' or 'adagrad', got {other:?}"
            ))),
        }
    }

    /// State values kept per weight: 0 (SGD), 2 (Adam: m, v), 1 (AdaGrad: h).
    pub fn n_slots(self) -> usize {
        match self {
            OptimizerKind::Sgd => 0,
            OptimizerKind::Adam => 2,
            OptimizerKind::AdaGrad => 1,
        }
    }

    /// ε used when `eps` is unset.
    pub fn default_eps(self) -> f64 {
        match self {
            OptimizerKind::AdaGrad => 1e-7,
            _ => 1e-8,
        }
    }
}

/// Learning rate and L2 weight decay of one parameter group.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Group {
    /// Learning rate.
    pub lr: f64,
    /// L2 weight decay, added to the gradient as `wd·w`.
    pub wd: f64,
}

/// Optimizer hyperparameters.
#[derive(Clone, Debug, PartialEq)]
pub struct Optimizer {
    /// The update rule.
    pub kind: OptimizerKind,
    /// Bias group (`bias_lr`, `bias_wd`).
    pub bias: Group,
    /// Linear group (`linear_lr`, `linear_wd`).
    pub linear: Group,
    /// Factors group (`factors_lr`, `factors_wd`).
    pub factors: Group,
    /// Adam's β1 (0.9).
    pub beta1: f64,
    /// Adam's β2 (0.999).
    pub beta2: f64,
    /// ε; `None`: [`OptimizerKind::default_eps`].
    pub eps: Option<f64>,
    /// Clip gradients to ±this; `None`: no clipping.
    pub clip_gradient: Option<f64>,
    /// Gradient scale; `None`: 1 / rows in the batch.
    pub rescale_grad: Option<f64>,
}

impl Optimizer {
    /// SageMaker's defaults for `kind`.
    pub fn new(kind: OptimizerKind) -> Self {
        Optimizer {
            kind,
            bias: Group { lr: 0.1, wd: 0.01 },
            linear: Group { lr: 0.001, wd: 0.001 },
            factors: Group {
                lr: 0.0001,
                wd: 0.00001,
            },
            beta1: 0.9,
            beta2: 0.999,
            eps: None,
            clip_gradient: None,
            rescale_grad: None,
        }
    }

    /// Checks every value is finite and in range.
    pub fn validate(&self) -> Result<()> {
        let groups = [("bias", self.bias), ("linear", self.linear), ("factors", self.factors)];
        for (name, group) in groups {
            if !(group.lr.is_finite() && group.lr >= 0.0) {
                return Err(Error::invalid(format!(
                    "{name}_lr must be a finite number >= 0, got {}",
                    group.lr
                )));
            }
            if !(group.wd.is_finite() && group.wd >= 0.0) {
                return Err(Error::invalid(format!(
                    "{name}_wd must be a finite number >= 0, got {}",
                    group.wd
                )));
            }
        }
        for (name, beta) in [("beta1", self.beta1), ("beta2", self.beta2)] {
            if !(0.0..1.0).contains(&beta) {
                return Err(Error::invalid(format!("{name} must lie in [0, 1), got {beta}")));
            }
        }
        let positive = [
            ("eps", self.eps),
            ("clip_gradient", self.clip_gradient),
            ("rescale_grad", self.rescale_grad),
        ];
        for (name, value) in positive {
            if let Some(value) = value {
                if !(value.is_finite() && value > 0.0) {
                    return Err(Error::invalid(format!(
                        "{name} must be None or a finite number > 0, got {value}"
                    )));
                }
            }
        }
        Ok(())
    }

    /// The rules of the three groups for update number `t` (1-based), with Adam's two powers
    /// computed once (they cost as much as a sample's update at `mini_batch_size=1`).
    pub(crate) fn rules(&self, t: u64) -> Rules {
        let correction = self.lr_correction(t);
        Rules {
            bias: self.rule_corrected(self.bias, correction),
            linear: self.rule_corrected(self.linear, correction),
            factors: self.rule_corrected(self.factors, correction),
        }
    }

    /// The factor of every learning rate at update `t`: Adam's bias correction, else none.
    fn lr_correction(&self, t: u64) -> Option<f64> {
        (self.kind == OptimizerKind::Adam).then(|| {
            // As MXNet: lr *= sqrt(1 - beta2^t) / (1 - beta1^t).
            let t = t as f64;
            (1.0 - self.beta2.powf(t)).sqrt() / (1.0 - self.beta1.powf(t))
        })
    }

    /// The rule of `group` with its learning rate scaled by `correction`.
    fn rule_corrected(&self, group: Group, correction: Option<f64>) -> Rule {
        Rule {
            kind: self.kind,
            lr: correction.map_or(group.lr, |c| group.lr * c),
            wd: group.wd,
            beta1: self.beta1,
            beta2: self.beta2,
            eps: self.eps.unwrap_or_else(|| self.kind.default_eps()),
            clip: self.clip_gradient.unwrap_or(f64::INFINITY),
        }
    }
}

/// The rules of the bias, linear and factor groups at one step.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Rules {
    pub(crate) bias: Rule,
    pub(crate) linear: Rule,
    pub(crate) factors: Rule,
}

/// One group's update at one step, with Adam's bias correction folded into `lr`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Rule {
    kind: OptimizerKind,
    lr: f64,
    wd: f64,
    beta1: f64,
    beta2: f64,
    eps: f64,
    clip: f64,
}

impl Rule {
    /// The update rule.
    #[inline(always)]
    pub(crate) fn kind(&self) -> OptimizerKind {
        self.kind
    }

    /// Updates `weights` with `grads` (same length); `first`/`second` are the state slots (empty
    /// when the rule keeps fewer). Returns whether every updated weight is finite (as `f32`).
    #[inline(always)]
    pub(crate) fn apply(&self, grads: &[f64], weights: &mut [f32], first: &mut [f32], second: &mut [f32]) -> bool {
        let grads = &grads[..weights.len()];
        self.apply_as(self.kind, weights, first, second, |j, _| grads[j])
    }

    /// [`Rule::apply`] with the rule's kind given by the caller, and weight `j`'s gradient given
    /// by `grad(j, w_j)` from its value before the update. A hot loop that matches on the kind
    /// once outside and passes it here as a constant gets each rule's code without the match (and
    /// its state offsets as constants); one whose gradient depends on the weight computes it in
    /// the same pass.
    #[inline(always)]
    pub(crate) fn apply_as(
        &self,
        kind: OptimizerKind,
        weights: &mut [f32],
        first: &mut [f32],
        second: &mut [f32],
        grad: impl Fn(usize, f64) -> f64,
    ) -> bool {
        debug_assert_eq!(kind, self.kind, "a rule applied as another kind");
        let Rule {
            lr,
            wd,
            beta1,
            beta2,
            eps,
            clip,
            ..
        } = *self;
        let mut finite = true;
        match kind {
            OptimizerKind::Sgd => {
                for (j, w) in weights.iter_mut().enumerate() {
                    let old = f64::from(*w);
                    let g = grad(j, old);
                    *w = (old - lr * (g.clamp(-clip, clip) + wd * old)) as f32;
                    finite &= w.is_finite();
                }
            }
            OptimizerKind::Adam => {
                let state = first.iter_mut().zip(second.iter_mut());
                for (j, (w, (m, v))) in weights.iter_mut().zip(state).enumerate() {
                    let old = f64::from(*w);
                    let g = (grad(j, old) + wd * old).clamp(-clip, clip);
                    let new_m = beta1 * f64::from(*m) + (1.0 - beta1) * g;
                    let new_v = beta2 * f64::from(*v) + (1.0 - beta2) * g * g;
                    (*m, *v) = (new_m as f32, new_v as f32);
                    *w = (old - lr * new_m / (new_v.sqrt() + eps)) as f32;
                    finite &= w.is_finite();
                }
            }
            OptimizerKind::AdaGrad => {
                for (j, (w, h)) in weights.iter_mut().zip(first.iter_mut()).enumerate() {
                    let old = f64::from(*w);
                    let g = grad(j, old).clamp(-clip, clip);
                    let new_h = f64::from(*h) + g * g;
                    *h = new_h as f32;
                    *w = (old - lr * (g / (new_h + eps).sqrt() + wd * old)) as f32;
                    finite &= w.is_finite();
                }
            }
        }
        finite
    }

    /// [`Rule::apply_as`] of a row whose gradient is `grad_j − decay·w_j` (a factor row's), four
    /// weights at a time in AVX2's `f64` lanes, each lane with the scalar code's operations in its
    /// order (so the same bits); a remainder of fewer than four by [`Rule::apply_as`].
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    #[inline]
    pub(crate) fn apply_avx2(
        &self,
        kind: OptimizerKind,
        weights: &mut [f32],
        first: &mut [f32],
        second: &mut [f32],
        grad: &[f64],
        decay: f64,
    ) -> bool {
        use super::lanes::avx2::{clamp, load, store_narrowed, widen};
        use std::arch::x86_64::*;

        debug_assert_eq!(kind, self.kind, "a rule applied as another kind");
        let n = weights.len();
        let body = n - n % 4;
        let grad = &grad[..n];
        let splat = _mm256_set1_pd;
        let (lr, wd, eps, factor) = (splat(self.lr), splat(self.wd), splat(self.eps), splat(decay));
        let (beta1, beta2) = (splat(self.beta1), splat(self.beta2));
        let (rest1, rest2) = (splat(1.0 - self.beta1), splat(1.0 - self.beta2));
        let limit = splat(self.clip);
        // `w − w` of every new weight, added up: NaN exactly where one is not finite.
        let mut spread = _mm_setzero_ps();
        let (first_body, first_rest) = first.split_at_mut(body.min(first.len()));
        let (second_body, second_rest) = second.split_at_mut(body.min(second.len()));
        let fours = weights[..body].chunks_exact_mut(4).zip(grad[..body].chunks_exact(4));
        match kind {
            OptimizerKind::Sgd => {
                for (w4, g4) in fours {
                    let old = widen(w4);
                    let g = _mm256_sub_pd(load(g4), _mm256_mul_pd(factor, old));
                    let step = _mm256_add_pd(clamp(g, limit), _mm256_mul_pd(wd, old));
                    let narrow = store_narrowed(w4, _mm256_sub_pd(old, _mm256_mul_pd(lr, step)));
                    spread = _mm_add_ps(spread, _mm_sub_ps(narrow, narrow));
                }
            }
            OptimizerKind::Adam => {
                let state = first_body.chunks_exact_mut(4).zip(second_body.chunks_exact_mut(4));
                for ((w4, g4), (m4, v4)) in fours.zip(state) {
                    let old = widen(w4);
                    let g = _mm256_sub_pd(load(g4), _mm256_mul_pd(factor, old));
                    let g = clamp(_mm256_add_pd(g, _mm256_mul_pd(wd, old)), limit);
                    let m = _mm256_mul_pd(beta1, widen(m4));
                    let m = _mm256_add_pd(m, _mm256_mul_pd(rest1, g));
                    let v = _mm256_mul_pd(beta2, widen(v4));
                    let v = _mm256_add_pd(v, _mm256_mul_pd(_mm256_mul_pd(rest2, g), g));
                    store_narrowed(m4, m);
                    store_narrowed(v4, v);
                    let step = _mm256_div_pd(_mm256_mul_pd(lr, m), _mm256_add_pd(_mm256_sqrt_pd(v), eps));
                    let narrow = store_narrowed(w4, _mm256_sub_pd(old, step));
                    spread = _mm_add_ps(spread, _mm_sub_ps(narrow, narrow));
                }
            }
            OptimizerKind::AdaGrad => {
                for ((w4, g4), h4) in fours.zip(first_body.chunks_exact_mut(4)) {
                    let old = widen(w4);
                    let g = _mm256_sub_pd(load(g4), _mm256_mul_pd(factor, old));
                    let g = clamp(g, limit);
                    let h = _mm256_add_pd(widen(h4), _mm256_mul_pd(g, g));
                    store_narrowed(h4, h);
                    let scaled = _mm256_div_pd(g, _mm256_sqrt_pd(_mm256_add_pd(h, eps)));
                    let step = _mm256_mul_pd(lr, _mm256_add_pd(scaled, _mm256_mul_pd(wd, old)));
                    let narrow = store_narrowed(w4, _mm256_sub_pd(old, step));
                    spread = _mm_add_ps(spread, _mm_sub_ps(narrow, narrow));
                }
            }
        }
        let finite = _mm_movemask_ps(_mm_cmpunord_ps(spread, spread)) == 0;
        let rest = self.apply_as(kind, &mut weights[body..], first_rest, second_rest, |j, w| {
            grad[body + j] - decay * w
        });
        finite & rest
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adam_first_step_moves_by_about_lr() {
        let mut optimizer = Optimizer::new(OptimizerKind::Adam);
        optimizer.linear = Group { lr: 0.1, wd: 0.0 };
        let rule = optimizer.rules(1).linear;
        let (mut w, mut m, mut v) = ([1.0, 1.0], [0.0, 0.0], [0.0, 0.0]);
        assert!(rule.apply(&[2.0, -0.5], &mut w, &mut m, &mut v));
        // m = 0.1 g, v = 0.001 g², lr_t = 0.1 · √0.001 / 0.1: the step is 0.1 · sign(g) (less
        // ~6e-7 of it for ε), then rounded to f32.
        assert!((w[0] - 0.9).abs() < 2e-7 && (w[1] - 1.1).abs() < 2e-7, "{w:?}");
        assert!((m[0] - 0.2).abs() < 1e-15 && (v[1] - 0.00025).abs() < 1e-15);
    }

    #[test]
    fn weights_and_state_are_computed_in_f64_and_rounded_when_stored() {
        let mut optimizer = Optimizer::new(OptimizerKind::Adam);
        optimizer.factors = Group { lr: 0.1, wd: 0.0 };
        let (mut w, mut m, mut v) = ([0.0f32], [0.0f32], [0.0f32]);
        optimizer.rules(1).factors.apply(&[0.1], &mut w, &mut m, &mut v);
        let (m64, v64): (f64, f64) = ((1.0 - 0.9) * 0.1, (1.0 - 0.999) * 0.1 * 0.1);
        assert_eq!((m[0], v[0]), (m64 as f32, v64 as f32));
        let step = 0.1 * ((1.0 - 0.999f64).sqrt() / (1.0 - 0.9)) * m64 / (v64.sqrt() + 1e-8);
        assert_eq!(w[0], (-step) as f32);
    }

    #[test]
    fn sgd_and_adagrad_clip_and_decay() {
        let mut optimizer = Optimizer::new(OptimizerKind::Sgd);
        optimizer.clip_gradient = Some(1.0);
        optimizer.bias = Group { lr: 0.5, wd: 0.1 };
        let mut w = [2.0];
        optimizer.rules(1).bias.apply(&[10.0], &mut w, &mut [], &mut []);
        assert_eq!(w[0], (2.0 - 0.5 * (1.0 + 0.2)) as f32);

        optimizer.kind = OptimizerKind::AdaGrad;
        let (mut w, mut h) = ([2.0], [3.0]);
        optimizer.rules(7).bias.apply(&[-10.0], &mut w, &mut h, &mut []);
        assert_eq!(h[0], 4.0);
        let expected = 2.0 - 0.5 * (-1.0 / (4.0f64 + 1e-7).sqrt() + 0.2);
        assert_eq!(w[0], expected as f32);
    }

    #[test]
    fn validation_names_the_parameter() {
        let mut optimizer = Optimizer::new(OptimizerKind::Adam);
        optimizer.factors.lr = f64::NAN;
        assert!(optimizer.validate().err().unwrap().to_string().contains("factors_lr"));
        let mut optimizer = Optimizer::new(OptimizerKind::Adam);
        optimizer.clip_gradient = Some(0.0);
        assert!(optimizer
            .validate()
            .err()
            .unwrap()
            .to_string()
            .contains("clip_gradient"));
        assert!(OptimizerKind::parse("rmsprop").is_err());
    }
}
