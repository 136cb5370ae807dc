"""Factorization Machines with Amazon SageMaker's hyperparameters, trained locally by the Rust core.

:class:`FactorizationMachine` takes SageMaker FM's hyperparameter names and defaults and follows
its semantics: MXNet's Adam (or SGD, AdaGrad) with per-group learning rates and L2 weight decay,
mini-batches in stored row order, lazy updates of the rows of the features present in a batch,
and SageMaker's metric names. It is scikit-learn compatible (``get_params``/``set_params``,
``fit``/``predict``/``score``) without depending on scikit-learn.

Design choices, shared with the NumPy reference :mod:`fmfast.training._reference`:

* Weights are drawn in Python from ``np.random.default_rng(random_state)`` (bias, then ``w``,
  then ``V``, in float64, then rounded to float32) and handed to Rust, which keeps nothing
  between calls.
* Rows are visited in stored order each epoch, without shuffling (SageMaker reads its training
  channel sequentially); shuffle the rows yourself if you want otherwise.
* Results are bit-identical for every ``n_threads``: the core sums every gradient in row order.
* Weights and optimizer state are float32, as SageMaker FM (MXNet) keeps them; the core computes
  in float64 and rounds each new value when it stores it.
"""

from __future__ import annotations

import inspect
import json
import math
import os
import types
import warnings
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from functools import update_wrapper
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from fmfast import _fmfast
from fmfast._atomic import atomic_output
from fmfast._inputs import as_csr, csr_indices
from fmfast._npz import check_npz
from fmfast._progress import FitProgress, Progress, fit_progress, progress_callback
from fmfast.exceptions import InvalidInputError, ModelFormatError
from fmfast.interop.artifact import (
    FMFAST_SETTINGS,
    SageMakerFM,
    format_hyperparameters,
    parse_hyperparameters,
    read_sagemaker_model,
    write_sagemaker_model,
)
from fmfast.recordio.codec import iter_recordio
from fmfast.training._sklearn import data_conversion_warning, not_fitted_error, tags

#: Name written into (and required from) the header of saved models.
MODEL_FORMAT = "fmfast.FactorizationMachine"
#: Version of the saved-model layout this fmfast writes.
MODEL_FORMAT_VERSION = 2
#: Array dtype of each saved-model version this fmfast reads (version 1 arrays are float64; they
#: are rounded to float32 on loading).
_ARRAY_DTYPES: dict[int, type] = {1: np.float64, 2: np.float32}

_PREDICTOR_TYPES = ("regressor", "binary_classifier")
_OPTIMIZERS = {"sgd": 0, "adam": 2, "adagrad": 1}
_INIT_METHODS = ("normal", "uniform", "constant")
_GROUPS = ("bias", "linear", "factors")
_STATE_ARRAYS = ("bias", "linear", "factors", "bias_state", "linear_state", "factors_state")
#: Largest ``num_factors``: beyond it, factors and their optimizer state (``feature_dim * num_factors``
#: values each) and the training scratch (``mini_batch_size * num_factors``) outgrow any memory.
MAX_NUM_FACTORS = 1 << 16
#: The range of each integer hyperparameter: what the core takes (mini-batches are counted in
#: 32 bits) and, for ``n_threads``, a pool that can be started.
_INT_RANGES = {
    "num_factors": (1, MAX_NUM_FACTORS),
    "epochs": (1, (1 << 32) - 1),
    "mini_batch_size": (1, (1 << 32) - 1),
    "n_threads": (0, 1024),
}
#: What a training call replaces, and a failed one puts back.
_FITTED_ATTRIBUTES = ("_state", "history_", "best_epoch_", "classes_")
#: Values drawn at a time when initialising weights.
_DRAW_BLOCK = 1 << 16
#: Byte alignment of the arrays training updates in place: a row of V or of its state that starts
#: on a cache line spans no more lines than its size needs (NumPy's large arrays start 16 bytes
#: into a line, so a 64-byte row of Adam state at k = 8 spanned two).
_ALIGNMENT = 64


def _aligned_zeros(shape: tuple[int, ...]) -> np.ndarray:
    """C-contiguous float32 zeros starting on a 64-byte boundary.

    Like ``np.zeros``, a large array takes no memory until it is written: the optimizer state of
    features training never sees stays unallocated, and the peak during ``fit`` holds no zeroed
    copy next to the drawn weights.
    """
    nbytes = math.prod(shape) * np.dtype(np.float32).itemsize
    try:
        buffer = np.zeros(nbytes + _ALIGNMENT, dtype=np.uint8)
    except (MemoryError, ValueError) as e:  # NumPy's ValueError: beyond the address space
        raise InvalidInputError(
            f"cannot allocate {nbytes:,} bytes for model arrays of shape {shape} "
            "(feature_dim x num_factors): lower num_factors or the number of features"
        ) from e
    start = -buffer.ctypes.data % _ALIGNMENT
    return buffer[start : start + nbytes].view(np.float32).reshape(shape)


def _check_weights_fit_memory(feature_dim: int, num_factors: int) -> None:
    """Refuse, before allocating them, weights larger than the machine's physical memory.

    The feature dimension may come from a RecordIO record's declared shape: a 60-byte file could
    otherwise make ``fit`` draw hundreds of GB of weights.
    """
    nbytes = feature_dim * (num_factors + 1) * np.dtype(np.float32).itemsize
    try:
        memory = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):
        return
    if nbytes > memory:
        raise InvalidInputError(
            f"feature_dim {feature_dim} with num_factors {num_factors} needs {nbytes / 2**30:.1f} GiB of "
            f"weights, more than this machine's {memory / 2**30:.1f} GiB of memory (the feature dimension "
            "is X's number of columns, or the shape its RecordIO records declare): lower num_factors or "
            "the number of features"
        )


def _aligned(values: np.ndarray) -> np.ndarray:
    """A C-contiguous float32 copy of ``values`` starting on a 64-byte boundary."""
    array = _aligned_zeros(values.shape)
    array[...] = values
    return array


@dataclass
class _TrainState:
    """Weights and optimizer state; the Rust core reads these attributes and updates them in place.

    Every array is float32. State is weight-major, ``(1, slots)``, ``(d, slots)`` and
    ``(d, slots, k)``, with Adam's slots ``(m, v)``, AdaGrad's ``(h,)`` and none for SGD, so that
    one row's state is contiguous.
    """

    bias: np.ndarray
    linear: np.ndarray
    factors: np.ndarray
    bias_state: np.ndarray
    linear_state: np.ndarray
    factors_state: np.ndarray
    t: int

    def copy(self) -> _TrainState:
        return replace(self, **{name: _aligned(getattr(self, name)) for name in _STATE_ARRAYS})

    def zeros_like(self) -> _TrainState:
        """Zeroed arrays of the same shapes (the pages are only taken once written)."""
        return replace(self, **{name: _aligned_zeros(getattr(self, name).shape) for name in _STATE_ARRAYS})


