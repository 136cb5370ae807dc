"""SageMaker Factorization Machines inference wire formats, both directions.

Requests (``Content-Type``):

* ``application/json``: ``{"instances": [...]}`` where an instance is
  ``{"features": [dense values]}``, ``{"data": {"features": {"values": [dense values]}}}`` or
  ``{"data": {"features": {"keys": [...], "shape": [feature_dim], "values": [...]}}}`` (sparse);
* ``application/jsonlines``: one such instance per line;
* ``application/x-recordio-protobuf``: RecordIO-protobuf records, ``features["values"]`` dense
  or sparse (see :func:`fmfast.encode_recordio`).

Responses (``Accept``): ``{"predictions": [{"score": s, "predicted_label": l}]}`` for a
``binary_classifier`` (``l`` is 1.0 when ``s >= 0.5``, else 0.0) or ``{"predictions":
[{"score": s}]}`` for a ``regressor``; JSON lines hold one prediction object per line;
RecordIO-protobuf records have empty ``features`` and a ``label`` map with ``score`` (and
``predicted_label``) as one-element Float32Tensors.
"""

from __future__ import annotations

import json
import math
import reprlib
from itertools import chain
from typing import Any

import numpy as np
import scipy.sparse as sp

from fmfast._json import loads
from fmfast.exceptions import InvalidInputError, RecordIOError, UnsupportedContentTypeError
from fmfast.interop.responses import read_responses, write_responses
from fmfast.recordio import encode_recordio, read_recordio

JSON = "application/json"
JSONLINES = "application/jsonlines"
RECORDIO = "application/x-recordio-protobuf"
#: Content types understood, after aliases are resolved.
CONTENT_TYPES = (JSON, JSONLINES, RECORDIO)
_ALIASES = {
    "application/x-jsonlines": JSONLINES,
    "application/jsonl": JSONLINES,
    "application/x-recordio": RECORDIO,
}
_PREDICTOR_TYPES = ("binary_classifier", "regressor")

Body = bytes | bytearray | memoryview | str


def normalize_content_type(content_type: str | None, *, default: str | None = None) -> str:
    """The media type without parameters (``; charset=...``), lower-cased, aliases resolved.

    ``None``, empty and ``*/*`` give ``default`` when one is given.

    Raises:
        UnsupportedContentTypeError: a type SageMaker FM does not speak.
    """
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if default is not None and media in ("", "*/*", "application/*"):
        return default
    media = _ALIASES.get(media, media)
    if media not in CONTENT_TYPES:
        raise UnsupportedContentTypeError(
            f"content type {content_type!r} is not supported; use one of {', '.join(CONTENT_TYPES)}"
        )
    return media


def negotiate_accept(accept: str | None) -> str:
    """The response type that answers an HTTP ``Accept`` header, by its weights (RFC 9110, 12.5.1).

    Each media range may carry a weight ``q`` from 0 to 1 (default 1). A type FM answers in takes
    the weight of the most specific range that matches it (``type/subtype``, then ``type/*``, then
    ``*/*``); ``q=0`` excludes it; a range with a malformed weight is ignored. The acceptable type
    of highest weight wins, ties going to the range listed first, then to JSON. No header, or an
    empty one, means JSON.

    Raises:
        UnsupportedContentTypeError: the header accepts none of the types FM answers in.
    """
    items = [item for item in (accept or "").split(",") if item.strip()]
    if not items:
        return JSON
    ranges = []  # (media range, weight, position in the header)
    for position, item in enumerate(items):
        media, *parameters = item.split(";")
        weight: float | None = 1.0
        for parameter in parameters:
            name, _, value = parameter.partition("=")
            if name.strip().lower() == "q":
                try:
                    weight = float(value.strip())
                except ValueError:
                    weight = None
        if weight is not None and 0 <= weight <= 1:
            media = media.strip().lower()
            ranges.append((_ALIASES.get(media, media), weight, position))
    candidates = []  # (weight, -position, -preference, type)
    for preference, media in enumerate(CONTENT_TYPES):
        specificity = {media: 2, media.split("/")[0] + "/*": 1, "*/*": 0}
        matching = [(specificity[r], -position, weight) for r, weight, position in ranges if r in specificity]
        if matching:
            _, earlier, weight = max(matching)
            candidates.append((weight, earlier, -preference, media))
    best = max(candidates, default=None)
    if best is None or best[0] == 0:
        raise UnsupportedContentTypeError(
            f"Accept {reprlib.repr(accept)} admits none of the response types {', '.join(CONTENT_TYPES)}"
        )
    return best[3]


