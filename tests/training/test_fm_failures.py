"""Training calls that fail: they leave a fitted model as it was, and sizes or integers beyond what
fmfast can hold are typed errors, never an abort or an untyped TypeError/OverflowError."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest
import scipy.sparse as sp
from fmfast import DivergenceError, FactorizationMachine, InvalidInputError

SETTINGS = {"num_factors": 4, "epochs": 3, "mini_batch_size": 16, "linear_lr": 0.05, "random_state": 0}


def data(n: int = 300, d: int = 12) -> tuple[sp.csr_array, np.ndarray]:
    rng = np.random.default_rng(0)
    X = sp.random_array((n, d), density=0.4, rng=rng, format="csr", dtype=np.float32)
    return X, (X @ rng.normal(size=d) > 0).astype(np.float64)


def snapshot(model: FactorizationMachine) -> dict[str, object]:
    """Everything a training call may change, as bytes and values."""
    state = {
        name: getattr(model._state, name).tobytes()
        for name in ("bias", "linear", "factors", "bias_state", "linear_state", "factors_state")
    }
    classes = model.classes_.tolist()
    return {
        **state,
        "t": model.n_updates_,
        "history": list(model.history_),
        "best": model.best_epoch_,
        "classes": classes,
    }


def test_a_failed_fit_leaves_a_fitted_model_as_it_was() -> None:
    X, y = data()
    y = np.where(y == 1, "watch", "skip")
    model = FactorizationMachine("binary_classifier", **SETTINGS)  # type: ignore[arg-type]
    model.fit(X, y, eval_set=(X, y), early_stopping_rounds=2)
    before, params = snapshot(model), model.get_params()
    bad_x = X.copy()
    bad_x.data[5] = np.nan
    bad_y = y.copy()
    bad_y[7] = "maybe"
    failures = [
        (lambda: model.fit(X, bad_y), "Only binary classification is supported. y holds 3 classes: row 7"),
        (lambda: model.fit(X, y, sample_weight=np.zeros(len(y))), "every sample_weight is zero"),
        (lambda: model.fit(bad_x, y), "non-finite value in row"),
        (lambda: model.fit(X, y[:-1]), "rows but y has"),
        # Fails after its first epoch has trained, when evaluating.
        (lambda: model.fit(X, y, eval_set=(X[:, :5], y)), "X has 5"),
        (lambda: model.partial_fit(X, bad_y), "label of row 7 is 'maybe', not one of the model's classes"),
        (lambda: model.partial_fit(X[:, :5], y), "X has 5"),
        (lambda: model.set_params(epochs=0).fit(X, y), "epochs must be"),
        (lambda: model.set_params(num_factors=2**20).fit(X, y), "num_factors must be"),
        (lambda: model.set_params(epochs=2**64).fit(X, y), "epochs must be"),
    ]
    for call, message in failures:
        with pytest.raises(InvalidInputError, match=message):
            call()
        assert snapshot(model) == before, message
        model.set_params(**params)
    # Divergence in the second epoch of a fit that keeps each epoch as it goes (an eval_set),
    # and in a fit of all its epochs in one call to the core.
    model.set_params(linear_lr=1e30, factors_lr=1e30, bias_lr=1e30, optimizer="sgd")
    for fit in (lambda: model.fit(X, y, eval_set=(X, y)), lambda: model.fit(X, y)):
        with pytest.raises(DivergenceError):
            fit()
        assert snapshot(model) == before


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"epochs": 2**64}, "epochs must be an integer >= 1 and <= 4294967295"),
        ({"epochs": np.uint64(2**64 - 1)}, "epochs must be an integer >= 1 and <= 4294967295"),
        ({"mini_batch_size": 2**32}, "mini_batch_size must be an integer >= 1 and <= 4294967295"),
        ({"num_factors": 2**40}, "num_factors must be an integer >= 1 and <= 65536"),
        ({"n_threads": 2**63}, "n_threads must be an integer >= 0 and <= 1024"),
    ],
)
def test_out_of_range_integers_are_typed_errors(params: dict, message: str) -> None:
    params = {"num_factors": 4, **params}
    with pytest.raises(InvalidInputError, match=message) as info:
        FactorizationMachine("regressor", **params).fit(np.eye(3), np.ones(3))
    assert isinstance(info.value, ValueError)


def test_sizes_beyond_memory_fail_as_typed_errors_not_aborts() -> None:
    # In a subprocess whose address space is limited to 4 GiB, so that the sizes below are beyond
    # it on every machine (whatever its memory and overcommit policy): an abort shows as the exit
    # status, a typed error as the printed lines.
    code = textwrap.dedent(
        """
        import resource, numpy as np, scipy.sparse as sp, fmfast
        resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))
        cases = {
            # The core's training scratch: 65,536 rows x 65,536 factors of float64 (32 GiB).
            "scratch": (dict(num_factors=1 << 16, mini_batch_size=1 << 16), sp.csr_array(np.ones((1 << 16, 1)))),
            # The model's arrays: 2^26 features x 1024 factors of float32 (256 GiB).
            "model": (dict(num_factors=1024), sp.csr_array(([1.0], [0], [0, 1]), shape=(1, 1 << 26))),
        }
        for name, (params, X) in cases.items():
            model = fmfast.FactorizationMachine("regressor", n_threads=1, **params)
            try:
                model.fit(X, np.ones(X.shape[0]))
            except fmfast.InvalidInputError as e:
                print(name, e)
        """
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert lines[0].startswith("scratch cannot allocate the training scratch"), lines
    assert "lower num_factors or mini_batch_size" in lines[0]
    # Refused before allocating where the weights exceed physical memory, else when NumPy fails.
    assert lines[1].startswith("model "), lines
    assert "num_factors" in lines[1] and "lower num_factors or the number of features" in lines[1]


@pytest.mark.parametrize("optimizer", ["als", "mcmc"])
def test_a_feature_dimension_beyond_memory_is_refused_by_the_sweeps_before_any_allocation(optimizer) -> None:
    # 10^11 columns: the group codes alone would take 373 GiB (once an untyped MemoryError).
    X = sp.csr_array(([1.0], [0], [0, 1]), shape=(1, 10**11))
    model = FactorizationMachine("regressor", optimizer=optimizer, num_factors=4)
    with pytest.raises(InvalidInputError, match="lower num_factors or the number of features"):
        model.fit(X, np.ones(1))
