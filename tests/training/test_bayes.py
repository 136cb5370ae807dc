"""ALS and MCMC (Bayesian FM): the core's sweeps against the NumPy reference and the closed form,
what sampling recovers from data of a known FM, determinism per thread count, and the estimator
around them (eval_set, save/load, to_sagemaker, errors)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from fmfast import FactorizationMachine, FeatureEncoder, InvalidInputError
from fmfast.recsys.features import BlockInfo
from fmfast.training import _reference as ref
from fmfast.training.bayes import label_codes

RTOL, ATOL = 1e-5, 1e-9


def one_hot_fm(
    n: int, n_users: int, n_items: int, k: int = 2, noise: float = 0.3, seed: int = 0
) -> tuple[sp.csr_array, np.ndarray, np.ndarray]:
    """Rows of one-hot user + item from a known FM: ``(X, y, the noise-free ŷ)``."""
    rng = np.random.default_rng(seed)
    users, items = rng.integers(0, n_users, n), rng.integers(0, n_items, n)
    w = rng.normal(0, 0.3, n_users + n_items)
    V = rng.normal(0, 0.6, (n_users + n_items, k))
    truth = 3.0 + w[users] + w[n_users + items] + (V[users] * V[n_users + items]).sum(axis=1)
    indices = np.column_stack([users, n_users + items]).ravel()
    X = sp.csr_array(
        (np.ones(2 * n, np.float32), indices, np.arange(0, 2 * n + 1, 2)), shape=(n, n_users + n_items)
    )
    return X, truth + rng.normal(0, noise, n), truth


def small_data(seed: int = 0) -> tuple[sp.csr_array, np.ndarray, np.ndarray]:
    """Random sparse rows with real values, an empty column and two groups: ``(X, y, groups)``."""
    rng = np.random.default_rng(seed)
    X = sp.random_array((80, 12), density=0.3, rng=rng, format="csr", dtype=np.float64)
    X = sp.csr_array(X.toarray() * (np.arange(12) != 5))  # column 5 never occurs
    y = X @ rng.normal(size=12) + rng.normal(0, 0.2, 80)
    return X, y, np.arange(12) % 2


def initial_weights(model: FactorizationMachine, d: int) -> tuple[dict, int]:
    """The weights and the seed a fit of ``model`` starts from."""
    state = ref.initial_state({**model.get_params(), "optimizer": "sgd"}, d)
    return state, int(np.random.default_rng(model.random_state).integers(2**63))


def weights_of(model: FactorizationMachine) -> dict:
    return {"bias": np.array([model.w0_], np.float32), "linear": model.w_, "factors": model.V_}


def assert_weights_close(got: dict, expected: dict) -> None:
    for name in ("bias", "linear", "factors"):
        np.testing.assert_allclose(got[name], expected[name], rtol=RTOL, atol=ATOL, err_msg=name)


def test_one_als_step_is_the_closed_form_coordinate_minimiser() -> None:
    # After a sweep, the last coordinate swept (v of the last feature, last factor) minimises the
    # objective Σ (y - ŷ)² + λ θ² with everything else fixed; the objective is quadratic in it,
    # so three evaluations give its minimiser in closed form.
    X, y, _ = small_data()
    wd = (0.01, 0.02, 0.05)
    model = FactorizationMachine(
        num_factors=3,
        epochs=1,
        optimizer="als",
        als_regularization="fixed",
        random_state=1,
        factors_init_sigma=0.1,
    )
    model.set_params(bias_wd=wd[0], linear_wd=wd[1], factors_wd=wd[2]).fit(X, y)
    lam = wd[2] * len(y)
    fitted = weights_of(model)

    def objective(theta: float) -> float:
        weights = {name: array.astype(np.float64) for name, array in fitted.items()}
        weights["factors"][-1, -1] = theta
        residual = y - ref.predict(X, weights)
        return float(residual @ residual + lam * theta**2)

    a, b, c = objective(-1.0), objective(0.0), objective(1.0)
    minimiser = (a - c) / (2.0 * (a - 2.0 * b + c))
    assert fitted["factors"][-1, -1] == pytest.approx(minimiser, rel=1e-5)
    # Every coordinate of the sweep: the reference's sweep.
    start, _ = initial_weights(model, X.shape[1])
    assert_weights_close(fitted, ref.bayes_sweeps(X, y, start, "als", 1, wd=wd))


def test_als_sweeps_lower_the_objective_and_match_the_reference() -> None:
    X, y, _ = small_data(1)
    params = {
        "num_factors": 2,
        "optimizer": "als",
        "als_regularization": "fixed",
        "random_state": 0,
        "factors_init_sigma": 0.1,
        "factors_wd": 0.01,
    }
    losses = [FactorizationMachine(epochs=e, **params).fit(X, y).history_[-1]["rmse"] for e in (1, 2, 5)]
    assert losses[0] > losses[1] > losses[2]
    model = FactorizationMachine(epochs=5, **params).fit(X, y, sample_weight=np.linspace(0.5, 2.0, len(y)))
    start, _ = initial_weights(model, X.shape[1])
    expected = ref.bayes_sweeps(
        X, y, start, "als", 5, sample_weight=np.linspace(0.5, 2.0, len(y)), wd=(0.01, 0.001, 0.01)
    )
    assert_weights_close(weights_of(model), expected)


@pytest.mark.parametrize("grouped", [False, True])
def test_adaptive_als_matches_the_reference(grouped) -> None:
    # Real values and several entries per row: the variance of ŷ counts pairs sharing a factor.
    X, y, groups = small_data(3)
    model = FactorizationMachine(
        num_factors=3, epochs=4, optimizer="als", random_state=2, factors_init_sigma=0.5, n_threads=1
    )
    model.fit(X, y, groups=groups if grouped else None, sample_weight=np.linspace(0.5, 2.0, len(y)))
    start, _ = initial_weights(model, X.shape[1])
    expected = ref.bayes_sweeps(
        X,
        y,
        start,
        "als",
        4,
        groups=groups if grouped else None,
        sample_weight=np.linspace(0.5, 2.0, len(y)),
        wd=None,
    )
    assert_weights_close(weights_of(model), expected)
    # The decays are not used by the adaptive rule; the fixed rule is another fit.
    fixed = FactorizationMachine(**{**model.get_params(), "als_regularization": "fixed"}).fit(X, y)
    assert not np.allclose(fixed.V_, model.V_)


@pytest.mark.parametrize(
    ("settings", "sigma"),
    [
        ({"optimizer": "als"}, 1.0),
        ({"optimizer": "als", "als_regularization": "fixed"}, 0.001),
        ({"optimizer": "mcmc"}, 0.001),
        ({"optimizer": "adam"}, 0.001),
    ],
)
def test_the_default_factor_spread_is_the_optimizers(settings, sigma) -> None:
    # factors_init_sigma=None: adaptive ALS starts at its priors' scale, the rest at SageMaker's.
    X, y, _ = small_data(3)
    common = {"num_factors": 3, "epochs": 2, "random_state": 4, "n_threads": 1, **settings}
    default = FactorizationMachine(**common).fit(X, y)
    explicit = FactorizationMachine(**common, factors_init_sigma=sigma).fit(X, y)
    other = FactorizationMachine(**common, factors_init_sigma=sigma * 2).fit(X, y)
    np.testing.assert_array_equal(default.V_, explicit.V_)
    assert not np.array_equal(default.V_, other.V_)
    assert default.get_params()["factors_init_sigma"] is None


def test_adaptive_als_beats_every_fixed_decay_on_data_of_a_known_fm() -> None:
    # Nothing chosen: adaptive ALS recovers the noise-free FM better than fixed decays over two
    # decades, even with the best of them picked by their error against the truth.
    X, y, truth = one_hot_fm(6000, 120, 80, k=2, noise=0.5, seed=21)
    train, test = slice(0, 4000), slice(4000, None)
    common = {
        "num_factors": 4,
        "epochs": 50,
        "optimizer": "als",
        "factors_init_sigma": 1.0,
        "random_state": 0,
    }

    def error(model: FactorizationMachine) -> float:
        return float(np.sqrt(np.mean((model.predict(X[test]) - truth[test]) ** 2)))

    adaptive = FactorizationMachine(**common).fit(X[train], y[train], groups=np.repeat([0, 1], [120, 80]))
    fixed = [
        error(
            FactorizationMachine(
                **common, als_regularization="fixed", bias_wd=0.0, linear_wd=1e-3, factors_wd=factors_wd
            ).fit(X[train], y[train])
        )
        for factors_wd in (1e-4, 1e-3, 1e-2)
    ]
    assert error(adaptive) < 0.9 * min(fixed), (error(adaptive), fixed)


@pytest.mark.parametrize("grouped", [False, True])
def test_mcmc_draws_what_the_reference_draws_for_a_seed(grouped) -> None:
    X, y, groups = small_data(2)
    model = FactorizationMachine(
        num_factors=3, epochs=4, optimizer="mcmc", posterior_samples=1, random_state=3, n_threads=1
    )
    model.fit(X, y, groups=groups if grouped else None)
    start, seed = initial_weights(model, X.shape[1])
    expected = ref.bayes_sweeps(X, y, start, "mcmc", 4, groups=groups if grouped else None, seed=seed)
    # posterior_samples=1 keeps the last sweep's sample only: the weights are that sample.
    assert_weights_close(weights_of(model), expected)


def test_mcmc_with_noise_groups_draws_what_the_reference_draws_on_every_thread_count() -> None:
    X, y, groups = small_data(3)
    labels = np.array(["b", "a", "c", "a"])[np.arange(80) % 4]  # codes in order of first appearance
    fits = [
        FactorizationMachine(
            num_factors=3, epochs=4, optimizer="mcmc", posterior_samples=1, random_state=3, n_threads=n
        ).fit(X, y, groups=groups, noise_groups=labels)
        for n in (1, 2)
    ]
    start, seed = initial_weights(fits[0], X.shape[1])
    codes = np.array([0, 1, 2, 1])[np.arange(80) % 4]
    expected = ref.bayes_sweeps(X, y, start, "mcmc", 4, groups=groups, seed=seed, noise_groups=codes)
    assert_weights_close(weights_of(fits[0]), expected)
    np.testing.assert_array_equal(fits[1].V_, fits[0].V_)
    # Another sampler than one noise precision for every row.
    shared = FactorizationMachine(**fits[0].get_params()).fit(X, y, groups=groups)
    assert not np.array_equal(shared.V_, fits[0].V_)


def test_per_level_noise_draws_what_the_reference_draws_on_every_thread_count() -> None:
    # One-hot users (100 columns: a run the threads share) and items; the default noise model.
    X, y, _ = one_hot_fm(600, 100, 70, seed=5)
    groups = np.repeat([0, 1], [100, 70])
    fits = [
        FactorizationMachine(
            num_factors=2, epochs=3, optimizer="mcmc", posterior_samples=1, random_state=4, n_threads=n
        ).fit(X, y, groups=groups)
        for n in (1, 2, 3)
    ]
    assert fits[0].noise == "per-level"
    start, seed = initial_weights(fits[0], X.shape[1])
    expected = ref.bayes_sweeps(X, y, start, "mcmc", 3, groups=groups, seed=seed, noise="per-level")
    assert_weights_close(weights_of(fits[0]), expected)
    for fit in fits[1:]:
        np.testing.assert_array_equal(fit.V_, fits[0].V_)
        for got, first in zip(fit.noise_precisions_, fits[0].noise_precisions_, strict=True):
            np.testing.assert_array_equal(got, first)
    # A precision per user and per item (the last sweep's: one sample kept).
    assert [p.shape for p in fits[0].noise_precisions_] == [(100,), (70,)]
    # libFM's one precision for every row draws otherwise; so does a fit of explicit noise_groups,
    # which replace the one-hot levels.
    shared = FactorizationMachine(**{**fits[0].get_params(), "noise": "shared"}).fit(X, y, groups=groups)
    assert shared.noise_precisions_ == []
    assert not np.array_equal(shared.V_, fits[0].V_)
    users = X.indices[0::2]
    explicit = FactorizationMachine(**fits[0].get_params()).fit(X, y, groups=groups, noise_groups=users)
    codes = label_codes(users)  # numbered in order of first appearance, as fit numbers them
    by_user = ref.bayes_sweeps(X, y, start, "mcmc", 3, groups=groups, seed=seed, noise_groups=codes)
    assert_weights_close(weights_of(explicit), by_user)
    # Without groups (one group, not one-hot) per-level is one precision for every row.
    alone = FactorizationMachine(**fits[0].get_params()).fit(X, y)
    shared_alone = FactorizationMachine(**shared.get_params()).fit(X, y)
    np.testing.assert_array_equal(alone.V_, shared_alone.V_)
    assert alone.noise_precisions_ == []


def test_per_level_noise_recovers_which_users_and_items_are_noisy() -> None:
    X, y, truth = one_hot_fm(8000, 80, 50, noise=0.0, seed=21)
    users, items = X.indices[0::2], X.indices[1::2] - 80
    # Each row's noise precision is its user's times its item's (the model's form).
    rng = np.random.default_rng(22)
    user_precision, item_precision = np.exp(rng.normal(0, 0.8, 80)), np.exp(rng.normal(0, 0.6, 50))
    y = truth + rng.normal(0, 1, 8000) * 0.5 / np.sqrt(user_precision[users] * item_precision[items])
    train, test = slice(0, 6000), slice(6000, None)
    error, fits = {}, {}
    for noise in ("shared", "per-level"):
        model = FactorizationMachine(
            num_factors=2, epochs=150, optimizer="mcmc", burn_in=30, noise=noise, random_state=0
        )
        fits[noise] = model.fit(X[train], y[train], groups=np.r_[np.zeros(80), np.ones(50)])
        error[noise] = np.sqrt(np.mean((model.predict(X[test]) - truth[test]) ** 2))
    user_means, item_means = fits["per-level"].noise_precisions_
    # The posterior mean of each level's precision follows the truth (log scale: the factors'
    # scales are determined only in their product) ...
    assert np.corrcoef(np.log(user_means), np.log(user_precision))[0, 1] > 0.9
    assert np.corrcoef(np.log(item_means), np.log(item_precision))[0, 1] > 0.9
    # ... and the precise rows count for more: closer to the noise-free truth.
    assert error["per-level"] < 0.95 * error["shared"], error


def test_noise_groups_recover_a_known_fm_of_users_with_different_noise_better() -> None:
    X, y, truth = one_hot_fm(5000, 100, 60, noise=0.0, seed=15)
    users = X.indices[0::2]
    # Half the users rate almost without noise, the other half with a lot.
    noisy = users % 2 == 1
    y = truth + np.random.default_rng(16).normal(0.0, np.where(noisy, 1.2, 0.1))
    train, test = slice(0, 4000), slice(4000, None)
    error = {}
    for grouped in (False, True):
        model = FactorizationMachine(
            num_factors=2, epochs=200, optimizer="mcmc", burn_in=50, noise="shared", random_state=0
        )
        model.fit(
            X[train],
            y[train],
            groups=np.r_[np.zeros(100), np.ones(60)],
            noise_groups=users[train] if grouped else None,
        )
        error[grouped] = np.sqrt(np.mean((model.predict(X[test]) - truth[test]) ** 2))
    # The precise users' ratings count for more, as they should: closer to the truth.
    assert error[True] < 0.9 * error[False], error


def test_reference_draws_have_their_moments() -> None:
    draws = ref.Draws(11)
    normals = np.array([draws.normal(1, i) for i in range(20_000)])
    gammas = np.array([draws.gamma(2, s, 3.0, 2.0) for s in range(5_000)])
    assert abs(normals.mean()) < 0.03 and abs(normals.std() - 1.0) < 0.03
    assert abs(gammas.mean() - 1.5) < 0.03 and abs(gammas.var() - 0.75) < 0.06


def test_mcmc_recovers_a_known_fm_and_beats_a_tuned_sgd_fit() -> None:
    X, y, truth = one_hot_fm(6000, 120, 80)
    train, valid, test = slice(0, 4000), slice(4000, 5000), slice(5000, None)
    mcmc = FactorizationMachine(num_factors=2, epochs=300, optimizer="mcmc", burn_in=50, random_state=0)
    mcmc.fit(X[train], y[train], groups=np.r_[np.zeros(120), np.ones(80)])
    predicted = mcmc.predict(X[test])
    # The posterior predictive mean is close to the noise-free truth (noise sd 0.3) ...
    assert np.sqrt(np.mean((predicted - truth[test]) ** 2)) < 0.2
    mcmc_rmse = mcmc.evaluate(X[test], y[test])["rmse"]
    # ... and beats Adam with its learning rate and decays chosen on a validation split.
    best = (np.inf, None)
    for lr in (0.01, 0.03):
        for wd in (1e-4, 1e-3, 1e-2):
            adam = FactorizationMachine(
                num_factors=2,
                epochs=60,
                mini_batch_size=50,
                bias_lr=lr,
                linear_lr=lr,
                factors_lr=lr,
                linear_wd=wd,
                factors_wd=wd,
                factors_init_sigma=0.1,
                random_state=0,
            )
            adam.fit(X[train], y[train], eval_set=(X[valid], y[valid]), early_stopping_rounds=5)
            best = min(best, (adam.history_[adam.best_epoch_]["eval_rmse"], adam), key=lambda b: b[0])
    adam_rmse = best[1].evaluate(X[test], y[test])["rmse"]
    assert mcmc_rmse < adam_rmse, (mcmc_rmse, adam_rmse)


def test_sampling_is_the_same_for_every_thread_count_and_run() -> None:
    # 300 users and 200 items: one-hot runs long enough for the block-parallel path.
    X, y, _ = one_hot_fm(3000, 300, 200, seed=4)
    fits = [
        FactorizationMachine(num_factors=4, epochs=6, optimizer="mcmc", random_state=5, n_threads=n).fit(X, y)
        for n in (1, 2, 2, 3)
    ]
    for other in fits[1:]:
        np.testing.assert_array_equal(other._posterior.factors, fits[0]._posterior.factors)
        assert other.history_ == fits[0].history_
    X_new = X[:50]
    np.testing.assert_array_equal(fits[0].predict(X_new), fits[3].predict(X_new))


def test_another_seed_draws_another_chain_of_the_same_posterior() -> None:
    X, y, truth = one_hot_fm(3000, 60, 40, seed=6)
    rmse = []
    for seed in (0, 1):
        model = FactorizationMachine(
            num_factors=2, epochs=150, optimizer="mcmc", burn_in=30, random_state=seed
        )
        model.fit(X[:2500], y[:2500])
        rmse.append(np.sqrt(np.mean((model.predict(X[2500:]) - truth[2500:]) ** 2)))
        assert not np.array_equal(model.V_, FactorizationMachine().get_params())  # fitted
    assert abs(rmse[0] - rmse[1]) < 0.03, rmse


def test_chains_pool_their_samples_the_same_for_every_thread_count() -> None:
    X, y, _ = one_hot_fm(3000, 300, 200, seed=4)
    params = {"num_factors": 2, "epochs": 6, "optimizer": "mcmc", "posterior_samples": 3, "random_state": 5}
    fits = [
        FactorizationMachine(**params, num_chains=3, n_threads=n).fit(
            X[:2500], y[:2500], eval_set=(X[2500:], y[2500:])
        )
        for n in (1, 2, 3, 3)
    ]
    for other in fits[1:]:
        for name in ("bias", "linear", "factors"):
            np.testing.assert_array_equal(getattr(other._posterior, name), getattr(fits[0]._posterior, name))
        assert other.history_ == fits[0].history_
    pooled = fits[0]._posterior
    # Sweeps 1, 3 and 5 of each chain, the first kept sweep's samples first: sample 3j + c is
    # chain c's j-th. The first chain is the fit of one chain (the same seed, the same draws).
    assert pooled.factors.shape == (9, 500, 2)
    alone = FactorizationMachine(**params).fit(X[:2500], y[:2500])._posterior
    np.testing.assert_array_equal(pooled.factors[0::3], alone.factors)
    for c in (1, 2):
        assert not np.array_equal(pooled.factors[c::3], alone.factors)
    # predict, eval_set and the weights average every chain's samples.
    expected = np.mean(
        [
            np.clip(ref.predict(X[2500:], {"bias": np.array([b]), "linear": w, "factors": V}), *pooled.clip)
            for b, w, V in zip(pooled.bias, pooled.linear, pooled.factors, strict=True)
        ],
        axis=0,
    )
    np.testing.assert_allclose(fits[0].predict(X[2500:]), expected, rtol=1e-10)
    assert fits[0].history_[-1]["eval_rmse"] == pytest.approx(
        fits[0].evaluate(X[2500:], y[2500:])["rmse"], rel=1e-9
    )
    np.testing.assert_allclose(fits[0].V_, pooled.factors.mean(axis=0, dtype=np.float64), rtol=1e-6)


@pytest.mark.parametrize(("optimizer", "chains"), [("mcmc", 0), ("als", 2), ("mcmc", 2.0)])
def test_a_refused_number_of_chains_leaves_a_fitted_model_as_it_was(optimizer, chains) -> None:
    X, y, _ = one_hot_fm(300, 10, 10, seed=14)
    model = FactorizationMachine(num_factors=2, epochs=4, optimizer="mcmc", num_chains=2, random_state=0)
    model.fit(X, y)
    before, history, posterior = model.predict(X), model.history_, model._posterior
    model.set_params(optimizer=optimizer, num_chains=chains)
    with pytest.raises(InvalidInputError, match="num_chains must be"):
        model.fit(X, y)
    np.testing.assert_array_equal(model.predict(X), before)
    assert model.history_ is history and model._posterior is posterior


def test_eval_set_reports_the_running_posterior_mean_and_predict_averages_the_kept_samples() -> None:
    X, y, _ = one_hot_fm(2000, 40, 30, seed=7)
    model = FactorizationMachine(
        num_factors=2, epochs=10, optimizer="mcmc", burn_in=3, posterior_samples=3, random_state=0
    )
    model.fit(X[:1500], y[:1500], eval_set=(X[1500:], y[1500:]))
    assert [e["epoch"] for e in model.history_] == list(range(10))
    # thin = ceil(7 / 3) = 3: sweeps 3, 6 and 9 are kept.
    posterior = model._posterior
    assert posterior.bias.shape == (3,) and posterior.factors.shape == (3, 70, 2)
    each = [
        np.clip(
            ref.predict(X[1500:], {"bias": np.array([b]), "linear": w, "factors": V}),
            y[:1500].min(),
            y[:1500].max(),
        )
        for b, w, V in zip(posterior.bias, posterior.linear, posterior.factors, strict=True)
    ]
    mean = np.mean(each, axis=0)
    np.testing.assert_allclose(model.predict(X[1500:]), mean, rtol=1e-10)
    assert model.history_[-1]["eval_rmse"] == pytest.approx(
        np.sqrt(np.mean((mean - y[1500:]) ** 2)), rel=1e-9
    )
    assert model.history_[6]["eval_rmse"] == pytest.approx(
        np.sqrt(np.mean((np.mean(each[:2], axis=0) - y[1500:]) ** 2)), rel=1e-9
    )
    assert model.history_[7]["eval_rmse"] == model.history_[6]["eval_rmse"]
    # The estimator's weights are the posterior mean of the parameters.
    np.testing.assert_allclose(model.V_, posterior.factors.mean(axis=0, dtype=np.float64), rtol=1e-6)


def test_each_samples_predictions_are_clipped_to_the_range_of_the_training_labels() -> None:
    X, y, _ = one_hot_fm(2000, 40, 30, seed=13)
    y = np.clip(np.round(y), 2.0, 4.0)  # bounded, as ratings are
    weight = np.ones(1500)
    y[0], weight[0] = 50.0, 0.0  # a row of weight 0 does not widen the range
    model = FactorizationMachine(
        num_factors=2, epochs=12, optimizer="mcmc", posterior_samples=4, random_state=0
    )
    model.fit(X[:1500], y[:1500], sample_weight=weight, eval_set=(X[1500:], y[1500:]))
    posterior = model._posterior
    np.testing.assert_array_equal(posterior.clip, [2.0, 4.0])
    raw = np.array(
        [
            ref.predict(X[1500:], {"bias": np.array([b]), "linear": w, "factors": V})
            for b, w, V in zip(posterior.bias, posterior.linear, posterior.factors, strict=True)
        ]
    )
    assert (raw < 2.0).any() and (raw > 4.0).any()  # so that clipping changes something
    mean = np.clip(raw, 2.0, 4.0).mean(axis=0)
    np.testing.assert_allclose(model.predict(X[1500:]), mean, rtol=1e-10)
    assert model.history_[-1]["eval_rmse"] == pytest.approx(
        np.sqrt(np.mean((mean - y[1500:]) ** 2)), rel=1e-9
    )


def test_an_implicit_block_is_swept_the_same_on_every_thread_count() -> None:
    # Each row also holds the items its user rated (an implicit-feedback block, 1/sqrt(n)): its
    # columns share rows and hold more entries (~3,000) than one task sums (2,048), so each is
    # cut into fixed chunks that the threads sum and update: the draws stay those of one thread.
    X, y, _ = one_hot_fm(3000, 30, 20, seed=14)
    users, items = X.indices[0::2], X.indices[1::2] - 30
    rated = sp.csr_array((np.ones(3000), (users, items)), shape=(30, 20))
    rated.data[:] = 1.0
    rated = sp.csr_array(rated.multiply(1.0 / np.sqrt(rated.sum(axis=1))[:, None]))
    X_implicit = sp.hstack([X, rated[users]], format="csr")
    assert np.diff(X_implicit[:, 50:].tocsc().indptr).max() > 2048
    groups = np.repeat([0, 1, 2], [30, 20, 20])
    fits = [
        FactorizationMachine(num_factors=3, epochs=4, optimizer="mcmc", random_state=15, n_threads=n).fit(
            X_implicit, y, groups=groups
        )
        for n in (1, 2, 3)
    ]
    for other in fits[1:]:
        np.testing.assert_array_equal(other._posterior.factors, fits[0]._posterior.factors)
        assert other.history_ == fits[0].history_


def test_groups_from_a_feature_encoder() -> None:
    X, y, _ = one_hot_fm(1000, 20, 15, seed=8)
    users, items = X.indices[0::2], X.indices[1::2] - 20
    enc = FeatureEncoder().one_hot("user").one_hot("item")
    X_enc = enc.fit_transform({"user": users, "item": items})
    by_encoder = FactorizationMachine(num_factors=2, epochs=5, optimizer="mcmc", random_state=0)
    by_labels = FactorizationMachine(num_factors=2, epochs=5, optimizer="mcmc", random_state=0)
    by_encoder.fit(X_enc, y, groups=enc)
    by_labels.fit(X_enc, y, groups=np.repeat(["user", "item"], [b.size for b in enc.blocks]))
    np.testing.assert_array_equal(by_encoder.V_, by_labels.V_)
    # An empty block (no column) numbers no group: the groups are those of the encoder.
    with_empty = FactorizationMachine(num_factors=2, epochs=5, optimizer="mcmc", random_state=0)
    with_empty.fit(X_enc, y, groups=[BlockInfo("unseen", "one_hot", 0, 0), *enc.blocks])
    np.testing.assert_array_equal(by_encoder.V_, with_empty.V_)
    ungrouped = FactorizationMachine(num_factors=2, epochs=5, optimizer="mcmc", random_state=0).fit(X_enc, y)
    assert not np.array_equal(ungrouped.V_, by_encoder.V_)


@pytest.mark.parametrize(("optimizer", "chains"), [("als", 1), ("mcmc", 1), ("mcmc", 3)])
def test_save_load_and_to_sagemaker_keep_what_predict_needs(tmp_path, optimizer, chains) -> None:
    X, y, _ = one_hot_fm(800, 20, 10, seed=9)
    model = FactorizationMachine(
        num_factors=2,
        epochs=20,
        optimizer=optimizer,
        random_state=0,
        factors_init_sigma=0.1,
        num_chains=chains,
    )
    model.fit(X, y)
    model.save(tmp_path / "model.fmfast")
    loaded = FactorizationMachine.load(tmp_path / "model.fmfast")
    assert loaded.get_params() == model.get_params()
    if optimizer == "mcmc":  # every chain's samples (20 each)
        assert loaded._posterior.factors.shape == (20 * chains, 30, 2)
        np.testing.assert_array_equal(loaded._posterior.factors, model._posterior.factors)
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    assert loaded.history_ == model.history_
    model.to_sagemaker(tmp_path / "model.tar.gz")
    artifact = FactorizationMachine.from_sagemaker(tmp_path / "model.tar.gz")
    np.testing.assert_array_equal(artifact.V_, model.V_)  # the posterior mean for MCMC


def test_a_damaged_posterior_in_a_model_file_is_refused(tmp_path) -> None:
    X, y, _ = one_hot_fm(300, 10, 10, seed=10)
    FactorizationMachine(num_factors=2, epochs=4, optimizer="mcmc", random_state=0).fit(X, y).save(
        tmp_path / "m"
    )
    with np.load(tmp_path / "m") as npz:
        arrays = dict(npz)
    arrays["posterior_factors"] = arrays["posterior_factors"][:, :3]
    np.savez(tmp_path / "bad.npz", **arrays)
    from fmfast import ModelFormatError

    with pytest.raises(ModelFormatError, match="posterior_factors"):
        FactorizationMachine.load(tmp_path / "bad.npz")
    with np.load(tmp_path / "m") as npz:
        arrays = dict(npz)
    low, high = arrays["posterior_clip"]
    arrays["posterior_clip"] = np.array([high + 1.0, low])
    np.savez(tmp_path / "empty_range.npz", **arrays)
    with pytest.raises(ModelFormatError, match="clipping range"):
        FactorizationMachine.load(tmp_path / "empty_range.npz")


@pytest.mark.parametrize(
    ("params", "fit_kwargs", "message"),
    [
        ({"predictor_type": "binary_classifier"}, {}, "'regressor' only"),
        ({"burn_in": 5, "epochs": 5}, {}, "burn_in"),
        ({"posterior_samples": 0}, {}, "posterior_samples must be"),
        ({"num_chains": 0}, {}, "num_chains must be"),
        ({"num_chains": 2**32 - 1}, {}, "lower posterior_samples or num_chains"),
        ({"factors_wd": -1.0, "optimizer": "als", "als_regularization": "fixed"}, {}, "factors_wd must be"),
        ({"optimizer": "als", "als_regularization": "auto"}, {}, "als_regularization must be"),
        ({"optimizer": "als", "als_regularization": None}, {}, "als_regularization must be"),
        ({"noise": "per-user"}, {}, "noise must be 'per-level' or 'shared', got \"per-user\""),
        ({"noise": None}, {}, "noise must be 'per-level' or 'shared', got None"),
        ({}, {"groups": np.zeros(3)}, "one label per column"),
        ({}, {"noise_groups": np.zeros(3)}, "one label per row"),
        (
            {"optimizer": "als"},
            {"noise_groups": np.zeros(200)},
            "noise_groups is an argument of optimizer='mcmc'",
        ),
        ({}, {"early_stopping_rounds": 2}, "early_stopping_rounds"),
    ],
)
def test_bad_settings_are_refused_and_leave_the_model_as_it_was(params, fit_kwargs, message) -> None:
    X, y, _ = one_hot_fm(200, 10, 10, seed=11)
    y_fit = (y > 3).astype(int) if params.get("predictor_type") == "binary_classifier" else y
    settings = {"optimizer": "mcmc", "num_factors": 2, "epochs": 3, **params}
    model = FactorizationMachine(**settings)
    eval_set = (X, y_fit) if "early_stopping_rounds" in fit_kwargs else None
    with pytest.raises(InvalidInputError, match=message):
        model.fit(X, y_fit, eval_set=eval_set, **fit_kwargs)
    assert not model.__sklearn_is_fitted__()


def test_partial_fit_and_recordio_input_are_refused(tmp_path) -> None:
    X, y, _ = one_hot_fm(200, 10, 10, seed=12)
    model = FactorizationMachine(num_factors=2, epochs=3, optimizer="als")
    with pytest.raises(AttributeError, match="fit whole"):
        model.partial_fit(X, y)
    with pytest.raises(InvalidInputError, match="read_recordio"):
        model.fit(str(tmp_path / "train.recordio"))
    with pytest.raises(InvalidInputError, match="groups is an argument"):
        FactorizationMachine(num_factors=2).fit(X, y, groups=np.zeros(X.shape[1]))
