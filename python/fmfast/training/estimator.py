"""Factorization Machines with Amazon SageMaker's hyperparameters, trained locally by the Rust core.

:class:`FactorizationMachine` takes SageMaker FM's hyperparameter names and defaults and follows
its semantics: MXNet's Adam (or SGD, AdaGrad) with per-group learning rates and L2 weight decay,
mini-batches in stored row order, lazy updates of the rows of the features present in a batch,
and SageMaker's metric names. It is scikit-learn compatible (``get_params``/``set_params``,
``fit``/``predict``/``score``) without depending on scikit-learn.

The estimator lives here; training (:mod:`fmfast.training.loop`) and the model file
(:mod:`fmfast.training.model_file`) live beside it.

Design choices, shared with the NumPy reference :mod:`fmfast.training._reference`:

* Weights are drawn in Python from ``np.random.default_rng(random_state)`` (bias, then ``w``,
  then ``V``, in float64, then rounded to float32) and handed to Rust, which keeps nothing
  between calls.
* Rows are visited in stored order each epoch, without shuffling (SageMaker reads its training
  channel sequentially); shuffle the rows yourself if you want otherwise.
* With ``deterministic=True`` (the default) results are bit-identical for every ``n_threads``: the
  core sums every gradient in row order. ``deterministic=False`` lets the threads train different
  mini-batches at once (Hogwild-style): faster on several cores, not reproducible bit for bit.
* Weights and optimizer state are float32, as SageMaker FM (MXNet) keeps them; the core computes
  in float64 and rounds each new value when it stores it.
"""

from __future__ import annotations

import inspect
import math
import os
import types
from collections.abc import Callable
from functools import update_wrapper
from typing import Any

import numpy as np

from fmfast._inputs import check_finite, prepare_rows, vector
from fmfast._progress import Progress, fit_progress
from fmfast._scores import raw_scores, sigmoid
from fmfast.exceptions import InvalidInputError
from fmfast.interop.artifact import (
    FMFAST_SETTINGS,
    SageMakerFM,
    format_hyperparameters,
    parse_hyperparameters,
    read_sagemaker_model,
    write_sagemaker_model,
)
from fmfast.training._labels import SAGEMAKER_CLASSES, as_target, checked_labels, classes_of, encode
from fmfast.training._sklearn import not_fitted_error, tags
from fmfast.training.bayes import Groups, Posterior, bayes_config, fit_bayes
from fmfast.training.loop import (
    BAYES_OPTIMIZERS,
    TrainState,
    aligned,
    config,
    extend_history,
    fit_epochs,
    sagemaker_metrics,
    state_from,
    train_epoch,
)
from fmfast.training.model_file import MODEL_FORMAT, MODEL_FORMAT_VERSION, json_safe, read_model, write_model

__all__ = ["MAX_NUM_FACTORS", "MODEL_FORMAT", "MODEL_FORMAT_VERSION", "FactorizationMachine"]

_INIT_METHODS = ("normal", "uniform", "constant")
_GROUPS = ("bias", "linear", "factors")
#: Largest ``num_factors``: beyond it, factors and their optimizer state (``feature_dim * num_factors``
#: values each) and the training scratch (``mini_batch_size * num_factors``) outgrow any memory.
MAX_NUM_FACTORS = 1 << 16
#: The range of each integer setting that only Python reads: ``num_factors`` sizes the weights
#: drawn here, and ``n_threads`` a pool that can be started.
_INT_RANGES = {
    "num_factors": (1, MAX_NUM_FACTORS),
    "n_threads": (0, 1024),
}
#: What a training call replaces, and a failed one puts back.
_FITTED_ATTRIBUTES = ("_state", "history_", "best_epoch_", "classes_", "_posterior", "noise_precisions_")


class _ClassifierMethod:
    """A method of the binary classifier only (scikit-learn's ``available_if``, without importing it).

    On a regressor, looking it up raises ``AttributeError``: ``hasattr(regressor, "predict_proba")``
    is ``False``, which is how scikit-learn tells a classifier's scorers and checks from a regressor's.
    """

    def __init__(self, method: Callable[..., Any]) -> None:
        self.method = method
        update_wrapper(self, method)  # type: ignore[arg-type]  # typeshed: the wrapper is a callable; it copies onto any object

    def __get__(self, model: Any, owner: type | None = None) -> Any:
        if model is None:
            return self
        if model.predictor_type != "binary_classifier":
            raise AttributeError(
                f"{type(model).__name__} with predictor_type={model.predictor_type!r} has no "
                f"{self.method.__name__}: it is a method of the binary_classifier"
            )
        return types.MethodType(self.method, model)


