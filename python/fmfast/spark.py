"""A Spark DataFrame to SageMaker RecordIO shards, converted on the cluster: one shard per partition.

::

    import fmfast
    import fmfast.spark

    df = spark.read.parquet("/lake/ratings/")
    enc = fmfast.FeatureEncoder().one_hot("user").one_hot("item").multi_hot("genres").numeric("age")
    fmfast.spark.write_recordio(df, "/shared/train", encoder=enc, label="rating")
    enc.save("encoder.json")  # fitted by the call: the same columns at inference

An encoder that is not fitted is fitted by Spark aggregations (:func:`fit_encoder`: the distinct
ids of each id block, the range of each numeric block), to exactly what
:meth:`~fmfast.FeatureEncoder.fit` learns from the whole table; a fitted one (say, from
:meth:`~fmfast.FeatureEncoder.load`) is used as it is. The encoder travels to the executors as its
JSON document in a broadcast variable. Each partition is encoded there by :func:`write_partition`
from the Arrow record batches of ``DataFrame.mapInArrow`` (no Python code runs per row) and written
as the shard ``part-{partition:05d}-of-{partitions:05d}.recordio``, atomically: a retried or
speculative task replaces the shard whole. The driver writes the SageMaker manifest
(``manifest.json``) last, once every partition has succeeded, so a directory with a manifest holds
a whole set; when a partition fails, the shards written are removed and no manifest is written.

Shard ``i`` holds partition ``i``'s rows in their order, so the shards read in name order (as
:func:`fmfast.read_recordio` reads a directory) are the DataFrame's rows in partition order. That
is the order of the table itself where Spark keeps it: a single Parquet file (its row groups in
order), or ``spark.createDataFrame`` of a pyarrow table (coalesced or not). There the shards decode to
exactly the rows that converting the table in one process gives, with the same encoder. Spark does
not order other partitionings (``repartition``, a shuffle, several files: Spark reads the largest
first); their shards hold the same rows, in Spark's order.

Pyspark is needed only for :func:`write_recordio` and :func:`fit_encoder` (``pip install
'fmfast[spark]'``); :func:`write_partition` takes any iterable of ``pyarrow.RecordBatch`` and so
serves other engines, which write the shards of their partitions with it and the manifest with
:func:`fmfast.recordio.shards.write_manifest`. From Dask, whose partitions are pandas frames::

    import pandas as pd
    import pyarrow as pa
    from fmfast.recordio.shards import shard_name, write_manifest
    from fmfast.spark import write_partition

    n = ddf.npartitions

    def write(frame, partition_info=None):
        table = pa.Table.from_pandas(frame, preserve_index=False)
        path = f"/shared/train/{shard_name(partition_info['number'], n)}"
        rows = write_partition(table.to_batches(), path, encoder=enc, label="rating")
        return pd.DataFrame({"rows": [rows]})

    ddf.map_partitions(write, meta={"rows": "int64"}).compute()
    write_manifest("/shared/train", "s3://bucket/train/", [shard_name(i, n) for i in range(n)])

From Ray, whose blocks are Arrow tables: ``Dataset.map_batches(fn, batch_format="pyarrow")`` hands
``fn`` batches without their position, which a shard name needs, so take the blocks in order::

    import ray

    refs = ds.to_arrow_refs()
    write = ray.remote(
        lambda table, path: write_partition(table.to_batches(), path, encoder=enc, label="rating")
    )
    names = [shard_name(i, len(refs)) for i in range(len(refs))]
    ray.get([write.remote(ref, f"/shared/train/{name}") for ref, name in zip(refs, names)])
    write_manifest("/shared/train", "s3://bucket/train/", names)

Shards go to a directory that every executor and the driver reach: local mode, or a shared file
system.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from fmfast._atomic import is_temporary
from fmfast._inputs import DTypeArg
from fmfast._storage import StorageOptions, is_url, join, list_files, local_path, remove
from fmfast.exceptions import InvalidInputError
from fmfast.recordio.codec import RecordIOWriter
from fmfast.recordio.shards import check_replaceable, shard_name, write_manifest
from fmfast.recordio.tables import batch_rows
from fmfast.recsys.features import FeatureEncoder

if TYPE_CHECKING:
    import pyarrow as pa
    from pyspark.sql import DataFrame

__all__ = ["fit_encoder", "write_partition", "write_recordio"]

#: The kinds of block whose vocabulary is a column's distinct ids (lists of ids for the multi kinds).
_ID_KINDS = ("one_hot", "multi_hot", "implicit")


def _pyspark() -> Any:
    """The ``pyspark`` module, or an ``ImportError`` that names the extra to install."""
    try:
        import pyspark
    except ImportError as exc:
        raise ImportError("fmfast.spark needs pyspark: pip install 'fmfast[spark]'") from exc
    return pyspark


def write_partition(
    batches: Iterable[pa.RecordBatch],
    path: str | os.PathLike[str],
    *,
    encoder: FeatureEncoder,
    label: str | None = None,
    dtype: DTypeArg = "float32",
    check_finite: bool = False,
    n_threads: int = 0,
    storage_options: StorageOptions = None,
) -> int:
    """Encode Arrow record batches with a fitted encoder and write them as one RecordIO file, atomically.

    The rows keep their order; the file appears whole when the last batch is written, and a failure
    (of the encoding, or of the iterator that produces the batches) leaves no file.

    Args:
        batches: ``pyarrow.RecordBatch`` es holding the encoder's columns (and ``label``).
        path: the file to write (replaced if it exists): a path or a store's URL.
        encoder: a fitted :class:`~fmfast.FeatureEncoder`.
        label: the column of labels (numbers, no nulls), or ``None`` for records without labels.
        dtype: tensor type of the features, as :func:`fmfast.write_recordio` takes it.
        check_finite: refuse NaN and infinite values and labels.
        n_threads: worker threads; 0 (the default) for all cores, capped by ``FMFAST_NUM_THREADS``.
        storage_options: options of the store's fsspec file system, for a URL.

    Returns:
        The number of rows written.

    Raises:
        InvalidInputError: a value the encoder cannot encode, a missing column or a null label,
            named by the file and the row in the file.
    """
    options = {"dtype": dtype, "check_finite": check_finite, "n_threads": n_threads}
    with RecordIOWriter(path, storage_options=storage_options, **options) as writer:
        for batch in _regrouped(batches, ENCODE_ROWS):
            try:
                writer.write(*batch_rows(encoder, batch, label))
            except InvalidInputError as exc:
                raise InvalidInputError(f"{path}: the batch from row {writer.rows_written}: {exc}") from None
    return writer.rows_written


#: The fewest rows :func:`write_partition` encodes at a time (but at the end): Spark hands over Arrow
#: batches of 10,000 rows, and every ``transform`` has a cost of its own (at 2M rows, batches of
#: 10,000 took half as much CPU again as batches of 65,536).
ENCODE_ROWS = 65_536


def _regrouped(batches: Iterable[pa.RecordBatch], rows: int) -> Iterator[pa.Table]:
    """The rows of ``batches`` in order, as tables of at least ``rows`` rows but the last."""
    import pyarrow as pa

    pending: list[pa.RecordBatch] = []
    count = 0
    for batch in batches:
        if batch.num_rows:
            pending.append(batch)
            count += batch.num_rows
        if count >= rows:
            yield pa.Table.from_batches(pending)
            pending, count = [], 0
    if pending:
        yield pa.Table.from_batches(pending)


def fit_encoder(df: DataFrame, encoder: FeatureEncoder) -> FeatureEncoder:
    """Fit ``encoder`` on the DataFrame ``df`` with Spark aggregations; returns the encoder.

    Learns what :meth:`FeatureEncoder.fit <fmfast.FeatureEncoder.fit>` learns from the whole
    table: each id block's sorted distinct ids (one Spark job per block, reading that column; only
    the distinct ids reach the driver) and each numeric block's finite range (one job for all).
    Nulls are skipped here, whatever the encoder's ``handle_null``: an encoder that refuses them
    does so when the partitions are encoded, naming the shard and the row.

    Raises:
        InvalidInputError: no blocks, a block's column missing or of a type it cannot take, or an
            infinite value in a numeric column.
    """
    functions = _pyspark().sql.functions
    _check_columns(df, encoder, None)
    ids = {}
    for b in encoder.blocks:
        if b.kind in _ID_KINDS:
            column = df[b.name] if b.kind == "one_hot" else functions.explode(df[b.name])
            distinct = df.select(column.alias("id")).where(functions.col("id").isNotNull()).distinct()
            ids[b.name] = _collect(distinct).column(0).to_numpy(zero_copy_only=False)
    numeric = [b.name for b in encoder.blocks if b.kind == "numeric"]
    ranges: dict[str, tuple[float, float] | None] = {}
    if numeric:
        aggregates = []
        for name in numeric:
            value = df[name].cast("double")
            finite = functions.when(~functions.isnan(value), value)  # fit drops NaN (and nulls) too
            aggregates += [functions.min(finite), functions.max(finite)]
        found = df.agg(*aggregates).collect()[0]
        for i, name in enumerate(numeric):
            low, high = found[2 * i], found[2 * i + 1]
            if low is not None and not np.isfinite([low, high]).all():
                raise InvalidInputError(f"block {name!r}: a value is not finite ({low} to {high})")
            ranges[name] = None if low is None else (float(low), float(high))
    return encoder._fit_aggregates(ids, ranges)


def _collect(df: DataFrame) -> pa.Table:
    """A (small) DataFrame on the driver as a pyarrow Table: ``toArrow`` from pyspark 4.0, pandas before."""
    import pyarrow as pa

    if hasattr(df, "toArrow"):
        table: pa.Table = df.toArrow()
        return table
    return pa.Table.from_pandas(df.toPandas(), preserve_index=False)


def _check_columns(df: DataFrame, encoder: FeatureEncoder, label: str | None) -> None:
    """Refuse, before any job runs, a missing column or one whose Spark type its block cannot take."""
    types = _pyspark().sql.types
    if not encoder.blocks:
        raise InvalidInputError("no blocks declared")
    fields = {field.name: field.dataType for field in df.schema.fields}
    wanted = [(b.name, b.kind) for b in encoder.blocks] + ([] if label is None else [(label, "label")])
    for name, kind in wanted:
        if name not in fields:
            raise InvalidInputError(f"column {name!r} ({kind}) missing from the DataFrame")
        numbers = kind in ("numeric", "bucketed", "label")
        lists = kind in ("multi_hot", "implicit")
        if (numbers and not isinstance(fields[name], types.NumericType)) or (
            lists != isinstance(fields[name], types.ArrayType)
        ):
            raise InvalidInputError(f"column {name!r} ({kind}) has Spark type {fields[name].simpleString()}")


def write_recordio(
    df: DataFrame,
    path: str | os.PathLike[str],
    *,
    encoder: FeatureEncoder,
    label: str | None = None,
    prefix: str = "part",
    manifest_prefix: str | None = None,
    overwrite: bool = False,
    dtype: DTypeArg = "float32",
    check_finite: bool = False,
    storage_options: StorageOptions = None,
) -> list[Any]:
    """Convert the Spark DataFrame ``df`` to RecordIO shards, one per partition, on the executors.

    Args:
        df: the rows: the encoder's columns and ``label``.
        path: the directory of the shards, reached by the driver and every executor (created if
            missing), or a store's prefix (``s3://bucket/train/``) that they all can write to.
        encoder: a :class:`~fmfast.FeatureEncoder`; if it is not fitted, it is fitted here, in place,
            by :func:`fit_encoder` (save it for inference).
        label: the column of labels (numbers, no nulls), or ``None`` for records without labels.
        prefix: shard file name prefix: ``{prefix}-00000-of-00008.recordio`` and so on.
        manifest_prefix: the URI the manifest lists the shards under (say ``s3://bucket/train/``,
            where the directory will be uploaded); by default the directory itself.
        overwrite: replace a shard set already in ``path`` (its files are removed first). Without
            it, a ``path`` holding files is refused.
        dtype: tensor type of the features, as :func:`fmfast.write_recordio` takes it.
        check_finite: refuse NaN and infinite values and labels.
        storage_options: options of the store's fsspec file system, for a URL (shipped to the
            executors with the task).

    Returns:
        The paths (URLs, on a store) of the shards, in partition order. ``manifest.json`` beside
        them lists them.

    Raises:
        InvalidInputError: a missing column or one of a type its block cannot take, a ``path``
            holding files, or a partition whose rows cannot be encoded (the message names the
            shard and the row; no shard and no manifest is left).
    """
    pyspark = _pyspark()
    _check_columns(df, encoder, label)
    directory = _check_directory(path, overwrite, storage_options)
    if not encoder.fitted:
        fit_encoder(df, encoder)
    _clear_directory(directory, storage_options)
    n_shards = df.rdd.getNumPartitions()
    names = [shard_name(index, n_shards, prefix) for index in range(n_shards)]
    state = df.sparkSession.sparkContext.broadcast(encoder.to_json())

    def convert(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        """The task: this partition's batches to its shard; yields (partition, rows)."""
        import pyarrow as pa

        task = pyspark.TaskContext.get()
        index = task.partitionId()
        fitted = FeatureEncoder.from_json(state.value)
        fitted.n_threads = task.cpus()  # the cores Spark gave the task (spark.task.cpus), not all
        rows = write_partition(
            batches,
            join(directory, shard_name(index, n_shards, prefix)),
            encoder=fitted,
            label=label,
            dtype=dtype,
            check_finite=check_finite,
            n_threads=task.cpus(),
            storage_options=storage_options,
        )
        yield pa.record_batch(
            [pa.array([index], pa.int32()), pa.array([rows], pa.int64())], ["shard", "rows"]
        )

    try:
        done = df.mapInArrow(convert, "shard int, rows long").collect()
        indices = sorted(row.shard for row in done)
        if indices != list(range(n_shards)):
            raise InvalidInputError(
                f"the DataFrame ran as {len(indices)} partitions, not the {n_shards} it was planned with "
                "(adaptive execution?): repartition it to a fixed count before writing"
            )
    except BaseException as exc:
        _remove(directory, names, storage_options)
        error = _as_fmfast_error(exc)
        if error is exc:
            raise
        raise error from exc
    finally:
        state.destroy()
    default_prefix = f"{directory}/" if is_url(directory) else f"{directory.resolve()}/"
    write_manifest(directory, manifest_prefix or default_prefix, names, storage_options)
    return [join(directory, name) for name in names]


