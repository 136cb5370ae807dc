"""Balanced RecordIO shards for multi-instance SageMaker training, and the files of a directory.

A shard set is written into a temporary directory and then replaces the target directory as a
whole (see :func:`fmfast._atomic.atomic_directory`), so readers never see a partial or mixed set.
On an object store (a URL), where a prefix cannot be renamed, the old set is deleted, the shards
are uploaded one by one and the manifest last; readers refuse the incomplete set that a prefix
holds meanwhile (see :mod:`fmfast._storage`).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from fmfast._atomic import atomic_directory, atomic_output, is_temporary
from fmfast._inputs import as_csr, row_slice
from fmfast._progress import progress_callback
from fmfast._storage import StorageOptions, is_url, join, list_files, local_path, rename
from fmfast.exceptions import InvalidInputError
from fmfast.recordio.codec import RecordIOWriter

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
        **options: passed to :func:`fmfast.write_recordio` (``dtype``, ``n_threads``, ``progress``, ...).

    Returns:
        The paths (URLs, for a store) of the shards, in order.

    Raises:
        InvalidInputError: bad arguments, or a ``directory`` holding files of its own.
    """
    csr = as_csr(X)
    label_array = None if labels is None else np.asarray(labels)
    if label_array is not None and label_array.shape[:1] != (csr.shape[0],):
        raise InvalidInputError(f"{csr.shape[0]} rows but labels of shape {label_array.shape}")
    progress = options.pop("progress", None)
    with (
        progress_callback(progress, csr.shape[0], "rows") as callback,
        shard_set_writer(
            directory,
            n_shards=n_shards,
            n_rows=csr.shape[0],
            prefix=prefix,
            manifest_prefix=manifest_prefix,
            storage_options=storage_options,
            **options,
        ) as shards,
    ):
        shards.write(csr, label_array, progress=callback)
    return shards.paths


class ShardSetWriter:
    """Writes the rows given chunk by chunk into consecutive shards; made by :func:`shard_set_writer`.

    A shard ends at a fixed row count (``rows_per_shard``) or at the bounds that split a known
    number of rows into ``n_shards`` shards whose sizes differ by at most one; a chunk that
    crosses a bound is split there. Shards are written under provisional names and renamed when
    the set is finished, since the ``-of-N`` in their names may be known only then.
    """

    def __init__(
        self,
        directory: Any,
        ends: list[int] | None,
        rows_per_shard: int | None,
        storage_options: StorageOptions,
        **options: Any,
    ) -> None:
        self._directory = directory
        self._ends = ends
        self._rows_per_shard = rows_per_shard
        self._storage_options = storage_options
        self._options = options
        self._writer: RecordIOWriter | None = None
        self._shard_end = 0
        self._files: list[Any] = []
        self._n_cols: int | None = None
        self._labelled: bool | None = None
        self.rows_written = 0
        #: The shards' final paths (URLs, on a store), once the set is finished.
        self.paths: list[Any] = []

    def write(self, X: Any, labels: Any = None, *, progress: Callable[[int], object] | None = None) -> None:
        """Append the rows of ``X`` (and their labels), starting new shards at the bounds.

        ``progress``, when given, receives the rows of this call written so far.
        """
        csr = as_csr(X)
        label_array = None if labels is None else np.asarray(labels)
        if self._ends is not None and self.rows_written + csr.shape[0] > self._ends[-1]:
            raise InvalidInputError(
                f"{self.rows_written + csr.shape[0]:,} rows written to a shard set of {self._ends[-1]:,}"
            )
        if self._n_cols is not None and csr.shape[1] != self._n_cols:
            raise InvalidInputError(f"chunk has {csr.shape[1]} columns, earlier chunks {self._n_cols}")
        if self._labelled is not None and (label_array is not None) != self._labelled:
            raise InvalidInputError("either every chunk has labels or none does")
        self._n_cols, self._labelled = csr.shape[1], label_array is not None
        start = 0
        while start < csr.shape[0]:
            if self._writer is None or self.rows_written == self._shard_end:
                self._next_shard()
                continue
            stop = min(csr.shape[0], start + self._shard_end - self.rows_written)
            report = None if progress is None else lambda n, done=start: progress(done + n)
            part_labels = None if label_array is None else label_array[start:stop]
            self._writer.write(row_slice(csr, start, stop), part_labels, progress=report)
            self.rows_written += stop - start
            start = stop

    def _next_shard(self) -> None:
        """Close the shard in progress and open the next, which ends at the next bound."""
        if self._writer is not None:
            self._writer.close()
        index = len(self._files)
        if self._ends is not None:
            self._shard_end = self._ends[index]
        else:
            assert self._rows_per_shard is not None
            self._shard_end = self.rows_written + self._rows_per_shard
        # A temporary's name: hidden from readers of a store's prefix, which is written in place.
        self._files.append(join(self._directory, f".fmfast-shard-{index:05d}.tmp"))
        self._writer = RecordIOWriter(self._files[-1], storage_options=self._storage_options, **self._options)

    def _finish(self, prefix: str) -> list[str]:
        """Close the last shard, write the empty ones still due, give every shard its name."""
        if self._ends is not None and self.rows_written != self._ends[-1]:
            raise InvalidInputError(
                f"{self.rows_written:,} rows written to a shard set of {self._ends[-1]:,}: "
                "the set is incomplete"
            )
        while self._writer is None or (self._ends is not None and len(self._files) < len(self._ends)):
            self._next_shard()
        self._writer.close()
        names = [shard_name(index, len(self._files), prefix) for index in range(len(self._files))]
        for file, name in zip(self._files, names, strict=True):
            rename(file, join(self._directory, name), self._storage_options)
        return names

    def _abort(self) -> None:
        if self._writer is not None:
            self._writer.abort()


