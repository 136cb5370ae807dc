"""Balanced RecordIO shards for multi-instance SageMaker training, and the files of a directory.

A shard set is written into a temporary directory and then replaces the target directory as a
whole (see :func:`fmfast._atomic.atomic_directory`), so readers never see a partial or mixed set.
On an object store (a URL), where a prefix cannot be renamed, the old set is deleted, the shards
are uploaded one by one and the manifest last; readers refuse the incomplete set that a prefix
holds meanwhile (see :mod:`fmfast._storage`).
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
from fmfast._storage import StorageOptions, is_url, join, list_files, local_path
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
    storage_options: StorageOptions = None,
    **options: Any,
) -> list[Any]:
    """Write ``X`` as ``n_shards`` RecordIO files of consecutive rows whose sizes differ by at most one.

    The set replaces ``directory`` as a whole, atomically: until the last shard is written the
    directory keeps its old contents, and a failure or a kill leaves it as it was. So that nothing
    else is lost, an existing ``directory`` may hold only ``.recordio`` files and a manifest.

    ``directory`` may be a store's prefix (``s3://bucket/train/``), opened with
    ``storage_options``: the old set is deleted, the shards uploaded one by one, then the manifest
    (always written there, its prefix ``directory`` unless ``manifest_prefix`` says otherwise).
    Readers refuse the prefix while it holds an incomplete set; a failure leaves it empty.

    Args:
        directory: where the shards go (created if missing; replaced if it holds an earlier set).
        X: rows, as for :func:`fmfast.write_recordio`.
        labels: one label per row, or ``None``.
        n_shards: number of files, at least 1 (e.g. one per training instance).
        prefix: file name prefix; names are ``{prefix}-00000-of-00004.recordio`` and so on.
        manifest_prefix: when given (an S3 URI such as ``s3://bucket/train/``), also write a
            SageMaker ``ManifestFile`` (``manifest.json``) listing the shards under that prefix.
        storage_options: options of the store's fsspec file system, for a URL.
        **options: passed to :func:`fmfast.write_recordio` (``dtype``, ``n_threads``, ...).

    Returns:
        The paths (URLs, for a store) of the shards, in order.

    Raises:
        InvalidInputError: bad arguments, or a ``directory`` holding files of its own.
    """
    if n_shards < 1:
        raise InvalidInputError(f"n_shards must be at least 1, got {n_shards}")
    csr = as_csr(X)
    label_array = None if labels is None else np.asarray(labels)
    if label_array is not None and label_array.shape[:1] != (csr.shape[0],):
        raise InvalidInputError(f"{csr.shape[0]} rows but labels of shape {label_array.shape}")
    out = str(directory).rstrip("/") if is_url(directory) else Path(local_path(directory))
    if isinstance(out, str):
        _check_replaceable(out, _store_entries(out, storage_options))
        manifest_prefix = manifest_prefix or f"{out}/"
    else:
        _check_replaceable(out, _local_entries(out))
    bounds = np.arange(n_shards + 1) * csr.shape[0] // n_shards
    names = [shard_name(index, n_shards, prefix) for index in range(n_shards)]
    with atomic_directory(out, storage_options) as temp:
        for name, (start, stop) in zip(names, itertools.pairwise(bounds), strict=True):
            shard_labels = None if label_array is None else label_array[start:stop]
            write_recordio(
                join(temp, name), csr[start:stop], shard_labels, storage_options=storage_options, **options
            )
        if manifest_prefix is not None:
            manifest = [{"prefix": manifest_prefix}, *names]
            with atomic_output(join(temp, MANIFEST_NAME), storage_options) as file:
                file.write(json.dumps(manifest, indent=1).encode())
    return [join(out, name) for name in names]


def _local_entries(directory: Path) -> list[tuple[str, bool]] | None:
    """``(name, is a file)`` of each entry of ``directory``; ``None`` if there is no such directory."""
    if not directory.exists():
        return None
    if not directory.is_dir():
        raise InvalidInputError(f"{directory} exists and is not a directory")
    return [(entry.name, entry.is_file()) for entry in directory.iterdir()]


def _store_entries(url: str, storage_options: StorageOptions) -> list[tuple[str, bool]] | None:
    """``(name, True)`` of each object under the prefix ``url``; ``None`` if there is none."""
    try:
        return [(name, True) for name in list_files(url, storage_options)]
    except FileNotFoundError:
        return None


def _check_replaceable(directory: Any, entries: list[tuple[str, bool]] | None) -> None:
    """Refuse to replace anything but a missing directory or one that holds only a shard set."""
    for name, is_file in entries or []:
        ours = name.endswith(".recordio") or name == MANIFEST_NAME or is_temporary(name)
        if not (is_file and ours):
            raise InvalidInputError(
                f"{directory} holds {name!r}, which is not part of a shard set; the set replaces "
                "the whole directory: write it to a new or empty one"
            )


def recordio_files(directory: str | os.PathLike[str], storage_options: StorageOptions = None) -> list[Any]:
    """The RecordIO files of ``directory``, in name order: every visible file but JSON manifests.

    ``directory`` may be a store's prefix (a URL, opened with ``storage_options``); its files are
    then returned as URLs.

    Files named as :func:`shard_name` names them must form whole sets, one per prefix: a missing
    shard, or shards of two sets (``-of-00004`` beside ``-of-00008``), mean the directory holds
    the remains of an interrupted or overlapping write (by an fmfast before atomic shard sets, or
    by another tool), and are refused rather than read as data.

    Raises:
        InvalidInputError: an incomplete or mixed shard set, or no RecordIO file at all.
    """
    base: Any
    if is_url(directory):
        base = str(directory).rstrip("/")
        visible = [name for name in list_files(directory, storage_options) if not name.startswith(".")]
    else:
        base = Path(local_path(directory))
        visible = [p.name for p in base.iterdir() if p.is_file() and not p.name.startswith(".")]
    files = sorted(name for name in visible if not name.endswith(".json"))
    sets: dict[str, dict[int, set[int]]] = {}
    for file in files:
        if match := _SHARD_NAME.fullmatch(file):
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
    return [join(base, name) for name in files]
