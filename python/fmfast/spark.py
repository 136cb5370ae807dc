"""Spark DataFrames and Parquet datasets to SageMaker RecordIO shards, converted on the cluster.

Two routes, each writing one shard per task and a manifest:

- :func:`convert_table`, for data already in Parquet (a data lake's files): each executor task
  reads its run of row groups with pyarrow and converts it as :func:`fmfast.convert_table` does,
  into one shard; the shards are that function's bytes. No row passes through Spark's JVM: the
  faster route (on 2 cores, 1.05-1.3x the single-process time at 20M rows, against 2.2x for
  the DataFrame route, whose scan and Arrow hand-over to the Python workers cost more than the
  whole single-process conversion).
- :func:`write_recordio`, for a DataFrame (the output of a join, a filter, a Spark job): each
  partition's Arrow batches (``mapInArrow``) become one shard.

::

    import fmfast
    import fmfast.spark

    enc = fmfast.FeatureEncoder().one_hot("user").one_hot("item").multi_hot("genres").numeric("age")
    fmfast.spark.convert_table(spark, "/lake/ratings/", "/shared/train", encoder=enc, label="rating")
    enc.save("encoder.json")  # fitted by the call: the same columns at inference

    df = spark.table("ratings").where("day > 300")
    fmfast.spark.write_recordio(df, "/shared/recent", encoder=enc, label="rating")

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

The DataFrame route's speed is partly the user's to set: ``spark.sql.execution.arrow.maxRecordsPerBatch``
(default 10,000 rows; :func:`write_partition` regroups small batches, so raising it saves Spark's
per-batch cost only), and a partition count that is a multiple of the cores
(``spark.sql.files.maxPartitionBytes``): a last partition alone on one core leaves the others idle.
Both routes decode the encoder once per Python worker process, and so rely on Spark reusing
them (``spark.python.worker.reuse``, on by default).

Pyspark is needed only for :func:`write_recordio`, :func:`convert_table` and :func:`fit_encoder`
(``pip install 'fmfast[spark]'``); :func:`write_partition` takes any iterable of
``pyarrow.RecordBatch`` and so serves other engines, which write the shards of their partitions
with it and the manifest with :func:`fmfast.recordio.shards.write_manifest`. From Dask, whose
partitions are pandas frames::

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

Data already in Parquet needs neither engine's reader, as with :func:`convert_table`: each task
runs the single-process :func:`fmfast.convert_table` on its own consecutive run of the files (as
``dask.delayed(write)(i)`` or ``ray.remote(write).remote(i)``), then the manifest as above::

    def write(i):
        files_i = files[i * len(files) // n : (i + 1) * len(files) // n]
        path = f"/shared/train/{shard_name(i, n)}"
        return fmfast.convert_table(files_i, path, encoder=enc, label="rating").n_rows

Shards go to a directory that every executor and the driver reach: local mode, or a shared file
system.
"""

from __future__ import annotations

import os
import uuid
import warnings
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from fmfast._atomic import is_temporary
from fmfast._inputs import DTypeArg
from fmfast._storage import StorageOptions, is_url, join, local_path, remove
from fmfast.exceptions import InvalidInputError
from fmfast.recordio.codec import RecordIOWriter
from fmfast.recordio.shards import check_replaceable, directory_entries, shard_name, write_manifest
from fmfast.recordio.tables import DEFAULT_BATCH_SIZE, TableSource, batch_rows
from fmfast.recsys.features import FeatureEncoder

if TYPE_CHECKING:
    import pyarrow as pa
    import pyarrow.dataset as ds
    from pyspark import Broadcast
    from pyspark.sql import DataFrame, SparkSession

__all__ = ["convert_table", "fit_encoder", "write_partition", "write_recordio"]

#: The kinds of block whose vocabulary is a column's distinct ids (lists of ids for the multi kinds).
_ID_KINDS = ("one_hot", "multi_hot", "implicit")


def _pyspark() -> Any:
    """The ``pyspark`` module, or an ``ImportError`` that names the extra to install."""
    try:
        import pyspark
    except ImportError as exc:
        raise ImportError("fmfast.spark needs pyspark: pip install 'fmfast[spark]'") from exc
    return pyspark


