"""Where bytes go and come from: local paths, or URLs of object stores through fsspec.

Every path argument of fmfast goes through here. A local path, or a ``file://`` URL, is handed
back as a path, for the Rust core to map, read and write atomically (:mod:`fmfast._atomic`), as
fast as ever. Any other URL (``s3://``, ``gs://``, ``az://``, ``memory://``, ...) is opened with
`fsspec <https://filesystem-spec.readthedocs.io>`_ (``pip install fmfast[cloud]``), with the
``storage_options`` of the call (credentials, ``endpoint_url``, ...) or, where a call takes none,
fsspec's configuration and the store's own (``AWS_*`` environment variables, ``~/.aws``, ...).

Writes are streamed (S3: a multipart upload, a block at a time) and committed only when the
writer finishes: on any exception, Ctrl-C included, the upload is aborted and no object appears,
and an object already at the URL is left as it was.

A store has no rename of a whole prefix, so a set of shards there is replaced in three steps:
the files of the old set are deleted, the new shards written one by one, then the manifest, last.
A reader of the prefix takes only a whole set (:func:`fmfast.recordio.shards.recordio_files`'s
rule): while a set is being written, or after a writer died, the prefix holds an incomplete one,
refused with an error rather than read as data.
"""

from __future__ import annotations

import errno
import io
import os
import posixpath
import re
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import IO, Any

from fmfast.exceptions import FmFastError

#: Keyword arguments of the store's fsspec file system (``key``, ``secret``, ``endpoint_url``, ...).
StorageOptions = dict[str, Any] | None

_URL = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]+)://")


def is_url(target: Any) -> bool:
    """Whether ``target`` is the URL of a store (not a local path, nor a ``file://`` URL)."""
    match = _URL.match(target) if isinstance(target, str) else None
    return match is not None and match["scheme"].lower() != "file"


def local_path(target: str | os.PathLike[str]) -> str | os.PathLike[str]:
    """``target`` as a local path: a ``file://`` URL becomes its path, anything else is unchanged."""
    if isinstance(target, str) and target[:7].lower() == "file://":
        from urllib.parse import unquote, urlsplit

        return unquote(urlsplit(target).path)
    return target


def join(directory: str | os.PathLike[str], name: str) -> Any:
    """``name`` inside ``directory``: a path for a local directory, a URL for a store's prefix."""
    if is_url(directory):
        return f"{str(directory).rstrip('/')}/{name}"
    return Path(directory) / name


def filesystem(url: str, storage_options: StorageOptions = None) -> tuple[Any, str]:
    """The fsspec file system of ``url`` and the path within it.

    Raises:
        FmFastError: fsspec (or the store's package, such as ``s3fs``) is not installed.
        ValueError: a URL of no known store.
    """
    try:
        import fsspec
    except ImportError as e:
        raise FmFastError(f"{url}: reading and writing URLs needs fsspec: pip install 'fmfast[cloud]'") from e
    try:
        fs, path = fsspec.core.url_to_fs(url, **(storage_options or {}))
    except ImportError as e:
        raise FmFastError(f"{url}: this store needs a package that is not installed: {e}") from e
    return fs, path


#: Packages of store clients whose own exceptions (not ``OSError``) reach fmfast.
_CLIENT_PACKAGES = ("botocore", "aiobotocore", "s3fs", "google", "gcsfs", "azure", "adlfs", "aiohttp")


@contextmanager
def naming(url: str) -> Iterator[None]:
    """Errors of the store raised as an ``OSError`` whose ``filename`` is ``url``.

    Store clients raise ``OSError`` naming the path without its scheme, or exceptions of their
    own (``botocore``'s ``NoCredentialsError``: a ``PermissionError`` here; its connection errors:
    a ``ConnectionError``); a caller reading several URLs needs to know which one failed.
    """
    try:
        yield
    except OSError as e:
        if e.filename == url:
            raise
        raise _named(type(e), e, url) from e
    except Exception as e:
        if type(e).__module__.split(".")[0] not in _CLIENT_PACKAGES:
            raise
        name = type(e).__name__
        kind = PermissionError if "Credential" in name else ConnectionError if "Connect" in name else OSError
        raise _named(kind, e, url) from e


