"""The SDK drop-in writer into an open file, against ``write_recordio`` and a plain write of the bytes.

Usage: ``python benches/drop_in_report.py [--rows N] [--rounds R] [--threads T] [--dir DIR]``
(default: 2,100,000 rows x 200,000 columns, 10 non-zeros a row, float32 values and labels, 7 rounds,
all cores). ``--once WAY`` (``none``, ``descriptor``, ``bytes``, ``native``) runs one way once and
prints nothing, for ``valgrind --tool=callgrind``: subtract the count of ``none`` (the matrix alone).

Each round runs every way once, in turn, so that a busy machine slows them alike; the table gives
each way's median and fastest time:

* ``write_spmatrix_to_sparse_tensor(open(path, "wb"), X, y)``: fmfast's drop-in, through the
  file's descriptor;
* the same through ``write(bytes)``, as it was before: ``f.write(encode_recordio(X, y))``;
* ``write_recordio(path, X, y)``: the native writer (temporary file, then rename);
* ``f.write(data)`` of the same bytes, encoded beforehand.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import fmfast
from workloads import synthetic_csr


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_100_000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--dir", default=None)
    parser.add_argument("--once", choices=["none", "descriptor", "bytes", "native"])
    args = parser.parse_args()
    X, y = synthetic_csr(args.rows)
    threads = args.threads
    with tempfile.TemporaryDirectory(dir=args.dir) as scratch:
        path = Path(scratch) / "train.recordio"

        def drop_in() -> None:
            with open(path, "wb") as f:
                fmfast.write_spmatrix_to_sparse_tensor(f, X, y, n_threads=threads)

        def through_bytes() -> None:
            with open(path, "wb") as f:
                f.write(fmfast.encode_recordio(X, y, n_threads=threads))

        def native() -> None:
            fmfast.write_recordio(path, X, y, n_threads=threads)

        once = {"none": lambda: None, "descriptor": drop_in, "bytes": through_bytes, "native": native}
        if args.once is not None:
            once[args.once]()
            return
        data = fmfast.encode_recordio(X, y)

        def plain_write() -> None:
            with open(path, "wb") as f:
                f.write(data)

        ways: dict[str, Callable[[], None]] = {
            "write_spmatrix_to_sparse_tensor(open file), descriptor": drop_in,
            "f.write(encode_recordio(X, y)), the bytes path": through_bytes,
            "write_recordio(path)": native,
            "f.write(data) of the same bytes": plain_write,
        }
        drop_in()
        assert path.read_bytes() == data
        times: dict[str, list[float]] = {name: [] for name in ways}
        for _ in range(args.rounds):
            for name, run in ways.items():
                os.sync()
                start = time.perf_counter()
                run()
                times[name].append(time.perf_counter() - start)
    size = f"{args.rows:,} rows, {len(data) / 2**20:.0f} MiB"
    print(f"{size}, {args.rounds} alternating rounds, {os.cpu_count()} cores")
    print("| | median | fastest |\n|---|---|---|")
    for name, measured in times.items():
        print(f"| {name} | {statistics.median(measured) * 1e3:.0f} ms | {min(measured) * 1e3:.0f} ms |")


if __name__ == "__main__":
    main()
