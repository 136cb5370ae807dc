"""Arrow tables and Parquet datasets to RecordIO, streamed: the engine behind ``fmfast convert data.parquet``.

A conversion reads the source a batch at a time, so memory stays bounded by the batch size (and
pyarrow's read-ahead) whatever the row count. Each batch becomes rows by one function,
:func:`batch_rows`, which every route shares (this module, and the Spark writer), so the same
table gives the same records by either. A :class:`~fmfast.FeatureEncoder` that is not fitted
yet is fitted on a copy, in a first streamed pass over the source.
"""

from __future__ import annotations

import glob
import os
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

import numpy as np
import scipy.sparse as sp

from fmfast._progress import Progress, progress_callback
from fmfast._read_ahead import read_ahead
from fmfast._storage import filesystem, is_url, local_path
from fmfast.exceptions import InvalidInputError
from fmfast.recordio.codec import RecordIOWriter, encode_recordio
from fmfast.recordio.shards import shard_set_writer
from fmfast.recsys.features import FeatureEncoder

if TYPE_CHECKING:
    import pyarrow as pa
    import pyarrow.dataset as ds

#: What :func:`convert_table` reads: a path (file, directory, glob), a list of paths, or Arrow data.
TableSource = Union[str, "os.PathLike[str]", Sequence[Union[str, "os.PathLike[str]"]], Any]

#: Rows per batch that :func:`convert_table` reads and encodes at a time by default.
DEFAULT_BATCH_SIZE = 131_072


def encoder_path(target: str | os.PathLike[str]) -> Path:
    """Where ``fmfast convert`` saves the encoder it fitted for ``target``: ``<target>.encoder.json``."""
    return Path(f"{Path(target)}.encoder.json")


def is_table_path(path: str | os.PathLike[str]) -> bool:
    """Whether ``fmfast convert`` reads ``path`` as Parquet: a ``.parquet``, ``.pq``, directory or glob."""
    text = os.fspath(path)
    return Path(text).suffix.lower() in (".parquet", ".pq") or os.path.isdir(text) or glob.has_magic(text)


def batch_rows(
    encoder: FeatureEncoder, batch: Any, label: str | None
) -> tuple[sp.csr_array, np.ndarray | None]:
    """The design rows and labels of one Arrow batch: ``encoder.transform(batch)`` and its ``label`` column.

    The one step from a batch to records that :func:`convert_table` and the Spark writer both
    take, so that they write the same rows.

    Args:
        encoder: a fitted :class:`~fmfast.FeatureEncoder`.
        batch: a ``pyarrow.RecordBatch`` (or any Arrow data ``encoder.transform`` takes).
        label: the column of numeric labels, or ``None`` for unlabelled rows.

    Raises:
        InvalidInputError: values the encoder refuses, a missing label column, labels that are
            null, not numbers or not finite.
    """
    import pyarrow as pa

    if not isinstance(batch, (pa.RecordBatch, pa.Table)):
        batch = pa.record_batch(batch) if hasattr(batch, "__arrow_c_array__") else pa.table(batch)
    # One call into the encoder's Rust path: the CSR arrays and the labels it checked (no SciPy
    # matrix built and validated on the way).
    indptr, indices, data, labels = encoder.transform_arrays(batch, label)
    X = sp.csr_array((data, indices, indptr), shape=(len(indptr) - 1, encoder.n_features))
    return X, labels


def encode_batch(encoder: FeatureEncoder, batch: Any, label: str | None, *, n_threads: int = 0) -> bytes:
    """The RecordIO-protobuf records of one Arrow batch: :func:`batch_rows`, then :func:`encode_recordio`.

    Concatenated in order, the records of a table's batches are the bytes :func:`convert_table`
    writes for it. ``n_threads``: encoder threads; 0 (the default) for all cores.
    """
    X, labels = batch_rows(encoder, batch, label)
    return encode_recordio(X, labels, n_threads=n_threads)


