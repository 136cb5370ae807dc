"""The exceptions fmfast raises, all subclasses of :class:`FmFastError`.

They are created by the Rust extension so that errors raised deep in the core arrive as these
types; this module re-exports them under a stable name.
"""

from fmfast._fmfast import (
    DivergenceError,
    FmFastError,
    InvalidInputError,
    ModelFormatError,
    ParseError,
    RecordIOError,
)

__all__ = [
    "DivergenceError",
    "FmFastError",
    "InvalidInputError",
    "ModelFormatError",
    "ParseError",
    "RecordIOError",
]
