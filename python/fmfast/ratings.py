"""Loaders for rating files: MovieLens, RecBole atomic files and plain CSV/TSV.

:func:`load_ratings` reads ``(user, item, rating[, timestamp])`` rows from

* MovieLens-100K ``u.data`` (tab separated, no header),
* MovieLens-1M/10M ``ratings.dat`` (``::`` separated, no header),
* MovieLens ``ratings.csv`` (ml-latest, ml-20m, ml-25m: header ``userId,movieId,rating,timestamp``),
* RecBole ``.inter`` atomic files (tab separated, typed header ``user_id:token`` ...),
* any CSV/TSV with user, item, rating and optionally timestamp columns (header optional).

Users and items are re-coded to ``0..n-1``; the original ids are kept so that codes can be mapped
back. :func:`load_movielens_users` and :func:`load_movielens_items` read the MovieLens-100K side
information (``u.user`` and ``u.item``).

Every malformed line raises :class:`fmfast.ParseError`; its message names the 1-based line and
its ``line`` attribute holds the number.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fmfast.datasets import Ratings
from fmfast.exceptions import InvalidInputError, ParseError

__all__ = [
    "MOVIELENS_GENRES",
    "MovieLensItems",
    "MovieLensUsers",
    "RatingsData",
    "load_movielens_items",
    "load_movielens_users",
    "load_ratings",
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

# The formats load_ratings accepts: name -> (delimiter, header), header None meaning "detect".
_FORMATS: dict[str, tuple[str | None, bool | None]] = {
    "ml-100k": ("\t", False),
    "ml-1m": ("::", False),
    "ml-csv": (",", True),
    "recbole": ("\t", True),
    "delimited": (None, None),
}

# Header names recognised (lower case, without RecBole's ":type" suffix and without "_").
_COLUMN_NAMES = {
    "user": {"user", "userid", "uid", "users", "customerid", "reviewerid"},
    "item": {"item", "itemid", "iid", "items", "movie", "movieid", "productid", "asin"},
    "rating": {"rating", "ratings", "score", "stars", "value", "label", "overall"},
    "timestamp": {"timestamp", "time", "ts", "date", "datetime", "unixtime", "unixreviewtime"},
}


def _parse_error(path: str | os.PathLike[str], line: int, message: str) -> ParseError:
    """A :class:`ParseError` naming ``path`` and the 1-based ``line``, with ``.line`` set."""
    err = ParseError(f"{os.fspath(path)}, line {line}: {message}")
    err.line = line  # type: ignore[attr-defined]
    return err


@dataclass(frozen=True)
class RatingsData:
    """Ratings read from a file, with users and items re-coded to ``0..n-1``.

    ``users[i]`` gave ``items[i]`` the rating ``ratings[i]`` (at ``timestamps[i]`` when the file
    has times). ``user_ids[c]`` and ``item_ids[c]`` are the ids in the file of user or item code
    ``c``: integers sorted numerically when every id is an integer, else strings sorted as strings.
    """

    users: np.ndarray
    """User code of each rating, int64 in ``0..n_users-1``."""
    items: np.ndarray
    """Item code of each rating, int64 in ``0..n_items-1``."""
    ratings: np.ndarray
    """The ratings, float32."""
    timestamps: np.ndarray | None
    """Time of each rating as int64 (usually Unix seconds), or ``None`` when the file has none."""
    user_ids: np.ndarray
    """Original user id of each user code (int64 or str array)."""
    item_ids: np.ndarray
    """Original item id of each item code (int64 or str array)."""

    @property
    def n_users(self) -> int:
        """Number of distinct users."""
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        """Number of distinct items."""
        return len(self.item_ids)

    def __len__(self) -> int:
        """Number of ratings."""
        return len(self.ratings)

    def to_ratings(self) -> Ratings:
        """The ratings as a :class:`fmfast.datasets.Ratings` (whose ``one_hot()`` gives FM input)."""
        return Ratings(self.users, self.items, self.ratings, self.n_users, self.n_items)


def _read_lines(path: str | os.PathLike[str], encoding: str | None = None) -> list[str]:
    """The lines of ``path`` without line ends; UTF-8 falling back to Latin-1 unless told."""
    data = Path(path).read_bytes()
    if encoding is None:
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            text = data.decode("latin-1")
    else:
        text = data.decode(encoding)
    return text.splitlines()


def _split(line: str, delimiter: str | None) -> list[str]:
    """Fields of ``line`` (``None`` splits on runs of whitespace), stripped of blanks and quotes."""
    fields = line.split() if delimiter is None else line.split(delimiter)
    return [f.strip().strip('"').strip() for f in fields]


def _sniff_delimiter(line: str) -> str | None:
    """The delimiter of a data or header line: ``::``, tab, comma, semicolon, ``|`` or whitespace."""
    for candidate in ("::", "\t", ",", ";", "|"):
        if candidate in line:
            return candidate
    return None


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _header_columns(header: list[str]) -> tuple[int, int, int, int | None]:
    """Column indices of user, item, rating and timestamp named by a header.

    RecBole ``name:type`` suffixes, case and underscores are ignored. When user, item or rating
    is not recognised the columns are taken by position (user, item, rating, timestamp).
    """
    found: dict[str, int] = {}
    for index, name in enumerate(header):
        key = name.split(":", 1)[0].strip().lower().replace("_", "").replace(" ", "")
        for role, names in _COLUMN_NAMES.items():
            if key in names and role not in found:
                found[role] = index
    if all(role in found for role in ("user", "item", "rating")):
        return found["user"], found["item"], found["rating"], found.get("timestamp")
    return 0, 1, 2, 3 if len(header) > 3 else None


def _encode_ids(values: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Codes ``0..n-1`` and the sorted distinct ids (int64 when all are integers, else str)."""
    raw = np.asarray(values, dtype=str)
    try:
        numeric = raw.astype(np.int64)
    except (ValueError, OverflowError):
        ids, codes = np.unique(raw, return_inverse=True)
    else:
        ids, codes = np.unique(numeric, return_inverse=True)
    return codes.astype(np.int64).reshape(-1), ids


