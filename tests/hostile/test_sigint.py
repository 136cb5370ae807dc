"""Ctrl-C as users send it: a real SIGINT to a real process, in the middle of every long call.

Each case runs a child Python that builds its input, prints ``ready`` right before the long call
(or has its progress callable print it on the first report), and reports as one JSON line what
the ``KeyboardInterrupt`` left, with the time it was caught on the machine's monotonic clock, which
the parent shares: the latency is that minus the moment the parent sent the signal. Every call is
sized to run for seconds uninterrupted, so a stop that waits for the call to end fails the bound.
"""

from __future__ import annotations

import inspect
import json
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import fmfast
import numpy as np
import pytest
import scipy.sparse as sp

#: Ctrl-C must stop every long call within this many seconds.
LATENCY_S = 1.0

PRELUDE = """
import json, os, sys, time
import numpy as np, scipy.sparse as sp, fmfast

def ready(*_):
    if not getattr(ready, "said", False):
        ready.said = True
        print("ready", flush=True)

def report(**what):
    print(json.dumps({"caught": time.monotonic(), **what}), flush=True)
"""


def rows(n: int, d: int = 5000, per_row: int = 10, seed: int = 0) -> tuple[sp.csr_array, np.ndarray]:
    """``n`` rows of ``per_row`` ones in random columns of ``d``, and random labels."""
    rng = np.random.default_rng(seed)
    indices = np.sort(rng.integers(0, d, size=(n, per_row)), axis=1).ravel()
    indptr = np.arange(0, n * per_row + 1, per_row)
    X = sp.csr_array((np.ones(n * per_row, np.float32), indices, indptr), shape=(n, d))
    X.sum_duplicates()
    return X, rng.random(n).astype(np.float32)


#: What every child starts with: the helpers above, and ``rows`` itself.
PRELUDE += "\n" + inspect.getsource(rows)


def interrupt(code: str, *, cwd: Path, delay: float = 0.5) -> dict[str, Any]:
    """Run ``code`` in a child, send SIGINT ``delay`` seconds after it says ``ready``; what it reports.

    The report gains ``latency``: seconds from the signal to the ``KeyboardInterrupt`` caught.
    """
    child = subprocess.Popen(
        [sys.executable, "-c", PRELUDE + textwrap.dedent(code)],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        line = child.stdout.readline()
        assert line == "ready\n", line + child.communicate(timeout=60)[1]
        time.sleep(delay)
        sent = time.monotonic()
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=120)
    finally:
        child.kill()
    assert child.returncode == 0 and out, err
    report = json.loads(out.splitlines()[-1])
    report["latency"] = report["caught"] - sent
    return report


@pytest.mark.parametrize(("n_threads", "deterministic"), [(1, True), (2, True), (2, False)])
def test_ctrl_c_stops_an_in_memory_fit_at_the_last_complete_epoch(tmp_path, n_threads, deterministic) -> None:
    report = interrupt(
        f"""
        X, y = rows(200_000)
        model = fmfast.FactorizationMachine(
            "regressor", 64, epochs=40, n_threads={n_threads}, deterministic={deterministic}
        )
        ready()
        try:
            model.fit(X, y)
        except KeyboardInterrupt:
            report(
                epochs=len(model.history_),
                updates=model.n_updates_,
                finite=bool(np.isfinite(model.predict(X[:100])).all()),
            )
        """,
        cwd=tmp_path,
        delay=1.5,  # past the first epoch, however busy the machine
    )
    assert report["latency"] < LATENCY_S
    assert 1 <= report["epochs"] < 40
    assert report["updates"] == report["epochs"] * 200 and report["finite"]


def test_ctrl_c_before_the_first_epoch_ends_leaves_the_model_unfitted(tmp_path) -> None:
    report = interrupt(
        """
        X, y = rows(2_000_000)
        model = fmfast.FactorizationMachine("regressor", 64, epochs=3, n_threads=1)
        ready()
        try:
            model.fit(X, y)
        except KeyboardInterrupt:
            try:
                model.predict(X[:1])
            except fmfast.InvalidInputError as err:
                report(history=model.history_, error=str(err))
        """,
        cwd=tmp_path,
        delay=0.2,
    )
    assert report["latency"] < LATENCY_S
    assert report["history"] == [] and "not fitted" in report["error"]


