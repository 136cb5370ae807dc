"""A plain NumPy implementation of fmfast's Factorization Machines, the oracle of the parity tests.

It follows the same definitions as the Rust core, written for readability rather than speed:

* model: ``ŷ = w0 + Σ wᵢxᵢ + ½ Σ_f [(Σᵢ v_if xᵢ)² - Σᵢ v_if² xᵢ²]``; the regressor's loss is
  ``½(ŷ - y)²``, the classifier's the log loss of ``sigmoid(ŷ)`` with labels 0/1;
* initialisation: ``np.random.default_rng(random_state)`` draws the bias ``(1,)``, then ``w``
  ``(d,)``, then ``V`` ``(d, k)``, each ``normal(0, sigma)``, ``uniform(-scale, scale)`` or
  ``constant(value)``, rounded to float32;
* batch order: rows in stored order, consecutive mini-batches, no shuffling;
* optimizers: MXNet's SGD, Adam (bias-corrected with the update count ``t``) and AdaGrad, with
  lazy updates of the rows of ``w`` and ``V`` whose feature occurs in the batch.

Weights and optimizer state are stored as float32, as SageMaker FM (MXNet) stores them; every
computation is float64 from their stored values, and each new weight and state value is rounded
to float32 when stored (the weight step uses the new state as computed, before rounding).
Functions take and return plain dictionaries of arrays.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import scipy.sparse as sp

#: State values per weight for each optimizer: Adam keeps (m, v), AdaGrad (h,), SGD nothing.
SLOTS = {"sgd": 0, "adam": 2, "adagrad": 1}
BETA1, BETA2 = 0.9, 0.999


def _draw(rng: np.random.Generator, params: dict[str, Any], group: str, shape: tuple[int, ...]) -> np.ndarray:
    method = params[f"{group}_init_method"]
    if method == "normal":
        sigma = params[f"{group}_init_sigma"]
        if sigma is None:  # factors only: adaptive ALS starts at its priors' scale, the rest at SageMaker's
            adaptive = params["optimizer"] == "als" and params.get("als_regularization") == "adaptive"
            sigma = 1.0 if adaptive else 0.001
        return rng.normal(0.0, sigma, shape)
    if method == "uniform":
        scale = params[f"{group}_init_scale"]
        return rng.uniform(-scale, scale, shape)
    return np.full(shape, float(params[f"{group}_init_value"]))


def initial_state(params: dict[str, Any], feature_dim: int) -> dict[str, Any]:
    """Fresh weights and zero optimizer state for ``feature_dim`` features."""
    rng = np.random.default_rng(params["random_state"])
    d, k, slots = feature_dim, params["num_factors"], SLOTS[params["optimizer"]]
    return {
        "bias": _draw(rng, params, "bias", (1,)).astype(np.float32),
        "linear": _draw(rng, params, "linear", (d,)).astype(np.float32),
        "factors": _draw(rng, params, "factors", (d, k)).astype(np.float32),
        "bias_state": np.zeros((1, slots), np.float32),
        "linear_state": np.zeros((d, slots), np.float32),
        "factors_state": np.zeros((d, slots, k), np.float32),
        "t": 0,
    }


def sigmoid(z: np.ndarray) -> np.ndarray:
    """The logistic function 1 / (1 + e^-z), without overflow."""
    e = np.exp(-np.abs(z))
    result: np.ndarray = np.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e))
    return result


def log_loss(z: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Log loss of sigmoid(z) against y ∈ {0, 1}, from the logit z."""
    result: np.ndarray = np.maximum(z, 0.0) - z * y + np.log1p(np.exp(-np.abs(z)))
    return result


