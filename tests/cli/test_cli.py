"""The ``fmfast`` command line, run end to end in a temporary directory."""

from __future__ import annotations

import json
from pathlib import Path

import fmfast
import fmfast.training.loop
import numpy as np
import pytest
import scipy.sparse as sp
from fmfast.cli import main


def test_demo_runs_the_whole_pipeline(tmp_path, capsys):
    out = tmp_path / "demo.recordio"
    assert main(["demo", "--ratings", "5000", "--epochs", "3", "--quiet", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "identical: True" in printed and "top-10 for user 0:" in printed
    assert "test RMSE" in printed and "most popular: precision@10" in printed
    assert "ranking FM: precision@10" in printed and "the random 10 ratings of each user" in printed
    ratings = fmfast.recsys.datasets.synthetic_ratings(n_ratings=5000, seed=0)
    train, _ = fmfast.recsys.evaluation.leave_n_out(ratings.users, 10, seed=0)
    X, y = fmfast.read_recordio(out)
    assert X.shape == (len(train), 943 + 1682) and set(np.unique(y)) <= {1, 2, 3, 4, 5}
    np.testing.assert_array_equal(y, ratings.ratings[train])
    assert (X.sum(axis=1) == 2).all()


def train_command(train: Path, model: Path, *hyperparameters: str) -> list[str]:
    """``fmfast train`` of a quiet 4-factor model, with ``-H`` for each of ``hyperparameters``."""
    command = ["train", str(train), str(model), "--num-factors", "4", "--quiet"]
    for text in hyperparameters:
        command += ["-H", text]
    return command


def test_train_evaluate_recommend_from_converted_ratings(tmp_path, capsys):
    ratings = fmfast.recsys.datasets.synthetic_ratings(n_users=30, n_items=40, n_ratings=600, seed=1)
    lines = [
        f"u{u},i{i},{r:g}" for u, i, r in zip(ratings.users, ratings.items, ratings.ratings, strict=True)
    ]
    (tmp_path / "ratings.csv").write_text("user,item,rating\n" + "\n".join(lines) + "\n")
    train, model = tmp_path / "train.recordio", tmp_path / "model.fmfast"
    assert main(["convert", str(tmp_path / "ratings.csv"), str(train), "--quiet"]) == 0
    assert main(train_command(train, model, "epochs=3", "linear_lr=0.01")) == 0
    history = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert [entry["epoch"] for entry in history] == [0, 1, 2]
    assert main(["evaluate", str(model), str(train)]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["rmse"] == pytest.approx(
        fmfast.FactorizationMachine.load(model).evaluate(*fmfast.read_recordio(train))["rmse"]
    )
    columns = str(train) + ".columns.json"
    assert (
        main(["recommend", str(model), columns, "--user", "u3", "-k", "5", "--exclude-seen", str(train)]) == 0
    )
    result = json.loads(capsys.readouterr().out)
    seen = {f"i{i}" for u, i in zip(ratings.users, ratings.items, strict=True) if u == 3}
    recommended = [r["item"] for r in result["recommendations"]]
    assert result["user"] == "u3" and len(recommended) == 5 and not seen & set(recommended)
    assert main(["recommend", str(model), columns, "--user", "nobody"]) == 1
    assert "unknown user ids: nobody" in capsys.readouterr().err


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


@pytest.mark.parametrize("stop_at_epoch", [0, 2])
def test_ctrl_c_during_train_writes_the_last_complete_epoch(tmp_path, capsys, monkeypatch, stop_at_epoch):
    X, y = fmfast.recsys.datasets.synthetic_ratings(n_users=20, n_items=30, n_ratings=300, seed=2).one_hot()
    train, model = tmp_path / "train.recordio", tmp_path / "model.fmfast"
    fmfast.write_recordio(train, X, y)
    real_epoch = fmfast.training.loop.train_epoch
    epochs_run = []

    def epoch_then_stop(self, *args):
        if len(epochs_run) == stop_at_epoch:
            raise KeyboardInterrupt
        epochs_run.append(None)
        return real_epoch(self, *args)

    monkeypatch.setattr(fmfast.training.loop, "train_epoch", epoch_then_stop)
    assert main(train_command(train, model, "epochs=5", "random_state=0")) == 130
    captured = capsys.readouterr()
    if stop_at_epoch == 0:
        assert "nothing written" in captured.err and not model.exists()
        return
    assert "after 2 complete epochs" in captured.err
    assert [json.loads(line)["epoch"] for line in captured.out.splitlines() if line.startswith("{")] == [0, 1]
    monkeypatch.undo()
    two_epochs = fmfast.FactorizationMachine("regressor", 4, epochs=2, random_state=0).fit(train)
    np.testing.assert_array_equal(fmfast.FactorizationMachine.load(model).V_, two_epochs.V_)


def test_inspect_flags_what_fm_cannot_train_on(tmp_path, capsys):
    target = tmp_path / "f64.recordio"
    fmfast.write_recordio(target, np.eye(3), dtype="float64")
    assert main(["inspect", str(target)]) == 1
    printed = capsys.readouterr().out
    assert "features are float64" in printed and "no label" in printed


def test_errors_are_reported_not_raised(tmp_path, capsys):
    (tmp_path / "bad.recordio").write_bytes(b"\0" * 12)
    assert main(["inspect", str(tmp_path / "bad.recordio")]) == 1
    assert "bad magic" in capsys.readouterr().err


def test_predict_scores_a_recordio_file_with_a_sagemaker_model(tmp_path):
    artifact = (
        Path(__file__).parent.parent / "data" / "mxnet-golden" / "sagemaker" / "regressor" / "model.tar.gz"
    )
    truth = np.load(
        Path(__file__).parent.parent / "data" / "mxnet-golden" / "truth" / "forward_regressor.npz"
    )
    X = sp.csr_array(
        (truth["x_csr_data"], truth["x_csr_indices"], truth["x_csr_indptr"]), shape=tuple(truth["x_shape"])
    )
    fmfast.write_recordio(tmp_path / "requests.recordio", X)
    for accept, name in [("application/jsonlines", "out.jsonl"), ("application/json", "out.json")]:
        out = tmp_path / name
        assert (
            main(
                ["predict", str(artifact), str(tmp_path / "requests.recordio"), str(out), "--accept", accept]
            )
            == 0
        )
        scores = [p["score"] for p in fmfast.parse_response(out.read_bytes(), accept)["predictions"]]
        np.testing.assert_allclose(scores, truth["pred_numpy"].reshape(-1), rtol=1e-5, atol=1e-5)


def test_predict_with_a_saved_fmfast_model_and_json_requests(tmp_path):
    X = sp.random(40, 6, density=0.5, format="csr", dtype=np.float32, random_state=1)
    y = (np.arange(40) % 2).astype(np.float32)
    model = fmfast.FactorizationMachine("binary_classifier", 2, epochs=2, random_state=0).fit(X, y)
    model.save(tmp_path / "model.fmfast")
    (tmp_path / "requests.json").write_bytes(fmfast.serialize_request(X, "application/json"))
    code = main(
        [
            "predict",
            str(tmp_path / "model.fmfast"),
            str(tmp_path / "requests.json"),
            str(tmp_path / "out.jsonl"),
        ]
    )
    assert code == 0
    predictions = fmfast.parse_response((tmp_path / "out.jsonl").read_bytes(), "application/jsonlines")[
        "predictions"
    ]
    np.testing.assert_allclose([p["score"] for p in predictions], model.predict_score(X), rtol=1e-6)
    assert [p["predicted_label"] for p in predictions] == model.predict_label(X).astype(float).tolist()
