"""The SDK's ``RecordSet``: RecordIO shards and a manifest, and the channels ``fit`` reads.

Locations are local directories, ``file://`` URLs or the URLs of object stores (``s3://...``,
read and written through fsspec with the credentials of the environment; see
:mod:`fmfast._storage`).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import numpy as np
import scipy.sparse as sp

from fmfast import _storage as storage
from fmfast.exceptions import InvalidInputError
from fmfast.recordio.codec import read_recordio
from fmfast.recordio.shards import write_recordio_shards

#: A channel's data: a :class:`RecordSet`, or the location of a RecordIO file or directory of them.
Channel = Any


class RecordSet:
    """RecordIO-protobuf training data bound to a channel, as the SDK's ``RecordSet``.

    Args:
        s3_data: the manifest file (``s3_data_type="ManifestFile"``), or a RecordIO file or a
            directory of them (``"S3Prefix"``): a local path, a ``file://`` URL or a store's URL.
        num_records: number of records.
        feature_dim: number of features of each record.
        s3_data_type: ``"ManifestFile"`` or ``"S3Prefix"``.
        channel: the training channel it feeds (``"train"``, ``"test"``).
        distribution: SageMaker's S3 distribution type, kept for the SDK's sake (a local job
            reads every record).
    """

    def __init__(
        self,
        s3_data: str,
        num_records: int,
        feature_dim: int,
        s3_data_type: str = "ManifestFile",
        channel: str = "train",
        distribution: str = "ShardedByS3Key",
    ) -> None:
        if s3_data_type not in ("ManifestFile", "S3Prefix"):
            raise InvalidInputError(
                f"s3_data_type must be 'ManifestFile' or 'S3Prefix', got {s3_data_type!r}"
            )
        self.s3_data = s3_data
        self.num_records = num_records
        self.feature_dim = feature_dim
        self.s3_data_type = s3_data_type
        self.channel = channel
        self.distribution = distribution

    def __repr__(self) -> str:
        return str((RecordSet, self.__dict__))

    def data_channel(self) -> dict[str, RecordSet]:
        """``{channel: self}``: what ``fit`` accepts for this record set."""
        return {self.channel: self}


def resolve_location(location: str | os.PathLike[str], what: str) -> Any:
    """A location as fmfast reads and writes it: the ``Path`` of a path or ``file://`` URL, or a store's URL.

    Raises:
        InvalidInputError: no URL at all (``s3:/bucket``: a slash missing), naming ``what``.
    """
    text = os.fspath(location)
    if storage.is_url(text):
        return text
    scheme = urlparse(text).scheme
    if scheme == "file":
        return Path(unquote(urlparse(text).path))
    if len(scheme) > 1:  # one letter is a Windows drive, not a scheme
        raise InvalidInputError(f"{what} {text!r} is neither a path nor a URL (scheme://...)")
    return Path(text)


def write_record_set(
    data_location: str | os.PathLike[str],
    owner: str,
    train: Any,
    labels: Any,
    *,
    n_shards: int,
    channel: str,
) -> RecordSet:
    """Write ``train`` and ``labels`` as ``n_shards`` RecordIO files plus a manifest, as the SDK uploads them.

    The files go to a new directory ``{owner}-{timestamp}-...`` under ``data_location``; the
    manifest lists them under that directory's ``file://`` URL, as the SDK's lists its S3 objects.
    """
    if n_shards < 1:
        raise InvalidInputError(f"instance_count must be at least 1 to shard a record set, got {n_shards}")
    shape = getattr(train, "shape", None)
    if shape is None or len(shape) != 2:
        raise InvalidInputError(f"train must be a 2-D array or sparse matrix, got shape {shape}")
    root = resolve_location(data_location, "data_location")
    stamp = time.strftime("%Y-%m-%d-%H-%M-%S", time.gmtime())
    if isinstance(root, str):
        # A prefix of its own; the shards' writer deletes what it wrote if it fails.
        directory: Any = f"{root.rstrip('/')}/{owner}-{stamp}-{uuid.uuid4().hex[:8]}"
        write_recordio_shards(directory, train, labels, n_shards=n_shards, prefix="matrix")
        return RecordSet(
            storage.join(directory, "manifest.json"),
            num_records=int(shape[0]),
            feature_dim=int(shape[1]),
            channel=channel,
        )
    root.mkdir(parents=True, exist_ok=True)
    directory = Path(tempfile.mkdtemp(prefix=f"{owner}-{stamp}-", dir=root))
    try:
        write_recordio_shards(
            directory,
            train,
            labels,
            n_shards=n_shards,
            prefix="matrix",
            manifest_prefix=directory.as_uri() + "/",
        )
    except BaseException:
        shutil.rmtree(directory, ignore_errors=True)  # no half-written record set is left behind
        raise
    manifest = directory / "manifest.json"
    return RecordSet(str(manifest), num_records=int(shape[0]), feature_dim=int(shape[1]), channel=channel)


def _manifest_files(manifest: Any) -> list[Any]:
    """The files a SageMaker ``ManifestFile`` lists: ``[{"prefix": URL}, "name", ...]``."""
    try:
        entries = json.loads(storage.read_bytes(manifest).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as bad:
        raise InvalidInputError(f"{manifest}: not a JSON manifest ({bad})") from None
    if (
        not isinstance(entries, list)
        or not entries
        or not isinstance(entries[0], dict)
        or not isinstance(entries[0].get("prefix"), str)
        or not all(isinstance(name, str) for name in entries[1:])
    ):
        raise InvalidInputError(f'{manifest}: a manifest is [{{"prefix": "..."}}, "name", ...]')
    prefix = resolve_location(entries[0]["prefix"], f"the prefix in {manifest}")
    return [storage.join(prefix, name) for name in entries[1:]]


def channel_files(data: Channel) -> list[Any]:
    """The RecordIO files of a channel: a record set's manifest entries, a file, or a directory's files.

    A directory contributes its files in name order, skipping hidden and ``.json`` files (a
    manifest), as :meth:`fmfast.FactorizationMachine.fit` reads one.
    """
    if isinstance(data, RecordSet):
        location = resolve_location(data.s3_data, f"the {data.channel} record set")
        if data.s3_data_type == "ManifestFile":
            return _manifest_files(location)
    elif isinstance(data, str | os.PathLike):
        location = resolve_location(data, "channel")
    else:
        raise InvalidInputError(f"a channel is a RecordSet, a path or a URL, got {type(data).__name__}")
    if storage.is_directory(location):
        names = storage.list_files(location)
        return [
            storage.join(location, name)
            for name in sorted(names)
            if not name.startswith(".") and not name.endswith(".json")
        ]
    return [location]


def read_channel(data: Channel, name: str) -> tuple[sp.csr_array, np.ndarray]:
    """The rows and labels of every record of a channel, in file order.

    Raises:
        InvalidInputError: no records, or records without labels (naming the channel).
        RecordIOError: a damaged file (naming it).
    """
    parts = [read_recordio(path) for path in channel_files(data)]
    parts = [(X, y) for X, y in parts if X.shape[0] > 0]
    if not parts:
        raise InvalidInputError(f"the {name} channel holds no records")
    if any(y is None for _, y in parts):
        raise InvalidInputError(f"the records of the {name} channel carry no labels")
    width = max(X.shape[1] for X, _ in parts)
    X = sp.vstack([sp.csr_array((X.data, X.indices, X.indptr), shape=(X.shape[0], width)) for X, _ in parts])
    return sp.csr_array(X), np.concatenate([y for _, y in parts])
