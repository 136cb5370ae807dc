"""FeatureEncoder on Arrow data (encoded in Rust) against the dict-of-columns path, for every Arrow
input type and every column type; nulls, empty and chunked streams, errors."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
import pytest
import scipy.sparse as sp
from fmfast.exceptions import InvalidInputError
from fmfast.recsys.features import FeatureEncoder

N = 300
RNG = np.random.default_rng(7)
USERS = [f"user{i:03d}" for i in RNG.integers(0, 40, N)]
ITEMS = RNG.integers(-5, 60, N)
GENRES = [list(RNG.integers(0, 9, RNG.integers(0, 6))) for _ in range(N)]
AGES = RNG.uniform(10, 80, N)
AGES[::13] = np.nan  # NaN (not null): no entry, as in a dict of columns


class StreamOnly:
    """Something with only the Arrow stream PyCapsule interface (as a DuckDB result has)."""

    def __init__(self, table: pa.Table) -> None:
        self.table = table

    def __arrow_c_stream__(self, requested_schema: object = None) -> object:
        return self.table.__arrow_c_stream__(requested_schema)


class ArrayOnly:
    """Something with only the Arrow array PyCapsule interface (one record batch)."""

    def __init__(self, table: pa.Table) -> None:
        self.batch = table.combine_chunks().to_batches()[0] if table.num_rows else None
        self.schema = table.schema

    def __arrow_c_array__(self, requested_schema: object = None) -> object:
        batch = self.batch if self.batch is not None else pa.RecordBatch.from_pylist([], schema=self.schema)
        return batch.__arrow_c_array__(requested_schema)


# Each Arrow input type, made from a table (afresh for every use: a reader is read once).
INPUTS: dict[str, Callable[[pa.Table], Any]] = {
    "table": lambda t: t,
    "chunked table": lambda t: pa.Table.from_batches(t.to_batches(max_chunksize=37), schema=t.schema),
    "record batch": lambda t: t.combine_chunks().to_batches()[0],
    "reader": lambda t: pa.RecordBatchReader.from_batches(t.schema, t.to_batches(max_chunksize=50)),
    "stream capsule": StreamOnly,
    "array capsule": ArrayOnly,
}


# Each column type: (the values in a dict of columns, the Arrow array of them, the block).
def _case(values: Any, array: pa.Array, declare: Callable[[FeatureEncoder], FeatureEncoder]) -> Any:
    return values, array, declare


INT_IDS = [int(i) for i in ITEMS]
STR_IDS = USERS
COLUMNS: dict[str, Any] = {
    "int8 ids": _case(INT_IDS, pa.array(INT_IDS, pa.int8()), lambda e: e.one_hot("c")),
    "int32 ids": _case(INT_IDS, pa.array(INT_IDS, pa.int32()), lambda e: e.one_hot("c")),
    "int64 ids": _case(INT_IDS, pa.array(INT_IDS, pa.int64()), lambda e: e.one_hot("c")),
    "uint16 ids": _case(
        [i + 5 for i in INT_IDS], pa.array([i + 5 for i in INT_IDS], pa.uint16()), lambda e: e.one_hot("c")
    ),
    "uint64 ids": _case(
        [i + 5 for i in INT_IDS], pa.array([i + 5 for i in INT_IDS], pa.uint64()), lambda e: e.one_hot("c")
    ),
    "string ids": _case(STR_IDS, pa.array(STR_IDS, pa.string()), lambda e: e.one_hot("c")),
    "large_string ids": _case(STR_IDS, pa.array(STR_IDS, pa.large_string()), lambda e: e.one_hot("c")),
    "string_view ids": _case(STR_IDS, pa.array(STR_IDS, pa.string_view()), lambda e: e.one_hot("c")),
    "dictionary<int8, string> ids": _case(
        STR_IDS, pa.array(STR_IDS, pa.dictionary(pa.int8(), pa.string())), lambda e: e.one_hot("c")
    ),
    "dictionary<int32, large_string> ids": _case(
        STR_IDS, pa.array(STR_IDS, pa.dictionary(pa.int32(), pa.large_string())), lambda e: e.one_hot("c")
    ),
    "dictionary<uint16, int64> ids": _case(
        INT_IDS,
        pa.array(INT_IDS).dictionary_encode().cast(pa.dictionary(pa.uint16(), pa.int64())),
        lambda e: e.one_hot("c"),
    ),
    "unicode ids": _case(
        [["é", "z", "ä", "Z", "日本", "a b"][i % 6] for i in range(N)],
        pa.array([["é", "z", "ä", "Z", "日本", "a b"][i % 6] for i in range(N)]),
        lambda e: e.one_hot("c"),
    ),
    "list<int64> multi-hot": _case(
        GENRES,
        pa.array([[int(g) for g in r] for r in GENRES], pa.list_(pa.int64())),
        lambda e: e.multi_hot("c"),
    ),
    "list<int16> normalized": _case(
        GENRES,
        pa.array([[int(g) for g in r] for r in GENRES], pa.list_(pa.int16())),
        lambda e: e.multi_hot("c", normalize=True),
    ),
    "large_list<string> implicit": _case(
        [[f"g{g}" for g in r] for r in GENRES],
        pa.array([[f"g{g}" for g in r] for r in GENRES], pa.large_list(pa.string())),
        lambda e: e.implicit("c"),
    ),
    "list<dictionary<int32, string>>": _case(
        [[f"g{g}" for g in r] for r in GENRES],
        pa.array([[f"g{g}" for g in r] for r in GENRES], pa.list_(pa.dictionary(pa.int32(), pa.string()))),
        lambda e: e.multi_hot("c"),
    ),
    "float64 numeric": _case(AGES, pa.array(AGES), lambda e: e.numeric("c")),
    "float32 numeric": _case(
        AGES.astype(np.float32), pa.array(AGES.astype(np.float32)), lambda e: e.numeric("c")
    ),
    "float16 numeric": _case(
        AGES.astype(np.float16), pa.array(AGES.astype(np.float16)), lambda e: e.numeric("c")
    ),
    "int64 numeric, unscaled": _case(INT_IDS, pa.array(INT_IDS), lambda e: e.numeric("c", scale="none")),
    "uint8 numeric": _case(
        [i + 5 for i in INT_IDS], pa.array([i + 5 for i in INT_IDS], pa.uint8()), lambda e: e.numeric("c")
    ),
    "float64 bucketed": _case(AGES, pa.array(AGES), lambda e: e.bucketed("c", [18, 30, 50.5])),
    "int32 bucketed": _case(INT_IDS, pa.array(INT_IDS, pa.int32()), lambda e: e.bucketed("c", [0, 10, 30])),
}


def _assert_same(actual: sp.csr_array, expected: sp.csr_array) -> None:
    """Bit-identical CSR arrays."""
    assert actual.shape == expected.shape
    np.testing.assert_array_equal(actual.indptr, expected.indptr)
    np.testing.assert_array_equal(actual.indices, expected.indices)
    assert actual.data.dtype == expected.data.dtype == np.float32
    np.testing.assert_array_equal(actual.data.view(np.uint32), expected.data.view(np.uint32))


def _with_id_column(array: pa.Array) -> pa.Table:
    """The column under test beside a plain integer column, so that every table has two columns."""
    return pa.table({"c": array, "row": pa.array(np.arange(len(array)))})


@pytest.mark.parametrize("column", list(COLUMNS))
@pytest.mark.parametrize("kind", list(INPUTS))
def test_every_input_type_and_column_type_equals_the_dict_path(kind: str, column: str) -> None:
    values, array, declare = COLUMNS[column]
    table = _with_id_column(array)
    make = INPUTS[kind]
    by_dict = declare(FeatureEncoder().one_hot("row")).fit({"c": values, "row": np.arange(N)})
    expected = by_dict.transform({"c": values, "row": np.arange(N)})
    by_arrow = declare(FeatureEncoder().one_hot("row")).fit(make(table))
    assert json.loads(by_arrow.to_json()) == json.loads(by_dict.to_json())
    _assert_same(by_arrow.transform(make(table)), expected)
    _assert_same(by_dict.transform(make(table)), expected)


def _mixed(n: int = N) -> pa.Table:
    """The benchmark's columns: string user, integer item, float rating, list of genres, integer age."""
    rng = np.random.default_rng(3)
    return pa.table(
        {
            "user": [f"u{i}" for i in rng.integers(0, 50, n)],
            "item": rng.integers(0, 100, n),
            "rating": rng.uniform(1, 5, n),
            "genres": [list(rng.integers(0, 20, rng.integers(1, 6))) for _ in range(n)],
            "age": rng.integers(15, 90, n),
        }
    )


