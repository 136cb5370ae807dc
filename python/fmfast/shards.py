"""Splitting training data into balanced RecordIO shards for multi-instance SageMaker training."""

from __future__ import annotations

import itertools
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from fmfast._atomic import atomic_output
from fmfast._inputs import as_csr
from fmfast.exceptions import InvalidInputError
from fmfast.recordio import write_recordio

#: Name of the SageMaker ``ManifestFile`` written next to the shards.
MANIFEST_NAME = "manifest.json"


def shard_name(index: int, n_shards: int, prefix: str = "part") -> str:
    """The deterministic file name of shard ``index`` of ``n_shards``."""
    return f"{prefix}-{index:05d}-of-{n_shards:05d}.recordio"


def write_recordio_shards(
    directory: str | os.PathLike[str],
    X: Any,
    labels: Any = None,
    *,
    n_shards: int,
    prefix: str = "part",
    manifest_prefix: str | None = None,
    **options: Any,
) -> list[Path]:
    """Write ``X`` as ``n_shards`` RecordIO files of consecutive rows whose sizes differ by at most one.

    Args:
        directory: where the shards go (created if missing).
        X: rows, as for :func:`fmfast.write_recordio`.
        labels: one label per row, or ``None``.
        n_shards: number of files, at least 1 (e.g. one per training instance).
        prefix: file name prefix; names are ``{prefix}-00000-of-00004.recordio`` and so on.
        manifest_prefix: when given (an S3 URI such as ``s3://bucket/train/``), also write a
            SageMaker ``ManifestFile`` (``manifest.json``) listing the shards under that prefix.
        **options: passed to :func:`fmfast.write_recordio` (``dtype``, ``n_threads``, ...).

    Returns:
        The paths of the shards, in order.
    """
    if n_shards < 1:
        raise InvalidInputError(f"n_shards must be at least 1, got {n_shards}")
    csr = as_csr(X)
    label_array = None if labels is None else np.asarray(labels)
    if label_array is not None and label_array.shape[:1] != (csr.shape[0],):
        raise InvalidInputError(f"{csr.shape[0]} rows but labels of shape {label_array.shape}")
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    bounds = np.arange(n_shards + 1) * csr.shape[0] // n_shards
    paths = []
    for index, (start, stop) in enumerate(itertools.pairwise(bounds)):
        path = out / shard_name(index, n_shards, prefix)
        shard_labels = None if label_array is None else label_array[start:stop]
        write_recordio(path, csr[start:stop], shard_labels, **options)
        paths.append(path)
    if manifest_prefix is not None:
        manifest = [{"prefix": manifest_prefix}, *(path.name for path in paths)]
        with atomic_output(out / MANIFEST_NAME) as f:
            f.write(json.dumps(manifest, indent=1).encode())
    return paths