@dataclass(frozen=True)
class TableConversion:
    """What :func:`convert_table` wrote: the rows, the feature dimension, the files and the encoder used."""

    n_rows: int
    n_features: int
    paths: list[Any]
    encoder: FeatureEncoder


@dataclass
class OpenedTable:
    """A table to read in batches: a dataset (re-readable), or a one-shot stream."""

    name: str
    dataset: ds.Dataset | None = None
    stream: pa.RecordBatchReader | None = None

    @property
    def n_rows(self) -> int | None:
        """The row count, from the Parquet metadata; ``None`` for a stream."""
        if self.dataset is None:
            return None
        with self._reading():
            return int(self.dataset.count_rows())

    def check_columns(self, columns: list[str]) -> None:
        """Refuse, before reading anything, a table that lacks one of ``columns``."""
        table = self.stream if self.dataset is None else self.dataset
        assert table is not None  # a source holds one of the two, and a stream is only taken by _scan
        schema = table.schema
        missing = [c for c in columns if c not in schema.names]
        if missing:
            raise InvalidInputError(
                f"{self.name}: no column {missing[0]!r}; the columns are {', '.join(schema.names)}"
            )

    def batches(self, columns: list[str], batch_size: int) -> Iterator[tuple[Any, Any]]:
        """``(batch, fragment)`` in the table's order; the fragment is ``None`` for a stream."""
        with self._reading():
            yield from self._scan(columns, batch_size)

    @contextmanager
    def _reading(self) -> Iterator[None]:
        """Arrow's errors as ours, naming the source.

        A file of a directory that is not Parquet, or whose columns differ from the first file's,
        is found only when it is read.
        """
        import pyarrow as pa

        try:
            yield
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as error:
            raise InvalidInputError(f"{self.name}: cannot read it ({error})") from None

    def _scan(self, columns: list[str], batch_size: int) -> Iterator[tuple[Any, Any]]:
        import pyarrow.dataset as ds

        if self.stream is not None:
            stream, self.stream = self.stream, None
            for batch in stream:
                yield batch, None
            return
        assert self.dataset is not None
        # Memory: no pre-buffering, which reads every row group of a file at once, no threads,
        # whose read-ahead outruns a slower consumer (the encoder) without bound (20M rows at 2
        # threads peaked at 1 GiB), and no batch read-ahead: with 2 batches its decoded row groups
        # still grew with the rows (pyarrow's pool: 75 MiB after 2M rows, 145 MiB after 14M),
        # and our own read-ahead thread already overlaps the scan with the writing. Decoding
        # Parquet is a small share of a conversion's time.
        scanner = self.dataset.scanner(
            columns=columns,
            batch_size=batch_size,
            batch_readahead=0,
            fragment_readahead=1,
            fragment_scan_options=ds.ParquetFragmentScanOptions(pre_buffer=False),
            use_threads=False,
        )
        for tagged in scanner.scan_batches():
            yield tagged.record_batch, tagged.fragment


def _files(paths: list[str], filesystem: Any) -> list[str]:
    """The files and directories ``paths`` name, globs expanded (in name order), on ``filesystem``.

    ``filesystem``: an fsspec file system, or ``None`` for local paths.
    """
    exists = os.path.exists if filesystem is None else filesystem.exists
    matching = glob.glob if filesystem is None else filesystem.glob
    files = []
    for path in paths:
        if exists(path):
            files.append(path)
        elif glob.has_magic(path):
            matches = sorted(matching(path))
            if not matches:
                raise FileNotFoundError(2, "No file matches the pattern", path)
            files += matches
        else:
            raise FileNotFoundError(2, "No such file or directory", path)
    return files


