"""The ratings workflow of the ``fmfast`` command, run as a real process: convert the training
ratings, convert or evaluate a held-out file in the training columns, score (user, item) pairs."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import fmfast
import numpy as np
import pytest
from fmfast.recsys.datasets import user_item_one_hot


def fmfast_cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """``fmfast ARGS`` in a child process (the environment, so the worktree's package, is inherited)."""
    command = [sys.executable, "-m", "fmfast.cli", *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


def ok(*args: str | Path) -> str:
    """The output of an ``fmfast`` command that must succeed."""
    done = fmfast_cli(*args)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def workflow(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A train/test split written as CSV files, the training ratings converted and a model trained.

    User ids are ``10..`` (so user ``3`` is never one) and items ``m0..``; the test file names its
    columns in another order and quotes its fields, as the parser must not care.
    """
    tmp = tmp_path_factory.mktemp("ratings")
    ratings = fmfast.recsys.datasets.synthetic_ratings(n_users=40, n_items=60, n_ratings=1500, seed=2)
    users = [str(u + 10) for u in ratings.users]
    items = [f"m{i}" for i in ratings.items]
    in_test = np.random.default_rng(0).random(len(users)) < 0.2
    train_rows = [
        (u, i, r) for u, i, r, t in zip(users, items, ratings.ratings, in_test, strict=True) if not t
    ]
    known_users, known_items = {u for u, _, _ in train_rows}, {i for _, i, _ in train_rows}
    test_rows = [
        (u, i, r)
        for u, i, r, t in zip(users, items, ratings.ratings, in_test, strict=True)
        if t and u in known_users and i in known_items
    ]
    paths = {name: tmp / name for name in ("train.csv", "test.csv", "train.recordio", "model.fmfast")}
    paths["train.csv"].write_text(
        "userId,movieId,rating,timestamp\n" + "".join(f"{u},{i},{r:g},0\n" for u, i, r in train_rows)
    )
    paths["test.csv"].write_text(
        "movieId,userId,rating\r\n" + "".join(f'"{i}","{u}",{r:g}\r\n' for u, i, r in test_rows)
    )
    ok("convert", paths["train.csv"], paths["train.recordio"], "--quiet")
    paths["columns"] = Path(f"{paths['train.recordio']}.columns.json")
    ok(
        "train",
        paths["train.recordio"],
        paths["model.fmfast"],
        "--num-factors",
        "4",
        "--quiet",
        "-H",
        "epochs=3",
    )
    return paths


def python_rows(paths: dict[str, Path], source: Path) -> tuple[object, np.ndarray]:
    """The one-hot rows of ``source`` in the training columns, built with the Python API alone."""
    train, test = fmfast.read_ratings(paths["train.csv"]), fmfast.read_ratings(source)
    user_code = {str(u): c for c, u in enumerate(train.user_ids)}
    item_code = {str(i): c for c, i in enumerate(train.item_ids)}
    users = np.array([user_code[str(test.user_ids[c])] for c in test.users])
    items = np.array([item_code[str(test.item_ids[c])] for c in test.items])
    return user_item_one_hot(users, items, train.n_users, train.n_items), test.ratings


def test_a_held_out_file_is_evaluated_in_the_training_columns(workflow: dict[str, Path]) -> None:
    test_recordio = workflow["test.csv"].with_suffix(".recordio")
    ok("convert", workflow["test.csv"], test_recordio, "--columns", workflow["columns"], "--quiet")
    assert json.loads(Path(f"{test_recordio}.columns.json").read_text()) == json.loads(
        workflow["columns"].read_text()
    )
    model = fmfast.FactorizationMachine.load(workflow["model.fmfast"])
    X, y = python_rows(workflow, workflow["test.csv"])
    want = model.evaluate(X, y)["rmse"]
    from_recordio = json.loads(ok("evaluate", workflow["model.fmfast"], test_recordio))
    from_csv = json.loads(
        ok("evaluate", workflow["model.fmfast"], workflow["test.csv"], "--columns", workflow["columns"])
    )
    assert from_recordio["rmse"] == pytest.approx(want, rel=1e-6)
    assert from_csv["rmse"] == pytest.approx(want, rel=1e-6)


def test_pairs_are_scored(workflow: dict[str, Path]) -> None:
    pairs, scores = (
        workflow["train.csv"].with_name("pairs.csv"),
        workflow["train.csv"].with_name("scores.csv"),
    )
    pairs.write_text("user,item\n12,m3\n10,m0\n")
    printed = ok("predict", workflow["model.fmfast"], pairs, scores, "--columns", workflow["columns"])
    assert "scored 2 pairs" in printed
    with scores.open() as file:
        rows = list(csv.DictReader(file))
    assert [(r["user"], r["item"]) for r in rows] == [("12", "m3"), ("10", "m0")]
    model = fmfast.FactorizationMachine.load(workflow["model.fmfast"])
    train = fmfast.read_ratings(workflow["train.csv"])
    users = [list(train.user_ids).index(u) for u in (12, 10)]
    items = [list(train.item_ids).index(i) for i in ("m3", "m0")]
    want = model.predict(user_item_one_hot(np.array(users), np.array(items), train.n_users, train.n_items))
    np.testing.assert_allclose([float(r["score"]) for r in rows], want, rtol=1e-6)


def test_a_user_absent_from_training_is_refused_by_id(workflow: dict[str, Path]) -> None:
    bad = workflow["train.csv"].with_name("bad.csv")
    bad.write_text("userId,movieId,rating\n10,m0,4\n3,m1,5\n")
    target = bad.with_suffix(".recordio")
    for command in (
        ("convert", bad, target, "--columns", workflow["columns"], "--quiet"),
        ("evaluate", workflow["model.fmfast"], bad, "--columns", workflow["columns"]),
        (
            "predict",
            workflow["model.fmfast"],
            bad,
            bad.with_name("out.csv"),
            "--columns",
            workflow["columns"],
        ),
    ):
        done = fmfast_cli(*command)
        assert done.returncode == 1, command
        assert 'bad.csv, line 3: user id "3" is not in the vocabulary' in done.stderr, done.stderr
    assert not target.exists() and not bad.with_name("out.csv").exists()
    ok("convert", bad, target, "--columns", workflow["columns"], "--unknown-ids", "ignore", "--quiet")
    X, y = fmfast.read_recordio(target)
    np.testing.assert_array_equal(np.diff(X.indptr), [2, 1])  # user 3 has no column
    np.testing.assert_array_equal(y, [4, 5])


def test_a_ratings_file_needs_the_training_columns(workflow: dict[str, Path]) -> None:
    done = fmfast_cli("evaluate", workflow["model.fmfast"], workflow["test.csv"])
    assert done.returncode == 1 and "pass --columns" in done.stderr
    few, other = workflow["train.csv"].with_name("few.csv"), workflow["train.csv"].with_name("other.recordio")
    few.write_text("userId,movieId,rating\n10,m0,4\n")
    ok("convert", few, other, "--quiet")  # a vocabulary of 2 columns
    done = fmfast_cli(
        "evaluate", workflow["model.fmfast"], workflow["test.csv"], "--columns", f"{other}.columns.json"
    )
    assert done.returncode == 1 and "not the vocabulary the model was trained with" in done.stderr
