"""Training a :class:`fmfast.FactorizationMachine`: weights, optimizer state and the epochs that update them.

Weights are drawn here (``np.random.default_rng(random_state)``: bias, then ``w``, then ``V``, in
float64, rounded to float32) and handed to the Rust core, which updates them in place and keeps
nothing between calls. A matrix is trained in one call of the core; RecordIO input is streamed,
whole mini-batches at a time. Each function takes the estimator whose hyperparameters it reads and
whose fitted attributes it sets. RecordIO reads are decoded one ahead, on a thread of their own,
while the core trains on the current one (:mod:`fmfast._read_ahead`).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable, Iterator
from contextlib import closing, nullcontext
from typing import TYPE_CHECKING, Any

import numpy as np

from fmfast import _fmfast
from fmfast._inputs import Rows, prepare_rows, vector
from fmfast._progress import FitProgress
from fmfast._read_ahead import read_ahead
from fmfast.exceptions import InvalidInputError
from fmfast.recordio.codec import read_batches
from fmfast.training._labels import checked_labels

if TYPE_CHECKING:
    from fmfast.training.estimator import FactorizationMachine

#: Optimizers that sweep coordinates (:mod:`fmfast.training.bayes`) and keep no optimizer state.
BAYES_OPTIMIZERS = ("als", "mcmc")
#: The arrays of a :class:`TrainState`, as a model file names them.
STATE_ARRAYS = ("bias", "linear", "factors", "bias_state", "linear_state", "factors_state")
#: Values drawn at a time when initialising weights.
_DRAW_BLOCK = 1 << 16
#: Byte alignment of the arrays training updates in place: a row of V or of its state that starts
#: on a cache line spans no more lines than its size needs (NumPy's large arrays start 16 bytes
#: into a line, so a 64-byte row of Adam state at k = 8 spanned two).
_ALIGNMENT = 64


def aligned_zeros(shape: tuple[int, ...]) -> np.ndarray:
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


def physical_memory() -> int | None:
    """This machine's physical memory in bytes; ``None`` where the system does not tell."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):
        return None


def check_weights_fit_memory(feature_dim: int, num_factors: int) -> None:
    """Refuse, before allocating them, weights larger than the machine's physical memory.

    The feature dimension may come from a RecordIO record's declared shape: a 60-byte file could
    otherwise make ``fit`` draw hundreds of GB of weights.
    """
    nbytes = feature_dim * (num_factors + 1) * np.dtype(np.float32).itemsize
    memory = physical_memory()
    if memory is not None and nbytes > memory:
        raise InvalidInputError(
            f"feature_dim {feature_dim} with num_factors {num_factors} needs {nbytes / 2**30:.1f} GiB of "
            f"weights, more than this machine's {memory / 2**30:.1f} GiB of memory (the feature dimension "
            "is X's number of columns, or the shape its RecordIO records declare): lower num_factors or "
            "the number of features"
        )


def aligned(values: np.ndarray) -> np.ndarray:
    """A C-contiguous float32 copy of ``values`` starting on a 64-byte boundary."""
    array = aligned_zeros(values.shape)
    array[...] = values
    return array


class TrainState(_fmfast.FmState):
    """Weights and optimizer state: the core's ``FmState``, which checks their shapes, and copies of it.

    Every array is float32, C-contiguous and 64-byte aligned. State is weight-major, ``(1, slots)``,
    ``(d, slots)`` and ``(d, slots, k)``, with Adam's slots ``(m, v)``, AdaGrad's ``(h,)`` and none
    for SGD, so that one row's state is contiguous.
    """

    @classmethod
    def from_arrays(cls, arrays: Iterable[np.ndarray], t: int) -> TrainState:
        """The state of ``arrays`` (the six :data:`STATE_ARRAYS`, in that order) after ``t`` updates."""
        bias, linear, factors, bias_state, linear_state, factors_state = arrays
        return cls(bias, linear, factors, bias_state, linear_state, factors_state, t=t)

    def copy(self) -> TrainState:
        """A copy whose arrays are aligned and not shared."""
        return TrainState.from_arrays((aligned(getattr(self, name)) for name in STATE_ARRAYS), self.t)

    def __reduce__(self) -> tuple[type[TrainState], tuple[Any, ...]]:
        """Pickled as its arrays and ``t`` (a pickled estimator keeps its weights)."""
        return TrainState, (*(getattr(self, name) for name in STATE_ARRAYS), self.t)

    def zeros_like(self) -> TrainState:
        """Zeroed arrays of the same shapes (the pages are only taken once written)."""
        zeros = (aligned_zeros(getattr(self, name).shape) for name in STATE_ARRAYS)
        return TrainState.from_arrays(zeros, self.t)


