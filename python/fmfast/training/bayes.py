"""Fitting by ALS and by Gibbs sampling (Bayesian FM, MCMC): the Python side of the core's sweeps.

``optimizer="als"`` and ``"mcmc"`` sweep the parameters one coordinate at a time, as libFM does
(:mod:`fmfast.training._reference` holds the same sweeps in NumPy). ALS sets each coordinate to
the minimiser of the squared error plus L2 penalties: adaptive ones by default (re-estimated every
sweep, mean-field variational Bayes with MCMC's priors), SageMaker's weight decays with
``als_regularization="fixed"``; MCMC draws it from its
conditional posterior, with a normal prior per group of features whose mean and precision are
sampled too (Normal-Gamma hyperpriors), as are the noise precisions (by default one per level of
each one-hot group of features, multiplied: ``noise``): nothing to tune but the number of sweeps
(``epochs``). A fit of MCMC keeps up to ``posterior_samples`` samples, evenly spaced
after ``burn_in`` sweeps, from each of its ``num_chains`` independent chains (run side by side on
the threads, the seed of each derived from ``random_state``): the kept samples of every chain are
the posterior. Predictions on any data average the predictions of the kept samples (the
posterior mean of the prediction, not the prediction of the posterior mean: the pairwise term is
not linear in the factors), each clipped to the training labels' range first, as libFM does. The
estimator's weights (``w0_``, ``w_``, ``V_``, ``to_sagemaker``) are the posterior mean of the
parameters.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from fmfast import _fmfast
from fmfast._inputs import Rows, check_finite, prepare_rows, vector
from fmfast._progress import FitProgress
from fmfast._scores import raw_scores
from fmfast.exceptions import InvalidInputError
from fmfast.recsys.features import BlockInfo, FeatureEncoder
from fmfast.training._labels import checked_labels
from fmfast.training.loop import (
    aligned,
    aligned_zeros,
    check_weights_fit_memory,
    initial_state,
    is_recordio_source,
    physical_memory,
    sagemaker_metrics,
)

if TYPE_CHECKING:
    from fmfast.training.estimator import FactorizationMachine

#: The arrays of a :class:`Posterior`, as a model file names them.
POSTERIOR_ARRAYS = ("posterior_bias", "posterior_linear", "posterior_factors", "posterior_clip")

#: What ``groups`` may be: an encoder or its blocks, or one group label per column.
Groups = FeatureEncoder | Sequence[BlockInfo] | Any | None


@dataclass(frozen=True)
class Posterior:
    """The kept samples of an MCMC fit and the range their predictions are clipped to.

    Biases ``(s,)``, linear weights ``(s, d)``, factors ``(s, d, k)`` (float32); ``clip``, the
    ``[low, high]`` (float64) each sample's predictions are clipped to before they are averaged.
    """

    bias: np.ndarray
    linear: np.ndarray
    factors: np.ndarray
    clip: np.ndarray

    def arrays(self) -> dict[str, np.ndarray]:
        """The samples under their model-file names."""
        return dict(zip(POSTERIOR_ARRAYS, (self.bias, self.linear, self.factors, self.clip), strict=True))

    def mean(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The posterior mean of the bias ``(1,)``, linear weights and factors, float32, aligned."""
        bias = aligned(np.array([self.bias.mean(dtype=np.float64)]))
        return (
            bias,
            aligned(self.linear.mean(axis=0, dtype=np.float64)),
            aligned(self.factors.mean(axis=0, dtype=np.float64)),
        )

    def scores(self, rows: Rows, n_threads: int) -> np.ndarray:
        """The mean over the samples of each row's ŷ, clipped to ``clip``: the posterior predictive mean."""
        total = np.zeros(rows.n_rows)
        for bias, linear, factors in zip(self.bias, self.linear, self.factors, strict=True):
            total += np.clip(raw_scores(rows, float(bias), linear, factors, n_threads=n_threads), *self.clip)
        return total / len(self.bias)


def label_range(labels: np.ndarray, weights: np.ndarray | None) -> np.ndarray:
    """``[min, max]`` of the labels of the rows that count (weight above 0), float64.

    MCMC clips each sample's predictions to it before averaging them, as libFM does: a sample's
    prediction beyond every training label is pulled back to where the data are (MovieLens-100K:
    0.0005 RMSE, measured in ``docs/design/bayes.md``). Rows of weight 0 are left out, so that
    they change nothing, as if they were not there.
    """
    counted = labels if weights is None else labels[weights > 0]
    return np.array([counted.min(), counted.max()], dtype=np.float64)


