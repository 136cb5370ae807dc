"""Progress bars as users see them: real tqdm bars, drawn on the captured stderr."""

from __future__ import annotations

from pathlib import Path

import fmfast
import numpy as np
import scipy.sparse as sp
from fmfast import FactorizationMachine
from fmfast.convert import convert_libsvm
from fmfast.recommend import one_hot, recommend


def bars(stderr: str) -> list[str]:
    """The last state of every bar drawn: tqdm redraws a bar after ``\\r`` and ends it with a newline."""
    return [line.rsplit("\r", 1)[-1] for line in stderr.split("\n") if line]


def data(n: int = 20_000, d: int = 50) -> tuple[sp.csr_array, np.ndarray]:
    rng = np.random.default_rng(0)
    X = sp.random_array((n, d), density=0.1, rng=rng, format="csr", dtype=np.float32)
    return X, rng.random(n).astype(np.float32)


def test_every_bar_names_its_unit_the_same_way(tmp_path: Path, capsys) -> None:
    X, y = data()
    fmfast.write_recordio(tmp_path / "train.recordio", X, y, progress=True)
    fmfast.read_recordio(tmp_path / "train.recordio", progress=True)
    (tmp_path / "train.libsvm").write_text("1 1:1 3:2\n0 2:1\n" * 1000)
    convert_libsvm(tmp_path / "train.libsvm", tmp_path / "libsvm.recordio", progress=True)
    model = FactorizationMachine("regressor", 4).fit(X, y)
    recommend(model, one_hot(range(30), 0, 50), one_hot(range(20), 30, 50), 5, progress=True)
    written, read, converted, recommended = bars(capsys.readouterr().err)
    assert "20.0k/20.0k" in written and "rows/s" in written
    assert "20.0k" in read and "records/s" in read
    assert "32.0k/32.0k" in converted and "B/s" in converted
    assert "30.0/30.0" in recommended and "queries/s" in recommended