def sagemaker_metrics(
    predictor_type: str, n: int, loss_sum: float, tp: int, fp: int, tn: int, fn: int
) -> dict[str, float]:
    """SageMaker's metrics of ``n`` rows from their loss sum and confusion counts."""
    if predictor_type == "regressor":
        return {"rmse": math.sqrt(loss_sum / n)}
    denominator = 2 * tp + fp + fn
    return {
        "binary_classification_accuracy": (tp + tn) / n,
        "binary_classification_cross_entropy": loss_sum / n,
        "binary_f_beta": 2 * tp / denominator if denominator else 0.0,
    }


EpochStats = tuple[int, float, int, int, int, int]
#: Rows read at a time from RecordIO input while training, at most (whole mini-batches, at least
#: one): a streamed pass holds two reads in memory (the one it trains on and the next, decoded
#: meanwhile). Each read is one call to the core; one thread chooser's measurements go on from
#: call to call (:class:`fmfast._fmfast.ThreadChoice`).
_ROWS_PER_READ = 1 << 18
#: Rows of a streamed pass's first read, at most (see :func:`read_sizes`).
_FIRST_READ_ROWS = 1 << 15


def add_stats(a: EpochStats, b: EpochStats) -> EpochStats:
    """The statistics of two parts of an epoch, together."""
    return (a[0] + b[0], a[1] + b[1], a[2] + b[2], a[3] + b[3], a[4] + b[4], a[5] + b[5])


def extend_history(
    history: list[dict[str, float]], predictor_type: str, stats: list[EpochStats]
) -> list[dict[str, float]]:
    """``history`` followed by one entry of training metrics per epoch of ``stats``."""
    history = list(history)
    for epoch_stats in stats:
        history.append({"epoch": len(history), **sagemaker_metrics(predictor_type, *epoch_stats)})
    return history


def is_recordio_source(X: Any) -> bool:
    """Whether ``X`` names RecordIO input (a file or a directory of shards) rather than holding a matrix."""
    return isinstance(X, str | os.PathLike)