def bayes_config(model: FactorizationMachine, seed: int = 0) -> _fmfast.BayesConfig:
    """The settings of ``model``'s ALS or MCMC fit, checked by the core."""
    if model.predictor_type != "regressor":
        raise InvalidInputError(
            f"optimizer={model.optimizer!r} trains predictor_type='regressor' only, "
            f"got {model.predictor_type!r}"
        )
    counts = {
        "epochs": (1, 2**32 - 1),
        "burn_in": (0, 2**32 - 1),
        "posterior_samples": (1, 2**32 - 1),
        "num_chains": (1, 2**32 - 1),
    }
    for name, (low, high) in counts.items():
        value = getattr(model, name)
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or not low <= value <= high:
            raise InvalidInputError(f"{name} must be an integer >= {low} and <= {high}, got {value!r}")
    decays = {}
    for name in ("bias_wd", "linear_wd", "factors_wd"):
        value = getattr(model, name)
        if isinstance(value, bool) or not isinstance(value, int | float | np.number):
            raise InvalidInputError(f"{name} must be a finite number >= 0, got {value!r}")
        decays[name] = float(value)
    if not isinstance(model.als_regularization, str):
        raise InvalidInputError(
            f"als_regularization must be 'adaptive' or 'fixed', got {model.als_regularization!r}"
        )
    if not isinstance(model.noise, str):
        raise InvalidInputError(f"noise must be 'per-level' or 'shared', got {model.noise!r}")
    return _fmfast.BayesConfig(
        optimizer=model.optimizer,
        epochs=int(model.epochs),
        burn_in=int(model.burn_in),
        posterior_samples=int(model.posterior_samples),
        seed=seed,
        als_regularization=model.als_regularization,
        num_chains=int(model.num_chains),
        # ALS models no noise per row: the setting is MCMC's (and checked for it).
        noise=model.noise if model.optimizer == "mcmc" else "shared",
        **decays,
    )


def feature_groups(groups: Groups, n_cols: int) -> np.ndarray:
    """One group code per column (uint32, from 0): one group when ``groups`` is ``None``.

    ``groups`` is a fitted :class:`~fmfast.FeatureEncoder` (each block a group), a list of its
    :class:`~fmfast.recsys.features.BlockInfo` covering every column, or one label per column.
    """
    if groups is None:
        return np.zeros(n_cols, dtype=np.uint32)
    if isinstance(groups, FeatureEncoder):
        groups = groups.blocks
    if isinstance(groups, Sequence) and groups and all(isinstance(b, BlockInfo) for b in groups):
        labels = np.full(n_cols, -1, dtype=np.int64)
        for code, block in enumerate(groups):
            labels[block.offset : block.offset + block.size] = code
        uncovered = np.flatnonzero(labels < 0)
        if uncovered.size or sum(b.size for b in groups) != n_cols:
            raise InvalidInputError(
                f"the blocks cover {sum(b.size for b in groups)} columns but X has {n_cols}"
                + (f" (column {uncovered[0]} is in none)" if uncovered.size else "")
            )
        # Numbered without the empty blocks, so that every code is below the number of columns.
        return label_codes(labels)
    labels = np.asarray(groups)
    if labels.ndim != 1 or labels.shape[0] != n_cols:
        raise InvalidInputError(
            f"groups must be a FeatureEncoder, its blocks or one label per column ({n_cols}), "
            f"got shape {labels.shape}"
        )
    return label_codes(labels)


def label_codes(labels: np.ndarray) -> np.ndarray:
    """Codes from 0 (uint32) in order of first appearance, as blocks are numbered."""
    _, first, inverse = np.unique(labels, return_index=True, return_inverse=True)
    return np.argsort(np.argsort(first))[inverse].astype(np.uint32)


def row_groups(noise_groups: Any, n_rows: int) -> np.ndarray | None:
    """One noise group code per row (uint32, from 0), or ``None`` (one group for every row)."""
    if noise_groups is None:
        return None
    labels = np.asarray(noise_groups)
    if labels.ndim != 1 or labels.shape[0] != n_rows:
        raise InvalidInputError(
            f"noise_groups must hold one label per row ({n_rows}), got shape {labels.shape}"
        )
    return label_codes(labels)


def check_samples_fit_memory(kept: int, feature_dim: int, num_factors: int, chains: int, n_rows: int) -> None:
    """Refuse, before allocating them, kept samples and chains larger than half the machine's memory.

    Each of the ``chains`` sweeps its own weights (float32) with its own row caches (24 bytes a row).
    """
    sample = feature_dim * (num_factors + 1) * np.dtype(np.float32).itemsize
    nbytes = kept * sample + chains * (sample + 24 * n_rows)
    memory = physical_memory()
    if memory is not None and nbytes > memory // 2:
        raise InvalidInputError(
            f"{kept} posterior samples of feature_dim {feature_dim} x num_factors {num_factors} "
            f"from {chains} chain(s) of {n_rows} rows need {nbytes / 2**30:.1f} GiB, more than half "
            f"this machine's {memory / 2**30:.1f} GiB: lower posterior_samples or num_chains"
        )


