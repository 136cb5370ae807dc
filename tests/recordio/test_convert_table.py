"""convert_table: Parquet files, directories, partitioned datasets, globs and Arrow streams to RecordIO.

Every conversion is checked against the encoder applied to the whole table at once: the records
decode (with fmfast.read_recordio) to exactly ``encoder.transform(table)`` and the labels.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import fmfast
import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
import scipy.sparse as sp
from fmfast import FeatureEncoder, InvalidInputError
from fmfast._inputs import row_slice
from fmfast.recordio.shards import shard_set_writer
from fmfast.recordio.tables import batch_rows, encode_batch


def ratings_table(n_rows: int, seed: int = 0) -> pa.Table:
    """The benchmark's shape: string user, integer item, float rating, 1-3 genres, integer age."""
    rng = np.random.default_rng(seed)
    genres = [rng.choice(8, size=rng.integers(1, 4), replace=False).tolist() for _ in range(n_rows)]
    return pa.table(
        {
            "user": [f"u{u}" for u in rng.integers(0, 50, n_rows)],
            "item": rng.integers(0, 30, n_rows),
            "rating": rng.integers(1, 6, n_rows).astype(np.float64),
            "genres": pa.array(genres, pa.list_(pa.int64())),
            "age": rng.integers(18, 80, n_rows),
        }
    )


def declared() -> FeatureEncoder:
    return FeatureEncoder().one_hot("user").one_hot("item").multi_hot("genres").numeric("age")


def assert_converted(target, table: pa.Table, encoder: FeatureEncoder, label: str = "rating") -> None:
    """The records under ``target`` are ``encoder.transform(table)`` with ``table[label]`` as labels."""
    X, y = fmfast.read_recordio(target)
    expected = encoder.transform(table)
    assert X.shape == expected.shape
    assert (X != expected).nnz == 0
    np.testing.assert_array_equal(y, table.column(label).to_numpy().astype(np.float32))


@pytest.fixture
def table() -> pa.Table:
    return ratings_table(1_000)


@pytest.fixture
def parquet_file(tmp_path, table):
    path = tmp_path / "ratings.parquet"
    pq.write_table(table, path, row_group_size=300)
    return path


def test_a_parquet_file_to_one_file_with_the_encoder_fitted_in_a_first_pass(tmp_path, parquet_file, table):
    encoder = declared()
    done = []
    result = fmfast.convert_table(
        parquet_file,
        tmp_path / "out.recordio",
        encoder=encoder,
        label="rating",
        batch_size=128,
        progress=done.append,
    )
    assert result.n_rows == 1_000 and result.paths == [tmp_path / "out.recordio"]
    assert result.encoder.to_json() == declared().fit(table).to_json()
    assert result.n_features == result.encoder.n_features
    assert_converted(tmp_path / "out.recordio", table, result.encoder)
    # The encoder given is left as it was; the progress counts both passes' rows.
    assert encoder.to_json() == declared().to_json()
    assert done == sorted(done) and done[-1] == 2_000


def test_a_saved_encoder_gives_the_bytes_of_the_fitted_one(tmp_path, parquet_file, table):
    fitted = fmfast.convert_table(
        parquet_file, tmp_path / "a.recordio", encoder=declared(), label="rating"
    ).encoder
    fitted.save(tmp_path / "encoder.json")
    done = []
    fmfast.convert_table(
        parquet_file,
        tmp_path / "b.recordio",
        encoder=tmp_path / "encoder.json",
        label="rating",
        progress=done.append,
    )
    assert (tmp_path / "a.recordio").read_bytes() == (tmp_path / "b.recordio").read_bytes()
    assert done[-1] == 1_000  # one pass


