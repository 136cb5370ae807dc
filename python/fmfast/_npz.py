"""NumPy ``.npy`` and ``.npz`` files checked before NumPy reads them.

``np.load`` allocates the array a ``.npy`` header declares before it reads any data, so a file of
a few hundred bytes declaring 10¹² floats raises ``MemoryError`` (or takes the memory). These
checks read only headers (and inflate compressed members a chunk at a time, keeping nothing):
each array must hold exactly the bytes its header declares, and each ``.npz`` member the bytes
its zip entry declares. After them, ``np.load`` allocates no more than the file holds.
"""

from __future__ import annotations

import math
import os
import zipfile
import zlib
from typing import IO

from numpy.lib import format as npy

from fmfast.exceptions import FmFastError, ModelFormatError

_HEADER_READERS = {(1, 0): npy.read_array_header_1_0, (2, 0): npy.read_array_header_2_0}
_CHUNK = 1 << 20


def _check_array(handle: IO[bytes], size: int, what: str, error: type[FmFastError]) -> None:
    """The ``.npy`` array read from ``handle``, ``size`` bytes in all, holds what its header declares."""
    try:
        read_header = _HEADER_READERS.get(npy.read_magic(handle))
        if read_header is None:
            raise error(f"{what} is not a .npy array of format version 1.0 or 2.0")
        shape, _, dtype = read_header(handle)
    except (ValueError, SyntaxError, RecursionError) as cause:
        raise error(f"{what} has no readable .npy header: {cause}") from cause
    if dtype.hasobject:
        raise error(f"{what} holds Python objects (pickles), which fmfast never loads")
    nbytes = math.prod(shape) * dtype.itemsize
    held = size - handle.tell()
    if nbytes != held:
        raise error(
            f"{what} declares shape {shape} of {dtype} ({nbytes} bytes) but holds {held} bytes of data"
        )


def _check_member(
    archive: zipfile.ZipFile, info: zipfile.ZipInfo, file_size: int, what: str, error: type[FmFastError]
) -> None:
    # zipfile reads a stored member in one piece of its declared size: that size must be in the file.
    stored = info.compress_type == zipfile.ZIP_STORED
    if info.header_offset + info.compress_size > file_size or (
        stored and info.compress_size != info.file_size
    ):
        raise error(f"{what} declares more bytes than the file holds")
    with archive.open(info) as handle:
        _check_array(handle, info.file_size, what, error)
        if stored:
            return
        # A compressed member's size is only declared: inflate it, keeping nothing, to see it holds.
        inflated = handle.tell()
        while chunk := handle.read(_CHUNK):
            inflated += len(chunk)
    if inflated != info.file_size:
        raise error(f"{what} inflates to {inflated} bytes, not the {info.file_size} it declares")


def check_npz(
    path: str | os.PathLike[str],
    kind: str,
    error: type[FmFastError] = ModelFormatError,
    *,
    name: str | None = None,
) -> None:
    """Check that every member of the ``.npz`` at ``path`` holds exactly the array it declares.

    Args:
        path: the file.
        kind: what the file should be, for messages ("fmfast model file").
        error: the exception to raise.
        name: what messages call the file (the URL it was copied from); ``path`` by default.

    Raises:
        error: not a zip file; a member that is damaged, holds Python objects, or whose header
            declares another size than it holds; the message names the file and the member.
        OSError: the file cannot be read.
    """
    where = repr(name or os.fspath(path))
    file_size = os.stat(path).st_size
    try:
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                _check_member(archive, info, file_size, f"{where} member {info.filename!r}", error)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, zlib.error, NotImplementedError) as cause:
        raise error(f"{where} is not a readable {kind}: {cause}") from cause


def check_npy(path: str | os.PathLike[str], error: type[FmFastError] = ModelFormatError) -> None:
    """Check that the ``.npy`` file at ``path`` holds exactly the array its header declares.

    Raises:
        error: no readable header, Python objects, or another size than declared.
        OSError: the file cannot be read.
    """
    with open(path, "rb") as handle:
        _check_array(handle, os.fstat(handle.fileno()).st_size, repr(os.fspath(path)), error)
