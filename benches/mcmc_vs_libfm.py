"""fmfast's MCMC and libFM's on the same MovieLens-100K split and features, over several seeds (issue 18).

    python benches/mcmc_vs_libfm.py --wheel recbole-1.2.1-py3-none-any.whl --seeds 5 \\
        --libfm /path/to/libfm/bin/libFM [--features one-hot implicit] [--sweeps 500]

The split and designs of ``benches/bayes_report.py`` (80/20, ``default_rng(42)``, one-hot user +
movie, and the encoder's implicit-feedback block), ``num_factors=8``, default settings, groups from
the encoder's blocks. fmfast runs ``random_state`` 0 .. seeds-1; with ``--libfm`` the script also
writes the same matrices as libFM text files (each block a ``-meta`` group), runs
``libFM -method mcmc -dim 1,1,8 -iter SWEEPS -seed s`` for s = 1 .. seeds (libFM's defaults
otherwise: ``init_stdev`` 0.1, every sweep averaged, predictions clipped to the training range) and
reads its last reported test RMSE. Prints each tool's test RMSE per seed, mean and range.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from bayes_report import split
from fmfast import FactorizationMachine
from movielens_accuracy import Design, load_movielens


def write_libfm(path: Path, X: Any, y: np.ndarray) -> None:
    """Rows as libFM's text format: ``label index:value ...``."""
    X = X.tocsr()
    with path.open("w") as out:
        for r in range(X.shape[0]):
            lo, hi = X.indptr[r], X.indptr[r + 1]
            entries = " ".join(f"{j}:{v:.9g}" for j, v in zip(X.indices[lo:hi], X.data[lo:hi], strict=True))
            out.write(f"{y[r]:g} {entries}\n")


def libfm_rmse(binary: str, folder: Path, sweeps: int, seed: int) -> float:
    """libFM MCMC's test RMSE after ``sweeps`` sweeps (its last ``Test=`` line)."""
    command = [binary, "-task", "r", "-method", "mcmc", "-dim", "1,1,8", "-iter", str(sweeps)]
    command += ["-train", str(folder / "train.libfm"), "-test", str(folder / "test.libfm")]
    command += ["-meta", str(folder / "groups.meta"), "-seed", str(seed)]
    log = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    return float(re.findall(r"Test=([0-9.]+)", log)[-1])


def summary(name: str, rmse: list[float]) -> str:
    shown = ", ".join(f"{r:.4f}" for r in rmse)
    return f"| {name} | {shown} | {np.mean(rmse):.4f} | {min(rmse):.4f}-{max(rmse):.4f} |"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--wheel", required=True, help="recbole-1.2.1-py3-none-any.whl (holds ml-100k)")
    parser.add_argument("--libfm", help="libFM's binary (bin/libFM of its source, built with make)")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--sweeps", type=int, default=500)
    parser.add_argument("--features", nargs="+", choices=("one-hot", "implicit"), default=["one-hot"])
    args = parser.parse_args(argv)
    data = load_movielens(args.wheel)
    train, test = split(len(data.ratings))
    y_train, y_test = data.ratings[train], data.ratings[test]
    rows = []
    for features in args.features:
        design = Design(data, features, train, None, 1.0)
        X_train, X_test = design(train), design(test)
        fmfast_rmse = []
        for seed in range(args.seeds):
            model = FactorizationMachine(
                num_factors=8, optimizer="mcmc", epochs=args.sweeps, random_state=seed
            )
            model.fit(X_train, y_train, groups=design.encoder)
            fmfast_rmse.append(model.evaluate(X_test, y_test)["rmse"])
            print(features, "fmfast", seed, fmfast_rmse[-1], flush=True)
        rows.append(summary(f"fmfast, {features}, {args.sweeps} sweeps", fmfast_rmse))
        if args.libfm:
            with tempfile.TemporaryDirectory() as folder:
                folder = Path(folder)
                write_libfm(folder / "train.libfm", X_train, y_train)
                write_libfm(folder / "test.libfm", X_test, y_test)
                groups = np.repeat(
                    np.arange(len(design.encoder.blocks)), [b.size for b in design.encoder.blocks]
                )
                (folder / "groups.meta").write_text("".join(f"{g}\n" for g in groups))
                libfm = []
                for seed in range(1, args.seeds + 1):
                    libfm.append(libfm_rmse(args.libfm, folder, args.sweeps, seed))
                    print(features, "libFM", seed, libfm[-1], flush=True)
            rows.append(summary(f"libFM, {features}, {args.sweeps} sweeps", libfm))
    print("\n| run | test RMSE per seed | mean | range |\n|---|---|---:|---:|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
