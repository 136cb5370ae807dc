"""Outputs that appear whole or not at all: written under a temporary name, then renamed into place.

Temporary files and directories are named ``.fmfast-*.tmp`` and their writer holds an exclusive
``flock`` on them until it finishes (the Rust writers too). A writer killed with ``kill -9`` leaves
its temporary behind; the next write into the same directory removes every ``.fmfast-*.tmp`` there
that no live writer holds and that was last modified more than :data:`STALE_AFTER_S` seconds
earlier (a temporary so young may belong to a writer that has created it and not yet locked it).
"""

from __future__ import annotations

import ctypes
import errno
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, cast

from fmfast._storage import StorageOptions, is_url, local_path, store_directory, store_output

if sys.platform != "win32":
    import fcntl


def _lock(fd: int, *, wait: bool = True) -> None:
    """Take an exclusive ``flock`` on ``fd``; ``OSError`` when ``wait`` is false and it is held.

    Windows has no ``flock``, and needs none: a file open in a live writer cannot be removed there.
    """
    if sys.platform != "win32":
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))


#: Age in seconds after which an unlocked ``.fmfast-*.tmp`` is taken for the leftover of a dead writer.
STALE_AFTER_S = 60.0

_PREFIX, _SUFFIX = ".fmfast-", ".tmp"


def is_temporary(name: str) -> bool:
    """Whether ``name`` is that of an fmfast writer's temporary file or directory."""
    return name.startswith(_PREFIX) and name.endswith(_SUFFIX)


def remove_stale_temporaries(target: str | os.PathLike[str]) -> None:
    """Remove the ``.fmfast-*.tmp`` files and directories beside ``target`` that dead writers left."""
    directory = Path(target).parent
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return
    now = time.time()
    for entry in entries:
        if not is_temporary(entry.name):
            continue
        try:
            if now - entry.stat(follow_symlinks=False).st_mtime < STALE_AFTER_S:
                continue
            fd = os.open(entry.path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except OSError:
            continue  # gone already, a symbolic link, or not ours to open
        try:
            _lock(fd, wait=False)
        except OSError:
            os.close(fd)
            continue  # a live writer holds it
        try:
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path, ignore_errors=True)
            else:
                os.unlink(entry.path)
        except OSError:
            pass  # another cleaner was first
        finally:
            os.close(fd)


def check_writable(path: str | os.PathLike[str]) -> None:
    """Raise the ``OSError`` that writing ``path`` would meet, naming the file or its directory.

    Run before long work whose result goes to ``path``, so that a missing or read-only directory
    is reported at once rather than after the work (and not as the temporary file's name).
    A store's URL is not checked here: its upload reports the error when it starts.
    """
    if is_url(path):
        return
    target = Path(local_path(path))
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
def atomic_output(
    path: str | os.PathLike[str], storage_options: StorageOptions = None
) -> Iterator[IO[bytes]]:
    """Yield a binary file that replaces ``path`` only if the block finishes without error.

    ``path`` may be a store's URL (:mod:`fmfast._storage`): the file is then a streamed upload,
    which offers ``write`` only, committed at the end of the block and aborted on any exception.
    """
    if is_url(path):
        with store_output(cast(str, path), storage_options) as upload:
            yield cast(IO[bytes], upload)
        return
    target = Path(local_path(path))
    check_writable(target)
    remove_stale_temporaries(target)
    fd, temp = tempfile.mkstemp(prefix=_PREFIX, suffix=_SUFFIX, dir=target.parent)
    _lock(fd)
    try:
        with os.fdopen(fd, "wb") as out:
            yield out
            out.flush()
            os.fsync(out.fileno())
            os.replace(temp, target)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


@contextmanager
def atomic_directory(path: str | os.PathLike[str], storage_options: StorageOptions = None) -> Iterator[Any]:
    """Yield an empty directory that replaces the directory ``path`` whole if the block succeeds.

    Readers of ``path`` see the old directory or the new one, never a mix: on Linux the two are
    exchanged in one ``renameat2(RENAME_EXCHANGE)``; elsewhere the old one is first moved aside,
    so a kill between the two renames leaves ``path`` absent (the old contents stay in a stale
    temporary until the next write).

    For a store's URL, which has no rename of a prefix, the block gets the URL of the prefix
    itself (a ``str``: name files in it with :func:`fmfast._storage.join`), emptied of the old
    files, and must write its manifest last (see :func:`fmfast._storage.store_directory`).
    """
    if is_url(path):
        with store_directory(cast(str, path), storage_options) as prefix:
            yield prefix
        return
    target = Path(local_path(path))
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(target)
    temp = Path(tempfile.mkdtemp(prefix=_PREFIX, suffix=_SUFFIX, dir=target.parent))
    fd = os.open(temp, os.O_RDONLY)
    try:
        _lock(fd)
        yield temp
        _replace_directory(temp, target)
    finally:
        # After the exchange the temporary name holds the old directory.
        shutil.rmtree(temp, ignore_errors=True)
        os.close(fd)


def _replace_directory(new: Path, target: Path) -> None:
    """Put ``new`` at ``target``; whatever was at ``target`` ends up at ``new``."""
    try:
        os.rename(new, target)  # replaces an absent or empty directory
        return
    except OSError as error:
        if error.errno not in (errno.ENOTEMPTY, errno.EEXIST):
            raise
    if _exchange(new, target):
        return
    aside = Path(tempfile.mkdtemp(prefix=_PREFIX, suffix=_SUFFIX, dir=target.parent))
    os.rename(target, aside / "old")
    os.rename(new, target)
    os.rename(aside / "old", new)
    aside.rmdir()


def _exchange(a: Path, b: Path) -> bool:
    """Swap ``a`` and ``b`` atomically; ``False`` where the system cannot.

    That is where there is no ``renameat2`` (not Linux) or the file system lacks ``RENAME_EXCHANGE``.
    """
    if sys.platform != "linux":
        return False
    renameat2 = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
    if renameat2 is None:
        return False
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(code, os.strerror(code), str(b))
