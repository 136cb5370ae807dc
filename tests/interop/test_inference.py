"""SageMaker FM inference wire formats: documented examples, SDK records, round trips, errors."""

from __future__ import annotations

import io
import json
import struct

import fmfast
import numpy as np
import pytest
import scipy.sparse as sp
from fmfast.interop.inference import negotiate_accept, normalize_content_type
from hypothesis import given, settings
from hypothesis import strategies as st
from sagemaker.amazon.common import read_records, write_numpy_to_dense_tensor
from sagemaker.amazon.record_pb2 import Record
from sagemaker.serializer_utils import _write_recordio

JSON, JSONL, RECORDIO = "application/json", "application/jsonlines", "application/x-recordio-protobuf"

# The request examples of the SageMaker documentation ("Common data formats for inference").
DENSE_JSON = b'{"instances": [{"features": [1.5, 16.0, 14.0, 23.0]}]}'
DENSE_DATA_JSON = b'{"instances": [{"data": {"features": {"values": [1.5, 16.0, 14.0, 23.0]}}}]}'
SPARSE_JSON = (
    b'{"instances": [{"data": {"features": {"keys": [26, 182, 232, 243, 431], '
    b'"shape": [2000], "values": [1, 1, 1, 4, 1]}}}]}'
)
DENSE_JSONL = b'{"features": [1.5, 16.0, 14.0, 23.0]}\n{"features": [0.0, 1.0, 2.0, 3.0]}\n'


def test_documented_dense_json():
    for body in (DENSE_JSON, DENSE_DATA_JSON):
        X = fmfast.parse_request(body, JSON, 4)
        assert isinstance(X, sp.csr_array) and X.dtype == np.float32
        np.testing.assert_array_equal(X.toarray(), [[1.5, 16.0, 14.0, 23.0]])
    assert fmfast.serialize_request(np.array([[1.5, 16.0, 14.0, 23.0]], np.float32), JSON) == DENSE_JSON


def test_documented_sparse_json():
    X = fmfast.parse_request(SPARSE_JSON, JSON, 2000)
    assert X.shape == (1, 2000)
    np.testing.assert_array_equal(X.indices, [26, 182, 232, 243, 431])
    np.testing.assert_array_equal(X.data, [1, 1, 1, 4, 1])
    again = fmfast.serialize_request(X, JSON)
    assert json.loads(again) == json.loads(SPARSE_JSON)
    assert again == SPARSE_JSON.replace(b"1, 1, 1, 4, 1", b"1.0, 1.0, 1.0, 4.0, 1.0")


def test_documented_jsonlines():
    X = fmfast.parse_request(DENSE_JSONL, JSONL, 4)
    np.testing.assert_array_equal(X.toarray(), [[1.5, 16, 14, 23], [0, 1, 2, 3]])
    assert fmfast.serialize_request(X.toarray(), JSONL) == DENSE_JSONL
    sparse = fmfast.serialize_request(X, JSONL)
    assert len(sparse.splitlines()) == 2
    assert (fmfast.parse_request(sparse, JSONL, 4) != X).nnz == 0


def test_content_type_parameters_and_aliases():
    X = fmfast.parse_request(DENSE_JSON, "Application/JSON; charset=utf-8", 4)
    assert X.shape == (1, 4)
    assert normalize_content_type("application/x-jsonlines") == JSONL
    assert normalize_content_type("*/*", default=JSON) == JSON


@pytest.mark.parametrize(
    ("accept", "chosen"),
    [
        (None, JSON),
        ("", JSON),
        (" , ", JSON),
        ("*/*", JSON),
        ("application/*", JSON),
        ("application/jsonlines", JSONL),
        ("Application/X-JSONLines; charset=utf-8", JSONL),
        ("application/x-recordio", RECORDIO),
        ("application/json;q=0.1, application/jsonlines", JSONL),
        ("application/json; q=0.5, application/x-recordio-protobuf; q=0.8, */*; q=0.9", JSONL),
        ("application/jsonlines, application/json", JSONL),  # equal weights: the one listed first
        ("application/json, application/jsonlines", JSON),
        ("text/html, */*;q=0.1", JSON),
        ("*/*;q=0.5, application/json;q=0", JSONL),  # the specific range excludes JSON
        ("application/*;q=0.2, application/jsonlines;q=0", JSON),
        ("application/json;q=abc, application/jsonlines;q=0.3", JSONL),  # a malformed weight is ignored
        ("application/json;q=1.5, application/x-recordio-protobuf", RECORDIO),  # so is one above 1
    ],
)
def test_negotiate_accept_follows_the_weights(accept, chosen):
    assert negotiate_accept(accept) == chosen