# ---------------------------------------------------------------------------------------------
# Requests


def serialize_request(X: Any, content_type: str = JSON, *, sparse: bool | None = None) -> bytes:
    """Encode the rows of ``X`` as a SageMaker FM inference request body.

    Args:
        X: a scipy sparse matrix/array or a 2-D array-like (a 1-D array is one instance).
        content_type: ``application/json``, ``application/jsonlines`` or
            ``application/x-recordio-protobuf``.
        sparse: write the sparse form (keys, shape, values); ``None``: when ``X`` is sparse.

    Raises:
        UnsupportedContentTypeError: another content type.
        InvalidInputError: ``X`` is not a matrix of numbers.
    """
    media = normalize_content_type(content_type)
    is_sparse = sp.issparse(X) if sparse is None else sparse
    if sp.issparse(X):
        csr = sp.csr_array(X)
    else:
        dense = np.asarray(X)
        if dense.ndim == 1:
            dense = dense.reshape(1, -1)
        if dense.ndim != 2 or dense.dtype.kind not in "biuf":
            raise InvalidInputError(f"X must be a 2-D array of numbers, got {dense.dtype} {dense.shape}")
        csr = sp.csr_array(dense)
    csr = csr.astype(np.float32)
    csr.sum_duplicates()
    if media == RECORDIO:
        return encode_recordio(csr, layout="sparse" if is_sparse else "dense")
    n_rows, n_cols = csr.shape
    if is_sparse:
        data, indices, indptr = csr.data.tolist(), csr.indices.tolist(), csr.indptr.tolist()
        instances = [
            {
                "data": {
                    "features": {
                        "keys": indices[indptr[i] : indptr[i + 1]],
                        "shape": [n_cols],
                        "values": data[indptr[i] : indptr[i + 1]],
                    }
                }
            }
            for i in range(n_rows)
        ]
    else:
        instances = [{"features": row} for row in csr.toarray().tolist()]
    if media == JSON:
        return json.dumps({"instances": instances}).encode()
    return "".join(json.dumps(instance) + "\n" for instance in instances).encode()


def _text(body: Body) -> str:
    if isinstance(body, str):
        return body
    try:
        return bytes(body).decode("utf-8")
    except UnicodeDecodeError as error:
        raise InvalidInputError(f"body is not UTF-8: {error}") from error


def _features(instance: Any, i: int) -> tuple[list[Any], list[Any] | None, Any]:
    """``(values, keys or None, shape or None)`` of one JSON instance."""
    if not isinstance(instance, dict):
        raise InvalidInputError(f"instance {i} is not an object")
    if "features" in instance:
        values = instance["features"]
        keys = shape = None
    elif "data" in instance:
        data = instance["data"]
        features = data.get("features") if isinstance(data, dict) else None
        if not isinstance(features, dict) or "values" not in features:
            raise InvalidInputError(f'instance {i} has no data.features.values (nor "features")')
        values, keys, shape = features["values"], features.get("keys"), features.get("shape")
    else:
        raise InvalidInputError(f'instance {i} has neither "features" nor "data"')
    if not isinstance(values, list):
        raise InvalidInputError(f"instance {i}: features values are not a list")
    if keys is not None and not isinstance(keys, list):
        raise InvalidInputError(f"instance {i}: keys are not a list")
    return values, keys, shape


