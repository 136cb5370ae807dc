"""The ``fmfast`` command line: demo, convert, inspect, train, evaluate, recommend, serve, predict.

Examples::

    fmfast demo                                   # ratings -> RecordIO -> train -> evaluate -> top-10
    fmfast convert ratings.csv train.recordio     # user,item,rating triples -> one-hot FM rows
    fmfast convert test.csv test.recordio --columns train.recordio.columns.json   # same columns
    fmfast convert train.libsvm train.recordio    # libSVM/libFM text
    fmfast convert X.npz train.recordio --labels y.npy
    fmfast inspect train.recordio
    fmfast serve model.tar.gz --port 8080             # a local endpoint with the SageMaker contract
    fmfast predict model.fmfast requests.recordio responses.jsonl   # batch transform
    fmfast evaluate model.fmfast test.csv --columns train.recordio.columns.json
    fmfast predict model.fmfast pairs.csv scores.csv --columns train.recordio.columns.json
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from fmfast import read_recordio, write_recordio
from fmfast._atomic import atomic_output
from fmfast.convert import (
    FORMATS,
    UNKNOWN,
    columns_path,
    convert_file,
    detect_format,
    load_columns,
    ratings_one_hot,
)
from fmfast.datasets import Ratings, synthetic_ratings
from fmfast.evaluation import leave_n_out, ndcg_at_k, precision_at_k
from fmfast.exceptions import FmFastError, InvalidInputError
from fmfast.implicit import sample_negatives
from fmfast.inspect import inspect_recordio
from fmfast.model import FactorizationMachine
from fmfast.ratings import load_ratings
from fmfast.recommend import most_popular, one_hot, recommend
from fmfast.transform import load_model, transform_file


def _megabytes(n_bytes: int) -> str:
    return f"{n_bytes / 1e6:,.1f} MB"


#: Settings tuned on a validation split of MovieLens-100K (benches/movielens_accuracy.py).
DEMO_HYPERPARAMETERS = {
    "mini_batch_size": 100,
    "bias_lr": 0.001,
    "linear_lr": 0.001,
    "factors_lr": 0.001,
    "linear_wd": 0.001,
    "factors_wd": 0.001,
    "factors_init_sigma": 0.01,
}

#: The ranking model: a classifier of rated vs sampled unrated pairs, 64 factors, settings
#: chosen on a validation hold-out (the 10 ratings before each user's last 10) of MovieLens-100K.
RANKING_HYPERPARAMETERS = {
    "mini_batch_size": 1000,
    "bias_lr": 0.001,
    "linear_lr": 0.001,
    "factors_lr": 0.001,
    "linear_wd": 1e-5,
    "factors_wd": 1e-5,
}
RANKING_NEGATIVES = 4
HELD_OUT = 10


def _timed(work: Callable[[], object]) -> tuple[Any, float]:
    start = time.perf_counter()
    result = work()
    return result, time.perf_counter() - start


def _load_demo_ratings(args: argparse.Namespace) -> tuple[Ratings, np.ndarray | None, str]:
    if args.ratings_file:
        loaded = load_ratings(args.ratings_file)
        return loaded.to_ratings(), loaded.timestamps, args.ratings_file
    return (
        synthetic_ratings(n_ratings=args.ratings, seed=args.seed),
        None,
        "generated MovieLens-shaped ratings",
    )


def _demo(args: argparse.Namespace) -> int:
    ratings, timestamps, source = _load_demo_ratings(args)
    X, y = ratings.one_hot()
    users, items = ratings.users, ratings.items
    n_users, n_items = ratings.n_users, ratings.n_items
    print(f"{source}: {len(y):,} ratings from {n_users:,} users on {n_items:,} items")
    train, test = leave_n_out(users, HELD_OUT, timestamps, seed=args.seed)
    held_out = "latest" if timestamps is not None else "random"
    print(f"test set: the {held_out} {HELD_OUT} ratings of each user ({len(test):,} ratings)")
    summary: list[tuple[str, str]] = []
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(args.out) if args.out else Path(scratch) / "train.recordio"
        _, wrote = _timed(lambda: write_recordio(path, X[train], y[train], progress=not args.quiet))
        (X_back, y_back), read = _timed(lambda: read_recordio(path))
        same = (X_back != X[train]).nnz == 0 and np.array_equal(y_back, y[train])
        summary.append(("RecordIO written", f"{_megabytes(path.stat().st_size)} in {wrote:.3f} s"))
        summary.append(("RecordIO read back", f"{read:.3f} s, identical: {same}"))
        regressor = FactorizationMachine(
            "regressor",
            8,
            epochs=args.epochs,
            random_state=0,
            progress=not args.quiet,
            **DEMO_HYPERPARAMETERS,
        )
        _, trained = _timed(lambda: regressor.fit(path))
    test_rmse = regressor.evaluate(X[test], y[test])["rmse"]
    baseline = float(np.sqrt(np.mean((y[test] - y[train].mean()) ** 2)))
    summary.append((f"rating FM trained from RecordIO, {args.epochs} epochs", f"{trained:.2f} s"))
    summary.append(("test RMSE (predicting the mean)", f"{test_rmse:.4f} ({baseline:.4f})"))

    pairs = sample_negatives(users[train], items[train], n_users, n_items, RANKING_NEGATIVES, seed=args.seed)
    ranker = FactorizationMachine(
        "binary_classifier",
        64,
        epochs=args.epochs,
        random_state=0,
        progress=not args.quiet,
        **RANKING_HYPERPARAMETERS,
    )
    _, trained = _timed(lambda: ranker.fit(*pairs.one_hot()))
    summary.append((f"ranking FM (rated vs {RANKING_NEGATIVES} sampled unrated)", f"{trained:.2f} s"))

    seen = _pairs_matrix(users[train], items[train], n_users, n_items)
    liked = test[y[test] >= 4]
    relevant = _pairs_matrix(users[liked], items[liked], n_users, n_items)
    d = X.shape[1]
    every_user, every_item = one_hot(np.arange(n_users), 0, d), one_hot(np.arange(n_items), n_users, d)
    (top, scores), ranked = _timed(lambda: recommend(ranker, every_user, every_item, 10, exclude=seen))
    by_rating, _ = recommend(regressor, every_user, every_item, 10, exclude=seen)
    popularity = np.bincount(items[train], minlength=n_items).astype(np.float32)
    popular, _ = most_popular(popularity, seen, 10)
    for name, lists in (("ranking FM", top), ("rating FM", by_rating), ("most popular", popular)):
        precision, ndcg = precision_at_k(lists, relevant), ndcg_at_k(lists, relevant)
        summary.append(
            (f"{name}: precision@10 / NDCG@10 (test ratings >= 4)", f"{precision:.4f} / {ndcg:.4f}")
        )
    summary.append(("top-10 for every user", f"{ranked:.3f} s"))

    print()
    for user in range(min(3, n_users)):
        shown = ", ".join(
            f"{item} ({score:.2f})" for item, score in zip(top[user], scores[user], strict=True)
        )
        print(f"top-10 for user {user}: {shown}")
    print()
    width = max(len(name) for name, _ in summary)
    for name, value in summary:
        print(f"{name:<{width}}  {value}")
    return 0 if same else 1


def _pairs_matrix(users: np.ndarray, items: np.ndarray, n_users: int, n_items: int) -> sp.csr_array:
    """Users x items, 1 where the pair occurs."""
    return sp.csr_array((np.ones(len(users)), (users, items)), shape=(n_users, n_items))


def _train(args: argparse.Namespace) -> int:
    hyperparameters = dict(_hyperparameter(text) for text in args.hyperparameter)
    model = FactorizationMachine(
        args.predictor_type, args.num_factors, progress=not args.quiet, **hyperparameters
    )
    eval_set = None
    if args.validation:
        eval_set = read_recordio(args.validation)
    try:
        model.fit(args.train, eval_set=eval_set, early_stopping_rounds=args.early_stopping_rounds)
    except KeyboardInterrupt:
        # fit keeps the model of the last complete epoch: write it rather than lose the epochs done.
        if not getattr(model, "history_", None):
            print("fmfast train: interrupted before the first epoch ended; nothing written", file=sys.stderr)
            return 130
        print(
            f"fmfast train: interrupted; writing the model after {len(model.history_)} complete epochs",
            file=sys.stderr,
        )
        _write_trained(model, args)
        return 130
    _write_trained(model, args)
    return 0


def _write_trained(model: FactorizationMachine, args: argparse.Namespace) -> None:
    model.save(args.model) if not args.sagemaker else model.to_sagemaker(args.model)
    for entry in model.history_:
        print(json.dumps(entry))
    print(f"wrote {args.model}")


def _hyperparameter(text: str) -> tuple[str, Any]:
    name, _, value = text.partition("=")
    if not value:
        raise InvalidInputError(f"expected NAME=VALUE, got {text!r}")
    try:
        return name, json.loads(value)
    except json.JSONDecodeError:
        return name, value


def _ratings_rows(
    model: FactorizationMachine, args: argparse.Namespace, path: str, *, pairs: bool
) -> tuple[sp.csr_array, np.ndarray | None, np.ndarray, np.ndarray]:
    """``ratings_one_hot`` of a ratings (or pairs) file in the model's vocabulary ``--columns``."""
    if args.columns is None:
        raise InvalidInputError(
            f"{path} is a ratings file: pass --columns with the .columns.json that "
            "`fmfast convert` wrote for the training ratings"
        )
    n_cols = sum(map(len, load_columns(args.columns)))
    if n_cols != model.feature_dim_:
        raise InvalidInputError(
            f"{args.columns} has {n_cols} columns but the model has feature_dim "
            f"{model.feature_dim_}: it is not the vocabulary the model was trained with"
        )
    return ratings_one_hot(path, args.columns, pairs=pairs, unknown=args.unknown_ids)