@pytest.mark.parametrize(
    ("eval_set", "n_threads", "deterministic"), [(False, 1, True), (True, 1, True), (False, 2, False)]
)
def test_ctrl_c_stops_a_fit_from_recordio_at_the_last_complete_epoch(
    tmp_path, eval_set, n_threads, deterministic
) -> None:
    # Epoch by epoch from Python, each streamed in reads of 262,000 rows, then 38,000: the signal
    # falls early in a big read, which takes seconds with 256 factors, and all three loops (epochs,
    # reads, the core's) must stop promptly.
    report = interrupt(
        f"""
        X, y = rows(300_000)
        fmfast.write_recordio("train.recordio", X, y)
        def progress(done):
            if done > 300_000:
                ready()
        model = fmfast.FactorizationMachine(
            "regressor", 256, epochs=40, n_threads={n_threads}, deterministic={deterministic}, progress=progress
        )
        try:
            model.fit("train.recordio", eval_set=(X[:1000], y[:1000]) if {eval_set} else None)
        except KeyboardInterrupt:
            report(epochs=len(model.history_), updates=model.n_updates_, eval="eval_rmse" in model.history_[-1])
        """,
        cwd=tmp_path,
    )
    assert report["latency"] < LATENCY_S
    assert 1 <= report["epochs"] < 40 and report["updates"] == report["epochs"] * 300
    assert report["eval"] == eval_set


def test_ctrl_c_stops_fmfast_train_which_writes_the_last_complete_epoch(tmp_path) -> None:
    X, y = rows(600_000)
    fmfast.write_recordio(tmp_path / "train.recordio", X, y)
    command = [sys.executable, "-m", "fmfast.cli", "train", "train.recordio", "model.fmfast"]
    train = subprocess.Popen(
        [*command, "--num-factors", "64", "-H", "epochs=40"], cwd=tmp_path, stderr=subprocess.PIPE, text=True
    )
    try:
        assert train.stderr is not None
        train.stderr.read(1)  # the progress bar: training has started
        time.sleep(2.5)
        sent = time.monotonic()
        train.send_signal(signal.SIGINT)
        train.wait(timeout=120)
        latency = time.monotonic() - sent
    finally:
        train.kill()
    assert latency < LATENCY_S + 0.5  # and the CLI writes the model
    epochs = len(fmfast.FactorizationMachine.load(tmp_path / "model.fmfast").history_)
    assert train.returncode == 130 and 1 <= epochs < 40
    assert f"after {epochs} complete epochs" in train.stderr.read()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.fmfast", "train.recordio"]


def test_ctrl_c_stops_write_recordio_and_leaves_no_file(tmp_path) -> None:
    # Sized so that the signal lands mid-write: with direct I/O, 3M rows took 0.15 s on an idle VM,
    # and a signal 0.1 s after the first progress report came after the file was complete.
    report = interrupt(
        """
        X, y = rows(6_000_000, per_row=4)
        done = []
        def progress(n):
            done.append(n)
            ready()
        try:
            fmfast.write_recordio("out/train.recordio", X, y, n_threads=1, progress=progress)
        except KeyboardInterrupt:
            report(done=done[-1], total=X.shape[0], left=os.listdir("out"))
        """,
        cwd=_with_dir(tmp_path, "out"),
        delay=0.05,
    )
    assert report["latency"] < LATENCY_S
    assert report["done"] < report["total"] and report["left"] == []


def test_ctrl_c_stops_read_recordio(tmp_path) -> None:
    report = interrupt(
        """
        X, y = rows(3_000_000, per_row=4)
        fmfast.write_recordio("train.recordio", X, y)
        del X, y
        done = []
        def progress(n):
            done.append(n)
            ready()
        try:
            fmfast.read_recordio("train.recordio", n_threads=1, progress=progress)
        except KeyboardInterrupt:
            report(done=done[-1], total=3_000_000)
        """,
        cwd=tmp_path,
        delay=0.1,
    )
    assert report["latency"] < LATENCY_S
    assert report["done"] < report["total"]


