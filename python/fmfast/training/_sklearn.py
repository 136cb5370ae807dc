"""What fmfast's estimator shows scikit-learn, without making scikit-learn a dependency.

scikit-learn is never imported here unless scikit-learn itself asks (its tags); the error and the
warning below are scikit-learn's own classes only where scikit-learn is already in use, so that
its checks, its ``except NotFittedError`` and its warning filters see them.
"""

from __future__ import annotations

import sys
from functools import cache
from typing import Any

from fmfast.exceptions import NotFittedError


def tags(classifier: bool) -> Any:
    """scikit-learn's tags of a regressor, or of a binary classifier, that takes sparse input.

    Called by scikit-learn (through ``__sklearn_tags__``), so scikit-learn is imported here.
    """
    from sklearn.utils import ClassifierTags, InputTags, RegressorTags, Tags, TargetTags

    return Tags(
        estimator_type="classifier" if classifier else "regressor",
        target_tags=TargetTags(required=True),
        classifier_tags=ClassifierTags(multi_class=False) if classifier else None,
        regressor_tags=None if classifier else RegressorTags(),
        input_tags=InputTags(sparse=True),
    )


@cache
def _with_sklearn_not_fitted(sklearn_error: type[Exception]) -> type[NotFittedError]:
    class SklearnNotFittedError(NotFittedError, sklearn_error):  # type: ignore[misc, valid-type]
        __doc__ = NotFittedError.__doc__

    SklearnNotFittedError.__name__ = SklearnNotFittedError.__qualname__ = "NotFittedError"
    return SklearnNotFittedError


def not_fitted_error(message: str) -> NotFittedError:
    """An fmfast :class:`NotFittedError`; where scikit-learn is in use, also scikit-learn's."""
    sklearn_error = getattr(sys.modules.get("sklearn.exceptions"), "NotFittedError", None)
    if sklearn_error is None:
        return NotFittedError(message)
    return _with_sklearn_not_fitted(sklearn_error)(message)


def data_conversion_warning() -> type[Warning]:
    """scikit-learn's ``DataConversionWarning`` where scikit-learn is in use, else ``UserWarning``."""
    category: type[Warning] = getattr(
        sys.modules.get("sklearn.exceptions"), "DataConversionWarning", UserWarning
    )
    return category
