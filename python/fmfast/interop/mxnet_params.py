"""MXNet's NDArray list file (``.params``, ``mx.nd.save`` / ``mx.nd.load``), without MXNet.

This is the format of the ``params`` member of a SageMaker Factorization Machines model
(``model.tar.gz`` → ``model_algo-1`` → ``params``). Layout (all integers little-endian, no
padding)::

    File    := u64 0x112 | u64 0 | u64 N | NDArray[N] | u64 K | Name[K]    (K = N: dict, K = 0: list)
    Name    := u64 len | utf-8 bytes
    Shape   := i32 ndim | i64 dim[ndim]
    NDArray := u32 magic (V2 0xF993FAC9, V3 0xF993FACA) | i32 stype (0 dense, 1 row_sparse, 2 csr)
               | [Shape storage_shape if sparse] | Shape shape | i32 dev_type | i32 dev_id
               | i32 type_flag | {i32 aux_type | Shape aux_shape} x num_aux | data | aux data

V1 arrays (magic 0xF993FAC8: no stype) and pre-V1 arrays (the first u32 is ``ndim``, then u32
dims) are read too. Every size is checked against the bytes that remain before anything is
allocated; anything malformed raises :class:`fmfast.ModelFormatError` with the byte offset.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

import numpy as np
import scipy.sparse as sp

from fmfast.exceptions import InvalidInputError, ModelFormatError

LIST_MAGIC = 0x112
V1_MAGIC = 0xF993FAC8
V2_MAGIC = 0xF993FAC9
V3_MAGIC = 0xF993FACA
#: The largest dense array a ``row_sparse`` one is expanded to, 1 GiB (use ``keep_row_sparse``
#: beyond): a few stored rows may declare any number of rows, so the bytes present do not bound it.
MAX_DENSE_BYTES = 1 << 30
#: The most dimensions an array may have (MXNet's own limit is far lower in practice).
MAX_NDIM = 32

#: MXNet ``type_flag`` → little-endian NumPy dtype.
DTYPES: dict[int, np.dtype[Any]] = {
    0: np.dtype("<f4"),
    1: np.dtype("<f8"),
    2: np.dtype("<f2"),
    3: np.dtype("u1"),
    4: np.dtype("<i4"),
    5: np.dtype("i1"),
    6: np.dtype("<i8"),
    7: np.dtype("?"),
}
_FLAGS = {dtype: flag for flag, dtype in DTYPES.items()}
_STYPES = {0: "default", 1: "row_sparse", 2: "csr"}
_INDEX_FLAGS = (3, 4, 5, 6)
# The smallest possible array: magic + stype + ndim 0 (a "none" array).
_MIN_ARRAY_BYTES = 12


@dataclass(frozen=True)
class RowSparse:
    """A ``row_sparse`` array as stored: the rows ``indices`` of a ``shape`` array hold ``data``."""

    data: np.ndarray
    indices: np.ndarray
    shape: tuple[int, ...]

    def toarray(self) -> np.ndarray:
        """The dense equivalent: the stored rows, zeros everywhere else."""
        dense = np.zeros(self.shape, dtype=self.data.dtype)
        dense[self.indices] = self.data
        return dense


Loaded: TypeAlias = np.ndarray | RowSparse | sp.csr_array


class _Reader:
    """Little-endian fields from a buffer, each checked against the bytes that remain."""

    def __init__(self, data: bytes | bytearray | memoryview) -> None:
        self.view = memoryview(data).cast("B")
        self.pos = 0

    @property
    def left(self) -> int:
        return len(self.view) - self.pos

    def fail(self, message: str, offset: int | None = None) -> ModelFormatError:
        return ModelFormatError(message, self.pos if offset is None else offset)

    def take(self, n: int, what: str) -> memoryview:
        if n > self.left:
            raise self.fail(f"truncated {what}: needs {n} bytes, {self.left} left")
        chunk = self.view[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def unpack(self, fmt: str, what: str) -> int:
        value: int = struct.unpack(fmt, self.take(struct.calcsize(fmt), what))[0]
        return value

    def shape(self, what: str, *, v3: bool) -> tuple[int, ...] | None:
        """A ``Shape``; ``None`` for MXNet's unknown shape (V3: ndim -1, V1/V2: ndim 0)."""
        start = self.pos
        ndim = self.unpack("<i", f"{what} ndim")
        if ndim < 0 and not (v3 and ndim == -1):
            raise self.fail(f"{what} has ndim {ndim}", start)
        if ndim > MAX_NDIM:
            raise self.fail(f"{what} has ndim {ndim}, more than {MAX_NDIM}", start)
        if ndim == -1 or (ndim == 0 and not v3):
            return None
        dims = struct.unpack(f"<{ndim}q", self.take(8 * ndim, f"{what} dims"))
        if any(d < 0 for d in dims):
            raise self.fail(f"{what} has a negative dimension: {dims}", start)
        return tuple(dims)

    def dtype(self, what: str) -> np.dtype[Any]:
        start = self.pos
        flag = self.unpack("<i", what)
        if flag not in DTYPES:
            raise self.fail(f"unknown {what} {flag}", start)
        return DTYPES[flag]

    def array(self, shape: tuple[int, ...], dtype: np.dtype[Any], what: str) -> np.ndarray:
        """Exactly ``prod(shape)`` elements, refused before any allocation if the bytes are not there."""
        count = 1
        for dim in shape:
            count *= dim
        nbytes = count * dtype.itemsize
        if nbytes > self.left:
            raise self.fail(
                f"{what} of shape {shape} and dtype {dtype.name} needs {nbytes} bytes, {self.left} left"
            )
        return np.frombuffer(self.take(nbytes, what), dtype=dtype).reshape(shape).copy()