@pytest.mark.parametrize(
    "accept",
    ["text/html", "application/json;q=0", "*/*;q=0", "application/*;q=0, text/*", "application/json;q=x"],
)
def test_negotiate_accept_refuses_when_nothing_is_acceptable(accept):
    with pytest.raises(fmfast.UnsupportedContentTypeError, match="admits none of the response types"):
        negotiate_accept(accept)


@pytest.mark.parametrize("content_type", ["text/csv", "application/x-npy", "", "application/protobuf"])
def test_unsupported_content_types(content_type):
    with pytest.raises(fmfast.UnsupportedContentTypeError, match="not supported"):
        fmfast.parse_request(DENSE_JSON, content_type, 4)
    with pytest.raises(fmfast.UnsupportedContentTypeError):
        fmfast.serialize_request(np.zeros((1, 4)), content_type)
    if content_type:
        with pytest.raises(fmfast.UnsupportedContentTypeError):
            fmfast.serialize_response([0.5], "regressor", content_type)
        with pytest.raises(fmfast.UnsupportedContentTypeError):
            fmfast.parse_response(b"", content_type)
    assert issubclass(fmfast.UnsupportedContentTypeError, fmfast.FmFastError)
    assert not issubclass(fmfast.UnsupportedContentTypeError, fmfast.InvalidInputError)


@pytest.mark.parametrize(
    ("body", "content_type", "message"),
    [
        (
            b'{"instances": [{"features": [1, 2, 3]}]}',
            JSON,
            "instance 0 has 3 dense features, the model expects 4",
        ),
        (
            b'{"instances": [{"features": [1, 2, 3, 4]}, {"data": {"features": {"keys": [4], "values": [1]}}}]}',
            JSON,
            "instance 1 has key 4, outside the model's 4 features",
        ),
        (
            b'{"instances": [{"data": {"features": {"keys": [-1], "values": [1]}}}]}',
            JSON,
            "instance 0 has key -1",
        ),
        (
            b'{"instances": [{"data": {"features": {"keys": [1], "shape": [5], "values": [1]}}}]}',
            JSON,
            r"instance 0 has shape \[5\], the model expects \[4\]",
        ),
        (
            b'{"instances": [{"data": {"features": {"keys": [1, 2], "values": [1]}}}]}',
            JSON,
            "instance 0 has 2 keys but 1 values",
        ),
        (
            b'{"instances": [{"features": [1, 2, 3, 4]}, {"features": [1, "a", 3, 4]}]}',
            JSON,
            "instance 1: value 'a' is not a number",
        ),
        (
            b'{"instances": [{"features": [1, 2, 3, 4]}, {"features": [1, null, 3, 4]}]}',
            JSON,
            "instance 1: value None is not a number",
        ),
        (
            b'{"instances": [{"data": {"features": {"keys": [1.5], "values": [1]}}}]}',
            JSON,
            "instance 0: key 1.5 is not an integer",
        ),
        (
            b'{"instances": [{"data": {"features": {"keys": [1, 1], "values": [1, 2]}}}]}',
            JSON,
            "instance 0 repeats a key",
        ),
        (b'{"instances": [{"features": [1, true, 3, 4]}]}', JSON, "instance 0: value True is not a number"),
        (
            b'{"instances": [{"data": {"features": {"keys": [false], "values": [1]}}}]}',
            JSON,
            "instance 0: key False is not an integer",
        ),
        (
            b'{"instances": [{"data": {"features": {"keys": [1e30], "values": [1]}}}]}',
            JSON,
            "instance 0: key 1e[+]30 is not an integer",
        ),
        (
            b'{"instances": [{"data": {"features": {"keys": ['
            + str(2**64).encode()
            + b'], "values": [1]}}}]}',
            JSON,
            f"instance 0: key {2**64} is not an integer",
        ),
        (
            b'{"instances": [{"data": {"features": {"keys": [-1, '
            + str(2**63).encode()
            + b'], "values": [1, 2]}}}]}',
            JSON,
            f"instance 0: key {2**63} is not an integer",  # neither int64 nor uint64 holds both keys
        ),
        (b'{"instances": [{"features": [1, 2, 3, NaN]}]}', JSON, "instance 0 feature 3 has value nan"),
        (b'{"instances": [{"features": [1, 2, 3, 4e38]}]}', JSON, "instance 0 feature 3 has value 4e[+]38"),
        (
            b'{"instances": [{"features": [1, 2, 3, 4]}, {"features": ['
            + str(10**400).encode()
            + b", 1, 2, 3]}]}",
            JSON,
            "instance 1 feature 0 has value inf",
        ),
        (b'{"instances": [{"other": 1}]}', JSON, 'instance 0 has neither "features" nor "data"'),
        (b'{"instances": [[1, 2, 3, 4]]}', JSON, "instance 0 is not an object"),
        (b'{"instances": [{"data": {"features": 3}}]}', JSON, "instance 0 has no data.features.values"),
        (b'{"rows": []}', JSON, 'an "instances" list'),
        (b"[1, 2]", JSON, 'an "instances" list'),
        (b'{"instances": [', JSON, "not valid JSON"),
        (b"\xff\xfe", JSON, "not UTF-8"),
        (b'{"features": [1, 2, 3, 4]}\n{"features": [1, 2, 3, 4]\n', JSONL, "line 2 is not valid JSON"),
        (b'{"features": [1, 2, 3, 4]}\n{"features": [1, 2]}\n', JSONL, "instance 1 has 2 dense features"),
        (b"\x00\x01\x02\x03garbage!", RECORDIO, "not valid RecordIO-protobuf"),
    ],
    ids=lambda value: value if isinstance(value, str) and len(value) < 40 else None,
)
def test_malformed_requests(body, content_type, message):
    with pytest.raises(fmfast.InvalidInputError, match=message):
        fmfast.parse_request(body, content_type, 4)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=3),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(["features", "data", "keys", "values", "shape"]), children, max_size=3
        )
    ),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(instances=st.lists(JSON_VALUES, max_size=4), content_type=st.sampled_from([JSON, JSONL]))
