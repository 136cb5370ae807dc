"""Mutation fuzzing of the RecordIO decoders: thousands of corrupted streams, each of which must
decode or raise RecordIOError/InvalidInputError (never another exception, a crash or a hang).

Each chunk of streams runs in a fresh interpreter, so that a crash fails its test with the
signal instead of killing the suite. Run this file as a script (``python
tests/hostile/test_recordio_mutations.py SEED COUNT``) to probe more streams.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

CHUNKS, PER_CHUNK = 4, 600
MAGIC = 0xCED7230A


def seeds() -> list[bytes]:
    """Valid streams covering every decoder path: the canonical sparse float32 layout, dense
    rows, the other tensor types, no labels, and a record in parts (continuation flags)."""
    import fmfast
    import scipy.sparse as sp

    rng = np.random.default_rng(0)
    X = sp.random(6, 300, density=0.05, format="csr", dtype=np.float32, random_state=rng)
    y = rng.random(6, dtype=np.float32)
    # A record holding the magic number as a value is written in two parts, split where it stands.
    magic = struct.pack("<I", MAGIC)
    whole = fmfast.encode_recordio(np.frombuffer(magic, dtype=np.float32).reshape(1, 1), [1.0])
    payload = whole[8 : 8 + struct.unpack("<I", whole[4:8])[0]]
    at = payload.index(magic)
    parts = frame(payload[:at], flag=1) + frame(payload[at + 4 :], flag=3)
    return [
        fmfast.encode_recordio(X, y),
        fmfast.encode_recordio(X.toarray()[:, :8], y, layout="dense"),
        fmfast.encode_recordio(X.astype(np.float64), y, dtype="float64"),
        fmfast.encode_recordio((X * 10).astype(np.int32), y.astype(np.int32), dtype="int32"),
        fmfast.encode_recordio(X),
        whole + parts + whole,
    ]


def frame(payload: bytes, flag: int) -> bytes:
    """One RecordIO frame around ``payload`` with continuation ``flag``, padded to 4 bytes."""
    return struct.pack("<II", MAGIC, (flag << 29) | len(payload)) + payload + b"\0" * (-len(payload) % 4)


def mutate(data: bytes, rng: np.random.Generator) -> bytes:
    """``data`` with one to three random edits: bit flips, truncation, lengths, varint bytes, splices."""
    out = bytearray(data)
    for _ in range(int(rng.integers(1, 4))):
        if not out:
            break
        at = int(rng.integers(0, len(out)))
        kind = int(rng.integers(0, 7))
        if kind == 0:
            out[at] ^= 1 << int(rng.integers(0, 8))
        elif kind == 1:
            del out[at:]
        elif kind == 2:  # a frame's length word, or any 4 bytes, set to an edge value
            edge = [0, 1, 3, 0x1FFFFFFF, 0x20000000, 0xFFFFFFFF, int(rng.integers(0, 2**32))]
            out[at : at + 4] = struct.pack("<I", edge[int(rng.integers(0, len(edge)))])
        elif kind == 3:  # a varint byte: continued forever, ended early, or huge
            out[at] = [0xFF, 0x80, 0x00, 0x7F, 0x01][int(rng.integers(0, 5))]
        elif kind == 4:
            del out[at : at + int(rng.integers(1, 9))]
        elif kind == 5:
            out[at:at] = bytes(rng.integers(0, 256, int(rng.integers(1, 9)), dtype=np.uint8))
        else:  # a slice of the stream copied elsewhere (records repeated or cut into each other)
            start = int(rng.integers(0, len(out)))
            out[at:at] = out[start : start + int(rng.integers(1, 64))]
    return bytes(out)


def probe(seed: int, count: int) -> dict[str, int]:
    """Decode ``count`` mutated streams every way; raise on anything but the typed errors."""
    import fmfast
    from fmfast import _fmfast

    rng = np.random.default_rng(seed)
    corpus = seeds()
    outcomes = {"decoded": 0, "refused": 0}
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "mutated.recordio"
        for i in range(count):
            data = mutate(corpus[i % len(corpus)], rng)
            path.write_bytes(data)
            readers = [
                lambda data=data: fmfast.read_recordio(data, n_threads=1),
                lambda data=data: _fmfast.decode(np.frombuffer(data, dtype=np.uint8), 1),
                lambda: fmfast.read_recordio(path, n_threads=1),
                lambda data=data: list(fmfast.iter_recordio(data, batch_size=2, n_threads=1)),
                lambda: list(fmfast.iter_recordio(path, n_threads=1)),
            ]
            for read in readers:
                try:
                    read()
                    outcomes["decoded"] += 1
                except (fmfast.RecordIOError, fmfast.InvalidInputError):
                    outcomes["refused"] += 1
                except Exception as error:
                    raise AssertionError(f"seed {seed}, stream {i}: {data.hex()}") from error
    return outcomes


@pytest.mark.parametrize("chunk", range(CHUNKS))
def test_mutated_streams_decode_or_raise_typed_errors(chunk: int) -> None:
    tests = Path(__file__).parents[1]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tests), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run(
        [sys.executable, __file__, str(chunk), str(PER_CHUNK)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    outcomes = json.loads(result.stdout.splitlines()[-1])
    assert outcomes["decoded"] + outcomes["refused"] == 5 * PER_CHUNK
    assert outcomes["refused"] > 0 and outcomes["decoded"] > 0


if __name__ == "__main__":
    print(json.dumps(probe(int(sys.argv[1]), int(sys.argv[2]))))
