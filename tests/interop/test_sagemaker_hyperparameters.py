"""Hyperparameters in SageMaker FM artifacts: strings as SageMaker stores them, SageMaker's keys only."""

from __future__ import annotations

import io
import json
import tarfile
import zipfile
from pathlib import Path

import fmfast
import numpy as np
import pytest
import scipy.sparse as sp
from fmfast.cli import main
from fmfast.interop.artifact import (
    FMFAST_SETTINGS,
    HYPERPARAMETERS,
    format_hyperparameters,
    parse_hyperparameters,
)
from sagemaker import FactorizationMachines
from sagemaker.amazon.hyperparameter import Hyperparameter

GOLDEN = Path(__file__).parent.parent / "data" / "mxnet-golden"
ARTIFACT = GOLDEN / "sagemaker" / "regressor" / "model.tar.gz"
#: Settings that differ from every default, of each type SageMaker declares.
SETTINGS = {
    "num_factors": 4,
    "predictor_type": "regressor",
    "epochs": 7,
    "mini_batch_size": 64,
    "bias_lr": 1,  # an int where SageMaker declares a float: the SDK sends "1.0"
    "linear_lr": 0.002,
    "factors_lr": 3e-05,
    "factors_wd": 1e-08,
    "linear_init_method": "uniform",
    "linear_init_scale": 0.5,
    "factors_init_method": "constant",
    "factors_init_value": -0.25,
    "clip_gradient": 10.0,
    "eps": None,  # not sent
}


def sdk_hyperparameters(settings: dict[str, object]) -> dict[str, str]:
    """What the SageMaker SDK 2.x sends to the training job for ``settings``.

    The estimator's constructor needs AWS credentials; its hyperparameter descriptors (type
    conversion, validation) and ``hyperparameters()`` (serialisation) are those of the SDK.
    """
    estimator = FactorizationMachines.__new__(FactorizationMachines)
    for key, value in settings.items():
        setattr(estimator, key, value)
    return estimator.hyperparameters()


def artifact_with_meta(training_parameters: dict[str, object]) -> bytes:
    """The golden regressor artifact with ``meta.json`` replaced."""
    with tarfile.open(ARTIFACT) as tar:
        handle = tar.extractfile("model_algo-1")
        assert handle is not None
        algo = handle.read()
    buffer = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(algo)) as old, zipfile.ZipFile(buffer, "w") as new:
        for name in old.namelist():
            content = old.read(name)
            if name == "meta.json":
                content = json.dumps({"training_parameters": training_parameters}).encode()
            new.writestr(name, content)
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        info = tarfile.TarInfo("model_algo-1")
        info.size = len(buffer.getvalue())
        tar.addfile(info, io.BytesIO(buffer.getvalue()))
    return out.getvalue()


def test_sagemaker_keys_are_the_sdks():
    declared = {
        name: value.data_type
        for cls in FactorizationMachines.__mro__
        for name, value in vars(cls).items()
        if isinstance(value, Hyperparameter)
    }
    assert HYPERPARAMETERS == declared


def test_every_estimator_setting_is_stored_somewhere():
    params = set(fmfast.FactorizationMachine._param_names())
    assert params == (set(HYPERPARAMETERS) - {"feature_dim"}) | set(FMFAST_SETTINGS)
    assert not set(HYPERPARAMETERS) & set(FMFAST_SETTINGS)


def test_formatting_equals_the_sdks():
    settings = {**SETTINGS, "feature_dim": 50}
    assert format_hyperparameters(settings) == sdk_hyperparameters(settings)
    assert format_hyperparameters({"bias_lr": 1, "n_threads": 3, "eps": None}) == {"bias_lr": "1.0"}