def read_sizes(mini_batch_size: int) -> Iterator[int]:
    """Rows of each read of a streamed pass: whole mini-batches, doubling up to :data:`_ROWS_PER_READ`.

    The first read holds about :data:`_FIRST_READ_ROWS` rows, every read at least one mini-batch.
    Nothing overlaps the first read's decoding (training waits for it), so it is small; each later
    one is decoded while the one before is trained on.
    """
    size = max(1, _FIRST_READ_ROWS // mini_batch_size) * mini_batch_size
    full = max(1, _ROWS_PER_READ // mini_batch_size) * mini_batch_size
    while True:
        yield min(size, full)
        size *= 2


def recordio_batches(
    source: str | os.PathLike[str], mini_batch_size: int, n_threads: int
) -> Iterator[tuple[Any, Any]]:
    """``(X, labels)`` reads of a RecordIO file, or of every file of a directory in name order.

    Reads are sized by :func:`read_sizes` and decoded on ``n_threads`` threads. A store's URL is
    streamed as well (:func:`fmfast.iter_recordio`): each epoch reads the objects again, a few MiB
    at a time, so memory stays bounded by the read, not the channel.
    """
    return read_batches(source, read_sizes(mini_batch_size), n_threads=n_threads)


def config(model: FactorizationMachine, epochs: int) -> _fmfast.FmConfig:
    """The hyperparameters of ``model`` for a call of ``epochs`` epochs, checked by the core."""
    return _fmfast.FmConfig(
        predictor_type=model.predictor_type,
        optimizer=model.optimizer,
        epochs=epochs,
        mini_batch_size=model.mini_batch_size,
        bias_lr=model.bias_lr,
        linear_lr=model.linear_lr,
        factors_lr=model.factors_lr,
        bias_wd=model.bias_wd,
        linear_wd=model.linear_wd,
        factors_wd=model.factors_wd,
        clip_gradient=model.clip_gradient,
        eps=model.eps,
        rescale_grad=model.rescale_grad,
        deterministic=model.deterministic,
    )


def optimizer_slots(model: FactorizationMachine) -> int:
    """Optimizer state values per weight of ``model``'s optimizer (none for ALS and MCMC)."""
    return 0 if model.optimizer in BAYES_OPTIMIZERS else config(model, 1).n_slots


def initial_state(model: FactorizationMachine, feature_dim: int) -> TrainState:
    """Freshly drawn weights of ``feature_dim`` features, with zero optimizer state."""
    check_weights_fit_memory(feature_dim, int(model.num_factors))
    rng = np.random.default_rng(model.random_state)

    def sample(group: str, shape: tuple[int, ...]) -> np.ndarray:
        method = getattr(model, f"{group}_init_method")
        if method == "normal":
            return rng.normal(0.0, float(model._init_parameter(group, "sigma")), shape)
        if method == "uniform":
            scale = float(model._init_parameter(group, "scale"))
            return rng.uniform(-scale, scale, shape)
        return np.full(shape, float(model._init_parameter(group, "value")))

    def draw(group: str, shape: tuple[int, ...]) -> np.ndarray:
        # Drawn in float64 blocks of rows (the same numbers as one draw of the whole array)
        # and rounded into place, so that no float64 copy of V is ever held.
        weights = aligned_zeros(shape)
        rows = max(1, _DRAW_BLOCK // max(1, math.prod(shape[1:])))
        for start in range(0, shape[0], rows):
            block = weights[start : start + rows]
            block[...] = sample(group, block.shape)
        return weights

    d, k = feature_dim, int(model.num_factors)
    return state_from(model, draw("bias", (1,)), draw("linear", (d,)), draw("factors", (d, k)))


def state_from(
    model: FactorizationMachine, bias: np.ndarray, linear: np.ndarray, factors: np.ndarray
) -> TrainState:
    """Weights with fresh (zero) optimizer state.

    The weights must be float32, 64-byte aligned and not shared: the core updates them in place.
    """
    (d, k), slots = factors.shape, optimizer_slots(model)
    return TrainState(
        bias=bias,
        linear=linear,
        factors=factors,
        bias_state=aligned_zeros((1, slots)),
        linear_state=aligned_zeros((d, slots)),
        factors_state=aligned_zeros((d, slots, k)),
        t=0,
    )


def working_state(model: FactorizationMachine, n_cols: int) -> TrainState:
    """What a training call updates: fresh weights when unfitted, else a copy of the fitted ones.

    Training works on this copy and the model takes it only once the call completes, so an
    error or Ctrl-C leaves the model as it was.
    """
    state: TrainState | None = getattr(model, "_state", None)
    if state is None:
        return initial_state(model, n_cols)
    if state.bias_state.shape[1] != optimizer_slots(model) or state.factors.shape[1] != model.num_factors:
        raise InvalidInputError("optimizer or num_factors changed since the model was fitted; call fit")
    return state.copy()


def train_rows(
    model: FactorizationMachine,
    rows: Rows,
    y: Any,
    sample_weight: Any,
    state: TrainState,
    epochs: int,
    progress: Callable[[int], object] | None,
    checkpoint: TrainState | None = None,
    thread_choice: _fmfast.ThreadChoice | None = None,
) -> tuple[TrainState, list[EpochStats], BaseException | None]:
    """Train ``epochs`` passes over ``rows`` into ``state`` (in place).

    Returns the state that holds the trained model (``state``), each epoch's statistics and
    ``None``. ``progress`` gets the rows done so far in this call. With a ``checkpoint``
    (shaped like ``state``), the core copies every epoch's end but the last's into it; when
    Ctrl-C (or ``progress``) stops training after an epoch has ended, ``checkpoint`` holds the
    model, and the exception comes back, not raised, with the statistics of its epochs. A
    ``thread_choice`` carries the core's thread-count measurements from call to call (the reads of
    a streamed pass).
    """
    if rows.n_rows == 0:
        raise InvalidInputError("X has no rows")
    if rows.n_cols == 0:
        raise InvalidInputError(
            f"X has 0 feature(s) (shape=({rows.n_rows}, 0)) while a minimum of 1 is required."
        )
    model._check_n_features(rows.n_cols, state)
    labels = checked_labels(y, rows.n_rows, model.predictor_type)
    weights = None if sample_weight is None else vector(sample_weight, rows.n_rows, "sample_weight")
    if weights is not None and not weights.any():
        raise InvalidInputError("every sample_weight is zero: there is nothing to learn from")
    t, stats, stopped = _fmfast.fm_fit_epochs(
        rows.n_cols,
        rows.indices,
        rows.data,
        labels,
        weights,
        state,
        config(model, epochs),
        n_threads=int(model.n_threads),
        progress=progress,
        checkpoint=checkpoint,
        thread_choice=thread_choice,
    )
    trained = checkpoint if stopped is not None and checkpoint is not None else state
    trained.t = t
    return trained, stats, stopped


def train(
    model: FactorizationMachine, X: Any, y: Any, sample_weight: Any, epochs: int, progress: FitProgress
) -> tuple[list[EpochStats], BaseException | None]:
    """Train ``epochs`` passes over the matrix ``X`` from the current weights; each epoch's statistics.

    An unfitted model starts from fresh weights. When Ctrl-C stops training after an epoch
    has ended, the model is that of the last complete epoch, and the statistics are of the
    epochs it completed, returned with the exception for the caller to raise.
    """
    model._check_params()
    rows = prepare_rows(X)
    state = working_state(model, rows.n_cols)
    checkpoint = state.zeros_like() if epochs > 1 else None
    progress.epoch_rows(rows.n_rows)
    trained, stats, stopped = train_rows(
        model, rows, y, sample_weight, state, epochs, progress.callback(), checkpoint
    )
    model._state = trained
    return stats, stopped


class StreamedPasses:
    """Passes over a RecordIO source, all read through one pipeline (:func:`fmfast._read_ahead.read_ahead`).

    Each read is decoded while the core trains on the one before it (both without the interpreter
    lock), on as many threads as training uses, and so is the next pass's first read while this
    pass's last is trained on (or evaluated after): only a fit's first read waits for decoding.
    At most two reads are held, as in one pass. Close it to stop the reader early.
    """

    def __init__(self, model: FactorizationMachine, source: Any, passes: int) -> None:
        def reads() -> Iterator[tuple[int, tuple[Any, Any]]]:
            for number in range(passes):
                for read in recordio_batches(source, int(model.mini_batch_size), int(model.n_threads)):
                    # scipy caches whether the rows are canonical (sorted, distinct columns), which
                    # `prepare_rows` asks: scanned here, on the reader's thread, the scan overlaps
                    # training instead of running on the caller's between two training calls.
                    read[0].has_canonical_format  # noqa: B018 (the property computes and caches)
                    yield number, read
                    del read

        self._pipeline = read_ahead(reads())
        # The first read of the next pass, taken from the pipeline when it ended this one.
        self._pending: tuple[int, tuple[Any, Any]] | None = None

    def next_pass(self) -> Iterator[tuple[Any, Any]]:
        """The ``(X, labels)`` reads of the next pass."""
        number = None
        while True:
            item = self._pending or next(self._pipeline, None)
            self._pending = None
            if item is None:
                return
            if number is not None and item[0] != number:
                self._pending = item
                return
            number, read = item
            # No reference is kept to a read once the caller asks for the next.
            del item
            yield read
            del read

    def close(self) -> None:
        """Stop reading (the read in progress is dropped)."""
        self._pending = None
        self._pipeline.close()


def train_epoch(
    model: FactorizationMachine,
    X: Any,
    y: Any,
    sample_weight: Any,
    progress: FitProgress,
    passes: StreamedPasses | None = None,
) -> EpochStats:
    """One pass over ``X`` (a matrix, or RecordIO streamed read by read) from the current weights.

    For RecordIO, the pass is the next of ``passes``, or one read on its own when ``None``.
    """
    if not is_recordio_source(X):
        (stats,), _ = train(model, X, y, sample_weight, 1, progress)
        return stats
    if y is not None or sample_weight is not None:
        raise InvalidInputError("labels come from the RecordIO records: pass y=None and no sample_weight")
    model._check_params()
    if passes is None:
        with closing(StreamedPasses(model, X, 1)) as own:
            return _train_pass(model, X, own.next_pass(), progress)
    return _train_pass(model, X, passes.next_pass(), progress)


def _train_pass(
    model: FactorizationMachine, X: Any, reads: Iterator[tuple[Any, Any]], progress: FitProgress
) -> EpochStats:
    """Trains on the reads of one pass over ``X``."""
    # Whole mini-batches per read, so the updates are those of the data in memory; one working
    # copy of the weights for the whole pass.
    state: TrainState | None = None
    total: EpochStats = (0, 0.0, 0, 0, 0, 0)
    # The reads are one fit to the core's thread chooser: its probes are paid once a cycle, not
    # once a read, and the first small reads are not too short to measure.
    thread_choice = _fmfast.ThreadChoice()
    for X_batch, labels in reads:
        if labels is None:
            raise InvalidInputError(f"the records of {X} carry no labels")
        rows = prepare_rows(X_batch)
        if state is None:
            state = working_state(model, rows.n_cols)
        _, (stats,), _ = train_rows(
            model, rows, labels, None, state, 1, progress.callback(), thread_choice=thread_choice
        )
        total = add_stats(total, stats)
        # Let go of this read before asking for the next, whose successor is then read: two
        # reads in memory at most.
        del X_batch, labels, rows
    if state is None:
        raise InvalidInputError(f"{X} holds no records")
    model._state = state
    return total


def fit_epochs(
    model: FactorizationMachine,
    X: Any,
    y: Any,
    sample_weight: Any,
    eval_set: tuple[Any, Any] | None,
    early_stopping_rounds: int | None,
    progress: FitProgress,
) -> None:
    """The epochs of :meth:`fit`, each told to ``progress`` once it has ended."""
    if eval_set is None and not is_recordio_source(X):
        stats, stopped = train(model, X, y, sample_weight, int(model.epochs), progress)
        model.history_ = extend_history([], model.predictor_type, stats)
        for epoch_stats, entry in zip(stats, model.history_, strict=True):
            progress.epoch_ended(epoch_stats[0], entry)
        if stopped is not None:
            raise stopped
        return
    passes = StreamedPasses(model, X, int(model.epochs)) if is_recordio_source(X) else None
    with closing(passes) if passes is not None else nullcontext():
        _fit_passes(model, X, y, sample_weight, eval_set, early_stopping_rounds, progress, passes)


def _fit_passes(
    model: FactorizationMachine,
    X: Any,
    y: Any,
    sample_weight: Any,
    eval_set: tuple[Any, Any] | None,
    early_stopping_rounds: int | None,
    progress: FitProgress,
    passes: StreamedPasses | None,
) -> None:
    """The epochs of :meth:`fit` one call at a time (RecordIO ``passes``, an evaluation set)."""
    history: list[dict[str, float]] = []
    best: tuple[float, int, TrainState] | None = None
    for epoch in range(int(model.epochs)):
        epoch_stats = train_epoch(model, X, y, sample_weight, progress, passes)
        history = extend_history(history, model.predictor_type, [epoch_stats])
        # Kept current, so that a fit stopped by Ctrl-C keeps the history of the epochs it keeps.
        model.history_ = history
        if eval_set is not None:
            # Without a bar of its own: the fit's bar shows the metrics.
            metrics = model._evaluate(*eval_set, progress=None)
            history[-1].update({f"eval_{name}": value for name, value in metrics.items()})
        progress.epoch_ended(epoch_stats[0], history[-1])
        if eval_set is None or early_stopping_rounds is None:
            continue
        loss = metrics.get("rmse", metrics.get("binary_classification_cross_entropy", math.inf))
        if best is None or loss < best[0]:
            best = (loss, epoch, model._fitted_state().copy())
        elif epoch - best[1] >= early_stopping_rounds:
            break
    if best is not None:
        model._state, model.best_epoch_ = best[2], best[1]
    model.history_ = history
