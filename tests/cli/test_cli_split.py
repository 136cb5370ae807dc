"""``fmfast split``, run as a command: the splits of ``fmfast.recsys.evaluation`` written as two CSV files."""

from __future__ import annotations

from pathlib import Path

import fmfast
import numpy as np
import pytest
from fmfast.recsys.evaluation import leave_n_out, random_split, temporal_split
from run_cli import fmfast_cli


def write_u_data(path: Path, n_ratings: int = 400, seed: int = 5) -> fmfast.RatingsData:
    """A MovieLens-100K-style ``u.data`` (tab separated, no header, times in an arbitrary order)."""
    generated = fmfast.recsys.datasets.synthetic_ratings(
        n_users=25, n_items=30, n_ratings=n_ratings, seed=seed
    )
    times = np.random.default_rng(seed).permutation(n_ratings) * 7 + 1_000_000
    rows = zip(generated.users + 1, generated.items + 101, generated.ratings, times, strict=True)
    path.write_text("".join(f"{u}\t{i}\t{r:g}\t{t}\n" for u, i, r, t in rows))
    return fmfast.read_ratings(path)


def rows_of(data: fmfast.RatingsData, index: np.ndarray | None = None) -> list[tuple[object, ...]]:
    """The ratings as ``(user id, item id, rating, time)`` tuples, in order."""
    index = np.arange(len(data)) if index is None else index
    times = data.timestamps[index] if data.timestamps is not None else [None] * len(index)
    return list(
        zip(
            data.user_ids[data.users[index]].tolist(),
            data.item_ids[data.items[index]].tolist(),
            data.ratings[index].tolist(),
            list(times),
            strict=True,
        )
    )


def split(tmp_path: Path, source: Path, *options: str) -> tuple[fmfast.RatingsData, fmfast.RatingsData]:
    """Run ``fmfast split`` and read both outputs back."""
    train, test = tmp_path / "train.csv", tmp_path / "test.csv"
    run = fmfast_cli("split", source, train, test, *options)
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("wrote ") and str(train) in run.stdout
    assert train.read_text().startswith("user,item,rating,timestamp\n")
    return fmfast.read_ratings(train), fmfast.read_ratings(test)


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (["--test-fraction", "0.25", "--seed", "3"], lambda d: random_split(len(d), 0.25, seed=3)),
        (["--method", "leave-n-out", "--n", "4"], lambda d: leave_n_out(d.users, 4, d.timestamps)),
        (["--method", "temporal", "--cut", "1002000"], lambda d: temporal_split(d.timestamps, 1002000)),
    ],
    ids=["random", "leave-n-out", "temporal"],
)
def test_split_writes_the_rows_that_the_evaluation_split_picks(tmp_path, options, expected):
    source = tmp_path / "u.data"
    data = write_u_data(source)
    train_back, test_back = split(tmp_path, source, *options)
    train, test = expected(data)
    assert len(test) > 0 and len(train) > len(test)
    assert rows_of(train_back) == rows_of(data, train)
    assert rows_of(test_back) == rows_of(data, test)


def test_leave_n_out_holds_out_each_users_latest_ratings(tmp_path):
    source = tmp_path / "u.data"
    write_u_data(source)
    train, test = split(tmp_path, source, "--method", "leave-n-out", "--n", "3")
    for user in np.unique(test.user_ids):
        test_times = test.timestamps[test.user_ids[test.users] == user]
        train_times = train.timestamps[train.user_ids[train.users] == user]
        assert len(test_times) == 3 and test_times.min() > train_times.max()


def test_temporal_split_by_fraction_puts_the_latest_share_in_test(tmp_path):
    source = tmp_path / "u.data"
    data = write_u_data(source)
    train, test = split(tmp_path, source, "--method", "temporal", "--test-fraction", "0.3")
    assert train.timestamps.max() < test.timestamps.min()
    assert len(test) == pytest.approx(0.3 * len(data), abs=1)


def test_the_same_seed_gives_the_same_files_and_another_seed_others(tmp_path):
    source = tmp_path / "u.data"
    write_u_data(source)
    outputs = {}
    for name, seed in (("a", "1"), ("b", "1"), ("c", "2")):
        (tmp_path / name).mkdir()
        split(tmp_path / name, source, "--seed", seed)
        outputs[name] = (tmp_path / name / "test.csv").read_bytes()
    assert outputs["a"] == outputs["b"] != outputs["c"]


def test_text_ids_and_files_without_times_are_kept(tmp_path):
    source = tmp_path / "ratings.csv"
    source.write_text(
        "userId,movieId,rating\n" + "".join(f"u{u % 7},m{u % 11},{u % 5 + 0.5}\n" for u in range(60))
    )
    data = fmfast.read_ratings(source)
    train_csv, test_csv = tmp_path / "train.csv", tmp_path / "test.csv"
    assert fmfast_cli("split", source, train_csv, test_csv, "--seed", "4").returncode == 0
    assert train_csv.read_text().startswith("user,item,rating\nu")
    train, test = fmfast.read_ratings(train_csv), fmfast.read_ratings(test_csv)
    train_idx, test_idx = random_split(len(data), 0.2, seed=4)
    assert rows_of(train) == rows_of(data, train_idx) and rows_of(test) == rows_of(data, test_idx)
    run = fmfast_cli("split", source, train_csv, test_csv, "--method", "temporal")
    assert (
        run.returncode == 1 and run.stderr == f"fmfast: error: {source} has no timestamps to split by time\n"
    )


def test_the_training_file_converts_to_recordio(tmp_path):
    source = tmp_path / "u.data"
    write_u_data(source)
    train, _ = split(tmp_path, source)
    run = fmfast_cli("convert", tmp_path / "train.csv", tmp_path / "train.recordio", "--quiet")
    assert run.returncode == 0, run.stderr
    X, y = fmfast.read_recordio(tmp_path / "train.recordio")
    assert X.shape[0] == len(train) and np.array_equal(np.sort(y), np.sort(train.ratings))


@pytest.mark.parametrize("fraction", ["1.5", "-0.1", "nan", "half"])
def test_a_fraction_outside_0_1_is_a_usage_error(tmp_path, fraction):
    run = fmfast_cli(
        "split", tmp_path / "r.csv", tmp_path / "a.csv", tmp_path / "b.csv", "--test-fraction", fraction
    )
    assert run.returncode == 2
    assert (
        run.stderr
        == f"fmfast split: error: argument --test-fraction: expected a share from 0 to 1, got '{fraction}'\n"
    )