def _named(kind: type[OSError], cause: Exception, url: str) -> OSError:
    code = getattr(cause, "errno", None) or _CODES.get(kind, errno.EIO)
    if isinstance(cause, OSError):
        # Without an errno, an OSError of fsspec carries only the path, which the URL replaces.
        detail = cause.strerror or os.strerror(code)
    else:
        detail = f"{type(cause).__name__}: {cause}"
    return kind(code, detail, url)


#: The errno of an OSError of this type raised without one.
_CODES = {FileNotFoundError: errno.ENOENT, PermissionError: errno.EACCES, FileExistsError: errno.EEXIST}


class StoreOutput(io.RawIOBase):
    """A streamed upload to ``url`` that becomes an object only by :meth:`commit`.

    Until then nothing is visible at ``url`` (and an object already there keeps its content);
    :meth:`abort` throws the upload away (S3: aborts the multipart upload). A binary file open
    for writing that cannot seek, as ``zipfile`` and ``tarfile`` stream into.
    """

    def __init__(self, url: str, storage_options: StorageOptions = None) -> None:
        super().__init__()
        self.url = url
        with naming(url):
            self._fs, self._path = filesystem(url, storage_options)
            # fsspec's memory store ignores autocommit and makes a file visible as it is opened:
            # there, the file is written under a hidden temporary name and moved into place.
            self._temporary = None
            if "memory" in self._fs.protocol:
                parent, name = self._path.rsplit("/", 1)
                self._temporary = f"{parent}/.fmfast-{uuid.uuid4().hex}-{name}.tmp"
            # autocommit=False: fsspec's transactions, the upload is finished only by commit().
            self.file: IO[bytes] = self._fs.open(self._temporary or self._path, "wb", autocommit=False)

    def writable(self) -> bool:
        """Always: an upload is written."""
        return True

    def write(self, data: Any) -> int:
        """Append ``data`` (any bytes-like object) to the upload."""
        with naming(self.url):
            self.file.write(bytes(data))
        return memoryview(data).nbytes

    def commit(self) -> None:
        """Finish the upload: the object appears at ``url`` whole."""
        with naming(self.url):
            self.file.close()
            self.file.commit()  # type: ignore[attr-defined]
            if self._temporary is not None:
                self._fs.mv(self._temporary, self._path)
        self.close()

    def abort(self) -> None:
        """Throw the upload away; nothing appears at ``url``."""
        with suppress(Exception):
            self.file.discard()  # type: ignore[attr-defined]
        # A discarded file must not be closed: closing flushes, and s3fs would start a new upload.
        with suppress(AttributeError):
            self.file.closed = True  # type: ignore[misc]
        if self._temporary is not None:
            with suppress(Exception):
                self._fs.rm(self._temporary)
        self.close()


@contextmanager
def store_output(url: str, storage_options: StorageOptions = None) -> Iterator[StoreOutput]:
    """A :class:`StoreOutput` committed if the block finishes, aborted on any exception."""
    output = StoreOutput(url, storage_options)
    try:
        yield output
    except BaseException:
        output.abort()
        raise
    output.commit()


@contextmanager
def open_input(url: str, storage_options: StorageOptions = None) -> Iterator[IO[bytes]]:
    """The object at ``url``, open for streamed reading."""
    with naming(url):
        fs, path = filesystem(url, storage_options)
        with fs.open(path, "rb") as file:
            yield file


def read_bytes(target: str | os.PathLike[str], storage_options: StorageOptions = None) -> bytes:
    """The whole file or object at ``target`` (a path or a URL)."""
    if not is_url(target):
        return Path(local_path(target)).read_bytes()
    with naming(str(target)):
        fs, path = filesystem(str(target), storage_options)
        data: bytes = fs.cat_file(path)
        return data


def size(target: str | os.PathLike[str], storage_options: StorageOptions = None) -> int:
    """The size in bytes of the file or object at ``target``."""
    if not is_url(target):
        return Path(local_path(target)).stat().st_size
    with naming(str(target)):
        fs, path = filesystem(str(target), storage_options)
        return int(fs.size(path))


def is_directory(target: str | os.PathLike[str], storage_options: StorageOptions = None) -> bool:
    """Whether ``target`` names a directory (a store's prefix) rather than a file or an object."""
    if not is_url(target):
        return Path(local_path(target)).is_dir()
    with naming(str(target)):
        fs, path = filesystem(str(target), storage_options)
        return bool(fs.isdir(path))


