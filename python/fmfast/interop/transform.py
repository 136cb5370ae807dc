"""Batch transform: score a file of requests into a file of responses, as SageMaker batch transform does.

The request format follows the input's content type (RecordIO-protobuf input is streamed batch by
batch); the output is written atomically in the ``accept`` type.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from fmfast._atomic import atomic_output
from fmfast._storage import is_directory, read_bytes
from fmfast.exceptions import InvalidInputError, ModelFormatError
from fmfast.interop.inference import (
    JSON,
    JSONLINES,
    RECORDIO,
    check_instances,
    normalize_content_type,
    parse_request,
    serialize_response,
)
from fmfast.recordio.codec import iter_recordio
from fmfast.training.estimator import FactorizationMachine

_SUFFIX_TYPES = {
    ".json": JSON,
    ".jsonl": JSONLINES,
    ".jsonlines": JSONLINES,
    ".recordio": RECORDIO,
    ".pbr": RECORDIO,
}


def read_model(path: str | os.PathLike[str]) -> FactorizationMachine:
    """An fmfast model file (:meth:`FactorizationMachine.save`) or a SageMaker FM artifact."""
    name = os.fspath(path)
    if is_directory(name) or name.endswith((".tar.gz", ".tgz", ".params")):
        return FactorizationMachine.from_sagemaker(path)
    try:
        return FactorizationMachine.load(path)
    except ModelFormatError:
        return FactorizationMachine.from_sagemaker(path)


def content_type_of(path: str | os.PathLike[str]) -> str:
    """The request content type a file name suggests."""
    suffix = Path(path).suffix.lower()
    if suffix not in _SUFFIX_TYPES:
        raise InvalidInputError(f"cannot tell the content type of {path}; pass it explicitly")
    return _SUFFIX_TYPES[suffix]


def transform_file(
    model: FactorizationMachine,
    source: str | os.PathLike[str],
    target: str | os.PathLike[str],
    *,
    content_type: str | None = None,
    accept: str = JSONLINES,
    batch_size: int = 65_536,
) -> int:
    """Score every instance of ``source`` and write the responses to ``target``; returns the count.

    Instances are checked as the endpoint checks a request (:func:`fmfast.parse_request`).

    Raises:
        InvalidInputError: naming ``source`` and the instance: a malformed instance, a key outside
            the model's features, or a value that is not a finite float32 number.
    """
    content_type = normalize_content_type(content_type or content_type_of(source))
    accept = normalize_content_type(accept)
    try:
        return _transform(model, source, target, content_type, accept, batch_size)
    except InvalidInputError as error:
        raise InvalidInputError(f"{os.fspath(source)}: {error}") from None


def _transform(
    model: FactorizationMachine,
    source: str | os.PathLike[str],
    target: str | os.PathLike[str],
    content_type: str,
    accept: str,
    batch_size: int,
) -> int:
    feature_dim = model.feature_dim_
    if content_type == RECORDIO and accept != JSON:
        # Streams: JSON lines and RecordIO responses concatenate batch by batch.
        count = 0
        with atomic_output(target) as out:
            for batch, _ in iter_recordio(source, batch_size):
                X = check_instances(batch, feature_dim, first=count)
                out.write(serialize_response(model.predict_score(X), model.predictor_type, accept))
                count += X.shape[0]
        return count
    X = parse_request(read_bytes(source), content_type, feature_dim)
    scores: Any = model.predict_score(X) if X.shape[0] else np.zeros(0)
    with atomic_output(target) as out:
        out.write(serialize_response(scores, model.predictor_type, accept))
    return int(X.shape[0])