class _GradientMethod(_ClassifierMethod):
    """A method of the gradient optimizers only: looked up on an ALS or MCMC model, ``AttributeError``.

    ``hasattr(model, "partial_fit")`` is then ``False``, which tells scikit-learn (its checks,
    its incremental helpers) that the model fits whole.
    """

    def __get__(self, model: Any, owner: type | None = None) -> Any:
        if model is None:
            return self
        if model.optimizer in BAYES_OPTIMIZERS:
            raise AttributeError(
                f"{type(model).__name__} with optimizer={model.optimizer!r} has no {self.method.__name__}: "
                "ALS and MCMC fit whole"
            )
        return types.MethodType(self.method, model)


def _unchanged_on_error(train: Callable[..., Any]) -> Callable[..., Any]:
    """A training method after which an exception leaves the model as it was before the call.

    Its fitted attributes (weights and optimizer state, ``history_``, ``best_epoch_``,
    ``classes_``) are put back. Ctrl-C (``KeyboardInterrupt``, not an ``Exception``) is not
    undone: it keeps the epochs that completed, as documented by :meth:`FactorizationMachine.fit`.
    """

    def unchanged_on_error(model: FactorizationMachine, *args: Any, **kwargs: Any) -> Any:
        saved = {name: model.__dict__[name] for name in _FITTED_ATTRIBUTES if name in model.__dict__}
        try:
            return train(model, *args, **kwargs)
        except Exception:
            for name in _FITTED_ATTRIBUTES:
                model.__dict__.pop(name, None)
            model.__dict__.update(saved)
            raise

    return update_wrapper(unchanged_on_error, train)