def list_files(target: str | os.PathLike[str], storage_options: StorageOptions = None) -> list[str]:
    """The names of the files directly in the directory (or under the store's prefix) ``target``.

    Raises:
        FileNotFoundError: no such directory, or no object under the prefix, naming ``target``.
    """
    if not is_url(target):
        return [entry.name for entry in os.scandir(local_path(target)) if entry.is_file()]
    url = str(target)
    with naming(url):
        fs, path = filesystem(url, storage_options)
        entries = fs.ls(path, detail=True, refresh=True)
    if not entries:
        raise FileNotFoundError(2, "No such object or prefix", url)
    return [posixpath.basename(e["name"].rstrip("/")) for e in entries if e["type"] == "file"]


def remove(urls: list[str], storage_options: StorageOptions = None) -> None:
    """Delete the objects at ``urls`` (all of one store)."""
    if urls:
        with naming(urls[0]):
            fs, _ = filesystem(urls[0], storage_options)
            fs.rm([fs._strip_protocol(url) for url in urls])


def rename(source: Any, target: Any, storage_options: StorageOptions = None) -> None:
    """Move the file ``source`` to ``target`` in the same directory or store (a copy, on most stores)."""
    if not is_url(source):
        os.replace(source, target)
        return
    with naming(str(source)):
        fs, _ = filesystem(str(source), storage_options)
        fs.mv(fs._strip_protocol(str(source)), fs._strip_protocol(str(target)))


@contextmanager
def local_copy(target: str | os.PathLike[str], storage_options: StorageOptions = None) -> Iterator[Any]:
    """``target`` as a local file: itself if it is one, else a copy removed afterwards.

    For readers that need a file (``np.load``, the Rust converters): an object is streamed to a
    temporary directory under its own name (so that its suffix still says its format); the copy
    takes disk, not memory.
    """
    if not is_url(target):
        yield local_path(target)
        return
    url = str(target)
    directory = tempfile.mkdtemp(prefix=".fmfast-", suffix=".tmp")
    try:
        copy = Path(directory) / posixpath.basename(url.rstrip("/"))
        with open_input(url, storage_options) as source, open(copy, "wb") as out:
            shutil.copyfileobj(source, out, _COPY_BYTES)
        yield copy
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@contextmanager
def staged_output(target: str | os.PathLike[str], storage_options: StorageOptions = None) -> Iterator[Any]:
    """A local path to write ``target`` at, for writers that need a file (the Rust converters).

    For a local ``target``, that is ``target`` itself. For a URL, it is a path in a temporary
    directory; when the block succeeds, every file written there (``target`` and whatever the
    writer put beside it, such as a ``.columns.json``) is uploaded beside the URL, ``target``
    last; when it fails, nothing is.
    """
    if not is_url(target):
        yield local_path(target)
        return
    url = str(target)
    parent, name = url.rsplit("/", 1)
    directory = tempfile.mkdtemp(prefix=".fmfast-", suffix=".tmp")
    try:
        yield Path(directory) / name
        for file in sorted(Path(directory).iterdir(), key=lambda file: file.name == name):
            with store_output(join(parent, file.name), storage_options) as out, open(file, "rb") as source:
                shutil.copyfileobj(source, out, _COPY_BYTES)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


#: Bytes copied at a time between a local file and a store.
_COPY_BYTES = 8 << 20


@contextmanager
def store_directory(url: str, storage_options: StorageOptions = None) -> Iterator[str]:
    """The prefix ``url``, emptied of its files, for a new set written file by file.

    The ``.json`` files (manifests, which readers and SageMaker find a set by) are deleted
    before the shards, so that no manifest ever lists a shard that is gone. The caller writes
    its manifest last. If the block fails, the files it wrote are deleted: the prefix is left
    empty, never holding part of a set.
    """
    url = url.rstrip("/")
    try:
        old = list_files(url, storage_options)
    except FileNotFoundError:
        old = []
    remove([join(url, name) for name in old if name.endswith(".json")], storage_options)
    remove([join(url, name) for name in old if not name.endswith(".json")], storage_options)
    try:
        yield url
    except BaseException:
        with suppress(Exception):
            remove([join(url, name) for name in list_files(url, storage_options)], storage_options)
        raise
