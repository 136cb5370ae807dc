"""Batch transform (``fmfast predict``) refuses what the endpoint refuses, naming the file and instance."""

from __future__ import annotations

import fmfast
import numpy as np
import pytest
import scipy.sparse as sp
from fmfast.cli import main
from fmfast.interop.transform import transform_file

BAD_VALUES = [np.nan, np.inf, -np.inf]


@pytest.fixture(scope="module")
def model():
    X = sp.random(40, 4, density=0.5, format="csr", dtype=np.float32, random_state=1)
    y = (np.arange(40) % 2).astype(np.float32)
    return fmfast.FactorizationMachine("binary_classifier", 2, epochs=1, random_state=0).fit(X, y)


@pytest.mark.parametrize("bad", BAD_VALUES)
@pytest.mark.parametrize("suffix", [".json", ".jsonl", ".recordio"])
def test_a_value_that_is_not_a_finite_float32_is_refused_by_file_instance_and_feature(
    model, tmp_path, suffix, bad
):
    X = np.ones((7, 4), dtype=np.float32)
    X[5, 2] = bad
    source, target = tmp_path / f"requests{suffix}", tmp_path / "out.jsonl"
    content_type = fmfast.interop.inference.normalize_content_type(
        fmfast.interop.transform.content_type_of(source)
    )
    source.write_bytes(fmfast.serialize_request(X, content_type))
    # batch_size 2: the RecordIO stream is read in batches, yet instances count from the file's start.
    with pytest.raises(fmfast.InvalidInputError, match=f"{source}: instance 5 feature 2 has value {bad!r}"):
        transform_file(model, source, target, batch_size=2)
    assert not target.exists()


def test_a_json_value_beyond_float32_is_refused(model, tmp_path):
    source = tmp_path / "requests.jsonl"
    source.write_text('{"features": [1, 0, 0, 0]}\n{"features": [0, -1e39, 0, 0]}\n')
    with pytest.raises(fmfast.InvalidInputError, match="instance 1 feature 1 has value -1e"):
        transform_file(model, source, tmp_path / "out.jsonl")


def test_the_predict_command_reports_the_refusal(model, tmp_path, capsys):
    model.save(tmp_path / "model.fmfast")
    (tmp_path / "requests.json").write_text('{"instances": [{"features": [1, NaN, 0, 0]}]}')
    arguments = [
        "predict",
        str(tmp_path / "model.fmfast"),
        str(tmp_path / "requests.json"),
        str(tmp_path / "o"),
    ]
    assert main(arguments) == 1
    assert "requests.json: instance 0 feature 1 has value nan" in capsys.readouterr().err
