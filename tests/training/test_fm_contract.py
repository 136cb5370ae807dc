"""The training contract of the extension: FmConfig and FmState check what they are given when built."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from fmfast import _fmfast
from fmfast._inputs import csr_indices
from fmfast.exceptions import FmFastError, InvalidInputError

HYPERPARAMETERS = {
    "predictor_type": "regressor",
    "optimizer": "adam",
    "epochs": 1,
    "mini_batch_size": 4,
    "bias_lr": 0.1,
    "linear_lr": 0.01,
    "factors_lr": 0.01,
    "bias_wd": 0.0,
    "linear_wd": 0.0,
    "factors_wd": 0.0,
}


def state(d: int = 3, k: int = 2, slots: int = 2) -> dict[str, np.ndarray]:
    return {
        "bias": np.zeros(1, np.float32),
        "linear": np.zeros(d, np.float32),
        "factors": np.full((d, k), 0.1, np.float32),
        "bias_state": np.zeros((1, slots), np.float32),
        "linear_state": np.zeros((d, slots), np.float32),
        "factors_state": np.zeros((d, slots, k), np.float32),
    }


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"predictor_type": 3}, "predictor_type must be a string, got 3"),
        ({"optimizer": "rmsprop"}, "optimizer must be 'sgd', 'adam' or 'adagrad'"),
        ({"epochs": True}, "epochs must be an integer >= 1 and <= 4294967295, got True"),
        ({"mini_batch_size": "8"}, "mini_batch_size must be an integer >= 1 and <= 4294967295, got '8'"),
        ({"bias_lr": "fast"}, "bias_lr must be a finite number >= 0, got 'fast'"),
        ({"linear_wd": -1.0}, "linear_wd must be a finite number >= 0"),
        ({"eps": float("inf")}, "eps must be None or a finite number > 0"),
        ({"rescale_grad": [1.0]}, r"rescale_grad must be None or a finite number > 0, got \[1.0\]"),
    ],
)
def test_config_refuses_what_the_core_cannot_train_with(change: dict, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        _fmfast.FmConfig(**(HYPERPARAMETERS | change))


def test_config_takes_numpy_numbers_and_names_the_optimizer_slots() -> None:
    for optimizer, slots in (("sgd", 0), ("adagrad", 1), ("adam", 2)):
        config = _fmfast.FmConfig(
            **(HYPERPARAMETERS | {"optimizer": optimizer, "epochs": np.int64(2), "bias_lr": np.float32(0.5)})
        )
        assert config.n_slots == slots


@pytest.mark.parametrize(
    ("name", "array", "message"),
    [
        ("linear", np.zeros(4, np.float32), r"factors has shape \[3, 2\], expected \[4, 2\]"),
        ("factors_state", np.zeros((3, 1, 2), np.float32), r"factors_state has shape \[3, 1, 2\]"),
        ("factors", np.zeros((3, 2), np.float64), "factors must be a float32 array.*float64"),
        ("bias", [0.0], "bias must be a float32 array.*type <class 'list'>"),
        ("linear_state", np.zeros((2, 3), np.float32).T, "linear_state must be C-contiguous"),
        ("factors", np.zeros((3, 0), np.float32), "num_factors >= 1"),
    ],
)
def test_state_refuses_arrays_that_do_not_fit_together(name: str, array: object, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        _fmfast.FmState(**(state() | {name: array}))


def test_training_updates_the_state_in_place_and_refuses_it_as_its_own_checkpoint() -> None:
    X = sp.csr_array(np.eye(3, dtype=np.float32))
    trained = _fmfast.FmState(**state(), t=5)
    config = _fmfast.FmConfig(**HYPERPARAMETERS)
    t, stats, stopped = _fmfast.fm_fit_epochs(
        3, csr_indices(X), X.data, np.ones(3), None, trained, config, n_threads=1
    )
    assert (t, stopped, stats[0][0]) == (6, None, 3)
    assert trained.bias[0] != 0 and trained.linear.any()
    before = trained.factors.copy()
    with pytest.raises(InvalidInputError, match="training state arrays"):
        _fmfast.fm_fit_epochs(
            3, csr_indices(X), X.data, np.ones(3), None, trained, config, n_threads=1, checkpoint=trained
        )
    np.testing.assert_array_equal(trained.factors, before)


def test_a_thread_choice_is_carried_by_one_call_at_a_time() -> None:
    X = sp.csr_array(np.eye(3, dtype=np.float32))
    config = _fmfast.FmConfig(**HYPERPARAMETERS)
    choice = _fmfast.ThreadChoice()

    def fit(progress: object = None, thread_choice: _fmfast.ThreadChoice | None = choice) -> _fmfast.FmState:
        trained = _fmfast.FmState(**state(), t=0)
        _fmfast.fm_fit_epochs(
            3, csr_indices(X), X.data, np.ones(3), None, trained, config, 1, progress, None, thread_choice
        )
        return trained

    # Its measurements choose thread counts only: calls that carry it train as calls without it.
    alone, carried = fit(thread_choice=None), [fit(), fit()]
    for trained in carried:
        np.testing.assert_array_equal(trained.factors, alone.factors)
    # A call made while another holds it (here from that call's progress report) is refused.
    with pytest.raises(FmFastError, match="the thread choice is in use by another call"):
        fit(progress=lambda done: fit())
