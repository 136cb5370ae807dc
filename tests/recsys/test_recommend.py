"""Top-K by the FM algebra equals scoring every (user, item) pair through ``predict``."""

from __future__ import annotations

import fmfast
import numpy as np
import pytest
import scipy.sparse as sp
from fmfast import FactorizationMachine, InvalidInputError
from fmfast.recsys.recommend import one_hot, recommend, side_sums, similar_items

N_USERS, N_ITEMS, N_SIDE = 40, 120, 5


def fitted(predictor_type: str = "regressor", seed: int = 0) -> FactorizationMachine:
    rng = np.random.default_rng(seed)
    rows = 3000
    users, items = rng.integers(0, N_USERS, rows), rng.integers(0, N_ITEMS, rows)
    X = sp.hstack(
        [
            one_hot(users, 0, N_USERS),
            one_hot(items, 0, N_ITEMS),
            sp.random(rows, N_SIDE, density=0.3, rng=rng),
        ]
    )
    y = rng.integers(0, 2, rows) if predictor_type == "binary_classifier" else rng.normal(3, 1, rows)
    model = FactorizationMachine(
        predictor_type, 6, epochs=3, factors_init_sigma=0.3, factors_lr=0.01, random_state=seed
    )
    return model.fit(sp.csr_array(X), y)


def item_rows(rng: np.random.Generator) -> sp.csr_array:
    """One-hot item ids plus item side features, in the item columns."""
    d = N_USERS + N_ITEMS + N_SIDE
    side = sp.random(N_ITEMS, N_SIDE, density=0.4, rng=rng)
    return sp.csr_array(sp.hstack([sp.csr_array((N_ITEMS, N_USERS)), sp.eye(N_ITEMS), side]).tocsr()).astype(
        np.float32
    )[:, :d]


def brute_force(model, users_X, items_X, exclude, k):
    n_u, n_i = users_X.shape[0], items_X.shape[0]
    pairs = sp.vstack([sp.vstack([users_X[[u]]] * n_i) + items_X for u in range(n_u)]).tocsr()
    scores = model.predict_score(pairs).reshape(n_u, n_i)
    results = []
    for u in range(n_u):
        allowed = [i for i in range(n_i) if exclude is None or exclude[u, i] == 0]
        ranked = sorted(allowed, key=lambda i: (-scores[u, i], i))[:k]
        results.append((ranked, scores[u, ranked]))
    return results


@pytest.mark.parametrize("predictor_type", ["regressor", "binary_classifier"])
def test_top_k_equals_brute_force(predictor_type):
    model = fitted(predictor_type)
    rng = np.random.default_rng(1)
    users_X = one_hot(np.arange(N_USERS), 0, N_USERS + N_ITEMS + N_SIDE)
    items_X = item_rows(rng)
    exclude = sp.random(N_USERS, N_ITEMS, density=0.2, rng=rng, format="csr")
    for k in (1, 10):
        got_items, got_scores = recommend(model, users_X, items_X, k, exclude=exclude, n_threads=2)
        for u, (want_items, want_scores) in enumerate(
            brute_force(model, users_X, items_X, exclude.toarray(), k)
        ):
            np.testing.assert_array_equal(got_items[u], want_items)
            np.testing.assert_allclose(got_scores[u], want_scores, rtol=1e-4, atol=1e-5)


def test_candidates_padding_and_thread_invariance():
    model = fitted()
    users_X = one_hot(np.arange(N_USERS), 0, N_USERS + N_ITEMS + N_SIDE)
    items_X = item_rows(np.random.default_rng(2))
    candidates = [5, 17, 3, 99]
    items, scores = recommend(model, users_X, items_X, 6, candidates=candidates)
    assert set(items[:, :4].ravel()) <= set(candidates)
    assert (items[:, 4:] == -1).all() and np.isneginf(scores[:, 4:]).all()
    one = recommend(model, users_X, items_X, 10, n_threads=1)
    three = recommend(model, users_X, items_X, 10, n_threads=3)
    np.testing.assert_array_equal(one[0], three[0])
    np.testing.assert_array_equal(one[1], three[1])


def test_sagemaker_models_recommend_too():
    model = fitted()
    artifact = fmfast.SageMakerFM(model.w0_, model.w_, model.V_, "regressor")
    users_X = one_hot(np.arange(5), 0, N_USERS + N_ITEMS + N_SIDE)
    items_X = item_rows(np.random.default_rng(3))
    a, b = recommend(model, users_X, items_X, 5), recommend(artifact, users_X, items_X, 5)
    np.testing.assert_array_equal(a[0], b[0])


def test_similar_items_by_cosine():
    model = fitted()
    items_X = item_rows(np.random.default_rng(4))
    similar, cosines = similar_items(model, items_X, [0, 7], k=4)
    _, vectors = side_sums(model.w_, model.V_, items_X)
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    for row, item in enumerate([0, 7]):
        cos = unit @ unit[item]
        cos[item] = -np.inf
        np.testing.assert_array_equal(similar[row], np.argsort(-cos, kind="stable")[:4])
        np.testing.assert_allclose(cosines[row], cos[similar[row]], rtol=1e-5)


def test_errors():
    model = fitted()
    users_X = one_hot(np.arange(3), 0, N_USERS + N_ITEMS + N_SIDE)
    with pytest.raises(InvalidInputError, match="share feature columns"):
        recommend(model, users_X, users_X, 2)
    with pytest.raises(InvalidInputError, match="k must be at least 1"):
        recommend(model, users_X, item_rows(np.random.default_rng(0)), 0)
    with pytest.raises(InvalidInputError, match="exclude is"):
        recommend(model, users_X, item_rows(np.random.default_rng(0)), 2, exclude=sp.eye(3, format="csr"))
