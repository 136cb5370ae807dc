"""The local endpoint, started on a free loopback port and driven by a real HTTP client."""

from __future__ import annotations

import json
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import fmfast
import httpx
import numpy as np
import pytest
import uvicorn
from fmfast.serve import create_app


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


@pytest.fixture(scope="module", params=["regressor", "binary_classifier"])
def endpoint(request):
    model = LinearScorer(np.arange(1, 6, dtype=np.float32) / 10, request.param)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(model, max_body_bytes=200_000), host="127.0.0.1", port=port, log_level="warning"
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "server did not start"
        time.sleep(0.02)
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
        yield client, model
    server.should_exit = True
    thread.join(timeout=10)


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
    parsed = fmfast.inference.parse_response(response.content, "application/x-recordio-protobuf")
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
    assert response.text and message in response.text


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


def test_the_serve_command_serves_a_sagemaker_artifact(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    artifact = (
        Path(__file__).parent / "data" / "mxnet-golden" / "sagemaker" / "binary_classifier" / "model.tar.gz"
    )
    port = free_port()
    command = [sys.executable, "-m", "fmfast.cli", "serve", str(artifact), "--port", str(port)]
    server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/ping", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert server.poll() is None and time.monotonic() < deadline, "fmfast serve did not come up"
            time.sleep(0.1)
        body = {"instances": [{"data": {"features": {"keys": [], "shape": [50], "values": []}}}]}
        prediction = httpx.post(f"http://127.0.0.1:{port}/invocations", json=body).json()["predictions"][0]
        assert prediction["score"] == pytest.approx(0.0372752, rel=1e-5)  # sigmoid(w0) for an empty row
        assert prediction["predicted_label"] == 0.0
    finally:
        server.terminate()
        server.wait(timeout=10)