@contextmanager
def _quiet_pandas_warning() -> Iterator[None]:
    """Hide pyspark's warning, on every Arrow call, that it does not yet fully support pandas 3.

    fmfast's calls hand Spark Arrow data, never pandas frames, so the warning is not about them.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "PySpark does not yet fully support pandas", FutureWarning)
        yield


#: This Python worker process's encoder of the job that ran here last: ``(job key, encoder)``.
_worker_encoder: tuple[str, FeatureEncoder] | None = None


def _task_encoder(key: str, state: Broadcast[str], n_threads: int) -> FeatureEncoder:
    """The job's fitted encoder, decoded once per Python worker process and reused by its later tasks.

    Spark runs task after task in the same worker process (``spark.python.worker.reuse``, on by
    default); decoding the encoder's JSON and building its Rust lookup of the ids (0.45 s for 1M
    user ids) in every task would repeat that for every partition. ``key`` names the job: the
    next job's encoder replaces this one, so a worker holds one at most.
    """
    global _worker_encoder
    if _worker_encoder is None or _worker_encoder[0] != key:
        _worker_encoder = None  # the last job's is freed before the next is decoded
        _worker_encoder = (key, FeatureEncoder.from_json(state.value))
    encoder = _worker_encoder[1]
    encoder.n_threads = n_threads
    return encoder


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
    with RecordIOWriter(
        path, dtype=dtype, check_finite=check_finite, n_threads=n_threads, storage_options=storage_options
    ) as writer:
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

    with _quiet_pandas_warning():
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
    n_shards = df.rdd.getNumPartitions()

    def run(key: str, state: Broadcast[str]) -> list[tuple[int, int]]:
        def convert(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
            """The task: this partition's batches to its shard; yields (partition, rows)."""
            import pyarrow as pa

            task = pyspark.TaskContext.get()
            index = task.partitionId()
            rows = write_partition(
                batches,
                join(directory, shard_name(index, n_shards, prefix)),
                encoder=_task_encoder(key, state, task.cpus()),  # the cores Spark gave the task, not all
                label=label,
                dtype=dtype,
                check_finite=check_finite,
                n_threads=task.cpus(),
                storage_options=storage_options,
            )
            yield pa.record_batch(
                [pa.array([index], pa.int32()), pa.array([rows], pa.int64())], ["shard", "rows"]
            )

        done = df.mapInArrow(convert, "shard int, rows long").collect()
        return [(row.shard, row.rows) for row in done]

    return _write_shards(
        df.sparkSession, run, encoder, directory, n_shards, prefix, manifest_prefix, storage_options
    )


def convert_table(
    spark: SparkSession,
    source: TableSource,
    target: str | os.PathLike[str],
    *,
    encoder: FeatureEncoder | str | os.PathLike[str],
    label: str | None,
    n_shards: int | None = None,
    prefix: str = "part",
    manifest_prefix: str | None = None,
    overwrite: bool = False,
    batch_size: int = DEFAULT_BATCH_SIZE,
    storage_options: StorageOptions = None,
) -> list[Any]:
    """Convert a Parquet dataset to RecordIO shards on the executors, which read the files themselves.

    The driver reads the Parquet footers and cuts the dataset's row groups, in order, into
    ``n_shards`` runs of about equal rows; each executor task reads its run with pyarrow and
    converts it with :func:`fmfast.convert_table` (the single-process conversion, batch by batch,
    Rust throughout) into its shard. No row passes through Spark's JVM: this is the route for
    data already in Parquet, where :func:`write_recordio` (a DataFrame) pays for Spark's scan and
    its Arrow hand-over to the Python workers. The shards, read in name order, are exactly the
    rows ``fmfast.convert_table(source, ...)`` writes in one process, with the same encoder.

    Args:
        spark: the session whose executors do the work.
        source: a Parquet file, a directory of them (hive partitions such as ``day=1/`` become
            columns), a glob or a list of files, as :func:`fmfast.convert_table` takes them; a
            store's URL is read through fsspec with ``storage_options`` on every executor.
        target: the directory of the shards, or a store's prefix, as :func:`write_recordio`
            takes it.
        encoder: a :class:`~fmfast.FeatureEncoder`, or the path of a saved one. One that is not
            fitted is fitted here, in place, by :func:`fit_encoder` over
            ``spark.read.parquet(source)`` (a URL must then be one Spark reads too).
        label: the column of numeric labels, or ``None`` for unlabelled records.
        n_shards: the most shards (one task each); by default Spark's default parallelism (its
            cores). Give more, so that a retried task redoes less, or to balance tasks of
            different speeds. A run never splits a row group: fewer row groups, fewer shards.
        prefix: shard file name prefix: ``{prefix}-00000-of-00008.recordio`` and so on.
        manifest_prefix: the URI the manifest lists the shards under; by default the directory.
        overwrite: replace a shard set already in ``target``; without it, files there are refused.
        batch_size: rows each task reads and encodes at a time.
        storage_options: options of the fsspec file system of ``source`` and ``target`` URLs.

    Returns:
        The paths (URLs, on a store) of the shards, in order. ``manifest.json`` beside them lists them.

    Raises:
        InvalidInputError: a source that is not Parquet files (Arrow data in memory: use
            :func:`fmfast.convert_table`), a missing column, a ``target`` holding files, or rows
            that cannot be encoded (named by file, row group and row; no shard and no manifest is left).
        FileNotFoundError: a path or glob that names no file.
    """
    import pyarrow.dataset as ds

    from fmfast.recordio import tables

    pyspark = _pyspark()
    table = tables.open_table(source, storage_options)
    if not isinstance(table.dataset, ds.FileSystemDataset):
        raise InvalidInputError(
            f"{table.name} is not Parquet files, which the executors could read: convert Arrow data with "
            "fmfast.convert_table, or a DataFrame with fmfast.spark.write_recordio"
        )
    if n_shards is not None and n_shards < 1:
        raise InvalidInputError(f"n_shards must be at least 1, got {n_shards}")
    if isinstance(encoder, (str, os.PathLike)):
        encoder = FeatureEncoder.load(encoder)
    table.check_columns(
        list(dict.fromkeys([b.name for b in encoder.blocks] + ([] if label is None else [label])))
    )
    directory = _check_directory(target, overwrite, storage_options)
    if not encoder.fitted:
        paths = (
            [os.fspath(source)] if isinstance(source, (str, os.PathLike)) else [os.fspath(p) for p in source]
        )
        fit_encoder(spark.read.parquet(*paths), encoder)
    runs = _row_group_runs(table.dataset, n_shards or spark.sparkContext.defaultParallelism)
    layout = (table.dataset.schema, table.dataset.format, table.dataset.filesystem)

    def run(key: str, state: Broadcast[str]) -> list[tuple[int, int]]:
        def convert(shard: tuple[int, _Run]) -> tuple[int, int]:
            """The task: its run of row groups to its shard, as one process converts a table."""
            index, part = shard
            cpus = pyspark.TaskContext.get().cpus()
            done = tables.convert_table(
                _run_dataset(layout, part),
                join(directory, shard_name(index, len(runs), prefix)),
                encoder=_task_encoder(key, state, cpus),
                label=label,
                batch_size=batch_size,
                n_threads=cpus,
                storage_options=storage_options,
            )
            return index, done.n_rows

        return spark.sparkContext.parallelize(list(enumerate(runs)), len(runs)).map(convert).collect()

    return _write_shards(spark, run, encoder, directory, len(runs), prefix, manifest_prefix, storage_options)