def fit_bayes(
    model: FactorizationMachine,
    X: Any,
    y: Any,
    sample_weight: Any,
    eval_set: tuple[Any, Any] | None,
    groups: Groups,
    progress: FitProgress,
    noise_groups: Any = None,
) -> None:
    """The sweeps of :meth:`~fmfast.FactorizationMachine.fit` with ``optimizer="als"`` or ``"mcmc"``.

    Sets the model's weights (the last sweep's for ALS, the posterior mean for MCMC), its kept
    samples (of every chain), ``history_`` and, for MCMC, ``noise_precisions_``. Ctrl-C keeps the
    complete sweeps (MCMC: the samples kept so far, unfitted if none; ALS: the weights as they
    were when it stopped), then raises.
    """
    if is_recordio_source(X):
        raise InvalidInputError(
            f"optimizer={model.optimizer!r} trains on a matrix in memory: read the RecordIO input with "
            "fmfast.read_recordio first"
        )
    rows = prepare_rows(X)
    check_finite(rows)
    if rows.n_rows == 0:
        raise InvalidInputError("X has no rows")
    if rows.n_cols == 0:
        # scikit-learn's wording, which its checks look for.
        raise InvalidInputError(
            f"X has 0 feature(s) (shape=({rows.n_rows}, 0)) while a minimum of 1 is required."
        )
    labels = np.asarray(checked_labels(y, rows.n_rows, model.predictor_type), dtype=np.float64)
    weights = None if sample_weight is None else vector(sample_weight, rows.n_rows, "sample_weight")
    if weights is not None and not weights.any():
        raise InvalidInputError("every sample_weight is zero: there is nothing to learn from")
    # Before anything of the feature dimension's size is allocated (the group codes first).
    check_weights_fit_memory(rows.n_cols, int(model.num_factors))
    codes = feature_groups(groups, rows.n_cols)
    noise_codes = row_groups(noise_groups, rows.n_rows)
    evaluation = None
    if eval_set is not None:
        eval_rows = prepare_rows(eval_set[0])
        check_finite(eval_rows)
        if eval_rows.n_cols != rows.n_cols:
            raise InvalidInputError(f"eval_set's X has {eval_rows.n_cols} columns but X has {rows.n_cols}")
        eval_labels = np.asarray(
            checked_labels(eval_set[1], eval_rows.n_rows, model.predictor_type), np.float64
        )
        evaluation = (eval_rows.indices, eval_rows.data, eval_labels)
    state = initial_state(model, rows.n_cols)
    seed = int(np.random.default_rng(model.random_state).integers(2**63))
    settings = bayes_config(model, seed)
    k = int(model.num_factors)
    chains = int(model.num_chains)
    check_samples_fit_memory(settings.kept, rows.n_cols, k, chains, rows.n_rows)
    posterior = Posterior(
        aligned_zeros((settings.kept,)),
        aligned_zeros((settings.kept, rows.n_cols)),
        aligned_zeros((settings.kept, rows.n_cols, k)),
        label_range(labels, weights),
    )
    mcmc = model.optimizer == "mcmc"
    progress.epoch_rows(rows.n_rows)
    stats, noise_precisions, stopped = _fmfast.fm_fit_bayes(
        rows.n_cols,
        rows.indices,
        rows.data,
        labels,
        weights,
        codes,
        state,
        posterior.bias,
        posterior.linear,
        posterior.factors,
        settings,
        eval_set=evaluation,
        n_threads=int(model.n_threads),
        progress=progress.callback(),
        clip=tuple(posterior.clip) if mcmc else None,
        noise_groups=noise_codes,
    )
    history = []
    for sweep, (train_sse, eval_sse, _) in enumerate(stats):
        entry = {"epoch": sweep, **sagemaker_metrics("regressor", rows.n_rows, train_sse, 0, 0, 0, 0)}
        if eval_sse is not None:
            entry["eval_rmse"] = math.sqrt(eval_sse / len(evaluation[2]))  # type: ignore[index]
        history.append(entry)
    # Every chain keeps the samples of the same sweeps.
    n_kept = chains * sum(kept for _, _, kept in stats)
    if mcmc and n_kept == 0:
        model._state, model._posterior = None, None
    elif mcmc:
        kept = Posterior(
            posterior.bias[:n_kept], posterior.linear[:n_kept], posterior.factors[:n_kept], posterior.clip
        )
        model._state = type(state)(*kept.mean(), state.bias_state, state.linear_state, state.factors_state)
        model._posterior = kept
    else:
        model._state, model._posterior = state, None
    model.history_ = history
    if mcmc:
        model.noise_precisions_ = noise_precisions
    for entry in history:
        progress.epoch_ended(rows.n_rows, entry)
    if stopped is not None:
        raise stopped
