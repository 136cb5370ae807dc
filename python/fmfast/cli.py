"""The ``fmfast`` command line: demo, split, convert, inspect, train, evaluate, recommend, serve, predict.

Examples::

    fmfast demo                                   # ratings -> RecordIO -> train -> evaluate -> top-10
    fmfast split ratings.csv train.csv test.csv   # hold out 20% of the ratings at random
    fmfast split u.data train.csv test.csv --method leave-n-out --n 10   # each user's latest 10
    fmfast convert ratings.csv train.recordio     # user,item,rating triples -> one-hot FM rows
    fmfast convert test.csv test.recordio --columns train.recordio.columns.json   # same columns
    fmfast convert train.libsvm train.recordio    # libSVM/libFM text
    fmfast convert X.npz train.recordio --labels y.npy
    fmfast convert lake/ train/ --label rating --one-hot user,item --multi-hot genres --shards 8 --manifest
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
import math
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Mapping, Sequence
from inspect import Parameter, signature
from pathlib import Path
from typing import Any, NoReturn, TypedDict

import numpy as np
import scipy.sparse as sp

from fmfast import read_recordio, write_recordio
from fmfast._atomic import atomic_output, check_writable
from fmfast._json import loads
from fmfast._storage import size as storage_size
from fmfast.exceptions import FmFastError, InvalidInputError
from fmfast.interop.transform import read_model, transform_file
from fmfast.recordio.convert import (
    FORMATS,
    UNKNOWN,
    columns_path,
    convert_file,
    detect_format,
    ratings_one_hot,
    read_columns,
)
from fmfast.recordio.inspection import inspect_recordio
from fmfast.recordio.tables import convert_table, encoder_path, is_table_path
from fmfast.recsys.datasets import Ratings, synthetic_ratings
from fmfast.recsys.evaluation import leave_n_out, ndcg_at_k, precision_at_k, random_split, temporal_split
from fmfast.recsys.features import FeatureEncoder
from fmfast.recsys.implicit import sample_negatives
from fmfast.recsys.ratings import RatingsData, read_ratings
from fmfast.recsys.recommend import most_popular, one_hot, recommend
from fmfast.training.estimator import FactorizationMachine


def _megabytes(n_bytes: int) -> str:
    return f"{n_bytes / 1e6:,.1f} MB"


class _Tuned(TypedDict, total=False):
    """Hyperparameters of a tuned set: keywords of :class:`fmfast.FactorizationMachine`."""

    mini_batch_size: int
    bias_lr: float
    linear_lr: float
    factors_lr: float
    linear_wd: float
    factors_wd: float
    factors_init_sigma: float


#: Settings tuned on a validation split of MovieLens-100K (benches/movielens_accuracy.py).
DEMO_HYPERPARAMETERS: _Tuned = {
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
RANKING_HYPERPARAMETERS: _Tuned = {
    "mini_batch_size": 1000,
    "bias_lr": 0.001,
    "linear_lr": 0.001,
    "factors_lr": 0.001,
    "linear_wd": 1e-5,
    "factors_wd": 1e-5,
}
RANKING_NEGATIVES = 4
HELD_OUT = 10

#: Named sets of hyperparameters for ``train --preset`` (``-H`` overrides them one by one).
PRESETS: dict[str, _Tuned] = {"movielens": DEMO_HYPERPARAMETERS}

#: What ``-H NAME=VALUE`` may set, with defaults: the estimator's keyword arguments, except
#: ``progress`` (the CLI's ``--quiet``).
HYPERPARAMETERS = {
    name: parameter.default
    for name, parameter in signature(FactorizationMachine).parameters.items()
    if parameter.kind is Parameter.KEYWORD_ONLY and name != "progress"
}


class _UsageError(Exception):
    """Arguments that parse but do not fit together; reported as argparse reports its own (exit 2)."""


def _timed(work: Callable[[], object]) -> tuple[Any, float]:
    start = time.perf_counter()
    result = work()
    return result, time.perf_counter() - start


def _load_demo_ratings(args: argparse.Namespace) -> tuple[Ratings, np.ndarray | None, str]:
    if args.ratings_file:
        loaded = read_ratings(args.ratings_file)
        return loaded.to_ratings(), loaded.timestamps, args.ratings_file
    return (
        synthetic_ratings(n_ratings=args.ratings, seed=args.seed),
        None,
        "generated MovieLens-shaped ratings",
    )


def _demo(args: argparse.Namespace) -> int:
    if args.out:
        check_writable(args.out)
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
    model = _estimator(args)
    check_writable(args.model)
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


def _estimator(args: argparse.Namespace) -> FactorizationMachine:
    """The model ``train`` fits: the preset's hyperparameters, then ``-H``'s, checked together."""
    hyperparameters = {**PRESETS.get(args.preset, {}), **dict(args.hyperparameter)}
    model = FactorizationMachine(
        args.predictor_type, args.num_factors, progress=not args.quiet, **hyperparameters
    )
    try:
        model._check_params()  # what fit would refuse, refused before any file is read
    except InvalidInputError as error:
        raise _UsageError(error) from None
    return model


def _hyperparameter(text: str) -> tuple[str, Any]:
    """``-H NAME=VALUE``: VALUE as JSON (``0.01``, ``null``), else as text."""
    name, _, value = text.partition("=")
    if not value:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    if name not in HYPERPARAMETERS:
        raise argparse.ArgumentTypeError(f"unknown hyperparameter {name!r} (fmfast train --help lists them)")
    try:
        return name, loads(value, f"hyperparameter {name}")
    except InvalidInputError:
        return name, value


def _within(
    kind: Callable[[str], float], low: float, high: float = math.inf, what: str = "a whole number"
) -> Callable[[str], Any]:
    """An argparse ``type`` reading ``kind`` (int, float) from ``low`` to ``high`` inclusive."""
    bounds = f"from {low:g} to {high:g}" if high < math.inf else f"of at least {low:g}"

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            value = math.nan
        if not low <= value <= high:  # NaN included
            raise argparse.ArgumentTypeError(f"expected {what} {bounds}, got {text!r}")
        return value

    return parse


def _hyperparameters_epilog() -> str:
    """``train --help``'s list of the ``-H`` names with their defaults, and of the presets."""

    def listed(values: Mapping[str, object], indent: str = "  ") -> str:
        text = " ".join(f"{name}={value}" for name, value in values.items())
        return textwrap.fill(text, width=96, initial_indent=indent, subsequent_indent=indent)

    presets = "\n".join(f"  {name}:\n{listed(values, '    ')}" for name, values in PRESETS.items())
    return (
        "hyperparameters (-H NAME=VALUE), with their defaults:\n"
        f"{listed(HYPERPARAMETERS)}\n\n"
        f"presets (--preset NAME):\n{presets}\n\n"
        "example: fmfast train train.recordio model.fmfast --num-factors 8 -H epochs=20"
    )


