"""Targets and class labels: what ``y`` may hold, and the classifier's classes as the core's 0/1."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from fmfast._inputs import vector
from fmfast.exceptions import InvalidInputError
from fmfast.training._sklearn import data_conversion_warning


def as_target(y: Any) -> np.ndarray:
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
SAGEMAKER_CLASSES = np.array([0, 1])


def _shown(value: Any) -> str:
    """A label as Python writes it (``2.0``, ``'spam'``, not ``np.float64(2.0)``)."""
    return repr(value.item() if isinstance(value, np.generic) else value)


def classes_of(labels: np.ndarray) -> np.ndarray:
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
        return SAGEMAKER_CLASSES.astype(classes.dtype)
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


def encode(labels: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """The classifier's labels as 0.0/1.0, the index of each in ``classes``."""
    index = np.minimum(np.searchsorted(classes, labels), 1)
    unknown = np.flatnonzero(classes[index] != labels)
    if unknown.size:
        row = int(unknown[0])
        raise InvalidInputError(
            f"label of row {row} is {_shown(labels[row])}, not one of the model's classes {classes.tolist()}"
        )
    return index.astype(np.float64)


def checked_labels(y: Any, n_rows: int, predictor_type: str) -> np.ndarray:
    """``y`` as the labels the core trains on: finite, and 0 or 1 for the classifier."""
    if y is None:
        raise InvalidInputError(
            "FactorizationMachine requires y to be passed, but the target y is None "
            "(only RecordIO input carries its labels)"
        )
    # float32 labels (what read_recordio returns) are passed to the core as they are: no copy.
    labels = vector(y, n_rows, "y", (np.float32, np.float64))
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
