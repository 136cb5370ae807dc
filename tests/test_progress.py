"""Progress bars as users see them: real tqdm bars, drawn on the captured stderr."""

from __future__ import annotations

from pathlib import Path

import fmfast
import numpy as np
import pytest
import scipy.sparse as sp
from fmfast import FactorizationMachine
from fmfast.cli import main
from fmfast.recordio.convert import convert_libsvm
from fmfast.recsys.recommend import one_hot, recommend


def bars(stderr: str) -> list[str]:
    """The last state of every bar drawn: tqdm redraws a bar after ``\\r`` and ends it with a newline."""
    return [line.rsplit("\r", 1)[-1] for line in stderr.split("\n") if line]


def data(n: int = 20_000, d: int = 50) -> tuple[sp.csr_array, np.ndarray]:
    rng = np.random.default_rng(0)
    X = sp.random_array((n, d), density=0.1, rng=rng, format="csr", dtype=np.float32)
    return X, rng.random(n).astype(np.float32)


def fm(**params: object) -> FactorizationMachine:
    return FactorizationMachine("regressor", 4, epochs=5, progress=True, **params)  # type: ignore[arg-type]


@pytest.mark.parametrize("source", ["memory", "recordio", "eval_set"])
def test_a_fit_draws_one_bar_over_all_its_epochs_with_the_last_metrics(tmp_path, capsys, source) -> None:
    X, y = data()
    if source == "memory":
        fm().fit(X, y)
    elif source == "recordio":
        # Streamed: the rows of an epoch are known only once the first has ended.
        fmfast.write_recordio(tmp_path / "train.recordio", X, y)
        fm().fit(tmp_path / "train.recordio")
    else:
        fm().fit(X, y, eval_set=(X[:100], y[:100]))
    (bar,) = bars(capsys.readouterr().err)
    assert bar.startswith("epoch 5/5: 100%") and "100k/100k" in bar and "rows/s" in bar
    assert "rmse=" in bar and ("eval_rmse=" in bar) == (source == "eval_set")


def test_partial_fit_draws_one_bar_for_its_epoch(capsys) -> None:
    model = fm().set_params(progress=False).fit(*data())
    model.set_params(progress=True).partial_fit(*data())
    (bar,) = bars(capsys.readouterr().err)
    assert bar.startswith("epoch 1/1: 100%") and "20.0k/20.0k" in bar and "rmse=" in bar


def test_every_bar_names_its_unit_the_same_way(tmp_path: Path, capsys) -> None:
    X, y = data()
    fmfast.write_recordio(tmp_path / "train.recordio", X, y, progress=True)
    fmfast.read_recordio(tmp_path / "train.recordio", progress=True)
    batches = list(fmfast.iter_recordio(tmp_path / "train.recordio", 5_000, progress=True))
    (tmp_path / "train.libsvm").write_text("1 1:1 3:2\n0 2:1\n" * 1000)
    convert_libsvm(tmp_path / "train.libsvm", tmp_path / "libsvm.recordio", progress=True)
    model = fm().set_params(progress=False).fit(X, y)
    recommend(model, one_hot(range(30), 0, 50), one_hot(range(20), 30, 50), 5, progress=True)
    written, read, streamed, converted, recommended = bars(capsys.readouterr().err)
    assert "20.0k/20.0k" in written and "rows/s" in written
    assert len(batches) == 4
    for bar in (read, streamed):
        assert "20.0k" in bar and "records/s" in bar
    assert "32.0k/32.0k" in converted and "B/s" in converted
    assert "30.0/30.0" in recommended and "queries/s" in recommended


def test_the_demo_draws_a_bar_per_job(tmp_path: Path, capsys) -> None:
    # Before, training from RecordIO drew a bar per epoch: 30 lines.
    main(["demo", "--ratings", "5000", "--epochs", "4", "--out", str(tmp_path / "demo.recordio")])
    written, regressor, evaluated, ranker = bars(capsys.readouterr().err)
    assert "4.20k/4.20k" in written and "800/800" in evaluated
    assert regressor.startswith("epoch 4/4: 100%") and "rmse=" in regressor
    assert ranker.startswith("epoch 4/4: 100%") and "binary_classification_accuracy=" in ranker