@dataclass
class _TrainConfig:
    """Hyperparameters as the Rust core reads them (attribute names match its ``Hyperparameters``)."""

    predictor_type: str
    optimizer: str
    epochs: int
    mini_batch_size: int
    bias_lr: float
    linear_lr: float
    factors_lr: float
    bias_wd: float
    linear_wd: float
    factors_wd: float
    clip_gradient: float | None
    eps: float | None
    rescale_grad: float | None


@dataclass(frozen=True)
class _Rows:
    """CSR rows as the core borrows them."""

    n_rows: int
    n_cols: int
    indices: tuple[np.ndarray, np.ndarray]
    data: np.ndarray


def _prepare_rows(X: Any) -> _Rows:
    """Any matrix as canonical CSR with float32/float64 values; copies only when needed."""
    if not sp.issparse(X):
        X = np.asarray(X)
        if X.ndim == 1:
            raise InvalidInputError(
                f"X must be 2-dimensional, got shape {X.shape}: Reshape your data with X.reshape(-1, 1) "
                "if it holds one feature, or X.reshape(1, -1) if it holds one row"
            )
        if X.dtype.kind == "c":
            raise InvalidInputError(f"Complex data not supported: X has dtype {X.dtype}")
        if X.dtype.kind == "O":
            # Numbers held as Python objects (a mixed pandas frame); a value that is not a number
            # raises NumPy's TypeError.
            X = X.astype(np.float64)
    csr = X if isinstance(X, sp.csr_array | sp.csr_matrix) else as_csr(X)
    if csr.ndim != 2:
        raise InvalidInputError(f"X must be 2-dimensional, got shape {csr.shape}")
    if not csr.has_canonical_format:
        csr = csr.copy()
        csr.sum_duplicates()
    data = csr.data
    if data.dtype not in (np.float32, np.float64):
        if data.dtype.kind not in "biuf":
            raise InvalidInputError(f"X of dtype {data.dtype} is not numeric")
        data = data.astype(np.float64)
    n_rows, n_cols = csr.shape
    return _Rows(int(n_rows), int(n_cols), csr_indices(csr), np.ascontiguousarray(data))


def _check_finite(rows: _Rows) -> None:
    bad = np.flatnonzero(~np.isfinite(rows.data))
    if bad.size:
        row = int(np.searchsorted(rows.indices[0], bad[0], side="right")) - 1
        value = rows.data[bad[0]]
        # Written as the core writes it (NaN, inf, -inf), whether fit or predict finds it.
        raise InvalidInputError(
            f"X holds a non-finite value in row {row}: {'NaN' if np.isnan(value) else value}"
        )


def _vector(values: Any, n_rows: int, what: str, dtypes: tuple[type, ...] = (np.float64,)) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 1:
        raise InvalidInputError(f"{what} must be a vector, got shape {array.shape}")
    if array.shape[0] != n_rows:
        raise InvalidInputError(f"X has {n_rows} rows but {what} has {array.shape[0]} values")
    if array.dtype.kind not in "biuf":
        raise InvalidInputError(f"{what} of dtype {array.dtype} is not numeric")
    return np.ascontiguousarray(array, dtype=array.dtype if array.dtype in dtypes else np.float64)


def _target(y: Any) -> np.ndarray:
    """``y`` as a vector; a column vector is read as one, with scikit-learn's warning."""
    array = np.asarray(y)
    if array.ndim == 2 and array.shape[1] == 1:
        warnings.warn(
            "A column-vector y was passed when a 1d array was expected; it is read as one",
            data_conversion_warning(),
            stacklevel=5,  # the caller of fit or partial_fit (through the error-undoing wrapper)
        )
        array = array[:, 0]
    if array.ndim != 1:
        raise InvalidInputError(f"y must be a vector, got shape {array.shape}")
    return array


#: The classes of a binary classifier trained on labels 0/1 (SageMaker's), or read from SageMaker.
_SAGEMAKER_CLASSES = np.array([0, 1])


def _shown(value: Any) -> str:
    """A label as Python writes it (``2.0``, ``'spam'``, not ``np.float64(2.0)``)."""
    return repr(value.item() if isinstance(value, np.generic) else value)


def _classes_of(labels: np.ndarray) -> np.ndarray:
    """The two classes of a binary classifier's labels, sorted.

    Labels that are all 0 or 1 (SageMaker's) give the classes 0 and 1 even when one of them is
    absent, so that they train as they always have.
    """
    if labels.dtype.kind == "c":
        raise InvalidInputError(f"Complex data not supported: y has dtype {labels.dtype}")
    if labels.dtype.kind == "f":
        bad = np.flatnonzero(~np.isfinite(labels))
        if bad.size:
            raise InvalidInputError(f"label of row {bad[0]} is not finite: {labels[bad[0]]}")
        if (labels != np.round(labels)).any():
            raise InvalidInputError(
                "Unknown label type: continuous; binary_classifier labels are two classes (0/1, "
                "-1/+1, two strings, ...): use predictor_type='regressor' for continuous targets"
            )
    classes, first = np.unique(labels, return_index=True)
    if classes.dtype.kind in "biuf" and np.isin(classes, (0, 1)).all():
        return _SAGEMAKER_CLASSES.astype(classes.dtype)
    if len(classes) == 1:
        raise InvalidInputError(
            f"binary_classifier needs two classes in y, got 1 class: {_shown(classes[0])}"
        )
    if len(classes) > 2:
        row = int(np.sort(first)[2])
        raise InvalidInputError(
            f"Only binary classification is supported. y holds {len(classes)} classes: "
            f"row {row} holds a third, {_shown(labels[row])}"
        )
    return classes


def _encode(labels: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """The classifier's labels as 0.0/1.0, the index of each in ``classes``."""
    index = np.minimum(np.searchsorted(classes, labels), 1)
    unknown = np.flatnonzero(classes[index] != labels)
    if unknown.size:
        row = int(unknown[0])
        raise InvalidInputError(
            f"label of row {row} is {_shown(labels[row])}, not one of the model's classes {classes.tolist()}"
        )
    return index.astype(np.float64)


def _labels(y: Any, n_rows: int, predictor_type: str) -> np.ndarray:
    if y is None:
        raise InvalidInputError(
            "FactorizationMachine requires y to be passed, but the target y is None "
            "(only RecordIO input carries its labels)"
        )
    # float32 labels (what read_recordio returns) are passed to the core as they are: no copy.
    labels = _vector(y, n_rows, "y", (np.float32, np.float64))
    bad = np.flatnonzero(~np.isfinite(labels))
    if bad.size:
        raise InvalidInputError(f"label of row {bad[0]} is not finite: {labels[bad[0]]}")
    if predictor_type == "binary_classifier":
        bad = np.flatnonzero((labels != 0.0) & (labels != 1.0))
        if bad.size:
            raise InvalidInputError(
                f"label of row {bad[0]} is {labels[bad[0]]}; binary_classifier labels must be 0 or 1"
            )
    return labels


def _sigmoid(z: np.ndarray) -> np.ndarray:
    e = np.exp(-np.abs(z))
    result: np.ndarray = np.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e))
    return result