def _none_array() -> np.ndarray:
    return np.zeros((0,), dtype=np.float32)


def _read_array(reader: _Reader, index: int, keep_row_sparse: bool) -> Loaded:
    start = reader.pos
    what = f"array {index}"
    magic = reader.unpack("<I", f"{what} magic")
    if magic in (V2_MAGIC, V3_MAGIC):
        v3 = magic == V3_MAGIC
        stype_at = reader.pos
        stype = reader.unpack("<i", f"{what} storage type")
        if stype not in _STYPES:
            raise reader.fail(f"{what} has unknown storage type {stype}", stype_at)
        num_aux = stype
        storage_shape = None
        if num_aux:
            storage_shape = reader.shape(f"{what} storage shape", v3=v3)
        shape = reader.shape(f"{what} shape", v3=v3)
    elif magic == V1_MAGIC:
        v3, stype, num_aux, storage_shape = False, 0, 0, None
        shape = reader.shape(f"{what} shape", v3=False)
    elif magic <= MAX_NDIM:
        # Pre-V1: the magic is ndim, followed by uint32 dims.
        v3, stype, num_aux, storage_shape = False, 0, 0, None
        dims = struct.unpack(f"<{magic}I", reader.take(4 * magic, f"{what} legacy dims"))
        shape = tuple(dims) if magic else None
    else:
        raise reader.fail(f"{what} has bad magic 0x{magic:08x}", start)
    if shape is None:
        return _none_array()
    reader.take(8, f"{what} context")  # dev_type, dev_id: where it lived, ignored like MXNet on CPU
    dtype = reader.dtype(f"{what} dtype")
    aux: list[tuple[np.dtype[Any], tuple[int, ...]]] = []
    for i in range(num_aux):
        aux_at = reader.pos
        aux_dtype = reader.dtype(f"{what} aux {i} dtype")
        if _FLAGS[aux_dtype] not in _INDEX_FLAGS:
            raise reader.fail(f"{what} aux {i} has non-integer dtype {aux_dtype.name}", aux_at)
        aux_shape = reader.shape(f"{what} aux {i} shape", v3=v3)
        if aux_shape is None or len(aux_shape) != 1:
            raise reader.fail(f"{what} aux {i} shape {aux_shape} is not one-dimensional", aux_at)
        aux.append((aux_dtype, aux_shape))
    if num_aux and storage_shape is None:
        raise reader.fail(f"{what} is sparse with an unknown storage shape", start)
    data_at = reader.pos
    data = reader.array(storage_shape if storage_shape is not None else shape, dtype, f"{what} data")
    aux_data = [
        reader.array(aux_shape, aux_dtype, f"{what} aux {i} data").astype(np.int64)
        for i, (aux_dtype, aux_shape) in enumerate(aux)
    ]
    if stype == 0:
        return data
    assert storage_shape is not None
    if stype == 1:
        return _row_sparse(reader, what, data_at, data, aux_data[0], shape, keep_row_sparse)
    return _csr(reader, what, data_at, data, aux_data[0], aux_data[1], shape)


