"""Parquet to RecordIO shards: Spark ``local[2]`` (fmfast.spark) against one process, rows per second.

Usage: ``python benches/spark_report.py [--rows N] [--repeat R] [--json PATH]`` (default 2,000,000
rows; the issue's figure is at 20,000,000).

The table is issue 15's: a string user id, an integer item id, a float rating, a list of 1-5
genres and an integer age, in row groups of 131,072 rows (as Spark writes them). The encoder is
``one_hot(user), one_hot(item), multi_hot(genres), numeric(age)``, label ``rating``. Timed, each the
median of ``--repeat`` runs:

* ``single``: one process, the Parquet file's batches through :func:`fmfast.spark.write_partition`
  into one file (what ``convert_table`` does), with the encoder fitted beforehand; 1 and 2 threads.
* ``spark``: ``fmfast.spark.write_recordio`` of ``spark.read.parquet`` on ``local[2]`` with the same
  fitted encoder (the session started, and one conversion run, beforehand: JVM start-up and warm-up are not counted).
* ``spark_fit``: the same with an unfitted encoder, so including the distributed fit.
* ``spark_scan``: Spark alone, the floor under ``spark``: the file read and handed to Python as
  Arrow batches that are only counted.

Each time comes with the CPU seconds of the run (the process's; for Spark also the JVM's and its
Python workers'), which the load of a shared machine does not inflate. Also checked: the Spark shards, concatenated, are the single process's bytes (one Parquet file is
read in row-group order).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import fmfast
import fmfast.spark
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

GENRES = np.array(
    ["Action", "Adventure", "Animation", "Children", "Comedy", "Crime", "Documentary", "Drama", "Fantasy",
     "Film-Noir", "Horror", "IMAX", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western"]
)  # fmt: skip
ROW_GROUP = 131_072


def write_table(path: Path, n_rows: int, seed: int = 15) -> None:
    """Issue 15's table: MovieLens-25M-sized vocabularies (162,541 users, 59,047 items)."""
    rng = np.random.default_rng(seed)
    with pq.ParquetWriter(path, schema(), compression="snappy") as writer:
        for start in range(0, n_rows, ROW_GROUP):
            n = min(ROW_GROUP, n_rows - start)
            users = pc.binary_join_element_wise(
                "u", pc.cast(pa.array(rng.integers(0, 162_541, n)), pa.string()), ""
            )
            lengths = rng.integers(1, 6, n)
            offsets = np.zeros(n + 1, dtype=np.int32)
            np.cumsum(lengths, out=offsets[1:])
            genres = pa.ListArray.from_arrays(offsets, pa.array(rng.choice(GENRES, offsets[-1])))
            columns = [
                users,
                pa.array(rng.integers(0, 59_047, n)),
                pa.array(rng.integers(1, 11, n) / 2, pa.float32()),
                genres,
                pa.array(rng.integers(18, 80, n), pa.int32()),
            ]
            writer.write_table(pa.table(columns, schema=schema()), row_group_size=ROW_GROUP)


def schema() -> pa.Schema:
    return pa.schema(
        [("user", pa.string()), ("item", pa.int64()), ("rating", pa.float32()), ("genres", pa.list_(pa.string())),
         ("age", pa.int32())]
    )  # fmt: skip


def encoder() -> fmfast.FeatureEncoder:
    return fmfast.FeatureEncoder().one_hot("user").one_hot("item").multi_hot("genres").numeric("age")


