"""Turning named columns (ids, id lists, numbers) into a sparse Factorization Machine design matrix.

A :class:`FeatureEncoder` is a list of blocks declared by column name, laid out side by side in
declaration order::

    enc = FeatureEncoder().one_hot("user").one_hot("item").implicit("rated").numeric("age")
    X = enc.fit_transform({"user": users, "item": items, "rated": rated_lists, "age": ages})

``fit`` learns each block's vocabulary (sorted unique ids) or scaler; ``transform`` maps values to
column codes in NumPy and assembles the CSR matrix in parallel in the Rust core.
"""

from __future__ import annotations

import itertools
import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from fmfast import _fmfast
from fmfast._atomic import atomic_output
from fmfast._json import loads
from fmfast.exceptions import InvalidInputError

__all__ = ["BlockInfo", "FeatureEncoder"]

_FORMAT = "fmfast.FeatureEncoder"
_VERSION = 1
_KINDS = ("one_hot", "multi_hot", "numeric", "bucketed", "implicit")


@dataclass(frozen=True)
class BlockInfo:
    """Where a fitted block sits in the design matrix: columns ``offset`` to ``offset + size - 1``."""

    name: str
    kind: str
    offset: int
    size: int


@dataclass
class _Block:
    name: str
    kind: str
    normalize: bool = False
    scale: str = "none"
    edges: list[float] = field(default_factory=list)
    vocabulary: np.ndarray | None = None
    low: float = 0.0
    high: float = 1.0

    @property
    def multi(self) -> bool:
        return self.kind in ("multi_hot", "implicit")

    @property
    def size(self) -> int:
        if self.kind == "numeric":
            return 1
        if self.kind == "bucketed":
            return len(self.edges) + 1
        return 0 if self.vocabulary is None else len(self.vocabulary)


def _missing(values: np.ndarray) -> np.ndarray:
    """Mask of missing entries: ``None`` or NaN."""
    if values.dtype.kind == "f":
        nan: np.ndarray = np.isnan(values)
        return nan
    if values.dtype.kind == "O":
        return np.fromiter(
            (v is None or (isinstance(v, float) and math.isnan(v)) for v in values),
            dtype=bool,
            count=values.size,
        )
    return np.zeros(values.shape, dtype=bool)


def _arrow_columns(data: Any) -> Mapping[str, Any] | None:
    """Arrow data as a dict of columns, or ``None`` when ``data`` is not Arrow data.

    Takes a ``pyarrow.Table``, ``RecordBatch``, ``RecordBatchReader`` (read whole) or any object
    with the Arrow PyCapsule interface (``__arrow_c_stream__`` / ``__arrow_c_array__``).
    """
    if not any(hasattr(data, a) for a in ("__arrow_c_stream__", "__arrow_c_array__", "read_all")):
        return None
    import pyarrow as pa

    table = data.read_all() if isinstance(data, pa.RecordBatchReader) else pa.table(data)
    columns: dict[str, Any] = {}
    for name, column in zip(table.column_names, table.columns, strict=True):
        kind = column.type
        if pa.types.is_list(kind) or pa.types.is_large_list(kind):
            columns[name] = column.to_pylist()
        else:
            columns[name] = column.to_numpy(zero_copy_only=False)
    return columns


def _ids(values: Any, name: str) -> np.ndarray:
    """One-dimensional array of ids."""
    array = np.asarray(values)
    if array.ndim != 1:
        raise InvalidInputError(f"block {name!r}: expected one id per row, got shape {array.shape}")
    return array


