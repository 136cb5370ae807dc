"""A local HTTP endpoint with the SageMaker inference container contract.

``GET /ping`` answers 200 when the model is loaded; ``POST /invocations`` scores a request body in any of
the FM content types (``application/json``, ``application/jsonlines``, ``application/x-recordio-protobuf``)
and answers in the type ``Accept`` prefers, by its ``q`` weights (JSON when it asks for anything).

A client's mistake is answered, never raised, as ``{"error": "<what is wrong>"}``: 400 for a malformed
or empty body, a value that is not a finite float32 number, or features beyond the model's
``feature_dim``; 406 for an ``Accept`` that admits no FM type; 413 for a body over the size limit; 415
for an unsupported ``Content-Type``. A bug of the server is a 500 with the same shape and no traceback
(that goes to the log); the connection stays open either way. Bodies are decoded and scored in worker
threads, so a large one does not hold up ``/ping``. Code written for a SageMaker endpoint can be
pointed at it.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

import numpy as np

from fmfast.exceptions import InvalidInputError, UnsupportedContentTypeError
from fmfast.interop.inference import (
    JSON,
    negotiate_accept,
    normalize_content_type,
    parse_request,
    serialize_response,
)
from fmfast.training.estimator import FactorizationMachine

#: SageMaker's limit on a real-time request body, used as the default.
DEFAULT_MAX_BODY_BYTES = 6 * 1024 * 1024
#: Content type of requests without one, and of responses to ``Accept: */*``.
DEFAULT_CONTENT_TYPE = JSON

_log = logging.getLogger(__name__)


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


class ModelScorer:
    """A fitted :class:`fmfast.FactorizationMachine` as the endpoint sees it: SageMaker's ``score``."""

    def __init__(self, model: FactorizationMachine) -> None:
        self.model = model
        self.predictor_type = model.predictor_type
        self.feature_dim = model.feature_dim_

    def predict(self, X: Any) -> np.ndarray:
        """The model's :meth:`~fmfast.FactorizationMachine.predict_score` of the rows of ``X``."""
        return self.model.predict_score(X)


class _BodyTooLarge(Exception):
    pass


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


def _score(model: Scorer, body: bytes, content_type: str, accept: str) -> bytes:
    """The response body for a request body; runs in a worker thread, off the event loop."""
    if not body.strip():
        raise InvalidInputError("request body is empty")
    X = parse_request(body, content_type, model.feature_dim)
    return serialize_response(model.predict(X), model.predictor_type, accept)


def create_app(model: Scorer, *, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES) -> Any:
    """The ASGI application (Starlette) serving ``model``; run it with any ASGI server."""
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.exceptions import HTTPException
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    def error(status: int, message: object) -> Response:
        return JSONResponse({"error": str(message)}, status_code=status)

    async def ping(request: Request) -> Response:
        return Response(status_code=200)

    async def invocations(request: Request) -> Response:
        try:
            content_type = normalize_content_type(
                request.headers.get("content-type"), default=DEFAULT_CONTENT_TYPE
            )
        except UnsupportedContentTypeError as unsupported:
            return error(415, unsupported)
        try:
            accept = negotiate_accept(request.headers.get("accept"))
        except UnsupportedContentTypeError as unacceptable:
            return error(406, unacceptable)
        try:
            body = await _read_body(request, max_body_bytes)
        except _BodyTooLarge:
            return error(413, f"request body exceeds {max_body_bytes} bytes")
        try:
            payload = await run_in_threadpool(_score, model, body, content_type, accept)
        except InvalidInputError as invalid:
            return error(400, invalid)
        except Exception:
            # A bug of ours, not the client's: logged with its traceback, answered without it, and
            # answered (rather than raised into the server) so that the connection stays open.
            _log.exception("POST /invocations failed")
            return error(500, "internal server error; the traceback is in the server log")
        return Response(payload, media_type=accept)

    async def http_error(request: Request, exc: HTTPException) -> Response:  # 404, 405: the same shape
        return error(exc.status_code, exc.detail)

    routes = [Route("/ping", ping, methods=["GET"]), Route("/invocations", invocations, methods=["POST"])]
    # Starlette types every handler as taking any Exception, which a handler of one class is not.
    handlers = {HTTPException: http_error}
    return Starlette(routes=routes, exception_handlers=handlers)  # type: ignore[arg-type]


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