def _filesystem(paths: list[str], storage_options: dict[str, Any] | None) -> tuple[Any, list[str]]:
    """The fsspec file system of URLs (``s3://``, ``memory://``...) and their paths on it; ``None``: local."""
    if not any(is_url(path) for path in paths):
        return None, [os.fspath(local_path(path)) for path in paths]
    fs, _ = filesystem(paths[0], storage_options)
    return fs, [fs._strip_protocol(path) for path in paths]


def open_table(source: TableSource, storage_options: dict[str, Any] | None = None) -> OpenedTable:
    """The table that ``source`` names or holds, opened to read in batches.

    The one place that resolves a :data:`TableSource` (paths, globs, URLs, Arrow data):
    :func:`convert_table` and :func:`fmfast.spark.convert_table` both open their source here.
    """
    import pyarrow as pa
    import pyarrow.dataset as ds

    if isinstance(source, (str, os.PathLike)):
        source = [source]
    if isinstance(source, Sequence) and not isinstance(source, (bytes, bytearray)):
        paths = [os.fspath(p) for p in source]
        name = paths[0] if len(paths) == 1 else f"{paths[0]} and {len(paths) - 1} more"
        fs, paths = _filesystem(paths, storage_options)
        files = _files(paths, fs)
        try:
            dataset = ds.dataset(
                files if len(files) > 1 else files[0],
                filesystem=fs,
                format="parquet",
                partitioning="hive",
            )
        except pa.ArrowInvalid as error:
            raise InvalidInputError(f"{name}: not a Parquet dataset ({error})") from None
        return OpenedTable(name, dataset=dataset)
    if isinstance(source, ds.Dataset):
        return OpenedTable("the dataset", dataset=source)
    if isinstance(source, pa.RecordBatch):
        source = pa.Table.from_batches([source])
    if isinstance(source, pa.Table):
        return OpenedTable("the table", dataset=ds.dataset(source))
    if isinstance(source, pa.RecordBatchReader) or hasattr(source, "__arrow_c_stream__"):
        return OpenedTable("the stream", stream=pa.RecordBatchReader.from_stream(source))
    if hasattr(source, "__arrow_c_array__"):
        return OpenedTable("the batch", dataset=ds.dataset(pa.Table.from_batches([pa.record_batch(source)])))
    raise InvalidInputError(
        f"cannot read a table from {type(source).__name__}: give a Parquet path, a directory, a glob, "
        "or Arrow data (Table, RecordBatch, RecordBatchReader, an object with __arrow_c_stream__)"
    )


_ROW = re.compile(r"\brow (\d+)")


def _located(
    error: InvalidInputError, source: OpenedTable, fragment: Any, first_row: int
) -> InvalidInputError:
    """``error`` (about a row of a batch) retold with the file, row group and row in the file or table."""
    message = str(error)
    metadata = getattr(fragment, "metadata", None)
    ends = (
        None
        if metadata is None
        else np.cumsum([metadata.row_group(g).num_rows for g in range(metadata.num_row_groups)])
    )
    groups = getattr(fragment, "row_groups", None)
    if ends is not None and groups and groups[0].id > 0:
        # A fragment of some of the file's row groups (fmfast.spark.convert_table's tasks read such)
        # starts past the others.
        first_row += int(ends[groups[0].id - 1])
    # The encoder numbers rows from the batch's start; the reader wants them from the file's.
    match = _ROW.search(message)
    if match is None:
        row, message = first_row, f"rows from {first_row}: {message}"
    else:
        row = first_row + int(match.group(1))
        message = f"{message[: match.start()]}row {row}{message[match.end() :]}"
    path = getattr(fragment, "path", None)
    where = source.name if path is None else path
    if ends is not None:
        where += f", row group {int(np.searchsorted(ends, row, side='right'))}"
    return InvalidInputError(f"{where}: {message}")