def _is_ratings(path: str, args: argparse.Namespace) -> bool:
    """Whether ``path`` is a ratings file: ``--columns`` is given or the suffix says csv."""
    if args.columns is not None:
        return True
    try:
        return detect_format(path) == "csv"
    except InvalidInputError:
        return False


def _evaluate(args: argparse.Namespace) -> int:
    model = load_model(args.model)
    if _is_ratings(args.data, args):
        X, y, _, _ = _ratings_rows(model, args, args.data, pairs=False)
    else:
        X, y = read_recordio(args.data)
    if y is None:
        raise InvalidInputError(f"{args.data} has no labels to evaluate against")
    print(json.dumps(model.evaluate(X, y), indent=1))
    return 0


def _recommend(args: argparse.Namespace) -> int:
    model = load_model(args.model)
    columns = json.loads(Path(args.columns).read_text())
    user_ids, item_ids = [str(u) for u in columns["users"]], [str(i) for i in columns["items"]]
    lookup = {user: code for code, user in enumerate(user_ids)}
    unknown = [user for user in args.user if user not in lookup]
    if unknown:
        raise InvalidInputError(f"unknown user ids: {', '.join(unknown)}")
    codes = np.array([lookup[user] for user in args.user], dtype=np.int64)
    d = len(user_ids) + len(item_ids)
    exclude = None
    if args.exclude_seen:
        X_seen, _ = read_recordio(args.exclude_seen)
        pairs = X_seen.indices.reshape(-1, 2)
        seen = sp.csr_array(
            (np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1] - len(user_ids))),
            shape=(len(user_ids), len(item_ids)),
        )
        exclude = seen[codes]
    top, scores = recommend(
        model,
        one_hot(codes, 0, d),
        one_hot(np.arange(len(item_ids)), len(user_ids), d),
        args.k,
        exclude=exclude,
    )
    for user, items, values in zip(args.user, top, scores, strict=True):
        ranked = [
            {"item": item_ids[i], "score": float(v)} for i, v in zip(items, values, strict=True) if i >= 0
        ]
        print(json.dumps({"user": user, "recommendations": ranked}))
    return 0


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
        columns=args.columns,
        unknown=args.unknown_ids,
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
    if _is_ratings(args.input, args):
        return _predict_pairs(model, args)
    count = transform_file(model, args.input, args.output, content_type=args.content_type, accept=args.accept)
    print(f"scored {count:,} instances into {args.output}")
    return 0