def _row_sparse(
    reader: _Reader,
    what: str,
    at: int,
    data: np.ndarray,
    rows: np.ndarray,
    shape: tuple[int, ...],
    keep: bool,
) -> np.ndarray | RowSparse:
    if not shape or data.shape[1:] != shape[1:] or data.shape[0] != rows.shape[0]:
        raise reader.fail(f"{what}: row_sparse data {data.shape}, {rows.shape[0]} rows, shape {shape}", at)
    if rows.size and (rows.min() < 0 or rows.max() >= shape[0] or np.any(np.diff(rows) <= 0)):
        raise reader.fail(f"{what}: row indices are not increasing within 0..{shape[0]}", at)
    sparse = RowSparse(data, rows, shape)
    if keep:
        return sparse
    dense_bytes = data.dtype.itemsize
    for dim in shape:
        dense_bytes *= dim
    if dense_bytes > MAX_DENSE_BYTES:
        raise reader.fail(
            f"{what}: row_sparse shape {shape} would take {dense_bytes} bytes dense, more than "
            f"{MAX_DENSE_BYTES} (load with keep_row_sparse=True)",
            at,
        )
    return sparse.toarray()


def _csr(
    reader: _Reader,
    what: str,
    at: int,
    data: np.ndarray,
    indptr: np.ndarray,
    indices: np.ndarray,
    shape: tuple[int, ...],
) -> sp.csr_array:
    if len(shape) != 2 or data.ndim != 1:
        raise reader.fail(f"{what}: csr shape {shape} is not two-dimensional", at)
    n_rows, n_cols = shape
    nnz = data.shape[0]
    if (
        indptr.shape[0] != n_rows + 1
        or indices.shape[0] != nnz
        or indptr[0] != 0
        or indptr[-1] != nnz
        or np.any(np.diff(indptr) < 0)
    ):
        raise reader.fail(f"{what}: csr indptr does not describe {nnz} values in {n_rows} rows", at)
    if nnz and (indices.min() < 0 or indices.max() >= n_cols):
        raise reader.fail(f"{what}: csr column index outside 0..{n_cols}", at)
    return sp.csr_array((data, indices, indptr), shape=(n_rows, n_cols))


def read_mxnet_params(
    data: bytes | bytearray | memoryview, *, keep_row_sparse: bool = False
) -> dict[str, Any] | list[Any]:
    """Read an MXNet NDArray list file (``mx.nd.load``) into NumPy arrays.

    Args:
        data: the whole file.
        keep_row_sparse: return ``row_sparse`` arrays as :class:`RowSparse` (stored rows and their
            indices) instead of their dense equivalent.

    Returns:
        A dict name → array for a file saved from a dict (insertion order kept), or a list for a
        file saved from a list. Dense arrays keep their dtype (float32/64/16, uint8, int8/32/64,
        bool) and shape (0-d and empty arrays included); ``csr`` arrays become
        ``scipy.sparse.csr_array``; a "none" array (no shape) becomes an empty float32 vector.

    Raises:
        ModelFormatError: bad magic, truncated data, impossible sizes, unknown dtypes or storage
            types, invalid sparse indices, bad names, or bytes after the end; with the offset. A
            ``row_sparse`` array larger than :data:`MAX_DENSE_BYTES` dense, unless kept sparse.
    """
    reader = _Reader(data)
    magic = reader.unpack("<Q", "file magic")
    if magic != LIST_MAGIC:
        raise reader.fail(f"bad file magic 0x{magic:x}, expected 0x{LIST_MAGIC:x}", 0)
    reader.take(8, "reserved field")
    count_at = reader.pos
    count = reader.unpack("<Q", "array count")
    if count > reader.left // _MIN_ARRAY_BYTES:
        raise reader.fail(f"array count {count} cannot fit in the {reader.left} bytes left", count_at)
    arrays = [_read_array(reader, i, keep_row_sparse) for i in range(count)]
    names_at = reader.pos
    n_names = reader.unpack("<Q", "name count")
    if n_names not in (0, count):
        raise reader.fail(f"{n_names} names for {count} arrays", names_at)
    names: list[str] = []
    for i in range(n_names):
        length = reader.unpack("<Q", f"name {i} length")
        name_at = reader.pos
        raw = reader.take(length, f"name {i}")
        try:
            name = bytes(raw).decode("utf-8")
        except UnicodeDecodeError as error:
            raise reader.fail(f"name {i} is not UTF-8", name_at) from error
        if name in names:
            raise reader.fail(f"name {name!r} appears twice", name_at)
        names.append(name)
    if reader.left:
        raise reader.fail(f"{reader.left} bytes after the end of the file")
    if n_names == 0:
        return arrays
    return dict(zip(names, arrays, strict=True))


