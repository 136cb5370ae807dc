"""Readers of rating files: MovieLens, RecBole atomic files and plain CSV/TSV.

:func:`read_ratings` reads ``(user, item, rating[, timestamp])`` rows from

* MovieLens-100K ``u.data`` (tab separated, no header),
* MovieLens-1M/10M ``ratings.dat`` (``::`` separated, no header),
* MovieLens ``ratings.csv`` (ml-latest, ml-20m, ml-25m: header ``userId,movieId,rating,timestamp``),
* RecBole ``.inter`` atomic files (tab separated, typed header ``user_id:token`` ...),
* any CSV/TSV (``,``, tab or ``;``, RFC 4180 quoting) with user, item, rating and optionally
  timestamp columns (header optional).

Users and items are re-coded to ``0..n-1``; the original ids (the text as written) are kept so
that codes can be mapped back. The parser is the Rust one behind ``fmfast convert``, so both read
a file the same way. :func:`read_movielens_users` and :func:`read_movielens_items` read the
MovieLens-100K side information (``u.user`` and ``u.item``).

Every malformed line raises :class:`fmfast.ParseError`; its message names the 1-based line and
its ``line`` attribute holds the number.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fmfast import _fmfast
from fmfast.exceptions import InvalidInputError, ParseError
from fmfast.recsys.datasets import Ratings

__all__ = [
    "MOVIELENS_GENRES",
    "MovieLensItems",
    "MovieLensUsers",
    "RatingsData",
    "read_movielens_items",
    "read_movielens_users",
    "read_ratings",
]

#: The 19 genres of MovieLens-100K, in the column order of ``u.item`` (and ``u.genre``).
MOVIELENS_GENRES: tuple[str, ...] = (
    "unknown",
    "Action",
    "Adventure",
    "Animation",
    "Children's",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
)

# The formats read_ratings accepts: name -> (delimiter, header), None meaning "detect".
_FORMATS: dict[str, tuple[str | None, bool | None]] = {
    "ml-100k": ("\t", False),
    "ml-1m": ("::", None),
    "ml-csv": (",", True),
    "recbole": ("\t", True),
    "delimited": (None, None),
}


def _parse_error(path: str | os.PathLike[str], line: int, message: str) -> ParseError:
    """A :class:`ParseError` naming ``path`` and the 1-based ``line``, with ``.line`` set."""
    err = ParseError(f"{os.fspath(path)}, line {line}: {message}")
    err.line = line
    return err


@contextmanager
def naming_file(path: str | os.PathLike[str]) -> Iterator[None]:
    """Re-raise a :class:`ParseError` of the Rust parsers (``line N: ...``) naming ``path`` too."""
    try:
        yield
    except ParseError as err:
        named = ParseError(f"{os.fspath(path)}, {err}")
        named.line = err.line
        raise named from None


def _ids_array(ids: np.ndarray | list[str]) -> np.ndarray:
    """Ids from the parser as an array: its int64 array of plain integers, or its texts as str."""
    return ids if isinstance(ids, np.ndarray) else np.asarray(ids, dtype=str)


#: The ratings of a file: :class:`fmfast.recsys.datasets.Ratings`, under the name this module first gave it.
RatingsData = Ratings


def _read_lines(path: str | os.PathLike[str], encoding: str) -> list[str]:
    """The lines of ``path`` without line ends."""
    return Path(path).read_bytes().decode(encoding).splitlines()


def read_ratings(
    path: str | os.PathLike[str], format: str = "auto", delimiter: str | None = None, *, n_threads: int = 0
) -> Ratings:
    """Read a ratings file into :class:`fmfast.recsys.datasets.Ratings`.

    ``user_ids[c]`` and ``item_ids[c]`` are the ids in the file of user or item code ``c``. Ids are
    the text as written: ``7`` and ``07`` are two users. They are in numeric order when every id is
    an integer (ties such as ``07`` and ``7`` by text), else in text order; the array is int64 when
    every id is an integer written plainly (``7`` or ``-12``, not ``07`` or ``+7``, at most 18
    digits), else str.

    The file is parsed by the same Rust parser as ``fmfast convert``: RFC 4180 CSV (quoted fields
    may hold the delimiter, ``""`` is a quote; CRLF or LF; a UTF-8 byte-order mark is skipped;
    fields are trimmed; blank lines skipped), one rating per line (a quoted field may not hold a
    line break), or MovieLens ``::``-separated lines. ``format`` is one of

    * ``"auto"`` (default): ``.inter`` files are RecBole, otherwise ``"delimited"``,
    * ``"ml-100k"``: MovieLens ``u.data``, tab separated, no header,
    * ``"ml-1m"``: MovieLens ``ratings.dat``, ``::`` separated,
    * ``"ml-csv"``: MovieLens ``ratings.csv``, comma separated, with a header,
    * ``"recbole"``: RecBole ``.inter``, tab separated, header such as ``user_id:token``,
    * ``"delimited"``: any CSV/TSV; the delimiter is ``::`` when the first non-blank line holds
      it, else whichever of tab, ``,`` and ``;`` splits that line into the most fields.

    ``delimiter`` (one byte, or ``"::"``) overrides the format's. A header is detected when its
    names give the user and item columns or when its third field is not a number; its names
    choose the columns (``userId``, ``user_id:token``, ``movieId``, ``item_id``, ``rating``,
    ``timestamp`` and the like, case and ``_`` ignored; other columns are ignored). Without a
    header the columns are user, item, rating and (when present) timestamp. ``n_threads``: worker
    threads of the parser; 0 (the default) for all cores, capped by ``FMFAST_NUM_THREADS``.

    Raises :class:`fmfast.ParseError` (message naming the file and the 1-based line, ``.line``
    set) for a line with another number of fields than the first, an empty id, a rating that is
    not a finite number, a timestamp that is not an integer, text that is not UTF-8, or a file
    without ratings; :class:`fmfast.InvalidInputError` for an unknown ``format`` or a bad
    ``delimiter``.
    """
    if format != "auto" and format not in _FORMATS:
        known = ", ".join(["auto", *_FORMATS])
        raise InvalidInputError(f"unknown ratings format {format!r}; expected one of {known}")
    if format == "auto":
        format = "recbole" if Path(path).suffix.lower() == ".inter" else "delimited"
    sep, header = _FORMATS[format]
    with naming_file(path):
        users, items, ratings, timestamps, user_ids, item_ids = _fmfast.read_ratings(
            path, delimiter if delimiter is not None else sep, header, n_threads=n_threads
        )
    assert ratings is not None  # read_ratings refuses a file without ratings unless pairs=True
    return Ratings(
        users,
        items,
        ratings,
        len(user_ids),
        len(item_ids),
        timestamps=timestamps,
        user_ids=_ids_array(user_ids),
        item_ids=_ids_array(item_ids),
    )


@dataclass(frozen=True)
class MovieLensUsers:
    """MovieLens-100K users (``u.user``), in file order.

    Map rating codes to rows with ``np.searchsorted(users.ids, data.user_ids)`` when every user
    is listed (``ids`` is sorted in the distributed file).
    """

    ids: np.ndarray
    """User ids, int64."""
    ages: np.ndarray
    """Ages in years, int64."""
    genders: np.ndarray
    """``"M"`` or ``"F"``, str array."""
    occupations: np.ndarray
    """Occupation names, str array."""
    zip_codes: np.ndarray
    """Zip codes as text (some are not numeric), str array."""

    def __len__(self) -> int:
        """Number of users."""
        return len(self.ids)


@dataclass(frozen=True)
class MovieLensItems:
    """MovieLens-100K movies (``u.item``), in file order."""

    ids: np.ndarray
    """Movie ids, int64."""
    titles: np.ndarray
    """Titles (with the year in parentheses, as in the file), str array."""
    years: np.ndarray
    """Release year from the release date, int64; -1 where the date is missing."""
    genres: np.ndarray
    """Genre flags, int8 array of shape ``(n, 19)``; columns follow :attr:`genre_names`."""
    genre_names: tuple[str, ...] = MOVIELENS_GENRES
    """The 19 genre names, in column order."""

    def __len__(self) -> int:
        """Number of movies."""
        return len(self.ids)


def _parse_int(path: str | os.PathLike[str], number: int, text: str, what: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise _parse_error(path, number, f"{what} {text!r} is not an integer") from None


def read_movielens_users(path: str | os.PathLike[str]) -> MovieLensUsers:
    """Read MovieLens-100K ``u.user`` (``id|age|gender|occupation|zip``) into :class:`MovieLensUsers`.

    Blank lines are skipped. Raises :class:`fmfast.ParseError` (naming the 1-based line) for a
    line without exactly 5 fields or with a non-integer id or age.
    """
    ids, ages, genders, occupations, zips = [], [], [], [], []
    for number, line in enumerate(_read_lines(path, "latin-1"), start=1):
        if not line.strip():
            continue
        fields = line.split("|")
        if len(fields) != 5:
            raise _parse_error(path, number, f"expected 5 '|'-separated fields, found {len(fields)}")
        ids.append(_parse_int(path, number, fields[0], "user id"))
        ages.append(_parse_int(path, number, fields[1], "age"))
        genders.append(fields[2].strip())
        occupations.append(fields[3].strip())
        zips.append(fields[4].strip())
    return MovieLensUsers(
        np.asarray(ids, dtype=np.int64),
        np.asarray(ages, dtype=np.int64),
        np.asarray(genders, dtype=str),
        np.asarray(occupations, dtype=str),
        np.asarray(zips, dtype=str),
    )


_YEAR = re.compile(r"(\d{4})\s*$")


def read_movielens_items(path: str | os.PathLike[str]) -> MovieLensItems:
    """Read MovieLens-100K ``u.item`` into :class:`MovieLensItems`.

    The file is Latin-1, ``|`` separated: id, title, release date (``01-Jan-1995``), video
    release date, IMDb URL and 19 genre flags (0/1). The year comes from the release date, or is
    -1 when the date is empty. Blank lines are skipped. Raises :class:`fmfast.ParseError`
    (naming the 1-based line) for a line without 24 fields, a non-integer id, an unreadable date
    or a genre flag other than 0 or 1.
    """
    n_genres = len(MOVIELENS_GENRES)
    ids, titles, years, flags = [], [], [], []
    for number, line in enumerate(_read_lines(path, "latin-1"), start=1):
        if not line.strip():
            continue
        fields = line.split("|")
        if len(fields) != 5 + n_genres:
            raise _parse_error(
                path, number, f"expected {5 + n_genres} '|'-separated fields, found {len(fields)}"
            )
        ids.append(_parse_int(path, number, fields[0], "movie id"))
        titles.append(fields[1])
        date = fields[2].strip()
        if date:
            match = _YEAR.search(date)
            if match is None:
                raise _parse_error(path, number, f"release date {date!r} has no year")
            years.append(int(match.group(1)))
        else:
            years.append(-1)
        row = [field.strip() for field in fields[5:]]
        if any(flag not in ("0", "1") for flag in row):
            raise _parse_error(path, number, "genre flags must be 0 or 1")
        flags.append([flag == "1" for flag in row])
    return MovieLensItems(
        np.asarray(ids, dtype=np.int64),
        np.asarray(titles, dtype=str),
        np.asarray(years, dtype=np.int64),
        np.asarray(flags, dtype=np.int8).reshape(-1, n_genres),
    )
