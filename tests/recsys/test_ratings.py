"""Tests of fmfast.recsys.ratings: MovieLens, RecBole and CSV/TSV loaders."""

from __future__ import annotations

import csv
import io
import tempfile
from pathlib import Path

import numpy as np
import pytest
from fmfast.exceptions import InvalidInputError, ParseError
from fmfast.recordio.convert import columns_path, convert_ratings_csv
from fmfast.recsys.datasets import Ratings
from fmfast.recsys.ratings import (
    MOVIELENS_GENRES,
    RatingsData,
    read_movielens_items,
    read_movielens_users,
    read_ratings,
)
from hypothesis import given, settings
from hypothesis import strategies as st

U_DATA = "196\t242\t3\t881250949\n186\t302\t3\t891717742\n22\t377\t1\t878887116\n196\t302\t5\t881250950\n"


def write(tmp_path, name, text, encoding="utf-8"):
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


def check_u_data(data: RatingsData):
    np.testing.assert_array_equal(data.user_ids, [22, 186, 196])
    np.testing.assert_array_equal(data.item_ids, [242, 302, 377])
    np.testing.assert_array_equal(data.users, [2, 1, 0, 2])
    np.testing.assert_array_equal(data.items, [0, 1, 2, 1])
    np.testing.assert_array_equal(data.ratings, [3, 3, 1, 5])
    np.testing.assert_array_equal(data.timestamps, [881250949, 891717742, 878887116, 881250950])
    assert data.users.dtype == np.int64 and data.items.dtype == np.int64
    assert data.ratings.dtype == np.float32
    assert data.timestamps.dtype == np.int64
    assert data.user_ids.dtype == np.int64
    assert (data.n_users, data.n_items, len(data)) == (3, 3, 4)


@pytest.mark.parametrize("fmt", ["auto", "ml-100k", "delimited"])
def test_u_data(tmp_path, fmt):
    check_u_data(read_ratings(write(tmp_path, "u.data", U_DATA), format=fmt))


def test_ratings_dat(tmp_path):
    text = U_DATA.replace("\t", "::")
    for fmt in ("auto", "ml-1m"):
        check_u_data(read_ratings(write(tmp_path, "ratings.dat", text), format=fmt))


def test_ratings_csv(tmp_path):
    text = "userId,movieId,rating,timestamp\n" + U_DATA.replace("\t", ",")
    for fmt in ("auto", "ml-csv", "delimited"):
        check_u_data(read_ratings(write(tmp_path, "ratings.csv", text), format=fmt))


def test_half_star_ratings(tmp_path):
    path = write(
        tmp_path,
        "ratings.csv",
        "userId,movieId,rating,timestamp\n1,31,2.5,1260759144\n1,1029,3.5,1260759179\n",
    )
    data = read_ratings(path)
    np.testing.assert_array_equal(data.ratings, np.array([2.5, 3.5], dtype=np.float32))


def test_recbole_inter(tmp_path):
    header = "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
    path = write(tmp_path, "ml-100k.inter", header + U_DATA)
    check_u_data(read_ratings(path))
    check_u_data(read_ratings(path, format="recbole"))


def test_recbole_columns_in_other_order_and_float_timestamps(tmp_path):
    text = "timestamp:float\titem_id:token\tuser_id:token\trating:float\n100.0\ta\tu1\t4\n200\tb\tu2\t5\n"
    data = read_ratings(write(tmp_path, "x.inter", text))
    np.testing.assert_array_equal(data.user_ids, ["u1", "u2"])
    np.testing.assert_array_equal(data.item_ids, ["a", "b"])
    np.testing.assert_array_equal(data.ratings, [4, 5])
    np.testing.assert_array_equal(data.timestamps, [100, 200])


def test_csv_without_timestamp_and_string_ids(tmp_path):
    data = read_ratings(write(tmp_path, "r.csv", "bob,x9,4\nalice,x10,2\nbob,x10,1\n"))
    assert data.timestamps is None
    np.testing.assert_array_equal(data.user_ids, ["alice", "bob"])
    np.testing.assert_array_equal(data.item_ids, ["x10", "x9"])  # sorted as strings
    np.testing.assert_array_equal(data.users, [1, 0, 1])
    np.testing.assert_array_equal(data.items, [1, 0, 0])