def _mixed_encoder(**kwargs: Any) -> FeatureEncoder:
    return (
        FeatureEncoder(**kwargs)
        .one_hot("user")
        .one_hot("item")
        .implicit("genres")
        .numeric("age")
        .bucketed("rating", [2, 3, 4])
    )


def _as_dict(table: pa.Table) -> dict[str, Any]:
    return {name: table[name].to_pylist() for name in table.column_names}


@pytest.mark.parametrize(
    "convert",
    [pa.Table.to_pandas, pl.from_arrow, lambda t: t.to_pandas().astype({"user": "category"})],
    ids=["pandas", "polars", "pandas categorical"],
)
def test_data_frames_through_the_pycapsule_interface(convert: Callable[[pa.Table], Any]) -> None:
    table = _mixed()
    frame = convert(table)
    assert hasattr(frame, "__arrow_c_stream__")
    expected = _mixed_encoder().fit(_as_dict(table))
    fitted = _mixed_encoder().fit(frame)
    assert fitted.to_json() == expected.to_json()
    _assert_same(fitted.transform(frame), expected.transform(_as_dict(table)))


def test_numpy_columns_of_a_dict_still_take_the_dict_path() -> None:
    table = _mixed()
    columns = {name: table[name].to_numpy(zero_copy_only=False) for name in table.column_names}
    _assert_same(
        _mixed_encoder().fit(columns).transform(table), _mixed_encoder().fit(table).transform(columns)
    )


