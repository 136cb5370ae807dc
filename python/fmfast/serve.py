"""A local HTTP endpoint with the SageMaker inference container contract.

``GET /ping`` answers 200 when the model is loaded; ``POST /invocations`` scores a request body in any of
the FM content types (``application/json``, ``application/jsonlines``, ``application/x-recordio-protobuf``)
and answers in the type ``Accept`` asks for (JSON when it asks for anything). Errors are answered, never
raised: 400 for a malformed body or features beyond the model's ``feature_dim``, 406 for an ``Accept``
type FM does not produce, 413 for a body over the size limit, 415 for an unsupported ``Content-Type``.
Code written for a SageMaker endpoint can be pointed at it.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from fmfast.exceptions import InvalidInputError, UnsupportedContentTypeError
from fmfast.inference import parse_request, serialize_response

#: SageMaker's limit on a real-time request body, used as the default.
DEFAULT_MAX_BODY_BYTES = 6 * 1024 * 1024
#: Content type of requests without one, and of responses to ``Accept: */*``.
DEFAULT_CONTENT_TYPE = "application/json"


class Scorer(Protocol):
    """What the endpoint needs of a model."""

    predictor_type: str

    @property
    def feature_dim(self) -> int:
        """Number of features the model was trained on."""
        ...

    def predict(self, X: Any) -> np.ndarray:
        """Regressor scores or classifier probabilities for the rows of ``X``."""
        ...


class _BodyTooLarge(Exception):
    pass


def _media_type(header: str | None) -> str:
    """The bare media type of a header, ``application/json`` when absent or a wildcard."""
    if not header:
        return DEFAULT_CONTENT_TYPE
    first = header.split(",")[0].split(";")[0].strip().lower()
    return DEFAULT_CONTENT_TYPE if first in ("", "*/*", "application/*") else first


async def _read_body(request: Any, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _BodyTooLarge
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > limit:
            raise _BodyTooLarge
    return bytes(body)


def create_app(model: Scorer, *, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES) -> Any:
    """The ASGI application (Starlette) serving ``model``; run it with any ASGI server."""
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse, Response
    from starlette.routing import Route

    async def ping(request: Request) -> Response:
        return Response(status_code=200)

    async def invocations(request: Request) -> Response:
        content_type = _media_type(request.headers.get("content-type"))
        accept = _media_type(request.headers.get("accept"))
        try:
            body = await _read_body(request, max_body_bytes)
            X = parse_request(body, content_type, model.feature_dim)
        except _BodyTooLarge:
            return PlainTextResponse(f"request body exceeds {max_body_bytes} bytes", status_code=413)
        except UnsupportedContentTypeError as error:
            return PlainTextResponse(str(error), status_code=415)
        except InvalidInputError as error:
            return PlainTextResponse(str(error), status_code=400)
        scores = await run_in_threadpool(model.predict, X)
        try:
            payload = serialize_response(scores, model.predictor_type, accept)
        except UnsupportedContentTypeError as error:
            return PlainTextResponse(str(error), status_code=406)
        return Response(payload, media_type=accept)

    routes = [Route("/ping", ping, methods=["GET"]), Route("/invocations", invocations, methods=["POST"])]
    return Starlette(routes=routes)


def serve(
    model: Scorer,
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    log_level: str = "info",
) -> None:
    """Serve ``model`` over HTTP with uvicorn until interrupted (SageMaker containers use port 8080)."""
    import uvicorn

    uvicorn.run(create_app(model, max_body_bytes=max_body_bytes), host=host, port=port, log_level=log_level)
