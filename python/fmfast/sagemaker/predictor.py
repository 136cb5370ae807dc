"""``FactorizationMachinesPredictor``: the SDK's FM predictor, for an ``fmfast serve`` endpoint."""

from __future__ import annotations

import io
import json
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import urlparse

from fmfast.exceptions import InvalidInputError
from fmfast.sagemaker.endpoint import LocalEndpoint
from fmfast.sagemaker.records import RecordDeserializer, RecordSerializer

#: Seconds a request may take before ``predict`` gives up.
_REQUEST_TIMEOUT = 300.0


class FactorizationMachinesPredictor:
    """Sends rows to an FM endpoint and returns its predictions, as the SDK's predictor does.

    ``predict(ndarray)`` returns a list of :class:`fmfast.sagemaker.Record`, one per row, with the
    score in ``record.label["score"].float32_tensor.values[0]`` (the SDK's ``RecordSerializer``
    and ``RecordDeserializer`` defaults; the SDK's own serializers and deserializers work too).

    Args:
        endpoint_name: the endpoint's URL, ``http://host:port`` (:meth:`FactorizationMachinesModel.deploy`
            names its local endpoint so; any ``fmfast serve`` endpoint will do).
        sagemaker_session: accepted for the SDK's sake and unused.
        serializer: encodes the data given to :meth:`predict` (``serialize``, ``CONTENT_TYPE``).
        deserializer: decodes the response (``deserialize(stream, content_type)``, ``ACCEPT``).
        component_name: accepted for the SDK's sake and unused.
    """

    def __init__(
        self,
        endpoint_name: str,
        sagemaker_session: Any = None,
        serializer: Any = None,
        deserializer: Any = None,
        component_name: str | None = None,
    ) -> None:
        url = urlparse(endpoint_name)
        if url.scheme not in ("http", "https") or not url.netloc:
            raise InvalidInputError(
                f"endpoint_name must be an endpoint URL (http://host:port), got {endpoint_name!r}"
            )
        self.endpoint_name = endpoint_name.rstrip("/")
        self.sagemaker_session = sagemaker_session
        self.serializer = RecordSerializer() if serializer is None else serializer
        self.deserializer = RecordDeserializer() if deserializer is None else deserializer
        self.component_name = component_name
        self._endpoint: LocalEndpoint | None = None

    @property
    def content_type(self) -> str:
        """The ``Content-Type`` of requests."""
        return str(self.serializer.CONTENT_TYPE)

    @property
    def accept(self) -> tuple[str, ...]:
        """The ``Accept`` types of requests."""
        return tuple(self.deserializer.ACCEPT)

    def predict(self, data: Any, initial_args: dict[str, str] | None = None, **kwargs: Any) -> Any:
        """The endpoint's predictions for ``data``, decoded by the deserializer.

        ``initial_args`` may set ``ContentType`` and ``Accept`` as in the SDK; the SDK's other
        arguments (``target_model``, ``inference_id``, ...) are accepted and unused.

        Raises:
            InvalidInputError: the endpoint refused the request (4xx); the message is its answer.
            OSError: the endpoint cannot be reached or failed (5xx).
        """
        args = initial_args or {}
        request = urllib.request.Request(
            f"{self.endpoint_name}/invocations",
            data=self.serializer.serialize(data),
            headers={
                "Content-Type": args.get("ContentType", self.content_type),
                "Accept": args.get("Accept", ", ".join(self.accept)),
            },
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=_REQUEST_TIMEOUT) as response:
                body, content_type = response.read(), response.headers.get("Content-Type", "")
        except urllib.error.HTTPError as failed:
            message = _error_message(failed.read())
            if 400 <= failed.code < 500:
                raise InvalidInputError(
                    f"the endpoint refused the request ({failed.code}): {message}"
                ) from None
            raise OSError(f"the endpoint failed ({failed.code}): {message}") from None
        return self.deserializer.deserialize(io.BytesIO(body), content_type)

    def delete_endpoint(self, delete_endpoint_config: bool = True) -> None:
        """Stop the local endpoint that ``deploy`` started for this predictor (nothing for another URL)."""
        if self._endpoint is not None:
            self._endpoint.stop()

    def delete_model(self) -> None:
        """Nothing to delete locally; kept for the SDK's sake."""


def _error_message(body: bytes) -> str:
    """The ``error`` of the endpoint's JSON error answer, or the body as text."""
    try:
        return str(json.loads(body)["error"])
    except (ValueError, KeyError, TypeError):
        return body.decode("utf-8", "replace")
