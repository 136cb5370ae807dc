"""Inference wire formats on a 10,000-instance sparse batch (10 non-zeros each, 100,000 features)."""

from __future__ import annotations

import fmfast
import numpy as np
import pytest
import scipy.sparse as sp

N_ROWS, N_COLS = 10_000, 100_000
CONTENT_TYPES = ["application/json", "application/jsonlines", "application/x-recordio-protobuf"]


@pytest.fixture(scope="module")
def batch() -> sp.csr_array:
    rng = np.random.default_rng(0)
    return sp.random(N_ROWS, N_COLS, density=1e-4, format="csr", random_state=rng, dtype=np.float32)


@pytest.mark.parametrize("content_type", CONTENT_TYPES)
def test_parse_request(benchmark, batch, content_type):
    body = fmfast.serialize_request(batch, content_type)
    benchmark.extra_info.update(implementation="fmfast", size=N_ROWS, bytes=len(body))
    X = benchmark(fmfast.parse_request, body, content_type, N_COLS)
    assert X.shape == (N_ROWS, N_COLS)


@pytest.mark.parametrize("content_type", CONTENT_TYPES)
def test_serialize_response(benchmark, content_type):
    scores = np.random.default_rng(1).random(N_ROWS).astype(np.float32)
    benchmark.extra_info.update(implementation="fmfast", size=N_ROWS)
    body = benchmark(fmfast.serialize_response, scores, "binary_classifier", content_type)
    assert len(fmfast.parse_response(body, content_type)["predictions"]) == N_ROWS
