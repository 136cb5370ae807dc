"""RecordIO-protobuf responses of SageMaker FM: records whose ``label`` map holds the ``score``.

The only protobuf that fmfast reads and writes in Python. The Rust codec (:mod:`fmfast.recordio`)
reads and writes the records of training data (a ``features`` tensor and a ``label`` value); a
response record is another message, a map of named one-value tensors, small enough to build with
NumPy and to read with this minimal reader of the fields it needs.
"""

from __future__ import annotations

import struct
from typing import Any

import numpy as np

from fmfast.exceptions import InvalidInputError

_RECORDIO_MAGIC = 0xCED7230A


def _label_entry(name: bytes) -> bytes:
    # map<string, Value> entry: key (field 1) = name, value (field 2) = Value{float32_tensor (2) =
    # Float32Tensor{values (1, packed) = one float}}; the 4 float bytes follow.
    value = b"\x12\x06\x0a\x04"
    entry = b"\x0a" + bytes([len(name)]) + name + b"\x12" + bytes([len(value) + 4]) + value
    return b"\x12" + bytes([len(entry) + 4]) + entry


def write_responses(scores: np.ndarray, classifier: bool) -> bytes:
    """One record per float32 score (and its ``predicted_label``), all built at once with NumPy."""
    fields = [(_label_entry(b"score"), scores)]
    if classifier:
        fields.append((_label_entry(b"predicted_label"), (scores >= 0.5).astype(np.float32)))
    payload = sum(len(prefix) + 4 for prefix, _ in fields)
    padded = payload + (-payload % 4)
    row = np.zeros((scores.size, 8 + padded), dtype=np.uint8)
    row[:, :8] = np.frombuffer(struct.pack("<II", _RECORDIO_MAGIC, payload), dtype=np.uint8)
    at = 8
    for prefix, values in fields:
        row[:, at : at + len(prefix)] = np.frombuffer(prefix, dtype=np.uint8)
        at += len(prefix)
        row[:, at : at + 4] = values.astype("<f4").view(np.uint8).reshape(-1, 4)
        at += 4
    return row.tobytes()


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    """The varint at ``pos`` and the position after it."""
    result = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise InvalidInputError("truncated or overlong varint in a RecordIO response record")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return result, pos


def _fields(data: bytes) -> list[tuple[int, int, Any]]:
    """Top-level protobuf fields of ``data``: ``(number, wire type, value)``.

    The value is an ``int`` for a varint (wire type 0) and ``bytes`` otherwise; callers branch on
    the wire type, which a static type cannot follow, hence ``Any`` in the result.
    """
    fields: list[tuple[int, int, Any]] = []
    pos = 0
    value: int | bytes
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(data, pos)
        elif wire == 1 or wire == 5:
            size = 8 if wire == 1 else 4
            if pos + size > len(data):
                raise InvalidInputError("truncated fixed-width field in a RecordIO response record")
            value, pos = data[pos : pos + size], pos + size
        elif wire == 2:
            size, pos = _varint(data, pos)
            if pos + size > len(data):
                raise InvalidInputError("truncated field in a RecordIO response record")
            value, pos = data[pos : pos + size], pos + size
        else:
            raise InvalidInputError(f"unsupported wire type {wire} in a RecordIO response record")
        fields.append((number, wire, value))
    return fields


_TENSOR_FORMATS = {2: ("<f", 4), 3: ("<d", 8)}


def _label_values(record: bytes) -> dict[str, float]:
    """The one-value tensors of the ``label`` map of one record, by name."""
    labels: dict[str, float] = {}
    for number, wire, entry in _fields(record):
        if number != 2 or wire != 2:
            continue
        parts = {n: v for n, w, v in _fields(entry) if w == 2}
        name = bytes(parts.get(1, b"")).decode("utf-8", "replace")
        for kind, tensor in ((n, v) for n, w, v in _fields(parts.get(2, b"")) if w == 2):
            for field_number, field_wire, packed in _fields(tensor):
                if field_number != 1:
                    continue
                if kind in _TENSOR_FORMATS and field_wire == 2 and packed:
                    fmt, size = _TENSOR_FORMATS[kind]
                    labels[name] = float(struct.unpack_from(fmt, packed)[0]) if len(packed) >= size else 0.0
                elif kind == 7 and field_wire in (0, 2):
                    labels[name] = float(packed if field_wire == 0 else _varint(packed, 0)[0])
    return labels


def read_responses(body: bytes) -> list[dict[str, float]]:
    """The ``score`` (and ``predicted_label``) of each record of a response body.

    Raises:
        InvalidInputError: a malformed record, naming its byte offset.
    """
    predictions, pos = [], 0
    while pos < len(body):
        if pos + 8 > len(body):
            raise InvalidInputError(f"truncated RecordIO header at byte {pos}")
        magic, length = struct.unpack_from("<II", body, pos)
        if magic != _RECORDIO_MAGIC:
            raise InvalidInputError(f"bad RecordIO magic 0x{magic:08x} at byte {pos}")
        length &= (1 << 29) - 1
        end = pos + 8 + length
        if end > len(body):
            raise InvalidInputError(f"RecordIO record at byte {pos} runs past the end of the body")
        labels = _label_values(body[pos + 8 : end])
        if "score" not in labels:
            raise InvalidInputError(f"RecordIO record at byte {pos} has no label score")
        prediction = {"score": labels["score"]}
        if "predicted_label" in labels:
            prediction["predicted_label"] = labels["predicted_label"]
        predictions.append(prediction)
        pos = end + (-length % 4)
    return predictions
