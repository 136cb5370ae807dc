"""File conversion to RecordIO-protobuf: the engine behind ``fmfast convert``.

Text inputs are parsed and encoded by the Rust core, streaming, in two passes over the file (the
first finds the feature dimension or the vocabularies, the second writes), so memory stays
bounded by a block of lines whatever the file size. Every output appears whole or not at all.

* ``libsvm``: ``label index:value ...`` lines, 1-based indices (or 0-based when some index is 0,
  as scikit-learn's ``load_svmlight_file`` guesses); ``#`` comments, ``qid:`` tokens skipped.
* ``libfm``: the same lines with 0-based indices.
* ``csv``: ratings (CSV, TSV or MovieLens ``::``, read by the parser of
  :func:`fmfast.read_ratings`) written as one-hot rows; the column ids go to
  ``<target>.columns.json``, and another conversion can reuse them (``columns=``).
* ``npz``: a scipy sparse matrix saved by ``scipy.sparse.save_npz``, labels from a ``.npy``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from fmfast import _fmfast
from fmfast._atomic import atomic_output
from fmfast._json import loads
from fmfast._npz import check_npy, check_npz
from fmfast._progress import Progress, progress_callback
from fmfast._storage import local_copy, read_bytes, staged_output
from fmfast.exceptions import InvalidInputError
from fmfast.recordio.codec import write_recordio
from fmfast.recsys.datasets import user_item_one_hot
from fmfast.recsys.ratings import naming_file

#: Input formats ``convert_file`` understands.
FORMATS = ("libsvm", "libfm", "csv", "npz")

_SUFFIXES = {
    ".libsvm": "libsvm",
    ".svm": "libsvm",
    ".txt": "libsvm",
    ".libfm": "libfm",
    ".csv": "csv",
    ".tsv": "csv",
    ".dat": "csv",
    ".data": "csv",
    ".inter": "csv",
    ".npz": "npz",
}


def detect_format(path: str | os.PathLike[str]) -> str:
    """Guess an input format from the file name's suffix.

    ``.libsvm``, ``.svm``, ``.txt``: libsvm; ``.libfm``: libfm; ``.csv``, ``.tsv``, ``.dat``,
    ``.data``, ``.inter``: csv; ``.npz``: npz.

    Raises:
        InvalidInputError: the suffix is none of those.
    """
    kind = _SUFFIXES.get(Path(path).suffix.lower())
    if kind is None:
        raise InvalidInputError(f"cannot tell the format of {path}; pass format= one of {', '.join(FORMATS)}")
    return kind


def columns_path(target: str | os.PathLike[str]) -> Path:
    """Where :func:`convert_ratings_csv` saves the column ids of ``target``: ``<target>.columns.json``."""
    return Path(f"{os.fspath(target)}.columns.json")


@dataclass(frozen=True)
class RatingsColumns:
    """What :func:`convert_ratings_csv` wrote: the record count and the id of every column.

    Column ``j < len(users)`` is user ``users[j]``; column ``len(users) + j`` is item ``items[j]``.
    """

    n_rows: int
    users: list[str]
    items: list[str]

    @property
    def n_cols(self) -> int:
        """The feature dimension: one column per user, then one per item."""
        return len(self.users) + len(self.items)


def convert_libsvm(
    source: str | os.PathLike[str],
    target: str | os.PathLike[str],
    *,
    n_features: int | None = None,
    zero_based: bool | None = None,
    n_threads: int = 0,
    progress: Progress = None,
) -> tuple[int, int]:
    """Convert a libSVM/libFM text file to a RecordIO file; returns ``(n_rows, n_cols)``.

    Args:
        source: lines ``label index:value index:value ...``; text after ``#`` is a comment, blank
            lines are skipped, ``qid:`` tokens are ignored, a row's indices may come in any order
            but must be unique. Labels and values are read as float32.
        target: the RecordIO file to write (float32 features and labels, sparse records).
        n_features: feature dimension; default the largest column + 1. It must exceed every column.
        zero_based: ``True`` for 0-based indices (libFM), ``False`` for 1-based (libSVM, where
            index 0 is an error), ``None`` to guess: 0-based iff some index is 0.
        n_threads: worker threads; 0 (the default) for all cores, capped by ``FMFAST_NUM_THREADS``.
        progress: ``True`` for a progress bar, or a callable receiving the bytes read so far,
            over both passes (twice the file size at the end), or over the single pass made
            when ``n_features`` and ``zero_based`` are both given.

    Raises:
        ParseError: a malformed line; ``.line`` is its 1-based number. No output is left behind.
        OSError: the source cannot be read or the target written.
    """
    passes = 1 if n_features is not None and zero_based is not None else 2
    total = passes * os.path.getsize(source)
    with progress_callback(progress, total, "B") as callback:
        n_rows, n_cols = _fmfast.convert_libsvm(source, target, n_features, zero_based, n_threads, callback)
    return n_rows, n_cols


#: What to do with an id outside a given vocabulary: refuse it, or give it no column.
UNKNOWN = ("error", "ignore")


def read_columns(path: str | os.PathLike[str]) -> tuple[list[str], list[str]]:
    """The user and item ids of a ``.columns.json`` written by :func:`convert_ratings_csv`.

    Raises:
        InvalidInputError: the file is not such a vocabulary.
    """
    try:
        columns = loads(read_bytes(path), "it")
    except InvalidInputError as error:
        raise InvalidInputError(f"{path} is not a .columns.json file: {error}") from None
    if not (isinstance(columns, dict) and isinstance(columns.get("users"), list)):
        raise InvalidInputError(f"{path} is not a .columns.json file: no list of users")
    if not isinstance(columns.get("items"), list):
        raise InvalidInputError(f"{path} is not a .columns.json file: no list of items")
    return [str(u) for u in columns["users"]], [str(i) for i in columns["items"]]


def _skip_unknown(unknown: str) -> bool:
    """Whether ``unknown`` (one of :data:`UNKNOWN`) gives an unknown id no column."""
    if unknown not in UNKNOWN:
        raise InvalidInputError(f"unknown={unknown!r}; expected one of {', '.join(UNKNOWN)}")
    return unknown == "ignore"


def convert_ratings_csv(
    source: str | os.PathLike[str],
    target: str | os.PathLike[str],
    *,
    delimiter: str | None = None,
    columns: str | os.PathLike[str] | None = None,
    unknown: str = "error",
    n_threads: int = 0,
    progress: Progress = None,
) -> RatingsColumns:
    """Convert a ratings file to one-hot RecordIO rows, and save the column ids.

    Each rating becomes a record with value 1 in its user's column and in its item's column
    (after all user columns) and the rating as label. The ids are written, atomically, to
    :func:`columns_path` ``(target)`` as ``{"users": [...], "items": [...]}``.

    Args:
        source: a ratings file, read as :func:`fmfast.read_ratings` reads it (the same parser):
            RFC 4180 CSV, TSV or MovieLens ``::`` lines, header names choosing the columns. Ids
            are the text as written; the file's vocabulary is in numeric order when every id is
            an integer, otherwise in text order.
        target: the RecordIO file to write (float32 features and labels, sparse records).
        delimiter: the field separator (one byte or ``"::"``); ``None`` detects it.
        columns: the ``.columns.json`` of another conversion (the training data's) whose
            vocabulary to use, so that a test set gets the training columns.
        unknown: with ``columns``, what an id outside it does: ``"error"`` refuses it (naming the
            id and its line), ``"ignore"`` gives it no column (the row keeps its other id).
        n_threads: worker threads; 0 (the default) for all cores, capped by ``FMFAST_NUM_THREADS``.
        progress: ``True`` for a progress bar, or a callable receiving the bytes read so far,
            over all passes (twice the file size at the end without ``columns``, once with it).

    Raises:
        ParseError: a malformed line or an unknown id; ``.line`` is its 1-based number. No
            output is left behind.
        InvalidInputError: a bad delimiter, ``unknown`` or columns file.
        OSError: the source cannot be read or the targets written.
    """
    skip = _skip_unknown(unknown)
    vocabulary = None if columns is None else read_columns(columns)
    total = (1 if vocabulary else 2) * os.path.getsize(source)
    with progress_callback(progress, total, "B") as callback, naming_file(source):
        n_rows, _, users, items = _fmfast.convert_ratings_csv(
            source,
            target,
            delimiter,
            vocabulary=vocabulary,
            skip_unknown=skip,
            n_threads=n_threads,
            progress=callback,
        )
    with atomic_output(columns_path(target)) as out:
        out.write(json.dumps({"users": users, "items": items}).encode())
    return RatingsColumns(n_rows, users, items)


def ratings_one_hot(
    source: str | os.PathLike[str],
    columns: str | os.PathLike[str],
    *,
    pairs: bool = False,
    delimiter: str | None = None,
    unknown: str = "error",
    n_threads: int = 0,
) -> tuple[sp.csr_array, np.ndarray | None, np.ndarray, np.ndarray]:
    """The one-hot rows of a ratings (or pairs) file in the columns of a ``.columns.json``.

    Returns ``(X, y, users, items)``: a row per rating as :func:`convert_ratings_csv` writes it,
    the ratings (``None`` for a file of ``user, item`` pairs, accepted when ``pairs``), and the
    user and item id of each row as object arrays (``""`` for an id that ``unknown="ignore"``
    gave no column). ``n_threads``: worker threads of the parser; 0 (the default) for all cores,
    capped by ``FMFAST_NUM_THREADS``.

    Raises:
        ParseError: a malformed line or an unknown id, naming the file and line.
        InvalidInputError: a bad delimiter, ``unknown`` or columns file.
    """
    skip = _skip_unknown(unknown)
    vocabulary = read_columns(columns)
    with naming_file(source):
        users, items, y, _, user_ids, item_ids = _fmfast.read_ratings(
            source,
            delimiter,
            timestamps=False,
            pairs=pairs,
            vocabulary=vocabulary,
            skip_unknown=skip,
            n_threads=n_threads,
        )
    X = user_item_one_hot(users, items, len(user_ids), len(item_ids))
    # Code -1 picks the "" appended after the ids.
    return (
        X,
        y,
        np.asarray([*user_ids, ""], dtype=object)[users],
        np.asarray([*item_ids, ""], dtype=object)[items],
    )


def convert_file(
    source: str | os.PathLike[str],
    target: str | os.PathLike[str],
    *,
    format: str = "auto",
    labels: str | os.PathLike[str] | None = None,
    n_features: int | None = None,
    zero_based: bool | None = None,
    delimiter: str | None = None,
    columns: str | os.PathLike[str] | None = None,
    unknown: str = "error",
    n_threads: int = 0,
    progress: Progress = None,
) -> int:
    """Convert ``source`` to a RecordIO file at ``target``; returns the number of records.

    Args:
        source: the input file, or a store's URL (copied to a local temporary file first).
        target: the RecordIO file to write; it appears only once the conversion succeeded. A
            store's URL is written locally first, then uploaded (with the ``.columns.json`` of a
            ``csv`` input), streamed and atomically.
        format: one of :data:`FORMATS`, or ``"auto"`` to pick it with :func:`detect_format`.
        labels: ``.npy`` labels for an ``npz`` input.
        n_features: feature dimension of a ``libsvm``/``libfm`` input (default: inferred).
        zero_based: index base of a ``libsvm`` input (default: guessed, see
            :func:`convert_libsvm`); ``libfm`` is 0-based unless this says otherwise.
        delimiter: field separator of a ``csv`` input (default: detected).
        columns: the ``.columns.json`` whose vocabulary a ``csv`` input uses (default: its own).
        unknown: what an id outside ``columns`` does, see :func:`convert_ratings_csv`.
        n_threads: worker threads for text inputs; 0 (the default) for all cores, capped by
            ``FMFAST_NUM_THREADS``.
        progress: ``True`` for a progress bar, or a callable receiving the units done.

    Raises:
        InvalidInputError: an unknown format, or an option that does not apply to it; an
            ``npz`` input or ``.npy`` labels whose arrays are not the size they declare.
        ParseError: a malformed line of a text input, with its ``.line``.
    """
    # The converters read and write local files, from Rust.
    with local_copy(source) as local_source, staged_output(target) as local_target:
        return _convert_file(
            local_source,
            local_target,
            format=format,
            labels=labels,
            n_features=n_features,
            zero_based=zero_based,
            delimiter=delimiter,
            columns=columns,
            unknown=unknown,
            n_threads=n_threads,
            progress=progress,
        )


def _convert_file(
    source: str | os.PathLike[str],
    target: str | os.PathLike[str],
    *,
    format: str,
    labels: str | os.PathLike[str] | None,
    n_features: int | None,
    zero_based: bool | None,
    delimiter: str | None,
    columns: str | os.PathLike[str] | None,
    unknown: str,
    n_threads: int,
    progress: Progress,
) -> int:
    kind = detect_format(source) if format == "auto" else format
    if kind not in FORMATS:
        raise InvalidInputError(f"unknown format {kind!r}; expected one of {', '.join(FORMATS)}")
    given = {
        "labels": labels,
        "n_features": n_features,
        "zero_based": zero_based,
        "delimiter": delimiter,
        "columns": columns,
    }
    allowed = {
        "libsvm": {"n_features", "zero_based"},
        "libfm": {"n_features", "zero_based"},
        "csv": {"delimiter", "columns"},
    }
    misplaced = [
        name
        for name, value in given.items()
        if value is not None and name not in allowed.get(kind, {"labels"})
    ]
    if misplaced:
        raise InvalidInputError(f"{', '.join(misplaced)} does not apply to {kind} input")
    if kind in ("libsvm", "libfm"):
        base = zero_based if zero_based is not None or kind == "libsvm" else True
        n_rows, _ = convert_libsvm(
            source, target, n_features=n_features, zero_based=base, n_threads=n_threads, progress=progress
        )
        return n_rows
    if kind == "csv":
        return convert_ratings_csv(
            source,
            target,
            delimiter=delimiter,
            columns=columns,
            unknown=unknown,
            n_threads=n_threads,
            progress=progress,
        ).n_rows
    check_npz(source, "scipy sparse .npz file", InvalidInputError)
    X = sp.load_npz(source)
    if labels is not None:
        check_npy(labels, InvalidInputError)
    y = None if labels is None else np.load(labels)
    write_recordio(target, X, y, n_threads=n_threads, progress=progress)
    return int(X.shape[0])