def test_a_directory_of_files_and_a_glob_are_read_in_name_order(tmp_path, table):
    folder = tmp_path / "lake"
    folder.mkdir()
    for part in range(3):
        pq.write_table(table.slice(part * 400, 400), folder / f"part-{part}.parquet", row_group_size=150)
    encoder = declared().fit(table)
    fmfast.convert_table(folder, tmp_path / "dir", encoder=encoder, label="rating", rows_per_shard=256)
    assert_converted(tmp_path / "dir", table, encoder)
    fmfast.convert_table(
        str(folder / "part-*.parquet"), tmp_path / "glob.recordio", encoder=encoder, label="rating"
    )
    assert_converted(tmp_path / "glob.recordio", table, encoder)


def test_a_hive_partitioned_dataset_gives_its_partition_key_as_a_column(tmp_path, table):
    table = table.append_column("day", pa.array(np.arange(table.num_rows) % 3 + 1))
    pq.write_to_dataset(table, tmp_path / "lake", partition_cols=["day"])
    encoder = declared().one_hot("day")
    result = fmfast.convert_table(
        tmp_path / "lake", tmp_path / "out", encoder=encoder, label="rating", n_shards=2
    )
    whole = ds.dataset(tmp_path / "lake", partitioning="hive").to_table()
    assert sorted(whole.column("day").to_pylist()) == sorted(table.column("day").to_pylist())
    assert result.encoder.blocks[-1].size == 3
    assert_converted(tmp_path / "out", whole, result.encoder)


def test_arrow_data_in_memory_and_streams(tmp_path, table):
    encoder = declared().fit(table)
    for name, source in [
        ("table", table),
        ("batch", table.to_batches()[0]),
        ("reader", table.to_reader(max_chunksize=100)),
        ("dataset", ds.dataset(table)),
    ]:
        fmfast.convert_table(source, tmp_path / f"{name}.recordio", encoder=encoder, label="rating")
        assert_converted(tmp_path / f"{name}.recordio", table, encoder)


class CapsuleStream:
    """Only the Arrow PyCapsule stream interface, as polars or DuckDB results have it."""

    def __init__(self, table: pa.Table) -> None:
        self._table = table

    def __arrow_c_stream__(self, requested_schema=None):
        return self._table.__arrow_c_stream__(requested_schema)


def test_a_stream_is_read_once_so_it_needs_a_fitted_encoder(tmp_path, table):
    encoder = declared().fit(table)
    fmfast.convert_table(CapsuleStream(table), tmp_path / "s.recordio", encoder=encoder, label="rating")
    assert_converted(tmp_path / "s.recordio", table, encoder)
    with pytest.raises(InvalidInputError, match="can be read only once, and the encoder is not fitted"):
        fmfast.convert_table(table.to_reader(), tmp_path / "t.recordio", encoder=declared(), label="rating")
    with pytest.raises(InvalidInputError, match="n_shards needs the number of rows"):
        fmfast.convert_table(table.to_reader(), tmp_path / "t", encoder=encoder, label="rating", n_shards=2)
    assert not (tmp_path / "t.recordio").exists() and not (tmp_path / "t").exists()


def test_rows_per_shard_and_n_shards_size_and_name_the_shards(tmp_path, parquet_file, table):
    encoder = declared().fit(table)
    by_rows = fmfast.convert_table(
        parquet_file, tmp_path / "a", encoder=encoder, label="rating", rows_per_shard=300
    )
    assert [p.name for p in by_rows.paths] == [f"part-0000{i}-of-00004.recordio" for i in range(4)]
    assert [fmfast.read_recordio(p)[0].shape[0] for p in by_rows.paths] == [300, 300, 300, 100]
    by_count = fmfast.convert_table(
        parquet_file,
        tmp_path / "b",
        encoder=encoder,
        label="rating",
        n_shards=3,
        prefix="train",
        batch_size=64,
    )
    assert [p.name for p in by_count.paths] == [f"train-0000{i}-of-00003.recordio" for i in range(3)]
    assert [fmfast.read_recordio(p)[0].shape[0] for p in by_count.paths] == [333, 333, 334]
    assert_converted(tmp_path / "a", table, encoder)
    assert_converted(tmp_path / "b", table, encoder)


