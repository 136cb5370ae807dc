"""Factorization Machines at SageMaker's semantics, trained locally by the Rust core.

* :mod:`~fmfast.training.estimator`: :class:`FactorizationMachine`, the estimator (SageMaker's
  hyperparameters, the scikit-learn protocol, training from arrays and RecordIO files, model files);
* ``fmfast.training._reference``: the plain NumPy implementation every kernel is tested against;
* ``fmfast.training._sklearn``: scikit-learn's tags and errors, when scikit-learn is installed.
"""

from fmfast.training.estimator import FactorizationMachine

__all__ = ["FactorizationMachine"]
