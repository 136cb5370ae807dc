"""Old names kept for one release: moved modules and renamed functions warn, then forward.

Every deprecated path and name of fmfast is listed here, so removing them in the next release is
one deletion. The old module paths are not files (so ``git`` sees the moves as renames): they are
registered in ``sys.modules`` by :func:`register_moved_modules` when :mod:`fmfast` is imported.
"""

from __future__ import annotations

import functools
import importlib
import sys
import types
import warnings
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

P = ParamSpec("P")
R = TypeVar("R")

#: Module paths of the flat layout (``fmfast.NAME``) and where each module lives now.
MOVED_MODULES: dict[str, str] = {
    "model": "fmfast.training.estimator",
    "sagemaker_compat": "fmfast.recordio.sdk",
    "shards": "fmfast.recordio.shards",
    "inspect": "fmfast.recordio.inspection",
    "convert": "fmfast.recordio.convert",
    "ratings": "fmfast.recsys.ratings",
    "features": "fmfast.recsys.features",
    "implicit": "fmfast.recsys.implicit",
    "recommend": "fmfast.recsys.recommend",
    "evaluation": "fmfast.recsys.evaluation",
    "datasets": "fmfast.recsys.datasets",
    "sagemaker_model": "fmfast.interop.artifact",
    "mxnet_params": "fmfast.interop.mxnet_params",
    "inference": "fmfast.interop.inference",
    "serve": "fmfast.interop.serve",
    "transform": "fmfast.interop.transform",
}

#: Functions renamed to the verb pair of their kind (file formats ``read_``/``write_``), per new module.
RENAMED: dict[str, dict[str, str]] = {
    "fmfast.interop.mxnet_params": {"load_params": "read_mxnet_params", "dump_params": "write_mxnet_params"},
    "fmfast.recsys.ratings": {
        "load_ratings": "read_ratings",
        "load_movielens_items": "read_movielens_items",
        "load_movielens_users": "read_movielens_users",
    },
    "fmfast.recordio.convert": {"load_columns": "read_columns"},
    "fmfast.interop.transform": {"load_model": "read_model"},
}


def _warn(old: str, new: str) -> None:
    # stacklevel 3: past this helper and the attribute access or call, to the user's line.
    warnings.warn(
        f"{old} is deprecated and will be removed in the next release; use {new}",
        DeprecationWarning,
        stacklevel=3,
    )


def renamed(function: Callable[P, R], old: str) -> Callable[P, R]:
    """``function`` under its deprecated name ``old`` (qualified): each call warns, then calls it.

    The warning names the new name in the old one's namespace (``fmfast.load_params`` →
    ``fmfast.read_mxnet_params``).
    """
    new = f"{old.rsplit('.', 1)[0]}.{function.__name__}"

    @functools.wraps(function)
    def alias(*args: P.args, **kwargs: P.kwargs) -> R:
        _warn(old, new)
        return function(*args, **kwargs)

    alias.__name__ = alias.__qualname__ = old.rsplit(".", 1)[-1]
    alias.__doc__ = f"Deprecated alias of :func:`{new}`, removed in the next release."
    return alias


class MovedModule(types.ModuleType):
    """A module's old path: reading an attribute warns and returns the module's at its new path."""

    def __init__(self, old: str, new: str) -> None:
        super().__init__(old, f"Deprecated path of :mod:`{new}`, removed in the next release.")
        self._fmfast_new = new

    def __getattr__(self, name: str) -> Any:
        module = importlib.import_module(self._fmfast_new)
        if name.startswith("__"):  # the import system's probes (``__path__``, ...): no warning
            return getattr(module, name)
        current = RENAMED.get(self._fmfast_new, {}).get(name, name)
        value = getattr(module, current)
        _warn(f"{self.__name__}.{name}", f"{self._fmfast_new}.{current}")
        return value

    def __dir__(self) -> list[str]:
        return dir(importlib.import_module(self._fmfast_new))

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        # By name, as pickle takes a module: cloudpickle (Spark, Dask, Ray) ships a function with
        # the submodules of its global modules whose names it uses, and so takes `fmfast.transform`
        # along with a function that names `fmfast` and calls a `.transform` method.
        return importlib.import_module, (self.__name__,)


def register_moved_modules() -> None:
    """Make every old module path importable (``import fmfast.evaluation``) without importing it yet."""
    for old, new in MOVED_MODULES.items():
        sys.modules.setdefault(f"fmfast.{old}", MovedModule(f"fmfast.{old}", new))