def test_the_manifest_lists_the_shards_under_the_target_or_a_given_prefix(tmp_path, parquet_file, table):
    encoder = declared().fit(table)
    fmfast.convert_table(
        parquet_file, tmp_path / "a", encoder=encoder, label="rating", n_shards=2, manifest=True
    )
    names = ["part-00000-of-00002.recordio", "part-00001-of-00002.recordio"]
    prefix = (tmp_path / "a").resolve().as_uri() + "/"
    assert json.loads((tmp_path / "a" / "manifest.json").read_text()) == [{"prefix": prefix}, *names]
    fmfast.convert_table(
        parquet_file,
        tmp_path / "b",
        encoder=encoder,
        label="rating",
        n_shards=2,
        manifest="s3://bucket/train/",
    )
    assert json.loads((tmp_path / "b" / "manifest.json").read_text()) == [
        {"prefix": "s3://bucket/train/"},
        *names,
    ]
    with pytest.raises(InvalidInputError, match="a manifest lists shards"):
        fmfast.convert_table(
            parquet_file, tmp_path / "c.recordio", encoder=encoder, label="rating", manifest=True
        )


def test_the_batches_encoded_one_by_one_are_the_bytes_of_the_conversion(tmp_path, table):
    """The contract with the Spark writer: the per-batch step, concatenated, is the file."""
    encoder = declared().fit(table)
    fmfast.convert_table(table, tmp_path / "all.recordio", encoder=encoder, label="rating")
    parts = [encode_batch(encoder, batch, "rating") for batch in table.to_batches(max_chunksize=77)]
    assert b"".join(parts) == (tmp_path / "all.recordio").read_bytes()
    X, y = batch_rows(encoder, table.to_batches()[0], None)
    assert y is None and X.shape == (table.num_rows, encoder.n_features)


def test_unlabelled_rows_and_an_empty_table(tmp_path, table):
    encoder = declared().fit(table)
    fmfast.convert_table(table, tmp_path / "x.recordio", encoder=encoder, label=None)
    X, y = fmfast.read_recordio(tmp_path / "x.recordio")
    assert y is None and (X != encoder.transform(table)).nnz == 0
    empty = fmfast.convert_table(
        table.slice(0, 0), tmp_path / "e", encoder=encoder, label="rating", rows_per_shard=10
    )
    assert empty.n_rows == 0 and [p.name for p in empty.paths] == ["part-00000-of-00001.recordio"]
    assert empty.paths[0].stat().st_size == 0


def test_an_unknown_value_is_named_by_file_row_group_and_row(tmp_path, parquet_file, table):
    encoder = declared().fit(table)
    users = table.column("user").to_pylist()
    users[700] = "stranger"
    pq.write_table(table.set_column(0, "user", pa.array(users)), parquet_file, row_group_size=300)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "old-00000-of-00001.recordio").write_bytes(b"")
    message = rf"{parquet_file}, row group 2: block 'user', row 700: unknown value 'stranger'"
    with pytest.raises(InvalidInputError, match=message):
        fmfast.convert_table(
            parquet_file, tmp_path / "out", encoder=encoder, label="rating", rows_per_shard=100
        )
    # The failed conversion left the directory as it was, and no temporary beside it.
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["old-00000-of-00001.recordio"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "ratings.parquet"]