def _fitted(encoder: FeatureEncoder | str | os.PathLike[str]) -> tuple[FeatureEncoder, bool]:
    """The encoder to convert with, and whether it needs fitting (then it is a copy of the one given)."""
    if isinstance(encoder, (str, os.PathLike)):
        return FeatureEncoder.load(encoder), False
    if not isinstance(encoder, FeatureEncoder):
        raise InvalidInputError(f"encoder must be a FeatureEncoder or a saved one's path, not {encoder!r}")
    if encoder.fitted:
        return encoder, False
    copy = FeatureEncoder.from_json(encoder.to_json())
    copy.n_threads = encoder.n_threads
    return copy, True


def _manifest_prefix(manifest: bool | str, target: str | os.PathLike[str]) -> str | None:
    """The prefix a manifest lists the shards under: the one given, or the target's own URI."""
    if manifest is False:
        return None
    if isinstance(manifest, str):
        return manifest
    text = os.fspath(target)
    uri = text if "://" in text else Path(text).resolve().as_uri()
    return uri.rstrip("/") + "/"


def convert_table(
    source: TableSource,
    target: str | os.PathLike[str],
    *,
    encoder: FeatureEncoder | str | os.PathLike[str],
    label: str | None,
    rows_per_shard: int | None = None,
    n_shards: int | None = None,
    manifest: bool | str = False,
    prefix: str = "part",
    batch_size: int = DEFAULT_BATCH_SIZE,
    n_threads: int = 0,
    progress: Progress = None,
    storage_options: dict[str, Any] | None = None,
) -> TableConversion:
    """Convert an Arrow table or a Parquet dataset to RecordIO, streamed, one batch at a time.

    Each row becomes a record of ``encoder.transform(row)`` (float32, sparse) labelled with its
    ``label`` column. The output appears whole or not at all: a failed or interrupted conversion
    leaves ``target`` as it was.

    Args:
        source: a Parquet file, a directory of them (hive partitions such as ``day=1/`` become
            columns), a glob (``data/*.parquet``), a list of files, any of them as a URL read
            through fsspec (``s3://bucket/lake/``), or Arrow data: a
            ``pyarrow.Table``, ``RecordBatch``, ``pyarrow.dataset.Dataset``, ``RecordBatchReader``
            or any object with ``__arrow_c_stream__`` (polars, DuckDB, pandas). A stream is read
            once, so it needs a fitted ``encoder``.
        target: the RecordIO file to write, or with ``rows_per_shard`` or ``n_shards`` the
            directory of the shard set (as :func:`fmfast.write_recordio_shards` writes it).
        encoder: a :class:`~fmfast.FeatureEncoder`, or the path of one saved by its ``save``. One
            not fitted is fitted (a copy: the one given is left as it was) in a first pass over
            the source; :attr:`TableConversion.encoder` returns it.
        label: the column of numeric labels, or ``None`` for unlabelled records.
        rows_per_shard: start a new shard every so many rows.
        n_shards: this many shards whose sizes differ by at most one (needs the row count: a
            dataset, not a stream).
        manifest: also write a SageMaker ``manifest.json`` listing the shards: ``True`` under the
            target's own URI, or a string prefix (``s3://bucket/train/``) where they will live.
        prefix: shard file name prefix (``part-00000-of-00004.recordio``).
        batch_size: rows read and encoded at a time; memory grows with it.
        n_threads: threads of the RecordIO writer; 0 (the default) for all cores. The encoder's
            own ``n_threads`` sizes the encoding; Parquet is decoded on the calling thread.
        progress: ``True`` for a progress bar, or a callable receiving the rows done, over both
            passes when the encoder is fitted here.
        storage_options: options of the fsspec file system of a ``source`` or ``target`` URL
            (``s3://``, ``gs://``, ``memory://``...): credentials, endpoint.

    Returns:
        A :class:`TableConversion`: rows written, feature dimension, files, encoder.

    Raises:
        InvalidInputError: a source that is not a table, a missing column, a value the encoder
            refuses or a null label (naming the file, row group and row), or bad shard options.
        FileNotFoundError: a path or glob that names no file.
    """
    if batch_size < 1:
        raise InvalidInputError(f"batch_size must be at least 1, got {batch_size}")
    sharded = rows_per_shard is not None or n_shards is not None
    if manifest is not False and not sharded:
        raise InvalidInputError("a manifest lists shards: give rows_per_shard or n_shards")
    table = open_table(source, storage_options)
    encoder, needs_fit = _fitted(encoder)
    if needs_fit and table.dataset is None:
        raise InvalidInputError(
            f"{table.name} can be read only once, and the encoder is not fitted: fit it first, or "
            "give a dataset or table"
        )
    fit_columns = [block.name for block in encoder.blocks]
    columns = list(dict.fromkeys(fit_columns + ([] if label is None else [label])))
    table.check_columns(columns)
    n_rows = table.n_rows
    passes = 2 if needs_fit else 1
    options: dict[str, Any] = {"n_threads": n_threads, "storage_options": storage_options}
    with progress_callback(progress, None if n_rows is None else passes * n_rows, "rows") as callback:
        done = 0

        def advanced(rows: int) -> None:
            nonlocal done
            done += rows
            if callback is not None:
                callback(done)

        if needs_fit:
            batches = (batch for batch, _ in table.batches(fit_columns, batch_size))
            encoder.fit(_counted(batches, advanced, fit_columns, table))
        if sharded:
            writer: Any = shard_set_writer(
                target,
                n_shards=n_shards,
                n_rows=n_rows if n_shards is not None else None,
                rows_per_shard=rows_per_shard,
                prefix=prefix,
                manifest_prefix=_manifest_prefix(manifest, target),
                **options,
            )
        else:
            writer = RecordIOWriter(target, **options)
        with writer as out:
            rows = _write(table, out, encoder, label, columns, batch_size, advanced)
    paths = out.paths if sharded else [target if is_url(target) else Path(local_path(target))]
    return TableConversion(rows, encoder.n_features, paths, encoder)