# -- nulls ---------------------------------------------------------------------------------------

NULLS: dict[str, tuple[pa.Array, Callable[[FeatureEncoder], FeatureEncoder], list[Any]]] = {
    "string id": (
        pa.array(["a", "b", None, "a", None]),
        lambda e: e.one_hot("c"),
        ["a", "b", None, "a", None],
    ),
    "int id": (pa.array([1, None, 2, 2, 1]), lambda e: e.one_hot("c"), [1, None, 2, 2, 1]),
    "dictionary id": (
        pa.array(["a", None, "b", "b", "a"]).dictionary_encode(),
        lambda e: e.one_hot("c"),
        ["a", None, "b", "b", "a"],
    ),
    "null list": (
        pa.array([[1], [2, 1], None, [], [3]]),
        lambda e: e.multi_hot("c"),
        [[1], [2, 1], None, [], [3]],
    ),
    "null in a list": (
        pa.array([[1], [2, None], [None], [], [3]]),
        lambda e: e.implicit("c"),
        [[1], [2, None], [None], [], [3]],
    ),
    "numeric": (pa.array([1.5, 2.0, None, 4.0, None]), lambda e: e.numeric("c"), [1.5, 2.0, None, 4.0, None]),
    "bucketed": (pa.array([1, None, 5, 9, 2]), lambda e: e.bucketed("c", [3, 6]), [1, None, 5, 9, 2]),
    "all null": (pa.nulls(5), lambda e: e.one_hot("c"), [None] * 5),
}


def _first_null_row(values: list[Any]) -> int:
    return next(r for r, v in enumerate(values) if v is None or (isinstance(v, list) and None in v))


@pytest.mark.parametrize("case", list(NULLS))
def test_null_is_an_error_naming_block_and_row_from_the_start_of_the_stream(case: str) -> None:
    array, declare, values = NULLS[case]
    if case == "all null":
        batches, first = [pa.record_batch({"c": array})], 0
    else:
        # The nulls sit in the last of four batches (one empty), whose first row is row 10.
        filled = [pa.record_batch({"c": pa.array([array[0].as_py()] * n, array.type)}) for n in (6, 0, 4)]
        batches, first = [*filled, pa.record_batch({"c": array})], 10 + _first_null_row(values)
    schema = batches[0].schema
    fitted = declare(FeatureEncoder()).fit({"c": values})
    with pytest.raises(
        InvalidInputError, match=rf"block 'c', row {first}: null \(pass handle_null=\"ignore\""
    ):
        fitted.transform(pa.RecordBatchReader.from_batches(schema, batches))
    if case != "bucketed":  # a bucketed block learns nothing, so its fit reads nothing
        with pytest.raises(InvalidInputError, match=rf"block 'c', row {first}: null"):
            declare(FeatureEncoder()).fit(pa.RecordBatchReader.from_batches(schema, batches))


