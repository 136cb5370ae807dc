"""The exceptions fmfast raises, all subclasses of :class:`FmFastError`.

Most are created by the Rust extension so that errors raised deep in the core arrive as these
types; this module re-exports them under a stable name. The model-file and inference errors are
raised only by Python code and are defined here.
"""

from __future__ import annotations

from fmfast._fmfast import DivergenceError, FmFastError, InvalidInputError, ParseError, RecordIOError


class ModelFormatError(FmFastError):
    """A model file (MXNet ``.params``, ``model_algo-1`` zip, ``model.tar.gz``) that cannot be read.

    Raised for corrupt, truncated, hostile or unsupported content. ``offset`` is the byte offset
    in the ``.params`` data where the problem was found, or ``None`` when it is not about a byte
    position (an archive member, a missing weight).
    """

    def __init__(self, message: str, offset: int | None = None) -> None:
        super().__init__(message if offset is None else f"{message} (at byte offset {offset})")
        self.offset = offset


class NotFittedError(InvalidInputError, AttributeError):
    """A fitted attribute or method of a model that has not been fitted yet.

    An :class:`InvalidInputError` (so a ``ValueError``) and an ``AttributeError``, as
    scikit-learn's ``NotFittedError`` is: ``hasattr(model, "n_features_in_")`` is ``False``
    before ``fit``, and scikit-learn's checks recognise the error without fmfast importing it.
    """


class UnsupportedContentTypeError(FmFastError):
    """A request ``Content-Type`` or response ``Accept`` type that SageMaker FM does not speak.

    Distinct from :class:`InvalidInputError` so that a server can answer 415 rather than 400.
    """


__all__ = [
    "DivergenceError",
    "FmFastError",
    "InvalidInputError",
    "ModelFormatError",
    "NotFittedError",
    "ParseError",
    "RecordIOError",
    "UnsupportedContentTypeError",
]
