"""``fmfast convert`` of Parquet files, directories and globs: the real command, in a subprocess."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import fmfast
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fmfast import FeatureEncoder
from run_cli import fmfast_cli

FEATURES = ["--one-hot", "user,item", "--multi-hot", "genres", "--numeric", "age"]


def ratings_table(n_rows: int, seed: int = 0) -> pa.Table:
    rng = np.random.default_rng(seed)
    return pa.table(
        {
            "user": [f"u{u}" for u in rng.integers(0, 40, n_rows)],
            "item": rng.integers(0, 25, n_rows),
            "rating": rng.integers(1, 6, n_rows).astype(np.float32),
            "genres": [rng.choice(6, size=rng.integers(1, 4), replace=False).tolist() for _ in range(n_rows)],
            "age": rng.integers(18, 80, n_rows),
        }
    )


def expected_encoder(table: pa.Table) -> FeatureEncoder:
    return FeatureEncoder().one_hot("user").one_hot("item").multi_hot("genres").numeric("age").fit(table)


@pytest.fixture
def lake(tmp_path):
    """A directory of two Parquet files, and the table they hold."""
    table = ratings_table(600)
    (tmp_path / "lake").mkdir()
    pq.write_table(table.slice(0, 350), tmp_path / "lake" / "a.parquet", row_group_size=100)
    pq.write_table(table.slice(350), tmp_path / "lake" / "b.parquet", row_group_size=100)
    return tmp_path / "lake", table


def test_convert_a_directory_into_shards_with_a_manifest_and_the_encoder(tmp_path, lake):
    folder, table = lake
    run = fmfast_cli(
        "convert", folder, tmp_path / "train", "--label", "rating", *FEATURES, "--shards", "3", "--manifest"
    )
    assert run.returncode == 0, run.stderr
    encoder = expected_encoder(table)
    assert f"wrote 600 records of {encoder.n_features} features to 3 shards in" in run.stdout
    assert "rows/s" in run.stderr  # the progress bar
    saved = FeatureEncoder.load(tmp_path / "train.encoder.json")
    assert saved.to_json() == encoder.to_json()
    X, y = fmfast.read_recordio(tmp_path / "train")
    assert (X != encoder.transform(table)).nnz == 0
    np.testing.assert_array_equal(y, table.column("rating").to_numpy())
    manifest = json.loads((tmp_path / "train" / "manifest.json").read_text())
    assert manifest[0] == {"prefix": (tmp_path / "train").resolve().as_uri() + "/"}
    assert manifest[1:] == [f"part-0000{i}-of-00003.recordio" for i in range(3)]


def test_a_glob_with_a_saved_encoder_gives_the_same_bytes(tmp_path, lake):
    """The encoder fitted on a.parquet (which holds every id of the lake) converts both files."""
    folder, table = lake
    first = fmfast_cli(
        "convert", folder / "a.parquet", tmp_path / "a.recordio", "--label", "rating", *FEATURES
    )
    assert first.returncode == 0, first.stderr
    encoder = tmp_path / "a.recordio.encoder.json"
    again = fmfast_cli(
        "convert", folder / "*.parquet", tmp_path / "all", "--label", "rating", "--encoder", encoder,
        "--rows-per-shard", "250", "--quiet",
    )  # fmt: skip
    assert again.returncode == 0 and again.stderr == "", again.stderr  # --quiet: no bar
    X, _ = fmfast.read_recordio(tmp_path / "all")
    assert (X != FeatureEncoder.load(encoder).transform(table)).nnz == 0
    assert sorted(p.name for p in (tmp_path / "all").iterdir())[-1] == "part-00002-of-00003.recordio"
    single = fmfast_cli(
        "convert", folder / "a.parquet", tmp_path / "b.recordio", "--label", "rating", "--encoder", encoder
    )
    assert (tmp_path / "a.recordio").read_bytes() == (tmp_path / "b.recordio").read_bytes(), single.stderr


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--label", "rating"], "declare the features (--one-hot, --multi-hot, --numeric) or give --encoder"),
        (
            ["--encoder", "e.json", "--one-hot", "user"],
            "--encoder declares the features already: drop --one-hot, --multi-hot, --numeric",
        ),
        (["--one-hot", "user", "--delimiter", ","], "--delimiter does not apply to Parquet input"),
    ],
)
def test_usage_errors(tmp_path, lake, options, message):
    run = fmfast_cli("convert", lake[0], tmp_path / "out.recordio", *options)
    assert run.returncode == 2 and run.stderr == f"fmfast convert: error: {message}\n"


def test_table_options_on_a_text_input_are_refused(tmp_path):
    (tmp_path / "r.csv").write_text("user,item,rating\n1,2,3\n")
    run = fmfast_cli("convert", tmp_path / "r.csv", tmp_path / "r.recordio", "--shards", "2")
    assert (
        run.returncode == 2
        and run.stderr == "fmfast convert: error: --shards applies to Parquet input only\n"
    )


def test_an_unknown_id_names_the_file_row_group_and_row(tmp_path, lake):
    folder, table = lake
    FeatureEncoder().one_hot("user").fit({"user": ["u0"]}).save(tmp_path / "e.json")
    run = fmfast_cli("convert", folder, tmp_path / "out", "--encoder", tmp_path / "e.json", "--shards", "2")
    first_other = next(i for i, u in enumerate(table.column("user").to_pylist()) if u != "u0")
    expected = (
        f"fmfast: error: {folder / 'a.parquet'}, row group {first_other // 100}: block 'user', "
        f"row {first_other}: unknown value {table.column('user')[first_other].as_py()!r}\n"
    )
    assert run.returncode == 1 and run.stderr == expected
    assert sorted(p.name for p in tmp_path.iterdir()) == ["e.json", "lake"]


def test_ctrl_c_leaves_no_output_behind(tmp_path):
    """A real SIGINT to a conversion in progress: no shard set, no temporary directory."""
    # 2,000 shards: long enough for the signal to land in each step of a chunk's conversion. With
    # 400 the test missed (1 run in 4) the signal that arrived while the binding formatted a
    # dtype, where numpy's Python code swallowed the KeyboardInterrupt (exit status 0, every
    # shard written); at 2,000, 1 to 4 runs in 25 before the fix (`arrays::holds`), none after.
    n_rows = 2_000_000
    table = pa.table({"user": np.arange(n_rows) % 1_000, "rating": np.ones(n_rows)})
    pq.write_table(table, tmp_path / "big.parquet", row_group_size=20_000)
    FeatureEncoder().one_hot("user").fit({"user": np.arange(1_000)}).save(tmp_path / "e.json")
    out = tmp_path / "out"
    command = [
        sys.executable,
        "-m",
        "fmfast.cli",
        "convert",
        tmp_path / "big.parquet",
        out,
        "--label",
        "rating",
    ]
    command += ["--encoder", tmp_path / "e.json", "--rows-per-shard", "1000"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    # Wait for the first shards in the temporary directory: the conversion is under way.
    while not any(tmp_path.glob(".fmfast-*.tmp/.fmfast-shard-*.tmp")) and time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()
        time.sleep(0.01)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode != 0 and "KeyboardInterrupt" in stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.parquet", "e.json"]
