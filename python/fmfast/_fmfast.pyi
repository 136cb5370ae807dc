"""Type stubs of the Rust extension; checked against it by ``mypy.stubtest`` in ``make lint``."""

import os
from collections.abc import Callable
from typing import Any, final

import numpy as np
from typing_extensions import disjoint_base

__version__: str

class FmFastError(Exception): ...
class InvalidInputError(FmFastError, ValueError): ...

class RecordIOError(FmFastError):
    # Set on each instance where it is raised: by the extension (record, offset), by the Python
    # readers for a path (filename).
    record: int
    offset: int
    filename: str

class ParseError(FmFastError):
    # Set on each instance where it is raised: the 1-based line of the text.
    line: int

class DivergenceError(FmFastError):
    # Set on each instance where it is raised: where training stopped.
    epoch: int
    batch: int

@final
class EncodeArgs:
    def __new__(
        cls,
        shape: tuple[int, int],
        csr: tuple[np.ndarray, np.ndarray] | None,
        data: np.ndarray,
        labels: np.ndarray | None,
        dtype: str,
        label_dtype: str,
        check_finite: bool,
    ) -> EncodeArgs: ...
    @property
    def shape(self) -> tuple[int, int]: ...
    @property
    def labels(self) -> np.ndarray | None: ...

_Decoded = tuple[int, int, np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]
_Progress = Callable[[int], object] | None

def encode(args: EncodeArgs, n_threads: int = 0, progress: _Progress = None) -> bytes: ...
def decode(buffer: np.ndarray, n_threads: int = 0, progress: _Progress = None) -> _Decoded: ...
def decode_file(path: os.PathLike[str] | str, n_threads: int = 0, progress: _Progress = None) -> _Decoded: ...
def encode_to_file(args: EncodeArgs, file: Any, n_threads: int = 0, progress: _Progress = None) -> None: ...
def encode_to_fd(args: EncodeArgs, fd: int, n_threads: int = 0, progress: _Progress = None) -> None: ...

@final
class RecordIOFileWriter:
    def __new__(cls, path: os.PathLike[str] | str) -> RecordIOFileWriter: ...
    def write(self, args: EncodeArgs, n_threads: int = 0, progress: _Progress = None) -> None: ...
    def commit(self) -> None: ...
    def abort(self) -> None: ...

@final
class RecordIOReader:
    def __new__(cls, source: Any) -> RecordIOReader: ...
    def next_batch(self, batch_size: int, n_threads: int = 0) -> _Decoded | None: ...

@final
class FmConfig:
    def __new__(
        cls,
        *,
        predictor_type: str,
        optimizer: str,
        epochs: int,
        mini_batch_size: int,
        bias_lr: float,
        linear_lr: float,
        factors_lr: float,
        bias_wd: float,
        linear_wd: float,
        factors_wd: float,
        clip_gradient: float | None = None,
        eps: float | None = None,
        rescale_grad: float | None = None,
        deterministic: bool | None = None,
    ) -> FmConfig: ...
    @property
    def n_slots(self) -> int: ...

@disjoint_base
class FmState:
    def __new__(
        cls,
        bias: np.ndarray,
        linear: np.ndarray,
        factors: np.ndarray,
        bias_state: np.ndarray,
        linear_state: np.ndarray,
        factors_state: np.ndarray,
        t: int = 0,
    ) -> FmState: ...
    @property
    def bias(self) -> np.ndarray: ...
    @property
    def linear(self) -> np.ndarray: ...
    @property
    def factors(self) -> np.ndarray: ...
    @property
    def bias_state(self) -> np.ndarray: ...
    @property
    def linear_state(self) -> np.ndarray: ...
    @property
    def factors_state(self) -> np.ndarray: ...
    t: int

_EpochStats = tuple[int, float, int, int, int, int]

def fm_fit_epochs(
    n_cols: int,
    csr: tuple[np.ndarray, np.ndarray],
    data: np.ndarray,
    labels: np.ndarray,
    sample_weight: np.ndarray | None,
    state: FmState,
    config: FmConfig,
    n_threads: int = 0,
    progress: _Progress = None,
    checkpoint: FmState | None = None,
    thread_choice: ThreadChoice | None = None,
) -> tuple[int, list[_EpochStats], BaseException | None]: ...