def _split(args: argparse.Namespace) -> int:
    for output in (args.train, args.test):
        check_writable(output)
    data = read_ratings(args.ratings, delimiter=args.delimiter)
    if args.method == "random":
        train, test = random_split(len(data), args.test_fraction, seed=args.seed)
    elif args.method == "leave-n-out":
        train, test = leave_n_out(data.users, args.n, data.timestamps, seed=args.seed)
    else:
        if data.timestamps is None:
            raise InvalidInputError(f"{args.ratings} has no timestamps to split by time")
        cut = args.cut
        if cut is None:  # the time of the first of the latest --test-fraction ratings (ties join it)
            times = np.sort(data.timestamps)
            n_test = round(args.test_fraction * len(times))
            cut = int(times[-n_test]) if n_test else int(times[-1]) + 1
        train, test = temporal_split(data.timestamps, cut)
    for output, rows in ((args.train, train), (args.test, test)):
        with atomic_output(output) as out:
            out.write(_ratings_csv(data, rows).encode())
    print(f"wrote {len(train):,} ratings to {args.train} and {len(test):,} to {args.test}")
    return 0


def _ratings_csv(data: RatingsData, rows: np.ndarray) -> str:
    """Rows of ``data`` as CSV: a ``user,item,rating[,timestamp]`` header, the file's own ids."""
    columns = [data.user_ids[data.users[rows]], data.item_ids[data.items[rows]], data.ratings[rows]]
    header = ["user", "item", "rating"]
    if data.timestamps is not None:
        columns.append(data.timestamps[rows])
        header.append("timestamp")
    fields = [column.astype(str) for column in columns]  # float32 ratings print shortest: 3.5
    for ids in fields[:2]:
        commas = np.char.find(ids, ",") >= 0
        if commas.any():
            raise InvalidInputError(f"id {ids[commas][0]!r} holds a comma, which a CSV field cannot")
    return "\n".join([",".join(header), *map(",".join, zip(*fields, strict=True)), ""])