@pytest.mark.parametrize("case", list(NULLS))
def test_ignored_nulls_have_no_entry_as_none_in_a_dict(case: str) -> None:
    array, declare, values = NULLS[case]
    by_dict = declare(FeatureEncoder()).fit({"c": values})
    by_arrow = declare(FeatureEncoder(handle_null="ignore")).fit(pa.table({"c": array}))
    assert json.loads(by_arrow.to_json())["blocks"] == json.loads(by_dict.to_json())["blocks"]
    by_dict.handle_null = "ignore"
    _assert_same(by_arrow.transform(pa.table({"c": array})), by_dict.transform({"c": values}))
    _assert_same(by_dict.transform(pa.table({"c": array})), by_dict.transform({"c": values}))


def test_handle_null_is_checked_and_saved() -> None:
    with pytest.raises(InvalidInputError, match="handle_null must be 'error' or 'ignore'"):
        FeatureEncoder(handle_null="skip")
    encoder = FeatureEncoder(handle_null="ignore").one_hot("c").fit(pa.table({"c": ["a", None]}))
    loaded = FeatureEncoder.from_json(encoder.to_json())
    assert loaded.handle_null == "ignore"
    _assert_same(
        loaded.transform(pa.table({"c": [None, "a"]})), encoder.transform(pa.table({"c": [None, "a"]}))
    )
    state = json.loads(encoder.to_json())
    del state["handle_null"]  # a document written before Arrow input existed
    assert FeatureEncoder.from_json(json.dumps(state)).handle_null == "error"


# -- empty and chunked streams -------------------------------------------------------------------


def test_empty_batches_zero_rows_and_a_reader_without_batches() -> None:
    table = _mixed(40)
    encoder = _mixed_encoder().fit(table)
    expected = encoder.transform(_as_dict(table))
    empty = table.slice(0, 0)
    batches = [empty.to_batches(max_chunksize=1)[0] if empty.to_batches() else None]
    zero_batch = pa.RecordBatch.from_pylist([], schema=table.schema)
    with_empties = [
        zero_batch,
        *table.to_batches(max_chunksize=7)[:3],
        zero_batch,
        *table.to_batches(max_chunksize=7)[3:],
    ]
    _assert_same(encoder.transform(pa.RecordBatchReader.from_batches(table.schema, with_empties)), expected)
    assert batches  # the slice keeps the schema
    for nothing in (empty, zero_batch, pa.RecordBatchReader.from_batches(table.schema, [])):
        X = encoder.transform(nothing)
        assert X.shape == (0, encoder.n_features) and X.nnz == 0
        indptr, indices, data, labels = encoder.transform_arrays(nothing, label="rating")
        assert (
            indptr.tolist() == [0]
            and indices.size == data.size == 0
            and labels is not None
            and labels.size == 0
        )
    # Fitting on no rows learns empty vocabularies, as on an empty dict.
    assert (
        _mixed_encoder().fit(empty).to_json()
        == _mixed_encoder().fit({k: [] for k in table.column_names}).to_json()
    )
    assert _mixed_encoder().fit(pa.RecordBatchReader.from_batches(table.schema, [])).n_features == 5