def _dense(value: Any, what: str) -> np.ndarray:
    if sp.issparse(value) or isinstance(value, RowSparse):
        value = value.toarray()
    array = np.asarray(value)
    dtype = array.dtype.newbyteorder("<") if array.dtype.byteorder == ">" else array.dtype
    if dtype not in _FLAGS:
        raise InvalidInputError(f"{what} has dtype {array.dtype}, which MXNet cannot store")
    if array.ndim > MAX_NDIM:
        raise InvalidInputError(f"{what} has {array.ndim} dimensions, more than {MAX_NDIM}")
    # Not np.ascontiguousarray: it turns a 0-d array into a vector.
    return np.require(array.astype(dtype, copy=False), requirements="C")


def _shape_bytes(shape: tuple[int, ...]) -> bytes:
    return struct.pack(f"<i{len(shape)}q", len(shape), *shape)


def write_mxnet_params(
    arrays: Mapping[str, Any] | Sequence[Any], *, names: bool = True, version: int | None = None
) -> bytes:
    """Encode arrays as an MXNet NDArray list file, as ``mx.nd.save`` writes it.

    Every array is written dense (``row_sparse``/``csr`` and scipy sparse inputs are densified),
    on context cpu(0), in C order, little-endian.

    Args:
        arrays: a mapping name → array (a dict file, keys in order) or a sequence (a list file).
        names: write the mapping's names; ``False`` writes its values as a list file.
        version: array magic, 2 or 3. ``None``: 2, or 3 for every array if one of them is 0-d
            (what MXNet writes under ``np_shape``; a V2 file cannot hold a 0-d array).

    Raises:
        InvalidInputError: a dtype MXNet has no type flag for, or too many dimensions.
    """
    if isinstance(arrays, Mapping):
        keys = [str(key) for key in arrays] if names else []
        values = [_dense(value, f"array {key!r}") for key, value in arrays.items()]
    else:
        keys = []
        values = [_dense(value, f"array {i}") for i, value in enumerate(arrays)]
    if version is None:
        version = 3 if any(value.ndim == 0 for value in values) else 2
    if version not in (2, 3):
        raise InvalidInputError(f"version must be 2 or 3, got {version}")
    if version == 2 and any(value.ndim == 0 for value in values):
        raise InvalidInputError("a 0-d array needs version=3 (V2 reads ndim 0 as 'no array')")
    magic = V2_MAGIC if version == 2 else V3_MAGIC
    parts = [struct.pack("<QQQ", LIST_MAGIC, 0, len(values))]
    for value in values:
        parts.append(struct.pack("<Ii", magic, 0))
        parts.append(_shape_bytes(value.shape))
        parts.append(struct.pack("<iii", 1, 0, _FLAGS[value.dtype]))
        parts.append(value.tobytes())
    parts.append(struct.pack("<Q", len(keys)))
    for key in keys:
        encoded = key.encode("utf-8")
        parts.append(struct.pack("<Q", len(encoded)) + encoded)
    return b"".join(parts)


__all__ = [
    "DTYPES",
    "MAX_DENSE_BYTES",
    "ModelFormatError",
    "RowSparse",
    "read_mxnet_params",
    "write_mxnet_params",
]
