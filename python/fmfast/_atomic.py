"""Outputs that appear whole or not at all: written under a temporary name, then renamed into place.

Temporary files and directories are named ``.fmfast-*.tmp`` and their writer holds an exclusive
``flock`` on them until it finishes (the Rust writers too). A writer killed with ``kill -9`` leaves
its temporary behind; the next write into the same directory removes every ``.fmfast-*.tmp`` there
that no live writer holds and that was last modified more than :data:`STALE_AFTER_S` seconds
earlier (a temporary so young may belong to a writer that has created it and not yet locked it).
"""

from __future__ import annotations

import fcntl
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

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
            fd = os.open(entry.path, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError:
            continue  # gone already, a symbolic link, or not ours to open
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
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


@contextmanager
def atomic_output(path: str | os.PathLike[str]) -> Iterator[IO[bytes]]:
    """Yield a binary file that replaces ``path`` only if the block finishes without error."""
    target = Path(path)
    remove_stale_temporaries(target)
    fd, temp = tempfile.mkstemp(prefix=_PREFIX, suffix=_SUFFIX, dir=target.parent)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        with os.fdopen(fd, "wb") as out:
            yield out
            out.flush()
            os.fsync(out.fileno())
            os.replace(temp, target)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
