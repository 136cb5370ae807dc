"""The fmfast model file: a fitted :class:`fmfast.FactorizationMachine` as an ``.npz`` with a JSON header.

The header holds the format name and version, the hyperparameters, the history and the classes;
the arrays are the weights and the optimizer state, so that a loaded model trains on.
"""

from __future__ import annotations

import json
import os
import zipfile
import zlib
from typing import TYPE_CHECKING, Any

import numpy as np

from fmfast import _fmfast
from fmfast._atomic import atomic_output
from fmfast._npz import check_npz
from fmfast._storage import StorageOptions, local_copy
from fmfast.exceptions import InvalidInputError, ModelFormatError
from fmfast.training._labels import SAGEMAKER_CLASSES
from fmfast.training.bayes import POSTERIOR_ARRAYS, Posterior
from fmfast.training.loop import STATE_ARRAYS, TrainState, aligned, optimizer_slots

if TYPE_CHECKING:
    from fmfast.training.estimator import FactorizationMachine

#: Name written into (and required from) the header of saved models.
MODEL_FORMAT = "fmfast.FactorizationMachine"
#: Version of the saved-model layout this fmfast writes.
MODEL_FORMAT_VERSION = 2
#: Array dtype of each saved-model version this fmfast reads (version 1 arrays are float64; they
#: are rounded to float32 on loading).
_ARRAY_DTYPES: dict[int, type] = {1: np.float64, 2: np.float32}


