"""``fmfast convert``: text inputs parsed in Rust, checked against CSR built here by hand."""

from __future__ import annotations

import json
from pathlib import Path

import fmfast
import numpy as np
import pytest
import scipy.sparse as sp
from fmfast import cli
from fmfast.recordio.convert import (
    FORMATS,
    columns_path,
    convert_file,
    convert_libsvm,
    convert_ratings_csv,
    detect_format,
    ratings_one_hot,
)

LIBSVM = """\
# a header comment
1 1:0.5 3:2.25
-1 2:1e-3\t4:-7   # trailing comment

0
+1 qid:7 4:1 1:3
2.5 3:0
"""


def libsvm_expected(
    text: str, zero_based: bool, n_features: int | None = None
) -> tuple[sp.csr_matrix, np.ndarray]:
    """The CSR matrix and labels a libSVM text stands for, computed in plain Python."""
    rows: list[dict[int, float]] = []
    labels: list[float] = []
    for line in text.splitlines():
        tokens = line.split("#")[0].split()
        if not tokens:
            continue
        labels.append(float(tokens[0]))
        row = {}
        for token in tokens[1:]:
            index, value = token.split(":")
            if index != "qid":
                row[int(index) - (0 if zero_based else 1)] = float(value)
        rows.append(row)
    n_cols = n_features or max((max(r) + 1 for r in rows if r), default=0)
    indptr = np.cumsum([0] + [len(r) for r in rows])
    indices = [c for r in rows for c in sorted(r)]
    data = [r[c] for r in rows for c in sorted(r)]
    X = sp.csr_matrix(
        (np.array(data, np.float32), np.array(indices, np.int32), indptr), shape=(len(rows), n_cols)
    )
    return X, np.array(labels, np.float32)


def assert_same(path: Path, X: sp.csr_matrix, y: np.ndarray) -> None:
    X_back, y_back = fmfast.read_recordio(path)
    assert X_back.shape == X.shape
    assert X_back.dtype == np.float32
    np.testing.assert_array_equal(X_back.indptr, X.indptr)
    np.testing.assert_array_equal(X_back.indices, X.indices)
    np.testing.assert_array_equal(X_back.data, X.data)
    np.testing.assert_array_equal(y_back, y)


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# --- libSVM / libFM -------------------------------------------------------------------------


def test_libsvm_matches_a_hand_built_csr_and_write_recordio(tmp_path: Path) -> None:
    source, target = write(tmp_path, "train.libsvm", LIBSVM), tmp_path / "train.recordio"
    assert convert_libsvm(source, target) == (5, 4)
    X, y = libsvm_expected(LIBSVM, zero_based=False)
    assert_same(target, X, y)
    reference = tmp_path / "reference.recordio"
    fmfast.write_recordio(reference, X, y)
    assert target.read_bytes() == reference.read_bytes()


