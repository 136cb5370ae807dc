"""The SDK's ``Record`` objects and its RecordIO-protobuf serializer and deserializer, for FM endpoints.

A prediction comes back as the SDK's ``RecordDeserializer`` yields it: a :class:`Record` whose
``label["score"].float32_tensor.values[0]`` is the score (and, for a classifier,
``label["predicted_label"]`` the 0/1 label).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import IO, Any

from fmfast.interop.inference import RECORDIO, parse_response, serialize_request


@dataclass(frozen=True)
class Float32Tensor:
    """A ``float32_tensor`` of a record: ``values`` (and ``keys``/``shape`` when sparse)."""

    values: list[float]
    keys: list[int] = field(default_factory=list)
    shape: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class Value:
    """One entry of a record's ``features`` or ``label`` map."""

    float32_tensor: Float32Tensor


@dataclass(frozen=True)
class Record:
    """A prediction record, shaped like the SDK's ``record_pb2.Record``."""

    features: dict[str, Value] = field(default_factory=dict)
    label: dict[str, Value] = field(default_factory=dict)


class RecordSerializer:
    """Encodes rows (a NumPy array or scipy sparse matrix) as an ``application/x-recordio-protobuf`` body.

    An array becomes dense records, as the SDK's ``RecordSerializer`` writes it; a sparse matrix
    sparse ones.
    """

    CONTENT_TYPE = RECORDIO

    @property
    def content_type(self) -> str:
        """The request's ``Content-Type``."""
        return self.CONTENT_TYPE

    def serialize(self, data: Any) -> bytes:
        """The request body of the rows of ``data``."""
        return serialize_request(data, RECORDIO)


class RecordDeserializer:
    """Decodes an FM endpoint's response into a list of :class:`Record`, one per row.

    Asks for RecordIO-protobuf, as the SDK's ``RecordDeserializer`` does, and also decodes the
    JSON and JSON lines answers of the FM contract.
    """

    ACCEPT = (RECORDIO,)

    @property
    def accept(self) -> tuple[str, ...]:
        """The request's ``Accept`` types."""
        return self.ACCEPT

    def deserialize(self, stream: IO[bytes], content_type: str) -> list[Record]:
        """The records of the response body in ``stream`` (closed afterwards)."""
        try:
            body = stream.read()
        finally:
            stream.close()
        return [
            Record(label={name: Value(Float32Tensor([float(value)])) for name, value in prediction.items()})
            for prediction in parse_response(body, content_type)["predictions"]
        ]
