"""Files that appear whole or not at all (temporary file beside the target, then rename)."""

from __future__ import annotations

import errno
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO


def check_writable(path: str | os.PathLike[str]) -> None:
    """Raise the ``OSError`` that writing ``path`` would meet, naming the file or its directory.

    Run before long work whose result goes to ``path``, so that a missing or read-only directory
    is reported at once rather than after the work (and not as the temporary file's name).
    """
    target = Path(path)
    directory = target.parent
    if not directory.is_dir():
        error = NotADirectoryError if directory.exists() else FileNotFoundError
        code = errno.ENOTDIR if directory.exists() else errno.ENOENT
        raise error(code, f"No such directory to write {target.name} into", str(directory))
    if target.is_dir():
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(target))
    if not os.access(directory, os.W_OK | os.X_OK):
        raise PermissionError(errno.EACCES, f"Cannot create {target.name} in this directory", str(directory))


@contextmanager
def atomic_output(path: str | os.PathLike[str]) -> Iterator[IO[bytes]]:
    """Yield a binary file that replaces ``path`` only if the block finishes without error."""
    target = Path(path)
    check_writable(target)
    fd, temp = tempfile.mkstemp(prefix=".fmfast-", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            yield out
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, target)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