class FactorizationMachine:
    """A Factorization Machine with SageMaker FM's hyperparameters and defaults.

    The model scores a row ``x`` as ``ŷ = w0 + Σ wᵢxᵢ + ½ Σ_f [(Σᵢ v_if xᵢ)² - Σᵢ v_if² xᵢ²]``.
    ``predictor_type="regressor"`` minimises squared error; ``"binary_classifier"`` minimises the
    log loss of ``sigmoid(ŷ)`` against labels 0/1 and predicts label 1 when ``sigmoid(ŷ) ≥ 0.5``.
    The classifier takes any two class labels (``classes_``, sorted; the second is SageMaker's
    label 1) and follows scikit-learn's classifier protocol: :meth:`predict` returns class labels,
    :meth:`predict_proba` the probabilities of both classes, :meth:`decision_function` the logit
    ŷ. SageMaker's ``score`` is :meth:`predict_score` for both predictor types.

    It is a scikit-learn estimator (tags, ``clone``, pipelines, searches, ``check_estimator``)
    without depending on scikit-learn. An error in :meth:`fit` or :meth:`partial_fit` leaves a
    fitted model as it was.

    Args:
        predictor_type ({"regressor", "binary_classifier"}): The task (SageMaker requires it; the default is
            scikit-learn's need of one).
        num_factors (int): Dimension ``k`` of the factors, 1 to ``MAX_NUM_FACTORS`` (65,536). SageMaker
            requires it; the default, 64, is that of SageMaker's FM examples.
        epochs (int): Passes over the data per :meth:`fit` (below 2³²).
        mini_batch_size (int): Rows per gradient step (below 2³²); the gradient is averaged over the batch
            unless ``rescale_grad`` is set.
        bias_lr, linear_lr, factors_lr (float): Learning rates of ``w0``, ``w`` and ``V``.
        bias_wd, linear_wd, factors_wd (float): L2 weight decay of each group, added to the gradient as
            ``wd·w``.
        bias_init_method, linear_init_method, factors_init_method (str): ``"normal"``, ``"uniform"`` or
            ``"constant"``: how each group is initialised: ``normal(0, *_init_sigma)``,
            ``uniform(-*_init_scale, *_init_scale)`` or ``*_init_value``.
        bias_init_scale, bias_init_sigma, bias_init_value (float or None): Parameters of the bias's
            initialiser (``*_init_scale`` and ``*_init_value`` are required by ``uniform`` and ``constant``).
        linear_init_scale, linear_init_sigma, linear_init_value (float or None): The same for ``w``.
        factors_init_scale, factors_init_sigma, factors_init_value (float or None): The same for ``V``;
            ``factors_init_sigma=None`` (the default) is SageMaker's 0.001, or 1.0 for adaptive ALS
            (see ``als_regularization``).
        clip_gradient (float or None): Clip gradients to ``±clip_gradient``.
        eps (float or None): Adam's (default 1e-8) or AdaGrad's (default 1e-7) ε.
        rescale_grad (float or None): Gradient scale; ``None`` averages over the mini-batch.
        optimizer (str): ``"adam"``, ``"sgd"`` or ``"adagrad"``: the update rule (SageMaker FM uses Adam); or,
            for the regressor, ``"als"`` (alternating least squares: each sweep sets every coordinate to its
            exact minimiser of the squared error plus L2 penalties, see ``als_regularization``) or
            ``"mcmc"`` (Bayesian FM by Gibbs sampling, libFM's, with no learning rate or regularisation to
            tune: priors per group of features and the noise are sampled). Both count ``epochs`` as
            sweeps, start from the ``*_init_*`` weights, and take ``groups`` in :meth:`fit` (see
            :mod:`fmfast.training.bayes`).
        burn_in (int): MCMC: first sweeps whose samples are not kept (below ``epochs``).
        posterior_samples (int): MCMC: most samples kept, evenly spaced after the burn-in and the last
            sweep's always; :meth:`predict` averages their predictions. Each holds ``feature_dim x
            (num_factors + 1)`` float32 values. The default keeps every sweep of a fit of up to 1,000,
            as libFM averages every sweep (more samples, less Monte Carlo noise in the mean).
        num_chains (int): MCMC: independent chains, each of ``epochs`` sweeps from the same start with
            its own draws (seeds derived from ``random_state``), run side by side on the ``n_threads``;
            the samples every chain keeps (``posterior_samples`` each) together are the posterior that
            :meth:`predict`, ``eval_set`` and the weights average. More chains cost proportionally more
            sweeps (and memory for the samples) and average away more of the chains' spread.
        noise (str): MCMC's noise model. ``"per-level"`` (the default): each row's noise precision is
            the product of one precision per one-hot group of features of ``groups`` in :meth:`fit`
            (every row has exactly one nonzero value among the group's columns: the user of a rating,
            its movie), that of the row's level in the group, all sampled, the levels of a group
            under a shared prior whose rate is sampled too: users differ in how noisy their ratings
            are. Without one-hot groups (``groups=None``: one group) it is one precision for every
            row. ``"shared"``: one precision for every row, libFM's model. ``noise_groups`` in
            :meth:`fit` replaces either. ALS ignores it. On MovieLens-100K (one-hot user and movie,
            500 sweeps) per-level noise lowers the test RMSE from 0.9010 to 0.8964; it settles more
            slowly than one precision (level with it after ~500 sweeps with the implicit block,
            behind before: docs/design/bayes.md).
        als_regularization (str): ALS's penalties. ``"adaptive"`` (the default): nothing to tune; the
            strength of each group of features (per factor) and the noise level are re-estimated every
            sweep from the current parameters and their uncertainty (mean-field variational Bayes with
            MCMC's priors), and the ``*_wd`` are not used. It needs a starting spread at the priors'
            scale, which is what the default ``factors_init_sigma=None`` gives it (1.0): from SageMaker's
            0.001 most factors are switched off.
            ``"fixed"``: the ``*_wd`` decays, with the meaning they have for SGD and Adam (the objective
            is the mean squared error plus ``Σ wd θ²``).
        n_threads (int): Threads for training and scoring, at most 1024; 0 uses every core (capped by
            ``FMFAST_NUM_THREADS``). Training times stretches of batches on all of them and on one and
            keeps whichever is faster (more threads do not always pay: busy cores, threads that share the
            model's cache lines; a fit too short to measure trains on one thread), so an explicit
            ``n_threads=2`` is not slower than one thread. Deterministic training also trains a model
            that fits one core's caches (weights and optimizer state up to 3 MiB, as MovieLens-100K's)
            on one thread; its results do not depend on either.
        deterministic (bool): ``True`` (the default): every thread works on the same mini-batch, in a
            fixed order, so results are bit-identical for every ``n_threads`` and equal the NumPy
            reference; training measures, every few dozen batches, whether one thread is faster than
            all of them and uses it then (results do not change). ``False``: each thread trains
            mini-batches of its own at the same time against the shared weights, without locks
            (Hogwild-style, as xLearn and LightFM train, and SageMaker across instances): no thread
            waits for another within a stretch of 64,000 rows, whose thread count is chosen as above
            (a stretch on one thread trains as the deterministic schedule does), and accuracy is that
            of the deterministic schedule within noise (test RMSE on MovieLens-100K within 0.0005)
            where mini-batches rarely share features; where most do (a few hundred features), results
            vary from run to run (an update that another thread writes within the same feature's
            update is lost). Each thread trains its batch directly on the shared weights, copying one
            row at a time through a small buffer (1.12-1.18x one thread's instructions per sample). On
            two cores, two threads on one model gained 1.0-1.7x one thread, by the minute, in either
            schedule (two fits on models of their own gained 2.0x: the threads pay for the model's cache
            lines that the other core wrote). The default is ``True`` because it is reproducible
            (scikit-learn's checks and searches, and the parity with SageMaker, expect a fixed seed to
            give a fixed model) and about as fast; see ``docs/design/training.md``. With one thread
            both train the same.
        random_state (int, numpy Generator or None): Seed of the initial weights.
        progress (bool or callable): ``True`` draws a progress bar (one per fit, over all its epochs, with
            the last epoch's metrics); a callable receives the number of rows done so far in the call.

    Attributes:
        classes_ (ndarray): The classifier's two class labels, sorted (0 and 1 for labels 0/1, RecordIO input
            and SageMaker models).
        w0_, w_, V_ (float, ndarray, ndarray): The fitted bias, linear weights ``(d,)`` and
            factors ``(d, k)``.
        feature_dim_ (int): Number of features ``d`` (inferred from ``X``); also ``n_features_in_``. Like
            every fitted attribute, absent (``NotFittedError``, an ``AttributeError``) before ``fit``.
        history_ (list of dict): Training metrics of each epoch, under SageMaker's names, gathered during each
            pass.
        n_updates_ (int): Mini-batch updates so far (Adam's ``t``).
        noise_precisions_ (list of numpy.ndarray): MCMC: the posterior mean of each level's noise
            precision (1 / variance), one array per factor of the rows' precisions: each one-hot
            group's (``noise="per-level"``, groups in order, a level per column of the group), or
            ``noise_groups``' (a level per code); empty with one precision for every row. Only the
            product of a row's factors is determined, so compare levels within a factor. Not saved.
    """

    #: Set by an MCMC fit only (documented above), hence declared here rather than in ``fit``.
    noise_precisions_: list[np.ndarray]

    def __init__(
        self,
        predictor_type: str = "regressor",
        num_factors: int = 64,
        *,
        epochs: int = 1,
        mini_batch_size: int = 1000,
        bias_lr: float = 0.1,
        linear_lr: float = 0.001,
        factors_lr: float = 0.0001,
        bias_wd: float = 0.01,
        linear_wd: float = 0.001,
        factors_wd: float = 0.00001,
        bias_init_method: str = "normal",
        bias_init_scale: float | None = None,
        bias_init_sigma: float = 0.01,
        bias_init_value: float | None = None,
        linear_init_method: str = "normal",
        linear_init_scale: float | None = None,
        linear_init_sigma: float = 0.01,
        linear_init_value: float | None = None,
        factors_init_method: str = "normal",
        factors_init_scale: float | None = None,
        factors_init_sigma: float | None = None,
        factors_init_value: float | None = None,
        clip_gradient: float | None = None,
        eps: float | None = None,
        rescale_grad: float | None = None,
        optimizer: str = "adam",
        burn_in: int = 0,
        posterior_samples: int = 1000,
        num_chains: int = 1,
        noise: str = "per-level",
        als_regularization: str = "adaptive",
        n_threads: int = 0,
        deterministic: bool = True,
        random_state: int | np.random.Generator | None = None,
        progress: Progress = False,
    ) -> None:
        self.predictor_type = predictor_type
        self.num_factors = num_factors
        self.epochs = epochs
        self.mini_batch_size = mini_batch_size
        self.bias_lr = bias_lr
        self.linear_lr = linear_lr
        self.factors_lr = factors_lr
        self.bias_wd = bias_wd
        self.linear_wd = linear_wd
        self.factors_wd = factors_wd
        self.bias_init_method = bias_init_method
        self.bias_init_scale = bias_init_scale
        self.bias_init_sigma = bias_init_sigma
        self.bias_init_value = bias_init_value
        self.linear_init_method = linear_init_method
        self.linear_init_scale = linear_init_scale
        self.linear_init_sigma = linear_init_sigma
        self.linear_init_value = linear_init_value
        self.factors_init_method = factors_init_method
        self.factors_init_scale = factors_init_scale
        self.factors_init_sigma = factors_init_sigma
        self.factors_init_value = factors_init_value
        self.clip_gradient = clip_gradient
        self.eps = eps
        self.rescale_grad = rescale_grad
        self.optimizer = optimizer
        self.burn_in = burn_in
        self.posterior_samples = posterior_samples
        self.num_chains = num_chains
        self.noise = noise
        self.als_regularization = als_regularization
        self.n_threads = n_threads
        self.deterministic = deterministic
        self.random_state = random_state
        self.progress = progress

    # -- scikit-learn protocol -------------------------------------------------------------------

    @classmethod
    def _param_names(cls) -> list[str]:
        signature = inspect.signature(cls.__init__)
        return [name for name in signature.parameters if name != "self"]

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The constructor arguments, as given (scikit-learn's ``get_params``)."""
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params: Any) -> FactorizationMachine:
        """Set constructor arguments by name; unknown names raise :class:`InvalidInputError`."""
        valid = set(self._param_names())
        for name, value in params.items():
            if name not in valid:
                raise InvalidInputError(f"invalid parameter {name!r} for {type(self).__name__}")
            setattr(self, name, value)
        return self

    def __sklearn_tags__(self) -> Any:
        """scikit-learn's description of the estimator: a regressor, or a binary classifier."""
        return tags(classifier=self.predictor_type == "binary_classifier")

    def __sklearn_is_fitted__(self) -> bool:
        """Whether the model has weights (scikit-learn's ``check_is_fitted`` asks this)."""
        return getattr(self, "_state", None) is not None

    def __repr__(self) -> str:
        defaults = inspect.signature(type(self).__init__).parameters
        shown = [
            f"{name}={value!r}"
            for name, value in self.get_params().items()
            if defaults[name].default is inspect.Parameter.empty or value is not defaults[name].default
        ]
        return f"{type(self).__name__}({', '.join(shown)})"

    # -- validation ------------------------------------------------------------------------------

    def _check_params(self) -> None:
        """Refuse a parameter training cannot use, before anything is read or drawn."""
        # The hyperparameters of training are the core's to check (FmConfig, BayesConfig); the rest
        # are Python's.
        if self.optimizer in BAYES_OPTIMIZERS:
            bayes_config(self)
        else:
            config(self, self.epochs)
        for name, (low, high) in _INT_RANGES.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or not low <= value <= high:
                raise InvalidInputError(f"{name} must be an integer >= {low} and <= {high}, got {value!r}")
        for group in _GROUPS:
            method = getattr(self, f"{group}_init_method")
            if method not in _INIT_METHODS:
                raise InvalidInputError(
                    f"{group}_init_method must be 'normal', 'uniform' or 'constant', got {method!r}"
                )
            needed = {"normal": "sigma", "uniform": "scale", "constant": "value"}[method]
            value = self._init_parameter(group, needed)
            if not isinstance(value, int | float | np.number) or not math.isfinite(value):
                raise InvalidInputError(
                    f"{group}_init_method={method!r} needs a finite {group}_init_{needed}, got {value!r}"
                )
            if needed != "value" and value < 0:
                raise InvalidInputError(f"{group}_init_{needed} must be >= 0, got {value!r}")

    def _init_parameter(self, group: str, name: str) -> Any:
        """``{group}_init_{name}``, with ``factors_init_sigma=None`` resolved for the optimizer.

        Adaptive ALS starts its factors at its priors' scale (1.0): from a small spread it
        estimates the factors' strengths as large and switches them off. Every other optimizer
        starts at SageMaker's 0.001.
        """
        value = getattr(self, f"{group}_init_{name}")
        if group == "factors" and name == "sigma" and value is None:
            adaptive = self.optimizer == "als" and self.als_regularization == "adaptive"
            return 1.0 if adaptive else 0.001
        return value

    def _fitted_state(self) -> TrainState:
        state: TrainState | None = getattr(self, "_state", None)
        if state is None:
            raise not_fitted_error(f"this {type(self).__name__} is not fitted yet; call fit first")
        return state

    def _check_n_features(self, n_cols: int, state: TrainState) -> None:
        if n_cols != state.linear.shape[0]:
            raise InvalidInputError(
                f"X has {n_cols} features, but {type(self).__name__} is expecting "
                f"{state.linear.shape[0]} features as input (its feature_dim)"
            )

    def _encoded_target(self, y: Any, classes: Any = None) -> np.ndarray | None:
        """``y`` as the labels training reads; for the classifier, sets ``classes_``.

        The classifier's labels become 0/1, the index of each in the fitted model's classes, else
        in ``classes`` (``partial_fit``'s first call) or in y's own. ``y=None`` (labels from
        RecordIO records, 0 or 1) gives classes 0 and 1 to a model that has none.
        """
        classifier = self.predictor_type == "binary_classifier"
        if classes is not None and not classifier:
            raise InvalidInputError("classes is an argument of predictor_type='binary_classifier'")
        target = None if y is None else as_target(y)
        if not classifier:
            # Numbers held as Python objects (a pandas column of mixed types) are read as floats.
            return target.astype(np.float64) if target is not None and target.dtype.kind == "O" else target
        # A fitted regressor switched to the classifier by set_params has no classes yet.
        fitted: np.ndarray | None = getattr(self, "classes_", None) if self.__sklearn_is_fitted__() else None
        given = None if classes is None else classes_of(np.asarray(classes))
        if fitted is None and given is not None:
            fitted = given
        elif fitted is None:
            fitted = SAGEMAKER_CLASSES if target is None else classes_of(target)
        elif given is not None and not np.array_equal(given, fitted):
            raise InvalidInputError(f"classes {given.tolist()} differ from the model's {fitted.tolist()}")
        self.classes_ = fitted
        return None if target is None else encode(target, fitted)

    # -- training --------------------------------------------------------------------------------

    @_unchanged_on_error
    def fit(
        self,
        X: Any,
        y: Any = None,
        sample_weight: Any = None,
        *,
        eval_set: tuple[Any, Any] | None = None,
        early_stopping_rounds: int | None = None,
        groups: Groups = None,
        noise_groups: Any = None,
    ) -> FactorizationMachine:
        """Train from freshly initialised weights for ``epochs`` passes over ``X``.

        Args:
            X: any scipy sparse matrix or dense array (a canonical CSR matrix with float32 or float64
                values is used without copying), or the path of a RecordIO-protobuf file or of a
                directory of them (shards, read in name order), streamed with bounded memory; the
                labels then come from the records.
            y: one label per row: the regressor's targets, or the classifier's labels of two
                classes (any two values; 0/1 are SageMaker's); ``None`` for RecordIO input,
                whose classifier labels are 0 or 1.
            sample_weight: optionally scales each row's gradient.
            eval_set: ``(X_eval, y_eval)`` evaluated after every epoch; its metrics join
                ``history_`` with an ``eval_`` prefix. SageMaker has no such channel: an extra.
            early_stopping_rounds: stop when the eval loss (``rmse``, or the cross entropy of
                the classifier) has not improved for this many epochs, and keep the weights of
                the best epoch (``best_epoch_``). Needs ``eval_set``; not for ALS and MCMC.
            groups: ALS and MCMC only: the groups of features that share a prior (libFM's
                ``-meta``): a fitted :class:`~fmfast.FeatureEncoder` (each block a group), its
                ``blocks()``, or one label per column; ``None``, one group. MCMC's ``eval_set``
                metrics are those of the running posterior mean, as :meth:`predict` would give. With
                ``noise="per-level"`` (MCMC's default) the levels of each one-hot group also get
                their own noise precisions.
            noise_groups: MCMC only: one label per row; the rows of a label share a noise precision,
                sampled, instead of the model of ``noise``: e.g. the user of each rating (users
                differ in how noisy their ratings are). The groups' precisions share a prior whose
                rate is sampled too, so a group of few rows is pulled towards the others. On
                MovieLens-100K (one-hot), a precision per user lowers the test RMSE by 0.003 against
                one for every row (docs/design/bayes.md).

        Ctrl-C stops training between blocks of mini-batches and leaves the model, its optimizer
        state and ``history_`` at the last complete epoch (unfitted when none had ended), then
        raises ``KeyboardInterrupt``. A fit of several epochs in memory keeps a copy of the
        weights and optimizer state for this. Any other error leaves the model as it was before
        the call.
        """
        if early_stopping_rounds is not None and (eval_set is None or early_stopping_rounds < 1):
            raise InvalidInputError("early_stopping_rounds needs an eval_set and must be at least 1")
        bayes = self.optimizer in BAYES_OPTIMIZERS
        if (early_stopping_rounds is not None and bayes) or (groups is not None and not bayes):
            raise InvalidInputError(
                "groups is an argument of optimizer='als' and 'mcmc', early_stopping_rounds not"
            )
        if noise_groups is not None and self.optimizer != "mcmc":
            raise InvalidInputError("noise_groups is an argument of optimizer='mcmc'")
        self._check_params()
        self._state: TrainState | None = None
        self._posterior: Posterior | None = None
        self.__dict__.pop("noise_precisions_", None)
        y = self._encoded_target(y)
        self.best_epoch_: int | None = None
        self.history_: list[dict[str, float]] = []
        with fit_progress(self.progress, int(self.epochs)) as progress:
            if bayes:
                fit_bayes(self, X, y, sample_weight, eval_set, groups, progress, noise_groups)
            else:
                fit_epochs(self, X, y, sample_weight, eval_set, early_stopping_rounds, progress)
        return self

    @_GradientMethod
    @_unchanged_on_error
    def partial_fit(
        self, X: Any, y: Any = None, sample_weight: Any = None, *, classes: Any = None
    ) -> FactorizationMachine:
        """One more pass over ``X``, continuing from the current weights and optimizer state.

        ``X`` and ``y`` are as in :meth:`fit`. An unfitted model is initialised first, as by
        :meth:`fit`; ``classes`` (the classifier's two labels, scikit-learn's argument) then
        names classes that the first ``y`` may not hold both of. An error leaves the model as it
        was before the call.
        """
        history = self.history_ if getattr(self, "_state", None) is not None else []
        y = self._encoded_target(y, classes)
        self._posterior = None
        with fit_progress(self.progress, 1) as progress:
            stats = train_epoch(self, X, y, sample_weight, progress)
            self.history_ = extend_history(history, self.predictor_type, [stats])
            progress.epoch_ended(stats[0], self.history_[-1])
        return self

    # -- fitted model ----------------------------------------------------------------------------

    @property
    def w0_(self) -> float:
        """Fitted bias."""
        return float(self._fitted_state().bias[0])

    @property
    def w_(self) -> np.ndarray:
        """Fitted linear weights, float32, shape ``(feature_dim,)``."""
        return self._fitted_state().linear

    @property
    def V_(self) -> np.ndarray:
        """Fitted factors, float32, shape ``(feature_dim, num_factors)``."""
        return self._fitted_state().factors

    @property
    def feature_dim_(self) -> int:
        """Number of features the model was fitted on."""
        return int(self._fitted_state().linear.shape[0])

    @property
    def n_features_in_(self) -> int:
        """Number of features the model was fitted on (scikit-learn's name)."""
        return self.feature_dim_

    @property
    def n_updates_(self) -> int:
        """Mini-batch updates applied so far."""
        return int(self._fitted_state().t)

    def _raw_scores(self, X: Any, progress: Progress) -> np.ndarray:
        """ŷ of the rows of ``X`` (the classifier's logit), reporting to ``progress``."""
        state = self._fitted_state()
        rows = prepare_rows(X)
        check_finite(rows)
        self._check_n_features(rows.n_cols, state)
        posterior: Posterior | None = getattr(self, "_posterior", None)
        if posterior is not None:
            return posterior.scores(rows, int(self.n_threads))
        return raw_scores(
            rows,
            float(state.bias[0]),
            state.linear,
            state.factors,
            n_threads=int(self.n_threads),
            progress=progress,
        )

    def predict_score(self, X: Any) -> np.ndarray:
        """SageMaker's ``score``: ŷ for the regressor, the classifier's probability ``sigmoid(ŷ)``.

        The classifier's is the probability of its second class, ``classes_[1]`` (SageMaker's
        label 1): what the endpoint and batch transform answer as ``score``.
        """
        raw = self._raw_scores(X, self.progress)
        return raw if self.predictor_type == "regressor" else sigmoid(raw)

    def predict(self, X: Any) -> np.ndarray:
        """The regressor's prediction ŷ, or the classifier's class label of each row.

        The classifier predicts ``classes_[1]`` where ``sigmoid(ŷ) ≥ 0.5``, else ``classes_[0]``.
        """
        if self.predictor_type == "regressor":
            return self._raw_scores(X, self.progress)
        index = self.predict_label(X)
        labels: np.ndarray = self.classes_[index]
        return labels

    @_ClassifierMethod
    def decision_function(self, X: Any) -> np.ndarray:
        """The classifier's logit ŷ of each row, shape ``(n,)`` (positive favours ``classes_[1]``)."""
        return self._raw_scores(X, self.progress)

    @_ClassifierMethod
    def predict_proba(self, X: Any) -> np.ndarray:
        """The classifier's probabilities of ``classes_[0]`` and ``classes_[1]``, shape ``(n, 2)``.

        The second column is SageMaker's score (:meth:`predict_score`).
        """
        score = self.predict_score(X)
        return np.column_stack([1.0 - score, score])

    def predict_label(self, X: Any) -> np.ndarray:
        """SageMaker's ``predicted_label`` of the classifier: 1 where ``sigmoid(ŷ) ≥ 0.5``, else 0."""
        if self.predictor_type != "binary_classifier":
            raise InvalidInputError("predict_label needs predictor_type='binary_classifier'; use predict")
        return (self.predict_score(X) >= 0.5).astype(np.int64)

    def evaluate(self, X: Any, y: Any) -> dict[str, float]:
        """SageMaker's test metrics of ``X`` against ``y``, under SageMaker's names.

        ``rmse`` for the regressor; ``binary_classification_accuracy``,
        ``binary_classification_cross_entropy`` and ``binary_f_beta`` (F1 at 0.5) for the classifier,
        whose ``y`` holds labels of its ``classes_``.
        """
        return self._evaluate(X, y, self.progress)

    def _evaluate(self, X: Any, y: Any, progress: Progress) -> dict[str, float]:
        """:meth:`evaluate`, reporting to ``progress``."""
        raw = self._raw_scores(X, progress)
        if self.predictor_type == "binary_classifier":
            y = encode(as_target(y), self.classes_)
        labels = checked_labels(y, raw.shape[0], self.predictor_type)
        if raw.shape[0] == 0:
            raise InvalidInputError("X has no rows")
        if self.predictor_type == "regressor":
            return sagemaker_metrics(
                "regressor", raw.shape[0], float(((raw - labels) ** 2).sum()), 0, 0, 0, 0
            )
        loss = np.maximum(raw, 0.0) - raw * labels + np.log1p(np.exp(-np.abs(raw)))
        predicted, truth = sigmoid(raw) >= 0.5, labels == 1.0
        return sagemaker_metrics(
            "binary_classifier",
            raw.shape[0],
            float(loss.sum()),
            int((predicted & truth).sum()),
            int((predicted & ~truth).sum()),
            int((~predicted & ~truth).sum()),
            int((~predicted & truth).sum()),
        )

    def score(self, X: Any, y: Any, sample_weight: Any = None) -> float:
        """scikit-learn's score: R² for the regressor, accuracy for the classifier."""
        n_rows = prepare_rows(X).n_rows
        weights = np.ones(n_rows) if sample_weight is None else vector(sample_weight, n_rows, "sample_weight")
        if self.predictor_type == "binary_classifier":
            truth = as_target(y)
            if truth.shape[0] != n_rows:
                raise InvalidInputError(f"X has {n_rows} rows but y has {truth.shape[0]} values")
            return float(np.average(self.predict(X) == truth, weights=weights))
        labels = checked_labels(y, n_rows, self.predictor_type)
        residual = float((weights * (labels - self.predict(X)) ** 2).sum())
        total = float((weights * (labels - np.average(labels, weights=weights)) ** 2).sum())
        return 1.0 - residual / total if total > 0 else 0.0

    # -- persistence -----------------------------------------------------------------------------

    @classmethod
    def from_sagemaker(
        cls, source: Any, *, storage_options: dict[str, Any] | None = None, **params: Any
    ) -> FactorizationMachine:
        """A fitted model from a SageMaker FM artifact (``model.tar.gz``, ``model_algo-1``, params file).

        Hyperparameters come from the artifact's ``meta.json`` (strings, as SageMaker stores
        them, or JSON values) and fmfast's own settings from its ``fmfast.json`` if it has one
        (written by :meth:`to_sagemaker`), then from ``params``. The weights are SageMaker's
        exactly; optimizer state starts fresh, so :meth:`partial_fit` continues training with new
        moments. Nothing in the artifact is executed. ``source`` may be a store's URL
        (``s3://bucket/job/output/model.tar.gz``), opened with ``storage_options``.

        Raises:
            ModelFormatError: a damaged, hostile or unsupported artifact, or a stored
                hyperparameter that is not of its type (the message names it).
        """
        artifact = read_sagemaker_model(source, storage_options=storage_options)
        known = set(cls._param_names())
        stored = {**parse_hyperparameters(artifact.hyperparameters), **artifact.fmfast_params}
        settings = {k: v for k, v in stored.items() if k in known}
        settings.update(params)
        settings["predictor_type"] = artifact.predictor_type
        settings["num_factors"] = artifact.num_factors
        model = cls(**settings)
        model._check_params()
        weights = (np.array([artifact.w0]), artifact.w, artifact.V)
        model._state = state_from(model, *(aligned(w) for w in weights))
        model.history_ = []
        if model.predictor_type == "binary_classifier":
            model.classes_ = SAGEMAKER_CLASSES
        return model

    def to_sagemaker(
        self, path: str | os.PathLike[str], *, storage_options: dict[str, Any] | None = None
    ) -> None:
        """Write the model as a SageMaker FM ``model.tar.gz`` (float32 weights), atomically.

        The artifact loads in MXNet (``mx.nd.load`` / the AWS notebook's ``Module.load`` steps) and
        back through :meth:`from_sagemaker`. Its ``meta.json`` holds SageMaker's hyperparameters only,
        as strings, formatted as the SageMaker SDK sends them; fmfast's own settings (``optimizer``,
        ``n_threads``, ``deterministic``, ``progress``, ``random_state``, ``als_regularization``, and
        MCMC's ``burn_in``, ``posterior_samples``, ``num_chains`` and ``noise``) go to ``fmfast.json`` beside
        ``model_algo-1``, which SageMaker does not
        read and :meth:`from_sagemaker` reads back. ``path`` may be a store's URL, opened with
        ``storage_options`` (the upload is aborted on failure). An MCMC model is written as the
        posterior mean of its parameters, whose predictions differ from :meth:`predict`'s (the mean of
        the kept samples' predictions; the pairwise term is not linear in the factors): on
        MovieLens-100K the difference is small (docs/design/bayes.md).
        """
        state = self._fitted_state()
        params = self.get_params()
        hyperparameters = format_hyperparameters({"feature_dim": state.linear.shape[0], **params})
        own = {name: json_safe(params[name]) for name in FMFAST_SETTINGS}
        own["progress"] = bool(params["progress"])
        write_sagemaker_model(
            path,
            SageMakerFM(
                w0=float(state.bias[0]),
                w=state.linear,
                V=state.factors,
                predictor_type=self.predictor_type,
                hyperparameters=hyperparameters,
                fmfast_params=own,
            ),
            storage_options,
        )

    def save(self, path: str | os.PathLike[str], *, storage_options: dict[str, Any] | None = None) -> None:
        """Write the model to ``path`` (exactly that name, no suffix added).

        The file is an ``.npz`` of float32 arrays (weights and optimizer state) with a JSON header
        (format name and version, hyperparameters, history), written atomically: it appears whole
        or not at all. Optimizer state is included, so :meth:`partial_fit` can continue.
        Parameters JSON cannot hold are saved as ``None`` (a Generator ``random_state``) or
        ``False`` (a ``progress`` callable). The classifier's ``classes_`` are kept (labels
        JSON can hold: numbers, strings, booleans). ``path`` may be a store's URL
        (``s3://bucket/model.fmfast``), opened with ``storage_options``.
        """
        write_model(self, path, storage_options)

    @classmethod
    def load(
        cls, path: str | os.PathLike[str], *, storage_options: dict[str, Any] | None = None
    ) -> FactorizationMachine:
        """Read a model written by :meth:`save`.

        Files of format version 1 (float64 arrays) load too, rounded to float32. A damaged file,
        another format or an unknown format version raises :class:`fmfast.ModelFormatError`; a
        missing or unreadable file raises :class:`OSError`. ``path`` may be a store's URL,
        opened with ``storage_options``.
        """
        return read_model(cls, path, storage_options)
