"""SageMaker FM model artifacts: golden model.tar.gz, predictions, writing, hostile archives."""

from __future__ import annotations

import gzip
import io
import json
import tarfile
import zipfile
import zlib
from pathlib import Path

import fmfast
import numpy as np
import pytest
import scipy.sparse as sp
from fmfast.interop.artifact import (
    SageMakerFM,
    fm_symbol_json,
    model_algo_bytes,
    read_sagemaker_model,
    sagemaker_model_bytes,
    write_sagemaker_model,
)

GOLDEN = Path(__file__).parent.parent / "data" / "mxnet-golden"
PTYPES = ["binary_classifier", "regressor"]


def npz(name: str) -> dict[str, np.ndarray]:
    with np.load(GOLDEN / "truth" / f"{name}.npz", allow_pickle=False) as z:
        return {key: z[key] for key in z}


def forward_batch(ptype: str, suffix: str = "") -> tuple[sp.csr_array, dict[str, np.ndarray]]:
    f = npz(f"forward_{ptype}{suffix}")
    X = sp.csr_array((f["x_csr_data"], f["x_csr_indices"], f["x_csr_indptr"]), shape=tuple(f["x_shape"]))
    return X, f


def assert_fm_dense(model: SageMakerFM) -> None:
    truth = npz("fm_dense")
    assert model.V.dtype == np.float32 and model.w.dtype == np.float32
    np.testing.assert_array_equal(model.V, truth["arg:v"])
    np.testing.assert_array_equal(model.w, truth["arg:w1_weight"][:, 0])
    assert model.w0 == float(truth["arg:w0_weight"][0])
    assert (model.feature_dim, model.num_factors) == (50, 4)


@pytest.mark.parametrize("ptype", PTYPES)
def test_golden_tar_gz_loads_and_predicts(ptype):
    model = read_sagemaker_model(GOLDEN / "sagemaker" / ptype / "model.tar.gz")
    assert_fm_dense(model)
    assert model.predictor_type == ptype
    assert model.hyperparameters == {"feature_dim": 50, "num_factors": 4, "predictor_type": ptype}
    X, f = forward_batch(ptype)
    np.testing.assert_allclose(model.predict(X), f["pred_numpy"][:, 0], rtol=0, atol=1e-5)
    np.testing.assert_allclose(model.predict(f["x_dense"]), f["pred_numpy"][:, 0], rtol=0, atol=1e-5)
    np.testing.assert_allclose(model.score(X), f["score_numpy"][:, 0], rtol=1e-6, atol=1e-5)
    np.testing.assert_allclose(model.predict(X), f["pred_mxnet"][:, 0], rtol=1e-5, atol=2e-6)


@pytest.mark.parametrize("ptype", PTYPES)
def test_model_algo_zip_and_extracted_directory(ptype, tmp_path):
    source = GOLDEN / "sagemaker" / ptype / "model_algo-1"
    assert_fm_dense(read_sagemaker_model(source))
    assert read_sagemaker_model(source.read_bytes()).predictor_type == ptype
    # the AWS notebook's layout: unzip, rename to model-symbol.json / model-0000.params
    with zipfile.ZipFile(source) as archive:
        (tmp_path / "model-symbol.json").write_bytes(archive.read("symbol.json"))
        (tmp_path / "model-0000.params").write_bytes(archive.read("params"))
    model = read_sagemaker_model(tmp_path)  # no meta.json: the symbol's head op decides
    assert model.predictor_type == ptype
    assert_fm_dense(model)


def test_bare_params_file_needs_a_predictor_type():
    params = GOLDEN / "params" / "fm_dense.params"
    with pytest.raises(fmfast.ModelFormatError, match="predictor_type="):
        read_sagemaker_model(params)
    assert_fm_dense(read_sagemaker_model(params, predictor_type="regressor"))


def test_unprefixed_names():
    model = read_sagemaker_model(GOLDEN / "params" / "fm_noprefix.params", predictor_type="regressor")
    assert_fm_dense(model)