def _numbers(flat: list[Any], lengths: np.ndarray, what: str, integer: bool) -> np.ndarray:
    """One array of every value, naming the instance of the first one that is not a number."""
    if set(map(type, flat)) <= {int, float}:  # exact types: NumPy would take booleans as 0 and 1
        array = np.array(flat) if flat else np.zeros(0, dtype=np.int64 if integer else np.float64)
        if array.dtype.kind in ("iu" if integer else "iuf"):
            return array
        if integer and array.dtype.kind == "f":
            integral = np.isfinite(array) & (array == np.round(array)) & (np.abs(array) < 2**63)
            if integral.all():
                return array.astype(np.int64)
            bad = int(np.argmin(integral))
        elif integer:  # an object array: integers beyond 64 bits
            bad = next(j for j, value in enumerate(flat) if not -(2**63) <= value < 2**63)
        else:
            # Integers beyond 64 bits, as floats: those beyond float32 are then refused by name.
            return np.array([_float(value) for value in flat])
    else:
        bad = next(j for j, value in enumerate(flat) if type(value) not in (int, float))
    instance = int(np.searchsorted(np.cumsum(lengths), bad, side="right"))
    expected = "an integer feature index" if integer else "a number"
    raise InvalidInputError(f"instance {instance}: {what} {reprlib.repr(flat[bad])} is not {expected}")


def _float(value: int) -> float:
    """``value`` as a float, infinite when it is beyond the float range."""
    try:
        return float(value)
    except OverflowError:
        return math.inf if value > 0 else -math.inf


def _instances_to_csr(instances: list[Any], feature_dim: int) -> sp.csr_array:
    parsed = [_features(instance, i) for i, instance in enumerate(instances)]
    n = len(parsed)
    lengths = np.fromiter((len(values) for values, _, _ in parsed), dtype=np.int64, count=n)
    values = _numbers(list(chain.from_iterable(p[0] for p in parsed)), lengths, "value", integer=False)
    sparse_rows = [i for i, (_, keys, _) in enumerate(parsed) if keys is not None]
    for i in sparse_rows:
        values_i, keys, shape = parsed[i]
        assert keys is not None
        if len(keys) != len(values_i):
            raise InvalidInputError(f"instance {i} has {len(keys)} keys but {len(values_i)} values")
        if shape is not None and shape != [feature_dim]:
            raise InvalidInputError(
                f"instance {i} has shape {reprlib.repr(shape)}, the model expects [{feature_dim}]"
            )
    if len(sparse_rows) < n:
        dense_rows = np.ones(n, dtype=bool)
        dense_rows[sparse_rows] = False
        wrong = np.flatnonzero(dense_rows & (lengths != feature_dim))
        if wrong.size:
            i = int(wrong[0])
            raise InvalidInputError(
                f"instance {i} has {lengths[i]} dense features, the model expects {feature_dim}"
            )
    # A dense row's keys are all the columns (built only when there is such a row).
    dense_keys = list(range(feature_dim)) if len(sparse_rows) < n else []
    pieces = [dense_keys if keys is None else keys for _, keys, _ in parsed]
    columns = _numbers(list(chain.from_iterable(pieces)), lengths, "key", integer=True)
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(lengths, out=indptr[1:])
    return _checked_csr(values, columns, indptr, feature_dim)


def _checked_csr(
    values: np.ndarray, keys: np.ndarray, indptr: np.ndarray, feature_dim: int, first: int = 0
) -> sp.csr_array:
    """A canonical float32 CSR array: no key outside the model, no repeated key, no NaN or infinity.

    Values that are not finite float32 numbers are refused: an FM score of NaN answers nothing.

    Errors name the instance, counting from ``first``.
    """
    bad = np.flatnonzero((keys < 0) | (keys >= feature_dim))
    if bad.size:
        i = first + int(np.searchsorted(indptr, bad[0], side="right")) - 1
        raise InvalidInputError(
            f"instance {i} has key {keys[bad[0]]}, outside the model's {feature_dim} features"
        )
    with np.errstate(over="ignore"):  # overflow is reported below, by instance and feature
        data = values.astype(np.float32)
    bad = np.flatnonzero(~np.isfinite(data))
    if bad.size:
        j = int(bad[0])
        i = first + int(np.searchsorted(indptr, j, side="right")) - 1
        raise InvalidInputError(
            f"instance {i} feature {keys[j]} has value {float(values[j])!r}: "
            "values must be finite float32 numbers (not NaN, infinite or beyond ±3.4e38)"
        )
    index_type = np.int32 if feature_dim < 2**31 and keys.size < 2**31 else np.int64
    X = sp.csr_array(
        (data, keys.astype(index_type), indptr.astype(index_type)),
        shape=(indptr.size - 1, feature_dim),
    )
    if not X.has_sorted_indices:
        X.sort_indices()
    repeated = np.flatnonzero(np.diff(X.indices) == 0)
    if repeated.size:
        # Equal neighbours repeat a key only when both lie in the same row.
        rows = np.searchsorted(X.indptr, repeated, side="right") - 1
        same_row = rows == np.searchsorted(X.indptr, repeated + 1, side="right") - 1
        if same_row.any():
            raise InvalidInputError(f"instance {first + int(rows[np.argmax(same_row)])} repeats a key")
    return X