def test_any_json_request_is_decoded_or_refused_with_an_invalid_input_error(instances, content_type):
    if content_type == JSON:
        body = json.dumps({"instances": instances})
    else:
        body = "".join(json.dumps(instance) + "\n" for instance in instances)
    try:
        X = fmfast.parse_request(body, content_type, 3)
    except fmfast.InvalidInputError:
        return
    assert X.shape == (len(instances), 3) and np.isfinite(X.data).all()


@settings(max_examples=300, deadline=None)
@given(
    sparse=st.booleans(),
    edits=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), min_size=1, max_size=4),
    cut=st.integers(0, 10**6),
)
def test_any_corrupted_recordio_request_is_decoded_or_refused_with_an_invalid_input_error(sparse, edits, cut):
    X = np.arange(12, dtype=np.float32).reshape(3, 4) - 5
    body = bytearray(fmfast.serialize_request(sp.csr_array(X) if sparse else X, RECORDIO))
    for at, byte in edits:
        body[at % len(body)] = byte
    try:
        parsed = fmfast.parse_request(bytes(body[: cut % (len(body) + 1)]), RECORDIO, 4)
    except fmfast.InvalidInputError:
        return
    assert parsed.shape[1] == 4 and np.isfinite(parsed.data).all()


def test_an_integer_beyond_int64_is_a_value_when_float32_holds_it():
    X = fmfast.parse_request(
        b'{"instances": [{"features": [1, 2, 3, ' + str(2**80).encode() + b"]}]}", JSON, 4
    )
    assert X.toarray().tolist() == [[1, 2, 3, np.float32(2**80)]]


def test_empty_requests():
    assert fmfast.parse_request(b'{"instances": []}', JSON, 7).shape == (0, 7)
    assert fmfast.parse_request(b"\n\n", JSONL, 7).shape == (0, 7)
    assert fmfast.parse_request(b"", RECORDIO, 7).shape == (0, 7)


def test_unsorted_keys_are_sorted():
    body = b'{"instances": [{"data": {"features": {"keys": [3, 0], "values": [2, 5]}}}]}'
    X = fmfast.parse_request(body, JSON, 4)
    np.testing.assert_array_equal(X.toarray(), [[5, 0, 0, 2]])


