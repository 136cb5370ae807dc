"""Type stubs of the Rust extension; checked against it by ``mypy.stubtest`` in ``make lint``."""

import os
from collections.abc import Callable
from typing import Any, Protocol, final

import numpy as np

__version__: str

class FmFastError(Exception): ...
class InvalidInputError(FmFastError): ...
class RecordIOError(FmFastError): ...
class ParseError(FmFastError): ...

class _EncodeArgs(Protocol):
    shape: tuple[int, int]
    csr: tuple[np.ndarray, np.ndarray] | None
    data: np.ndarray
    labels: np.ndarray | None
    dtype: str
    label_dtype: str
    check_finite: bool

_Decoded = tuple[int, int, np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]
_Progress = Callable[[int], object] | None

def encode(args: _EncodeArgs, n_threads: int = 0, progress: _Progress = None) -> bytes: ...
def decode(buffer: np.ndarray, n_threads: int = 0, progress: _Progress = None) -> _Decoded: ...
def decode_file(path: os.PathLike[str] | str, n_threads: int = 0, progress: _Progress = None) -> _Decoded: ...

@final
class RecordIOFileWriter:
    def __new__(cls, path: os.PathLike[str] | str) -> RecordIOFileWriter: ...
    def write(self, args: _EncodeArgs, n_threads: int = 0, progress: _Progress = None) -> None: ...
    def commit(self) -> None: ...
    def abort(self) -> None: ...

@final
class RecordIOReader:
    def __new__(cls, source: Any) -> RecordIOReader: ...
    def next_batch(self, batch_size: int, n_threads: int = 0) -> _Decoded | None: ...

def convert_libsvm(
    source: os.PathLike[str] | str,
    target: os.PathLike[str] | str,
    n_features: int | None = None,
    zero_based: bool | None = None,
    n_threads: int = 0,
    progress: _Progress = None,
) -> tuple[int, int]: ...
def convert_ratings_csv(
    source: os.PathLike[str] | str,
    target: os.PathLike[str] | str,
    delimiter: str | None = None,
    n_threads: int = 0,
    progress: _Progress = None,
) -> tuple[int, list[str], list[str]]: ...