def _json_list(text: str, key: str, what: str) -> list[Any]:
    """The list under ``key`` of a JSON object, or an error saying what was expected."""
    body = loads(text, "body")
    if not isinstance(body, dict) or not isinstance(body.get(key), list):
        raise InvalidInputError(f'JSON {what} must be an object with an "{key}" list')
    items: list[Any] = body[key]
    return items


def _json_instances(text: str) -> list[Any]:
    return _json_list(text, "instances", "body")


def _jsonlines_instances(text: str) -> list[Any]:
    instances = []
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            instances.append(loads(line, f"line {number}"))
    return instances


def _recordio_request(body: Body, feature_dim: int) -> sp.csr_array:
    try:
        X, _ = read_recordio(bytes(body) if not isinstance(body, str) else body.encode())
    except RecordIOError as error:
        raise InvalidInputError(f"body is not valid RecordIO-protobuf: {error}") from error
    return check_instances(X, feature_dim)


def check_instances(X: sp.csr_array, feature_dim: int, *, first: int = 0) -> sp.csr_array:
    """The decoded RecordIO instances ``X`` as a request for a model of ``feature_dim`` features.

    Args:
        X: CSR instances as :func:`fmfast.read_recordio` returns them.
        feature_dim: the model's number of features.
        first: the number of the first instance, for error messages (instances read in batches).

    Raises:
        InvalidInputError: naming the instance: a key outside ``0..feature_dim``, a repeated key,
            a value that is not a finite float32 number, a dense width other than ``feature_dim``.
    """
    if X.shape[0] == 0:
        return sp.csr_array((0, feature_dim), dtype=np.float32)
    if X.shape[1] != feature_dim:
        if X.shape[1] > feature_dim:
            outside = np.flatnonzero(X.indices >= feature_dim)
            if outside.size:
                i = first + int(np.searchsorted(X.indptr, outside[0], side="right")) - 1
                key = X.indices[outside[0]]
                message = f"instance {i} has key {key}, outside the model's {feature_dim} features"
                raise InvalidInputError(message)
        raise InvalidInputError(
            f"instance {first} has feature dimension {X.shape[1]}, the model expects {feature_dim}"
        )
    indptr = X.indptr.astype(np.int64)
    return _checked_csr(X.data, X.indices.astype(np.int64), indptr, feature_dim, first)


def parse_request(body: Body, content_type: str, feature_dim: int) -> sp.csr_array:
    """Decode an inference request body into a ``(n_instances, feature_dim)`` float32 CSR array.

    Args:
        body: the request body.
        content_type: its ``Content-Type`` (parameters such as ``charset`` are ignored).
        feature_dim: the model's number of features.

    Raises:
        UnsupportedContentTypeError: a content type other than JSON, JSON lines or RecordIO.
        InvalidInputError: a malformed body; a dense instance whose length is not
            ``feature_dim``, a key outside ``0..feature_dim``, or a value that is not a finite
            float32 number: NaN, infinite or beyond ±3.4e38 (naming the instance).
    """
    media = normalize_content_type(content_type)
    if feature_dim < 1:
        raise InvalidInputError(f"feature_dim must be positive, got {feature_dim}")
    if media == RECORDIO:
        return _recordio_request(body, feature_dim)
    text = _text(body)
    instances = _json_instances(text) if media == JSON else _jsonlines_instances(text)
    return _instances_to_csr(instances, feature_dim)