@pytest.mark.parametrize("ptype", PTYPES)
def test_row_sparse_params_predict_like_mxnet(ptype, tmp_path):
    archive = tmp_path / "model_algo-1"
    with zipfile.ZipFile(archive, "w") as out:
        out.writestr("params", (GOLDEN / "params" / "fm_rowsparse.params").read_bytes())
        out.writestr("symbol.json", (GOLDEN / "symbols" / f"fm_{ptype}-symbol.json").read_bytes())
    model = read_sagemaker_model(archive)
    truth = npz("fm_rowsparse")
    np.testing.assert_array_equal(model.V, truth["arg:v__dense"])
    np.testing.assert_array_equal(model.w, truth["arg:w1_weight__dense"][:, 0])
    assert np.count_nonzero(model.V.any(axis=1)) == 6  # missing rows are zeros
    X, _ = forward_batch(ptype)
    f = npz(f"forward_{ptype}_rowsparse_params")
    np.testing.assert_allclose(model.predict(X), f["pred_numpy"][:, 0], rtol=0, atol=1e-5)
    np.testing.assert_allclose(model.predict(X), f["pred_mxnet"][:, 0], rtol=1e-5, atol=1e-6)


def test_empty_row_predicts_the_bias():
    model = read_sagemaker_model(GOLDEN / "sagemaker" / "binary_classifier" / "model.tar.gz")
    empty = sp.csr_array((1, 50), dtype=np.float32)
    np.testing.assert_allclose(model.predict(empty), [0.0372752], atol=1e-7)


@pytest.mark.parametrize("ptype", PTYPES)
def test_symbol_json_equals_golden(ptype):
    golden = (GOLDEN / "symbols" / f"fm_{ptype}-symbol.json").read_text()
    generated = fm_symbol_json(50, 4, ptype)
    assert json.loads(generated) == json.loads(golden)
    assert generated == golden  # MXNet's own formatting, byte for byte


def test_symbol_json_other_sizes():
    symbol = json.loads(fm_symbol_json(1000, 16, "regressor"))
    shapes = {n["name"]: n.get("attrs", {}).get("__shape__") for n in symbol["nodes"]}
    assert shapes["v"] == "(1000, 16)" and shapes["w1_weight"] == "(1000, 1)"
    assert symbol["nodes"][symbol["heads"][0][0]]["op"] == "LinearRegressionOutput"


def _deflate_like_golden() -> bool:
    """Whether this zlib compresses the golden params member to the same bytes (zlib-ng may not)."""
    with zipfile.ZipFile(GOLDEN / "sagemaker" / "regressor" / "model_algo-1") as archive:
        info = archive.getinfo("params")
    raw = (GOLDEN / "sagemaker" / "regressor" / "model_algo-1").read_bytes()
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    compressor = zlib.compressobj(6, zlib.DEFLATED, -15)
    ours = compressor.compress((GOLDEN / "params" / "fm_dense.params").read_bytes()) + compressor.flush()
    return ours == raw[start : start + info.compress_size]


@pytest.mark.parametrize("ptype", PTYPES)
def test_written_artifact_equals_golden(ptype):
    model = read_sagemaker_model(GOLDEN / "sagemaker" / ptype / "model.tar.gz")
    algo = model_algo_bytes(model)
    with (
        zipfile.ZipFile(io.BytesIO(algo)) as ours,
        zipfile.ZipFile(GOLDEN / "sagemaker" / ptype / "model_algo-1") as gold,
    ):
        assert ours.namelist() == gold.namelist() == ["symbol.json", "params", "meta.json"]
        for name in gold.namelist():
            assert ours.read(name) == gold.read(name)
            assert ours.getinfo(name).date_time == (2020, 1, 1, 0, 0, 0)
    if not _deflate_like_golden():
        pytest.skip("this zlib deflates differently from the one that wrote the golden files")
    assert algo == (GOLDEN / "sagemaker" / ptype / "model_algo-1").read_bytes()
    assert sagemaker_model_bytes(model) == (GOLDEN / "sagemaker" / ptype / "model.tar.gz").read_bytes()


