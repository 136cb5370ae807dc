"""One epoch of one fit on one thread, for instruction counts of the training kernels.

Usage::

    valgrind --tool=callgrind --collect-atstart=no --toggle-collect='*Trainer*run_avx2*' \\
        .venv/bin/python benches/one_fit.py --optimizer sgd --k 8 --batch 1000 [--rows 200000]

Data: ``--rows`` ratings of 100,000 users x 20,000 items (the 5M set's users and items, so that
each batch's rows are spread over a model as large as the full set's), one-hot user + item rows.
Divide the instructions callgrind counts by ``--rows`` for the instructions a sample. ``--threads 2
--concurrent`` trains with ``deterministic=False`` on 2 threads (callgrind runs them one at a time, so
the count is their instructions together).
"""

from __future__ import annotations

import argparse

from fmfast import FactorizationMachine
from fmfast.recsys.datasets import synthetic_ratings
from workloads import RATINGS_ITEMS, RATINGS_USERS


def main() -> None:
    """Generate the data, then train one epoch."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--optimizer", default="sgd")
    parser.add_argument("--k", type=int, default=8)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--concurrent", action="store_true", help="deterministic=False")
    args = parser.parse_args()
    X, y = synthetic_ratings(RATINGS_USERS, RATINGS_ITEMS, args.rows, seed=0).one_hot()
    model = FactorizationMachine(
        predictor_type="regressor",
        num_factors=args.k,
        optimizer=args.optimizer,
        epochs=1,
        mini_batch_size=args.batch,
        n_threads=args.threads,
        deterministic=not args.concurrent,
        random_state=0,
    )
    model.fit(X, y)


if __name__ == "__main__":
    main()
