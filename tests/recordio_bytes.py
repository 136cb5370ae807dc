"""Hand-made RecordIO frames and protobuf records for tests, independent of fmfast's encoder."""

from __future__ import annotations

import struct

from sagemaker.amazon.record_pb2 import Record

MAGIC = 0xCED7230A


def frame(payload: bytes, flag: int = 0) -> bytes:
    """One RecordIO frame around ``payload``, padded to 4 bytes."""
    return struct.pack("<II", MAGIC, (flag << 29) | len(payload)) + payload + b"\0" * (-len(payload) % 4)


def sparse_record(values, keys, shape, label=None, kind: str = "float32_tensor") -> bytes:
    """A serialized ``Record`` with a sparse feature tensor (and a label)."""
    record = Record()
    tensor = getattr(record.features["values"], kind)
    tensor.values.extend(values)
    tensor.keys.extend(keys)
    tensor.shape.extend(shape)
    if label is not None:
        record.label["values"].float32_tensor.values.extend([label])
    return record.SerializeToString()
