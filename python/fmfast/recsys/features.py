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
# What each kind of block learns from an Arrow column (see `_fmfast.fit_arrow`).
_ARROW_TARGETS = {
    "one_hot": "ids",
    "multi_hot": "lists",
    "implicit": "lists",
    "numeric": "range",
    "bucketed": "numbers",
}


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


def _is_arrow(data: Any) -> bool:
    """Whether ``data`` is Arrow data: an object with the Arrow PyCapsule interface."""
    return hasattr(data, "__arrow_c_stream__") or hasattr(data, "__arrow_c_array__")


def _arrow_vocabulary(b: _Block) -> np.ndarray | tuple[np.ndarray, int] | None:
    """``b``'s vocabulary as the Arrow encoder takes it: int64 ids, or strings as their code points.

    Strings go as the unicode array's buffer (uint32 code points, ``width`` a string) and its
    width: a million ids made no million Python strings on the way (0.1 s and 60 MiB).
    """
    v = b.vocabulary
    if v is None:
        return None
    if v.size == 0:
        return np.empty(0, dtype=np.int64)
    if v.dtype.kind == "U":
        width = v.dtype.itemsize // 4
        return np.ascontiguousarray(v, dtype=np.dtype(("U", width))).view(np.uint32), width
    if v.dtype.kind in "iu" and int(v.max()) <= np.iinfo(np.int64).max:
        return np.ascontiguousarray(v, dtype=np.int64)
    raise InvalidInputError(
        f"block {b.name!r}: a vocabulary of {v.dtype} ids cannot encode Arrow data (integer or string ids)"
    )


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
    id not seen by ``fit``; ``"ignore"`` gives it no entry. Missing ids (``None``, NaN) in a dict of
    columns never have an entry. ``n_threads`` sizes the pool that assembles rows; 0 (the default)
    for all cores, capped by ``FMFAST_NUM_THREADS``.

    Columns come as a dict (or any mapping) of NumPy arrays and lists, or as Arrow data: a
    ``pyarrow.Table``, ``RecordBatch`` or ``RecordBatchReader``, or anything with the Arrow PyCapsule
    interface (``__arrow_c_stream__``, ``__arrow_c_array__``: pandas and polars data frames, DuckDB
    results), read in Rust without a copy and without per-row Python. Arrow ids may be integers,
    strings (``string``, ``large_string``, ``string_view``) or dictionary-encoded; a multi-hot or
    implicit block takes a ``list`` or ``large_list`` of ids; numeric and bucketed blocks take
    integers or floats. Either kind of input encodes the same values to the same matrix, whichever
    kind the encoder was fitted on. An Arrow null is an :class:`~fmfast.InvalidInputError` naming the
    block and the row (counted from the start of the stream) with ``handle_null="error"`` (the
    default); ``"ignore"`` gives it no entry, like ``None`` in a dict (a null list is an empty row).
    pandas hands NaN over as null.
    """

    def __init__(self, handle_unknown: str = "error", n_threads: int = 0, handle_null: str = "error") -> None:
        if handle_unknown not in ("error", "ignore"):
            raise InvalidInputError(f"handle_unknown must be 'error' or 'ignore', got {handle_unknown!r}")
        if handle_null not in ("error", "ignore"):
            raise InvalidInputError(f"handle_null must be 'error' or 'ignore', got {handle_null!r}")
        self.handle_unknown = handle_unknown
        self.handle_null = handle_null
        self.n_threads = n_threads
        self._blocks: list[_Block] = []
        self._fitted = False
        # The Rust encoder of Arrow data (vocabularies as hash tables), built on first use for the
        # fitted state and the policies it is keyed by.
        self._arrow: tuple[tuple[str, str], Any] | None = None

    # -- declaring blocks -------------------------------------------------------------------

    def _add(self, block: _Block) -> FeatureEncoder:
        if any(b.name == block.name for b in self._blocks):
            raise InvalidInputError(f"block {block.name!r} is declared twice")
        self._blocks.append(block)
        self._fitted = False
        self._arrow = None
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

    @property
    def fitted(self) -> bool:
        """Whether :meth:`fit` has learned the vocabularies and ranges (a loaded encoder's as saved)."""
        return self._fitted

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

    def fit(self, columns: Mapping[str, Any] | Any) -> FeatureEncoder:
        """Learns vocabularies (sorted unique ids) and numeric ranges from ``columns``; returns self.

        Arrow data is read in one streamed pass (a reader over a Parquet dataset, say), in memory
        that grows with the vocabularies, not the rows. A failed ``fit`` leaves the encoder as it was.
        """
        if not self._blocks:
            raise InvalidInputError("no blocks declared")
        self._arrow = None
        if _is_arrow(columns):
            return self._fit_arrow(columns)
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

    def _fit_arrow(self, data: Any) -> FeatureEncoder:
        targets = [(b.name, _ARROW_TARGETS[b.kind]) for b in self._blocks]
        learned = _fmfast.fit_arrow(targets, data, self.handle_null, self.n_threads)
        # Per target: a numeric block's range (None when it saw no value), a vocabulary, or None
        # for a bucketed block, which learns nothing.
        for b, value in zip(self._blocks, learned, strict=True):
            if isinstance(value, tuple):
                b.low, b.high = value
            elif b.kind == "numeric":
                b.low, b.high = 0.0, 1.0
            elif value is not None:
                # As `_unique` makes it: int64 ids, strings as a NumPy unicode array.
                b.vocabulary = np.asarray(value) if len(value) else np.asarray([])
        self._fitted = True
        return self

    def _arrow_encoder(self) -> Any:
        """The Rust encoder of Arrow data for the fitted state and the current policies."""
        key = (self.handle_unknown, self.handle_null)
        if self._arrow is None or self._arrow[0] != key:
            blocks = [
                (
                    b.name,
                    b.kind,
                    _arrow_vocabulary(b),
                    b.normalize,
                    (b.low, b.high) if b.kind == "numeric" and b.scale == "minmax" else None,
                    b.edges,
                )
                for b in self._blocks
            ]
            self._arrow = (key, _fmfast.ArrowEncoder(blocks, *key))
        return self._arrow[1]

    def _check_fitted(self) -> None:
        if not self._fitted:
            raise InvalidInputError("the FeatureEncoder is not fitted: call fit() first")

    @staticmethod
    def _numbers(raw: Any, name: str, what: str = "block") -> np.ndarray:
        try:
            values = np.asarray(raw, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise InvalidInputError(f"{what} {name!r}: values are not numbers ({exc})") from None
        if values.ndim != 1:
            raise InvalidInputError(f"{what} {name!r}: expected one value per row, got shape {values.shape}")
        if np.isinf(values).any():
            row = int(np.flatnonzero(np.isinf(values))[0])
            raise InvalidInputError(f"{what} {name!r}, row {row}: value {values[row]} is not finite")
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

    def transform(self, columns: Mapping[str, Any] | Any) -> sp.csr_array:
        """Encodes ``columns`` (one entry per block name) as an ``n_rows x n_features`` float32 CSR array.

        Arrow data is encoded whole: every batch of a stream, in order.
        """
        self._check_fitted()
        if _is_arrow(columns):
            indptr, indices, data, _ = self._arrow_encoder().encode(columns, None, self.n_threads)
            return sp.csr_array((data, indices, indptr), shape=(len(indptr) - 1, self.n_features))
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

    def transform_arrays(
        self, columns: Mapping[str, Any] | Any, label: str | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
        """:meth:`transform` as CSR arrays ``(indptr, indices, data)``, and column ``label`` as labels.

        ``indptr`` and ``indices`` are int64, ``data`` and the labels float32 (``None`` without
        ``label``). The entry point for writing batches out (one call per Arrow batch, no SciPy matrix built):
        every row needs a finite label, or :class:`~fmfast.InvalidInputError` names the row.
        """
        self._check_fitted()
        if _is_arrow(columns):
            arrays: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]
            arrays = self._arrow_encoder().encode(columns, label, self.n_threads)
            return arrays
        matrix = self.transform(columns)
        labels = None
        if label is not None:
            if label not in columns:
                raise InvalidInputError(f"label column {label!r} missing from the input")
            values = self._numbers(columns[label], label, "label column")
            if np.isnan(values).any():
                row = int(np.flatnonzero(np.isnan(values))[0])
                raise InvalidInputError(f"label column {label!r}, row {row}: value nan is not finite")
            labels = values.astype(np.float32)
        return (
            matrix.indptr.astype(np.int64, copy=False),
            matrix.indices.astype(np.int64, copy=False),
            matrix.data,
            labels,
        )

    def fit_transform(self, columns: Mapping[str, Any] | Any) -> sp.csr_array:
        """:meth:`fit`, then :meth:`transform` of the same columns.

        The data is read twice: Arrow data must be a table, batch or data frame, not a reader
        (which is read once: fit on it, then transform another).
        """
        if hasattr(columns, "read_next_batch"):
            raise InvalidInputError("fit_transform reads its data twice, a RecordBatchReader only once")
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
            "handle_null": self.handle_null,
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
            encoder = cls(
                handle_unknown=state["handle_unknown"], handle_null=state.get("handle_null", "error")
            )
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
