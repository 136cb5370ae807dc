"""The ``fmfast`` command line: ``demo``, ``convert`` and ``inspect``.

Examples::

    fmfast demo                                   # generate ratings, write RecordIO, read back
    fmfast convert ratings.csv train.recordio     # user,item,rating triples -> one-hot FM rows
    fmfast convert train.libsvm train.recordio    # libSVM/libFM text
    fmfast convert X.npz train.recordio --labels y.npy
    fmfast inspect train.recordio
    fmfast serve model.tar.gz --port 8080             # a local endpoint with the SageMaker contract
    fmfast predict model.fmfast requests.recordio responses.jsonl   # batch transform
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from fmfast import read_recordio, write_recordio
from fmfast.convert import FORMATS, columns_path, convert_file, detect_format
from fmfast.datasets import synthetic_ratings
from fmfast.exceptions import FmFastError
from fmfast.inspect import inspect_recordio
from fmfast.model import FactorizationMachine
from fmfast.transform import load_model, transform_file


def _megabytes(n_bytes: int) -> str:
    return f"{n_bytes / 1e6:,.1f} MB"


def _demo(args: argparse.Namespace) -> int:
    ratings = synthetic_ratings(n_ratings=args.ratings, seed=args.seed)
    X, y = ratings.one_hot()
    print(f"ratings: {len(y):,} from {ratings.n_users:,} users on {ratings.n_items:,} items")
    print(f"features: {X.shape[0]:,} rows x {X.shape[1]:,} columns (one-hot user + item)")
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(args.out) if args.out else Path(scratch) / "train.recordio"
        start = time.perf_counter()
        write_recordio(path, X, y, progress=not args.quiet)
        wrote = time.perf_counter() - start
        size = path.stat().st_size
        start = time.perf_counter()
        X_back, y_back = read_recordio(path)
        read = time.perf_counter() - start
        same = (X_back != X).nnz == 0 and np.array_equal(y_back, y)
    rows = X.shape[0]
    print(f"wrote {path.name}: {_megabytes(size)} in {wrote:.3f} s ({rows / wrote:,.0f} rows/s)")
    print(f"read back: {rows:,} rows in {read:.3f} s ({rows / read:,.0f} rows/s); identical: {same}")
    return 0 if same else 1


def _convert(args: argparse.Namespace) -> int:
    delimiter = {"tab": "\t", "\\t": "\t"}.get(args.delimiter, args.delimiter)
    kind = detect_format(args.input) if args.format == "auto" else args.format
    rows = convert_file(
        args.input,
        args.output,
        format=kind,
        labels=args.labels,
        n_features=args.n_features,
        zero_based=args.zero_based,
        delimiter=delimiter,
        progress=not args.quiet,
    )
    print(f"wrote {rows:,} records to {args.output} ({_megabytes(Path(args.output).stat().st_size)})")
    if kind == "csv":
        print(f"column ids in {columns_path(args.output)}")
    return 0


def _inspect(args: argparse.Namespace) -> int:
    summary = inspect_recordio(args.file, progress=not args.quiet)
    print(f"records:        {summary.records:,}")
    print(f"feature_dim:    {summary.feature_dim:,}")
    print(f"non-zeros:      {summary.nonzeros:,}")
    print(f"feature tensor: {summary.feature_dtype}")
    print(f"label tensor:   {summary.label_dtype}")
    if summary.label_mean is not None:
        low, high, mean = summary.label_min, summary.label_max, summary.label_mean
        print(f"labels:         min {low:g}, max {high:g}, mean {mean:.4g}")
        print(f"label values:   {', '.join(f'{v:g}' for v in summary.label_values)}")
    if summary.fm_trainable:
        print("SageMaker FM:   can train on this file")
    for problem in summary.problems:
        print(f"SageMaker FM:   cannot train: {problem}")
    return 0 if summary.fm_trainable else 1


def _serve(args: argparse.Namespace) -> int:
    from fmfast.serve import serve

    model = load_model(args.model)
    print(
        f"serving a {model.predictor_type} of feature_dim {model.feature_dim_} on http://{args.host}:{args.port}"
    )
    serve(_Scorer(model), host=args.host, port=args.port, max_body_bytes=args.max_body_bytes)
    return 0


class _Scorer:
    """A fitted :class:`FactorizationMachine` as the endpoint sees it."""

    def __init__(self, model: FactorizationMachine) -> None:
        self.model = model
        self.predictor_type = model.predictor_type
        self.feature_dim = model.feature_dim_

    def predict(self, X: object) -> np.ndarray:
        return self.model.predict(X)


def _predict(args: argparse.Namespace) -> int:
    model = load_model(args.model)
    count = transform_file(model, args.input, args.output, content_type=args.content_type, accept=args.accept)
    print(f"scored {count:,} instances into {args.output}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``fmfast`` command."""
    parser = argparse.ArgumentParser(
        prog="fmfast", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser("demo", help="convert generated MovieLens-shaped ratings to RecordIO and back")
    demo.add_argument("--ratings", type=int, default=100_000, help="number of ratings (default 100,000)")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--out", help="keep the RecordIO file here (default: a temporary directory)")
    demo.add_argument("--quiet", action="store_true", help="no progress bar")
    demo.set_defaults(run=_demo)

    convert = commands.add_parser("convert", help="convert libSVM/libFM, CSV triples or .npz to RecordIO")
    convert.add_argument("input")
    convert.add_argument("output")
    convert.add_argument("--format", choices=["auto", *FORMATS], default="auto")
    convert.add_argument("--labels", help=".npy labels for an .npz input")
    convert.add_argument(
        "--n-features", type=int, help="feature dimension of libSVM input (default: inferred)"
    )
    base = convert.add_mutually_exclusive_group()
    base.add_argument(
        "--zero-based",
        dest="zero_based",
        action="store_const",
        const=True,
        help="libSVM indices start at 0 (the default for libfm; libsvm guesses: 0-based iff an index is 0)",
    )
    base.add_argument(
        "--one-based", dest="zero_based", action="store_const", const=False, help="libSVM indices start at 1"
    )
    convert.add_argument(
        "--delimiter",
        help="field separator of CSV input, 'tab' for a tab (default: '::', tab or ',' detected)",
    )
    convert.add_argument("--quiet", action="store_true", help="no progress bar")
    convert.set_defaults(run=_convert)

    inspect = commands.add_parser("inspect", help="summarise a RecordIO file and check it suits SageMaker FM")
    inspect.add_argument("file")
    inspect.add_argument("--quiet", action="store_true", help="no progress bar")
    inspect.set_defaults(run=_inspect)

    serve = commands.add_parser("serve", help="serve a model over HTTP with the SageMaker container contract")
    serve.add_argument("model", help="an fmfast model file or a SageMaker FM model.tar.gz")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument("--max-body-bytes", type=int, default=6 * 1024 * 1024)
    serve.set_defaults(run=_serve)

    predict = commands.add_parser("predict", help="batch transform: score a file of requests into a file")
    predict.add_argument("model", help="an fmfast model file or a SageMaker FM model.tar.gz")
    predict.add_argument("input", help="requests: .recordio, .json or .jsonl (or pass --content-type)")
    predict.add_argument("output")
    predict.add_argument("--content-type", help="request type (default: from the input's suffix)")
    predict.add_argument("--accept", default="application/jsonlines", help="response type")
    predict.set_defaults(run=_predict)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args))
    except (FmFastError, OSError) as error:
        print(f"fmfast {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