def _ratings_rows(
    model: FactorizationMachine, args: argparse.Namespace, path: str, *, pairs: bool
) -> tuple[sp.csr_array, np.ndarray | None, np.ndarray, np.ndarray]:
    """``ratings_one_hot`` of a ratings (or pairs) file in the model's vocabulary ``--columns``."""
    if args.columns is None:
        raise InvalidInputError(
            f"{path} is a ratings file: pass --columns with the .columns.json that "
            "`fmfast convert` wrote for the training ratings"
        )
    n_cols = sum(map(len, read_columns(args.columns)))
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
    model = read_model(args.model)
    if _is_ratings(args.data, args):
        X, y, _, _ = _ratings_rows(model, args, args.data, pairs=False)
    else:
        X, y = read_recordio(args.data)
    if y is None:
        raise InvalidInputError(f"{args.data} has no labels to evaluate against")
    print(json.dumps(model.evaluate(X, y), indent=1))
    return 0


def _recommend(args: argparse.Namespace) -> int:
    model = read_model(args.model)
    user_ids, item_ids = read_columns(args.columns)
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


#: ``fmfast convert``'s options for Parquet input: how the columns become features.
_BLOCK_OPTIONS = {"one_hot": "one_hot", "multi_hot": "multi_hot", "numeric": "numeric"}
_TABLE_OPTIONS = ("label", "encoder", "shards", "rows_per_shard", "manifest", *_BLOCK_OPTIONS)


def _convert(args: argparse.Namespace) -> int:
    if args.format == "parquet" or (args.format == "auto" and is_table_path(args.input)):
        return _convert_table(args)
    given = [name for name in _TABLE_OPTIONS if getattr(args, name) not in (None, [], False)]
    if given:
        raise _UsageError(f"--{given[0].replace('_', '-')} applies to Parquet input only")
    check_writable(args.output)
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
    print(f"wrote {rows:,} records to {args.output} ({_megabytes(storage_size(args.output))})")
    if kind == "csv":
        print(f"column ids in {columns_path(args.output)}")
    return 0


def _convert_table(args: argparse.Namespace) -> int:
    """``fmfast convert`` of a Parquet file, directory or glob: encoder from the options or ``--encoder``."""
    text_options = ("labels", "n_features", "zero_based", "delimiter", "columns")
    misplaced = [name for name in text_options if getattr(args, name) is not None]
    if misplaced:
        raise _UsageError(f"--{misplaced[0].replace('_', '-')} does not apply to Parquet input")
    blocks = [(kind, name) for kind in _BLOCK_OPTIONS for name in getattr(args, kind)]
    if args.encoder is not None and blocks:
        raise _UsageError("--encoder declares the features already: drop --one-hot, --multi-hot, --numeric")
    if args.encoder is None and not blocks:
        raise _UsageError("declare the features (--one-hot, --multi-hot, --numeric) or give --encoder")
    encoder: Any = args.encoder
    if encoder is None:
        encoder = FeatureEncoder()
        for kind, name in blocks:
            getattr(encoder, kind)(name)
    result = convert_table(
        args.input,
        args.output,
        encoder=encoder,
        label=args.label,
        n_shards=args.shards,
        rows_per_shard=args.rows_per_shard,
        manifest=args.manifest or False,
        progress=not args.quiet,
    )
    size = sum(path.stat().st_size for path in result.paths)
    files = f"{len(result.paths)} shards in " if args.shards or args.rows_per_shard else ""
    print(
        f"wrote {result.n_rows:,} records of {result.n_features:,} features to {files}{args.output} "
        f"({_megabytes(size)})"
    )
    if args.encoder is None:
        result.encoder.save(encoder_path(args.output))
        print(f"encoder in {encoder_path(args.output)} (--encoder for a test set)")
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
    from fmfast.interop.serve import ModelScorer, serve

    model = read_model(args.model)
    print(
        f"serving a {model.predictor_type} of feature_dim {model.feature_dim_} on http://{args.host}:{args.port}"
    )
    serve(ModelScorer(model), host=args.host, port=args.port, max_body_bytes=args.max_body_bytes)
    return 0


def _predict(args: argparse.Namespace) -> int:
    check_writable(args.output)
    model = read_model(args.model)
    if _is_ratings(args.input, args):
        return _predict_pairs(model, args)
    count = transform_file(model, args.input, args.output, content_type=args.content_type, accept=args.accept)
    print(f"scored {count:,} instances into {args.output}")
    return 0


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Shows each option's default after its help, unless it has none (``None``, off, empty)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if not action.option_strings or default is None or default is False or default == []:
            return text
        if default is argparse.SUPPRESS or "%(default)" in text:
            return text
        return f"{text} (default: %(default)s)"