@contextmanager
def shard_set_writer(
    directory: str | os.PathLike[str],
    *,
    n_shards: int | None = None,
    n_rows: int | None = None,
    rows_per_shard: int | None = None,
    prefix: str = "part",
    manifest_prefix: str | None = None,
    storage_options: StorageOptions = None,
    **options: Any,
) -> Iterator[ShardSetWriter]:
    """A :class:`ShardSetWriter` whose set replaces ``directory`` whole when the block succeeds.

    Shards are sized by ``rows_per_shard``, or by ``n_shards`` over the ``n_rows`` rows that the
    block must then write, exactly. As with :func:`write_recordio_shards`, nothing of the set
    appears until the block ends without error, and ``manifest_prefix`` adds a manifest (always
    written on a store's prefix, the commit mark of the set there). ``options`` are
    :class:`fmfast.RecordIOWriter`'s.

    Example:
        >>> with shard_set_writer("train/", rows_per_shard=1_000_000) as shards:  # doctest: +SKIP
        ...     for X_chunk, y_chunk in chunks:
        ...         shards.write(X_chunk, y_chunk)

    Raises:
        InvalidInputError: neither or both of ``n_shards`` and ``rows_per_shard``, sizes below 1,
            ``n_shards`` without ``n_rows``, more or fewer rows than ``n_rows``, or a
            ``directory`` holding files of its own.
    """
    if (n_shards is None) == (rows_per_shard is None):
        raise InvalidInputError("give either n_shards or rows_per_shard")
    ends = None
    if n_shards is not None:
        if n_shards < 1:
            raise InvalidInputError(f"n_shards must be at least 1, got {n_shards}")
        if n_rows is None:
            raise InvalidInputError("n_shards needs the number of rows; give rows_per_shard instead")
        ends = [int(end) for end in np.arange(1, n_shards + 1) * n_rows // n_shards]
    if rows_per_shard is not None and rows_per_shard < 1:
        raise InvalidInputError(f"rows_per_shard must be at least 1, got {rows_per_shard}")
    out = check_replaceable(directory, storage_options)
    if is_url(out):
        manifest_prefix = manifest_prefix or f"{out}/"
    with atomic_directory(out, storage_options) as temp:
        shards = ShardSetWriter(temp, ends, rows_per_shard, storage_options, **options)
        try:
            yield shards
            names = shards._finish(prefix)
        except BaseException:
            shards._abort()
            raise
        if manifest_prefix is not None:
            write_manifest(temp, manifest_prefix, names, storage_options)
    shards.paths = [join(out, name) for name in names]


def write_manifest(
    directory: str | os.PathLike[str], prefix: str, names: list[str], storage_options: StorageOptions = None
) -> Any:
    """Write the SageMaker ``ManifestFile`` (``manifest.json``) listing shards under ``prefix``, atomically.

    Args:
        directory: where ``manifest.json`` goes, beside the shards (a store's prefix too).
        prefix: the URI the names are relative to, such as ``s3://bucket/train/``.
        names: the shard file names, in order.
        storage_options: options of the store's fsspec file system, for a URL.

    Returns:
        The path (URL, on a store) of the manifest.
    """
    path = join(directory, MANIFEST_NAME)
    with atomic_output(path, storage_options) as out:
        out.write(json.dumps([{"prefix": prefix}, *names], indent=1).encode())
    return path


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


def directory_entries(
    directory: Any, storage_options: StorageOptions = None
) -> list[tuple[str, bool]] | None:
    """``(name, is a file)`` of each entry of ``directory``, a local one or a store's prefix (a URL).

    Returns ``None`` if there is no such directory (no object under the prefix).

    Raises:
        InvalidInputError: a local ``directory`` that is a file.
    """
    if is_url(directory):
        return _store_entries(str(directory).rstrip("/"), storage_options)
    return _local_entries(Path(local_path(directory)))


def check_replaceable(directory: str | os.PathLike[str], storage_options: StorageOptions = None) -> Any:
    """Refuse to replace anything but a missing directory or one that holds only a shard set.

    Returns:
        ``directory`` as shard writers name it: a ``Path``, or a URL without its final ``/``.

    Raises:
        InvalidInputError: ``directory`` is a file, or holds a file of its own (a shard set
            replaces a directory whole, so that file would be lost).
    """
    out: Any = str(directory).rstrip("/") if is_url(directory) else Path(local_path(directory))
    for name, is_file in directory_entries(out, storage_options) or []:
        ours = name.endswith(".recordio") or name == MANIFEST_NAME or is_temporary(name)
        if not (is_file and ours):
            raise InvalidInputError(
                f"{directory} holds {name!r}, which is not part of a shard set; the set replaces "
                "the whole directory: write it to a new or empty one"
            )
    return out


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