def test_numeric_ids_sorted_numerically(tmp_path):
    data = read_ratings(write(tmp_path, "r.tsv", "10\t2\t1\n9\t100\t2\n"))
    np.testing.assert_array_equal(data.user_ids, [9, 10])
    np.testing.assert_array_equal(data.item_ids, [2, 100])
    np.testing.assert_array_equal(data.users, [1, 0])


def test_header_with_named_columns_and_extra_column(tmp_path):
    text = "item;rating;note;user\nA;5;good;7\nB;1;bad;8\n"
    data = read_ratings(write(tmp_path, "r.txt", text))
    np.testing.assert_array_equal(data.user_ids, [7, 8])
    np.testing.assert_array_equal(data.item_ids, ["A", "B"])
    np.testing.assert_array_equal(data.ratings, [5, 1])
    assert data.timestamps is None


def test_explicit_delimiter_blank_lines_and_crlf(tmp_path):
    data = read_ratings(write(tmp_path, "r.txt", "1|2|3\r\n\r\n2|2|4\r\n"), delimiter="|")
    np.testing.assert_array_equal(data.ratings, [3, 4])
    with pytest.raises(ParseError, match=r"w.txt, line 1: cannot detect the delimiter") as info:
        read_ratings(write(tmp_path, "w.txt", "1 2  3\n2   2 4\n"))  # whitespace is not one
    assert info.value.line == 1


def test_to_ratings_one_hot(tmp_path):
    data = read_ratings(write(tmp_path, "u.data", U_DATA))
    ratings = data.to_ratings()
    assert isinstance(ratings, Ratings)
    assert (ratings.n_users, ratings.n_items) == (3, 3)
    X, y = ratings.one_hot()
    assert X.shape == (4, 6)
    np.testing.assert_array_equal(X.toarray()[0], [0, 0, 1, 1, 0, 0])
    np.testing.assert_array_equal(y, [3, 3, 1, 5])


def test_ratings_data_is_frozen(tmp_path):
    data = read_ratings(write(tmp_path, "u.data", U_DATA))
    with pytest.raises(AttributeError):
        data.users = None


def test_bad_rating_names_line(tmp_path):
    path = write(tmp_path, "u.data", "1\t2\t3\t4\n1\t3\tfive\t5\n")
    with pytest.raises(ParseError, match=r'u.data, line 2: rating "five" is not a number') as info:
        read_ratings(path)
    assert info.value.line == 2


def test_wrong_field_count_names_line(tmp_path):
    path = write(tmp_path, "r.csv", "userId,movieId,rating,timestamp\n1,2,3,4\n\n1,2,3\n")
    with pytest.raises(ParseError, match=r"line 4: expected 4 fields, found 3") as info:
        read_ratings(path)
    assert info.value.line == 4


def test_header_rejected_for_u_data(tmp_path):
    path = write(tmp_path, "u.data", "user\titem\trating\ttimestamp\n1\t2\t3\t4\n")
    with pytest.raises(ParseError, match=r'line 1: rating "rating"'):
        read_ratings(path, format="ml-100k")


def test_non_finite_rating(tmp_path):
    with pytest.raises(ParseError, match=r'line 1: rating "nan" is not finite'):
        read_ratings(write(tmp_path, "r.csv", "1,2,nan\n"))


def test_bad_timestamp(tmp_path):
    with pytest.raises(ParseError, match=r'line 3: timestamp "1.5" is not an integer'):
        read_ratings(write(tmp_path, "r.csv", "u,i,r,t\n1,2,3,10\n1,3,3,1.5\n"))
    with pytest.raises(ParseError, match=r'line 2: timestamp "soon" is not a number'):
        read_ratings(write(tmp_path, "r.csv", "u,i,r,t\n1,2,3,soon\n"))