def test_write_read_round_trip_and_determinism(tmp_path):
    rng = np.random.default_rng(3)
    model = SageMakerFM(
        w0=0.25,
        w=rng.standard_normal(30),
        V=rng.standard_normal((30, 5)),
        predictor_type="binary_classifier",
        hyperparameters={"epochs": "10", "mini_batch_size": 1000},
    )
    path = tmp_path / "model.tar.gz"
    write_sagemaker_model(path, model)
    assert [p.name for p in tmp_path.iterdir()] == ["model.tar.gz"]
    again = read_sagemaker_model(path)
    np.testing.assert_array_equal(again.V, model.V)
    np.testing.assert_array_equal(again.w, model.w)
    assert again.w0 == model.w0 == 0.25
    assert again.predictor_type == "binary_classifier"
    assert again.hyperparameters == {
        "feature_dim": 30,
        "num_factors": 5,
        "predictor_type": "binary_classifier",
        "epochs": "10",
        "mini_batch_size": 1000,
    }
    first = path.read_bytes()
    write_sagemaker_model(path, again)
    assert path.read_bytes() == first
    with tarfile.open(path) as tar:
        assert tar.getnames() == ["model_algo-1"]
    X = sp.random(20, 30, density=0.2, format="csr", random_state=1, dtype=np.float32)
    np.testing.assert_array_equal(again.predict(X), model.predict(X))


def test_model_is_frozen_and_validated():
    model = SageMakerFM(w0=0.0, w=np.zeros(3), V=np.zeros((3, 2)), predictor_type="regressor")
    with pytest.raises(AttributeError):
        model.w0 = 1.0  # type: ignore[misc]
    with pytest.raises(ValueError, match="read-only"):
        model.V[0, 0] = 1.0
    with pytest.raises(fmfast.InvalidInputError, match="predictor_type"):
        SageMakerFM(w0=0.0, w=np.zeros(3), V=np.zeros((3, 2)), predictor_type="multiclass")
    with pytest.raises(fmfast.InvalidInputError, match="4 weights but V has 3 rows"):
        SageMakerFM(w0=0.0, w=np.zeros(4), V=np.zeros((3, 2)), predictor_type="regressor")
    with pytest.raises(fmfast.InvalidInputError, match="columns"):
        model.predict(np.zeros((1, 4)))


# ---------------------------------------------------------------------------------------------
# Hostile archives: refused, nothing written.