def _predict_pairs(model: FactorizationMachine, args: argparse.Namespace) -> int:
    """Scores of the (user, item) pairs of a ratings or pairs file, as CSV ``user,item,score``."""
    X, _, users, items = _ratings_rows(model, args, args.input, pairs=True)
    scores: Any = model.predict(X) if X.shape[0] else np.zeros(0)
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(["user", "item", "score"])
    scores = np.asarray(scores, np.float64).tolist()
    writer.writerows(zip(users.tolist(), items.tolist(), scores, strict=True))
    with atomic_output(args.output) as out:
        out.write(text.getvalue().encode())
    print(f"scored {X.shape[0]:,} pairs into {args.output}")
    return 0


def _vocabulary_options(command: argparse.ArgumentParser, what: str) -> None:
    """``--columns`` and ``--unknown-ids``: how ``command`` codes the ids of a ratings file."""
    command.add_argument(
        "--columns",
        help=f"the .columns.json `fmfast convert` wrote for the training ratings: {what} uses its ids",
    )
    command.add_argument(
        "--unknown-ids",
        choices=UNKNOWN,
        default="error",
        help="an id absent from --columns: refuse the file naming it (default), or give it no column",
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``fmfast`` command."""
    parser = argparse.ArgumentParser(
        prog="fmfast", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser(
        "demo", help="ratings -> RecordIO -> FM training -> evaluation -> top-10 (default: generated ratings)"
    )
    demo.add_argument(
        "--ratings", type=int, default=100_000, help="number of generated ratings (default 100,000)"
    )
    demo.add_argument(
        "--ratings-file", help="use this ratings file (u.data, ratings.dat, ratings.csv, .inter)"
    )
    demo.add_argument("--epochs", type=int, default=30)
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
        help="field separator of CSV input, 'tab' for a tab (default: '::', tab, ',' or ';' detected)",
    )
    _vocabulary_options(convert, "a test set converted")
    convert.add_argument("--quiet", action="store_true", help="no progress bar")
    convert.set_defaults(run=_convert)

    inspect = commands.add_parser("inspect", help="summarise a RecordIO file and check it suits SageMaker FM")
    inspect.add_argument("file")
    inspect.add_argument("--quiet", action="store_true", help="no progress bar")
    inspect.set_defaults(run=_inspect)

    train = commands.add_parser(
        "train",
        help="train an FM on RecordIO (a file or a directory of shards)",
        epilog="example: fmfast train train.recordio model.fmfast --num-factors 8 -H epochs=20",
    )
    train.add_argument("train", help="training RecordIO file or directory of shards")
    train.add_argument("model", help="where to write the model")
    train.add_argument("--predictor-type", default="regressor", choices=["regressor", "binary_classifier"])
    train.add_argument("--num-factors", type=int, default=64)
    train.add_argument(
        "-H", "--hyperparameter", action="append", default=[], help="NAME=VALUE, SageMaker names"
    )
    train.add_argument("--validation", help="RecordIO evaluated after every epoch")
    train.add_argument("--early-stopping-rounds", type=int)
    train.add_argument("--sagemaker", action="store_true", help="write a SageMaker model.tar.gz instead")
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    train.set_defaults(run=_train)

    evaluate = commands.add_parser(
        "evaluate", help="SageMaker's test metrics of a model on labelled RecordIO"
    )
    evaluate.add_argument("model", help="an fmfast model file or a SageMaker FM model.tar.gz")
    evaluate.add_argument("data", help="labelled RecordIO file, or ratings file (with --columns)")
    _vocabulary_options(evaluate, "the ratings file")
    evaluate.set_defaults(run=_evaluate)

    recommend_cmd = commands.add_parser(
        "recommend",
        help="top-K items for users of a one-hot user + item model",
        epilog="example: fmfast recommend model.fmfast train.recordio.columns.json --user 196 -k 10",
    )
    recommend_cmd.add_argument("model")
    recommend_cmd.add_argument(
        "columns", help="the .columns.json that `fmfast convert` wrote for the ratings"
    )
    recommend_cmd.add_argument("--user", action="append", required=True, help="a user id (repeatable)")
    recommend_cmd.add_argument("-k", type=int, default=10)
    recommend_cmd.add_argument(
        "--exclude-seen", help="RecordIO of the training ratings: skip items already rated"
    )
    recommend_cmd.set_defaults(run=_recommend)

    serve = commands.add_parser("serve", help="serve a model over HTTP with the SageMaker container contract")
    serve.add_argument("model", help="an fmfast model file or a SageMaker FM model.tar.gz")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument("--max-body-bytes", type=int, default=6 * 1024 * 1024)
    serve.set_defaults(run=_serve)

    predict = commands.add_parser("predict", help="batch transform: score a file of requests into a file")
    predict.add_argument("model", help="an fmfast model file or a SageMaker FM model.tar.gz")
    predict.add_argument(
        "input",
        help="requests: .recordio, .json or .jsonl (or pass --content-type); or a ratings or "
        "user,item pairs file (with --columns), scored into CSV user,item,score",
    )
    predict.add_argument("output")
    predict.add_argument("--content-type", help="request type (default: from the input's suffix)")
    predict.add_argument("--accept", default="application/jsonlines", help="response type")
    _vocabulary_options(predict, "the pairs file")
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