def _parse_timestamps(values: list[str], lines: list[int], path: str | os.PathLike[str]) -> np.ndarray:
    """Timestamps as int64; integral floats (RecBole's ``timestamp:float``) are accepted."""
    try:
        return np.asarray(values, dtype=str).astype(np.int64)
    except (ValueError, OverflowError):
        pass
    out = np.empty(len(values), dtype=np.int64)
    for i, text in enumerate(values):
        try:
            value = float(text)
        except ValueError:
            raise _parse_error(path, lines[i], f"timestamp {text!r} is not a number") from None
        if not np.isfinite(value) or value != np.floor(value):
            raise _parse_error(path, lines[i], f"timestamp {text!r} is not an integer")
        out[i] = int(value)
    return out


def _parse_ratings(values: list[str], lines: list[int], path: str | os.PathLike[str]) -> np.ndarray:
    """Ratings as float32; a field that is not a finite number is a parse error."""
    try:
        out = np.asarray(values, dtype=str).astype(np.float64)
    except ValueError:
        out = None
    if out is not None and np.isfinite(out).all():
        return out.astype(np.float32)
    for i, text in enumerate(values):
        try:
            value = float(text)
        except ValueError:
            raise _parse_error(path, lines[i], f"rating {text!r} is not a number") from None
        if not np.isfinite(value):
            raise _parse_error(path, lines[i], f"rating {text!r} is not finite")
    raise AssertionError("unreachable")  # pragma: no cover


