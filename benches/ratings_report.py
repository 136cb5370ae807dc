"""Time and peak memory of reading a ratings CSV: fmfast.read_ratings against pandas + pyarrow.

Usage: ``python benches/ratings_report.py [--rows N] [--repeat R] [--json PATH]`` (default:
5,000,000 generated MovieLens-25M-shaped ratings, ``userId,movieId,rating,timestamp``).

Each reader runs in its own process, so that its peak RSS (``VmHWM``) is its own: the process
imports its library, notes its peak so far, reads the file ``--repeat`` times and reports the
median time, the median CPU time of all its threads (which other processes' load disturbs far
less than the wall clock), and how far the peak rose above the import, beside the bytes of the
arrays it returned. fmfast's arrays are users and items coded ``0..n-1`` (int64), ratings (float32) and
timestamps (int64) plus the id vocabularies; pandas' are the four raw columns.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from report import _peak_rss_kib
from workloads import RATINGS_ROWS, write_ratings_csv

READERS = ("fmfast", "pandas_pyarrow")
MIB = 1 << 20


def _child(reader: str, path: Path, repeat: int) -> dict[str, Any]:
    """Runs in a fresh process: time and peak memory of ``repeat`` reads of ``path`` by ``reader``."""
    if reader == "fmfast":
        import fmfast

        def read() -> int:
            data = fmfast.read_ratings(path)
            arrays = (data.users, data.items, data.ratings, data.timestamps, data.user_ids, data.item_ids)
            return sum(a.nbytes for a in arrays)
    else:
        import pandas as pd

        def read() -> int:
            return int(pd.read_csv(path, engine="pyarrow").memory_usage(deep=True).sum())

    baseline = _peak_rss_kib()
    times, cpu_times = [], []
    for _ in range(repeat):
        start, cpu_start = time.perf_counter(), time.process_time()
        array_bytes = read()
        times.append(time.perf_counter() - start)
        cpu_times.append(time.process_time() - cpu_start)
    return {
        "reader": reader,
        "seconds": statistics.median(times),
        "cpu_seconds": statistics.median(cpu_times),
        "peak_above_imports_mib": (_peak_rss_kib() - baseline) / 1024,
        "arrays_mib": array_bytes / MIB,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=RATINGS_ROWS)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument("--child", choices=READERS, help=argparse.SUPPRESS)
    parser.add_argument("--path", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_child(args.child, Path(args.path), args.repeat)))
        return
    with tempfile.TemporaryDirectory() as folder:
        path = write_ratings_csv(Path(folder) / "ratings.csv", args.rows)
        print(f"{args.rows:,} ratings, {path.stat().st_size / MIB:.0f} MiB of CSV; median of {args.repeat}")
        results = []
        for reader in READERS:
            command = [sys.executable, __file__, "--child", reader, "--path", str(path)]
            command += ["--repeat", str(args.repeat)]
            done = subprocess.run(command, capture_output=True, text=True, check=True)
            results.append(json.loads(done.stdout))
    fastest = {r["reader"]: r["seconds"] for r in results}
    print(f"{'reader':<16}{'seconds':>9}{'x pandas':>10}{'cpu s':>8}{'peak MiB':>10}{'arrays MiB':>12}")
    for r in results:
        ratio = r["seconds"] / fastest["pandas_pyarrow"]
        print(
            f"{r['reader']:<16}{r['seconds']:>9.2f}{ratio:>10.2f}{r['cpu_seconds']:>8.2f}"
            f"{r['peak_above_imports_mib']:>10.0f}{r['arrays_mib']:>12.0f}"
        )
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": args.rows, "results": results}, indent=1))


if __name__ == "__main__":
    main()
