"""Balanced RecordIO shards for multi-instance SageMaker training, and the files of a directory.

A shard set is written into a temporary directory and then replaces the target directory as a
whole (see :func:`fmfast._atomic.atomic_directory`), so readers never see a partial or mixed set.
"""

from __future__ import annotations

import itertools
import json
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from fmfast._atomic import atomic_directory, atomic_output, is_temporary
from fmfast._inputs import as_csr
from fmfast.exceptions import InvalidInputError
from fmfast.recordio.codec import write_recordio

#: Name of the SageMaker ``ManifestFile`` written next to the shards.
MANIFEST_NAME = "manifest.json"

#: What :func:`shard_name` makes: ``{prefix}-{index}-of-{n_shards}.recordio``.
_SHARD_NAME = re.compile(r"(?P<prefix>.*)-(?P<index>\d{5,})-of-(?P<count>\d{5,})\.recordio")


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

    The set replaces ``directory`` as a whole, atomically: until the last shard is written the
    directory keeps its old contents, and a failure or a kill leaves it as it was. So that nothing
    else is lost, an existing ``directory`` may hold only ``.recordio`` files and a manifest.

    Args:
        directory: where the shards go (created if missing; replaced if it holds an earlier set).
        X: rows, as for :func:`fmfast.write_recordio`.
        labels: one label per row, or ``None``.
        n_shards: number of files, at least 1 (e.g. one per training instance).
        prefix: file name prefix; names are ``{prefix}-00000-of-00004.recordio`` and so on.
        manifest_prefix: when given (an S3 URI such as ``s3://bucket/train/``), also write a
            SageMaker ``ManifestFile`` (``manifest.json``) listing the shards under that prefix.
        **options: passed to :func:`fmfast.write_recordio` (``dtype``, ``n_threads``, ...).

    Returns:
        The paths of the shards, in order.

    Raises:
        InvalidInputError: bad arguments, or a ``directory`` holding files of its own.
    """
    if n_shards < 1:
        raise InvalidInputError(f"n_shards must be at least 1, got {n_shards}")
    csr = as_csr(X)
    label_array = None if labels is None else np.asarray(labels)
    if label_array is not None and label_array.shape[:1] != (csr.shape[0],):
        raise InvalidInputError(f"{csr.shape[0]} rows but labels of shape {label_array.shape}")
    out = Path(directory)
    _check_replaceable(out)
    bounds = np.arange(n_shards + 1) * csr.shape[0] // n_shards
    names = [shard_name(index, n_shards, prefix) for index in range(n_shards)]
    with atomic_directory(out) as temp:
        for name, (start, stop) in zip(names, itertools.pairwise(bounds), strict=True):
            shard_labels = None if label_array is None else label_array[start:stop]
            write_recordio(temp / name, csr[start:stop], shard_labels, **options)
        if manifest_prefix is not None:
            write_manifest(temp, manifest_prefix, names)
    return [out / name for name in names]


def write_manifest(directory: str | os.PathLike[str], prefix: str, names: list[str]) -> Path:
    """Write the SageMaker ``ManifestFile`` (``manifest.json``) listing shards under ``prefix``, atomically.

    Args:
        directory: where ``manifest.json`` goes, beside the shards.
        prefix: the URI the names are relative to, such as ``s3://bucket/train/``.
        names: the shard file names, in order.

    Returns:
        The path of the manifest.
    """
    path = Path(directory) / MANIFEST_NAME
    with atomic_output(path) as out:
        out.write(json.dumps([{"prefix": prefix}, *names], indent=1).encode())
    return path


def _check_replaceable(directory: Path) -> None:
    """Refuse to replace anything but a missing directory or one that holds only a shard set."""
    if not directory.exists():
        return
    if not directory.is_dir():
        raise InvalidInputError(f"{directory} exists and is not a directory")
    for entry in directory.iterdir():
        ours = entry.suffix == ".recordio" or entry.name == MANIFEST_NAME or is_temporary(entry.name)
        if not (entry.is_file() and ours):
            raise InvalidInputError(
                f"{directory} holds {entry.name!r}, which is not part of a shard set; the set replaces "
                "the whole directory: write it to a new or empty one"
            )


def recordio_files(directory: str | os.PathLike[str]) -> list[Path]:
    """The RecordIO files of ``directory``, in name order: every visible file but JSON manifests.

    Files named as :func:`shard_name` names them must form whole sets, one per prefix: a missing
    shard, or shards of two sets (``-of-00004`` beside ``-of-00008``), mean the directory holds
    the remains of an interrupted or overlapping write (by an fmfast before atomic shard sets, or
    by another tool), and are refused rather than read as data.

    Raises:
        InvalidInputError: an incomplete or mixed shard set, or no RecordIO file at all.
    """
    visible = (p for p in Path(directory).iterdir() if p.is_file() and not p.name.startswith("."))
    files = sorted(p for p in visible if p.suffix != ".json")
    sets: dict[str, dict[int, set[int]]] = {}
    for file in files:
        if match := _SHARD_NAME.fullmatch(file.name):
            counts = sets.setdefault(match["prefix"], {})
            counts.setdefault(int(match["count"]), set()).add(int(match["index"]))
    for prefix, counts in sets.items():
        if len(counts) > 1:
            raise InvalidInputError(
                f"{directory} mixes shard sets of {' and '.join(map(str, sorted(counts)))} shards named "
                f"{prefix}-*: the remains of different writes; write the set again"
            )
        ((count, indices),) = counts.items()
        if max(indices) >= count:
            raise InvalidInputError(
                f"{directory} holds {shard_name(max(indices), count, prefix)}: no such shard"
            )
        missing = sorted(set(range(count)) - indices)
        if missing:
            raise InvalidInputError(
                f"{directory} is an incomplete shard set: {shard_name(missing[0], count, prefix)} and "
                f"{len(missing) - 1} more of {count} are missing; write the set again"
            )
    if not files:
        raise InvalidInputError(f"{directory} holds no RecordIO files")
    return files