def load_ratings(
    path: str | os.PathLike[str], format: str = "auto", delimiter: str | None = None
) -> RatingsData:
    """Read a ratings file into :class:`RatingsData`.

    ``format`` is one of

    * ``"auto"`` (default): ``.inter`` files are RecBole, otherwise the delimiter is sniffed from
      the first non-blank line (``::``, tab, comma, semicolon, ``|``, else whitespace) and a
      header is detected,
    * ``"ml-100k"``: MovieLens ``u.data``, tab separated, no header,
    * ``"ml-1m"``: MovieLens ``ratings.dat``, ``::`` separated, no header,
    * ``"ml-csv"``: MovieLens ``ratings.csv``, comma separated, with a header,
    * ``"recbole"``: RecBole ``.inter``, tab separated, header such as ``user_id:token``,
    * ``"delimited"``: any CSV/TSV; delimiter sniffed unless given, header detected.

    ``delimiter`` overrides the format's delimiter. Without a header the columns are user, item,
    rating and (when present) timestamp. A header is detected when the rating field of the first
    non-blank line is not a number; its names pick the columns (``userId``, ``user_id:token``,
    ``movieId``, ``item_id``, ``rating``, ``timestamp`` and the like; unknown names fall back to
    position). Blank lines are skipped; other columns are ignored.

    Raises :class:`fmfast.ParseError` (message naming the 1-based line, ``.line`` set) for a line
    with the wrong number of fields, a rating that is not a finite number, a timestamp that is
    not an integer, or a file without ratings; :class:`fmfast.InvalidInputError` for an unknown
    ``format``.
    """
    if format != "auto" and format not in _FORMATS:
        known = ", ".join(["auto", *_FORMATS])
        raise InvalidInputError(f"unknown ratings format {format!r}; expected one of {known}")
    if delimiter == "":
        raise InvalidInputError("delimiter must not be empty")
    lines = _read_lines(path)
    numbered = [(i + 1, line) for i, line in enumerate(lines) if line.strip()]
    if not numbered:
        raise _parse_error(path, max(len(lines), 1), "the file contains no ratings")
    first_no, first = numbered[0]

    if format == "auto":
        if Path(path).suffix.lower() == ".inter":
            format = "recbole"
        elif "::" in first:
            format = "ml-1m"
        else:
            format = "delimited"
    sep, header = _FORMATS[format]
    if delimiter is not None:
        sep = delimiter
    elif sep is None:
        sep = _sniff_delimiter(first)
    if format == "ml-1m" and delimiter is None:
        header = None  # ratings.dat has none, but a "::" file with one is still readable

    first_fields = _split(first, sep)
    if header is None:
        header = len(first_fields) >= 3 and not _is_number(first_fields[2])
    if header:
        columns = _header_columns(first_fields)
        n_fields = len(first_fields)
        rows = numbered[1:]
    else:
        n_fields = len(first_fields)
        columns = (0, 1, 2, 3 if n_fields > 3 else None)
        rows = numbered
    if n_fields < 3:
        raise _parse_error(
            path, first_no, f"expected at least 3 fields (user, item, rating), found {n_fields}"
        )
    if not rows:
        raise _parse_error(path, first_no, "the file has a header but no ratings")

    user_col, item_col, rating_col, time_col = columns
    users: list[str] = []
    items: list[str] = []
    ratings: list[str] = []
    times: list[str] = []
    line_numbers: list[int] = []
    for number, line in rows:
        fields = _split(line, sep)
        if len(fields) != n_fields:
            raise _parse_error(path, number, f"expected {n_fields} fields, found {len(fields)}")
        user, item = fields[user_col], fields[item_col]
        if not user or not item:
            raise _parse_error(path, number, "empty user or item id")
        users.append(user)
        items.append(item)
        ratings.append(fields[rating_col])
        if time_col is not None:
            times.append(fields[time_col])
        line_numbers.append(number)

    rating_values = _parse_ratings(ratings, line_numbers, path)
    timestamps = _parse_timestamps(times, line_numbers, path) if time_col is not None else None
    user_codes, user_ids = _encode_ids(users)
    item_codes, item_ids = _encode_ids(items)
    return RatingsData(user_codes, item_codes, rating_values, timestamps, user_ids, item_ids)


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


def load_movielens_users(path: str | os.PathLike[str]) -> MovieLensUsers:
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


def load_movielens_items(path: str | os.PathLike[str]) -> MovieLensItems:
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