def test_columns_chunked_differently() -> None:
    table = _mixed(100)
    columns = {
        "user": pa.chunked_array(
            [table["user"].slice(0, 3), table["user"].slice(3, 90), table["user"].slice(93)]
        ),
        "item": pa.chunked_array([table["item"].slice(0, 50), table["item"].slice(50)]),
        "rating": table["rating"],
        "genres": pa.chunked_array([table["genres"].slice(i, 10) for i in range(0, 100, 10)]),
        "age": pa.chunked_array([table["age"].slice(0, 1), table["age"].slice(1, 0), table["age"].slice(1)]),
    }
    rechunked = pa.table(columns)
    assert rechunked["user"].num_chunks == 3 and rechunked["genres"].num_chunks == 10
    by_dict = _mixed_encoder().fit(_as_dict(table))
    _assert_same(_mixed_encoder().fit(rechunked).transform(rechunked), by_dict.transform(_as_dict(table)))


def test_sliced_list_arrays_read_their_own_offsets() -> None:
    genres = pa.array([[1, 2], [3], [4, 5, 6], [7], [8, 9]]).slice(1, 3)
    encoder = FeatureEncoder().multi_hot("g").fit({"g": [[1, 2, 3, 4, 5, 6, 7, 8, 9]]})
    _assert_same(encoder.transform(pa.table({"g": genres})), encoder.transform({"g": [[3], [4, 5, 6], [7]]}))


def test_fit_streams_a_reader_and_learns_what_the_whole_table_gives() -> None:
    table = _mixed(500)
    reader = pa.RecordBatchReader.from_batches(table.schema, table.to_batches(max_chunksize=17))
    assert _mixed_encoder().fit(reader).to_json() == _mixed_encoder().fit(table).to_json()


def test_fit_transform_and_json_round_trips_across_input_kinds() -> None:
    table = _mixed()
    by_arrow = _mixed_encoder()
    X = by_arrow.fit_transform(table)
    reader = pa.RecordBatchReader.from_batches(table.schema, table.to_batches())
    with pytest.raises(InvalidInputError, match="fit_transform reads its data twice"):
        _mixed_encoder().fit_transform(reader)
    reloaded = FeatureEncoder.from_json(by_arrow.to_json())
    _assert_same(reloaded.transform(_as_dict(table)), X)
    _assert_same(reloaded.transform(table), X)


def test_string_vocabularies_of_any_width_and_script_reach_the_rust_lookup() -> None:
    # The vocabulary goes to Rust as the unicode array's code points: ids of every width (an
    # empty one, beyond the basic plane), a byte-swapped array, and strings that are not ids.
    ids = ["", "a", "é", "日本語", "🙂x", "u" * 40]
    encoder = FeatureEncoder(handle_unknown="ignore").one_hot("id").fit({"id": np.asarray(ids)})
    rows = [*ids[::-1], "b", "日本", "🙂"]
    expected = encoder.transform({"id": np.asarray(rows, dtype=object)})
    assert expected.nnz == len(ids)
    _assert_same(encoder.transform(pa.table({"id": rows})), expected)
    swapped = encoder._blocks[0].vocabulary
    assert swapped is not None
    encoder._blocks[0].vocabulary = swapped.astype(swapped.dtype.newbyteorder())
    encoder._arrow = None
    _assert_same(encoder.transform(pa.table({"id": pa.array(rows, pa.large_string())})), expected)


# -- the per-batch entry point -------------------------------------------------------------------


def test_transform_arrays_gives_the_csr_arrays_and_float32_labels() -> None:
    table = _mixed()
    encoder = _mixed_encoder().fit(table)
    X = encoder.transform(table)
    for data in (table, _as_dict(table)):
        indptr, indices, values, labels = encoder.transform_arrays(data, label="rating")
        assert indptr.dtype == indices.dtype == np.int64 and values.dtype == labels.dtype == np.float32
        np.testing.assert_array_equal(indptr, X.indptr)
        np.testing.assert_array_equal(indices, X.indices)
        np.testing.assert_array_equal(values, X.data)
        np.testing.assert_array_equal(labels, table["rating"].to_numpy().astype(np.float32))
    assert encoder.transform_arrays(table)[3] is None
    unlabelled = table.set_column(2, "rating", pa.array([1.0, 2.0, None] + [3.0] * (N - 3)))
    encoder.handle_null = "ignore"  # for the block; the label is still needed
    with pytest.raises(InvalidInputError, match="label column 'rating', row 2: null"):
        encoder.transform_arrays(unlabelled, "rating")
    with pytest.raises(InvalidInputError, match="label column 'rating', row 2: value nan is not finite"):
        encoder.transform_arrays(_as_dict(unlabelled), "rating")
    with pytest.raises(InvalidInputError, match="label column 'nope' missing"):
        encoder.transform_arrays(table, "nope")
    with pytest.raises(InvalidInputError, match=r"label column 'user'.*cannot be labels"):
        encoder.transform_arrays(table, "user")