@final
class ThreadChoice:
    def __new__(cls) -> ThreadChoice: ...

@final
class BayesConfig:
    def __new__(
        cls,
        *,
        optimizer: str,
        epochs: int,
        burn_in: int,
        posterior_samples: int,
        bias_wd: float,
        linear_wd: float,
        factors_wd: float,
        seed: int,
        als_regularization: str = "fixed",
        num_chains: int = 1,
        noise: str = "shared",
    ) -> BayesConfig: ...
    @property
    def kept(self) -> int: ...

def fm_fit_bayes(
    n_cols: int,
    csr: tuple[np.ndarray, np.ndarray],
    data: np.ndarray,
    labels: np.ndarray,
    sample_weight: np.ndarray | None,
    groups: np.ndarray,
    state: FmState,
    sample_bias: np.ndarray,
    sample_linear: np.ndarray,
    sample_factors: np.ndarray,
    config: BayesConfig,
    eval_set: tuple[tuple[np.ndarray, np.ndarray], np.ndarray, np.ndarray] | None = None,
    n_threads: int = 0,
    progress: _Progress = None,
    clip: tuple[float, float] | None = None,
    noise_groups: np.ndarray | None = None,
) -> tuple[list[tuple[float, float | None, bool]], list[np.ndarray], BaseException | None]: ...
def fm_predict(
    n_cols: int,
    csr: tuple[np.ndarray, np.ndarray],
    data: np.ndarray,
    bias: float,
    linear: np.ndarray,
    factors: np.ndarray,
    n_threads: int = 0,
    progress: _Progress = None,
) -> np.ndarray: ...
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
    header: bool | None = None,
    vocabulary: tuple[list[str], list[str]] | None = None,
    skip_unknown: bool = False,
    n_threads: int = 0,
    progress: _Progress = None,
) -> tuple[int, int, list[str], list[str]]: ...

_Ids = np.ndarray | list[str]

def read_ratings(
    source: os.PathLike[str] | str,
    delimiter: str | None = None,
    header: bool | None = None,
    timestamps: bool = True,
    pairs: bool = False,
    vocabulary: tuple[list[str], list[str]] | None = None,
    skip_unknown: bool = False,
    n_threads: int = 0,
    progress: _Progress = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None, _Ids, _Ids]: ...
def top_k(
    query_vectors: np.ndarray,
    query_offsets: np.ndarray,
    item_vectors: np.ndarray,
    item_offsets: np.ndarray,
    k: int,
    exclude: tuple[np.ndarray, np.ndarray] | None = None,
    n_threads: int = 0,
    progress: _Progress = None,
) -> tuple[np.ndarray, np.ndarray]: ...

_FeatureBlock = (
    tuple[np.ndarray, int, int] | tuple[np.ndarray, int] | tuple[np.ndarray, np.ndarray, int, int, bool]
)

def assemble_features(
    blocks: list[_FeatureBlock], n_rows: int, n_threads: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]: ...

# A fitted block for `ArrowEncoder`: (name, kind, vocabulary, normalize, (low, high) or None, edges);
# a vocabulary is int64 ids, or strings as a unicode array's uint32 code points and its width.
_ArrowBlock = tuple[
    str, str, np.ndarray | tuple[np.ndarray, int] | None, bool, tuple[float, float] | None, list[float]
]

@final
class ArrowEncoder:
    def __new__(cls, blocks: list[_ArrowBlock], handle_unknown: str, handle_null: str) -> ArrowEncoder: ...
    @property
    def n_features(self) -> int: ...
    def encode(
        self, data: object, label: str | None = None, n_threads: int = 0
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]: ...

def fit_arrow(
    blocks: list[tuple[str, str]], data: object, handle_null: str, n_threads: int = 0
) -> list[np.ndarray | list[str] | tuple[float, float] | None]: ...