def tar_gz(members: list[tarfile.TarInfo], contents: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for info in members:
            data = contents.get(info.name)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buffer.getvalue()


def regular(name: str, data: bytes) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info


def assert_refused(tmp_path: Path, data: bytes, message: str) -> None:
    archive = tmp_path / "work" / "model.tar.gz"
    archive.parent.mkdir()
    archive.write_bytes(data)
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    with pytest.raises(fmfast.ModelFormatError, match=message):
        read_sagemaker_model(archive)
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before


def test_tar_with_parent_path_is_refused(tmp_path):
    evil = b"owned"
    data = tar_gz([regular("../evil", evil)], {"../evil": evil})
    assert_refused(tmp_path, data, r"'\.\./evil' leaves the archive")


def test_tar_with_absolute_path_is_refused(tmp_path):
    data = tar_gz([regular("/tmp/evil", b"x")], {"/tmp/evil": b"x"})
    assert_refused(tmp_path, data, "absolute path")


def test_tar_with_symlink_is_refused(tmp_path):
    link = tarfile.TarInfo("model_algo-1")
    link.type = tarfile.SYMTYPE
    link.linkname = "/etc/passwd"
    assert_refused(tmp_path, tar_gz([link], {}), "link or special file")


def test_tar_with_hardlink_is_refused(tmp_path):
    link = tarfile.TarInfo("model_algo-1")
    link.type = tarfile.LNKTYPE
    link.linkname = "params"
    assert_refused(tmp_path, tar_gz([link], {}), "link or special file")


def test_zip_with_parent_path_and_symlink_are_refused(tmp_path):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("../../evil", b"x")
    with pytest.raises(fmfast.ModelFormatError, match="leaves the archive"):
        read_sagemaker_model(buffer.getvalue())
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        info = zipfile.ZipInfo("params")
        info.create_system = 3
        info.external_attr = (0o120777) << 16  # a symlink
        archive.writestr(info, b"/etc/passwd")
    with pytest.raises(fmfast.ModelFormatError, match="link or special file"):
        read_sagemaker_model(buffer.getvalue())


def test_oversized_members_are_refused():
    golden = (GOLDEN / "sagemaker" / "regressor" / "model.tar.gz").read_bytes()
    with pytest.raises(fmfast.ModelFormatError, match="exceeds the 1000-byte limit"):
        read_sagemaker_model(golden, max_bytes=1000)
    algo = (GOLDEN / "sagemaker" / "regressor" / "model_algo-1").read_bytes()
    with pytest.raises(fmfast.ModelFormatError, match="exceeds the 1000-byte limit"):
        read_sagemaker_model(algo, max_bytes=1000)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"hello world", "not a model.tar.gz"),
        (b"\x1f\x8b\x08\x00garbage", "not a readable gzip"),
        (gzip.compress(b"x" * 600), "not a readable tar"),
        (b"PK\x03\x04garbage", "not a readable zip"),
    ],
)
def test_garbage_is_refused(data, message):
    with pytest.raises(fmfast.ModelFormatError, match=message):
        read_sagemaker_model(data)


def test_truncated_artifact_is_refused():
    golden = (GOLDEN / "sagemaker" / "regressor" / "model.tar.gz").read_bytes()
    for cut in range(0, len(golden), 97):
        with pytest.raises(fmfast.ModelFormatError):
            read_sagemaker_model(golden[:cut])


def zip_of(**members: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(name.replace("_json", ".json"), data)
    return buffer.getvalue()


def test_inconsistent_contents_are_refused():
    params = (GOLDEN / "params" / "fm_dense.params").read_bytes()
    classifier = (GOLDEN / "symbols" / "fm_binary_classifier-symbol.json").read_bytes()
    meta = json.dumps({"training_parameters": {"feature_dim": 50, "predictor_type": "regressor"}}).encode()
    with pytest.raises(fmfast.ModelFormatError, match=r"symbol\.json's head is a binary_classifier"):
        read_sagemaker_model(zip_of(params=params, symbol_json=classifier, meta_json=meta))
    meta = json.dumps({"training_parameters": {"feature_dim": "60", "predictor_type": "regressor"}}).encode()
    with pytest.raises(fmfast.ModelFormatError, match="feature_dim is 60 but the weights have 50"):
        read_sagemaker_model(zip_of(params=params, meta_json=meta))
    with pytest.raises(fmfast.ModelFormatError, match="not valid JSON"):
        read_sagemaker_model(zip_of(params=params, meta_json=b"{"))
    with pytest.raises(fmfast.ModelFormatError, match="no params file"):
        read_sagemaker_model(zip_of(meta_json=meta))
    lacking = fmfast.write_mxnet_params({"arg:v": np.zeros((2, 2), np.float32)})
    with pytest.raises(fmfast.ModelFormatError, match="lack the FM weights"):
        read_sagemaker_model(zip_of(params=lacking), predictor_type="regressor")


def test_gzip_header_is_deterministic():
    model = SageMakerFM(w0=1.0, w=np.ones(2), V=np.ones((2, 1)), predictor_type="regressor")
    data = sagemaker_model_bytes(model)
    assert data[:10] == b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"  # no name, mtime 0
    assert gzip.decompress(data)[257:263] == b"ustar\x00"