# -- errors --------------------------------------------------------------------------------------


def test_unknown_ids_name_the_row_from_the_start_of_the_stream() -> None:
    encoder = FeatureEncoder().one_hot("u").implicit("g").fit({"u": ["a", "b"], "g": [[1], [2]]})
    batches = [
        pa.record_batch({"u": ["a", "b"], "g": [[1], [2]]}),
        pa.record_batch({"u": ["a", "zz"], "g": [[1], [2]]}),
    ]
    reader = pa.RecordBatchReader.from_batches(batches[0].schema, batches)
    with pytest.raises(InvalidInputError, match="block 'u', row 3: unknown value 'zz'"):
        encoder.transform(reader)
    with pytest.raises(InvalidInputError, match="block 'u', row 1: unknown value 'zz'"):
        encoder.transform({"u": ["a", "zz"], "g": [[1], [2]]})
    bad_list = pa.table({"u": ["a", "a", "b"], "g": [[1, 2], [2, 1, 7], [1]]})
    with pytest.raises(InvalidInputError, match="block 'g', row 1: unknown value 7"):
        encoder.transform(bad_list)
    encoder.handle_unknown = "ignore"
    _assert_same(encoder.transform(bad_list), encoder.transform(_as_dict(bad_list)))


def test_unreferenced_dictionary_values_are_neither_learned_nor_unknown() -> None:
    values = pa.array(["a", "b", "c"])
    column = pa.DictionaryArray.from_arrays(pa.array([0, 2, 0], pa.int8()), values)
    encoder = FeatureEncoder().one_hot("c").fit(pa.table({"c": column}))
    assert encoder.feature_names() == ["c=a", "c=c"]
    _assert_same(encoder.transform(pa.table({"c": column})), encoder.transform({"c": ["a", "c", "a"]}))


@pytest.mark.parametrize(
    ("declare", "column", "message"),
    [
        (
            lambda e: e.one_hot("c"),
            pa.array([{"x": 1}]),
            r"block 'c': an Arrow column of type Struct.* cannot be ids",
        ),
        (
            lambda e: e.one_hot("c"),
            pa.array([1.5]),
            "block 'c': an Arrow column of type Float64 cannot be ids",
        ),
        (
            lambda e: e.multi_hot("c"),
            pa.array([1]),
            "block 'c': an Arrow column of type Int64 cannot be lists of ids",
        ),
        (
            lambda e: e.numeric("c"),
            pa.array(["1"]),
            "block 'c': an Arrow column of type Utf8 cannot be numbers",
        ),
        (
            lambda e: e.bucketed("c", [1]),
            pa.array([[1]]),
            r"block 'c': an Arrow column of type List.* cannot be numbers",
        ),
    ],
)
def test_a_column_of_the_wrong_type_names_the_column_and_its_type(
    declare: Any, column: pa.Array, message: str
) -> None:
    with pytest.raises(InvalidInputError, match=message):
        declare(FeatureEncoder()).fit(pa.table({"c": column}))
    fitted = declare(FeatureEncoder()).fit({"c": [[1]] if "lists" in message else [1]})
    with pytest.raises(InvalidInputError, match=message.replace("ids", "(ids|looked up)")):
        fitted.transform(pa.table({"c": column}))