#: A task's share of a dataset: ``(file path, its partition expression, row group numbers)`` in order.
_Run = list[tuple[str, Any, list[int]]]


def _row_group_runs(dataset: ds.FileSystemDataset, n_runs: int) -> list[_Run]:
    """The dataset's row groups, in its order, cut into at most ``n_runs`` runs of about equal rows."""
    groups = [
        (fragment, group.id, group.num_rows)
        for fragment in dataset.get_fragments()
        for group in fragment.row_groups
    ]
    total = sum(rows for _, _, rows in groups)
    runs: list[_Run] = [[] for _ in range(n_runs)]
    start = 0
    for fragment, group, rows in groups:
        # By the row group's middle row, so that a large group goes where most of it belongs.
        run = runs[min(n_runs - 1, (2 * start + rows) * n_runs // max(1, 2 * total))]
        if run and run[-1][0] == fragment.path:
            run[-1][2].append(group)
        else:
            run.append((fragment.path, fragment.partition_expression, [group]))
        start += rows
    return [run for run in runs if run] or [[]]


def _run_dataset(layout: tuple[pa.Schema, ds.FileFormat, Any], run: _Run) -> ds.FileSystemDataset:
    """The rows of ``run`` as a dataset of their own, hive partition values kept.

    ``layout``: the whole dataset's schema, format and file system (shipped to the tasks instead
    of the dataset, whose fragments are as many as its files).

    Built from paths and row group numbers: pyarrow pickles a fragment of some row groups as a
    set of them, which loses their order (pyarrow 26), and ``subset`` keeps it.
    """
    import pyarrow.dataset as ds

    schema, file_format, filesystem = layout
    fragments = [
        file_format.make_fragment(path, filesystem, expression).subset(row_group_ids=ids)
        for path, expression, ids in run
    ]
    return ds.FileSystemDataset(fragments, schema, file_format, filesystem)


def _write_shards(
    spark: SparkSession,
    run: Callable[[str, Broadcast[str]], list[tuple[int, int]]],
    encoder: FeatureEncoder,
    directory: Any,
    n_shards: int,
    prefix: str,
    manifest_prefix: str | None,
    storage_options: StorageOptions,
) -> list[Any]:
    """Run the Spark job that writes shards ``0 .. n_shards - 1`` into ``directory``, then the manifest.

    ``run(key, state)`` runs the job with the fitted encoder's JSON broadcast as ``state`` (decoded
    once per worker process by :func:`_task_encoder` under ``key``) and returns ``(shard, rows)``
    of each task. The shard set already in ``directory`` is removed first; when the job fails,
    the shards it wrote are removed and no manifest is written.
    """
    _clear_directory(directory, storage_options)
    names = [shard_name(index, n_shards, prefix) for index in range(n_shards)]
    state = spark.sparkContext.broadcast(encoder.to_json())
    try:
        with _quiet_pandas_warning():
            done = run(uuid.uuid4().hex, state)
        indices = sorted(shard for shard, _ in done)
        if indices != list(range(n_shards)):
            raise InvalidInputError(
                f"the job ran as {len(indices)} tasks, not the {n_shards} partitions it was planned with "
                "(adaptive execution?): repartition the DataFrame to a fixed count before writing"
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
    """The names of the entries of ``directory`` (a ``Path`` or a URL); none if it does not exist."""
    return [name for name, _ in directory_entries(directory, storage_options) or []]


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
