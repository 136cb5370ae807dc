"""Measure fmfast against the SageMaker SDK 2.x and against the disk, and check the issue's targets.

Usage: ``python benches/report.py [--rows N] [--repeat R] [--json PATH]`` (default: 2,000,000 rows x
200,000 columns, 10 non-zeros a row, float32 values and labels, fixed seed).

Measured in one run, each time the median of ``--repeat`` runs (the SDK: ``--sdk-repeat``):

* encode to a file: the SDK's ``write_spmatrix_to_sparse_tensor`` into an open file; fmfast
  ``write_recordio`` at 1 thread and all threads (atomic: temporary file, then rename; no fsync);
  the same bytes written with ``Path.write_bytes`` (and, for scale, with an fsync);
* decode a file: the SDK's ``read_records`` with the CSR rebuild in Python; fmfast ``read_recordio``;
* peak RSS of a streamed conversion (``RecordIOWriter`` fed chunks of 100,000 rows generated on
  the fly) for two row counts, and of a whole-matrix ``write_recordio`` for contrast, each in its
  own process (``resource.getrusage``).

The SDK is slow (~80 us a row), so when the whole run of an SDK measurement is estimated above
``--sdk-budget`` seconds it is measured on the first ``--sdk-slice`` rows and scaled linearly;
the table says so. Files go to a temporary folder under ``--dir`` (default: the system's).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import fmfast
from workloads import ALL_THREADS, N_COLS, NNZ_PER_ROW, SEED, sdk_read, sdk_write, synthetic_csr

CHUNK_ROWS = 100_000
MIB = 1 << 20


def _sync() -> None:
    """Flush dirty pages so one measurement's writeback does not land in the next one's time."""
    if hasattr(os, "sync"):
        os.sync()


def _median_time(
    run: Callable[[], Any], repeat: int, before: Callable[[], None] | None = None
) -> list[float]:
    times = []
    for _ in range(repeat):
        if before is not None:
            before()
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return times


def _entry(times: list[float], rows: int, measured_rows: int | None = None, note: str = "") -> dict[str, Any]:
    measured_rows = measured_rows or rows
    median = statistics.median(times)
    return {
        "seconds": median * rows / measured_rows,
        "runs_seconds": times,
        "rows": rows,
        "measured_rows": measured_rows,
        "scaled": measured_rows != rows,
        "note": note,
    }


def _sdk_measure(
    name: str, run: Callable[[int], Callable[[], Any]], rows: int, args: argparse.Namespace
) -> dict[str, Any]:
    """Time ``run(n)()`` on a slice first; the whole run too if it is estimated within the budget."""
    slice_rows = min(rows, args.sdk_slice)
    print(f"  {name}: {slice_rows:,} rows ...", flush=True)
    times = _median_time(run(slice_rows), args.sdk_repeat, _sync)
    if slice_rows == rows:
        return _entry(times, rows)
    estimate = statistics.median(times) * rows / slice_rows
    if estimate <= args.sdk_budget:
        print(f"  {name}: {rows:,} rows (estimated {estimate:.0f} s) ...", flush=True)
        return _entry(_median_time(run(rows), args.sdk_repeat, _sync), rows)
    note = f"measured on {slice_rows:,} rows, scaled x{rows / slice_rows:g}"
    note += f" (whole run estimated > {args.sdk_budget:g} s)"
    return _entry(times, rows, slice_rows, note)


# --- children: one process per peak-memory measurement --------------------------------------------


def _peak_rss_kib() -> int:
    """This process's RSS high-water mark, in KiB.

    ``VmHWM`` from ``/proc/self/status`` where there is one: ``getrusage``'s ``ru_maxrss`` survives
    ``exec`` on Linux, so a child would report the parent's peak when the parent was larger.
    """
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak // 1024 if sys.platform == "darwin" else peak


def _child_stream(rows: int, n_cols: int, nnz: int, path: Path) -> dict[str, Any]:
    baseline = _peak_rss_kib()
    start = time.perf_counter()
    with fmfast.RecordIOWriter(path) as writer:
        for index, first in enumerate(range(0, rows, CHUNK_ROWS)):
            X, labels = synthetic_csr(min(CHUNK_ROWS, rows - first), n_cols, nnz, seed=(SEED, index))
            writer.write(X, labels)
    seconds = time.perf_counter() - start
    return {"rows": rows, "seconds": seconds, "baseline_kib": baseline, "bytes": path.stat().st_size}


def _child_whole(rows: int, n_cols: int, nnz: int, path: Path) -> dict[str, Any]:
    baseline = _peak_rss_kib()
    start = time.perf_counter()
    X, labels = synthetic_csr(rows, n_cols, nnz)
    fmfast.write_recordio(path, X, labels)
    seconds = time.perf_counter() - start
    return {"rows": rows, "seconds": seconds, "baseline_kib": baseline, "bytes": path.stat().st_size}


def _run_child(kind: str, rows: int, args: argparse.Namespace, path: Path) -> dict[str, Any]:
    command = [sys.executable, __file__, "--child", kind, "--rows", str(rows), "--cols", str(args.cols)]
    command += ["--nnz", str(args.nnz), "--child-path", str(path)]
    print(f"  peak memory, {kind}: {rows:,} rows ...", flush=True)
    result = json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout)
    path.unlink()
    result["peak_mib"] = result["peak_kib"] / 1024
    result["baseline_mib"] = result["baseline_kib"] / 1024
    result["growth_mib"] = result["peak_mib"] - result["baseline_mib"]
    return result


# --- the report ----------------------------------------------------------------------------------


def measure_times(args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    """Every timing; the data lives only as long as this call."""
    rows = args.rows
    print(f"generating {rows:,} x {args.cols:,}, {args.nnz} non-zeros a row ...", flush=True)
    X, labels = synthetic_csr(rows, args.cols, args.nnz)
    encoded = fmfast.encode_recordio(X, labels)
    source = folder / "input.recordio"
    source.write_bytes(encoded)
    out = folder / "out.recordio"

    def fresh() -> None:
        out.unlink(missing_ok=True)
        _sync()

    def write_fsync() -> None:
        with out.open("wb") as file:
            file.write(encoded)
            file.flush()
            os.fsync(file.fileno())

    threads = (1, 0)  # n_threads: one, and all cores
    results: dict[str, Any] = {}
    print("encode to a file ...", flush=True)

    def sdk_encode(n: int) -> Callable[[], None]:
        X_n, labels_n = X[:n], labels[:n]

        def run() -> None:
            with out.open("wb") as file:
                sdk_write(file, X_n, labels_n)

        return run

    results["sdk_write"] = _sdk_measure("SDK write_spmatrix_to_sparse_tensor", sdk_encode, rows, args)
    for n in threads:
        run = lambda n=n: fmfast.write_recordio(out, X, labels, n_threads=n)  # noqa: E731
        results[f"fmfast_write_t{n or 'all'}"] = _entry(_median_time(run, args.repeat, fresh), rows)
    raw_write = _median_time(lambda: out.write_bytes(encoded), args.repeat, fresh)
    results["raw_write_bytes"] = _entry(raw_write, rows)
    results["raw_write_fsync"] = _entry(_median_time(write_fsync, args.repeat, fresh), rows)
    for n in threads:
        run = lambda n=n: fmfast.encode_recordio(X, labels, n_threads=n)  # noqa: E731
        results[f"fmfast_encode_t{n or 'all'}"] = _entry(_median_time(run, args.repeat), rows)
    out.unlink(missing_ok=True)

    print("decode a file ...", flush=True)
    for n in threads:
        run = lambda n=n: fmfast.read_recordio(source, n_threads=n)  # noqa: E731
        results[f"fmfast_read_t{n or 'all'}"] = _entry(_median_time(run, args.repeat), rows)
    decoded, decoded_labels = fmfast.read_recordio(source)
    assert decoded.shape == X.shape and decoded.nnz == X.nnz and (decoded_labels == labels).all()
    del decoded, decoded_labels

    def sdk_decode(n: int) -> Callable[[], None]:
        path = source
        if n != rows:
            path = folder / f"input-{n}.recordio"
            fmfast.write_recordio(path, X[:n], labels[:n])

        def run() -> None:
            with path.open("rb") as file:
                rebuilt, _ = sdk_read(file)
            assert rebuilt.shape == (n, X.shape[1])

        return run

    results["sdk_read"] = _sdk_measure("SDK read_records + CSR rebuild", sdk_decode, rows, args)
    source.unlink()
    return results


def measure_memory(args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    """Peak RSS of streamed conversions of two sizes and of a whole-matrix write, each in a child."""
    print("peak memory ...", flush=True)
    memory = {}
    for n in args.stream_rows:
        memory[f"stream_{n}"] = _run_child("stream", n, args, folder / f"stream-{n}.recordio")
    memory[f"whole_{args.rows}"] = _run_child("whole", args.rows, args, folder / "whole.recordio")
    return memory


def summarise(args: argparse.Namespace, measured: dict[str, Any], n_bytes: int) -> dict[str, Any]:
    t = {name: entry["seconds"] for name, entry in measured["times"].items()}
    ratios = {
        "encode_file_sdk_over_fmfast_all": t["sdk_write"] / t["fmfast_write_tall"],
        "encode_file_sdk_over_fmfast_1": t["sdk_write"] / t["fmfast_write_t1"],
        "encode_file_fmfast_all_over_write_bytes": t["fmfast_write_tall"] / t["raw_write_bytes"],
        "encode_file_fmfast_all_over_write_fsync": t["fmfast_write_tall"] / t["raw_write_fsync"],
        "encode_file_fmfast_1_over_write_bytes": t["fmfast_write_t1"] / t["raw_write_bytes"],
        "decode_sdk_over_fmfast_all": t["sdk_read"] / t["fmfast_read_tall"],
        "decode_sdk_over_fmfast_1": t["sdk_read"] / t["fmfast_read_t1"],
    }
    streams = [measured["memory"][f"stream_{n}"] for n in args.stream_rows]
    growth = [s["growth_mib"] for s in streams]
    spread = max(s["peak_mib"] for s in streams) - min(s["peak_mib"] for s in streams)
    tolerance = 16 + 0.1 * min(s["peak_mib"] for s in streams)
    targets = {
        "encode_file_200x_sdk": ratios["encode_file_sdk_over_fmfast_all"] >= 200,
        "encode_file_within_2x_of_write_bytes": ratios["encode_file_fmfast_all_over_write_bytes"] <= 2,
        "decode_200x_sdk": ratios["decode_sdk_over_fmfast_all"] >= 200,
        "stream_memory_independent_of_rows": spread <= tolerance,
    }
    return {
        "config": {
            "rows": args.rows,
            "cols": args.cols,
            "nnz_per_row": args.nnz,
            "seed": SEED,
            "bytes": n_bytes,
            "all_threads": ALL_THREADS,
            "repeat": args.repeat,
            "sdk_repeat": args.sdk_repeat,
            "stream_chunk_rows": CHUNK_ROWS,
            "dir": str(args.dir or tempfile.gettempdir()),
            "python": platform.python_version(),
            "fmfast": fmfast.__version__,
            "machine": f"{platform.machine()}, {os.cpu_count()} cpus",
        },
        "times": measured["times"],
        "memory": measured["memory"],
        "stream_peak_spread_mib": spread,
        "stream_peak_tolerance_mib": tolerance,
        "stream_growth_mib": growth,
        "ratios": ratios,
        "targets": targets,
    }


def render(report: dict[str, Any]) -> str:
    c, t, r = report["config"], report["times"], report["ratios"]
    n_all = c["all_threads"]
    lines = [
        f"fmfast RecordIO report: {c['rows']:,} rows x {c['cols']:,} cols, {c['nnz_per_row']} nnz/row, "
        f"{c['bytes'] / 1e6:,.1f} MB encoded; all threads = {n_all}; "
        f"median of {c['repeat']} (SDK: {c['sdk_repeat']}); files in {c['dir']}",
        "",
        f"{'measurement':<48}{'seconds':>10}{'rows/s':>14}{'MB/s':>9}  note",
    ]
    names = [
        ("sdk_write", "SDK write_spmatrix_to_sparse_tensor (file)"),
        ("fmfast_write_t1", "fmfast write_recordio, 1 thread"),
        ("fmfast_write_tall", f"fmfast write_recordio, {n_all} threads"),
        ("raw_write_bytes", "Path.write_bytes of the same bytes"),
        ("raw_write_fsync", "same bytes, write + fsync"),
        ("fmfast_encode_t1", "fmfast encode_recordio (to bytes), 1 thread"),
        ("fmfast_encode_tall", f"fmfast encode_recordio (to bytes), {n_all} thr"),
        ("sdk_read", "SDK read_records + CSR rebuild (file)"),
        ("fmfast_read_t1", "fmfast read_recordio (file), 1 thread"),
        ("fmfast_read_tall", f"fmfast read_recordio (file), {n_all} threads"),
    ]
    for key, label in names:
        entry = t[key]
        seconds = entry["seconds"]
        note = entry["note"] if entry["scaled"] else ""
        speed = f"{c['rows'] / seconds:>14,.0f}{c['bytes'] / 1e6 / seconds:>9,.0f}"
        lines.append(f"{label:<48}{seconds:>10.3f}{speed}  {note}")

    def verdict(ok: bool) -> str:
        return "MET" if ok else "NOT MET"

    g = report["targets"]
    lines += [
        "",
        f"{'ratio':<64}{'value':>9}  target",
        f"{'encode to file: SDK / fmfast (' + str(n_all) + ' threads)':<64}"
        f"{r['encode_file_sdk_over_fmfast_all']:>8,.0f}x  >= 200x: {verdict(g['encode_file_200x_sdk'])}",
        f"{'encode to file: SDK / fmfast (1 thread)':<64}{r['encode_file_sdk_over_fmfast_1']:>8,.0f}x",
        f"{'encode to file: fmfast (' + str(n_all) + ' threads) / Path.write_bytes':<64}"
        f"{r['encode_file_fmfast_all_over_write_bytes']:>8.2f}x  <= 2x: "
        f"{verdict(g['encode_file_within_2x_of_write_bytes'])}",
        f"{'encode to file: fmfast (' + str(n_all) + ' threads) / (write + fsync)':<64}"
        f"{r['encode_file_fmfast_all_over_write_fsync']:>8.2f}x  (for scale; fmfast does not fsync)",
        f"{'encode to file: fmfast (1 thread) / Path.write_bytes':<64}"
        f"{r['encode_file_fmfast_1_over_write_bytes']:>8.2f}x",
        f"{'decode: SDK / fmfast (' + str(n_all) + ' threads)':<64}"
        f"{r['decode_sdk_over_fmfast_all']:>8,.0f}x  >= 200x: {verdict(g['decode_200x_sdk'])}",
        f"{'decode: SDK / fmfast (1 thread)':<64}{r['decode_sdk_over_fmfast_1']:>8,.0f}x",
        "",
        f"{'peak RSS (own process each)':<48}{'peak MiB':>10}{'at start':>10}{'growth':>9}{'seconds':>9}",
    ]
    for key, entry in report["memory"].items():
        kind = "streamed RecordIOWriter" if key.startswith("stream") else "whole-matrix write_recordio"
        lines.append(
            f"{kind + ', ' + format(entry['rows'], ',') + ' rows':<48}{entry['peak_mib']:>10.1f}"
            f"{entry['baseline_mib']:>10.1f}{entry['growth_mib']:>9.1f}{entry['seconds']:>9.2f}"
        )
    lines.append(
        f"streamed peak spread across row counts: {report['stream_peak_spread_mib']:.1f} MiB "
        f"(tolerance {report['stream_peak_tolerance_mib']:.1f} MiB): "
        f"independent of row count: {verdict(g['stream_memory_independent_of_rows'])}"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--cols", type=int, default=N_COLS)
    parser.add_argument("--nnz", type=int, default=NNZ_PER_ROW, help="non-zeros a row")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each fmfast/raw measurement")
    parser.add_argument("--sdk-repeat", type=int, default=1, help="runs of each SDK measurement")
    parser.add_argument("--sdk-slice", type=int, default=200_000, help="rows the SDK runs on when scaled")
    parser.add_argument("--sdk-budget", type=float, default=60.0, help="scale the SDK above this")
    parser.add_argument("--stream-rows", type=int, nargs=2, help="two row counts (default: rows/10, rows)")
    parser.add_argument("--dir", type=Path, help="where the files go (default: a temporary folder)")
    parser.add_argument("--json", type=Path, help="also write the report as JSON here")
    parser.add_argument("--child", choices=["stream", "whole"], help=argparse.SUPPRESS)
    parser.add_argument("--child-path", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child:
        run = _child_stream if args.child == "stream" else _child_whole
        result = run(args.rows, args.cols, args.nnz, args.child_path)
        result["peak_kib"] = _peak_rss_kib()
        print(json.dumps(result))
        return

    args.stream_rows = args.stream_rows or [max(CHUNK_ROWS, args.rows // 10), args.rows]
    folder = Path(tempfile.mkdtemp(prefix="fmfast-report-", dir=args.dir))
    try:
        started = time.perf_counter()
        measured = {"times": measure_times(args, folder), "memory": measure_memory(args, folder)}
        n_bytes = measured["memory"][f"whole_{args.rows}"]["bytes"]
        report = summarise(args, measured, n_bytes)
        report["config"]["wall_seconds"] = time.perf_counter() - started
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    print()
    print(render(report))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
        print(f"\nJSON written to {args.json}")


if __name__ == "__main__":
    main()