class _Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors take one line: ``prog: error: message``, exit 2."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        """Print ``message`` on one line (``--help`` shows the usage) and exit with status 2."""
        self.exit(2, f"{self.prog}: error: {message}\n")


def _predict_pairs(model: FactorizationMachine, args: argparse.Namespace) -> int:
    """Scores of the (user, item) pairs of a ratings or pairs file, as CSV ``user,item,score``."""
    X, _, users, items = _ratings_rows(model, args, args.input, pairs=True)
    scores: Any = model.predict_score(X) if X.shape[0] else np.zeros(0)
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


def _names(text: str) -> list[str]:
    """A comma-separated list of column names."""
    return [name.strip() for name in text.split(",") if name.strip()]


def _table_options(convert: argparse.ArgumentParser) -> None:
    """``fmfast convert``'s options for Parquet input."""
    table = convert.add_argument_group("Parquet input")
    table.add_argument("--label", help="the column of labels (default: unlabelled records)")
    for kind, what in [
        ("one_hot", "one id per row"),
        ("multi_hot", "a list of ids per row"),
        ("numeric", "a number per row, min-max scaled"),
    ]:
        flag = f"--{kind.replace('_', '-')}"
        table.add_argument(
            flag, dest=kind, type=_names, action="extend", default=[], metavar="COLUMNS",
            help=f"{kind.replace('_', '-')} features of these comma-separated columns ({what})",
        )  # fmt: skip
    table.add_argument(
        "--encoder",
        help="a FeatureEncoder saved as JSON (the <output>.encoder.json of an earlier conversion), "
        "instead of fitting one in a first pass",
    )
    shards = table.add_mutually_exclusive_group()
    shards.add_argument("--shards", type=_within(int, 1), help="write this many shards (output: a directory)")
    shards.add_argument(
        "--rows-per-shard", type=_within(int, 1), help="write shards of this many rows (output: a directory)"
    )
    table.add_argument(
        "--manifest",
        nargs="?",
        const=True,
        metavar="PREFIX",
        help="also write a SageMaker manifest.json listing the shards under PREFIX (default: the output)",
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``fmfast`` command."""
    parser = _Parser(prog="fmfast", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = commands.add_parser(
        "demo", help="ratings -> RecordIO -> FM training -> evaluation -> top-10 (default: generated ratings)"
    )
    demo.add_argument("--ratings", type=_within(int, 1), default=100_000, help="number of generated ratings")
    demo.add_argument(
        "--ratings-file", help="use this ratings file (u.data, ratings.dat, ratings.csv, .inter)"
    )
    demo.add_argument("--epochs", type=_within(int, 1), default=30, help="training epochs of both models")
    demo.add_argument(
        "--seed", type=_within(int, 0), default=0, help="seed of the generated ratings and the split"
    )
    demo.add_argument("--out", help="keep the RecordIO file here (default: a temporary directory)")
    demo.add_argument("--quiet", action="store_true", help="no progress bar")
    demo.set_defaults(run=_demo)

    split = commands.add_parser(
        "split",
        help="split a ratings file into train and test CSV files",
        description="Split a ratings file (u.data, ratings.dat, ratings.csv, .inter, any CSV/TSV of\n"
        "user, item, rating[, timestamp]) into two CSV files with the header\n"
        "user,item,rating[,timestamp], rows in the input's order, with its ids.",
    )
    split.add_argument("ratings", help="the ratings file to split")
    split.add_argument("train", help="the training CSV to write")
    split.add_argument("test", help="the test CSV to write")
    split.add_argument(
        "--method",
        choices=["random", "leave-n-out", "temporal"],
        default="random",
        help="random: --test-fraction of the ratings; leave-n-out: --n ratings of each user with more, "
        "the latest when the file has times, else random ones; temporal: the ratings at or after --cut",
    )
    split.add_argument(
        "--test-fraction",
        type=_within(float, 0.0, 1.0, "a share"),
        default=0.2,
        help="share of test ratings (random, temporal without --cut)",
    )
    split.add_argument(
        "--n", type=_within(int, 0), default=HELD_OUT, help="test ratings per user (leave-n-out)"
    )
    split.add_argument(
        "--cut", type=int, help="first test timestamp (temporal; default: from --test-fraction)"
    )
    split.add_argument("--seed", type=_within(int, 0), default=0, help="seed of the random choices")
    split.add_argument("--delimiter", help="field separator of the input (default: detected)")
    split.set_defaults(run=_split)

    convert = commands.add_parser(
        "convert", help="convert libSVM/libFM, CSV triples, .npz or Parquet tables to RecordIO"
    )
    convert.add_argument(
        "input",
        help="libSVM/libFM text, CSV rating triples, a .npz matrix, or Parquet: a file, a directory "
        "(hive partitions included) or a quoted glob",
    )
    convert.add_argument(
        "output", help="the RecordIO file to write, or with --shards/--rows-per-shard a directory"
    )
    convert.add_argument(
        "--format",
        choices=["auto", *FORMATS, "parquet"],
        default="auto",
        help="input format; auto: from the suffix (a directory or a glob: parquet)",
    )
    convert.add_argument("--labels", help=".npy labels for an .npz input")
    convert.add_argument(
        "--n-features", type=_within(int, 1), help="feature dimension of libSVM input (default: inferred)"
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
    _table_options(convert)
    convert.add_argument("--quiet", action="store_true", help="no progress bar")
    convert.set_defaults(run=_convert)

    inspect = commands.add_parser("inspect", help="summarise a RecordIO file and check it suits SageMaker FM")
    inspect.add_argument("file", help="a RecordIO file")
    inspect.add_argument("--quiet", action="store_true", help="no progress bar")
    inspect.set_defaults(run=_inspect)

    train = commands.add_parser(
        "train",
        help="train an FM on RecordIO (a file or a directory of shards)",
        epilog=_hyperparameters_epilog(),
    )
    train.add_argument("train", help="training RecordIO file or directory of shards")
    train.add_argument("model", help="where to write the model")
    train.add_argument(
        "--predictor-type", default="regressor", choices=["regressor", "binary_classifier"], help="the task"
    )
    train.add_argument("--num-factors", type=int, default=64, help="dimension of the factors")
    train.add_argument(
        "-H",
        "--hyperparameter",
        action="append",
        default=[],
        type=_hyperparameter,
        metavar="NAME=VALUE",
        help="a hyperparameter (repeatable; the names are listed below)",
    )
    train.add_argument(
        "--preset", choices=sorted(PRESETS), help="start from these tuned hyperparameters (listed below)"
    )
    train.add_argument("--validation", help="RecordIO evaluated after every epoch")
    train.add_argument(
        "--early-stopping-rounds",
        type=_within(int, 1),
        help="stop after this many epochs without a better validation score (needs --validation)",
    )
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
    recommend_cmd.add_argument("model", help="an fmfast model file or a SageMaker FM model.tar.gz")
    recommend_cmd.add_argument(
        "columns", help="the .columns.json that `fmfast convert` wrote for the ratings"
    )
    recommend_cmd.add_argument("--user", action="append", required=True, help="a user id (repeatable)")
    recommend_cmd.add_argument("-k", type=_within(int, 1), default=10, help="items per user")
    recommend_cmd.add_argument(
        "--exclude-seen", help="RecordIO of the training ratings: skip items already rated"
    )
    recommend_cmd.set_defaults(run=_recommend)

    serve = commands.add_parser("serve", help="serve a model over HTTP with the SageMaker container contract")
    serve.add_argument("model", help="an fmfast model file or a SageMaker FM model.tar.gz")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on")
    serve.add_argument("--port", type=_within(int, 1, 65535, "a port number"), default=8080, help="TCP port")
    serve.add_argument(
        "--max-body-bytes",
        type=_within(int, 1),
        default=6 * 1024 * 1024,
        help="largest request body accepted",
    )
    serve.set_defaults(run=_serve)

    predict = commands.add_parser("predict", help="batch transform: score a file of requests into a file")
    predict.add_argument("model", help="an fmfast model file or a SageMaker FM model.tar.gz")
    predict.add_argument(
        "input",
        help="requests: .recordio, .json or .jsonl (or pass --content-type); or a ratings or "
        "user,item pairs file (with --columns), scored into CSV user,item,score",
    )
    predict.add_argument("output", help="the responses file to write")
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
    except _UsageError as error:
        print(f"fmfast {args.command}: error: {error}", file=sys.stderr)
        return 2
    except (FmFastError, OSError) as error:
        print(f"fmfast: error: {_describe(error)}", file=sys.stderr)
        return 1


def _describe(error: Exception) -> str:
    """The error in one line; a file error as ``path: reason``, the way Unix tools put it."""
    if isinstance(error, OSError) and error.filename is not None and error.strerror:
        return f"{error.filename}: {error.strerror}"
    return str(error)


if __name__ == "__main__":
    sys.exit(main())