# ---------------------------------------------------------------------------------------------
# Responses


def _scores(scores: Any) -> np.ndarray:
    array = np.asarray(scores)
    if array.dtype.kind not in "iuf":
        raise InvalidInputError(f"scores must be numbers, got dtype {array.dtype}")
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 1:
        raise InvalidInputError(f"scores must be a vector, got shape {array.shape}")
    return array.astype(np.float32)


def _predictions(scores: np.ndarray, classifier: bool) -> list[dict[str, float]]:
    values = scores.astype(np.float64).tolist()
    if classifier:
        labels = (scores >= 0.5).astype(np.float64).tolist()
        return [{"score": s, "predicted_label": label} for s, label in zip(values, labels, strict=True)]
    return [{"score": s} for s in values]


def _prediction_strings(scores: np.ndarray, classifier: bool) -> list[str]:
    """One JSON object per score, formatted like ``json.dumps`` but without building dicts."""
    values = scores.astype(np.float64).tolist()
    if not all(map(math.isfinite, values)):
        return [json.dumps(p) for p in _predictions(scores, classifier)]
    if classifier:
        labels = np.where(scores >= 0.5, "1.0", "0.0").tolist()
        pairs = zip(values, labels, strict=True)
        return [f'{{"score": {s!r}, "predicted_label": {label}}}' for s, label in pairs]
    return [f'{{"score": {s!r}}}' for s in values]


def serialize_response(scores: Any, predictor_type: str, accept: str | None = JSON) -> bytes:
    """Encode predictions as SageMaker FM answers them.

    Args:
        scores: one prediction per instance: the probability (after the sigmoid) for a
            ``binary_classifier``, the score for a ``regressor``. Written as float32 values.
        predictor_type: ``"binary_classifier"`` (adds ``predicted_label``: 1.0 when the score is
            at least 0.5, else 0.0) or ``"regressor"``.
        accept: ``application/json`` (also for ``None`` and ``*/*``), ``application/jsonlines``
            or ``application/x-recordio-protobuf``.

    Raises:
        UnsupportedContentTypeError: another accept type.
        InvalidInputError: an unknown predictor type or scores that are not a vector of numbers.
    """
    media = normalize_content_type(accept, default=JSON)
    if predictor_type not in _PREDICTOR_TYPES:
        raise InvalidInputError(f"predictor_type must be one of {_PREDICTOR_TYPES}, got {predictor_type!r}")
    classifier = predictor_type == "binary_classifier"
    array = _scores(scores)
    if media == RECORDIO:
        return write_responses(array, classifier)
    strings = _prediction_strings(array, classifier)
    if media == JSON:
        return ('{"predictions": [' + ", ".join(strings) + "]}").encode()
    return "".join(s + "\n" for s in strings).encode()


def parse_response(body: Body, content_type: str | None = JSON) -> dict[str, list[dict[str, float]]]:
    """Decode a SageMaker FM response into ``{"predictions": [{"score": ..., ...}, ...]}``.

    Works for all three content types; JSON lines and RecordIO are gathered into the same
    ``predictions`` list that the JSON response holds.

    Raises:
        UnsupportedContentTypeError: another content type.
        InvalidInputError: a malformed body.
    """
    media = normalize_content_type(content_type, default=JSON)
    if media == RECORDIO:
        raw = body.encode() if isinstance(body, str) else bytes(body)
        return {"predictions": read_responses(raw)}
    text = _text(body)
    if media == JSONLINES:
        lines = _jsonlines_instances(text)
        if not all(isinstance(line, dict) for line in lines):
            raise InvalidInputError("every JSON line of a response must be an object")
        return {"predictions": lines}
    return {"predictions": _json_list(text, "predictions", "response")}


__all__ = [
    "CONTENT_TYPES",
    "JSON",
    "JSONLINES",
    "RECORDIO",
    "negotiate_accept",
    "normalize_content_type",
    "parse_request",
    "parse_response",
    "serialize_request",
    "serialize_response",
]