def median_seconds(run: Callable[[], object], repeat: int, cpu: Callable[[], float]) -> tuple[float, float]:
    """Median wall-clock seconds of ``repeat`` runs, and the CPU seconds (as ``cpu`` counts them) of that run."""
    runs = []
    for _ in range(repeat):
        start, start_cpu = time.perf_counter(), cpu()
        run()
        runs.append((time.perf_counter() - start, cpu() - start_cpu))
    return sorted(runs)[len(runs) // 2]


def tree_cpu_seconds(root: int) -> float:
    """CPU seconds of process ``root`` and its descendants (the JVM, its Python daemon and workers),
    with those of exited children: a load-independent measure on a shared machine."""
    parents, ticks = {}, {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue  # exited meanwhile
            parents[int(entry.name)] = int(fields[1])
            ticks[int(entry.name)] = sum(int(f) for f in fields[11:15])  # utime stime cutime cstime
    tree, grew = {root}, True
    while grew:
        more = {pid for pid, parent in parents.items() if parent in tree} - tree
        tree |= more
        grew = bool(more)
    return sum(ticks.get(pid, 0) for pid in tree) / os.sysconf("SC_CLK_TCK")


def spark_session() -> Any:
    from pyspark.sql import SparkSession

    os.environ["PYSPARK_PYTHON"] = sys.executable  # the executors' Python: this one, with fmfast
    session = (
        SparkSession.builder.master("local[2]")
        .config("spark.ui.enabled", "false")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.driver.memory", "2g")
        .config("spark.ui.showConsoleProgress", "false")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    return session


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="fmfast-spark-report-"))
    try:
        source = work / "table.parquet"
        write_table(source, args.rows)
        fitted = encoder().fit(pq.read_table(source, columns=["user", "item", "genres", "age"]))
        results: dict[str, Any] = {"rows": args.rows, "parquet_mib": source.stat().st_size / (1 << 20)}

        def single(threads: int) -> None:
            batches = pq.ParquetFile(source).iter_batches(batch_size=65_536)
            fitted.n_threads = threads
            fmfast.spark.write_partition(batches, work / "single.recordio", encoder=fitted, label="rating",
                                         n_threads=threads)  # fmt: skip

        for threads in (1, 2):
            results[f"single_{threads}_threads_s"], results[f"single_{threads}_threads_cpu_s"] = (
                median_seconds(lambda t=threads: single(t), args.repeat, time.process_time)
            )
        spark = spark_session()
        jvm = spark.sparkContext._jvm.java.lang.ProcessHandle.current().pid()

        def spark_cpu() -> float:
            return time.process_time() + tree_cpu_seconds(jvm)

        df = spark.read.parquet(str(source))
        results["spark_partitions"] = df.rdd.getNumPartitions()

        def on_spark(enc: fmfast.FeatureEncoder) -> list[Path]:
            return fmfast.spark.write_recordio(
                df, work / "shards", encoder=enc, label="rating", overwrite=True
            )

        def scan() -> None:
            # Spark's own part: read the Parquet file and hand its rows to Python as Arrow batches.
            df.mapInArrow(
                lambda batches: (
                    pa.record_batch([pa.array([sum(b.num_rows for b in batches)])], ["n"]) for _ in [0]
                ),
                "n long",
            ).collect()

        # A first conversion, untimed, warms up the JVM and starts the executors' Python workers.
        shards = on_spark(fitted)
        same = b"".join(p.read_bytes() for p in shards) == (work / "single.recordio").read_bytes()
        results["spark_shards_equal_single"] = same
        results["spark_scan_s"], results["spark_scan_cpu_s"] = median_seconds(scan, args.repeat, spark_cpu)
        results["spark_s"], results["spark_cpu_s"] = median_seconds(
            lambda: on_spark(fitted), args.repeat, spark_cpu
        )
        results["spark_fit_s"], results["spark_fit_cpu_s"] = median_seconds(
            lambda: on_spark(encoder()), args.repeat, spark_cpu
        )
        spark.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    best_single = min(results["single_1_threads_s"], results["single_2_threads_s"])
    results["spark_over_single"] = results["spark_s"] / best_single
    for key in ("single_1_threads", "single_2_threads", "spark_scan", "spark", "spark_fit"):
        wall, cpu = results[f"{key}_s"], results[f"{key}_cpu_s"]
        print(f"{key:18s} {wall:8.2f} s  {args.rows / wall / 1e6:6.2f} M rows/s  CPU {cpu:8.2f} s")
    print(f"Spark local[2] / best single process: {results['spark_over_single']:.2f}x wall-clock (target: at most 2x); "
          f"{results['spark_partitions']} partitions; shards == single-process bytes: {same}")  # fmt: skip
    print(f"load average: {os.getloadavg()}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
