"""Requests per second and latency percentiles of ``fmfast serve``'s ``/invocations``.

Starts ``fmfast serve`` on a free loopback port with a generated model and drives it with a fixed
number of requests from concurrent client threads, for a one-instance and a 1,000-instance JSON
body (sparse instances of 10 non-zeros over 100,000 features):

    python benches/serve_report.py [--requests 400] [--clients 4]

Client and server share the machine, so the figures are a floor for a real deployment.
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import fmfast
import httpx
import numpy as np
import scipy.sparse as sp

FEATURE_DIM = 100_000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def request_body(n_instances: int, rng: np.random.Generator) -> bytes:
    cols = np.sort(rng.choice(FEATURE_DIM, (n_instances, 10)), axis=1).reshape(-1)
    X = sp.csr_array(
        (np.ones(n_instances * 10, np.float32), cols, np.arange(0, n_instances * 10 + 1, 10)),
        shape=(n_instances, FEATURE_DIM),
    )
    return fmfast.serialize_request(X, "application/json", sparse=True)


def measure(url: str, body: bytes, requests: int, clients: int) -> dict[str, float]:
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    with httpx.Client(timeout=60) as client:

        def one(_: int) -> float:
            start = time.perf_counter()
            response = client.post(url, content=body, headers=headers)
            response.raise_for_status()
            return time.perf_counter() - start

        for _ in range(10):  # warm up
            one(0)
        start = time.perf_counter()
        with ThreadPoolExecutor(clients) as pool:
            latencies = np.array(list(pool.map(one, range(requests))))
        wall = time.perf_counter() - start
    return {
        "requests_per_s": requests / wall,
        "p50_ms": float(np.percentile(latencies, 50) * 1e3),
        "p99_ms": float(np.percentile(latencies, 99) * 1e3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--clients", type=int, default=4)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    X = fmfast.read_recordio(fmfast.encode_recordio(sp.random(2000, FEATURE_DIM, density=1e-4, rng=rng)))[0]
    model = fmfast.FactorizationMachine("binary_classifier", 64, random_state=0)
    model.fit(X, rng.integers(0, 2, X.shape[0]))
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "model.fmfast"
        model.save(path)
        port = free_port()
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "fmfast.cli",
                "serve",
                str(path),
                "--port",
                str(port),
                "--max-body-bytes",
                str(64 << 20),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/ping", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.1)
                if time.monotonic() > deadline:
                    raise SystemExit("server did not start")
            url = f"http://127.0.0.1:{port}/invocations"
            print(f"fmfast {fmfast.__version__}: {args.requests} requests from {args.clients} client threads")
            print(f"{'body':<28}{'requests/s':>12}{'p50 ms':>10}{'p99 ms':>10}")
            for n in (1, 1000):
                requests = args.requests if n == 1 else max(args.requests // 10, 20)
                result = measure(url, request_body(n, rng), requests, args.clients)
                label = f"JSON, {n:,} instance{'s' if n > 1 else ''}"
                print(
                    f"{label:<28}{result['requests_per_s']:>12,.1f}{result['p50_ms']:>10.1f}{result['p99_ms']:>10.1f}"
                )
        finally:
            server.terminate()
            server.wait(timeout=10)


if __name__ == "__main__":
    main()
