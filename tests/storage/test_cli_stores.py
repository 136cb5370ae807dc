"""The ``fmfast`` commands on URLs of a real S3 server: credentials and endpoint from the environment."""

from __future__ import annotations

import json

import fmfast
import fsspec
import httpx
import numpy as np
import pytest
import scipy.sparse as sp
from fmfast.cli import main
from interop.test_serve import serve_command


def test_convert_train_evaluate_predict_inspect_on_s3(s3, tmp_path, capsys):
    root, options = s3
    fs = fsspec.filesystem("s3", **options)
    X = sp.random(2_000, 30, density=0.1, format="csr", dtype=np.float32, random_state=0)
    y = np.random.default_rng(0).integers(1, 6, 2_000)
    lines = [
        " ".join([f"{label}", *(f"{j}:{v:g}" for j, v in zip(row.indices, row.data, strict=True))])
        for label, row in zip(y, X, strict=True)
    ]
    fs.pipe(f"{root}/train.svm", ("\n".join(lines) + "\n").encode())

    assert main(["convert", f"{root}/train.svm", f"{root}/train.recordio", "--zero-based", "--quiet"]) == 0
    assert f"wrote 2,000 records to {root}/train.recordio" in capsys.readouterr().out
    X_back, y_back = fmfast.read_recordio(f"{root}/train.recordio", storage_options=options)
    np.testing.assert_array_equal(y_back, y)

    model = f"{root}/models/model.fmfast"
    assert (
        main(["train", f"{root}/train.recordio", model, "--num-factors", "4", "--quiet", "-H", "epochs=2"])
        == 0
    )
    assert f"wrote {model}" in capsys.readouterr().out
    local = fmfast.FactorizationMachine.load(model, storage_options=options)

    assert main(["evaluate", model, f"{root}/train.recordio"]) == 0
    assert json.loads(capsys.readouterr().out) == pytest.approx(local.evaluate(X_back, y_back))

    assert main(["predict", model, f"{root}/train.recordio", f"{root}/scores.jsonl"]) == 0
    responses = fmfast.parse_response(fs.cat(f"{root}/scores.jsonl"), "application/jsonlines")
    scores = [p["score"] for p in responses["predictions"]]
    np.testing.assert_allclose(scores, local.predict_score(X_back), rtol=1e-6)

    assert main(["inspect", f"{root}/train.recordio", "--quiet"]) == 0
    assert "records:        2,000" in capsys.readouterr().out

    assert main(["train", f"{root}/train.recordio", f"{root}/model.tar.gz", "--sagemaker", "--quiet"]) == 0
    artifact = fmfast.FactorizationMachine.from_sagemaker(f"{root}/model.tar.gz", storage_options=options)
    assert artifact.feature_dim_ == 30


def test_errors_of_a_store_are_one_line_naming_the_url(s3, capsys):
    root, _ = s3
    assert main(["inspect", f"{root}/missing.recordio", "--quiet"]) == 1
    assert capsys.readouterr().err == f"fmfast: error: {root}/missing.recordio: No such file or directory\n"


def test_serve_a_model_on_s3(s3):
    root, options = s3
    X = sp.random(200, 10, density=0.3, format="csr", dtype=np.float32, random_state=1)
    model = fmfast.FactorizationMachine("regressor", num_factors=2, epochs=1, random_state=0)
    model.fit(X, np.ones(200)).save(f"{root}/model.fmfast", storage_options=options)
    with serve_command(f"{root}/model.fmfast") as url:  # the child inherits the environment
        body = {"instances": [{"features": X[[0]].toarray()[0].tolist()}]}
        prediction = httpx.post(f"{url}/invocations", json=body).json()["predictions"][0]
    assert prediction["score"] == pytest.approx(float(model.predict(X[[0]])[0]), rel=1e-6)
