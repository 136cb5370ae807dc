"""The local endpoint, started on a free loopback port and driven by a real HTTP client."""

from __future__ import annotations

import http.client
import json
import select
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import fmfast
import httpx
import numpy as np
import pytest
import scipy.sparse as sp
import uvicorn
from fmfast.interop.serve import create_app
from samples import SAGEMAKER_ARTIFACT


@dataclass
class LinearScorer:
    """A stand-in model: score = X @ w (+ sigmoid for a classifier)."""

    w: np.ndarray
    predictor_type: str = "regressor"

    @property
    def feature_dim(self) -> int:
        return len(self.w)

    def predict(self, X):
        score = np.asarray(X @ self.w, dtype=np.float64)
        return 1 / (1 + np.exp(-score)) if self.predictor_type == "binary_classifier" else score


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serving(app):
    """Run ``app`` with uvicorn on a free loopback port in a thread; yields the port."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "server did not start"
        time.sleep(0.02)
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture(scope="module", params=["regressor", "binary_classifier"])
def endpoint(request):
    model = LinearScorer(np.arange(1, 6, dtype=np.float32) / 10, request.param)
    with serving(create_app(model, max_body_bytes=200_000)) as port:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            yield client, model


def expected_predictions(model, X):
    scores = model.predict(np.asarray(X, dtype=np.float32))
    if model.predictor_type == "binary_classifier":
        return [{"score": float(s), "predicted_label": float(s >= 0.5)} for s in scores]
    return [{"score": float(s)} for s in scores]


def assert_predictions(got, want):
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert g.keys() == w.keys()
        assert g["score"] == pytest.approx(w["score"], rel=1e-6)
        assert g.get("predicted_label") == w.get("predicted_label")


def test_ping(endpoint):
    client, _ = endpoint
    assert client.get("/ping").status_code == 200


def test_dense_and_sparse_json(endpoint):
    client, model = endpoint
    body = {
        "instances": [
            {"features": [1, 0, 0, 2, 0]},
            {"data": {"features": {"values": [0, 1, 0, 0, 3]}}},
            {"data": {"features": {"keys": [1, 4], "shape": [5], "values": [2.0, -1.0]}}},
        ]
    }
    response = client.post("/invocations", json=body, headers={"Accept": "application/json"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    X = [[1, 0, 0, 2, 0], [0, 1, 0, 0, 3], [0, 2, 0, 0, -1]]
    assert_predictions(response.json()["predictions"], expected_predictions(model, X))


def test_jsonlines_in_and_out(endpoint):
    client, model = endpoint
    lines = "\n".join(json.dumps({"features": row}) for row in ([1, 1, 1, 1, 1], [0, 0, 0, 0, 2]))
    response = client.post(
        "/invocations",
        content=lines,
        headers={"Content-Type": "application/jsonlines", "Accept": "application/jsonlines"},
    )
    assert response.status_code == 200, response.text
    got = [json.loads(line) for line in response.text.splitlines() if line]
    assert_predictions(got, expected_predictions(model, [[1, 1, 1, 1, 1], [0, 0, 0, 0, 2]]))


def test_recordio_in_and_out(endpoint):
    client, model = endpoint
    X = np.array([[0, 1, 0, 0, 0], [3, 0, 0, 0, 1]], dtype=np.float32)
    response = client.post(
        "/invocations",
        content=fmfast.encode_recordio(X),
        headers={
            "Content-Type": "application/x-recordio-protobuf",
            "Accept": "application/x-recordio-protobuf",
        },
    )
    assert response.status_code == 200, response.text
    parsed = fmfast.interop.inference.parse_response(response.content, "application/x-recordio-protobuf")
    assert_predictions(parsed["predictions"], expected_predictions(model, X))


@pytest.mark.parametrize(
    ("content", "content_type", "accept", "status", "message"),
    [
        (b"{not json", "application/json", "application/json", 400, ""),
        (b'{"instances": [{"features": [1, 2]}]}', "application/json", "application/json", 400, ""),
        (
            b'{"instances": [{"data": {"features": {"keys": [7], "shape": [5], "values": [1]}}}]}',
            "application/json",
            "application/json",
            400,
            "",
        ),
        (b"a,b", "text/csv", "application/json", 415, ""),
        (b'{"instances": [{"features": [1, 0, 0, 0, 0]}]}', "application/json", "text/html", 406, ""),
        (b" " * 300_000, "application/json", "application/json", 413, "exceeds 200000 bytes"),
    ],
)
def test_errors_are_answered_with_a_status_and_a_message(
    endpoint, content, content_type, accept, status, message
):
    client, _ = endpoint
    response = client.post(
        "/invocations", content=content, headers={"Content-Type": content_type, "Accept": accept}
    )
    assert response.status_code == status
    assert message in response.json()["error"]


def test_a_burst_of_concurrent_requests(endpoint):
    client, model = endpoint
    rng = np.random.default_rng(0)
    batches = [rng.integers(0, 3, (20, 5)).astype(float).tolist() for _ in range(40)]

    def call(rows):
        body = {"instances": [{"features": row} for row in rows]}
        return client.post("/invocations", json=body).json()["predictions"]

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(call, batches))
    for rows, got in zip(batches, results, strict=True):
        assert_predictions(got, expected_predictions(model, rows))


@contextmanager
def serve_command(model_path, *options):
    """``fmfast serve`` in a subprocess on a free port, waited for until it answers /ping; yields its URL."""
    port = free_port()
    command = [sys.executable, "-m", "fmfast.cli", "serve", str(model_path), "--port", str(port), *options]
    server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/ping", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert server.poll() is None and time.monotonic() < deadline, "fmfast serve did not come up"
            time.sleep(0.1)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_the_serve_command_serves_a_sagemaker_artifact():
    with serve_command(SAGEMAKER_ARTIFACT) as url:
        body = {"instances": [{"data": {"features": {"keys": [], "shape": [50], "values": []}}}]}
        prediction = httpx.post(f"{url}/invocations", json=body).json()["predictions"][0]
        assert prediction["score"] == pytest.approx(0.0372752, rel=1e-5)  # sigmoid(w0) for an empty row
        assert prediction["predicted_label"] == 0.0


# ---------------------------------------------------------------------------------------------
# A client's mistake is a 4xx with a JSON message, on a connection that stays open.

DEEP = "[" * 100_000 + "]" * 100_000
ROW = [1.0, 0.0, 0.0, 2.0, 0.0]
GOOD = json.dumps({"instances": [{"features": ROW}]}).encode()


def dense_recordio(values):
    return fmfast.encode_recordio(np.array([values], dtype=np.float32))


def sparse_json(keys, values, shape=(5,)):
    features = {"keys": keys, "shape": list(shape), "values": values}
    return json.dumps({"instances": [{"data": {"features": features}}]}).encode()


MISTAKES = {
    # Values that are not finite float32 numbers, in all three formats.
    "json NaN": (
        "application/json",
        b'{"instances": [{"features": [1, NaN, 0, 0, 0]}]}',
        400,
        "feature 1 has value nan",
    ),
    "json Infinity": (
        "application/json",
        b'{"instances": [{"features": [1, 0, -Infinity, 0, 0]}]}',
        400,
        "feature 2 has value -inf",
    ),
    "json beyond float32": (
        "application/json",
        b'{"instances": [{"features": [1, 0, 0, 1e39, 0]}]}',
        400,
        "feature 3 has value 1e+39",
    ),
    "json integer beyond float": (
        "application/json",
        b'{"instances": [{"features": [1, 0, 0, 0, ' + b"9" * 400 + b"]}]}",
        400,
        "feature 4 has value inf",
    ),
    "jsonlines NaN": (
        "application/jsonlines",
        b'{"features": [1, 0, 0, 0, 0]}\n{"features": [0, 0, 0, 0, NaN]}\n',
        400,
        "instance 1 feature 4 has value nan",
    ),
    "recordio NaN": (
        "application/x-recordio-protobuf",
        dense_recordio([0, np.nan, 0, 0, 0]),
        400,
        "instance 0 feature 1 has value nan",
    ),
    "recordio Infinity": (
        "application/x-recordio-protobuf",
        dense_recordio([0, 0, 0, 0, np.inf]),
        400,
        "feature 4 has value inf",
    ),
    # Wrong types and missing keys.
    "string value": (
        "application/json",
        b'{"instances": [{"features": [1, "a", 0, 0, 0]}]}',
        400,
        "value 'a' is not a number",
    ),
    "boolean value": (
        "application/json",
        b'{"instances": [{"features": [true, 0, 0, 0, 0]}]}',
        400,
        "value True is not a number",
    ),
    "nested value": (
        "application/json",
        b'{"instances": [{"features": [[1], 0, 0, 0, 0]}]}',
        400,
        "is not a number",
    ),
    "string key": ("application/json", sparse_json(["1"], [1.0]), 400, "key '1' is not an integer"),
    "huge key": ("application/json", sparse_json([2**70], [1.0]), 400, f"key {2**70} is not an integer"),
    "instances not a list": ("application/json", b'{"instances": "x"}', 400, '"instances" list'),
    "no instances": ("application/json", b'{"rows": []}', 400, '"instances" list'),
    "no features": ("application/json", b'{"instances": [{"data": {}}]}', 400, "no data.features.values"),
    "instance not an object": ("application/json", b'{"instances": [3]}', 400, "instance 0 is not an object"),
    "keys and values differ": ("application/json", sparse_json([0, 1], [1.0]), 400, "2 keys but 1 values"),
    # Nesting that would exhaust the recursion limit.
    "json nested 100k deep": ("application/json", DEEP.encode(), 400, "body is JSON nested too deeply"),
    "jsonlines nested 100k deep": (
        "application/jsonlines",
        DEEP.encode(),
        400,
        "line 1 is JSON nested too deeply",
    ),
    "features nested 100k deep": (
        "application/json",
        b'{"instances": [{"features": ' + DEEP.encode() + b"}]}",
        400,
        "nested too deeply",
    ),
    # Malformed text and RecordIO.
    "not json": ("application/json", b"{not json", 400, "body is not valid JSON"),
    "not utf-8": ("application/json", b'{"instances": ["\xff"]}', 400, "not UTF-8"),
    "recordio bad magic": (
        "application/x-recordio-protobuf",
        b"\x00" * 16,
        400,
        "not valid RecordIO-protobuf",
    ),
    "recordio truncated": (
        "application/x-recordio-protobuf",
        dense_recordio(ROW)[:-6],
        400,
        "not valid RecordIO-protobuf",
    ),
    # Features beyond feature_dim, or the wrong number of them.
    "json key beyond feature_dim": (
        "application/json",
        sparse_json([7], [1.0]),
        400,
        "key 7, outside the model's 5 features",
    ),
    "json wrong shape": (
        "application/json",
        sparse_json([1], [1.0], shape=(6,)),
        400,
        "shape [6], the model expects [5]",
    ),
    "json dense too short": (
        "application/json",
        b'{"instances": [{"features": [1, 2]}]}',
        400,
        "2 dense features, the model expects 5",
    ),
    "recordio key beyond feature_dim": (
        "application/x-recordio-protobuf",
        fmfast.encode_recordio(sp.csr_array(([1.0], ([0], [9])), shape=(1, 10)), layout="sparse"),
        400,
        "key 9, outside the model's 5 features",
    ),
    # Empty bodies.
    "empty json": ("application/json", b"", 400, "request body is empty"),
    "empty jsonlines": ("application/jsonlines", b"\n \n", 400, "request body is empty"),
    "empty recordio": ("application/x-recordio-protobuf", b"", 400, "request body is empty"),
    # Types the endpoint does not speak.
    "unsupported content type": ("text/csv", b"1,0,0,2,0", 415, "text/csv"),
}


def request(connection, method, path, body=None, headers=None):
    """One request on ``connection``: ``(status, headers, body)``."""
    connection.request(method, path, body=body, headers=headers or {})
    response = connection.getresponse()
    return response.status, dict(response.getheaders()), response.read()


@pytest.fixture(scope="module")
def regressor_port():
    with serving(create_app(LinearScorer(np.arange(1, 6, dtype=np.float32) / 10))) as port:
        yield port


def assert_good_request_on(connection, model):
    status, _, body = request(connection, "POST", "/invocations", GOOD, {"Content-Type": "application/json"})
    assert status == 200, body
    assert_predictions(json.loads(body)["predictions"], expected_predictions(model, [ROW]))


@pytest.mark.parametrize("mistake", MISTAKES, ids=list(MISTAKES))
def test_each_client_mistake_is_a_4xx_with_a_message_and_the_connection_stays_open(regressor_port, mistake):
    content_type, body, status, message = MISTAKES[mistake]
    model = LinearScorer(np.arange(1, 6, dtype=np.float32) / 10)
    connection = http.client.HTTPConnection("127.0.0.1", regressor_port, timeout=30)
    try:
        assert_good_request_on(connection, model)
        local = connection.sock.getsockname()
        got_status, headers, got_body = request(
            connection, "POST", "/invocations", body, {"Content-Type": content_type}
        )
        assert got_status == status, got_body[:500]
        assert headers["content-type"] == "application/json"
        error = json.loads(got_body)["error"]
        assert message in error
        assert "Traceback" not in error
        assert headers.get("connection", "").lower() != "close"
        assert_good_request_on(connection, model)
        assert connection.sock.getsockname() == local, "the server closed the keep-alive connection"
    finally:
        connection.close()


@pytest.mark.parametrize(
    ("method", "path", "headers", "status", "message"),
    [
        ("POST", "/invocations", {"Accept": "text/html"}, 406, "admits none of the response types"),
        ("POST", "/invocations", {"Accept": "application/json;q=0"}, 406, "admits none"),
        ("GET", "/invocations", {}, 405, "Method Not Allowed"),
        ("GET", "/nothing", {}, 404, "Not Found"),
    ],
)
def test_routing_and_accept_mistakes_answer_in_the_same_shape(
    regressor_port, method, path, headers, status, message
):
    connection = http.client.HTTPConnection("127.0.0.1", regressor_port, timeout=30)
    try:
        body = GOOD if method == "POST" else None
        got_status, _, got_body = request(
            connection, method, path, body, {"Content-Type": "application/json", **headers}
        )
        assert got_status == status
        assert message in json.loads(got_body)["error"]
        assert request(connection, "GET", "/ping")[0] == 200
    finally:
        connection.close()


def test_a_body_over_the_limit_is_a_413_and_the_next_request_succeeds(endpoint):
    client, model = endpoint
    response = client.post(
        "/invocations", content=b" " * 300_000, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 413
    assert response.json() == {"error": "request body exceeds 200000 bytes"}
    response = client.post("/invocations", content=GOOD, headers={"Content-Type": "application/json"})
    assert_predictions(response.json()["predictions"], expected_predictions(model, [ROW]))


@dataclass
class BrokenScorer(LinearScorer):
    """A model with a bug: ``predict`` raises what no client input explains."""

    def predict(self, X):
        raise RuntimeError("secret internal detail")


def test_a_server_bug_is_a_500_without_a_traceback_and_the_connection_stays_open(caplog):
    with serving(create_app(BrokenScorer(np.ones(5, dtype=np.float32)))) as port:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            assert request(connection, "GET", "/ping")[0] == 200
            local = connection.sock.getsockname()
            status, headers, body = request(
                connection, "POST", "/invocations", GOOD, {"Content-Type": "application/json"}
            )
            assert status == 500
            assert headers["content-type"] == "application/json"
            assert json.loads(body) == {"error": "internal server error; the traceback is in the server log"}
            assert request(connection, "GET", "/ping")[0] == 200
            assert connection.sock.getsockname() == local
        finally:
            connection.close()
    assert "secret internal detail" in caplog.text  # the traceback went to the log


@pytest.mark.parametrize(
    ("accept", "content_type"),
    [
        ("application/json;q=0.1, application/jsonlines", "application/jsonlines"),
        (
            "application/jsonlines;q=0.5, application/x-recordio-protobuf;q=0.9",
            "application/x-recordio-protobuf",
        ),
        ("text/html, */*;q=0.1", "application/json"),
        ("application/*;q=0.5, application/json;q=0", "application/jsonlines"),
    ],
)
def test_accept_weights_choose_the_response_type(endpoint, accept, content_type):
    client, model = endpoint
    response = client.post(
        "/invocations", content=GOOD, headers={"Content-Type": "application/json", "Accept": accept}
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].split(";")[0] == content_type
    parsed = fmfast.interop.inference.parse_response(response.content, content_type)
    assert_predictions(parsed["predictions"], expected_predictions(model, [ROW]))


def queued_bytes(local_port, remote_port):
    """``(send queue, receive queue)`` of the loopback TCP socket ``local_port -> remote_port``.

    Read from Linux's ``/proc/net/tcp``: bytes not yet acknowledged by the peer, and bytes
    received that the owning process has not read yet.
    """
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote = (int(address.split(":")[1], 16) for address in fields[1:3])
        if (local, remote) == (local_port, remote_port):
            send, receive = fields[4].split(":")
            return int(send, 16), int(receive, 16)
    raise AssertionError(f"no TCP socket {local_port} -> {remote_port}")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads the TCP queues from /proc/net/tcp")
def test_a_large_body_does_not_hold_up_ping():
    """``/ping`` is answered while a ~5 MB JSON body is being decoded.

    The body is sent, then the test waits until the server process has read all of it (the TCP
    queues are empty) before it pings on a second connection: the ping must come back while the
    big request is still unanswered. The server is a separate process, so that the test's threads
    do not compete with it for the interpreter, and the body's last instance is malformed, so
    that the whole body is decoded and then refused without scoring.
    """
    rng = np.random.default_rng(0)
    instances = [{"features": row} for row in rng.random((5_500, 50)).tolist()] + [{"features": [1.0]}]
    body = json.dumps({"instances": instances}).encode()
    assert 4_500_000 < len(body) < 6_000_000
    head = f"POST /invocations HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    with serve_command(SAGEMAKER_ARTIFACT) as url, httpx.Client(timeout=60) as pinger:
        # The ping's connection is opened first and kept alive: the ping below is then one round
        # trip, not a connection set up while the body is decoded (which raced the decoding).
        assert pinger.get(f"{url}/ping").status_code == 200
        port = int(url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=60) as big:
            big.sendall(head.encode() + body)
            client_port = big.getsockname()[1]
            deadline = time.monotonic() + 60
            while queued_bytes(client_port, port)[0] or queued_bytes(port, client_port)[1]:
                assert time.monotonic() < deadline, "the server did not read the body"
                time.sleep(0.001)
            assert pinger.get(f"{url}/ping").status_code == 200
            readable, _, _ = select.select([big], [], [], 0)
            assert not readable, "the big request was answered before the ping"
            answer = b""
            while b"}" not in answer:
                chunk = big.recv(65536)
                assert chunk, "the server closed the connection"
                answer += chunk
    status_line, _, rest = answer.partition(b"\r\n")
    assert status_line == b"HTTP/1.1 400 Bad Request"
    assert b"instance 5500 has 1 dense features, the model expects 50" in rest


def test_a_mixed_load_fails_no_good_request(regressor_port):
    """200 requests, one in three a mistake, from 4 clients each on one keep-alive connection."""
    model = LinearScorer(np.arange(1, 6, dtype=np.float32) / 10)
    mistakes = [
        MISTAKES[name]
        for name in (
            "json NaN",
            "recordio NaN",
            "json nested 100k deep",
            "empty json",
            "string value",
            "json key beyond feature_dim",
        )
    ]

    def client(worker):
        rng = np.random.default_rng(worker)
        connection = http.client.HTTPConnection("127.0.0.1", regressor_port, timeout=60)
        outcomes = []
        try:
            for i in range(50):
                if i % 3 == worker % 3:
                    content_type, body, status, message = mistakes[(i + worker) % len(mistakes)]
                    got, _, answer = request(
                        connection, "POST", "/invocations", body, {"Content-Type": content_type}
                    )
                    outcomes.append(("bad", got == status and message in json.loads(answer)["error"]))
                else:
                    rows = rng.integers(0, 4, (4, 5)).astype(float).tolist()
                    body = json.dumps({"instances": [{"features": row} for row in rows]})
                    got, _, answer = request(
                        connection, "POST", "/invocations", body, {"Content-Type": "application/json"}
                    )
                    ok = got == 200
                    if ok:
                        assert_predictions(
                            json.loads(answer)["predictions"], expected_predictions(model, rows)
                        )
                    outcomes.append(("good", ok))
        finally:
            connection.close()
        return outcomes

    with ThreadPoolExecutor(4) as pool:
        outcomes = [outcome for result in pool.map(client, range(4)) for outcome in result]
    assert len(outcomes) == 200
    good = [ok for kind, ok in outcomes if kind == "good"]
    bad = [ok for kind, ok in outcomes if kind == "bad"]
    assert len(good) > 100 and all(good), f"{good.count(False)} of {len(good)} good requests failed"
    assert len(bad) > 50 and all(bad)