def test_from_sagemaker_reads_the_sdks_strings(tmp_path):
    strings = sdk_hyperparameters({**SETTINGS, "feature_dim": 50})
    assert all(isinstance(value, str) for value in strings.values())
    path = tmp_path / "model.tar.gz"
    path.write_bytes(artifact_with_meta(strings))
    model = fmfast.FactorizationMachine.from_sagemaker(path)
    expected = {key: value for key, value in SETTINGS.items() if value is not None}
    assert {key: model.get_params()[key] for key in expected} == expected
    assert type(model.epochs) is int and type(model.bias_lr) is float and model.bias_lr == 1.0
    golden = fmfast.FactorizationMachine.from_sagemaker(ARTIFACT)
    np.testing.assert_array_equal(model.V_, golden.V_)
    # The commands that load a model.tar.gz read it too.
    truth = np.load(GOLDEN / "truth" / "forward_regressor.npz")
    X = sp.csr_array(
        (truth["x_csr_data"], truth["x_csr_indices"], truth["x_csr_indptr"]), shape=tuple(truth["x_shape"])
    )
    fmfast.write_recordio(tmp_path / "data.recordio", X, truth["label"].reshape(-1))
    assert main(["predict", str(path), str(tmp_path / "data.recordio"), str(tmp_path / "out.jsonl")]) == 0
    scores = fmfast.parse_response((tmp_path / "out.jsonl").read_bytes(), "application/jsonlines")
    np.testing.assert_allclose(
        [p["score"] for p in scores["predictions"]], truth["pred_numpy"].reshape(-1), 1e-5
    )
    assert main(["evaluate", str(path), str(tmp_path / "data.recordio")]) == 0


def test_json_in_strings_and_plain_json_values_read_alike():
    settings = {**SETTINGS, "feature_dim": 50}
    framework_style = {key: json.dumps(value) for key, value in settings.items() if value is not None}
    assert framework_style["predictor_type"] == '"regressor"'
    from_sdk = parse_hyperparameters(sdk_hyperparameters(settings))
    assert parse_hyperparameters(framework_style) == from_sdk
    assert parse_hyperparameters({k: v for k, v in settings.items() if v is not None}) == from_sdk
    assert parse_hyperparameters({"epochs": "3", "unknown": "x", "eps": "1e-08"}) == {
        "epochs": 3,
        "eps": 1e-08,
    }
    assert parse_hyperparameters({"progress": "true"}, FMFAST_SETTINGS) == {"progress": True}


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("epochs", "ten", "meta.json 'epochs' is 'ten', not an integer"),
        ("epochs", "2.5", "meta.json 'epochs' is '2.5', not an integer"),
        ("mini_batch_size", True, "meta.json 'mini_batch_size' is True, not an integer"),
        ("bias_lr", "fast", "meta.json 'bias_lr' is 'fast', not a number"),
        ("factors_init_sigma", "[0.1]", r"meta.json 'factors_init_sigma' is '\[0.1\]', not a number"),
        ("linear_init_method", 3, "meta.json 'linear_init_method' is 3, not a string"),
        ("num_factors", "four", "meta.json 'num_factors' is 'four', not an integer"),
        ("feature_dim", "[[[[[[", r"meta.json 'feature_dim' is '\[\[\[\[\[\[', not an integer"),
    ],
)
def test_a_bad_value_is_a_typed_error_naming_the_key(key, value, message):
    data = artifact_with_meta({"feature_dim": "50", "num_factors": "4", key: value})
    with pytest.raises(fmfast.ModelFormatError, match=message):
        fmfast.FactorizationMachine.from_sagemaker(data)


def test_to_sagemaker_writes_sagemakers_keys_only_and_keeps_fmfast_settings(tmp_path):
    X = sp.random(60, 12, density=0.3, format="csr", dtype=np.float32, random_state=2)
    y = np.arange(60, dtype=np.float32) % 3
    settings = {key: value for key, value in SETTINGS.items() if key not in ("num_factors", "predictor_type")}
    model = fmfast.FactorizationMachine(
        "regressor", 3, **settings, optimizer="sgd", n_threads=1, random_state=5, progress=False
    ).fit(X, y)
    path = tmp_path / "model.tar.gz"
    model.to_sagemaker(path)
    with tarfile.open(path) as tar:
        assert tar.getnames() == ["model_algo-1", "fmfast.json"]
        algo, own = (tar.extractfile(name).read() for name in tar.getnames())  # type: ignore[union-attr]
    with zipfile.ZipFile(io.BytesIO(algo)) as archive:
        training = json.loads(archive.read("meta.json"))["training_parameters"]
    # The SDK sends its own hyperparameters only: fmfast's settings are not among them.
    assert training == sdk_hyperparameters({**model.get_params(), "feature_dim": 12})
    assert json.loads(own) == {
        "optimizer": "sgd",
        "n_threads": 1,
        "deterministic": True,
        "progress": False,
        "random_state": 5,
        "burn_in": 0,
        "posterior_samples": 1000,
        "num_chains": 1,
        "noise": "per-level",
        "als_regularization": "adaptive",
    }
    again = fmfast.FactorizationMachine.from_sagemaker(path)
    assert again.get_params() == model.get_params()
    np.testing.assert_array_equal(again.predict(X), model.predict(X))
