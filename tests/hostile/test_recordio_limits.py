"""Hostile RecordIO input: headers that declare more than the data holds, files that are not
plain files or that shrink while read, and readers and writers shared by threads."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import fmfast
import numpy as np
import pytest
import scipy.sparse as sp
from recordio_bytes import MAGIC, frame, sparse_record


def run_python(code: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``code`` run by a fresh interpreter (so that a crash or a hang shows as such)."""
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args], capture_output=True, text=True, timeout=timeout
    )


def rows(n: int, n_cols: int = 50, seed: int = 0) -> tuple[sp.csr_array, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = sp.random(n, n_cols, density=0.1, format="csr", dtype=np.float32, random_state=rng)
    return sp.csr_array(X), rng.random(n, dtype=np.float32)


# A 60-byte record declaring 10^9 features: the case that made fit() draw gigabytes of weights.
HUGE_SHAPE = frame(sparse_record([1.0], [0], [10**9], label=1.0))


# A frame header announcing the largest payload (512 MiB) followed by 16 bytes.
HUGE_LENGTH = struct.pack("<II", MAGIC, (1 << 29) - 1) + bytes(16)


def test_huge_declared_sizes_cost_no_memory(tmp_path: Path) -> None:
    assert len(HUGE_SHAPE) == 60
    path = tmp_path / "huge.recordio"
    path.write_bytes(HUGE_SHAPE)
    (tmp_path / "long.recordio").write_bytes(HUGE_LENGTH)
    result = run_python(
        """
        import io, resource, sys
        import fmfast
        path = sys.argv[1]
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        long = sys.argv[2]
        data = open(long, "rb").read()
        for read in (
            lambda: fmfast.read_recordio(long),
            lambda: fmfast.read_recordio(data),
            lambda: list(fmfast.iter_recordio(long)),
            lambda: list(fmfast.iter_recordio(io.BytesIO(data))),
        ):
            try:
                read()
            except fmfast.RecordIOError as error:
                assert "length 536870911 runs past the end of the data (16 bytes left" in str(error), error
            else:
                raise AssertionError("a truncated record was read")
        X, y = fmfast.read_recordio(path)
        assert X.shape == (1, 10**9) and X.nnz == 1, X
        assert [b.shape for b, _ in fmfast.iter_recordio(path)] == [(1, 10**9)]
        try:
            fmfast.FactorizationMachine("regressor", 64).fit(path)
        except fmfast.InvalidInputError as error:
            print("refused:", error)
        print("grew_kib", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)
        """,
        str(path),
        str(tmp_path / "long.recordio"),
    )
    assert result.returncode == 0, result.stderr
    assert "refused: feature_dim 1000000000 with num_factors 64 needs 242.1 GiB" in result.stdout
    grew_kib = int(result.stdout.split("grew_kib")[1])
    assert grew_kib < 64 << 10, result.stdout


@pytest.mark.parametrize("dim", [2**63, 2**64 - 1])
def test_a_shape_beyond_int64_is_a_recordio_error(tmp_path: Path, dim: int) -> None:
    data = frame(sparse_record([1.0], [0], [dim], label=1.0))
    path = tmp_path / "beyond.recordio"
    path.write_bytes(data)
    readers = [
        lambda: fmfast.read_recordio(data),
        lambda: fmfast.read_recordio(path),
        lambda: list(fmfast.iter_recordio(data)),
        lambda: list(fmfast.iter_recordio(path)),
    ]
    for read in readers:
        with pytest.raises(fmfast.RecordIOError, match=rf"shape \[{dim}\] exceeds the largest") as error:
            read()
        assert (error.value.record, error.value.offset) == (0, 0)
    # The largest dimension that fits is read.
    X, _ = fmfast.read_recordio(frame(sparse_record([1.0], [2**63 - 2], [2**63 - 1], label=1.0)))
    assert X.shape == (1, 2**63 - 1)


def test_a_fifo_is_read_whole(tmp_path: Path) -> None:
    X, y = rows(3000)
    data = fmfast.encode_recordio(X, y)
    fifo = tmp_path / "fifo"
    for read in (fmfast.read_recordio, lambda p: next(fmfast.iter_recordio(p, batch_size=10**6))):
        os.mkfifo(fifo)
        writer = threading.Thread(target=fifo.write_bytes, args=(data,), daemon=True)
        writer.start()
        X_back, y_back = read(fifo)
        writer.join(timeout=30)
        assert (X_back != X).nnz == 0 and X_back.shape == X.shape
        np.testing.assert_array_equal(y_back, y)
        fifo.unlink()


def test_a_file_truncated_while_read_is_an_error_or_a_prefix(tmp_path: Path) -> None:
    """Another process cuts the file again and again while read_recordio reads it: every read
    returns the first rows of the file or raises RecordIOError; nothing kills the reader."""
    X, y = rows(20_000)
    path = tmp_path / "shrinking.recordio"
    fmfast.write_recordio(path, X, y)
    full = path.read_bytes()
    reader = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                """
                import sys, time
                import fmfast
                X, y = fmfast.read_recordio(sys.argv[1] + ".orig")
                outcomes = {"rows": 0, "error": 0}
                end = time.monotonic() + 3
                while time.monotonic() < end:
                    try:
                        got, labels = fmfast.read_recordio(sys.argv[1])
                    except fmfast.RecordIOError:
                        outcomes["error"] += 1
                        continue
                    n = got.shape[0]
                    assert (got != X[:n]).nnz == 0 and (labels == y[:n]).all()
                    outcomes["rows"] += 1
                print(outcomes)
                """
            ),
            str(path),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    (tmp_path / "shrinking.recordio.orig").write_bytes(full)
    rng = np.random.default_rng(1)
    with open(path, "r+b") as f:
        while reader.poll() is None:
            os.truncate(path, int(rng.integers(0, len(full))))
            f.seek(0)
            f.write(full)
            f.flush()
    out, err = reader.communicate(timeout=60)
    assert reader.returncode == 0, err
    assert "'rows'" in out