def test_too_few_fields_and_empty_files(tmp_path):
    with pytest.raises(ParseError, match=r"line 1: expected at least 3 fields"):
        read_ratings(write(tmp_path, "a.csv", "1,2\n"))
    with pytest.raises(ParseError, match=r"no ratings"):
        read_ratings(write(tmp_path, "b.csv", "\n\n"))
    with pytest.raises(ParseError, match=r"c.csv, line 1: the file contains no ratings"):
        read_ratings(write(tmp_path, "c.csv", "userId,movieId,rating\n"))
    with pytest.raises(ParseError, match=r"line 2: empty user id"):
        read_ratings(write(tmp_path, "d.csv", "1,2,3\n,2,3\n"))


def test_unknown_format_and_empty_delimiter(tmp_path):
    path = write(tmp_path, "u.data", U_DATA)
    with pytest.raises(InvalidInputError, match=r"unknown ratings format 'parquet'"):
        read_ratings(path, format="parquet")
    with pytest.raises(InvalidInputError, match=r"delimiter must be one byte"):
        read_ratings(path, delimiter="")


def test_rfc4180_quotes_bom_crlf_and_semicolons(tmp_path):
    text = '\ufeffuser;item;rating\r\n"Smith; J";"The ""Best"" Film, 1999";4.5\r\n\r\nbob;x;3\r\n'
    data = read_ratings(write(tmp_path, "r.csv", text))
    np.testing.assert_array_equal(data.user_ids, ["Smith; J", "bob"])
    np.testing.assert_array_equal(data.item_ids, ['The "Best" Film, 1999', "x"])
    np.testing.assert_array_equal(data.ratings, [4.5, 3])


def test_ids_are_the_text_as_written(tmp_path):
    data = read_ratings(write(tmp_path, "r.csv", "7,a,1\n07,a,2\n7,b,3\n"))
    np.testing.assert_array_equal(data.user_ids, ["07", "7"])  # two users, numeric order
    assert data.user_ids.dtype.kind == "U"
    np.testing.assert_array_equal(data.users, [1, 0, 1])


def test_header_names_choose_the_columns(tmp_path):
    data = read_ratings(write(tmp_path, "r.csv", "item,user,rating\ni1,u1,5\ni2,u1,3\n"))
    np.testing.assert_array_equal(data.user_ids, ["u1"])
    np.testing.assert_array_equal(data.item_ids, ["i1", "i2"])


def test_a_line_break_inside_quotes_is_refused(tmp_path):
    with pytest.raises(ParseError, match=r"line 2: a quoted field holds a line break") as info:
        read_ratings(write(tmp_path, "r.csv", 'u,i,r\n"a\nb",1,2\n'))
    assert info.value.line == 2


# Ids as Python's csv module must quote them: delimiters, quotes, colons, spaces inside, non-ASCII.
_IDS = st.text(alphabet='ab7é0,;\t":- ', min_size=1, max_size=6).filter(lambda s: s == s.strip())


@settings(max_examples=60, deadline=None)
@given(
    rows=st.lists(st.tuples(_IDS, _IDS, st.sampled_from([1.0, 2.5, 5.0])), min_size=1, max_size=30),
    delimiter=st.sampled_from([",", ";", "\t"]),
    crlf=st.booleans(),
)
def test_any_file_pythons_csv_writer_makes_reads_back(rows, delimiter, crlf):
    """An independent RFC 4180 writer as the oracle: every id comes back as written, and convert
    gives the columns read_ratings gives."""
    text = io.StringIO()
    writer = csv.writer(text, delimiter=delimiter, lineterminator="\r\n" if crlf else "\n")
    writer.writerow(["user", "item", "rating"])
    writer.writerows(rows)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "r.csv"
        path.write_text(text.getvalue(), encoding="utf-8")
        data = read_ratings(path)
        columns = convert_ratings_csv(path, Path(folder) / "r.recordio")
        assert columns_path(Path(folder) / "r.recordio").exists()
    assert data.user_ids[data.users].astype(str).tolist() == [u for u, _, _ in rows]
    assert data.item_ids[data.items].astype(str).tolist() == [i for _, i, _ in rows]
    np.testing.assert_array_equal(data.ratings, [r for _, _, r in rows])
    assert (columns.users, columns.items) == (
        data.user_ids.astype(str).tolist(),
        data.item_ids.astype(str).tolist(),
    )