def test_recordio_request_from_the_sdk():
    dense = np.array([[1.5, 0, 14, 23], [0, 1, 0, 0]], dtype=np.float32)
    buffer = io.BytesIO()
    write_numpy_to_dense_tensor(buffer, dense)  # what the SDK's RecordSerializer sends
    X = fmfast.parse_request(buffer.getvalue(), RECORDIO, 4)
    np.testing.assert_array_equal(X.toarray(), dense)
    with pytest.raises(fmfast.InvalidInputError, match="feature dimension 4, the model expects 5"):
        fmfast.parse_request(buffer.getvalue(), RECORDIO, 5)
    sparse = fmfast.serialize_request(sp.csr_array(dense), RECORDIO)
    records = read_records(io.BytesIO(sparse))
    assert list(records[1].features["values"].float32_tensor.keys) == [1]
    np.testing.assert_array_equal(fmfast.parse_request(sparse, RECORDIO, 4).toarray(), dense)
    with pytest.raises(
        fmfast.InvalidInputError, match="instance 0 has key 1, outside the model's 1 features"
    ):
        fmfast.parse_request(
            fmfast.serialize_request(sp.csr_array(dense[:, [0, 0, 0, 1]]), RECORDIO), RECORDIO, 1
        )


@settings(max_examples=60, deadline=None)
@given(
    n_rows=st.integers(0, 12),
    n_cols=st.integers(1, 9),
    density=st.floats(0, 1),
    seed=st.integers(0, 2**16),
    content_type=st.sampled_from([JSON, JSONL, RECORDIO]),
    as_sparse=st.booleans(),
)
def test_request_round_trip(n_rows, n_cols, density, seed, content_type, as_sparse):
    rng = np.random.default_rng(seed)
    X = sp.random(n_rows, n_cols, density=density, format="csr", random_state=rng, dtype=np.float32)
    X.data = (X.data * 200 - 100).astype(np.float32)
    body = fmfast.serialize_request(X if as_sparse else X.toarray(), content_type)
    parsed = fmfast.parse_request(body, content_type, n_cols)
    assert parsed.shape == (n_rows, n_cols) and parsed.dtype == np.float32
    np.testing.assert_array_equal(parsed.toarray(), X.toarray())


# ---------------------------------------------------------------------------------------------
# Responses


def test_documented_json_responses():
    assert fmfast.parse_response(b'{"predictions": [{"score": 0.4, "predicted_label": 0}]}', JSON) == {
        "predictions": [{"score": 0.4, "predicted_label": 0}]
    }
    body = fmfast.serialize_response(np.array([0.25, 0.5, 0.75], np.float32), "binary_classifier", JSON)
    assert body == (
        b'{"predictions": [{"score": 0.25, "predicted_label": 0.0}, '
        b'{"score": 0.5, "predicted_label": 1.0}, {"score": 0.75, "predicted_label": 1.0}]}'
    )
    assert fmfast.serialize_response([0.25], "regressor", JSON) == b'{"predictions": [{"score": 0.25}]}'
    assert fmfast.serialize_response([0.25], "regressor", None) == b'{"predictions": [{"score": 0.25}]}'
    assert fmfast.serialize_response([0.25], "regressor", "*/*") == b'{"predictions": [{"score": 0.25}]}'


def test_documented_jsonlines_responses():
    body = fmfast.serialize_response([0.25, 0.75], "binary_classifier", JSONL)
    assert body == b'{"score": 0.25, "predicted_label": 0.0}\n{"score": 0.75, "predicted_label": 1.0}\n'
    assert fmfast.serialize_response([0.5], "regressor", JSONL) == b'{"score": 0.5}\n'
    assert fmfast.parse_response(b'{"score": 0.4, "predicted_label": 0}\n', JSONL) == {
        "predictions": [{"score": 0.4, "predicted_label": 0}]
    }


def sdk_response(scores, classifier: bool) -> bytes:
    buffer = io.BytesIO()
    for score in scores:
        record = Record()
        record.label["score"].float32_tensor.values.extend([score])
        if classifier:
            record.label["predicted_label"].float32_tensor.values.extend([1.0 if score >= 0.5 else 0.0])
        _write_recordio(buffer, record.SerializeToString())
    return buffer.getvalue()