def test_two_threads_share_a_reader_without_deadlock() -> None:
    """Each thread takes whole batches; together they see every record once. Run in a fresh
    interpreter so that a deadlock fails the test by its timeout instead of hanging the suite."""
    result = run_python(
        """
        import io, threading, time
        import numpy as np, scipy.sparse as sp
        import fmfast
        from fmfast import _fmfast

        X = sp.csr_array(np.arange(1, 2001, dtype=np.float32).reshape(-1, 1))
        data = fmfast.encode_recordio(X, np.zeros(2000))

        class Slow(io.BytesIO):
            def read(self, n=-1):
                time.sleep(0.001)  # lets the other thread run while this one holds the reader
                return super().read(min(n, 4096))

        reader = _fmfast.RecordIOReader(Slow(data))
        seen = []

        def drain():
            while (batch := reader.next_batch(7)) is not None:
                seen.extend(batch[4].tolist())

        threads = [threading.Thread(target=drain) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(seen) == list(range(1, 2001)), len(seen)
        print("ok")
        """,
        timeout=60,
    )
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr


def test_two_threads_share_a_writer_a_chunk_at_a_time(tmp_path: Path) -> None:
    path = tmp_path / "shared.recordio"
    writer = fmfast.RecordIOWriter(path)
    chunks = [np.full((50, 3), i, dtype=np.float32) for i in range(40)]

    def write(mine: list[np.ndarray]) -> None:
        for chunk in mine:
            writer.write(chunk, np.zeros(len(chunk)))

    threads = [threading.Thread(target=write, args=(chunks[i::2],), daemon=True) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads)
    writer.close()
    X, _ = fmfast.read_recordio(path)
    firsts = X.toarray()[::50, 0]
    assert sorted(firsts) == list(range(40))
    # Chunks were written whole: every block of 50 rows holds one chunk.
    np.testing.assert_array_equal(X.toarray().reshape(40, 50, 3), np.repeat(firsts, 150).reshape(40, 50, 3))
