"""FeatureEncoder: blocks vs a plain NumPy/SciPy construction, unknown ids, persistence, errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp
from fmfast import _fmfast
from fmfast.exceptions import InvalidInputError
from fmfast.recsys.features import BlockInfo, FeatureEncoder


def _columns(n: int = 200, seed: int = 0) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    rated = [rng.choice(50, size=rng.integers(0, 6), replace=False) + 1000 for _ in range(n)]
    age = rng.uniform(10, 80, n)
    age[::17] = np.nan
    return {
        "user": rng.integers(0, 30, n) * 3,
        "genre": [["drama", "action", "comedy"][i % 3] for i in range(n)],
        "rated": rated,
        "tags": [list(r[:2]) for r in rated],
        "age": age,
        "age_bucket": age,
    }


def _encoder(**kwargs: Any) -> FeatureEncoder:
    return (
        FeatureEncoder(**kwargs)
        .one_hot("user")
        .one_hot("genre")
        .implicit("rated")
        .multi_hot("tags")
        .numeric("age")
        .bucketed("age_bucket", [18, 30, 50])
    )


def _expected(cols: dict[str, Any]) -> sp.csr_array:
    """The same matrix built by hand with NumPy and SciPy (COO, duplicates summed)."""
    n = len(cols["user"])
    rows: list[int] = []
    colix: list[int] = []
    vals: list[float] = []
    offset = 0
    for name in ("user", "genre"):
        vocab = np.unique(np.asarray(cols[name]))
        codes = np.searchsorted(vocab, np.asarray(cols[name]))
        rows += range(n)
        colix += list(codes + offset)
        vals += [1.0] * n
        offset += len(vocab)
    for name, normalize in (("rated", True), ("tags", False)):
        lists = cols[name]
        vocab = np.unique(np.concatenate([np.asarray(r) for r in lists]))
        for r, ids in enumerate(lists):
            for i in ids:
                rows.append(r)
                colix.append(offset + int(np.searchsorted(vocab, i)))
                vals.append(1 / np.sqrt(len(ids)) if normalize else 1.0)
        offset += len(vocab)
    age = np.asarray(cols["age"])
    lo, hi = np.nanmin(age), np.nanmax(age)
    ok = ~np.isnan(age)
    rows += list(np.flatnonzero(ok))
    colix += [offset] * int(ok.sum())
    vals += list(((age[ok] - lo) / (hi - lo)).astype(np.float32))
    offset += 1
    rows += list(np.flatnonzero(ok))
    colix += list(offset + np.digitize(age[ok], [18, 30, 50]))
    vals += [1.0] * int(ok.sum())
    offset += 4
    return sp.coo_array((np.asarray(vals, np.float32), (rows, colix)), shape=(n, offset)).tocsr()


def _same(a: sp.csr_array, b: sp.csr_array) -> None:
    assert a.shape == b.shape
    np.testing.assert_allclose(a.toarray(), b.toarray(), rtol=1e-6, atol=1e-7)


def test_round_trip_matches_scipy_construction() -> None:
    cols = _columns()
    enc = _encoder()
    X = enc.fit_transform(cols)
    assert isinstance(X, sp.csr_array)
    assert X.dtype == np.float32
    assert X.has_sorted_indices
    _same(X, _expected(cols))
    assert X.shape[1] == enc.n_features == len(enc.feature_names())


def test_blocks_and_feature_names() -> None:
    enc = FeatureEncoder().one_hot("u").multi_hot("t").numeric("x", scale="none").bucketed("b", [0, 1])
    enc.fit({"u": ["b", "a", "b"], "t": [[3, 1], [], None], "x": [1, 2, 3], "b": [0, 1, 2]})
    assert enc.blocks == [
        BlockInfo("u", "one_hot", 0, 2),
        BlockInfo("t", "multi_hot", 2, 2),
        BlockInfo("x", "numeric", 4, 1),
        BlockInfo("b", "bucketed", 5, 3),
    ]
    assert enc.feature_names() == [
        "u=a",
        "u=b",
        "t=1",
        "t=3",
        "x",
        "b=[-inf,0.0)",
        "b=[0.0,1.0)",
        "b=[1.0,inf)",
    ]
    X = enc.transform({"u": ["a"], "t": [[3, 3]], "x": [-2.5], "b": [0.5]})
    # A repeated id is summed; numeric without scaling keeps its value.
    np.testing.assert_array_equal(X.toarray(), [[1, 0, 0, 2, -2.5, 0, 1, 0]])


def test_unknown_ids_ignore_and_missing() -> None:
    enc = FeatureEncoder(handle_unknown="ignore").one_hot("u").implicit("r")
    enc.fit({"u": [1, 2], "r": [[10, 11], [12]]})
    X = enc.transform({"u": [3, 2, None], "r": [[10, 99, 11], [99], []]})
    w = 1 / np.sqrt(2)
    np.testing.assert_allclose(X.toarray(), [[0, 0, w, w, 0], [0, 1, 0, 0, 0], [0, 0, 0, 0, 0]], rtol=1e-6)


def test_unknown_ids_error_names_block_row_and_value() -> None:
    enc = FeatureEncoder().one_hot("user").multi_hot("tags")
    enc.fit({"user": ["a", "b"], "tags": [["x"], ["y", "z"]]})
    with pytest.raises(InvalidInputError, match=r"block 'user', row 1: unknown value 'c'"):
        enc.transform({"user": ["a", "c"], "tags": [[], []]})
    with pytest.raises(InvalidInputError, match=r"block 'tags', row 2: unknown value 'w'"):
        enc.transform({"user": ["a", "a", "b"], "tags": [["x"], [], ["y", "w"]]})
    # Missing ids are not unknown.
    assert enc.transform({"user": [None], "tags": [None]}).nnz == 0


def test_object_and_string_ids_agree() -> None:
    enc = FeatureEncoder().one_hot("g")
    enc.fit({"g": np.array(["x", "y"], dtype=object)})
    a = enc.transform({"g": np.array(["y", "x"], dtype=object)})
    b = enc.transform({"g": np.array(["y", "x"])})
    _same(a, b)


def test_save_load_identity(tmp_path: Path) -> None:
    cols = _columns(seed=3)
    enc = _encoder(handle_unknown="ignore")
    X = enc.fit_transform(cols)
    path = tmp_path / "enc.json"
    enc.save(path)
    loaded = FeatureEncoder.load(path)
    Y = loaded.transform(cols)
    for attr in ("indptr", "indices", "data"):
        np.testing.assert_array_equal(getattr(X, attr), getattr(Y, attr))
    assert loaded.feature_names() == enc.feature_names()
    assert loaded.blocks == enc.blocks
    assert FeatureEncoder.from_json(enc.to_json()).to_json() == enc.to_json()
    assert [p.name for p in tmp_path.iterdir()] == ["enc.json"]


def test_errors() -> None:
    with pytest.raises(InvalidInputError, match="handle_unknown"):
        FeatureEncoder(handle_unknown="drop")
    with pytest.raises(InvalidInputError, match="declared twice"):
        FeatureEncoder().one_hot("a").numeric("a")
    with pytest.raises(InvalidInputError, match="increase strictly"):
        FeatureEncoder().bucketed("a", [2, 1])
    with pytest.raises(InvalidInputError, match="scale must be"):
        FeatureEncoder().numeric("a", scale="z")
    with pytest.raises(InvalidInputError, match="not fitted"):
        FeatureEncoder().one_hot("a").transform({"a": [1]})
    with pytest.raises(InvalidInputError, match="no blocks"):
        FeatureEncoder().fit({})
    enc = FeatureEncoder().one_hot("a").numeric("x").fit({"a": [1, 2], "x": [0.0, 1.0]})
    with pytest.raises(InvalidInputError, match="column missing"):
        enc.transform({"a": [1]})
    with pytest.raises(InvalidInputError, match="block 'x' has 1 rows, the blocks before it 2"):
        enc.transform({"a": [1, 2], "x": [0.5]})
    with pytest.raises(InvalidInputError, match=r"block 'x', row 1: value inf is not finite"):
        enc.transform({"a": [1, 2], "x": [0.5, np.inf]})
    with pytest.raises(InvalidInputError, match="invalid FeatureEncoder JSON"):
        FeatureEncoder.from_json('{"format": "other"}')


def test_core_checks_codes_and_lengths() -> None:
    codes = np.array([0, 4], dtype=np.int64)
    with pytest.raises(InvalidInputError, match=r"row 1, block 0 \(one-hot\): code 4 is outside 0\.\.4"):
        _fmfast.assemble_features([(codes, 0, 4)], 2)
    values = np.array([1.0], dtype=np.float32)
    with pytest.raises(InvalidInputError, match="1 values for 2 rows"):
        _fmfast.assemble_features([(values, 0)], 2)
    indptr = np.array([0, 1, 3], dtype=np.int64)
    multi = np.array([1, 0, -1], dtype=np.int64)
    p, i, d = _fmfast.assemble_features([(indptr, multi, 2, 2, True), (codes[:2] * 0, 0, 2)], 2, n_threads=2)
    np.testing.assert_array_equal(p, [0, 2, 4])
    np.testing.assert_array_equal(i, [0, 3, 0, 2])
    np.testing.assert_allclose(d, [1, 1, 1, 1])


def test_many_rows_parallel() -> None:
    n = 20_000
    rng = np.random.default_rng(1)
    ids = rng.integers(0, 1000, n)
    enc = FeatureEncoder(n_threads=4).one_hot("id").numeric("v")
    X = enc.fit_transform({"id": ids, "v": rng.random(n)})
    vocab = np.unique(ids)
    np.testing.assert_array_equal(X.indices[::2], np.searchsorted(vocab, ids))
    np.testing.assert_array_equal(np.diff(X.indptr), 2)


def test_zero_rows() -> None:
    enc = FeatureEncoder().one_hot("u").implicit("r").numeric("x")
    enc.fit({"u": [1, 2], "r": [[1], [2, 3]], "x": [0.0, 2.0]})
    X = enc.transform({"u": [], "r": [], "x": []})
    assert X.shape == (0, enc.n_features)
    assert X.nnz == 0


def test_fitted_says_whether_the_encoder_has_learned() -> None:
    encoder = FeatureEncoder().one_hot("user")
    assert not encoder.fitted
    assert encoder.fit({"user": ["a", "b"]}).fitted
    assert FeatureEncoder.from_json(encoder.to_json()).fitted
    assert not encoder.one_hot("item").fitted  # a new block needs a new fit
