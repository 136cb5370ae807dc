"""fmfast.spark on a real Spark in local mode: the shards decode to the single-process rows, the
distributed vocabulary is FeatureEncoder.fit's, the manifest comes last, and failures leave nothing."""

from __future__ import annotations

import json
import subprocess
import sys
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