def scores(X: sp.csr_array, state: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """Raw scores ŷ of the rows of ``X`` and ``s = X V``, in float64."""
    V = np.asarray(state["factors"], dtype=np.float64)
    s = X @ V
    squares = X.multiply(X) @ (V * V).sum(axis=1)
    linear = np.asarray(state["linear"], dtype=np.float64)
    y_hat = float(state["bias"][0]) + X @ linear + 0.5 * ((s * s).sum(axis=1) - squares)
    return np.asarray(y_hat), np.asarray(s)


def predict(X: Any, state: dict[str, Any]) -> np.ndarray:
    """Raw scores ŷ of every row of ``X``."""
    return scores(sp.csr_array(X, dtype=np.float64), state)[0]


def _update(
    params: dict[str, Any],
    group: str,
    t: int,
    weight: np.ndarray,
    slots: np.ndarray,
    rows: np.ndarray | slice,
    grad: np.ndarray,
) -> None:
    """One optimizer step on ``weight[rows]`` and its state ``slots[rows]`` with gradient ``grad``.

    Computed in float64; the float32 arrays round the new values when they are assigned.
    ``slots`` has the slot axis second: ``slots[rows, 0]`` is Adam's m (AdaGrad's h),
    ``slots[rows, 1]`` Adam's v.
    """
    state = slots[rows].astype(np.float64)
    lr, wd = params[f"{group}_lr"], params[f"{group}_wd"]
    clip = params["clip_gradient"]
    w = weight[rows].astype(np.float64)
    if params["optimizer"] == "sgd":
        g = grad if clip is None else np.clip(grad, -clip, clip)
        weight[rows] = w - lr * (g + wd * w)
    elif params["optimizer"] == "adam":
        eps = 1e-8 if params["eps"] is None else params["eps"]
        g = grad + wd * w
        g = g if clip is None else np.clip(g, -clip, clip)
        m = BETA1 * state[:, 0] + (1 - BETA1) * g
        v = BETA2 * state[:, 1] + (1 - BETA2) * g * g
        lr_t = lr * (math.sqrt(1 - BETA2**t) / (1 - BETA1**t))
        slots[rows, 0], slots[rows, 1] = m, v
        weight[rows] = w - lr_t * m / (np.sqrt(v) + eps)
    else:  # adagrad
        eps = 1e-7 if params["eps"] is None else params["eps"]
        g = grad if clip is None else np.clip(grad, -clip, clip)
        h = state[:, 0] + g * g
        slots[rows, 0] = h
        weight[rows] = w - lr * (g / np.sqrt(h + eps) + wd * w)


def metrics(
    predictor_type: str, loss_sum: float, n: int, confusion: tuple[int, int, int, int]
) -> dict[str, float]:
    """SageMaker's metric names from the sums of one pass; ``confusion`` is (tp, fp, tn, fn)."""
    if predictor_type == "regressor":
        return {"rmse": math.sqrt(loss_sum / n)}
    tp, fp, tn, fn = confusion
    f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0
    return {
        "binary_classification_accuracy": (tp + tn) / n,
        "binary_classification_cross_entropy": loss_sum / n,
        "binary_f_beta": f1,
    }


def fit(
    X: Any,
    y: Any,
    params: dict[str, Any],
    sample_weight: Any = None,
    state: dict[str, Any] | None = None,
    epochs: int | None = None,
) -> tuple[dict[str, Any], list[dict[str, float]]]:
    """Train from ``state`` (fresh from ``params`` when ``None``) for ``epochs`` passes.

    Returns the state and the per-epoch training metrics, gathered during each pass with the
    weights each batch saw before its update.
    """
    X = sp.csr_array(X, dtype=np.float64)
    X.sum_duplicates()
    y = np.asarray(y, dtype=np.float64)
    n, d = X.shape
    weights = np.ones(n) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    state = initial_state(params, d) if state is None else {key: np.copy(v) for key, v in state.items()}
    state["t"] = int(state["t"])
    batch = params["mini_batch_size"]
    history = []
    for _ in range(params["epochs"] if epochs is None else epochs):
        loss_sum, confusion = 0.0, np.zeros(4, dtype=np.int64)
        for start in range(0, n, batch):
            Xb, yb = X[start : start + batch], y[start : start + batch]
            state["t"] += 1
            # The batch over its present columns only, so a batch costs O(k * nnz), not O(k * d).
            present, columns = np.unique(Xb.indices, return_inverse=True)
            Xb = sp.csr_array((Xb.data, columns.reshape(-1), Xb.indptr), shape=(Xb.shape[0], len(present)))
            V = state["factors"][present].astype(np.float64)
            local = {"bias": state["bias"], "linear": state["linear"][present], "factors": V}
            y_hat, s = scores(Xb, local)
            if not np.isfinite(y_hat).all():
                raise FloatingPointError("training diverged")
            if params["predictor_type"] == "regressor":
                dloss = y_hat - yb
                loss_sum += float(((y_hat - yb) ** 2).sum())
            else:
                p = sigmoid(y_hat)
                dloss = p - yb
                loss_sum += float(log_loss(y_hat, yb).sum())
                label = p >= 0.5
                truth = yb == 1.0
                confusion += [
                    (label & truth).sum(),
                    (label & ~truth).sum(),
                    (~label & ~truth).sum(),
                    (~label & truth).sum(),
                ]
            rescale = params["rescale_grad"] or 1.0 / Xb.shape[0]
            g = dloss * weights[start : start + batch] * rescale
            grad_linear = Xb.T @ g
            grad_factors = Xb.T @ (g[:, None] * s) - (Xb.multiply(Xb).T @ g)[:, None] * V
            t = state["t"]
            _update(params, "bias", t, state["bias"], state["bias_state"], slice(None), np.array([g.sum()]))
            _update(params, "linear", t, state["linear"], state["linear_state"], present, grad_linear)
            _update(params, "factors", t, state["factors"], state["factors_state"], present, grad_factors)
        tp, fp, tn, fn = (int(c) for c in confusion)
        history.append(metrics(params["predictor_type"], loss_sum, n, (tp, fp, tn, fn)))
    return state, history


# -- ALS and MCMC (fmfast.training.bayes) -------------------------------------------------------
#
# The sweeps of the core's rust/fmfast-core/src/fm/bayes, one coordinate at a time in column order
# (the core's block-parallel runs give the same numbers), with the same draws: each is a pure
# function of (seed, stream, index), SplitMix64's mixer over 64-bit words, replayed here with
# Python integers.

_MASK = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15
_GAMMA_SLOT = 1 << 20
#: The kinds of draws of a sweep; sweep s draws kind k from stream 8 s + k.
_ALPHA, _BIAS, _LINEAR_PRECISION, _LINEAR_MEAN, _LINEAR, _FACTOR_PRECISION, _FACTOR_MEAN, _FACTOR = range(8)
#: The shape of the Gamma prior that the levels of a noise factor share (the core's).
_NOISE_SHAPE = 5.0


def _mix(z: int) -> int:
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
    return z ^ (z >> 31)


class Draws:
    """The core's draws of one seed: uniform in (0, 1], normal (Box-Muller), Gamma (Marsaglia-Tsang)."""

    def __init__(self, seed: int) -> None:
        self.key = _mix((seed + _GOLDEN) & _MASK)

    def uniform(self, stream: int, index: int) -> float:
        """``((bits >> 11) + 1) / 2**53`` of the 64 bits at ``(stream, index)``."""
        bits = _mix((_mix((self.key + stream) & _MASK) + index) & _MASK)
        return ((bits >> 11) + 1) / float(1 << 53)

    def normal(self, stream: int, index: int) -> float:
        """Box-Muller of the uniforms at ``2 index`` and ``2 index + 1``."""
        u1, u2 = self.uniform(stream, 2 * index), self.uniform(stream, 2 * index + 1)
        return math.sqrt(-2.0 * math.log(u1)) * math.cos(2.0 * math.pi * u2)

    def gamma(self, stream: int, slot: int, shape: float, rate: float) -> float:
        """Gamma(``shape`` ≥ 1, ``rate``), Marsaglia and Tsang's method.

        Attempt ``t`` reads the normal at ``slot·2²⁰ + 2t`` and the uniform at twice the next index.
        """
        d = shape - 1.0 / 3.0
        c = 1.0 / math.sqrt(9.0 * d)
        for attempt in range(_GAMMA_SLOT // 2):
            index = slot * _GAMMA_SLOT + 2 * attempt
            z = self.normal(stream, index)
            v = 1.0 + c * z
            if v <= 0.0:
                continue
            v = v * v * v
            if math.log(self.uniform(stream, 2 * (index + 1))) < 0.5 * z * z + d - d * v + d * math.log(v):
                return d * v / rate
        return shape / rate


def _prior_draws(
    draws: Draws,
    values: np.ndarray,
    groups: np.ndarray,
    previous: list[tuple[float, float]],
    sweep: int,
    kinds: tuple[int, int],
    slot: Any,
) -> list[tuple[float, float]]:
    """Each group's ``(mean, precision)`` from its Normal-Gamma hyperprior given ``values``."""
    drawn = []
    for g, (mu, _) in enumerate(previous):
        theta = values[groups == g].astype(np.float64)
        n = float(theta.size)
        squares = float(np.sum((theta - mu) ** 2))
        precision = draws.gamma(
            8 * sweep + kinds[0], slot(g), 0.5 * (n + 2.0), 0.5 * (1.0 + mu * mu + squares)
        )
        mean = float(theta.sum()) / (n + 1.0) + draws.normal(8 * sweep + kinds[1], slot(g)) / math.sqrt(
            (n + 1.0) * precision
        )
        drawn.append((mean, precision))
    return drawn


def _expected_priors(
    values: np.ndarray, variances: np.ndarray, groups: np.ndarray, n_groups: int
) -> list[tuple[float, float]]:
    """Adaptive ALS: each group's ``(mean, precision)``: the means of what MCMC draws, ``θ² + s`` for ``θ²``.

    ``μ = Σθ / (n + 1)``, then ``λ = (n + 2) / (1 + μ² + Σ ((θ - μ)² + s))``.
    """
    priors = []
    for g in range(n_groups):
        theta = values[groups == g].astype(np.float64)
        mean = float(theta.sum()) / (theta.size + 1.0)
        squares = float(np.sum((theta - mean) ** 2 + variances[groups == g]))
        priors.append((mean, (theta.size + 2.0) / (1.0 + mean * mean + squares)))
    return priors


def _prediction_variance(
    X: sp.csc_array, factors: np.ndarray, linear_var: np.ndarray, factors_var: np.ndarray
) -> np.ndarray:
    """Adaptive ALS: each row's ``Var ŷ`` when the coordinates are independent (means, variances).

    Written as the sum over pairs it is (the core uses an O(nnz) rearrangement of it).
    """
    rows = sp.csr_array(X)
    out = np.zeros(rows.shape[0])
    for row in range(rows.shape[0]):
        cols = rows.indices[rows.indptr[row] : rows.indptr[row + 1]]
        x = rows.data[rows.indptr[row] : rows.indptr[row + 1]]
        out[row] = float(np.sum(x * x * linear_var[cols]))
        mu = factors[cols].astype(np.float64) * x[:, None]
        tau = factors_var[cols] * (x * x)[:, None]
        for a in range(len(cols)):
            for b in range(a + 1, len(cols)):
                # Var(a_a a_b) and, for each third term c, Cov(a_a a_b, a_a a_c) and Cov(a_a a_b, a_b a_c).
                second = (mu[a] ** 2 + tau[a]) * (mu[b] ** 2 + tau[b]) - mu[a] ** 2 * mu[b] ** 2
                out[row] += float(np.sum(second))
                for c in range(len(cols)):
                    if c not in (a, b):
                        out[row] += float(np.sum(tau[a] * mu[b] * mu[c] + tau[b] * mu[a] * mu[c]))
    return out


def one_hot_levels(X: Any, groups: np.ndarray) -> list[tuple[np.ndarray, int]]:
    """Each one-hot group's level of every row and its number of levels, groups in order.

    A group is one-hot when every row has exactly one nonzero value among its columns; a row's
    level is that column's position among the group's, and the group has a level per column.
    """
    rows = sp.csr_array(X)
    rows.eliminate_zeros()
    levels = []
    for g in range(int(groups.max()) + 1):
        part = rows[:, np.flatnonzero(groups == g)]
        if part.shape[0] and np.all(np.diff(part.indptr) == 1):
            levels.append((part.indices.astype(np.int64), part.shape[1]))
    return levels


def bayes_sweeps(
    X: Any,
    y: np.ndarray,
    weights: dict[str, np.ndarray],
    optimizer: str,
    sweeps: int,
    *,
    groups: np.ndarray | None = None,
    sample_weight: np.ndarray | None = None,
    wd: tuple[float, float, float] | None = (0.0, 0.0, 0.0),
    seed: int = 0,
    noise_groups: np.ndarray | None = None,
    noise: str = "shared",
) -> dict[str, np.ndarray]:
    """``sweeps`` sweeps of ALS or MCMC (``seed``) from ``weights``.

    ALS: ``wd`` holds the bias, linear and factor decays; ``None`` is adaptive ALS (the strengths
    and the noise re-estimated every sweep, each coordinate's variance kept). MCMC: ``noise_groups``
    (codes from 0, one a row) gives each group of rows its own noise precision, folded into the
    rows' weights; without it, ``noise="per-level"`` makes a row's precision the product of one per
    one-hot group of ``groups``, its level's in that group (:func:`one_hot_levels`).

    Returns the last sweep's weights (float32 ``bias`` ``(1,)``, ``linear``, ``factors``): the
    core's, to rounding of the float64 sums.
    """
    X = sp.csc_array(X, dtype=np.float64)
    n, d = X.shape
    bias = weights["bias"].astype(np.float32).copy()
    linear = weights["linear"].astype(np.float32).copy()
    factors = weights["factors"].astype(np.float32).copy()
    k = factors.shape[1]
    groups = np.zeros(d, np.int64) if groups is None else np.asarray(groups)
    n_groups = int(groups.max()) + 1
    r = weight = np.ones(n) if sample_weight is None else np.asarray(sample_weight, np.float64)
    mcmc = optimizer == "mcmc"
    adaptive = optimizer == "als" and wd is None
    lam = (0.0, 0.0, 0.0) if wd is None else tuple(w * r.sum() for w in wd)
    # Adaptive ALS: the variance of each linear weight and factor.
    linear_var, factors_var = np.zeros(d), np.zeros((d, k))
    draws = Draws(seed)
    e = np.asarray(y, np.float64) - predict(
        sp.csr_array(X), {"bias": bias, "linear": linear, "factors": factors}
    )
    alpha = 1.0
    if noise_groups is not None:
        noise_levels = [(np.asarray(noise_groups), int(np.max(noise_groups)) + 1)]
    else:
        noise_levels = one_hot_levels(X, groups) if mcmc and noise == "per-level" else []
    precisions = [np.ones(count) for _, count in noise_levels]
    linear_priors = [(0.0, 1.0)] * n_groups
    factor_priors = [[(0.0, 1.0)] * n_groups for _ in range(k)]

    def conditional(
        theta: float,
        ae: float,
        b: float,
        prior: tuple[float, float],
        stream: int,
        index: int,
        spread: float = 0.0,
    ) -> float:
        a = alpha if mcmc or adaptive else 1.0
        precision = a * (b + spread) + prior[1]
        if precision <= 0.0:
            return theta
        mean = (a * (ae + theta * b) + prior[1] * prior[0]) / precision
        return mean + draws.normal(stream, index) / math.sqrt(precision) if mcmc else mean

    for s in range(sweeps):
        if mcmc and noise_levels:
            # Each factor's levels given the others': their shared prior Gamma(_NOISE_SHAPE, rate),
            # the rate first, then each level; factor j's gamma slots follow factor j - 1's.
            first = 0
            for j, (levels, count) in enumerate(noise_levels):
                rate = draws.gamma(
                    8 * s + _ALPHA,
                    first + count,
                    1.0 + _NOISE_SHAPE * count,
                    1.0 + float(np.sum(precisions[j])),
                )
                others = np.ones(n)
                for o, (other, _) in enumerate(noise_levels):
                    if o != j:
                        others = others * precisions[o][other]
                n_g = np.bincount(levels, weight, count)
                sse_g = np.bincount(levels, weight * others * e * e, count)
                precisions[j] = np.array(
                    [
                        draws.gamma(
                            8 * s + _ALPHA, first + g, _NOISE_SHAPE + 0.5 * n_g[g], rate + 0.5 * sse_g[g]
                        )
                        for g in range(count)
                    ]
                )
                first += count + 1
            r, alpha = weight.copy(), 1.0
            for (levels, _), factor in zip(noise_levels, precisions, strict=True):
                r = r * factor[levels]
        elif mcmc:
            alpha = draws.gamma(8 * s + _ALPHA, 0, 1.0 + 0.5 * r.sum(), 1.0 + 0.5 * float(np.sum(r * e * e)))
        elif adaptive:
            predicted_var = _prediction_variance(X, factors, linear_var, factors_var)
            alpha = (1.0 + 0.5 * r.sum()) / (1.0 + 0.5 * float(np.sum(r * (e * e + predicted_var))))
        old = float(bias[0])
        bias[0] = conditional(
            old, float(np.sum(r * e)), float(r.sum()), (0.0, 0.0 if mcmc else lam[0]), 8 * s + _BIAS, 0
        )
        e -= float(bias[0]) - old
        if mcmc:
            linear_priors = _prior_draws(
                draws, linear, groups, linear_priors, s, (_LINEAR_PRECISION, _LINEAR_MEAN), lambda g: g
            )
        elif adaptive:
            linear_priors = _expected_priors(linear, linear_var, groups, n_groups)
        for i in range(d):
            rows, x = X.indices[X.indptr[i] : X.indptr[i + 1]], X.data[X.indptr[i] : X.indptr[i + 1]]
            old = float(linear[i])
            prior = linear_priors[groups[i]] if mcmc or adaptive else (0.0, lam[1])
            rx = r[rows] * x
            linear[i] = conditional(old, float(rx @ e[rows]), float(rx @ x), prior, 8 * s + _LINEAR, i)
            linear_var[i] = 1.0 / (alpha * float(rx @ x) + prior[1])
            e[rows] -= (float(linear[i]) - old) * x
        for f in range(k):
            q = sp.csr_array(X) @ factors[:, f].astype(np.float64)
            if mcmc:
                factor_priors[f] = _prior_draws(
                    draws,
                    factors[:, f],
                    groups,
                    factor_priors[f],
                    s,
                    (_FACTOR_PRECISION, _FACTOR_MEAN),
                    lambda g, f=f: g * k + f,
                )
            elif adaptive:
                sigma = sp.csr_array(X).power(2) @ factors_var[:, f]
                factor_priors[f] = _expected_priors(factors[:, f], factors_var[:, f], groups, n_groups)
            for i in range(d):
                rows, x = X.indices[X.indptr[i] : X.indptr[i + 1]], X.data[X.indptr[i] : X.indptr[i + 1]]
                old = float(factors[i, f])
                h = x * (q[rows] - old * x)
                prior = factor_priors[f][groups[i]] if mcmc or adaptive else (0.0, lam[2])
                rh = r[rows] * h
                spread = 0.0
                if adaptive:
                    # The uncertainty of h through the row's other factors.
                    spread = float(r[rows] @ (x * x * (sigma[rows] - x * x * factors_var[i, f])))
                factors[i, f] = conditional(
                    old, float(rh @ e[rows]), float(rh @ h), prior, 8 * s + _FACTOR, i * k + f, spread
                )
                if adaptive:
                    variance = 1.0 / (alpha * (float(rh @ h) + spread) + prior[1])
                    sigma[rows] += (variance - factors_var[i, f]) * x * x
                    factors_var[i, f] = variance
                delta = float(factors[i, f]) - old
                e[rows] -= delta * h
                q[rows] += delta * x
    return {"bias": bias, "linear": linear, "factors": factors}