def test_null_labels_missing_columns_and_bad_sources_are_refused(tmp_path, table):
    encoder = declared().fit(table)
    ratings = table.column("rating").to_pylist()
    ratings[7] = None
    nulls = table.set_column(2, "rating", pa.array(ratings))
    with pytest.raises(InvalidInputError, match="the table: label column 'rating', row 7: null"):
        fmfast.convert_table(nulls, tmp_path / "a.recordio", encoder=encoder, label="rating")
    with pytest.raises(InvalidInputError, match="no column 'score'; the columns are user, item"):
        fmfast.convert_table(table, tmp_path / "a.recordio", encoder=encoder, label="score")
    with pytest.raises(
        InvalidInputError, match="label column 'user': an Arrow column of type Utf8 cannot be labels"
    ):
        fmfast.convert_table(table, tmp_path / "a.recordio", encoder=encoder, label="user")
    with pytest.raises(FileNotFoundError, match="No file matches the pattern"):
        fmfast.convert_table(
            str(tmp_path / "*.parquet"), tmp_path / "a.recordio", encoder=encoder, label="rating"
        )
    (tmp_path / "bad.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(InvalidInputError, match=r"bad\.parquet: not a Parquet dataset"):
        fmfast.convert_table(
            tmp_path / "bad.parquet", tmp_path / "a.recordio", encoder=encoder, label="rating"
        )
    with pytest.raises(InvalidInputError, match="cannot read a table from int"):
        fmfast.convert_table(3, tmp_path / "a.recordio", encoder=encoder, label="rating")
    with pytest.raises(InvalidInputError, match="give either n_shards or rows_per_shard"):
        fmfast.convert_table(
            table, tmp_path / "a", encoder=encoder, label="rating", n_shards=2, rows_per_shard=3
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.parquet"]


def test_the_shard_set_writer_splits_chunks_at_the_bounds(tmp_path):
    X = np.arange(20, dtype=np.float32).reshape(10, 2)
    with shard_set_writer(tmp_path / "a", n_shards=4, n_rows=10) as shards:
        for start in range(0, 10, 3):
            shards.write(X[start : start + 3], np.arange(start, min(start + 3, 10)))
    assert [fmfast.read_recordio(p)[0].shape[0] for p in shards.paths] == [2, 3, 2, 3]
    got, labels = fmfast.read_recordio(tmp_path / "a")
    np.testing.assert_array_equal(got.toarray(), X)
    np.testing.assert_array_equal(labels, np.arange(10))
    with shard_set_writer(tmp_path / "b", n_shards=3, n_rows=1) as shards:
        shards.write(X[:1])
    assert [p.stat().st_size > 0 for p in shards.paths] == [False, False, True]
    with pytest.raises(InvalidInputError, match="9 rows written to a shard set of 10"):
        with shard_set_writer(tmp_path / "c", n_shards=2, n_rows=10) as shards:
            shards.write(X[:9])
    with pytest.raises(InvalidInputError, match="either every chunk has labels or none does"):
        with shard_set_writer(tmp_path / "c", rows_per_shard=2) as shards:
            shards.write(X[:3], np.ones(3))
            shards.write(X[3:])
    assert not (tmp_path / "c").exists()


def test_shards_hold_the_same_bytes_for_every_thread_count(tmp_path, parquet_file, table):
    """Batches that cross shard bounds are split there (as views); the bytes depend on no thread count."""
    encoder = declared().fit(table)
    whole = encode_batch(encoder, table, "rating", n_threads=1)
    for threads in (1, 2, 3):
        encoder.n_threads = threads
        result = fmfast.convert_table(
            parquet_file,
            tmp_path / f"t{threads}",
            encoder=encoder,
            label="rating",
            rows_per_shard=300,
            batch_size=64,
            n_threads=threads,
        )
        assert b"".join(p.read_bytes() for p in result.paths) == whole


def test_a_row_slice_shares_the_rows_values_and_indices():
    X = sp.random(40, 9, density=0.3, format="csr", dtype=np.float32, random_state=0)
    for matrix in (sp.csr_array(X), X):
        for start, stop in [(0, 40), (5, 23), (39, 40), (7, 7)]:
            part = row_slice(matrix, start, stop)
            assert type(part) is type(matrix) and part.shape == (stop - start, 9)
            assert (part != matrix[start:stop]).nnz == 0
        assert row_slice(matrix, 0, 40) is matrix
        most = row_slice(matrix, 5, 40)
        assert np.shares_memory(most.data, matrix.data) and np.shares_memory(most.indices, matrix.indices)


MEMORY_CHILD = textwrap.dedent(
    """
    import json, sys, time
    import fmfast, pyarrow.dataset, pyarrow.compute

    def peak_kib():  # VmHWM: getrusage's ru_maxrss would carry over the parent's peak across exec
        status = open("/proc/self/status").read().split("VmHWM:")[1]
        return int(status.split()[0])

    before = peak_kib()
    result = fmfast.convert_table(
        sys.argv[1], sys.argv[2], encoder=sys.argv[3], label="rating", rows_per_shard=1_000_000,
        batch_size=int(sys.argv[4]), n_threads=2, progress=lambda rows: time.sleep(0.005),
    )
    print(json.dumps({"rows": result.n_rows, "rise_kib": peak_kib() - before}))
    """
)


@pytest.mark.slow
def test_memory_stays_bounded_by_the_batch_not_the_table(tmp_path):
    """A 4M-row conversion in a fresh process: its peak RSS rises far less than the table's size.

    In batches of 16K rows: what each batch costs is fixed (with 64K-row batches, some 150 MiB
    here, the allocators' caches included), but must stay well under the table for the test to
    tell it from the table's growth. Each batch is slowed down (as by a slow encoder), so that
    a reader that ran ahead of the writer would pile batches up.
    """
    n_rows, chunk, n_ids = 4_000_000, 500_000, 8
    rng = np.random.default_rng(1)
    names = [f"id{k}" for k in range(n_ids)]
    schema = pa.schema([*((name, pa.int64()) for name in names), ("rating", pa.float64())])
    with pq.ParquetWriter(tmp_path / "big.parquet", schema) as writer:
        for _ in range(n_rows // chunk):
            columns = [*(rng.integers(0, 100, chunk) for _ in names), rng.random(chunk)]
            writer.write_table(pa.table(columns, schema=schema), row_group_size=100_000)
    encoder = FeatureEncoder()
    for name in names:
        encoder.one_hot(name)
    encoder.fit(dict.fromkeys(names, np.arange(100))).save(tmp_path / "encoder.json")
    command = [
        sys.executable,
        "-c",
        MEMORY_CHILD,
        tmp_path / "big.parquet",
        tmp_path / "out",
        tmp_path / "encoder.json",
        "16384",
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=True, timeout=300)
    report = json.loads(done.stdout)
    assert report["rows"] == n_rows
    table_mib = n_rows * (n_ids + 1) * 8 / 2**20  # the columns, were they in memory at once
    output_mib = sum(p.stat().st_size for p in (tmp_path / "out").iterdir()) / 2**20
    assert report["rise_kib"] / 1024 < table_mib / 2 < output_mib, (report, table_mib, output_mib)


def write_ratings_parquet(path, n_rows: int, chunk: int = 300_000) -> None:
    """The benchmark's table, vectorised: 100K string users, 1-5 genres of 20, written by chunks."""
    import pyarrow.compute as pc

    rng = np.random.default_rng(3)
    schema = ratings_table(1).schema
    with pq.ParquetWriter(path, schema) as writer:
        for first in range(0, n_rows, chunk):
            n = min(chunk, n_rows - first)
            offsets = np.zeros(n + 1, dtype=np.int32)
            np.cumsum(rng.integers(1, 6, n), out=offsets[1:])
            columns = {
                "user": pc.binary_join_element_wise(
                    "u", pc.cast(pa.array(rng.integers(0, 100_000, n)), pa.string()), ""
                ),
                "item": rng.integers(0, 1000, n),
                "rating": rng.integers(1, 6, n).astype(np.float64),
                "genres": pa.ListArray.from_arrays(offsets, rng.integers(0, 20, offsets[-1])),
                "age": rng.integers(18, 80, n),
            }
            writer.write_table(pa.table(columns, schema=schema), row_group_size=chunk // 2)


@pytest.mark.slow
def test_the_peak_does_not_grow_with_the_rows(tmp_path):
    """Converting 4x the rows raises the peak RSS by far less than what the extra rows hold.

    Each size in a fresh process, as the benchmark converts it (2 threads, a 100K-user
    vocabulary), in batches of 16K rows so that both sizes reach the steady state (here 108-114
    MiB at 500K rows, 120-129 at 2M): a reader that ran ahead without bound, batches kept, or
    buffers that grew with the rows would add about as much as the extra rows' records (133 MiB),
    their Arrow columns or their CSR arrays (each over 100 MiB).
    """
    users = [f"u{u}" for u in range(100_000)]
    columns = {
        "user": users,
        "item": np.arange(1000),
        "genres": [[g] for g in range(20)],
        "age": np.array([18, 79]),
    }
    declared().fit(columns).save(tmp_path / "encoder.json")
    rises, output_mib = {}, {}
    for n_rows in (500_000, 2_000_000):
        write_ratings_parquet(tmp_path / f"{n_rows}.parquet", n_rows)
        out = tmp_path / f"out{n_rows}"
        command = [
            sys.executable,
            "-c",
            MEMORY_CHILD,
            tmp_path / f"{n_rows}.parquet",
            out,
            tmp_path / "encoder.json",
        ]
        done = subprocess.run([*command, "16384"], capture_output=True, text=True, check=True, timeout=300)
        report = json.loads(done.stdout)
        assert report["rows"] == n_rows
        rises[n_rows] = report["rise_kib"] / 1024
        output_mib[n_rows] = sum(p.stat().st_size for p in out.iterdir()) / 2**20
    extra_output = output_mib[2_000_000] - output_mib[500_000]
    assert rises[2_000_000] - rises[500_000] < extra_output / 3, (rises, output_mib)


def test_a_dataset_at_a_url_is_read_through_fsspec(tmp_path, table):
    memory = fsspec.filesystem("memory")
    for part in range(2):
        with memory.open(f"/lake-{tmp_path.name}/part-{part}.parquet", "wb") as out:
            pq.write_table(table.slice(part * 500, 500), out)
    encoder = declared().fit(table)
    for source in [f"memory://lake-{tmp_path.name}", f"memory://lake-{tmp_path.name}/part-*.parquet"]:
        fmfast.convert_table(
            source, tmp_path / "out.recordio", encoder=encoder, label="rating", storage_options={}
        )
        assert_converted(tmp_path / "out.recordio", table, encoder)
    with pytest.raises(FileNotFoundError, match="No such file"):
        fmfast.convert_table(
            f"memory://nothing-{tmp_path.name}", tmp_path / "x", encoder=encoder, label="rating"
        )


def test_a_file_of_a_directory_that_is_not_parquet_is_named(tmp_path, table):
    (tmp_path / "lake").mkdir()
    pq.write_table(table, tmp_path / "lake" / "a.parquet")
    (tmp_path / "lake" / "b.parquet").write_bytes(b"PAR1 but not really")
    with pytest.raises(InvalidInputError, match=r"lake: cannot read it \(.*b\.parquet"):
        fmfast.convert_table(
            tmp_path / "lake", tmp_path / "out", encoder=declared(), label="rating", n_shards=2
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lake"]


def test_a_missing_column_is_refused_before_any_pass(tmp_path, parquet_file, table):
    encoder = declared().one_hot("country")
    for source in [parquet_file, table]:
        with pytest.raises(
            InvalidInputError, match="no column 'country'; the columns are user, item, rating"
        ):
            fmfast.convert_table(source, tmp_path / "a.recordio", encoder=encoder, label="rating")
    fitted = declared().fit(table)
    with pytest.raises(InvalidInputError, match="the stream: no column 'score'"):
        fmfast.convert_table(table.to_reader(), tmp_path / "a.recordio", encoder=fitted, label="score")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ratings.parquet"]