def _flatten(rows: Any, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Row lists of ids as ``(indptr, flat ids)``; ``None`` is an empty row."""
    if isinstance(rows, np.ndarray) and rows.ndim == 2:
        rows = list(rows)
    parts = [np.atleast_1d(np.asarray([] if r is None else r)) for r in rows]
    for r, part in enumerate(parts):
        if part.ndim != 1:
            raise InvalidInputError(f"block {name!r}, row {r}: expected a list of ids")
    indptr = np.zeros(len(parts) + 1, dtype=np.int64)
    np.cumsum([len(p) for p in parts], out=indptr[1:])
    nonempty = [p for p in parts if len(p)]
    flat = np.concatenate(nonempty) if nonempty else np.empty(0, dtype=np.int64)
    return indptr, flat


def _lookup(vocabulary: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Codes of ``values`` in the sorted ``vocabulary``; -1 where absent."""
    codes = np.full(values.shape, -1, dtype=np.int64)
    if values.size == 0 or vocabulary.size == 0:
        return codes
    if values.dtype.kind == "O":  # Python objects (say, strings from pandas): a dictionary
        index = {v: i for i, v in enumerate(vocabulary.tolist())}
        for j, v in enumerate(values.tolist()):
            try:
                codes[j] = index.get(v, -1)
            except TypeError:  # unhashable
                pass
        return codes
    try:
        pos = np.minimum(np.searchsorted(vocabulary, values), vocabulary.size - 1)
        found = np.asarray(vocabulary[pos] == values, dtype=bool)
    except (TypeError, ValueError):  # ids of a type the vocabulary cannot be compared with
        return codes
    if found.shape != values.shape:
        return codes
    codes[found] = pos[found]
    return codes


def _unique(values: np.ndarray, name: str) -> np.ndarray:
    """Sorted unique non-missing ids."""
    present = values[~_missing(values)]
    try:
        # Through Python scalars, so that the dtype is the one a reloaded vocabulary gets.
        return np.asarray(np.unique(present).tolist())
    except TypeError as exc:
        raise InvalidInputError(f"block {name!r}: ids cannot be sorted ({exc})") from None


class FeatureEncoder:
    """Encodes named columns into a ``scipy.sparse.csr_array`` (float32) of features.

    Declare blocks with :meth:`one_hot`, :meth:`multi_hot`, :meth:`numeric`, :meth:`bucketed`
    and :meth:`implicit` (each returns the encoder, so calls chain), then :meth:`fit` and
    :meth:`transform`. ``handle_unknown="error"`` raises :class:`~fmfast.InvalidInputError` for an
    id not seen by ``fit``; ``"ignore"`` gives it no entry. Missing ids (``None``, NaN) never have
    an entry. ``n_threads`` sizes the pool that assembles rows; 0 (the default) for all cores, capped
    by ``FMFAST_NUM_THREADS``.
    """

    def __init__(self, handle_unknown: str = "error", n_threads: int = 0) -> None:
        if handle_unknown not in ("error", "ignore"):
            raise InvalidInputError(f"handle_unknown must be 'error' or 'ignore', got {handle_unknown!r}")
        self.handle_unknown = handle_unknown
        self.n_threads = n_threads
        self._blocks: list[_Block] = []
        self._fitted = False

    # -- declaring blocks -------------------------------------------------------------------

    def _add(self, block: _Block) -> FeatureEncoder:
        if any(b.name == block.name for b in self._blocks):
            raise InvalidInputError(f"block {block.name!r} is declared twice")
        self._blocks.append(block)
        self._fitted = False
        return self

    def one_hot(self, name: str) -> FeatureEncoder:
        """One column per distinct id of column ``name`` (one id per row), weight 1."""
        return self._add(_Block(name, "one_hot"))

    def multi_hot(self, name: str, normalize: bool = False) -> FeatureEncoder:
        """One column per distinct id; each row holds a list of ids, weight 1 (``1/sqrt(n)``: normalize).

        A row's ``n`` counts its known ids; an id repeated in a row has its weights summed.
        """
        return self._add(_Block(name, "multi_hot", normalize=bool(normalize)))

    def implicit(self, name: str) -> FeatureEncoder:
        """Implicit feedback (the items a user rated): multi-hot weighted ``1/sqrt(n)``."""
        return self._add(_Block(name, "implicit", normalize=True))

    def numeric(self, name: str, scale: str = "minmax") -> FeatureEncoder:
        """One column holding the value, scaled by the fitted range (``"minmax"``) or not (``"none"``).

        ``"minmax"`` maps the range seen by ``fit`` to [0, 1] (values outside it fall outside [0, 1]);
        NaN means no entry, an infinite value is an error.
        """
        if scale not in ("minmax", "none"):
            raise InvalidInputError(f"block {name!r}: scale must be 'minmax' or 'none', got {scale!r}")
        return self._add(_Block(name, "numeric", scale=scale))

    def bucketed(self, name: str, edges: Sequence[float]) -> FeatureEncoder:
        """One-hot of ``np.digitize(value, edges)``: ``len(edges) + 1`` columns; NaN: no entry."""
        edge_list = [float(e) for e in edges]
        if not edge_list or any(not math.isfinite(e) for e in edge_list):
            raise InvalidInputError(f"block {name!r}: edges must be a non-empty list of finite numbers")
        if any(a >= b for a, b in itertools.pairwise(edge_list)):
            raise InvalidInputError(f"block {name!r}: edges must increase strictly")
        return self._add(_Block(name, "bucketed", edges=edge_list))

    # -- layout ------------------------------------------------------------------------------

    @property
    def blocks(self) -> list[BlockInfo]:
        """The blocks in column order with their offsets and sizes (sizes of id blocks need ``fit``)."""
        infos, offset = [], 0
        for b in self._blocks:
            infos.append(BlockInfo(b.name, b.kind, offset, b.size))
            offset += b.size
        return infos

    @property
    def n_features(self) -> int:
        """Total number of columns."""
        return sum(b.size for b in self._blocks)

    def feature_names(self) -> list[str]:
        """Name of each column, by index: ``"block=value"`` (``"block"`` for a numeric block)."""
        self._check_fitted()
        names: list[str] = []
        for b in self._blocks:
            if b.kind == "numeric":
                names.append(b.name)
            elif b.kind == "bucketed":
                bounds = ["-inf", *(repr(e) for e in b.edges), "inf"]
                names.extend(f"{b.name}=[{lo},{hi})" for lo, hi in itertools.pairwise(bounds))
            else:
                assert b.vocabulary is not None
                names.extend(f"{b.name}={v}" for v in b.vocabulary.tolist())
        return names

    # -- fitting and transforming ------------------------------------------------------------

    def _column(self, columns: Mapping[str, Any], name: str) -> Any:
        if name not in columns:
            raise InvalidInputError(f"block {name!r}: column missing from the input")
        return columns[name]

    def fit(self, columns: Mapping[str, Any]) -> FeatureEncoder:
        """Learns vocabularies (sorted unique ids) and numeric ranges from ``columns``; returns self."""
        columns = _arrow_columns(columns) or columns
        if not self._blocks:
            raise InvalidInputError("no blocks declared")
        for b in self._blocks:
            raw = self._column(columns, b.name)
            if b.kind == "one_hot":
                b.vocabulary = _unique(_ids(raw, b.name), b.name)
            elif b.multi:
                b.vocabulary = _unique(_flatten(raw, b.name)[1], b.name)
            elif b.kind == "numeric":
                values = self._numbers(raw, b.name)
                finite = values[~np.isnan(values)]
                b.low, b.high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
        self._fitted = True
        return self

    def _check_fitted(self) -> None:
        if not self._fitted:
            raise InvalidInputError("the FeatureEncoder is not fitted: call fit() first")

    @staticmethod
    def _numbers(raw: Any, name: str) -> np.ndarray:
        try:
            values = np.asarray(raw, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise InvalidInputError(f"block {name!r}: values are not numbers ({exc})") from None
        if values.ndim != 1:
            raise InvalidInputError(f"block {name!r}: expected one value per row, got shape {values.shape}")
        if np.isinf(values).any():
            row = int(np.flatnonzero(np.isinf(values))[0])
            raise InvalidInputError(f"block {name!r}, row {row}: value {values[row]} is not finite")
        return values

    def _codes(self, b: _Block, values: np.ndarray, indptr: np.ndarray | None) -> np.ndarray:
        assert b.vocabulary is not None
        codes = _lookup(b.vocabulary, values)
        if self.handle_unknown == "error":
            unknown = np.flatnonzero((codes < 0) & ~_missing(values))
            if unknown.size:
                i = int(unknown[0])
                row = i if indptr is None else int(np.searchsorted(indptr, i, side="right") - 1)
                raise InvalidInputError(
                    f"block {b.name!r}, row {row}: unknown value {values[i : i + 1].tolist()[0]!r}"
                )
        return codes

    def transform(self, columns: Mapping[str, Any]) -> sp.csr_array:
        """Encodes ``columns`` (one entry per block name) as an ``n_rows x n_features`` float32 CSR array."""
        self._check_fitted()
        columns = _arrow_columns(columns) or columns
        specs: list[Any] = []
        n_rows: int | None = None
        offset = 0
        for b in self._blocks:
            raw = self._column(columns, b.name)
            if b.multi:
                indptr, flat = _flatten(raw, b.name)
                rows = len(indptr) - 1
                spec: tuple[Any, ...] = (indptr, self._codes(b, flat, indptr), offset, b.size, b.normalize)
            elif b.kind == "one_hot":
                ids = _ids(raw, b.name)
                rows, spec = len(ids), (self._codes(b, ids, None), offset, b.size)
            else:
                values = self._numbers(raw, b.name)
                rows = len(values)
                if b.kind == "bucketed":
                    codes = np.digitize(values, b.edges).astype(np.int64)
                    codes[np.isnan(values)] = -1
                    spec = (codes, offset, b.size)
                else:
                    if b.scale == "minmax":
                        span = b.high - b.low
                        values = (values - b.low) / span if span > 0 else values - b.low
                    spec = (values.astype(np.float32), offset)
            if n_rows is not None and rows != n_rows:
                raise InvalidInputError(f"block {b.name!r} has {rows} rows, the blocks before it {n_rows}")
            n_rows = rows
            specs.append(spec)
            offset += b.size
        assert n_rows is not None
        indptr, indices, data = _fmfast.assemble_features(specs, n_rows, self.n_threads)
        return sp.csr_array((data, indices, indptr), shape=(n_rows, offset))

    def fit_transform(self, columns: Mapping[str, Any]) -> sp.csr_array:
        """:meth:`fit`, then :meth:`transform` of the same columns."""
        return self.fit(columns).transform(columns)

    # -- persistence -------------------------------------------------------------------------

    def to_json(self) -> str:
        """The declaration and everything learned by ``fit``, as a JSON string."""
        blocks = [
            {
                "name": b.name,
                "kind": b.kind,
                "normalize": b.normalize,
                "scale": b.scale,
                "edges": b.edges,
                "vocabulary": None if b.vocabulary is None else b.vocabulary.tolist(),
                "low": b.low,
                "high": b.high,
            }
            for b in self._blocks
        ]
        state = {
            "format": _FORMAT,
            "version": _VERSION,
            "handle_unknown": self.handle_unknown,
            "fitted": self._fitted,
            "blocks": blocks,
        }
        return json.dumps(state)

    @classmethod
    def from_json(cls, text: str) -> FeatureEncoder:
        """The encoder that :meth:`to_json` wrote."""
        try:
            state = loads(text, "the FeatureEncoder document")
            if state.get("format") != _FORMAT or state.get("version") != _VERSION:
                raise ValueError(f"not a {_FORMAT} version {_VERSION} document")
            encoder = cls(handle_unknown=state["handle_unknown"])
            for item in state["blocks"]:
                if item["kind"] not in _KINDS:
                    raise ValueError(f"unknown block kind {item['kind']!r}")
                vocabulary = item["vocabulary"]
                encoder._add(
                    _Block(
                        name=str(item["name"]),
                        kind=item["kind"],
                        normalize=bool(item["normalize"]),
                        scale=str(item["scale"]),
                        edges=[float(e) for e in item["edges"]],
                        vocabulary=None if vocabulary is None else np.asarray(vocabulary),
                        low=float(item["low"]),
                        high=float(item["high"]),
                    )
                )
            encoder._fitted = bool(state["fitted"])
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise InvalidInputError(f"invalid FeatureEncoder JSON: {exc}") from None
        return encoder

    def save(self, path: str | os.PathLike[str]) -> None:
        """Writes :meth:`to_json` to ``path`` atomically (whole or not at all)."""
        with atomic_output(path) as out:
            out.write(self.to_json().encode("utf-8"))

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> FeatureEncoder:
        """The encoder that :meth:`save` wrote to ``path``."""
        return cls.from_json(Path(path).read_text(encoding="utf-8"))

    def _fit_aggregates(
        self, ids: Mapping[str, Any], ranges: Mapping[str, tuple[float, float] | None]
    ) -> FeatureEncoder:
        """Fitted from aggregates computed elsewhere (a distributed pass: :mod:`fmfast.spark`).

        ``ids`` holds the distinct ids of each one-hot, multi-hot and implicit block (in any order,
        missing ids allowed), ``ranges`` the finite ``(min, max)`` of each numeric block (``None``:
        no finite value). The vocabularies go through the same sort as :meth:`fit`, so the encoder
        is the one :meth:`fit` would learn from the whole data.
        """
        for b in self._blocks:
            if b.kind == "one_hot" or b.multi:
                b.vocabulary = _unique(_ids(self._column(ids, b.name), b.name), b.name)
            elif b.kind == "numeric":
                b.low, b.high = self._column(ranges, b.name) or (0.0, 1.0)
        self._fitted = True
        return self

    def __repr__(self) -> str:
        inner = ", ".join(f"{b.kind}({b.name!r})" for b in self._blocks)
        return f"FeatureEncoder([{inner}], handle_unknown={self.handle_unknown!r})"
