"""FactorizationMachine as scikit-learn sees it: its own estimator checks, the workflows users run
(pipelines, cross-validation, searches, scorers), the classifier protocol and its errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import fmfast
import numpy as np
import pytest
from fmfast import FactorizationMachine, InvalidInputError, NotFittedError
from sklearn.base import is_classifier, is_regressor
from sklearn.exceptions import NotFittedError as SklearnNotFittedError
from sklearn.metrics import accuracy_score, log_loss, roc_auc_score
from sklearn.model_selection import GridSearchCV, StratifiedKFold, cross_val_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder
from sklearn.utils.estimator_checks import parametrize_with_checks

#: Settings that learn on the checks' tiny data sets (tens of rows): SageMaker's defaults take one
#: pass of mini-batches of 1000 with learning rates of 1e-3 and less, which learns nothing there.
TINY_DATA = {"num_factors": 4, "epochs": 50, "mini_batch_size": 8, "linear_lr": 0.05, "factors_lr": 0.01}

#: Why a sample weight of 2 (or 0) is not the row repeated (or removed) under mini-batch training.
SAMPLE_WEIGHT_REASON = (
    "mini-batch training: repeating a row, or removing one, changes which rows share a mini-batch "
    "and how many updates an epoch makes, and each batch's gradient is averaged over its rows"
)
#: The checks that mini-batch training cannot meet, with the reason; expected to fail (strictly).
MINI_BATCH_LIMITS = {
    "check_sample_weight_equivalence_on_dense_data": SAMPLE_WEIGHT_REASON,
    "check_sample_weight_equivalence_on_sparse_data": SAMPLE_WEIGHT_REASON,
}


def ratings(n: int = 600, seed: int = 0, labels: tuple[object, object] = (0, 1)):
    """Users and items as categorical columns, and a label that depends on both."""
    rng = np.random.default_rng(seed)
    users, items = rng.integers(0, 12, n), rng.integers(0, 9, n)
    liked = (users % 3 == 0) ^ (items % 2 == 0)
    noisy = liked ^ (rng.random(n) < 0.05)
    X = np.column_stack([users, items])
    return X, np.where(noisy, labels[1], labels[0])


def classifier(**params: object) -> FactorizationMachine:
    settings = {**TINY_DATA, "epochs": 30, "random_state": 0, **params}
    return FactorizationMachine("binary_classifier", **settings)  # type: ignore[arg-type]


def pipeline(**params: object) -> Pipeline:
    return Pipeline([("one_hot", OneHotEncoder()), ("fm", classifier(**params))])


@parametrize_with_checks(
    [
        FactorizationMachine("regressor", random_state=0, **TINY_DATA),  # type: ignore[arg-type]
        FactorizationMachine("binary_classifier", random_state=0, **TINY_DATA),  # type: ignore[arg-type]
        FactorizationMachine("regressor", optimizer="als", random_state=0, **TINY_DATA),  # type: ignore[arg-type]
        FactorizationMachine("regressor", optimizer="mcmc", random_state=0, **TINY_DATA),  # type: ignore[arg-type]
    ],
    # ALS and MCMC weigh each row's likelihood: a weight of 2 is the row twice, exactly.
    expected_failed_checks=lambda estimator: (
        {} if estimator.optimizer in ("als", "mcmc") else MINI_BATCH_LIMITS
    ),
    xfail_strict=True,
)
def test_scikit_learn_estimator_checks(estimator, check) -> None:
    check(estimator)


def test_array_api_dispatch_leaves_numpy_results_unchanged() -> None:
    # The one check above that scikit-learn skips here: it needs SCIPY_ARRAY_API=1 before SciPy
    # is imported, so it runs in a subprocess with it.
    code = textwrap.dedent(
        f"""
        from sklearn.utils.estimator_checks import check_array_api_input
        from fmfast import FactorizationMachine
        for predictor_type in ("regressor", "binary_classifier"):
            estimator = FactorizationMachine(predictor_type, random_state=0, **{TINY_DATA!r})
            check_array_api_input(
                "FactorizationMachine", estimator, array_namespace="numpy", expect_only_array_outputs=False
            )
        """
    )
    env = {**os.environ, "SCIPY_ARRAY_API": "1"}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=300)


def test_the_predictor_type_makes_a_classifier_or_a_regressor() -> None:
    clf, reg = FactorizationMachine("binary_classifier"), FactorizationMachine("regressor")
    assert is_classifier(clf) and not is_regressor(clf)
    assert is_regressor(reg) and not is_classifier(reg)
    for method in ("predict_proba", "decision_function"):
        assert hasattr(clf, method) and not hasattr(reg, method)
    assert not hasattr(reg.fit(np.eye(3), [1.0, 2.0, 3.0]), "classes_")


def test_cross_validation_of_a_one_hot_pipeline_gives_finite_scores() -> None:
    X, y = ratings()
    scores = cross_val_score(pipeline(), X, y, cv=3)
    assert np.isfinite(scores).all() and scores.min() > 0.85, scores
    for scoring in ("roc_auc", "neg_log_loss", "accuracy"):
        scores = cross_val_score(pipeline(), X, y, cv=3, scoring=scoring)
        assert np.isfinite(scores).all(), (scoring, scores)
    regression = Pipeline([("one_hot", OneHotEncoder()), ("fm", FactorizationMachine(**TINY_DATA))])
    r2 = cross_val_score(regression, X, y.astype(float), cv=3)
    assert np.isfinite(r2).all() and r2.min() > 0.5, r2


def test_a_grid_search_picks_the_point_that_learns() -> None:
    X, y = ratings()
    # The label is an interaction of user and item, which only the factors can learn: a factor
    # learning rate of 0 leaves them at their initial values (chance).
    search = GridSearchCV(pipeline(), {"fm__factors_lr": [0.0, 0.01]}, cv=3)
    search.fit(X, y)
    scores = search.cv_results_["mean_test_score"]
    assert np.isfinite(scores).all() and scores[0] < 0.7, scores
    assert search.best_params_ == {"fm__factors_lr": 0.01}
    assert search.best_score_ == scores.max() > 0.85
    assert search.score(X, y) > 0.85


def test_stratified_cross_validation_with_string_labels() -> None:
    X, y = ratings(labels=("skip", "watch"))
    cv = StratifiedKFold(n_splits=4, shuffle=True, random_state=0)
    for scoring in ("accuracy", "roc_auc", "neg_log_loss"):
        scores = cross_val_score(pipeline(), X, y, cv=cv, scoring=scoring)
        assert np.isfinite(scores).all(), (scoring, scores)
    model = pipeline().fit(X, y)
    assert model.classes_.tolist() == ["skip", "watch"]
    assert set(model.predict(X)) == {"skip", "watch"}
    assert accuracy_score(y, model.predict(X)) > 0.85


@pytest.mark.parametrize("labels", [(-1, 1), (1, 2), ("no", "yes"), (False, True), (0.0, 1.0)])
def test_any_two_labels_train_as_labels_0_and_1(labels: tuple[object, object]) -> None:
    X, y01 = ratings()
    X = OneHotEncoder().fit_transform(X)
    reference = classifier().fit(X, y01)
    y = np.where(y01 == 1, labels[1], labels[0])
    model = classifier().fit(X, y)
    # The labels are encoded to 0/1 before training, so the weights are bit-identical.
    assert model.V_.tobytes() == reference.V_.tobytes() and model.w_.tobytes() == reference.w_.tobytes()
    assert model.history_ == reference.history_
    assert model.classes_.tolist() == sorted(labels)
    predicted = model.predict(X)
    np.testing.assert_array_equal(predicted, np.asarray(labels)[reference.predict_label(X)])
    assert accuracy_score(y, predicted) == model.score(X, y) > 0.85
    proba = model.predict_proba(X)
    assert proba.shape == (X.shape[0], 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    np.testing.assert_array_equal(proba[:, 1], model.predict_score(X))
    np.testing.assert_allclose(proba[:, 1], 1 / (1 + np.exp(-model.decision_function(X))), rtol=1e-12)
    assert roc_auc_score(y, model.decision_function(X)) > 0.9
    assert log_loss(y, proba) == pytest.approx(
        model.evaluate(X, y)["binary_classification_cross_entropy"], rel=1e-9
    )


def test_sagemaker_labels_0_and_1_keep_their_meaning_and_one_class_still_trains() -> None:
    X, y = ratings()
    X = OneHotEncoder().fit_transform(X)
    model = classifier().fit(X, y.astype(np.float32))
    assert model.classes_.tolist() == [0.0, 1.0]
    # A batch of one class, as a stream of partial_fit calls or a filtered set may give.
    ones = classifier().fit(X, np.ones(X.shape[0]))
    assert ones.classes_.tolist() == [0.0, 1.0] and (ones.predict(X) == 1.0).all()


def test_labels_that_are_not_two_classes_are_refused_naming_the_row() -> None:
    X = np.eye(4)
    with pytest.raises(
        InvalidInputError, match=r"Only binary classification is supported\. y holds 3 classes: row 3"
    ):
        classifier().fit(X, ["a", "b", "a", "c"])
    with pytest.raises(InvalidInputError, match="binary_classifier needs two classes in y, got 1 class: 'a'"):
        classifier().fit(X, ["a"] * 4)
    with pytest.raises(InvalidInputError, match="Unknown label type: continuous"):
        classifier().fit(X, [0.5, 1.0, 0.0, 1.0])
    model = classifier().fit(X, ["a", "b", "a", "b"])
    with pytest.raises(
        InvalidInputError, match=r"label of row 2 is 'c', not one of the model's classes \['a', 'b'\]"
    ):
        model.partial_fit(X, ["a", "b", "c", "b"])
    with pytest.raises(InvalidInputError, match="classes"):
        model.partial_fit(X, ["a", "b", "a", "b"], classes=["a", "z"])
    with pytest.raises(
        InvalidInputError, match="classes is an argument of predictor_type='binary_classifier'"
    ):
        FactorizationMachine("regressor").partial_fit(X, np.ones(4), classes=[0, 1])


def test_partial_fit_takes_the_classes_on_its_first_call() -> None:
    X, y = ratings(labels=("skip", "watch"))
    X = OneHotEncoder().fit_transform(X)
    model = classifier(epochs=1)
    watched = y == "watch"
    model.partial_fit(X[watched], y[watched], classes=["skip", "watch"])
    model.partial_fit(X[~watched], y[~watched])
    assert model.classes_.tolist() == ["skip", "watch"]


def test_classes_survive_save_and_load_and_sagemaker_models_have_0_and_1(tmp_path: Path) -> None:
    X, y = ratings(labels=("skip", "watch"))
    X = OneHotEncoder().fit_transform(X)
    model = classifier().fit(X, y)
    model.save(tmp_path / "m.fmfast")
    loaded = FactorizationMachine.load(tmp_path / "m.fmfast")
    assert loaded.classes_.tolist() == ["skip", "watch"]
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    model.to_sagemaker(tmp_path / "model.tar.gz")
    sagemaker = FactorizationMachine.from_sagemaker(tmp_path / "model.tar.gz")
    assert sagemaker.classes_.tolist() == [0, 1]
    np.testing.assert_array_equal(sagemaker.predict(X), model.predict_label(X))
    # A file written before classes were saved: a classifier of labels 0 and 1.
    with np.load(tmp_path / "m.fmfast") as npz:
        arrays = dict(npz)
    header = json.loads(arrays["header"].tobytes())
    del header["classes"]
    arrays["header"] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    np.savez(tmp_path / "old.npz", **arrays)
    assert FactorizationMachine.load(tmp_path / "old.npz").classes_.tolist() == [0, 1]
    header["classes"] = ["watch", "skip"]
    arrays["header"] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(fmfast.ModelFormatError, match="are not two sorted labels"):
        FactorizationMachine.load(tmp_path / "bad.npz")


def test_errors_are_the_types_scikit_learn_catches() -> None:
    assert issubclass(InvalidInputError, ValueError) and issubclass(InvalidInputError, fmfast.FmFastError)
    assert issubclass(NotFittedError, InvalidInputError) and issubclass(NotFittedError, AttributeError)
    model = FactorizationMachine("binary_classifier")
    assert not hasattr(model, "n_features_in_") and not hasattr(model, "classes_")
    with pytest.raises(SklearnNotFittedError, match="not fitted yet") as info:
        model.predict(np.eye(2))
    assert isinstance(info.value, NotFittedError)
    # Without scikit-learn loaded, the error is fmfast's own, and scikit-learn is not imported.
    code = textwrap.dedent(
        """
        import sys, numpy as np, fmfast
        try:
            fmfast.FactorizationMachine().predict(np.eye(2))
        except fmfast.NotFittedError as e:
            assert isinstance(e, (ValueError, AttributeError)), type(e).__mro__
        assert not any(name.startswith("sklearn") for name in sys.modules)
        """
    )
    subprocess.run([sys.executable, "-c", code], check=True)
