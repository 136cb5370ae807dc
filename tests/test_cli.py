"""The ``fmfast`` command line, run end to end in a temporary directory."""

from __future__ import annotations

import fmfast
import numpy as np
import scipy.sparse as sp
from fmfast.cli import main


def test_demo_round_trips_generated_ratings(tmp_path, capsys):
    out = tmp_path / "demo.recordio"
    assert main(["demo", "--ratings", "5000", "--quiet", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "identical: True" in printed
    X, y = fmfast.read_recordio(out)
    assert X.shape == (5000, 943 + 1682) and set(np.unique(y)) <= {1, 2, 3, 4, 5}
    assert (X.sum(axis=1) == 2).all()


def test_convert_npz_then_inspect(tmp_path, capsys):
    X = sp.random(50, 8, density=0.3, format="csr", dtype=np.float32, random_state=0)
    sp.save_npz(tmp_path / "X.npz", X)
    np.save(tmp_path / "y.npy", np.arange(50, dtype=np.float32) % 2)
    target = tmp_path / "train.recordio"
    code = main(
        ["convert", str(tmp_path / "X.npz"), str(target), "--labels", str(tmp_path / "y.npy"), "--quiet"]
    )
    assert code == 0
    assert main(["inspect", str(target)]) == 0
    printed = capsys.readouterr().out
    assert "records:        50" in printed and "feature_dim:    8" in printed
    assert "label values:   0, 1" in printed and "can train on this file" in printed


def test_inspect_flags_what_fm_cannot_train_on(tmp_path, capsys):
    target = tmp_path / "f64.recordio"
    fmfast.write_recordio(target, np.eye(3), dtype="float64")
    assert main(["inspect", str(target)]) == 1
    printed = capsys.readouterr().out
    assert "features are float64" in printed and "no label" in printed


def test_errors_are_reported_not_raised(tmp_path, capsys):
    (tmp_path / "bad.recordio").write_bytes(b"\0" * 12)
    assert main(["inspect", str(tmp_path / "bad.recordio")]) == 2
    assert "bad magic" in capsys.readouterr().err