def _metrics(
    predictor_type: str, n: int, loss_sum: float, tp: int, fp: int, tn: int, fn: int
) -> dict[str, float]:
    if predictor_type == "regressor":
        return {"rmse": math.sqrt(loss_sum / n)}
    denominator = 2 * tp + fp + fn
    return {
        "binary_classification_accuracy": (tp + tn) / n,
        "binary_classification_cross_entropy": loss_sum / n,
        "binary_f_beta": 2 * tp / denominator if denominator else 0.0,
    }


_EpochStats = tuple[int, float, int, int, int, int]
#: Rows read at a time from RecordIO input while training, at most (whole mini-batches, at least
#: one): what a streamed pass holds in memory. Each read is one call to the core, whose thread
#: chooser measures the first 64 mini-batches of every call.
_ROWS_PER_READ = 1 << 18


def _add_stats(a: _EpochStats, b: _EpochStats) -> _EpochStats:
    return (a[0] + b[0], a[1] + b[1], a[2] + b[2], a[3] + b[3], a[4] + b[4], a[5] + b[5])


def _history(
    history: list[dict[str, float]], predictor_type: str, stats: list[_EpochStats]
) -> list[dict[str, float]]:
    """``history`` followed by one entry of training metrics per epoch of ``stats``."""
    history = list(history)
    for epoch_stats in stats:
        history.append({"epoch": len(history), **_metrics(predictor_type, *epoch_stats)})
    return history


def _is_recordio_source(X: Any) -> bool:
    return isinstance(X, str | os.PathLike)


def _recordio_batches(source: str | os.PathLike[str], batch_size: int) -> Iterator[tuple[Any, Any]]:
    """``(X, labels)`` batches of a RecordIO file, or of every file of a directory in name order."""
    return iter_recordio(Path(source), batch_size)


