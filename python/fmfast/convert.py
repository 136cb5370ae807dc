"""File conversion to RecordIO-protobuf: the engine behind ``fmfast convert``."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from fmfast._progress import Progress
from fmfast.exceptions import InvalidInputError
from fmfast.recordio import write_recordio

#: Input formats ``convert_file`` understands.
FORMATS = ("npz",)


def detect_format(path: str | os.PathLike[str]) -> str:
    """Guess an input format from the file name."""
    suffix = Path(path).suffix.lower()
    if suffix == ".npz":
        return "npz"
    raise InvalidInputError(f"cannot tell the format of {path}; pass format= one of {', '.join(FORMATS)}")


def convert_file(
    source: str | os.PathLike[str],
    target: str | os.PathLike[str],
    *,
    format: str = "auto",
    labels: str | os.PathLike[str] | None = None,
    n_features: int | None = None,
    progress: Progress = None,
) -> int:
    """Convert ``source`` to a RecordIO file at ``target``; returns the number of records."""
    kind = detect_format(source) if format == "auto" else format
    if kind != "npz":
        raise InvalidInputError(f"unknown format {kind!r}")
    X = sp.load_npz(source)
    y = None if labels is None else np.load(labels)
    write_recordio(target, X, y, progress=progress)
    return int(X.shape[0])