def test_libsvm_bytes_do_not_depend_on_threads(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    lines = []
    for _ in range(3000):
        cols = np.sort(rng.choice(500, size=rng.integers(0, 20), replace=False)) + 1
        lines.append(" ".join([f"{rng.normal():.4g}", *(f"{c}:{rng.random():.5g}" for c in cols)]))
    text = "\n".join(lines) + "\n"
    source = write(tmp_path, "big.svm", text)
    outputs = []
    for threads in (1, 2, 4):
        target = tmp_path / f"out{threads}.recordio"
        convert_libsvm(source, target, n_features=501, n_threads=threads)
        outputs.append(target.read_bytes())
    assert outputs[0] == outputs[1] == outputs[2]
    X, y = libsvm_expected(text, zero_based=False, n_features=501)
    assert_same(tmp_path / "out1.recordio", X, y)


def test_libsvm_guesses_zero_based_and_libfm_is_zero_based(tmp_path: Path) -> None:
    text = "1 0:1 2:2\n0 5:1\n"
    source, target = write(tmp_path, "zero.libsvm", text), tmp_path / "zero.recordio"
    assert convert_libsvm(source, target) == (2, 6)
    assert_same(target, *libsvm_expected(text, zero_based=True))

    text = "1 1:1 2:2\n0 5:1\n"
    source = write(tmp_path, "train.libfm", text)
    assert convert_file(source, target, progress=False) == 2
    assert_same(target, *libsvm_expected(text, zero_based=True))
    assert convert_file(source, target, zero_based=False) == 2
    assert_same(target, *libsvm_expected(text, zero_based=False))


def test_libsvm_n_features_widens_the_matrix(tmp_path: Path) -> None:
    source, target = write(tmp_path, "train.txt", LIBSVM), tmp_path / "out.recordio"
    assert convert_file(source, target, n_features=100) == 5
    assert_same(target, *libsvm_expected(LIBSVM, zero_based=False, n_features=100))


def test_empty_libsvm_gives_an_empty_file(tmp_path: Path) -> None:
    source, target = write(tmp_path, "empty.libsvm", "# nothing\n\n"), tmp_path / "empty.recordio"
    assert convert_libsvm(source, target) == (0, 0)
    assert target.read_bytes() == b""


@pytest.mark.parametrize(
    ("text", "options", "line", "match"),
    [
        ("1 1:1\n1 2\n", {}, 2, r'line 2: expected index:value, got "2"'),
        ("1 1:1\n\n1 a:1\n", {}, 3, r'feature index in "a:1" is not a non-negative integer'),
        ("1 -3:1\n", {}, 1, "not a non-negative integer"),
        ("1 1:1\nspam 1:1\n", {}, 2, r'label "spam" is not a number'),
        ("1 1:1 2:1,5\n", {}, 1, r'value "1,5" is not a number'),
        ("1 2:1 2:3\n", {}, 1, "feature index 2 appears twice"),
        ("1 1:1\n1 0:1\n", {"zero_based": False}, 2, "feature index 0 .* but indices are 1-based"),
        ("1 1:1\n1 9:1\n", {"n_features": 4}, 2, "feature index 9 needs 9 features but n_features is 4"),
        ("1 1:1\n1 4:1\n", {"n_features": 4, "zero_based": True}, 2, "index 4 needs 5 features"),
        ("1 1:1\n1 0:1\n", {"n_features": 4, "zero_based": False}, 2, "but indices are 1-based"),
    ],
)
def test_libsvm_parse_errors_name_the_line_and_leave_nothing(
    tmp_path: Path, text: str, options: dict[str, object], line: int, match: str
) -> None:
    source, target = write(tmp_path, "bad.libsvm", text), tmp_path / "bad.recordio"
    with pytest.raises(fmfast.ParseError, match=match) as caught:
        convert_libsvm(source, target, **options)  # type: ignore[arg-type]
    assert caught.value.line == line  # type: ignore[attr-defined]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.libsvm"]


def test_a_failed_conversion_keeps_an_existing_target(tmp_path: Path) -> None:
    source, target = write(tmp_path, "bad.libsvm", "1 1:1\n1 1:x\n"), tmp_path / "out.recordio"
    target.write_bytes(b"previous")
    with pytest.raises(fmfast.ParseError):
        convert_libsvm(source, target)
    assert target.read_bytes() == b"previous"
    assert len(list(tmp_path.iterdir())) == 2


def test_progress_counts_bytes_over_both_passes(tmp_path: Path) -> None:
    source, target = write(tmp_path, "train.libsvm", LIBSVM), tmp_path / "out.recordio"
    seen: list[int] = []
    convert_libsvm(source, target, progress=seen.append)
    assert seen[-1] == 2 * source.stat().st_size
    assert seen == sorted(seen)
    convert_libsvm(source, target, progress=True)
    seen.clear()
    convert_libsvm(source, target, n_features=10, zero_based=False, progress=seen.append)
    assert seen[-1] == source.stat().st_size, "a single pass when nothing is left to infer"
    assert_same(target, *libsvm_expected(LIBSVM, zero_based=False, n_features=10))


def test_a_progress_callback_error_stops_the_conversion(tmp_path: Path) -> None:
    source, target = write(tmp_path, "train.libsvm", LIBSVM), tmp_path / "out.recordio"

    def stop(done: int) -> None:
        raise RuntimeError("stop here")

    with pytest.raises(RuntimeError, match="stop here"):
        convert_libsvm(source, target, progress=stop)
    assert not target.exists()


def test_missing_source_is_an_os_error(tmp_path: Path) -> None:
    with pytest.raises(OSError):
        convert_libsvm(tmp_path / "missing.libsvm", tmp_path / "out.recordio")
    assert list(tmp_path.iterdir()) == []


# --- CSV rating triples ---------------------------------------------------------------------


def ratings_expected(
    triples: list[tuple[str, str, float]],
) -> tuple[sp.csr_matrix, np.ndarray, list[str], list[str]]:
    """One-hot rows of rating triples, with vocabularies ordered as fmfast documents."""

    def order(ids: set[str]) -> list[str]:
        try:
            return sorted(ids, key=lambda s: (int(s), s))
        except ValueError:
            return sorted(ids)

    users = order({u for u, _, _ in triples})
    items = order({i for _, i, _ in triples})
    u_col = {u: j for j, u in enumerate(users)}
    i_col = {i: len(users) + j for j, i in enumerate(items)}
    rows = np.repeat(np.arange(len(triples)), 2)
    cols = [c for u, i, _ in triples for c in (u_col[u], i_col[i])]
    X = sp.csr_matrix(
        (np.ones(len(cols), np.float32), (rows, cols)), shape=(len(triples), len(users) + len(items))
    )
    y = np.array([r for _, _, r in triples], np.float32)
    return X, y, users, items


TRIPLES = [("10", "b", 4.5), ("2", "a", 3.0), ("10", "a", 1.0), ("7", "c", 5.0)]


@pytest.mark.parametrize(
    ("name", "text"),
    [
        (
            "ratings.csv",
            "userId,movieId,rating,timestamp\n" + "\n".join(f"{u},{i},{r},123" for u, i, r in TRIPLES),
        ),
        ("u.data", "\n".join(f"{u}\t{i}\t{r}\t881250949" for u, i, r in TRIPLES)),
        ("ratings.dat", "\n".join(f"{u}::{i}::{r}::978300760" for u, i, r in TRIPLES) + "\n"),
        (
            "ml.inter",
            "user_id:token\titem_id:token\trating:float\n"
            + "\n".join(f"{u}\t{i}\t{r}" for u, i, r in TRIPLES),
        ),
        ("spaced.tsv", "\n\n" + "\n".join(f" {u} \t {i} \t {r} " for u, i, r in TRIPLES) + "\n\n"),
    ],
)
def test_ratings_in_each_dialect_become_one_hot_rows(tmp_path: Path, name: str, text: str) -> None:
    source, target = write(tmp_path, name, text), tmp_path / "out.recordio"
    assert detect_format(source) == "csv"
    assert convert_file(source, target) == len(TRIPLES)
    X, y, users, items = ratings_expected(TRIPLES)
    assert users == ["2", "7", "10"]
    assert_same(target, X, y)
    assert json.loads(columns_path(target).read_text()) == {"users": users, "items": items}
    reference = tmp_path / "reference.recordio"
    fmfast.write_recordio(reference, X, y)
    assert target.read_bytes() == reference.read_bytes()


def test_many_ratings_with_text_and_numeric_ids_across_pieces(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    n = 40_000
    users = [str(u) for u in rng.integers(1, 3000, n)]
    items = [f"tt{i:07d}" for i in rng.integers(0, 900, n)]
    users[:3] = ["7", "07", "-2"]
    ratings = (rng.integers(1, 11, n) / 2).tolist()
    triples = list(zip(users, items, ratings, strict=True))
    text = "user_id,item_id,rating\n" + "".join(f"{u},{i},{r}\n" for u, i, r in triples)
    assert len(text) > 2 * 256 * 1024  # several pieces parsed in parallel
    source, target = write(tmp_path, "many.csv", text), tmp_path / "many.recordio"
    seen: list[int] = []
    columns = convert_ratings_csv(source, target, n_threads=2, progress=seen.append)
    X, y, users_order, items_order = ratings_expected(triples)
    assert (columns.users, columns.items) == (users_order, items_order)
    assert columns.users[0] == "-2"
    assert columns.users.index("07") + 1 == columns.users.index("7")
    assert_same(target, X, y)
    assert seen[-1] == 2 * source.stat().st_size


def test_ratings_with_a_given_delimiter(tmp_path: Path) -> None:
    source, target = write(tmp_path, "r.txt", "u1;i,1;4\nu2;i,2;5\n"), tmp_path / "out.recordio"
    columns = convert_ratings_csv(source, target, delimiter=";")
    assert (columns.n_rows, columns.users, columns.items, columns.n_cols) == (
        2,
        ["u1", "u2"],
        ["i,1", "i,2"],
        4,
    )
    X, y, _, _ = ratings_expected([("u1", "i,1", 4.0), ("u2", "i,2", 5.0)])
    assert_same(target, X, y)


@pytest.mark.parametrize(
    ("text", "delimiter", "line", "match"),
    [
        ("1 2 3\n", None, 1, "cannot detect the delimiter"),
        ("1,2,3\n1,2\n", None, 2, r"bad.csv, line 2: expected 3 fields, found 2"),
        ("user,item,rating\n1,2,3\n1,2,four\n", None, 3, r'rating "four" is not a number'),
        ("1,2,3\n\n,2,3\n", None, 3, "empty user id"),
    ],
)
def test_ratings_parse_errors(
    tmp_path: Path, text: str, delimiter: str | None, line: int, match: str
) -> None:
    source, target = write(tmp_path, "bad.csv", text), tmp_path / "bad.recordio"
    with pytest.raises(fmfast.ParseError, match=match) as caught:
        convert_ratings_csv(source, target, delimiter=delimiter)
    assert caught.value.line == line  # type: ignore[attr-defined]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.csv"]


def test_an_empty_delimiter_is_invalid(tmp_path: Path) -> None:
    source = write(tmp_path, "r.csv", "1,2,3\n")
    with pytest.raises(fmfast.InvalidInputError, match="delimiter must be one byte"):
        convert_ratings_csv(source, tmp_path / "out.recordio", delimiter="")


@pytest.mark.parametrize(
    "text",
    [
        "userId,movieId,rating\n7,a,1\n07,a,2\n7,b,3\n",
        'item,user,rating\r\n"x, y",u1,5\r\nz,"u""2",3\r\n',
        "\ufeffu;i;r\n1;2;3\n\n2;1;4\n",
        "1::10::5::0\n2::10::3::0\n",
    ],
)
def test_convert_and_load_ratings_read_a_file_alike(tmp_path: Path, text: str) -> None:
    source, target = write(tmp_path, "r.csv", text), tmp_path / "r.recordio"
    columns = convert_ratings_csv(source, target)
    data = fmfast.read_ratings(source)
    assert columns.users == data.user_ids.astype(str).tolist()
    assert columns.items == data.item_ids.astype(str).tolist()
    X, y = data.to_ratings().one_hot()
    assert_same(target, X, y)


def test_a_test_set_reuses_the_training_vocabulary(tmp_path: Path) -> None:
    train = write(tmp_path, "train.csv", "user,item,rating\n1,a,5\n2,b,3\n3,a,1\n")
    test = write(tmp_path, "test.csv", "item,user,rating\nb,3,4\na,2,2\n")
    convert_ratings_csv(train, tmp_path / "train.recordio")
    vocabulary = columns_path(tmp_path / "train.recordio")
    columns = convert_ratings_csv(test, tmp_path / "test.recordio", columns=vocabulary)
    assert (columns.users, columns.items) == (["1", "2", "3"], ["a", "b"])
    X = sp.csr_matrix((np.ones(4, np.float32), ([0, 0, 1, 1], [2, 4, 1, 3])), shape=(2, 5))
    assert_same(tmp_path / "test.recordio", X, np.array([4, 2], np.float32))
    X_mem, y_mem, users, items = ratings_one_hot(test, vocabulary)
    np.testing.assert_array_equal(X_mem.toarray(), X.toarray())
    np.testing.assert_array_equal(y_mem, [4, 2])
    assert (users.tolist(), items.tolist()) == (["3", "2"], ["b", "a"])


def test_ids_outside_the_vocabulary_are_refused_or_given_no_column(tmp_path: Path) -> None:
    convert_ratings_csv(write(tmp_path, "train.csv", "1,a,5\n2,b,3\n"), tmp_path / "train.recordio")
    vocabulary = columns_path(tmp_path / "train.recordio")
    test = write(tmp_path, "test.csv", "1,a,4\n3,b,2\n2,c,1\n")
    with pytest.raises(
        fmfast.ParseError, match=r'test.csv, line 2: user id "3" is not in the vocabulary'
    ) as caught:
        convert_ratings_csv(test, tmp_path / "test.recordio", columns=vocabulary)
    assert caught.value.line == 2  # type: ignore[attr-defined]
    assert not (tmp_path / "test.recordio").exists()
    with pytest.raises(fmfast.ParseError, match=r'user id "3"'):
        ratings_one_hot(test, vocabulary)
    convert_ratings_csv(test, tmp_path / "test.recordio", columns=vocabulary, unknown="ignore")
    X = sp.csr_matrix((np.ones(4, np.float32), ([0, 0, 1, 2], [0, 2, 3, 1])), shape=(3, 4))
    assert_same(tmp_path / "test.recordio", X, np.array([4, 2, 1], np.float32))
    X_mem, _, users, items = ratings_one_hot(test, vocabulary, unknown="ignore")
    np.testing.assert_array_equal(X_mem.toarray(), X.toarray())
    assert (users.tolist(), items.tolist()) == (["1", "", "2"], ["a", "b", ""])
    with pytest.raises(fmfast.InvalidInputError, match="unknown='skip'"):
        ratings_one_hot(test, vocabulary, unknown="skip")
    with pytest.raises(fmfast.InvalidInputError, match=r"not a \.columns\.json file"):
        ratings_one_hot(test, test)


def test_pairs_without_ratings(tmp_path: Path) -> None:
    convert_ratings_csv(write(tmp_path, "train.csv", "1,a,5\n2,b,3\n"), tmp_path / "train.recordio")
    pairs = write(tmp_path, "pairs.csv", "user,item\n2,a\n1,b\n")
    X, y, _, _ = ratings_one_hot(pairs, columns_path(tmp_path / "train.recordio"), pairs=True)
    assert y is None
    np.testing.assert_array_equal(X.toarray(), [[0, 1, 1, 0], [1, 0, 0, 1]])
    with pytest.raises(fmfast.ParseError, match="expected at least 3 fields"):
        ratings_one_hot(pairs, columns_path(tmp_path / "train.recordio"))


# --- dispatch and the command line ----------------------------------------------------------


def test_formats_and_detection() -> None:
    assert FORMATS == ("libsvm", "libfm", "csv", "npz")
    cases = {"a.libsvm": "libsvm", "a.SVM": "libsvm", "a.txt": "libsvm", "a.libfm": "libfm", "a.npz": "npz"}
    cases |= {f"a{s}": "csv" for s in (".csv", ".tsv", ".dat", ".data", ".inter")}
    for name, kind in cases.items():
        assert detect_format(name) == kind
    with pytest.raises(fmfast.InvalidInputError, match="cannot tell the format"):
        detect_format("a.parquet")


def test_convert_file_refuses_options_that_do_not_apply(tmp_path: Path) -> None:
    source = write(tmp_path, "r.csv", "1,2,3\n")
    with pytest.raises(fmfast.InvalidInputError, match="n_features does not apply to csv"):
        convert_file(source, tmp_path / "out.recordio", n_features=3)
    with pytest.raises(fmfast.InvalidInputError, match="unknown format 'xml'"):
        convert_file(source, tmp_path / "out.recordio", format="xml")


def test_npz_still_converts(tmp_path: Path) -> None:
    X = sp.random(20, 7, density=0.3, format="csr", dtype=np.float32, random_state=1)
    y = np.arange(20, dtype=np.float32)
    sp.save_npz(tmp_path / "X.npz", X)
    np.save(tmp_path / "y.npy", y)
    target = tmp_path / "out.recordio"
    assert convert_file(tmp_path / "X.npz", target, labels=tmp_path / "y.npy") == 20
    assert_same(target, X, y)


def test_cli_converts_libsvm_and_csv(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source, target = write(tmp_path, "train.libsvm", LIBSVM), tmp_path / "train.recordio"
    assert cli.main(["convert", str(source), str(target), "--quiet"]) == 0
    assert "wrote 5 records" in capsys.readouterr().out
    assert_same(target, *libsvm_expected(LIBSVM, zero_based=False))

    assert (
        cli.main(["convert", str(source), str(target), "--quiet", "--zero-based", "--n-features", "9"]) == 0
    )
    assert_same(target, *libsvm_expected(LIBSVM, zero_based=True, n_features=9))

    text = "\n".join(f"{u}|{i}|{r}" for u, i, r in TRIPLES)
    source, target = write(tmp_path, "r.data", text), tmp_path / "r.recordio"
    assert cli.main(["convert", str(source), str(target), "--quiet", "--delimiter", "|"]) == 0
    out = capsys.readouterr().out
    assert "wrote 4 records" in out and "columns.json" in out
    X, y, users, items = ratings_expected(TRIPLES)
    assert_same(target, X, y)
    assert json.loads(columns_path(target).read_text()) == {"users": users, "items": items}

    tsv = write(tmp_path, "r.tsv", "\n".join(f"{u}\t{i}\t{r}" for u, i, r in TRIPLES))
    assert cli.main(["convert", str(tsv), str(target), "--quiet", "--delimiter", "tab"]) == 0
    assert_same(target, X, y)


def test_cli_reports_parse_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source, target = write(tmp_path, "bad.libsvm", "1 1:1\n1 1:?\n"), tmp_path / "out.recordio"
    assert cli.main(["convert", str(source), str(target), "--quiet", "--format", "libsvm"]) == 1
    assert "line 2" in capsys.readouterr().err
    assert not target.exists()