def json_safe(value: Any) -> Any:
    """Parameters that survive JSON; a callable ``progress`` or a Generator seed do not."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, np.integer | np.floating):
        return value.item()
    return None


def write_model(
    model: FactorizationMachine, path: str | os.PathLike[str], storage_options: StorageOptions = None
) -> None:
    """Write ``model`` to ``path`` atomically, as :meth:`fmfast.FactorizationMachine.save` describes."""
    state = model._fitted_state()
    header: dict[str, Any] = {
        "format": MODEL_FORMAT,
        "version": MODEL_FORMAT_VERSION,
        "fmfast_version": _fmfast.__version__,
        "params": {name: json_safe(value) for name, value in model.get_params().items()},
        "n_updates": int(state.t),
        "history": model.history_,
    }
    if model.predictor_type == "binary_classifier":
        header["classes"] = model.classes_.tolist()
    header["params"]["progress"] = bool(header["params"]["progress"])
    arrays = {name: getattr(state, name) for name in STATE_ARRAYS}
    posterior: Posterior | None = getattr(model, "_posterior", None)
    if posterior is not None:
        arrays.update(posterior.arrays())
    encoded = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    with atomic_output(path, storage_options) as out:
        np.savez(out, header=encoded, **arrays)


def read_model(
    cls: type[FactorizationMachine], path: str | os.PathLike[str], storage_options: StorageOptions = None
) -> FactorizationMachine:
    """A ``cls`` read from the model file ``path`` (:meth:`fmfast.FactorizationMachine.load`).

    A store's URL is first copied to a local temporary file, which ``np.load`` needs; messages
    name the URL.
    """
    with local_copy(path, storage_options) as copy:
        return _read_model(cls, copy, os.fspath(path))


def _read_model(
    cls: type[FactorizationMachine], path: str | os.PathLike[str], where: str
) -> FactorizationMachine:
    """A ``cls`` read from the model file ``path``, called ``where`` in messages.

    Files of format version 1 (float64 arrays) load too, rounded to float32. A damaged file,
    another format or an unknown format version raises :class:`fmfast.ModelFormatError`; a
    missing or unreadable file raises :class:`OSError`.
    """
    check_npz(path, "fmfast model file", name=where)
    try:
        with np.load(path, allow_pickle=False) as npz:
            header = json.loads(npz["header"].tobytes().decode())
            arrays = {name: npz[name] for name in STATE_ARRAYS + POSTERIOR_ARRAYS if name in npz.files}
    except (ValueError, KeyError, RecursionError, EOFError, zipfile.BadZipFile, zlib.error) as e:
        raise ModelFormatError(f"{where!r} is not a readable fmfast model file: {e}") from e
    if not isinstance(header, dict) or header.get("format") != MODEL_FORMAT:
        found = header.get("format") if isinstance(header, dict) else None
        raise ModelFormatError(f"{where!r} holds format {found!r}, not {MODEL_FORMAT!r}")
    version = header.get("version")
    dtype = _ARRAY_DTYPES.get(version) if isinstance(version, int) else None
    if dtype is None:
        raise ModelFormatError(
            f"{where!r} has format version {version!r}; "
            f"this fmfast reads versions {', '.join(map(str, _ARRAY_DTYPES))}"
        )
    try:
        model = cls(**header["params"])
        model._check_params()
        stored = [arrays[name] for name in STATE_ARRAYS]
        n_updates = int(header["n_updates"])
        history = [dict(entry) for entry in header["history"]]
        # Files written before classes were saved hold a classifier of labels 0/1.
        classes = np.array(header.get("classes", SAGEMAKER_CLASSES))
        if model.predictor_type == "binary_classifier" and not (
            classes.ndim == 1 and len(classes) == 2 and classes[0] < classes[1]
        ):
            raise ValueError(f"classes {classes.tolist()} are not two sorted labels")
    except (KeyError, TypeError, ValueError, InvalidInputError) as e:
        raise ModelFormatError(f"{where!r} has an invalid header or arrays: {e}") from e
    for name, array in zip(STATE_ARRAYS, stored, strict=True):
        if array.dtype != dtype:
            raise ModelFormatError(
                f"{where!r}: array {name!r} has shape {array.shape} and dtype {array.dtype}, "
                f"expected dtype {np.dtype(dtype)}"
            )
    try:
        state = TrainState.from_arrays((aligned(array) for array in stored), n_updates)
    except (InvalidInputError, OverflowError) as e:
        raise ModelFormatError(f"{where!r} has arrays that do not fit together: {e}") from e
    # The arrays fit together (TrainState checked that); they must also fit the header.
    if state.factors.shape[1] != model.num_factors:
        raise ModelFormatError(
            f"{where!r}: array 'factors' has shape {state.factors.shape}, expected "
            f"num_factors {model.num_factors} (its header's)"
        )
    if state.bias_state.shape[1] != optimizer_slots(model):
        raise ModelFormatError(
            f"{where!r}: array 'bias_state' has shape {state.bias_state.shape}, expected the "
            f"state slots of optimizer {model.optimizer!r} (its header's)"
        )
    model._state = state
    model._posterior = read_posterior(path, arrays, state)
    model.history_ = history
    if model.predictor_type == "binary_classifier":
        model.classes_ = classes
    return model


def read_posterior(
    path: str | os.PathLike[str], arrays: dict[str, np.ndarray], state: TrainState
) -> Posterior | None:
    """The kept samples of an MCMC model among a model file's ``arrays``, checked against ``state``."""
    if not any(name in arrays for name in POSTERIOR_ARRAYS):
        return None
    try:
        posterior = Posterior(*(arrays[name] for name in POSTERIOR_ARRAYS))
    except KeyError as e:
        raise ModelFormatError(f"{os.fspath(path)!r} lacks array {e} of the posterior samples") from e
    s, (d, k) = posterior.bias.shape[0] if posterior.bias.ndim == 1 else -1, state.factors.shape
    expected = {
        "posterior_bias": (np.float32, (s,)),
        "posterior_linear": (np.float32, (s, d)),
        "posterior_factors": (np.float32, (s, d, k)),
        "posterior_clip": (np.float64, (2,)),
    }
    for name, array in posterior.arrays().items():
        dtype, shape = expected[name]
        if array.dtype != dtype or array.shape != shape or s < 1:
            raise ModelFormatError(
                f"{os.fspath(path)!r}: array {name!r} has shape {array.shape} and dtype {array.dtype}, "
                f"expected {np.dtype(dtype)} {shape}"
            )
    if not posterior.clip[0] <= posterior.clip[1]:
        raise ModelFormatError(
            f"{os.fspath(path)!r}: the posterior's clipping range {posterior.clip} is empty"
        )
    return posterior