def _counted(
    batches: Iterator[Any], advanced: Callable[[int], None], columns: list[str], table: OpenedTable
) -> pa.RecordBatchReader:
    """A reader of ``batches`` that reports the rows it hands out."""
    import pyarrow as pa

    assert table.dataset is not None
    schema = pa.schema([table.dataset.schema.field(c) for c in columns])

    def counting() -> Iterator[pa.RecordBatch]:
        for batch in batches:
            advanced(batch.num_rows)
            yield batch

    return pa.RecordBatchReader.from_batches(schema, counting())


def _encoded(
    table: OpenedTable, encoder: FeatureEncoder, label: str | None, columns: list[str], batch_size: int
) -> Iterator[tuple[sp.csr_array, np.ndarray | None]]:
    """The rows and labels of ``table``'s batches, in order; errors name the file, row group and row."""
    rows = 0
    path, file_row = None, 0
    for batch, fragment in table.batches(columns, batch_size):
        if getattr(fragment, "path", None) != path:
            path, file_row = getattr(fragment, "path", None), 0
        first_row = file_row if path is not None else rows
        try:
            encoded = batch_rows(encoder, batch, label)
        except InvalidInputError as error:
            raise _located(error, table, fragment, first_row) from None
        yield encoded
        rows += batch.num_rows
        file_row += batch.num_rows


def _write(
    table: OpenedTable,
    out: Any,
    encoder: FeatureEncoder,
    label: str | None,
    columns: list[str],
    batch_size: int,
    advanced: Callable[[int], None],
) -> int:
    """Encode ``table`` batch by batch into ``out`` (a writer); returns the rows written.

    The next batch is read and encoded on a thread of its own while this one is written (both
    stages run in Rust without the interpreter lock): two batches in memory at most.
    """
    rows = 0
    with closing(read_ahead(_encoded(table, encoder, label, columns, batch_size))) as encoded:
        for X, labels in encoded:
            out.write(X, labels)
            rows += X.shape[0]
            advanced(X.shape[0])
    return rows
