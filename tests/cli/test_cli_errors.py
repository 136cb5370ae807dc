"""The ``fmfast`` command line under bad input: one line on stderr, exit 1 (2 for usage), no traceback.

Each case runs the real command in a subprocess, progress bars left on, so that whatever it would
print (a traceback, an empty bar) shows up on stderr.
"""

from __future__ import annotations

import argparse
import os
import subprocess
from pathlib import Path

import fmfast
import numpy as np
import pytest
from fmfast.cli import DEMO_HYPERPARAMETERS, HYPERPARAMETERS, build_parser
from run_cli import fmfast_cli


def assert_one_line_error(run: subprocess.CompletedProcess[str], status: int, expected: str) -> None:
    assert run.returncode == status, run.stderr
    assert run.stderr == expected + "\n", "one line, no traceback, no progress bar"


@pytest.fixture
def trained(tmp_path: Path) -> tuple[Path, Path]:
    """A labelled RecordIO file and a model trained on it."""
    X, y = fmfast.recsys.datasets.synthetic_ratings(n_users=10, n_items=12, n_ratings=100, seed=3).one_hot()
    data, model = tmp_path / "train.recordio", tmp_path / "model.fmfast"
    fmfast.write_recordio(data, X, y)
    fmfast.FactorizationMachine("regressor", 2, random_state=0).fit(X, y).save(model)
    return data, model


@pytest.mark.parametrize(
    "command",
    [
        ["inspect", "{missing}"],
        ["train", "{missing}", "out.fmfast"],
        ["train", "{data}", "out.fmfast", "--validation", "{missing}"],
        ["evaluate", "{model}", "{missing}"],
        ["evaluate", "{missing}", "{data}"],
        ["convert", "{missing}", "out.recordio", "--format", "libsvm"],
        ["predict", "{model}", "{missing}", "out.jsonl"],
        ["serve", "{missing}"],
    ],
    ids=lambda command: " ".join(command),
)
def test_a_missing_file_is_named(tmp_path, trained, command):
    data, model = trained
    missing = tmp_path / "nosuch.recordio"
    args = [part.format(missing=missing, data=data, model=model) for part in command]
    run = fmfast_cli(*args, cwd=tmp_path)
    assert_one_line_error(run, 1, f"fmfast: error: {missing}: No such file or directory")


@pytest.mark.parametrize("command", [["inspect"], ["evaluate", "{model}"], ["convert", "--format", "libsvm"]])
def test_a_directory_given_as_a_file_is_named(tmp_path, trained, command):
    _, model = trained
    directory = tmp_path / "a-directory"
    directory.mkdir()
    args = [part.format(model=model) for part in command]
    if args[0] == "convert":
        args = ["convert", str(directory), str(tmp_path / "out.recordio"), *args[1:]]
    else:
        args.append(str(directory))
    run = fmfast_cli(*args)
    # The RecordIO readers take a directory as a shard set; converters want a file.
    reason = ": Is a directory" if args[0] == "convert" else " holds no RecordIO files"
    assert_one_line_error(run, 1, f"fmfast: error: {directory}{reason}")


def test_a_corrupt_validation_file_is_named_before_training(tmp_path, trained):
    data, _ = trained
    corrupt = tmp_path / "validation.recordio"
    corrupt.write_bytes(b"\0" * 12)
    run = fmfast_cli("train", data, tmp_path / "out.fmfast", "--validation", corrupt)
    assert run.returncode == 1 and run.stdout == ""
    assert run.stderr.startswith(f"fmfast: error: {corrupt}: record 0 at byte offset 0: bad magic")
    assert run.stderr.count("\n") == 1


@pytest.mark.parametrize(
    "command",
    [
        ["train", "{data}", "{out}/model.fmfast"],
        ["train", "{data}", "{out}/model.tar.gz", "--sagemaker"],
        ["convert", "{libsvm}", "{out}/train.recordio"],
        ["predict", "{model}", "{data}", "{out}/responses.jsonl"],
        ["demo", "--ratings", "2000", "--epochs", "1", "--out", "{out}/demo.recordio"],
        ["split", "{libsvm}", "{out}/train.csv", "test.csv"],
        ["split", "{libsvm}", "train.csv", "{out}/test.csv"],
    ],
    ids=lambda command: " ".join(part for part in command if "{" not in part),
)
@pytest.mark.parametrize("problem", ["missing", "a file"])
def test_an_output_directory_that_cannot_be_written_fails_before_any_work(
    tmp_path, trained, command, problem
):
    data, model = trained
    libsvm = tmp_path / "in.libsvm"
    libsvm.write_text("1 1:1\n0 2:1\n")
    out = tmp_path / "out"
    if problem == "a file":
        out.write_text("not a directory")
    args = [part.format(data=data, model=model, libsvm=libsvm, out=out) for part in command]
    run = fmfast_cli(*args, cwd=tmp_path)  # relative outputs would land in tmp_path
    name = Path(next(arg for arg in args if arg.startswith(str(out)))).name
    assert_one_line_error(run, 1, f"fmfast: error: {out}: No such directory to write {name} into")
    assert run.stdout == "", "nothing was trained, converted or scored"
    left = {"in.libsvm", data.name, model.name} | ({"out"} if problem == "a file" else set())
    assert {p.name for p in tmp_path.iterdir()} == left


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into any directory whatever its mode")
def test_a_read_only_output_directory_fails_before_training(tmp_path, trained):
    data, _ = trained
    out = tmp_path / "read-only"
    out.mkdir(mode=0o555)
    run = fmfast_cli("train", data, out / "model.fmfast")
    assert_one_line_error(run, 1, f"fmfast: error: {out}: Cannot create model.fmfast in this directory")


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ["-H", "epochs=zero"],
            "fmfast train: error: epochs must be an integer >= 1 and <= 4294967295, got 'zero'",
        ),
        (
            ["-H", "nosuchparam=1"],
            "fmfast train: error: argument -H/--hyperparameter: unknown hyperparameter 'nosuchparam'"
            " (fmfast train --help lists them)",
        ),
        (
            ["-H", "epochs"],
            "fmfast train: error: argument -H/--hyperparameter: expected NAME=VALUE, got 'epochs'",
        ),
        (["--preset", "nosuch"], None),
        (["-H", "factors_init_method=constant"], None),
    ],
)
def test_bad_hyperparameters_are_usage_errors_reported_before_reading(tmp_path, args, expected):
    run = fmfast_cli("train", tmp_path / "nosuch.recordio", tmp_path / "model.fmfast", *args)
    assert run.returncode == 2 and run.stderr.count("\n") == 1 and "Traceback" not in run.stderr
    assert run.stderr.startswith("fmfast train: error: ") and "nosuch.recordio" not in run.stderr
    if expected is not None:
        assert run.stderr == expected + "\n"


