"""``FactorizationMachinesModel``: an FM ``model.tar.gz`` (fmfast's or SageMaker's), deployed locally."""

from __future__ import annotations

import os
from typing import Any

from fmfast.interop.serve import ModelScorer
from fmfast.sagemaker.endpoint import LocalEndpoint
from fmfast.sagemaker.predictor import FactorizationMachinesPredictor
from fmfast.sagemaker.record_set import resolve_location
from fmfast.training.estimator import FactorizationMachine


class FactorizationMachinesModel:
    """An FM model artifact that :meth:`deploy` serves on a local endpoint, as the SDK's model class.

    Args:
        model_data: the ``model.tar.gz``, trained by fmfast or by SageMaker: a local path, a
            ``file://`` URL or a store's URL (``s3://bucket/job/output/model.tar.gz``).
        role: accepted for the SDK's sake and unused.
        sagemaker_session: accepted for the SDK's sake and unused.
        **kwargs: the SDK's other model arguments (``name``, ``env``, ``vpc_config``, ...),
            accepted and unused.
    """

    def __init__(
        self,
        model_data: str | os.PathLike[str],
        role: str | None = None,
        sagemaker_session: Any = None,
        **kwargs: Any,
    ) -> None:
        self.model_data = model_data
        self.role = role
        self.sagemaker_session = sagemaker_session
        self.endpoint_name: str | None = None

    def deploy(
        self,
        initial_instance_count: int | None = None,
        instance_type: str | None = None,
        serializer: Any = None,
        deserializer: Any = None,
        endpoint_name: str | None = None,
        **kwargs: Any,
    ) -> FactorizationMachinesPredictor:
        """Load the artifact, serve it on a free port of 127.0.0.1 and return a predictor for it.

        The endpoint runs in a background thread of this process until the predictor's
        ``delete_endpoint()``. ``endpoint_name`` and the SDK's other arguments
        (``initial_instance_count``, ``instance_type``, ``wait``, ...) are accepted and unused:
        the endpoint is named by its URL, ``predictor.endpoint_name``.

        Raises:
            ModelFormatError: the artifact is damaged or not an FM model.
            OSError: it cannot be read.
        """
        model = FactorizationMachine.from_sagemaker(resolve_location(self.model_data, "model_data"))
        endpoint = LocalEndpoint(ModelScorer(model))
        predictor = FactorizationMachinesPredictor(
            endpoint.url, serializer=serializer, deserializer=deserializer
        )
        predictor._endpoint = endpoint
        self.endpoint_name = endpoint.url
        return predictor