@pytest.mark.parametrize("ptype", ["binary_classifier", "regressor"])
def test_recordio_response_matches_sdk_records(ptype):
    scores = np.array([0.4, 0.5, 0.9, -3.25, 0.0], dtype=np.float32)
    classifier = ptype == "binary_classifier"
    ours = fmfast.serialize_response(scores, ptype, RECORDIO)
    theirs = sdk_response(scores, classifier)
    records = read_records(io.BytesIO(ours))
    assert len(records) == len(scores)
    for record, score, expected in zip(records, scores, read_records(io.BytesIO(theirs)), strict=True):
        assert record == expected
        assert len(record.features) == 0
        assert list(record.label["score"].float32_tensor.values) == [score]
        if classifier:
            assert list(record.label["predicted_label"].float32_tensor.values) == [float(score >= 0.5)]
        else:
            assert "predicted_label" not in record.label
    if classifier:
        # The documented example: one record, score 0.4, predicted_label 0.0.
        assert fmfast.parse_response(sdk_response([0.4], True), RECORDIO) == {
            "predictions": [{"score": float(np.float32(0.4)), "predicted_label": 0.0}]
        }
    assert fmfast.parse_response(theirs, RECORDIO) == fmfast.parse_response(ours, RECORDIO)


@settings(max_examples=60, deadline=None)
@given(
    scores=st.lists(st.floats(-1e6, 1e6, width=32), max_size=20),
    ptype=st.sampled_from(["binary_classifier", "regressor"]),
    accept=st.sampled_from([JSON, JSONL, RECORDIO]),
)
def test_response_round_trip(scores, ptype, accept):
    body = fmfast.serialize_response(np.array(scores, dtype=np.float32), ptype, accept)
    predictions = fmfast.parse_response(body, accept)["predictions"]
    assert [p["score"] for p in predictions] == [float(np.float32(s)) for s in scores]
    if ptype == "binary_classifier":
        assert [p["predicted_label"] for p in predictions] == [1.0 if s >= 0.5 else 0.0 for s in scores]
    else:
        assert all(set(p) == {"score"} for p in predictions)
    if accept != RECORDIO:
        assert predictions == (
            json.loads(body)["predictions"]
            if accept == JSON
            else [json.loads(line) for line in body.splitlines()]
        )


def test_non_finite_scores_still_serialize():
    body = fmfast.serialize_response([np.nan, np.inf], "regressor", JSON)
    assert body == b'{"predictions": [{"score": NaN}, {"score": Infinity}]}'


def test_response_errors():
    with pytest.raises(fmfast.InvalidInputError, match="predictor_type"):
        fmfast.serialize_response([0.5], "multiclass_classifier", JSON)
    with pytest.raises(fmfast.InvalidInputError, match="vector"):
        fmfast.serialize_response(np.zeros((2, 2)), "regressor", JSON)
    with pytest.raises(fmfast.InvalidInputError, match="not valid JSON"):
        fmfast.parse_response(b"{", JSON)
    with pytest.raises(fmfast.InvalidInputError, match='"predictions" list'):
        fmfast.parse_response(b"{}", JSON)
    with pytest.raises(fmfast.InvalidInputError, match="bad RecordIO magic"):
        fmfast.parse_response(b"\0" * 8, RECORDIO)
    good = sdk_response([0.5], False)
    with pytest.raises(fmfast.InvalidInputError, match="runs past the end"):
        fmfast.parse_response(good[:-4], RECORDIO)
    with pytest.raises(fmfast.InvalidInputError, match="no label score"):
        fmfast.parse_response(struct.pack("<II", 0xCED7230A, 0), RECORDIO)
    for cut in range(len(good)):
        try:
            fmfast.parse_response(good[:cut], RECORDIO)
        except fmfast.InvalidInputError:
            pass


def test_batch_of_10000_round_trips():
    rng = np.random.default_rng(5)
    X = sp.random(10_000, 50_000, density=2e-4, format="csr", random_state=rng, dtype=np.float32)
    for content_type in (JSON, JSONL, RECORDIO):
        body = fmfast.serialize_request(X, content_type)
        assert (fmfast.parse_request(body, content_type, 50_000) != X).nnz == 0
    scores = rng.random(10_000).astype(np.float32)
    for accept in (JSON, JSONL, RECORDIO):
        body = fmfast.serialize_response(scores, "binary_classifier", accept)
        parsed = fmfast.parse_response(body, accept)["predictions"]
        np.testing.assert_array_equal([p["score"] for p in parsed], scores)


def test_same_key_in_neighbouring_rows_is_not_a_repeat():
    X = fmfast.parse_request(
        b'{"instances": [{"features": [1]}, {"features": [2]}, {"features": [0]}]}', JSON, 1
    )
    np.testing.assert_array_equal(X.toarray(), [[1], [2], [0]])