@pytest.mark.parametrize("port", ["99999", "0", "-1", "http"])
def test_serve_refuses_a_port_out_of_range_in_one_line(tmp_path, port):
    run = fmfast_cli("serve", tmp_path / "model.fmfast", "--port", port)
    expected = f"fmfast serve: error: argument --port: expected a port number from 1 to 65535, got '{port}'"
    assert_one_line_error(run, 2, expected)


@pytest.mark.parametrize(
    ("command", "option", "value", "least"),
    [
        (["demo"], "--ratings", "0", 1),
        (["demo"], "--seed", "-1", 0),
        (["split", "r.csv", "a.csv", "b.csv"], "--seed", "-3", 0),
        (["split", "r.csv", "a.csv", "b.csv"], "--n", "-1", 0),
        (["train", "t.recordio", "m.fmfast"], "--early-stopping-rounds", "0", 1),
        (["recommend", "m.fmfast", "c.json", "--user", "1"], "-k", "0", 1),
        (["serve", "m.fmfast"], "--max-body-bytes", "-5", 1),
        (["convert", "in.libsvm", "out.recordio"], "--n-features", "x", 1),
    ],
    ids=lambda part: part if isinstance(part, str) else None,
)
def test_counts_below_their_least_value_are_usage_errors_in_one_line(tmp_path, command, option, value, least):
    run = fmfast_cli(*command, option, value, cwd=tmp_path)
    expected = f"argument {option}: expected a whole number of at least {least}, got '{value}'"
    assert_one_line_error(run, 2, f"fmfast {command[0]}: error: {expected}")


@pytest.mark.parametrize("content", [b"{not json", b"\xd7\x23\x0a", b'{"users": [1]}', b"[]"])
def test_recommend_names_a_columns_file_it_cannot_use(tmp_path, trained, content):
    _, model = trained
    columns = tmp_path / "bad.columns.json"
    columns.write_bytes(content)
    run = fmfast_cli("recommend", model, columns, "--user", "1")
    assert run.returncode == 1 and run.stderr.count("\n") == 1
    assert run.stderr.startswith(f"fmfast: error: {columns} is not a .columns.json file: ")


def test_train_help_lists_every_hyperparameter_with_its_default_and_the_presets():
    run = fmfast_cli("train", "--help")
    assert run.returncode == 0
    listed = run.stdout.split("hyperparameters (-H")[1]
    for name, default in HYPERPARAMETERS.items():
        assert f" {name}={default}" in listed.replace("\n", " ")
    assert "movielens:" in listed and "epochs=1 " in listed
    assert set(HYPERPARAMETERS) == set(fmfast.FactorizationMachine("regressor", 1).get_params()) - {
        "predictor_type",
        "num_factors",
        "progress",
    }


def test_every_argument_of_every_command_has_help():
    commands = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    for name, parser in commands.choices.items():
        for action in parser._actions:
            assert action.help, f"fmfast {name} {action.dest} has no help"
        shown = parser.format_help()
        for action in parser._actions:
            if action.option_strings and action.default not in (None, False, [], argparse.SUPPRESS):
                assert f"(default: {action.default})" in " ".join(shown.split()), (name, action.dest)


def test_the_preset_is_the_demo_settings_and_h_overrides_it(tmp_path, trained):
    data, _ = trained
    model = tmp_path / "preset.fmfast"
    run = fmfast_cli("train", data, model, "--quiet", "--preset", "movielens", "-H", "mini_batch_size=7")
    assert run.returncode == 0, run.stderr
    params = fmfast.FactorizationMachine.load(model).get_params()
    assert params["mini_batch_size"] == 7
    assert {k: params[k] for k in DEMO_HYPERPARAMETERS if k != "mini_batch_size"} == {
        k: v for k, v in DEMO_HYPERPARAMETERS.items() if k != "mini_batch_size"
    }
    assert np.isfinite(fmfast.FactorizationMachine.load(model).V_).all()
