"""Parity of the Rust trainer with the NumPy reference (n_threads=1, rtol 1e-5)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from fmfast import FactorizationMachine
from fmfast.training import _reference as ref
from hypothesis import given, settings
from hypothesis import strategies as st

RTOL, ATOL = 1e-5, 1e-12
INITS = {
    "normal": {},
    "uniform": {"bias_init_scale": 0.1, "linear_init_scale": 0.05, "factors_init_scale": 0.2},
    "constant": {"bias_init_value": 0.2, "linear_init_value": -0.01, "factors_init_value": 0.05},
}


def data(predictor_type: str, n: int = 150, d: int = 14, seed: int = 0) -> tuple[sp.csr_array, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = sp.random_array((n, d), density=0.3, rng=rng, format="csr", dtype=np.float32)
    X = X.tolil()
    X[:, d - 1] = 0  # a feature that never occurs
    X = sp.csr_array(X, dtype=np.float32)
    X.eliminate_zeros()
    y = X @ rng.normal(size=d) + rng.normal(0, 0.3, n)
    if predictor_type == "binary_classifier":
        y = (y > np.median(y)).astype(np.float64)
    return X, y


def assert_same(model: FactorizationMachine, state: dict, history: list[dict]) -> None:
    fitted = model._state
    for name in ("bias", "linear", "factors", "bias_state", "linear_state", "factors_state"):
        np.testing.assert_allclose(getattr(fitted, name), state[name], rtol=RTOL, atol=ATOL, err_msg=name)
    assert fitted.t == state["t"]
    assert len(model.history_) == len(history)
    for ours, theirs in zip(model.history_, history, strict=True):
        for name, value in theirs.items():
            assert ours[name] == pytest.approx(value, rel=RTOL), name


def model(predictor_type: str, optimizer: str, **params: object) -> FactorizationMachine:
    defaults: dict[str, object] = {
        "epochs": 3,
        "mini_batch_size": 16,
        "linear_lr": 0.05,
        "factors_lr": 0.05,
        "optimizer": optimizer,
        "random_state": 7,
        "n_threads": 1,
    }
    defaults.update(params)
    return FactorizationMachine(predictor_type, 4, **defaults)  # type: ignore[arg-type]


@pytest.mark.parametrize("init", sorted(INITS))
@pytest.mark.parametrize("predictor_type", ["regressor", "binary_classifier"])
@pytest.mark.parametrize("optimizer", ["adam", "sgd", "adagrad"])
def test_matches_reference(optimizer: str, predictor_type: str, init: str) -> None:
    X, y = data(predictor_type)
    params = {f"{group}_init_method": init for group in ("bias", "linear", "factors")}
    m = model(predictor_type, optimizer, **params, **INITS[init]).fit(X, y)
    state, history = ref.fit(X, y, m.get_params())
    assert_same(m, state, history)
    raw = m.decision_function(X) if predictor_type == "binary_classifier" else m.predict(X)
    np.testing.assert_allclose(raw, ref.predict(X, state), rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize(
    "params",
    [
        {"clip_gradient": 0.01},
        {"eps": 1e-3},
        {"rescale_grad": 0.01},
        {"bias_wd": 0.5, "linear_wd": 0.3, "factors_wd": 0.2},
        {"mini_batch_size": 7},
        {"mini_batch_size": 1000},
    ],
)
@pytest.mark.parametrize("optimizer", ["adam", "sgd", "adagrad"])
def test_options_match_reference(optimizer: str, params: dict) -> None:
    X, y = data("regressor", seed=3)
    m = model("regressor", optimizer, **params).fit(X, y)
    state, history = ref.fit(X, y, m.get_params())
    assert_same(m, state, history)


def test_sample_weight_and_partial_fit_match_reference() -> None:
    X, y = data("binary_classifier", seed=5)
    weights = np.random.default_rng(1).uniform(0, 2, X.shape[0])
    m = model("binary_classifier", "adam").fit(X, y, sample_weight=weights)
    m.partial_fit(X[:60], y[:60])
    state, history = ref.fit(X, y, m.get_params(), sample_weight=weights)
    state, more = ref.fit(X[:60], y[:60], m.get_params(), state=state, epochs=1)
    assert_same(m, state, history + more)
    assert [h["epoch"] for h in m.history_] == [0, 1, 2, 3]


@pytest.mark.parametrize("layout", ["csr64", "csc", "coo", "dense", "int_values"])
def test_input_layouts_train_identically(layout: str) -> None:
    X, y = data("regressor", seed=2)
    expected = model("regressor", "adam").fit(X, y)
    converted = {
        "csr64": lambda: sp.csr_array(X, dtype=np.float64),
        "csc": lambda: X.tocsc(),
        "coo": lambda: X.tocoo(),
        "dense": lambda: X.toarray(),
        "int_values": lambda: sp.csr_array(np.rint(X.toarray() * 4).astype(np.int64)),
    }[layout]()
    if layout == "int_values":
        expected = model("regressor", "adam").fit(sp.csr_array(converted, dtype=np.float64), y)
    got = model("regressor", "adam").fit(converted, y)
    np.testing.assert_array_equal(got.V_, expected.V_)
    np.testing.assert_array_equal(got.w_, expected.w_)


@settings(max_examples=30, deadline=None)
@given(
    n=st.integers(1, 40),
    d=st.integers(1, 8),
    k=st.integers(1, 5),
    batch=st.integers(1, 50),
    density=st.floats(0.0, 1.0),
    optimizer=st.sampled_from(["adam", "sgd", "adagrad"]),
    predictor_type=st.sampled_from(["regressor", "binary_classifier"]),
    clip=st.sampled_from([None, 0.05]),
    seed=st.integers(0, 2**32 - 1),
)
def test_random_problems_match_reference(
    n: int,
    d: int,
    k: int,
    batch: int,
    density: float,
    optimizer: str,
    predictor_type: str,
    clip: float | None,
    seed: int,
) -> None:
    rng = np.random.default_rng(seed)
    X = sp.random_array((n, d), density=density, rng=rng, format="csr", dtype=np.float64)
    y = (
        rng.integers(0, 2, n).astype(np.float64)
        if predictor_type == "binary_classifier"
        else rng.normal(size=n)
    )
    m = FactorizationMachine(
        predictor_type,
        k,
        epochs=2,
        mini_batch_size=batch,
        optimizer=optimizer,
        clip_gradient=clip,
        linear_lr=0.05,
        factors_lr=0.05,
        factors_init_sigma=0.3,
        random_state=seed,
        n_threads=1,
    ).fit(X, y)
    state, history = ref.fit(X, y, m.get_params())
    assert_same(m, state, history)


def test_duplicate_entries_are_summed_like_the_reference() -> None:
    rows, cols = np.array([0, 0, 1, 2, 2, 2]), np.array([1, 1, 0, 3, 2, 3])
    X = sp.coo_array((np.array([1.0, 2.0, 1.0, 0.5, 1.0, 0.5]), (rows, cols)), shape=(3, 4))
    y = np.array([1.0, 2.0, 3.0])
    m = model("regressor", "adam", mini_batch_size=2).fit(X, y)
    state, history = ref.fit(X, y, m.get_params())
    assert_same(m, state, history)
    summed = sp.csr_array(X.toarray())
    np.testing.assert_array_equal(model("regressor", "adam", mini_batch_size=2).fit(summed, y).V_, m.V_)