def _json_safe(value: Any) -> Any:
    """Parameters that survive JSON; a callable ``progress`` or a Generator seed do not."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, np.integer | np.floating):
        return value.item()
    return None


class _ClassifierMethod:
    """A method of the binary classifier only (scikit-learn's ``available_if``, without importing it).

    On a regressor, looking it up raises ``AttributeError``: ``hasattr(regressor, "predict_proba")``
    is ``False``, which is how scikit-learn tells a classifier's scorers and checks from a regressor's.
    """

    def __init__(self, method: Callable[..., Any]) -> None:
        self.method = method
        update_wrapper(self, method)

    def __get__(self, model: Any, owner: type | None = None) -> Any:
        if model is None:
            return self
        if model.predictor_type != "binary_classifier":
            raise AttributeError(
                f"{type(model).__name__} with predictor_type={model.predictor_type!r} has no "
                f"{self.method.__name__}: it is a method of the binary_classifier"
            )
        return types.MethodType(self.method, model)


def _unchanged_on_error(train: Callable[..., Any]) -> Callable[..., Any]:
    """A training method after which an exception leaves the model as it was before the call.

    Its fitted attributes (weights and optimizer state, ``history_``, ``best_epoch_``,
    ``classes_``) are put back. Ctrl-C (``KeyboardInterrupt``, not an ``Exception``) is not
    undone: it keeps the epochs that completed, as documented by :meth:`FactorizationMachine.fit`.
    """

    def unchanged_on_error(model: FactorizationMachine, *args: Any, **kwargs: Any) -> Any:
        saved = {name: model.__dict__[name] for name in _FITTED_ATTRIBUTES if name in model.__dict__}
        try:
            return train(model, *args, **kwargs)
        except Exception:
            for name in _FITTED_ATTRIBUTES:
                model.__dict__.pop(name, None)
            model.__dict__.update(saved)
            raise

    return update_wrapper(unchanged_on_error, train)


class FactorizationMachine:
    """A Factorization Machine with SageMaker FM's hyperparameters and defaults.

    The model scores a row ``x`` as ``ŷ = w0 + Σ wᵢxᵢ + ½ Σ_f [(Σᵢ v_if xᵢ)² - Σᵢ v_if² xᵢ²]``.
    ``predictor_type="regressor"`` minimises squared error; ``"binary_classifier"`` minimises the
    log loss of ``sigmoid(ŷ)`` against labels 0/1 and predicts label 1 when ``sigmoid(ŷ) ≥ 0.5``.
    The classifier takes any two class labels (``classes_``, sorted; the second is SageMaker's
    label 1) and follows scikit-learn's classifier protocol: :meth:`predict` returns class labels,
    :meth:`predict_proba` the probabilities of both classes, :meth:`decision_function` the logit
    ŷ. SageMaker's ``score`` is :meth:`predict_score` for both predictor types.

    It is a scikit-learn estimator (tags, ``clone``, pipelines, searches, ``check_estimator``)
    without depending on scikit-learn. An error in :meth:`fit` or :meth:`partial_fit` leaves a
    fitted model as it was.

    Args:
        predictor_type ({"regressor", "binary_classifier"}): The task (SageMaker requires it; the default is
            scikit-learn's need of one).
        num_factors (int): Dimension ``k`` of the factors, 1 to ``MAX_NUM_FACTORS`` (65,536). SageMaker
            requires it; the default, 64, is that of SageMaker's FM examples.
        epochs (int): Passes over the data per :meth:`fit` (below 2³²).
        mini_batch_size (int): Rows per gradient step (below 2³²); the gradient is averaged over the batch
            unless ``rescale_grad`` is set.
        bias_lr, linear_lr, factors_lr (float): Learning rates of ``w0``, ``w`` and ``V``.
        bias_wd, linear_wd, factors_wd (float): L2 weight decay of each group, added to the gradient as
            ``wd·w``.
        bias_init_method, linear_init_method, factors_init_method (str): ``"normal"``, ``"uniform"`` or
            ``"constant"``: how each group is initialised: ``normal(0, *_init_sigma)``,
            ``uniform(-*_init_scale, *_init_scale)`` or ``*_init_value``.
        bias_init_scale, bias_init_sigma, bias_init_value (float or None): Parameters of the bias's
            initialiser (``*_init_scale`` and ``*_init_value`` are required by ``uniform`` and ``constant``).
        linear_init_scale, linear_init_sigma, linear_init_value (float or None): The same for ``w``.
        factors_init_scale, factors_init_sigma, factors_init_value (float or None): The same for ``V``.
        clip_gradient (float or None): Clip gradients to ``±clip_gradient``.
        eps (float or None): Adam's (default 1e-8) or AdaGrad's (default 1e-7) ε.
        rescale_grad (float or None): Gradient scale; ``None`` averages over the mini-batch.
        optimizer (str): ``"adam"``, ``"sgd"`` or ``"adagrad"``: the update rule (SageMaker FM uses Adam).
        n_threads (int): Threads for training and scoring, at most 1024; 0 uses every core (capped by
            ``FMFAST_NUM_THREADS``), and training then times stretches of batches on all of them and on one
            and keeps whichever is faster (more threads do not always pay). Results do not depend on it.
        random_state (int, numpy Generator or None): Seed of the initial weights.
        progress (bool or callable): ``True`` draws a progress bar (one per fit, over all its epochs, with
            the last epoch's metrics); a callable receives the number of rows done so far in the call.

    Attributes:
        classes_ (ndarray): The classifier's two class labels, sorted (0 and 1 for labels 0/1, RecordIO input
            and SageMaker models).
        w0_, w_, V_ (float, ndarray, ndarray): The fitted bias, linear weights ``(d,)`` and
            factors ``(d, k)``.
        feature_dim_ (int): Number of features ``d`` (inferred from ``X``); also ``n_features_in_``. Like
            every fitted attribute, absent (``NotFittedError``, an ``AttributeError``) before ``fit``.
        history_ (list of dict): Training metrics of each epoch, under SageMaker's names, gathered during each
            pass.
        n_updates_ (int): Mini-batch updates so far (Adam's ``t``).
    """

    def __init__(
        self,
        predictor_type: str = "regressor",
        num_factors: int = 64,
        *,
        epochs: int = 1,
        mini_batch_size: int = 1000,
        bias_lr: float = 0.1,
        linear_lr: float = 0.001,
        factors_lr: float = 0.0001,
        bias_wd: float = 0.01,
        linear_wd: float = 0.001,
        factors_wd: float = 0.00001,
        bias_init_method: str = "normal",
        bias_init_scale: float | None = None,
        bias_init_sigma: float = 0.01,
        bias_init_value: float | None = None,
        linear_init_method: str = "normal",
        linear_init_scale: float | None = None,
        linear_init_sigma: float = 0.01,
        linear_init_value: float | None = None,
        factors_init_method: str = "normal",
        factors_init_scale: float | None = None,
        factors_init_sigma: float = 0.001,
        factors_init_value: float | None = None,
        clip_gradient: float | None = None,
        eps: float | None = None,
        rescale_grad: float | None = None,
        optimizer: str = "adam",
        n_threads: int = 0,
        random_state: int | np.random.Generator | None = None,
        progress: Progress = False,
    ) -> None:
        self.predictor_type = predictor_type
        self.num_factors = num_factors
        self.epochs = epochs
        self.mini_batch_size = mini_batch_size
        self.bias_lr = bias_lr
        self.linear_lr = linear_lr
        self.factors_lr = factors_lr
        self.bias_wd = bias_wd
        self.linear_wd = linear_wd
        self.factors_wd = factors_wd
        self.bias_init_method = bias_init_method
        self.bias_init_scale = bias_init_scale
        self.bias_init_sigma = bias_init_sigma
        self.bias_init_value = bias_init_value
        self.linear_init_method = linear_init_method
        self.linear_init_scale = linear_init_scale
        self.linear_init_sigma = linear_init_sigma
        self.linear_init_value = linear_init_value
        self.factors_init_method = factors_init_method
        self.factors_init_scale = factors_init_scale
        self.factors_init_sigma = factors_init_sigma
        self.factors_init_value = factors_init_value
        self.clip_gradient = clip_gradient
        self.eps = eps
        self.rescale_grad = rescale_grad
        self.optimizer = optimizer
        self.n_threads = n_threads
        self.random_state = random_state
        self.progress = progress

    # -- scikit-learn protocol -------------------------------------------------------------------

    @classmethod
    def _param_names(cls) -> list[str]:
        signature = inspect.signature(cls.__init__)
        return [name for name in signature.parameters if name != "self"]

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The constructor arguments, as given (scikit-learn's ``get_params``)."""
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params: Any) -> FactorizationMachine:
        """Set constructor arguments by name; unknown names raise :class:`InvalidInputError`."""
        valid = set(self._param_names())
        for name, value in params.items():
            if name not in valid:
                raise InvalidInputError(f"invalid parameter {name!r} for {type(self).__name__}")
            setattr(self, name, value)
        return self

    def __sklearn_tags__(self) -> Any:
        """scikit-learn's description of the estimator: a regressor, or a binary classifier."""
        return tags(classifier=self.predictor_type == "binary_classifier")

    def __sklearn_is_fitted__(self) -> bool:
        """Whether the model has weights (scikit-learn's ``check_is_fitted`` asks this)."""
        return getattr(self, "_state", None) is not None

    def __repr__(self) -> str:
        defaults = inspect.signature(type(self).__init__).parameters
        shown = [
            f"{name}={value!r}"
            for name, value in self.get_params().items()
            if defaults[name].default is inspect.Parameter.empty or value is not defaults[name].default
        ]
        return f"{type(self).__name__}({', '.join(shown)})"

    # -- validation ------------------------------------------------------------------------------

    def _check_params(self) -> None:
        if self.predictor_type not in _PREDICTOR_TYPES:
            raise InvalidInputError(
                f"predictor_type must be 'regressor' or 'binary_classifier', got {self.predictor_type!r}"
            )
        if self.optimizer not in _OPTIMIZERS:
            raise InvalidInputError(f"optimizer must be 'adam', 'sgd' or 'adagrad', got {self.optimizer!r}")
        for name, (low, high) in _INT_RANGES.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or not low <= value <= high:
                raise InvalidInputError(f"{name} must be an integer >= {low} and <= {high}, got {value!r}")
        for group in _GROUPS:
            for kind in ("lr", "wd"):
                value = getattr(self, f"{group}_{kind}")
                if not isinstance(value, int | float | np.number) or not (
                    math.isfinite(value) and value >= 0
                ):
                    raise InvalidInputError(f"{group}_{kind} must be a finite number >= 0, got {value!r}")
            method = getattr(self, f"{group}_init_method")
            if method not in _INIT_METHODS:
                raise InvalidInputError(
                    f"{group}_init_method must be 'normal', 'uniform' or 'constant', got {method!r}"
                )
            needed = {"normal": "sigma", "uniform": "scale", "constant": "value"}[method]
            value = getattr(self, f"{group}_init_{needed}")
            if not isinstance(value, int | float | np.number) or not math.isfinite(value):
                raise InvalidInputError(
                    f"{group}_init_method={method!r} needs a finite {group}_init_{needed}, got {value!r}"
                )
            if needed != "value" and value < 0:
                raise InvalidInputError(f"{group}_init_{needed} must be >= 0, got {value!r}")
        for name in ("clip_gradient", "eps", "rescale_grad"):
            value = getattr(self, name)
            if value is not None and not (
                isinstance(value, int | float | np.number) and 0 < value < math.inf
            ):
                raise InvalidInputError(f"{name} must be None or a finite number > 0, got {value!r}")

    def _config(self, epochs: int) -> _TrainConfig:
        def optional(value: float | None) -> float | None:
            return None if value is None else float(value)

        return _TrainConfig(
            predictor_type=self.predictor_type,
            optimizer=self.optimizer,
            epochs=int(epochs),
            mini_batch_size=int(self.mini_batch_size),
            bias_lr=float(self.bias_lr),
            linear_lr=float(self.linear_lr),
            factors_lr=float(self.factors_lr),
            bias_wd=float(self.bias_wd),
            linear_wd=float(self.linear_wd),
            factors_wd=float(self.factors_wd),
            clip_gradient=optional(self.clip_gradient),
            eps=optional(self.eps),
            rescale_grad=optional(self.rescale_grad),
        )

    def _initial_state(self, feature_dim: int) -> _TrainState:
        _check_weights_fit_memory(feature_dim, int(self.num_factors))
        rng = np.random.default_rng(self.random_state)

        def sample(group: str, shape: tuple[int, ...]) -> np.ndarray:
            method = getattr(self, f"{group}_init_method")
            if method == "normal":
                return rng.normal(0.0, float(getattr(self, f"{group}_init_sigma")), shape)
            if method == "uniform":
                scale = float(getattr(self, f"{group}_init_scale"))
                return rng.uniform(-scale, scale, shape)
            return np.full(shape, float(getattr(self, f"{group}_init_value")))

        def draw(group: str, shape: tuple[int, ...]) -> np.ndarray:
            # Drawn in float64 blocks of rows (the same numbers as one draw of the whole array)
            # and rounded into place, so that no float64 copy of V is ever held.
            weights = _aligned_zeros(shape)
            rows = max(1, _DRAW_BLOCK // max(1, math.prod(shape[1:])))
            for start in range(0, shape[0], rows):
                block = weights[start : start + rows]
                block[...] = sample(group, block.shape)
            return weights

        d, k = feature_dim, int(self.num_factors)
        return self._state_from(draw("bias", (1,)), draw("linear", (d,)), draw("factors", (d, k)))

    def _state_from(self, bias: np.ndarray, linear: np.ndarray, factors: np.ndarray) -> _TrainState:
        """Weights with fresh (zero) optimizer state.

        The weights must be float32, 64-byte aligned and not shared: the core updates them in place.
        """
        (d, k), slots = factors.shape, _OPTIMIZERS[self.optimizer]
        return _TrainState(
            bias=bias,
            linear=linear,
            factors=factors,
            bias_state=_aligned_zeros((1, slots)),
            linear_state=_aligned_zeros((d, slots)),
            factors_state=_aligned_zeros((d, slots, k)),
            t=0,
        )

    def _fitted_state(self) -> _TrainState:
        state: _TrainState | None = getattr(self, "_state", None)
        if state is None:
            raise not_fitted_error(f"this {type(self).__name__} is not fitted yet; call fit first")
        return state

    def _check_n_features(self, n_cols: int, state: _TrainState) -> None:
        if n_cols != state.linear.shape[0]:
            raise InvalidInputError(
                f"X has {n_cols} features, but {type(self).__name__} is expecting "
                f"{state.linear.shape[0]} features as input (its feature_dim)"
            )

    def _encoded_target(self, y: Any, classes: Any = None) -> np.ndarray | None:
        """``y`` as the labels training reads; for the classifier, sets ``classes_``.

        The classifier's labels become 0/1, the index of each in the fitted model's classes, else
        in ``classes`` (``partial_fit``'s first call) or in y's own. ``y=None`` (labels from
        RecordIO records, 0 or 1) gives classes 0 and 1 to a model that has none.
        """
        classifier = self.predictor_type == "binary_classifier"
        if classes is not None and not classifier:
            raise InvalidInputError("classes is an argument of predictor_type='binary_classifier'")
        target = None if y is None else _target(y)
        if not classifier:
            # Numbers held as Python objects (a pandas column of mixed types) are read as floats.
            return target.astype(np.float64) if target is not None and target.dtype.kind == "O" else target
        # A fitted regressor switched to the classifier by set_params has no classes yet.
        fitted: np.ndarray | None = getattr(self, "classes_", None) if self.__sklearn_is_fitted__() else None
        given = None if classes is None else _classes_of(np.asarray(classes))
        if fitted is None and given is not None:
            fitted = given
        elif fitted is None:
            fitted = _SAGEMAKER_CLASSES if target is None else _classes_of(target)
        elif given is not None and not np.array_equal(given, fitted):
            raise InvalidInputError(f"classes {given.tolist()} differ from the model's {fitted.tolist()}")
        self.classes_ = fitted
        return None if target is None else _encode(target, fitted)

    # -- training --------------------------------------------------------------------------------

    def _working_state(self, n_cols: int) -> _TrainState:
        """What a training call updates: fresh weights when unfitted, else a copy of the fitted ones.

        Training works on this copy and the model takes it only once the call completes, so an
        error or Ctrl-C leaves the model as it was.
        """
        state: _TrainState | None = getattr(self, "_state", None)
        if state is None:
            return self._initial_state(n_cols)
        if (
            state.bias_state.shape[1] != _OPTIMIZERS[self.optimizer]
            or state.factors.shape[1] != self.num_factors
        ):
            raise InvalidInputError("optimizer or num_factors changed since the model was fitted; call fit")
        return state.copy()

    def _train_rows(
        self,
        rows: _Rows,
        y: Any,
        sample_weight: Any,
        state: _TrainState,
        epochs: int,
        progress: Callable[[int], object] | None,
        checkpoint: _TrainState | None = None,
    ) -> tuple[_TrainState, list[_EpochStats], BaseException | None]:
        """Train ``epochs`` passes over ``rows`` into ``state`` (in place).

        Returns the state that holds the trained model (``state``), each epoch's statistics and
        ``None``. ``progress`` gets the rows done so far in this call. With a ``checkpoint``
        (shaped like ``state``), the core copies every epoch's end but the last's into it; when
        Ctrl-C (or ``progress``) stops training after an epoch has ended, ``checkpoint`` holds the
        model, and the exception comes back, not raised, with the statistics of its epochs.
        """
        if rows.n_rows == 0:
            raise InvalidInputError("X has no rows")
        if rows.n_cols == 0:
            raise InvalidInputError(
                f"X has 0 feature(s) (shape=({rows.n_rows}, 0)) while a minimum of 1 is required."
            )
        self._check_n_features(rows.n_cols, state)
        labels = _labels(y, rows.n_rows, self.predictor_type)
        weights = None if sample_weight is None else _vector(sample_weight, rows.n_rows, "sample_weight")
        if weights is not None and not weights.any():
            raise InvalidInputError("every sample_weight is zero: there is nothing to learn from")
        t, stats, stopped = _fmfast.fm_fit_epochs(
            rows.n_cols,
            rows.indices,
            rows.data,
            labels,
            weights,
            state,
            self._config(epochs),
            n_threads=int(self.n_threads),
            progress=progress,
            checkpoint=checkpoint,
        )
        trained = checkpoint if stopped is not None and checkpoint is not None else state
        trained.t = t
        return trained, [tuple(epoch) for epoch in stats], stopped  # type: ignore[misc]

    def _train(
        self, X: Any, y: Any, sample_weight: Any, epochs: int, progress: FitProgress
    ) -> tuple[list[_EpochStats], BaseException | None]:
        """Train ``epochs`` passes over the matrix ``X`` from the current weights; each epoch's statistics.

        An unfitted model starts from fresh weights. When Ctrl-C stops training after an epoch
        has ended, the model is that of the last complete epoch, and the statistics are of the
        epochs it completed, returned with the exception for the caller to raise.
        """
        self._check_params()
        rows = _prepare_rows(X)
        state = self._working_state(rows.n_cols)
        checkpoint = state.zeros_like() if epochs > 1 else None
        progress.epoch_rows(rows.n_rows)
        trained, stats, stopped = self._train_rows(
            rows, y, sample_weight, state, epochs, progress.callback(), checkpoint
        )
        self._state = trained
        return stats, stopped

    def _train_epoch(self, X: Any, y: Any, sample_weight: Any, progress: FitProgress) -> _EpochStats:
        """One pass over ``X`` (a matrix, or RecordIO streamed batch by batch) from the current weights."""
        if not _is_recordio_source(X):
            (stats,), _ = self._train(X, y, sample_weight, 1, progress)
            return stats
        if y is not None or sample_weight is not None:
            raise InvalidInputError("labels come from the RecordIO records: pass y=None and no sample_weight")
        self._check_params()
        # Whole mini-batches per streamed batch, so the updates are those of the data in memory; one
        # working copy of the weights for the whole pass.
        state: _TrainState | None = None
        total: _EpochStats = (0, 0.0, 0, 0, 0, 0)
        batch = int(self.mini_batch_size)
        for X_batch, labels in _recordio_batches(X, max(1, _ROWS_PER_READ // batch) * batch):
            if labels is None:
                raise InvalidInputError(f"the records of {X} carry no labels")
            rows = _prepare_rows(X_batch)
            if state is None:
                state = self._working_state(rows.n_cols)
            _, (stats,), _ = self._train_rows(rows, labels, None, state, 1, progress.callback())
            total = _add_stats(total, stats)
        if state is None:
            raise InvalidInputError(f"{X} holds no records")
        self._state = state
        return total

    @_unchanged_on_error
    def fit(
        self,
        X: Any,
        y: Any = None,
        sample_weight: Any = None,
        *,
        eval_set: tuple[Any, Any] | None = None,
        early_stopping_rounds: int | None = None,
    ) -> FactorizationMachine:
        """Train from freshly initialised weights for ``epochs`` passes over ``X``.

        Args:
            X: any scipy sparse matrix or dense array (a canonical CSR matrix with float32 or float64
                values is used without copying), or the path of a RecordIO-protobuf file or of a
                directory of them (shards, read in name order), streamed with bounded memory; the
                labels then come from the records.
            y: one label per row: the regressor's targets, or the classifier's labels of two
                classes (any two values; 0/1 are SageMaker's); ``None`` for RecordIO input,
                whose classifier labels are 0 or 1.
            sample_weight: optionally scales each row's gradient.
            eval_set: ``(X_eval, y_eval)`` evaluated after every epoch; its metrics join
                ``history_`` with an ``eval_`` prefix. SageMaker has no such channel: an extra.
            early_stopping_rounds: stop when the eval loss (``rmse``, or the cross entropy of
                the classifier) has not improved for this many epochs, and keep the weights of
                the best epoch (``best_epoch_``). Needs ``eval_set``.

        Ctrl-C stops training between blocks of mini-batches and leaves the model, its optimizer
        state and ``history_`` at the last complete epoch (unfitted when none had ended), then
        raises ``KeyboardInterrupt``. A fit of several epochs in memory keeps a copy of the
        weights and optimizer state for this. Any other error leaves the model as it was before
        the call.
        """
        if early_stopping_rounds is not None and (eval_set is None or early_stopping_rounds < 1):
            raise InvalidInputError("early_stopping_rounds needs an eval_set and must be at least 1")
        self._check_params()
        self._state = None
        y = self._encoded_target(y)
        self.best_epoch_: int | None = None
        self.history_: list[dict[str, float]] = []
        with fit_progress(self.progress, int(self.epochs)) as progress:
            self._fit_epochs(X, y, sample_weight, eval_set, early_stopping_rounds, progress)
        return self

    def _fit_epochs(
        self,
        X: Any,
        y: Any,
        sample_weight: Any,
        eval_set: tuple[Any, Any] | None,
        early_stopping_rounds: int | None,
        progress: FitProgress,
    ) -> None:
        """The epochs of :meth:`fit`, each told to ``progress`` once it has ended."""
        if eval_set is None and not _is_recordio_source(X):
            stats, stopped = self._train(X, y, sample_weight, int(self.epochs), progress)
            self.history_ = _history([], self.predictor_type, stats)
            for epoch_stats, entry in zip(stats, self.history_, strict=True):
                progress.epoch_ended(epoch_stats[0], entry)
            if stopped is not None:
                raise stopped
            return
        history: list[dict[str, float]] = []
        best: tuple[float, int, _TrainState] | None = None
        for epoch in range(int(self.epochs)):
            epoch_stats = self._train_epoch(X, y, sample_weight, progress)
            history = _history(history, self.predictor_type, [epoch_stats])
            # Kept current, so that a fit stopped by Ctrl-C keeps the history of the epochs it keeps.
            self.history_ = history
            if eval_set is not None:
                # Without a bar of its own: the fit's bar shows the metrics.
                metrics = self._evaluate(*eval_set, progress=None)
                history[-1].update({f"eval_{name}": value for name, value in metrics.items()})
            progress.epoch_ended(epoch_stats[0], history[-1])
            if eval_set is None or early_stopping_rounds is None:
                continue
            loss = metrics.get("rmse", metrics.get("binary_classification_cross_entropy", math.inf))
            if best is None or loss < best[0]:
                best = (loss, epoch, self._fitted_state().copy())
            elif epoch - best[1] >= early_stopping_rounds:
                break
        if best is not None:
            self._state, self.best_epoch_ = best[2], best[1]
        self.history_ = history

    @_unchanged_on_error
    def partial_fit(
        self, X: Any, y: Any = None, sample_weight: Any = None, *, classes: Any = None
    ) -> FactorizationMachine:
        """One more pass over ``X``, continuing from the current weights and optimizer state.

        ``X`` and ``y`` are as in :meth:`fit`. An unfitted model is initialised first, as by
        :meth:`fit`; ``classes`` (the classifier's two labels, scikit-learn's argument) then
        names classes that the first ``y`` may not hold both of. An error leaves the model as it
        was before the call.
        """
        history = self.history_ if getattr(self, "_state", None) is not None else []
        y = self._encoded_target(y, classes)
        with fit_progress(self.progress, 1) as progress:
            stats = self._train_epoch(X, y, sample_weight, progress)
            self.history_ = _history(history, self.predictor_type, [stats])
            progress.epoch_ended(stats[0], self.history_[-1])
        return self

    # -- fitted model ----------------------------------------------------------------------------

    @property
    def w0_(self) -> float:
        """Fitted bias."""
        return float(self._fitted_state().bias[0])

    @property
    def w_(self) -> np.ndarray:
        """Fitted linear weights, float32, shape ``(feature_dim,)``."""
        return self._fitted_state().linear

    @property
    def V_(self) -> np.ndarray:
        """Fitted factors, float32, shape ``(feature_dim, num_factors)``."""
        return self._fitted_state().factors

    @property
    def feature_dim_(self) -> int:
        """Number of features the model was fitted on."""
        return int(self._fitted_state().linear.shape[0])

    @property
    def n_features_in_(self) -> int:
        """Number of features the model was fitted on (scikit-learn's name)."""
        return self.feature_dim_

    @property
    def n_updates_(self) -> int:
        """Mini-batch updates applied so far."""
        return int(self._fitted_state().t)

    def _raw_scores(self, X: Any, progress: Progress) -> np.ndarray:
        """ŷ of the rows of ``X`` (the classifier's logit), reporting to ``progress``."""
        state = self._fitted_state()
        rows = _prepare_rows(X)
        _check_finite(rows)
        self._check_n_features(rows.n_cols, state)
        with progress_callback(progress, rows.n_rows, "rows") as callback:
            return _fmfast.fm_predict(
                rows.n_cols,
                rows.indices,
                rows.data,
                float(state.bias[0]),
                state.linear,
                state.factors,
                n_threads=int(self.n_threads),
                progress=callback,
            )

    def predict_score(self, X: Any) -> np.ndarray:
        """SageMaker's ``score``: ŷ for the regressor, the classifier's probability ``sigmoid(ŷ)``.

        The classifier's is the probability of its second class, ``classes_[1]`` (SageMaker's
        label 1): what the endpoint and batch transform answer as ``score``.
        """
        raw = self._raw_scores(X, self.progress)
        return raw if self.predictor_type == "regressor" else _sigmoid(raw)

    def predict(self, X: Any) -> np.ndarray:
        """The regressor's prediction ŷ, or the classifier's class label of each row.

        The classifier predicts ``classes_[1]`` where ``sigmoid(ŷ) ≥ 0.5``, else ``classes_[0]``.
        """
        if self.predictor_type == "regressor":
            return self._raw_scores(X, self.progress)
        index = self.predict_label(X)
        labels: np.ndarray = self.classes_[index]
        return labels

    @_ClassifierMethod
    def decision_function(self, X: Any) -> np.ndarray:
        """The classifier's logit ŷ of each row, shape ``(n,)`` (positive favours ``classes_[1]``)."""
        return self._raw_scores(X, self.progress)

    @_ClassifierMethod
    def predict_proba(self, X: Any) -> np.ndarray:
        """The classifier's probabilities of ``classes_[0]`` and ``classes_[1]``, shape ``(n, 2)``.

        The second column is SageMaker's score (:meth:`predict_score`).
        """
        score = self.predict_score(X)
        return np.column_stack([1.0 - score, score])

    def predict_label(self, X: Any) -> np.ndarray:
        """SageMaker's ``predicted_label`` of the classifier: 1 where ``sigmoid(ŷ) ≥ 0.5``, else 0."""
        if self.predictor_type != "binary_classifier":
            raise InvalidInputError("predict_label needs predictor_type='binary_classifier'; use predict")
        return (self.predict_score(X) >= 0.5).astype(np.int64)

    def evaluate(self, X: Any, y: Any) -> dict[str, float]:
        """SageMaker's test metrics of ``X`` against ``y``, under SageMaker's names.

        ``rmse`` for the regressor; ``binary_classification_accuracy``,
        ``binary_classification_cross_entropy`` and ``binary_f_beta`` (F1 at 0.5) for the classifier,
        whose ``y`` holds labels of its ``classes_``.
        """
        return self._evaluate(X, y, self.progress)

    def _evaluate(self, X: Any, y: Any, progress: Progress) -> dict[str, float]:
        """:meth:`evaluate`, reporting to ``progress``."""
        raw = self._raw_scores(X, progress)
        if self.predictor_type == "binary_classifier":
            y = _encode(_target(y), self.classes_)
        labels = _labels(y, raw.shape[0], self.predictor_type)
        if raw.shape[0] == 0:
            raise InvalidInputError("X has no rows")
        if self.predictor_type == "regressor":
            return _metrics("regressor", raw.shape[0], float(((raw - labels) ** 2).sum()), 0, 0, 0, 0)
        loss = np.maximum(raw, 0.0) - raw * labels + np.log1p(np.exp(-np.abs(raw)))
        predicted, truth = _sigmoid(raw) >= 0.5, labels == 1.0
        return _metrics(
            "binary_classifier",
            raw.shape[0],
            float(loss.sum()),
            int((predicted & truth).sum()),
            int((predicted & ~truth).sum()),
            int((~predicted & ~truth).sum()),
            int((~predicted & truth).sum()),
        )

    def score(self, X: Any, y: Any, sample_weight: Any = None) -> float:
        """scikit-learn's score: R² for the regressor, accuracy for the classifier."""
        n_rows = _prepare_rows(X).n_rows
        weights = (
            np.ones(n_rows) if sample_weight is None else _vector(sample_weight, n_rows, "sample_weight")
        )
        if self.predictor_type == "binary_classifier":
            truth = _target(y)
            if truth.shape[0] != n_rows:
                raise InvalidInputError(f"X has {n_rows} rows but y has {truth.shape[0]} values")
            return float(np.average(self.predict(X) == truth, weights=weights))
        labels = _labels(y, n_rows, self.predictor_type)
        residual = float((weights * (labels - self.predict(X)) ** 2).sum())
        total = float((weights * (labels - np.average(labels, weights=weights)) ** 2).sum())
        return 1.0 - residual / total if total > 0 else 0.0

    # -- persistence -----------------------------------------------------------------------------

    @classmethod
    def from_sagemaker(cls, source: Any, **params: Any) -> FactorizationMachine:
        """A fitted model from a SageMaker FM artifact (``model.tar.gz``, ``model_algo-1``, params file).

        Hyperparameters come from the artifact's ``meta.json`` (strings, as SageMaker stores
        them, or JSON values) and fmfast's own settings from its ``fmfast.json`` if it has one
        (written by :meth:`to_sagemaker`), then from ``params``. The weights are SageMaker's
        exactly; optimizer state starts fresh, so :meth:`partial_fit` continues training with new
        moments. Nothing in the artifact is executed.

        Raises:
            ModelFormatError: a damaged, hostile or unsupported artifact, or a stored
                hyperparameter that is not of its type (the message names it).
        """
        artifact = read_sagemaker_model(source)
        known = set(cls._param_names())
        stored = {**parse_hyperparameters(artifact.hyperparameters), **artifact.fmfast_params}
        settings = {k: v for k, v in stored.items() if k in known}
        settings.update(params)
        settings["predictor_type"] = artifact.predictor_type
        settings["num_factors"] = artifact.num_factors
        model = cls(**settings)
        model._check_params()
        weights = (np.array([artifact.w0]), artifact.w, artifact.V)
        model._state = model._state_from(*(_aligned(w) for w in weights))
        model.history_ = []
        if model.predictor_type == "binary_classifier":
            model.classes_ = _SAGEMAKER_CLASSES
        return model

    def to_sagemaker(self, path: str | os.PathLike[str]) -> None:
        """Write the model as a SageMaker FM ``model.tar.gz`` (float32 weights), atomically.

        The artifact loads in MXNet (``mx.nd.load`` / the AWS notebook's ``Module.load`` steps)
        and back through :meth:`from_sagemaker`. Its ``meta.json`` holds SageMaker's
        hyperparameters only, as strings, formatted as the SageMaker SDK sends them; fmfast's
        own settings (``optimizer``, ``n_threads``, ``progress``, ``random_state``) go to
        ``fmfast.json`` beside ``model_algo-1``, which SageMaker does not read and
        :meth:`from_sagemaker` reads back.
        """
        state = self._fitted_state()
        params = self.get_params()
        hyperparameters = format_hyperparameters({"feature_dim": state.linear.shape[0], **params})
        own = {name: _json_safe(params[name]) for name in FMFAST_SETTINGS}
        own["progress"] = bool(params["progress"])
        write_sagemaker_model(
            path,
            SageMakerFM(
                w0=float(state.bias[0]),
                w=state.linear,
                V=state.factors,
                predictor_type=self.predictor_type,
                hyperparameters=hyperparameters,
                fmfast_params=own,
            ),
        )

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the model to ``path`` (exactly that name, no suffix added).

        The file is an ``.npz`` of float32 arrays (weights and optimizer state) with a JSON header
        (format name and version, hyperparameters, history), written atomically: it appears whole
        or not at all. Optimizer state is included, so :meth:`partial_fit` can continue.
        Parameters JSON cannot hold are saved as ``None`` (a Generator ``random_state``) or
        ``False`` (a ``progress`` callable). The classifier's ``classes_`` are kept (labels
        JSON can hold: numbers, strings, booleans).
        """
        state = self._fitted_state()
        header: dict[str, Any] = {
            "format": MODEL_FORMAT,
            "version": MODEL_FORMAT_VERSION,
            "fmfast_version": _fmfast.__version__,
            "params": {name: _json_safe(value) for name, value in self.get_params().items()},
            "n_updates": int(state.t),
            "history": self.history_,
        }
        if self.predictor_type == "binary_classifier":
            header["classes"] = self.classes_.tolist()
        header["params"]["progress"] = bool(header["params"]["progress"])
        arrays = {name: getattr(state, name) for name in _STATE_ARRAYS}
        encoded = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
        with atomic_output(path) as out:
            np.savez(out, header=encoded, **arrays)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> FactorizationMachine:
        """Read a model written by :meth:`save`.

        Files of format version 1 (float64 arrays) load too, rounded to float32. A damaged file,
        another format or an unknown format version raises :class:`fmfast.ModelFormatError`; a
        missing or unreadable file raises :class:`OSError`.
        """
        check_npz(path, "fmfast model file")
        try:
            with np.load(path, allow_pickle=False) as npz:
                header = json.loads(npz["header"].tobytes().decode())
                arrays = {name: npz[name] for name in _STATE_ARRAYS if name in npz.files}
        except (ValueError, KeyError, RecursionError, EOFError, zipfile.BadZipFile, zlib.error) as e:
            raise ModelFormatError(f"{os.fspath(path)!r} is not a readable fmfast model file: {e}") from e
        if not isinstance(header, dict) or header.get("format") != MODEL_FORMAT:
            found = header.get("format") if isinstance(header, dict) else None
            raise ModelFormatError(f"{os.fspath(path)!r} holds format {found!r}, not {MODEL_FORMAT!r}")
        dtype = _ARRAY_DTYPES.get(header.get("version"))
        if dtype is None:
            raise ModelFormatError(
                f"{os.fspath(path)!r} has format version {header.get('version')!r}; "
                f"this fmfast reads versions {', '.join(map(str, _ARRAY_DTYPES))}"
            )
        try:
            model = cls(**header["params"])
            model._check_params()
            state = _TrainState(**{name: arrays[name] for name in _STATE_ARRAYS}, t=int(header["n_updates"]))
            history = [dict(entry) for entry in header["history"]]
            # Files written before classes were saved hold a classifier of labels 0/1.
            classes = np.array(header.get("classes", _SAGEMAKER_CLASSES))
            if model.predictor_type == "binary_classifier" and not (
                classes.ndim == 1 and len(classes) == 2 and classes[0] < classes[1]
            ):
                raise ValueError(f"classes {classes.tolist()} are not two sorted labels")
        except (KeyError, TypeError, ValueError, InvalidInputError) as e:
            raise ModelFormatError(f"{os.fspath(path)!r} has an invalid header or arrays: {e}") from e
        d, k, slots = (
            state.linear.shape[0] if state.linear.ndim == 1 else -1,
            model.num_factors,
            _OPTIMIZERS[model.optimizer],
        )
        expected = {
            "bias": (1,),
            "linear": (d,),
            "factors": (d, k),
            "bias_state": (1, slots),
            "linear_state": (d, slots),
            "factors_state": (d, slots, k),
        }
        for name, shape in expected.items():
            array = getattr(state, name)
            if array.shape != shape or array.dtype != dtype:
                raise ModelFormatError(
                    f"{os.fspath(path)!r}: array {name!r} has shape {array.shape} and dtype {array.dtype}, "
                    f"expected {shape} {np.dtype(dtype)}"
                )
            setattr(state, name, _aligned(array))
        model._state = state
        model.history_ = history
        if model.predictor_type == "binary_classifier":
            model.classes_ = classes
        return model