def _names(directory: Any, storage_options: StorageOptions) -> list[str]:
    """The names of the files in ``directory`` (a ``Path`` or a URL); none if it does not exist."""
    if is_url(directory):
        try:
            return list_files(directory, storage_options)
        except FileNotFoundError:
            return []
    return [entry.name for entry in directory.iterdir()] if directory.is_dir() else []


def _check_directory(path: str | os.PathLike[str], overwrite: bool, storage_options: StorageOptions) -> Any:
    """Refuse a directory that holds files, unless ``overwrite`` and they are a shard set.

    Returns:
        The directory as shard writers name it (a ``Path``, or a URL without its final ``/``).
    """
    directory = check_replaceable(path, storage_options) if overwrite else None
    if directory is None:
        directory = str(path).rstrip("/") if is_url(path) else Path(local_path(path))
        if _names(directory, storage_options):
            raise InvalidInputError(
                f"{directory} is not empty: write to a new directory, or pass overwrite=True to replace "
                "the shard set it holds"
            )
    return directory


def _clear_directory(directory: Any, storage_options: StorageOptions) -> None:
    """Create ``directory``, or remove the shard set that :func:`_check_directory` let through.

    Temporaries of other writers (or stale ones) are not part of the set and stay.
    """
    if not is_url(directory):
        directory.mkdir(parents=True, exist_ok=True)
    names = [name for name in _names(directory, storage_options) if not is_temporary(name)]
    # The manifest first, so that none ever lists a shard that is gone.
    _remove(directory, sorted(names, key=lambda name: not name.endswith(".json")), storage_options)


def _remove(directory: Any, names: list[str], storage_options: StorageOptions) -> None:
    """Delete the files ``names`` of ``directory`` that exist."""
    if is_url(directory):
        present = set(_names(directory, storage_options))
        remove([join(directory, name) for name in names if name in present], storage_options)
        return
    for name in names:
        (directory / name).unlink(missing_ok=True)


def _as_fmfast_error(exc: BaseException) -> BaseException:
    """An fmfast error raised in a task, as its type on the driver; other errors as they are.

    Spark hands the driver a task's Python error as a ``PythonException`` whose message holds the
    task's traceback, ending with the error's class and message.
    """
    from pyspark.errors import PythonException

    if not isinstance(exc, PythonException):
        return exc
    marker = "InvalidInputError: "
    lines = [line for line in str(exc).splitlines() if marker in line]
    if not lines:
        return exc
    return InvalidInputError(lines[-1].split(marker, 1)[1])
