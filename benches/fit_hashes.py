"""Hashes of 432 fits: the check that a change to the training kernels leaves every result bit for bit.

Usage::

    .venv/bin/python benches/fit_hashes.py [--out PATH] [--compare PATH]

Trains every combination of k (3, 8, 16, 32, 64, 65: the sizes compiled as constants and two that
are not, one below a lane of four and one past a multiple of it), optimizer (SGD, Adam, AdaGrad),
task (regressor, binary classifier), ``mini_batch_size`` (1, 7, 100, 1000) and ``n_threads``
(1, 2, 3), ``deterministic=True``, two epochs of a generated problem whose values span four orders
of magnitude (so that any change in the order or rounding of the arithmetic shows; ``clip_gradient``
keeps such a problem from diverging), and prints one
SHA-256 per fit of its weights, optimizer state, update count and predictions. ``--out`` writes
them to a JSON file; ``--compare`` reads such a file (of another build) and exits 1 naming every fit
whose hash differs.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import sys
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from fmfast import FactorizationMachine

KS = (3, 8, 16, 32, 64, 65)
OPTIMIZERS = ("sgd", "adam", "adagrad")
TASKS = ("regressor", "binary_classifier")
BATCHES = (1, 7, 100, 1000)
THREADS = (1, 2, 3)
ROWS, FEATURES = 1500, 400


def problem() -> tuple[sp.csr_array, np.ndarray, np.ndarray]:
    """Rows of 1-6 features (a popular one in half of them) with values from 1e-2 to 1e2, and labels."""
    rng = np.random.default_rng(17)
    counts = rng.integers(1, 7, size=ROWS)
    indptr = np.concatenate([[0], np.cumsum(counts)])
    columns = [rng.choice(FEATURES, size=c, replace=False) for c in counts]
    for row in range(0, ROWS, 2):
        columns[row][0] = 0
    indices = np.concatenate([np.sort(c) for c in columns])
    values = 10.0 ** rng.uniform(-2.0, 2.0, size=indices.size) * rng.choice([-1.0, 1.0], size=indices.size)
    X = sp.csr_array((values, indices, indptr), shape=(ROWS, FEATURES))
    ratings = rng.uniform(1.0, 5.0, size=ROWS)
    return X, ratings, (ratings > 3.0).astype(np.float64)


def fit_hash(
    X: sp.csr_array, y: np.ndarray, k: int, optimizer: str, task: str, batch: int, threads: int
) -> str:
    """SHA-256 of one fit's weights, state, update count and predictions."""
    model = FactorizationMachine(
        predictor_type=task,
        num_factors=k,
        optimizer=optimizer,
        epochs=2,
        mini_batch_size=batch,
        n_threads=threads,
        deterministic=True,
        random_state=3,
        factors_lr=0.01,
        linear_lr=0.01,
        factors_init_sigma=0.1,
        clip_gradient=5.0,
    )
    model.fit(X, y)
    digest = hashlib.sha256()
    state = model._fitted_state()
    for name in ("bias", "linear", "factors", "bias_state", "linear_state", "factors_state"):
        digest.update(np.ascontiguousarray(getattr(state, name)).tobytes())
    digest.update(str(model.n_updates_).encode())
    digest.update(np.ascontiguousarray(model.predict_score(X)).tobytes())
    return digest.hexdigest()


def main() -> int:
    """Train every fit, print (and write) the hashes, compare with ``--compare``'s."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, help="write the hashes to this JSON file")
    parser.add_argument("--compare", type=Path, help="a JSON file of another build's hashes")
    args = parser.parse_args()
    X, ratings, labels = problem()
    hashes = {}
    for k, optimizer, task, batch, threads in itertools.product(KS, OPTIMIZERS, TASKS, BATCHES, THREADS):
        name = f"k={k} {optimizer} {task} batch={batch} threads={threads}"
        y = ratings if task == "regressor" else labels
        hashes[name] = fit_hash(X, y, k, optimizer, task, batch, threads)
        print(name, hashes[name], flush=True)
    if args.out:
        args.out.write_text(json.dumps(hashes, indent=1))
    if args.compare:
        other = json.loads(args.compare.read_text())
        differ = [name for name, value in hashes.items() if other.get(name) != value]
        print(f"{len(hashes) - len(differ)} of {len(hashes)} fits hash as in {args.compare}")
        for name in differ:
            print("differs:", name)
        return 1 if differ else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
