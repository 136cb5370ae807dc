"""CPU seconds a sample of the concurrent schedule on 1 and 2 threads: what a second thread costs, without a clock.

Usage::

    .venv/bin/python benches/concurrent_cpu.py [--rows 1000000] [--repeat 3] [--cases sgd:8 sgd:64 adam:8 adam:64]

Data: ``--rows`` ratings over the 5M set's 100,000 users and 20,000 items (:func:`workloads.ratings_one_hot`),
one epoch, ``mini_batch_size=1000``, ``deterministic=False``. For each case the fits on 1 and 2 threads
alternate ``--repeat`` times; the process's user + system CPU time (``getrusage``) around each ``fit`` is
divided by the rows. ``2 x CPU(1) / CPU(2)`` bounds the 2-thread speed-up on two free cores, whatever the
machine's load (which still inflates it: other processes share the caches).
"""

from __future__ import annotations

import argparse
import resource
import statistics

from fmfast import FactorizationMachine
from workloads import RATINGS_ITEMS, RATINGS_USERS, ratings_one_hot


def cpu_seconds() -> float:
    """User + system CPU time of this process so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    """Generate the data, then time the fits and print one line a case."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--cases", nargs="*", default=["sgd:8", "sgd:64", "adam:8", "adam:64"])
    args = parser.parse_args()
    X, y = ratings_one_hot(args.rows, RATINGS_USERS, RATINGS_ITEMS)
    for case in args.cases:
        optimizer, k = case.split(":")
        cpu: dict[int, list[float]] = {1: [], 2: []}
        for _ in range(args.repeat):
            for threads in cpu:
                model = FactorizationMachine(
                    predictor_type="regressor",
                    num_factors=int(k),
                    optimizer=optimizer,
                    epochs=1,
                    mini_batch_size=1000,
                    n_threads=threads,
                    deterministic=False,
                    random_state=0,
                )
                start = cpu_seconds()
                model.fit(X, y)
                cpu[threads].append((cpu_seconds() - start) * 1e9 / args.rows)
        one, two = statistics.median(cpu[1]), statistics.median(cpu[2])
        print(
            f"{optimizer} k={k}: CPU ns/sample 1 thread {one:.0f}, 2 threads {two:.0f}, bound 2 x 1/2 = {2 * one / two:.2f}"
        )


if __name__ == "__main__":
    main()