def test_ids_of_a_type_the_vocabulary_does_not_hold() -> None:
    ints = FeatureEncoder(handle_unknown="ignore").one_hot("c").fit({"c": [1, 2]})
    with pytest.raises(
        InvalidInputError,
        match=r"block 'c': an Arrow column of type Utf8 \(strings\) cannot be looked up in a vocabulary of integers",
    ):
        ints.transform(pa.table({"c": ["1"]}))
    strings = FeatureEncoder().implicit("c").fit({"c": [["a"]]})
    with pytest.raises(
        InvalidInputError, match="UInt8 \\(integers\\) cannot be looked up in a vocabulary of strings"
    ):
        strings.transform(pa.table({"c": pa.array([[1]], pa.list_(pa.uint8()))}))
    floats = FeatureEncoder().one_hot("c").fit({"c": [1.5, 2.5]})
    with pytest.raises(
        InvalidInputError, match="block 'c': a vocabulary of float64 ids cannot encode Arrow data"
    ):
        floats.transform(pa.table({"c": [1]}))
    # An empty vocabulary holds ids of any type: all are unknown.
    empty = FeatureEncoder(handle_unknown="ignore").one_hot("c").fit({"c": []})
    assert empty.transform(pa.table({"c": ["a", "b"]})).shape == (2, 0)


def test_uint64_ids_beyond_int64() -> None:
    big = pa.table({"c": pa.array([1, 2**63 + 5], pa.uint64())})
    with pytest.raises(
        InvalidInputError, match=r"block 'c', row 1: id 9223372036854775813 is outside the int64 range"
    ):
        FeatureEncoder().one_hot("c").fit(big)
    encoder = FeatureEncoder().one_hot("c").fit({"c": [1]})
    with pytest.raises(InvalidInputError, match=r"block 'c', row 1: unknown value 9223372036854775813"):
        encoder.transform(big)


def test_missing_columns_and_infinite_values() -> None:
    encoder = _mixed_encoder().fit(_mixed())
    with pytest.raises(InvalidInputError, match="block 'age': column missing from the input"):
        encoder.transform(_mixed().drop_columns(["age"]))
    with pytest.raises(InvalidInputError, match="block 'age': column missing from the input"):
        _mixed_encoder().fit(pa.RecordBatchReader.from_batches(_mixed().drop_columns(["age"]).schema, []))
    infinite = _mixed(5).set_column(4, "age", pa.array([1.0, 2.0, float("inf"), 1.0, 1.0]))
    with pytest.raises(InvalidInputError, match="block 'age', row 2: value inf is not finite"):
        encoder.transform(infinite)
    with pytest.raises(InvalidInputError, match="block 'age', row 2: value inf is not finite"):
        _mixed_encoder().fit(infinite)


def test_a_failed_fit_leaves_the_encoder_as_it_was() -> None:
    encoder = _mixed_encoder().fit(_mixed())
    before = encoder.to_json()
    X = encoder.transform(_mixed())
    with pytest.raises(InvalidInputError, match="block 'user', row 1: null"):
        encoder.fit(_mixed(5).set_column(0, "user", pa.array(["a", None, "b", "c", "d"])))
    assert encoder.to_json() == before
    _assert_same(encoder.transform(_mixed()), X)


class _IntArray:
    """A plain (not struct) Arrow array through the array PyCapsule interface."""

    def __arrow_c_array__(self, requested_schema: object = None) -> object:
        return pa.array([1, 2]).__arrow_c_array__(requested_schema)


def test_data_that_is_not_a_table() -> None:
    encoder = _mixed_encoder().fit(_mixed())
    with pytest.raises(InvalidInputError, match=r"expected a table .* got an Arrow array of type Int64"):
        encoder.transform(_IntArray())
    with pytest.raises(InvalidInputError, match="expected a table"):
        _mixed_encoder().fit(_IntArray())


def test_a_parquet_dataset_is_fitted_batch_by_batch(tmp_path: Any) -> None:
    import pyarrow.dataset as ds
    import pyarrow.parquet as pq

    table = _mixed(400)
    pq.write_table(table.slice(0, 150), tmp_path / "a.parquet", row_group_size=40)
    pq.write_table(table.slice(150), tmp_path / "b.parquet", row_group_size=64)
    reader = ds.dataset(tmp_path).scanner(batch_size=33).to_reader()
    fitted = _mixed_encoder().fit(reader)
    assert fitted.to_json() == _mixed_encoder().fit(table).to_json()
    batches = pq.ParquetFile(tmp_path / "b.parquet").iter_batches(batch_size=50)
    X = sp.vstack([fitted.transform(batch) for batch in batches], format="csr")
    _assert_same(sp.csr_array(X), fitted.transform(_as_dict(table.slice(150))))