U_USER = "1|24|M|technician|85711\n2|53|F|other|94043\n3|23|M|writer|T8H1N\n"


def test_movielens_users(tmp_path):
    users = read_movielens_users(write(tmp_path, "u.user", U_USER))
    assert len(users) == 3
    np.testing.assert_array_equal(users.ids, [1, 2, 3])
    np.testing.assert_array_equal(users.ages, [24, 53, 23])
    np.testing.assert_array_equal(users.genders, ["M", "F", "M"])
    np.testing.assert_array_equal(users.occupations, ["technician", "other", "writer"])
    np.testing.assert_array_equal(users.zip_codes, ["85711", "94043", "T8H1N"])
    assert users.ids.dtype == np.int64


def test_movielens_users_errors(tmp_path):
    with pytest.raises(ParseError, match=r"line 2: expected 5 '\|'-separated fields, found 4") as info:
        read_movielens_users(write(tmp_path, "u.user", "1|24|M|technician|85711\n2|53|F|other\n"))
    assert info.value.line == 2
    with pytest.raises(ParseError, match=r"line 1: age 'old' is not an integer"):
        read_movielens_users(write(tmp_path, "u.user", "1|old|M|x|1\n"))


def item_line(movie_id, title, date, genres):
    flags = ["1" if name in genres else "0" for name in MOVIELENS_GENRES]
    return "|".join([str(movie_id), title, date, "", "http://us.imdb.com/x", *flags]) + "\n"


def test_movielens_items(tmp_path):
    text = (
        item_line(1, "Toy Story (1995)", "01-Jan-1995", {"Animation", "Children's", "Comedy"})
        + item_line(267, "unknown", "", {"unknown"})
        + item_line(1682, "Scream of Stone (Schrei aus Stein) (1991)", "08-Mar-1996", {"Drama"})
        + item_line(5, "Café au lait (1994)", "01-Jan-1994", set())
    )
    items = read_movielens_items(write(tmp_path, "u.item", text, encoding="latin-1"))
    assert len(items) == 4
    np.testing.assert_array_equal(items.ids, [1, 267, 1682, 5])
    np.testing.assert_array_equal(items.years, [1995, -1, 1996, 1994])
    assert items.titles[0] == "Toy Story (1995)"
    assert items.titles[3] == "Café au lait (1994)"
    assert items.genres.shape == (4, 19) and items.genres.dtype == np.int8
    assert items.genre_names == MOVIELENS_GENRES and len(items.genre_names) == 19
    assert [items.genre_names[j] for j in np.flatnonzero(items.genres[0])] == [
        "Animation",
        "Children's",
        "Comedy",
    ]
    np.testing.assert_array_equal(items.genres[1], [1] + [0] * 18)
    assert items.genres[3].sum() == 0


def test_movielens_items_errors(tmp_path):
    good = item_line(1, "Toy Story (1995)", "01-Jan-1995", {"Comedy"})
    with pytest.raises(ParseError, match=r"line 2: expected 24 '\|'-separated fields, found 5") as info:
        read_movielens_items(write(tmp_path, "u.item", good + "2|a|b|c|d\n"))
    assert info.value.line == 2
    with pytest.raises(ParseError, match=r"line 1: release date 'someday' has no year"):
        read_movielens_items(write(tmp_path, "u.item", item_line(1, "x", "someday", set())))
    with pytest.raises(ParseError, match=r"line 2: genre flags must be 0 or 1"):
        read_movielens_items(write(tmp_path, "u.item", good + good[:-2] + "2\n"))
    with pytest.raises(ParseError, match=r"line 1: movie id 'x' is not an integer"):
        read_movielens_items(write(tmp_path, "u.item", "x" + good[1:]))
