"""kill -9 during writes: a RecordIO file or shard set is afterwards the old one or the new one,
whole, never a mix or a part; readers agree; the next write clears what the killed ones left."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import fmfast
import numpy as np
import pytest
import scipy.sparse as sp
from fmfast.recordio.shards import recordio_files

KILLS = 4

# The child writes versions argv[2], argv[2] + 1, ... (mod 2) of the data to argv[1], up to argv[3].
WRITERS = {
    "write_recordio": "fmfast.write_recordio(target, X, y)",
    "RecordIOWriter": """
        with fmfast.RecordIOWriter(target) as writer:
            for start in range(0, X.shape[0], 1000):
                writer.write(X[start : start + 1000], y[start : start + 1000])
    """,
    "write_recordio_shards": "fmfast.write_recordio_shards(target, X, y, n_shards=3 + version)",
}

CHILD = """
import sys
import numpy as np, scipy.sparse as sp
import fmfast

def version_data(version):
    rng = np.random.default_rng(version)
    X = sp.random(20_000, 50, density=0.1, format="csr", dtype=np.float32, random_state=rng)
    return sp.csr_array(X), np.full(20_000, version, dtype=np.float32)

target, start, stop = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
versions = [version_data(0), version_data(1)]
print("ready", flush=True)
for round in range(start, stop):
    version = round % 2
    X, y = versions[version]
{write}
"""


def version_data(version: int) -> tuple[sp.csr_array, np.ndarray]:
    rng = np.random.default_rng(version)
    X = sp.random(20_000, 50, density=0.1, format="csr", dtype=np.float32, random_state=rng)
    return sp.csr_array(X), np.full(20_000, version, dtype=np.float32)


def read_back(target: Path) -> list[tuple[sp.csr_array, np.ndarray]]:
    """What two readers find at ``target`` (each as one matrix and its labels)."""
    files = recordio_files(target) if target.is_dir() else [target]
    whole = [fmfast.read_recordio(f) for f in files]
    batched = [batch for f in files for batch in fmfast.iter_recordio(f, batch_size=7000)]
    return [
        (sp.vstack([X for X, _ in parts]).tocsr(), np.concatenate([y for _, y in parts]))
        for parts in (whole, batched)
    ]


def assert_whole_version(target: Path) -> int:
    """The version of the data at ``target``, after checking both readers find all of it."""
    versions = set()
    for X, y in read_back(target):
        version = int(y[0])
        X_expected, y_expected = version_data(version)
        assert X.shape == X_expected.shape and (X != X_expected).nnz == 0
        np.testing.assert_array_equal(y, y_expected)
        versions.add(version)
    assert len(versions) == 1
    return versions.pop()


def temporaries(directory: Path) -> list[Path]:
    return [p for p in directory.iterdir() if p.name.startswith(".fmfast-") and p.name.endswith(".tmp")]


@pytest.mark.parametrize("writer", WRITERS)
def test_kill_9_leaves_the_old_or_the_new_data_whole(tmp_path: Path, writer: str) -> None:
    target = tmp_path / ("shards" if writer == "write_recordio_shards" else "data.recordio")
    code = CHILD.format(write=textwrap.indent(textwrap.dedent(WRITERS[writer]).strip(), " " * 4))
    seen = []
    rng = np.random.default_rng(7)
    kills = 0
    # KILLS kills at random moments, and more (up to 5 times as many) until one has caught a write
    # in progress: a kill between two writes leaves no temporary for the cleaner to find.
    while kills < KILLS or (not temporaries(tmp_path) and kills < 5 * KILLS):
        kills += 1
        child = subprocess.Popen(
            [sys.executable, "-c", code, str(target), "0", str(10**9)], stdout=subprocess.PIPE, text=True
        )
        assert child.stdout is not None and child.stdout.readline() == "ready\n"
        time.sleep(rng.uniform(0.05, 0.6))
        os.kill(child.pid, signal.SIGKILL)
        assert child.wait(timeout=30) == -signal.SIGKILL
        if target.exists():
            seen.append(assert_whole_version(target))
    assert seen, "no write finished before any kill"
    # What the killed writers left is cleared by the next write once old enough to be theirs.
    assert temporaries(tmp_path), f"none of {kills} kills caught a write in progress"
    for leftover in temporaries(tmp_path):
        os.utime(leftover, (time.time() - 3600,) * 2)
    subprocess.run(
        [sys.executable, "-c", code, str(target), "1", "2"], check=True, capture_output=True, timeout=60
    )
    assert assert_whole_version(target) == 1
    assert temporaries(tmp_path) == []
