"""fmfast.spark on a real Spark in local mode: the shards decode to the single-process rows, the
distributed vocabulary is FeatureEncoder.fit's, the manifest comes last, and failures leave nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

import fmfast
import fmfast.spark
import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fmfast.recordio.shards import MANIFEST_NAME, shard_name
from pyspark import TaskContext
from pyspark.sql import SparkSession

# pyspark's own warning, on every Arrow call, when the installed pandas is 3.x.
pytestmark = pytest.mark.filterwarnings("ignore:PySpark does not yet fully support pandas:FutureWarning")


@pytest.fixture(scope="session")
def spark() -> Iterator[SparkSession]:
    with pytest.MonkeyPatch.context() as patch:
        # The executors' Python is this one (with fmfast and pyarrow), not the first `python3` on PATH.
        patch.setenv("PYSPARK_PYTHON", sys.executable)
        session = (
            SparkSession.builder.master("local[2,2]")  # 2 threads; a task may fail once and be retried
            .appName("fmfast-tests")
            .config("spark.ui.enabled", "false")
            .config("spark.driver.host", "127.0.0.1")
            .config("spark.driver.bindAddress", "127.0.0.1")
            .config("spark.sql.execution.arrow.pyspark.enabled", "true")
            # Several Arrow batches a partition, so that shards are written batch by batch.
            .config("spark.sql.execution.arrow.maxRecordsPerBatch", "128")
            .config("spark.sql.shuffle.partitions", "4")
            .getOrCreate()
        )
        session.sparkContext.setLogLevel("ERROR")
        yield session
        session.stop()


def ratings(n: int, seed: int = 0) -> pa.Table:
    """MovieLens-shaped rows: string user id, integer item id, genre lists, numbers with gaps."""
    rng = np.random.default_rng(seed)
    genres = np.array(["action", "comedy", "drama", "horror", "sci-fi", "war"])
    price = rng.random(n) * 20
    price[rng.random(n) < 0.1] = np.nan
    return pa.table(
        {
            "user": pa.array([f"u{k}" for k in rng.integers(0, 60, n)]),
            "item": pa.array(rng.integers(0, 40, n) * 7 - 100, pa.int64()),
            "genres": pa.array(
                [list(rng.choice(genres, rng.integers(0, 4), replace=False)) for _ in range(n)]
            ),
            "age": pa.array(rng.integers(16, 90, n), pa.int32()),
            "price": pa.array(price),
            "rating": pa.array(rng.integers(1, 6, n).astype(np.float32)),
            "row": pa.array(np.arange(n, dtype=np.float64)),
        }
    )


def encoder(handle_null: str = "error") -> fmfast.FeatureEncoder:
    return (
        fmfast.FeatureEncoder(handle_null=handle_null)
        .one_hot("user")
        .one_hot("item")
        .multi_hot("genres", normalize=True)
        .numeric("age")
        .bucketed("price", [5.0, 10.0])
    )


def single_process(table: pa.Table, fitted: fmfast.FeatureEncoder, label: str, path: Path) -> bytes:
    """What converting the table in one process writes."""
    fmfast.convert_table(table, path, encoder=fitted, label=label)
    return path.read_bytes()


def test_the_distributed_vocabulary_is_what_fit_learns(spark: SparkSession) -> None:
    table = ratings(500)
    # Gaps Spark must skip as fit does: a null id, an empty and a null genre list, a NaN price
    # (nulls the Arrow path refuses unless told to ignore them; fit_encoder skips them either way,
    # and a refusing encoder refuses them when the partitions are encoded).
    table = table.set_column(0, "user", pa.array([None, *table.column("user").to_pylist()[1:]]))
    table = table.set_column(2, "genres", pa.array([None, [], *table.column("genres").to_pylist()[2:]]))
    fitted = fmfast.spark.fit_encoder(spark.createDataFrame(table), encoder("ignore"))
    local = encoder("ignore").fit(table)
    as_dict = encoder("ignore").fit({name: table.column(name).to_pylist() for name in table.column_names})
    assert fitted.to_json() == local.to_json() == as_dict.to_json()
    assert fitted.feature_names()[:2] == ["user=u0", "user=u1"]
    assert fitted.blocks[1].size == len(set(table.column("item").to_pylist()))


def test_shards_in_partition_order_are_the_single_process_bytes(spark: SparkSession, tmp_path: Path) -> None:
    table = ratings(2000, seed=1)
    pq.write_table(table, tmp_path / "ratings.parquet", row_group_size=250)
    spark.conf.set(
        "spark.sql.files.maxPartitionBytes", str((tmp_path / "ratings.parquet").stat().st_size // 5)
    )
    try:
        df = spark.read.parquet(str(tmp_path / "ratings.parquet"))
        n = df.rdd.getNumPartitions()
        enc = encoder()  # not fitted: write_recordio fits it with Spark
        shards = fmfast.spark.write_recordio(
            df, tmp_path / "train", encoder=enc, label="rating", manifest_prefix="s3://bucket/train/"
        )
    finally:
        spark.conf.unset("spark.sql.files.maxPartitionBytes")
    assert n >= 4
    assert shards == [tmp_path / "train" / shard_name(i, n) for i in range(n)]
    assert enc.to_json() == encoder().fit(table).to_json()
    # A single Parquet file is read in row-group order: the shards, concatenated, are the one file.
    expected = single_process(table, encoder().fit(table), "rating", tmp_path / "single.recordio")
    assert b"".join(path.read_bytes() for path in shards) == expected
    X, y = fmfast.read_recordio(tmp_path / "train")
    assert X.shape == (2000, enc.n_features)
    np.testing.assert_array_equal(y, table.column("rating").to_numpy())
    manifest = json.loads((tmp_path / "train" / MANIFEST_NAME).read_text())
    assert manifest == [{"prefix": "s3://bucket/train/"}, *(path.name for path in shards)]
    assert sorted(p.name for p in (tmp_path / "train").iterdir()) == sorted([MANIFEST_NAME, *manifest[1:]])


def test_unordered_partitions_hold_the_same_rows(spark: SparkSession, tmp_path: Path) -> None:
    table = ratings(900, seed=2)
    enc = encoder().fit(table)
    df = spark.createDataFrame(table).repartition(3)
    fmfast.spark.write_recordio(df, tmp_path / "train", encoder=enc, label="row")
    X, rows = fmfast.read_recordio(tmp_path / "train")
    order = np.argsort(rows)
    np.testing.assert_array_equal(rows[order], np.arange(900))
    expected = enc.transform(table)
    assert (X[order] != expected).nnz == 0
    # Written again over the set: refused, unless asked.
    with pytest.raises(fmfast.InvalidInputError, match=r"is not empty: .* overwrite=True"):
        fmfast.spark.write_recordio(df, tmp_path / "train", encoder=enc, label="row")
    fmfast.spark.write_recordio(df.coalesce(1), tmp_path / "train", encoder=enc, label="row", overwrite=True)
    assert sorted(p.name for p in (tmp_path / "train").iterdir()) == [MANIFEST_NAME, shard_name(0, 1)]


def test_a_failing_partition_leaves_no_shard_and_no_manifest(spark: SparkSession, tmp_path: Path) -> None:
    table = ratings(1000, seed=3)
    enc = encoder().fit(table)
    users = table.column("user").to_pylist()
    users[700] = "stranger"  # row 200 of the second of two partitions, of 500 rows: one batch to encode
    df = spark.createDataFrame(table.set_column(0, "user", pa.array(users))).coalesce(2)
    message = r"part-00001-of-00002\.recordio: the batch from row 0: block 'user', row 200: unknown value 'stranger'"
    with pytest.raises(fmfast.InvalidInputError, match=message):
        fmfast.spark.write_recordio(df, tmp_path / "train", encoder=enc, label="rating")
    assert list((tmp_path / "train").iterdir()) == []


def test_a_retried_task_leaves_one_whole_shard(spark: SparkSession, tmp_path: Path) -> None:
    table = ratings(1000, seed=4)
    enc = encoder().fit(table)

    def flaky(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        # The first attempt at partition 1 dies after its first batch, with a partial shard open.
        task = TaskContext.get()
        for i, batch in enumerate(batches):
            if i == 1 and task.partitionId() == 1 and task.attemptNumber() == 0:
                (tmp_path / "failed-once").touch()
                raise RuntimeError("executor lost")
            yield batch

    df = spark.createDataFrame(table).coalesce(2)
    df = df.mapInArrow(flaky, df.schema)
    shards = fmfast.spark.write_recordio(df, tmp_path / "train", encoder=enc, label="rating")
    assert (tmp_path / "failed-once").exists()
    expected = single_process(table, enc, "rating", tmp_path / "single.recordio")
    assert b"".join(path.read_bytes() for path in shards) == expected
    assert sorted(p.name for p in (tmp_path / "train").iterdir()) == sorted(
        [MANIFEST_NAME, *(p.name for p in shards)]
    )


def test_bad_columns_are_refused_before_any_job(spark: SparkSession, tmp_path: Path) -> None:
    df = spark.createDataFrame(ratings(10))
    with pytest.raises(
        fmfast.InvalidInputError, match="column 'rating2' \\(label\\) missing from the DataFrame"
    ):
        fmfast.spark.write_recordio(df, tmp_path / "a", encoder=encoder(), label="rating2")
    with pytest.raises(fmfast.InvalidInputError, match="column 'user' \\(numeric\\) has Spark type string"):
        fmfast.spark.write_recordio(df, tmp_path / "b", encoder=fmfast.FeatureEncoder().numeric("user"))
    with pytest.raises(fmfast.InvalidInputError, match="column 'user' \\(multi_hot\\) has Spark type string"):
        fmfast.spark.fit_encoder(df, fmfast.FeatureEncoder().multi_hot("user"))
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_pyspark_is_imported_only_when_spark_is_used() -> None:
    code = "import sys, fmfast.spark; print('pyspark' in sys.modules)"
    shown = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert shown.stdout.strip() == "False"


def test_without_pyspark_the_error_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pyspark", None)
    with pytest.raises(ImportError, match=r"pip install 'fmfast\[spark\]'"):
        fmfast.spark.fit_encoder(None, encoder())  # type: ignore[arg-type]


def test_a_function_that_names_fmfast_is_shipped_to_the_executors(spark: SparkSession) -> None:
    # Spark pickles a user's function by value with the submodules of its global modules that it
    # names: `fmfast` and `.transform` ship fmfast.transform, a deprecated path of fmfast.
    table = ratings(50)
    state = encoder().fit(table).to_json()

    def count_entries(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        enc = fmfast.FeatureEncoder.from_json(state)
        for batch in batches:
            yield pa.record_batch([pa.array([enc.transform(batch).nnz])], ["nnz"])

    df = spark.createDataFrame(table).coalesce(1)
    found = df.mapInArrow(count_entries, "nnz long").collect()
    assert sum(row.nnz for row in found) == fmfast.FeatureEncoder.from_json(state).transform(table).nnz


def test_shards_go_straight_to_an_s3_prefix(spark: SparkSession, s3, tmp_path: Path) -> None:
    root, options = s3
    table = ratings(1200, seed=4)
    df = spark.createDataFrame(table.to_pandas()).coalesce(3)
    enc = encoder("ignore").fit(table)  # pandas hands Spark the NaN prices as nulls
    shards = fmfast.spark.write_recordio(
        df, f"{root}/train/", encoder=enc, label="rating", storage_options=options
    )
    n = len(shards)
    assert shards == [f"{root}/train/{shard_name(i, n)}" for i in range(n)]
    fs = fsspec.filesystem("s3", **options)
    fs.invalidate_cache()
    # Written by the executors, each straight to the store; the manifest, by the driver, last.
    assert json.loads(fs.cat(f"{root}/train/{MANIFEST_NAME}")) == [
        {"prefix": f"{root}/train/"},
        *(shard_name(i, n) for i in range(n)),
    ]
    X, y = fmfast.read_recordio(f"{root}/train/", storage_options=options)
    expected = enc.transform(table)
    got_rows = sorted(zip(y.tolist(), map(tuple, X.toarray().tolist()), strict=True))
    want_rows = sorted(
        zip(table.column("rating").to_numpy().tolist(), map(tuple, expected.toarray().tolist()), strict=True)
    )
    assert len(got_rows) == 1200 and got_rows == want_rows


def write_days(directory: Path, days: dict[int, pa.Table]) -> None:
    """A hive-partitioned Parquet dataset: ``day=<d>/`` per table, two files each, row groups of 100."""
    for day, table in days.items():
        (directory / f"day={day}").mkdir(parents=True)
        half = table.num_rows // 2
        for i, part in enumerate([table.slice(0, half), table.slice(half)]):
            pq.write_table(part, directory / f"day={day}" / f"part-{i}.parquet", row_group_size=100)


def test_the_parquet_files_route_writes_the_single_process_bytes(spark: SparkSession, tmp_path: Path) -> None:
    table = ratings(1500, seed=5)
    write_days(tmp_path / "lake", {1: table.slice(0, 700), 2: table.slice(700)})
    enc = encoder()  # not fitted: Spark fits it over the same files
    shards = fmfast.spark.convert_table(
        spark, tmp_path / "lake", tmp_path / "train", encoder=enc, label="day", n_shards=4
    )
    assert shards == [tmp_path / "train" / shard_name(i, 4) for i in range(4)]
    assert enc.to_json() == encoder().fit(table).to_json()
    # Runs of whole row groups, about equal: the shards split files, and one spans two of them.
    sizes = [fmfast.read_recordio(path)[0].shape[0] for path in shards]
    assert sum(sizes) == 1500 and max(sizes) - min(sizes) <= 100
    fmfast.convert_table(tmp_path / "lake", tmp_path / "single.recordio", encoder=enc, label="day")
    assert b"".join(path.read_bytes() for path in shards) == (tmp_path / "single.recordio").read_bytes()
    # The label is the hive partition's value, from the directory names.
    _, y = fmfast.read_recordio(tmp_path / "train")
    np.testing.assert_array_equal(y, [1] * 700 + [2] * 800)
    manifest = json.loads((tmp_path / "train" / MANIFEST_NAME).read_text())
    assert manifest == [{"prefix": f"{(tmp_path / 'train').resolve()}/"}, *(path.name for path in shards)]


def test_the_parquet_files_route_names_the_bad_row_and_leaves_nothing(
    spark: SparkSession, tmp_path: Path
) -> None:
    table = ratings(1000, seed=6)
    enc = encoder().fit(table)
    users = table.column("user").to_pylist()
    users[555] = "stranger"  # in the shard of row groups 3 to 6 of the one file
    pq.write_table(table.set_column(0, "user", pa.array(users)), tmp_path / "bad.parquet", row_group_size=100)
    message = r"bad\.parquet, row group 5: block 'user', row 555: unknown value 'stranger'"
    with pytest.raises(fmfast.InvalidInputError, match=message):
        fmfast.spark.convert_table(
            spark, tmp_path / "bad.parquet", tmp_path / "train", encoder=enc, label="rating", n_shards=3
        )
    assert list((tmp_path / "train").iterdir()) == []
    with pytest.raises(fmfast.InvalidInputError, match="n_shards must be at least 1, got 0"):
        fmfast.spark.convert_table(
            spark, tmp_path / "bad.parquet", tmp_path / "train", encoder=enc, label="rating", n_shards=0
        )
    with pytest.raises(fmfast.InvalidInputError, match="is not Parquet files"):
        fmfast.spark.convert_table(spark, table, tmp_path / "train", encoder=enc, label="rating")
    with pytest.raises(fmfast.InvalidInputError, match="no column 'score'"):
        fmfast.spark.convert_table(
            spark, tmp_path / "bad.parquet", tmp_path / "train", encoder=enc, label="score"
        )


def test_a_worker_process_decodes_the_encoder_once(spark: SparkSession) -> None:
    state = spark.sparkContext.broadcast(encoder().fit(ratings(50)).to_json())

    def decoded(key: str) -> list[tuple[int, int, str]]:
        def task(_: Iterator[int]) -> Iterator[tuple[int, int, str]]:
            found = fmfast.spark._task_encoder(key, state, 1)
            # Marked by the first task that gets it: which job's tasks it was decoded for.
            yield os.getpid(), id(found), found.__dict__.setdefault("decoded_for", key)

        return spark.sparkContext.parallelize(range(8), 8).mapPartitions(task).collect()

    try:
        first, again = decoded("job-1"), decoded("job-2")
    finally:
        state.destroy()
    # Spark reuses its Python workers: eight tasks, but one encoder per worker process and job.
    for found in (first, again):
        by_process = {pid: {encoder_id for p, encoder_id, _ in found if p == pid} for pid, _, _ in found}
        assert len(found) == 8 and all(len(ids) == 1 for ids in by_process.values())
        assert len(by_process) <= 2
    # The next job decodes its own (the last job's is freed first, so its id may come back: the
    # mark, not the id, tells them apart).
    assert {job for _, _, job in first} == {"job-1"} and {job for _, _, job in again} == {"job-2"}


def test_spark_calls_raise_no_pandas_warning(spark: SparkSession, tmp_path: Path) -> None:
    table = ratings(100, seed=7)
    pq.write_table(table, tmp_path / "ratings.parquet")
    df = spark.read.parquet(str(tmp_path / "ratings.parquet"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fmfast.spark.write_recordio(df, tmp_path / "train", encoder=encoder(), label="rating")
    assert [str(w.message) for w in caught if "pandas" in str(w.message)] == []


def test_a_file_in_the_place_of_the_directory_is_refused(spark: SparkSession, tmp_path: Path) -> None:
    (tmp_path / "train").write_bytes(b"mine")
    df = spark.createDataFrame(ratings(10))
    with pytest.raises(fmfast.InvalidInputError, match="exists and is not a directory"):
        fmfast.spark.write_recordio(df, tmp_path / "train", encoder=encoder(), label="rating")
    assert (tmp_path / "train").read_bytes() == b"mine"
