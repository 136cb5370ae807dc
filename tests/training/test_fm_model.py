"""FactorizationMachine: laziness, determinism, threads, the scikit-learn protocol, persistence,
errors and a learning sanity check."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import fmfast
import fmfast.recsys.datasets
import fmfast.training._labels
import numpy as np
import pytest
import scipy.sparse as sp
from fmfast import DivergenceError, FactorizationMachine, FmFastError, InvalidInputError, ModelFormatError
from fmfast._inputs import prepare_rows as _prepare_rows


def data(
    n: int = 200, d: int = 10, seed: int = 0, classifier: bool = False
) -> tuple[sp.csr_array, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = sp.random_array((n, d), density=0.4, rng=rng, format="csr", dtype=np.float32)
    y = X @ rng.normal(size=d) + rng.normal(0, 0.2, n)
    return X, ((y > np.median(y)).astype(float) if classifier else y)


def fm(**params: object) -> FactorizationMachine:
    base: dict[str, object] = {"epochs": 2, "mini_batch_size": 32, "random_state": 0, "linear_lr": 0.05}
    base.update(params)
    return FactorizationMachine(str(base.pop("predictor_type", "regressor")), 3, **base)  # type: ignore[arg-type]


def test_absent_features_stay_bit_identical() -> None:
    X, y = data()
    m = fm().fit(X, y)
    before = m._state.copy()
    Xa = X.tolil()
    Xa[:, [2, 7]] = 0
    Xa = sp.csr_array(Xa)
    Xa.eliminate_zeros()
    m.partial_fit(Xa, y)
    after = m._state
    for name in ("linear", "linear_state", "factors", "factors_state"):
        a, b = getattr(after, name)[[2, 7]], getattr(before, name)[[2, 7]]
        assert a.tobytes() == b.tobytes(), name
    assert not np.array_equal(after.linear[[0, 1]], before.linear[[0, 1]])
    assert after.bias[0] != before.bias[0]


@pytest.mark.parametrize("optimizer", ["adam", "sgd", "adagrad"])
def test_deterministic_for_a_seed_and_identical_across_thread_counts(optimizer: str) -> None:
    # Batches of 256 rows, so that up to 4 threads share each; 157 batches an epoch, so that
    # n_threads=0 times segments on all threads and on one and may switch between them.
    X, y = data(n=40_000, d=40, classifier=True)
    params = {"predictor_type": "binary_classifier", "optimizer": optimizer, "mini_batch_size": 256}
    runs = [fm(**params, n_threads=t).fit(X, y) for t in (1, 1, 2, 4, 0)]
    for other in runs[1:]:
        # Every sum is taken in row order: the tolerance is zero, not just "close".
        assert other.V_.tobytes() == runs[0].V_.tobytes()
        assert other.w_.tobytes() == runs[0].w_.tobytes()
        assert other.history_ == runs[0].history_
    different = fm(**params, random_state=1).fit(X, y)
    assert not np.array_equal(different.V_, runs[0].V_)


def test_trained_arrays_start_on_cache_lines(tmp_path: Path) -> None:
    X, y = data()
    m = fm().fit(X, y)
    m.save(tmp_path / "m.npz")
    for model in (m, m.partial_fit(X, y), FactorizationMachine.load(tmp_path / "m.npz")):
        for name in ("linear", "factors", "linear_state", "factors_state"):
            array = getattr(model._state, name)
            assert array.ctypes.data % 64 == 0 and array.flags.c_contiguous, name


def test_predict_is_identical_across_thread_counts() -> None:
    X, y = data(n=5000, d=30)
    m = fm().fit(X, y)
    one = m.set_params(n_threads=1).predict(X)
    assert m.set_params(n_threads=3).predict(X).tobytes() == one.tobytes()


def test_get_params_set_params_and_clone() -> None:
    m = fm(factors_lr=0.02, clip_gradient=1.0)
    params = m.get_params()
    assert params["num_factors"] == 3 and params["factors_lr"] == 0.02 and params["mini_batch_size"] == 32
    defaults = FactorizationMachine("regressor", 4).get_params()
    assert defaults["epochs"] == 1 and defaults["mini_batch_size"] == 1000
    assert defaults["bias_lr"] == 0.1 and defaults["linear_lr"] == 0.001 and defaults["factors_lr"] == 0.0001
    assert (
        defaults["bias_wd"] == 0.01 and defaults["linear_wd"] == 0.001 and defaults["factors_wd"] == 0.00001
    )
    assert defaults["factors_init_sigma"] is None and defaults["optimizer"] == "adam"  # 0.001 for Adam
    clone = type(m)(**m.get_params())
    assert clone.get_params() == params
    X, y = data()
    np.testing.assert_array_equal(clone.fit(X, y).predict(X), m.fit(X, y).predict(X))
    assert m.set_params(epochs=5) is m and m.epochs == 5
    with pytest.raises(InvalidInputError, match="invalid parameter 'learning_rate'"):
        m.set_params(learning_rate=0.1)
    assert "factors_lr=0.02" in repr(m)


def test_save_load_round_trip(tmp_path: Path) -> None:
    X, y = data(classifier=True)
    m = fm(predictor_type="binary_classifier", progress=lambda done: None).fit(X, y)
    path = tmp_path / "model.fm"
    m.save(path)
    loaded = FactorizationMachine.load(path)
    # A progress callable cannot be saved: it comes back as False.
    assert loaded.get_params() == {**m.get_params(), "progress": False}
    np.testing.assert_array_equal(loaded.predict(X), m.predict(X))
    assert loaded.history_ == m.history_ and loaded.n_updates_ == m.n_updates_
    loaded.set_params(progress=False).partial_fit(X, y)
    m.set_params(progress=False).partial_fit(X, y)
    np.testing.assert_array_equal(loaded.V_, m.V_)
    assert [p.name for p in tmp_path.iterdir()] == ["model.fm"]


def test_load_reads_version_1_files_of_float64_arrays(tmp_path: Path) -> None:
    X, y = data()
    m = fm(epochs=2).fit(X, y)
    m.save(tmp_path / "v2.npz")
    with np.load(tmp_path / "v2.npz") as npz:
        arrays = {key: npz[key] for key in npz.files}
    header = json.loads(arrays["header"].tobytes()) | {"version": 1}
    arrays["header"] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    for name in ("bias", "linear", "factors", "bias_state", "linear_state", "factors_state"):
        assert arrays[name].dtype == np.float32
        arrays[name] = arrays[name].astype(np.float64)
    np.savez(tmp_path / "v1.npz", **arrays)
    # A version-2 file of float64 arrays is damaged, not old.
    np.savez(tmp_path / "v2_wide.npz", **(arrays | {"header": np.load(tmp_path / "v2.npz")["header"]}))
    with pytest.raises(ModelFormatError, match=r"'bias' has shape .* and dtype float64, expected .* float32"):
        FactorizationMachine.load(tmp_path / "v2_wide.npz")

    old = FactorizationMachine.load(tmp_path / "v1.npz")
    assert old.V_.dtype == old._fitted_state().factors_state.dtype == np.float32
    np.testing.assert_array_equal(old.predict(X), m.predict(X))
    np.testing.assert_array_equal(old.partial_fit(X, y).V_, m.partial_fit(X, y).V_)


def test_load_rejects_damaged_and_foreign_files(tmp_path: Path) -> None:
    X, y = data()
    path = tmp_path / "m.npz"
    fm().fit(X, y).save(path)
    good = path.read_bytes()

    (tmp_path / "cut.npz").write_bytes(good[: len(good) // 2])
    with pytest.raises(ModelFormatError, match="not a readable fmfast model file"):
        FactorizationMachine.load(tmp_path / "cut.npz")
    (tmp_path / "text.npz").write_bytes(b"hello")
    with pytest.raises(ModelFormatError, match="not a readable fmfast model file"):
        FactorizationMachine.load(tmp_path / "text.npz")
    with pytest.raises(OSError):
        FactorizationMachine.load(tmp_path / "missing.npz")

    def rewrite(name: str, change: dict) -> Path:
        with np.load(path) as npz:
            arrays = {key: npz[key] for key in npz.files}
        header = json.loads(arrays["header"].tobytes()) | change
        arrays["header"] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
        target = tmp_path / name
        np.savez(target, **arrays)
        return target

    with pytest.raises(ModelFormatError, match="format version 3; this fmfast reads versions 1, 2"):
        FactorizationMachine.load(rewrite("v3.npz", {"version": 3}))
    with pytest.raises(ModelFormatError, match=r"format version \[2\]; this fmfast reads"):
        FactorizationMachine.load(rewrite("list.npz", {"version": [2]}))  # unhashable: was a TypeError
    with pytest.raises(ModelFormatError, match="holds format 'other'"):
        FactorizationMachine.load(rewrite("other.npz", {"format": "other"}))
    with pytest.raises(ModelFormatError, match="array 'factors' has shape"):
        FactorizationMachine.load(rewrite("k.npz", {"params": {**fm().get_params(), "num_factors": 5}}))
    with zipfile.ZipFile(tmp_path / "noheader.npz", "w") as z:
        z.writestr("linear.npy", b"")
    with pytest.raises(ModelFormatError):
        FactorizationMachine.load(tmp_path / "noheader.npz")
    assert issubclass(ModelFormatError, FmFastError)


def test_csr_float32_is_borrowed_without_copy() -> None:
    X, _ = data()
    rows = _prepare_rows(X)
    assert rows.data is X.data or np.shares_memory(rows.data, X.data)
    assert np.shares_memory(rows.indices[1], X.indices)


def test_input_errors_name_the_row() -> None:
    X, y = data(classifier=True)
    clf = fm(predictor_type="binary_classifier")
    bad = y.copy()
    bad[17] = 2.0
    with pytest.raises(
        InvalidInputError,
        match=r"Only binary classification is supported. y holds 3 classes: row 17 holds a third, 2\.0",
    ):
        clf.fit(X, bad)
    bad[17] = np.nan
    with pytest.raises(InvalidInputError, match="label of row 17 is not finite"):
        fm().fit(X, bad)
    Xbad = X.copy()
    Xbad.data[X.indptr[42]] = np.inf
    with pytest.raises(InvalidInputError, match="non-finite value in row 42"):
        fm().fit(Xbad, y)
    m = fm().fit(X, y)
    with pytest.raises(InvalidInputError, match="non-finite value in row 42"):
        m.predict(Xbad)
    with pytest.raises(InvalidInputError, match="X has 200 rows but y has 199 values"):
        fm().fit(X, y[:-1])
    with pytest.raises(InvalidInputError, match="sample_weight"):
        fm().fit(X, y, sample_weight=np.ones(3))
    with pytest.raises(InvalidInputError, match="sample_weight of row 0 must be finite and >= 0"):
        fm().fit(X, y, sample_weight=-np.ones(200))
    with pytest.raises(
        InvalidInputError,
        match="X has 9 features, but FactorizationMachine is expecting 10 features as input",
    ):
        m.predict(X[:, :9])
    with pytest.raises(
        InvalidInputError,
        match="X has 9 features, but FactorizationMachine is expecting 10 features as input",
    ):
        m.partial_fit(X[:, :9], y)
    with pytest.raises(InvalidInputError, match="X must be 2-dimensional"):
        fm().fit(np.ones(5), np.ones(5))
    with pytest.raises(InvalidInputError, match="X has no rows"):
        fm().fit(sp.csr_array((0, 4)), np.ones(0))
    with pytest.raises(InvalidInputError, match="not fitted yet"):
        fm().predict(X)
    with pytest.raises(InvalidInputError, match="predict_label needs predictor_type='binary_classifier'"):
        m.predict_label(X)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"predictor_type": "multiclass"}, "predictor_type must be"),
        ({"optimizer": "rmsprop"}, "optimizer must be"),
        ({"epochs": 0}, "epochs must be an integer >= 1"),
        ({"mini_batch_size": 2.5}, "mini_batch_size must be an integer"),
        ({"factors_lr": -1.0}, "factors_lr must be a finite number >= 0"),
        ({"linear_wd": float("nan")}, "linear_wd must be a finite number"),
        ({"bias_init_method": "xavier"}, "bias_init_method must be"),
        (
            {"factors_init_method": "uniform"},
            "factors_init_method='uniform' needs a finite factors_init_scale",
        ),
        (
            {"linear_init_method": "constant"},
            "linear_init_method='constant' needs a finite linear_init_value",
        ),
        ({"clip_gradient": 0.0}, "clip_gradient must be None or a finite number > 0"),
        ({"n_threads": -1}, "n_threads must be an integer >= 0"),
    ],
)
def test_hyperparameter_errors(params: dict, message: str) -> None:
    X, y = data()
    with pytest.raises(InvalidInputError, match=message):
        fm(**params).fit(X, y)


def test_divergence_raises_and_keeps_the_previous_model() -> None:
    X, y = data()
    m = fm(optimizer="sgd").fit(X, y)
    before = m.V_.copy()
    m.set_params(linear_lr=1e6, factors_lr=1e6, bias_lr=1e6)
    with pytest.raises(DivergenceError, match="training diverged in epoch 0") as info:
        m.partial_fit(X, y * 1e6)
    assert info.value.epoch == 0 and info.value.batch >= 0
    np.testing.assert_array_equal(m.V_, before)


def test_classifier_outputs_and_metrics() -> None:
    X, y = data(n=2000, d=12, classifier=True)
    m = fm(predictor_type="binary_classifier", epochs=10, linear_lr=0.05, factors_lr=0.01).fit(X, y)
    p = m.predict_score(X)
    assert ((p >= 0) & (p <= 1)).all()
    np.testing.assert_array_equal(m.predict_label(X), (p >= 0.5).astype(np.int64))
    metrics = m.evaluate(X, y)
    assert set(metrics) == {
        "binary_classification_accuracy",
        "binary_classification_cross_entropy",
        "binary_f_beta",
    }
    assert metrics["binary_classification_accuracy"] > 0.75
    assert m.score(X, y) == pytest.approx(metrics["binary_classification_accuracy"])
    assert set(m.history_[0]) == {"epoch", *metrics}


def test_learns_synthetic_ratings() -> None:
    X, y = fmfast.recsys.datasets.synthetic_ratings(n_ratings=20000).one_hot()
    train, test = slice(0, 16000), slice(16000, None)
    baseline = float(np.sqrt(np.mean((y[test] - y[train].mean()) ** 2)))
    m = FactorizationMachine(
        "regressor",
        8,
        epochs=5,
        mini_batch_size=100,
        linear_lr=0.01,
        factors_lr=0.01,
        linear_wd=0.01,
        factors_wd=0.01,
        factors_init_sigma=0.1,
        random_state=0,
    ).fit(X[train], y[train])
    rmse = m.evaluate(X[test], y[test])["rmse"]
    assert rmse < 0.96 * baseline, (rmse, baseline)
    assert m.history_[-1]["rmse"] < 0.92 * float(np.std(y[train]))
    assert m.history_[-1]["rmse"] < m.history_[0]["rmse"]
    assert m.score(X[test], y[test]) > 0.05


def test_progress_reports_rows_and_a_raising_callback_stops_training() -> None:
    X, y = data(n=300)
    seen: list[int] = []
    fm(epochs=3, progress=seen.append).fit(X, y)
    assert seen and seen[-1] == 900 and seen == sorted(seen)

    m = fm().fit(X, y)
    before = m.V_.copy()

    def stop(done: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        m.set_params(progress=stop).partial_fit(X, y)
    np.testing.assert_array_equal(m.V_, before)
    assert len(m.history_) == 2


def test_predict_accepts_every_layout() -> None:
    X, y = data()
    m = fm().fit(X, y)
    expected = m.predict(X)
    for layout in (X.tocsc(), X.tocoo(), X.toarray(), sp.csr_matrix(X), X.astype(np.float64)):
        np.testing.assert_allclose(m.predict(layout), expected, rtol=1e-12)


def test_hyperparameter_names_match_the_sagemaker_sdk() -> None:
    from sagemaker.amazon.factorization_machines import FactorizationMachines
    from sagemaker.amazon.hyperparameter import Hyperparameter

    sdk = {name for name, value in vars(FactorizationMachines).items() if isinstance(value, Hyperparameter)}
    ours = set(FactorizationMachine("regressor", 2).get_params())
    assert len(sdk) == 24 and sdk <= ours
    # mini_batch_size is an argument of the SDK's fit(); the rest are local-only.
    assert ours - sdk == {
        "mini_batch_size",
        "optimizer",
        "n_threads",
        "deterministic",
        "random_state",
        "progress",
        "burn_in",
        "posterior_samples",
        "num_chains",
        "noise",
        "als_regularization",
    }


@pytest.mark.parametrize("classifier", [False, True])
def test_float32_labels_train_as_their_float64_values_without_a_copy(classifier: bool) -> None:
    X, y = data(classifier=classifier)
    y32 = y.astype(np.float32)
    params = {"predictor_type": "binary_classifier"} if classifier else {}
    narrow, wide = fm(**params).fit(X, y32), fm(**params).fit(X, y32.astype(np.float64))
    np.testing.assert_array_equal(narrow.predict(X), wide.predict(X))
    assert narrow.history_ == wide.history_
    labels = fmfast.training._labels.checked_labels(y32, len(y32), "regressor")
    assert labels.dtype == np.float32 and np.shares_memory(labels, y32)
    bad = y32.copy()
    bad[5] = np.nan
    with pytest.raises(InvalidInputError, match="label of row 5 is not finite"):
        fm(**params).fit(X, bad)
