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
        return rng.normal(0.0, params[f"{group}_init_sigma"], shape)
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