@pytest.mark.parametrize("kind", ["csv", "libsvm"])
def test_ctrl_c_stops_convert_and_leaves_no_file(tmp_path, kind) -> None:
    report = interrupt(
        f"""
        import fmfast.recordio.convert
        rng = np.random.default_rng(0)
        n = 100_000  # lines, written 40 times over
        users, items, ratings = rng.integers(0, 10_000, n), rng.integers(0, 5_000, n), rng.integers(1, 6, n)
        if "{kind}" == "csv":
            lines = np.char.add(np.char.add(users.astype(str), ","), np.char.add(items.astype(str), ","))
            lines = np.char.add(lines, ratings.astype(str))
        else:
            lines = np.char.add(np.char.add(ratings.astype(str), " "), users.astype(str))
            lines = np.char.add(np.char.add(lines, ":1 "), (items + 10_000).astype(str))
            lines = np.char.add(lines, ":1")
        with open("source", "w") as out:
            out.write(40 * ("\\n".join(lines.tolist()) + "\\n"))
        del lines
        done = []
        def progress(n):
            done.append(n)
            ready()
        try:
            fmfast.recordio.convert.convert_file("source", "out/converted", format="{kind}", n_threads=1, progress=progress)
        except KeyboardInterrupt:
            report(done=done[-1], total=2 * os.path.getsize("source"), left=os.listdir("out"))
        """,
        cwd=_with_dir(tmp_path, "out"),
        delay=0.05,
    )
    assert report["latency"] < LATENCY_S
    assert report["done"] < report["total"] and report["left"] == []


def test_ctrl_c_stops_recommend(tmp_path) -> None:
    report = interrupt(
        """
        n_users, n_items = 200_000, 20_000
        model = fmfast.FactorizationMachine("regressor", 64, epochs=1)
        model.fit(*rows(1000, d=n_users + n_items))
        from fmfast.recsys.recommend import one_hot, recommend
        users = one_hot(np.arange(n_users), 0, n_users + n_items)
        items = one_hot(np.arange(n_items), n_users, n_users + n_items)
        done = []
        def progress(n):
            done.append(n)
            ready()
        try:
            recommend(model, users, items, 10, n_threads=1, progress=progress)
        except KeyboardInterrupt:
            report(done=done[-1], total=n_users)
        """,
        cwd=tmp_path,
        delay=0.1,
    )
    assert report["latency"] < LATENCY_S
    assert report["done"] < report["total"]


def test_a_sigint_handler_of_the_users_own_is_honoured(tmp_path) -> None:
    # Python's own handler runs, so one that does not raise lets the call finish.
    report = interrupt(
        """
        import signal
        seen = []
        signal.signal(signal.SIGINT, lambda *_: seen.append(time.monotonic()))
        X, y = rows(200_000)
        model = fmfast.FactorizationMachine("regressor", 64, epochs=15, n_threads=1)
        ready()
        model.fit(X, y)
        print(json.dumps({"caught": seen[0], "epochs": len(model.history_)}))
        """,
        cwd=tmp_path,
    )
    assert report["latency"] < LATENCY_S and report["epochs"] == 15


def _with_dir(root: Path, name: str) -> Path:
    """``root``, after making the empty folder ``root/name`` where a child writes its output."""
    (root / name).mkdir()
    return root


@pytest.mark.parametrize(("n_threads", "chains"), [(1, 1), (2, 1), (2, 3)])
def test_ctrl_c_stops_an_mcmc_fit_between_sweeps_keeping_its_samples(tmp_path, n_threads, chains) -> None:
    report = interrupt(
        f"""
        X, y = rows(200_000)
        model = fmfast.FactorizationMachine(
            "regressor", 8, epochs=1000, optimizer="mcmc", posterior_samples=1000, n_threads={n_threads},
            num_chains={chains}
        )
        ready()
        try:
            model.fit(X, y)
        except KeyboardInterrupt:
            report(
                sweeps=len(model.history_),
                kept=0 if model._posterior is None else len(model._posterior.bias),
                finite=bool(np.isfinite(model.predict(X[:100])).all()),
            )
        """,
        cwd=tmp_path,
        delay=1.5,  # past the first sweep, however busy the machine
    )
    assert report["latency"] < LATENCY_S
    assert 1 <= report["sweeps"] < 1000
    # Every chain's samples of the complete sweeps.
    assert report["kept"] == report["sweeps"] * chains and report["finite"]
