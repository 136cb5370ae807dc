"""SageMaker Factorization Machines model artifacts: read and write ``model.tar.gz``.

A SageMaker FM training job leaves ``model.tar.gz``: a gzip'd tar holding one member,
``model_algo-1``, which is a zip of ``symbol.json`` (the MXNet graph), ``params`` (an MXNet
NDArray list file, see :mod:`fmfast.interop.mxnet_params`: ``arg:v`` (feature_dim, num_factors),
``arg:w1_weight`` (feature_dim, 1), ``arg:w0_weight`` (1,)) and ``meta.json``
(``{"training_parameters": {...}}``, every value a string, as SageMaker passes hyperparameters to
its containers). An archive fmfast writes may hold ``fmfast.json`` beside ``model_algo-1``: the
settings of :class:`fmfast.FactorizationMachine` that are not SageMaker hyperparameters
(:data:`FMFAST_SETTINGS`), which SageMaker never reads.

Archives are read in memory, never extracted to disk. Members that are links, devices,
absolute paths or paths with ``..``, and members larger than :data:`MAX_MEMBER_BYTES`, are
refused with :class:`fmfast.ModelFormatError`. Every size an archive declares is checked before
memory is taken for it: a ``.tar.gz`` is inflated as a stream, only as far as the members its tar
headers declare (each within the limit) plus :data:`MAX_TAR_PADDING`, so a gzip bomb is refused
after inflating at most that much.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import posixpath
import stat
import tarfile
import zipfile
import zlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

from fmfast import _storage as storage
from fmfast._atomic import atomic_output
from fmfast._inputs import check_finite, prepare_rows
from fmfast._scores import raw_scores, sigmoid
from fmfast._storage import StorageOptions
from fmfast.exceptions import InvalidInputError, ModelFormatError
from fmfast.interop.mxnet_params import read_mxnet_params, write_mxnet_params

#: The largest archive member (and the largest total of all members) that is read: 4 GiB.
MAX_MEMBER_BYTES = 4 << 30
#: What a gzip stream may inflate to beyond the end of the tar archive it holds (the zeros that
#: pad a tar to its record size: 10 KiB for GNU tar and Python, more with a larger blocking factor).
MAX_TAR_PADDING = 1 << 20
#: Predictor types of SageMaker FM and the symbol head op of each.
HEAD_OPS = {"binary_classifier": "LogisticRegressionOutput", "regressor": "LinearRegressionOutput"}
#: Date of every member of a written archive, so the same model always gives the same bytes.
FIXED_DATE = (2020, 1, 1, 0, 0, 0)
_FIXED_MTIME = 1577836800  # 2020-01-01T00:00:00Z
_PARAMS_NAMES = ("params", "model-0000.params")
_SYMBOL_NAMES = ("symbol.json", "model-symbol.json")
_SETTINGS_NAME = "fmfast.json"
#: Bytes a tar stream is read at a time (tarfile's default, 10 KiB, means more calls per byte),
#: and so what it may be read beyond the end of the tar: at most MAX_TAR_PADDING.
_TAR_READ_BYTES = 1 << 20
_GROUPS = ("bias", "linear", "factors")
#: SageMaker FM's hyperparameters and the type of each, as the SageMaker Python SDK 2.x declares
#: them (``sagemaker.FactorizationMachines``; ``feature_dim`` and ``mini_batch_size`` come from its
#: base class). SageMaker passes each to the container as ``str(value)``.
HYPERPARAMETERS: dict[str, type] = {
    "feature_dim": int,
    "mini_batch_size": int,
    "num_factors": int,
    "predictor_type": str,
    "epochs": int,
    "clip_gradient": float,
    "eps": float,
    "rescale_grad": float,
    **{f"{group}_{rate}": float for group in _GROUPS for rate in ("lr", "wd")},
    **{f"{group}_init_method": str for group in _GROUPS},
    **{f"{group}_init_{arg}": float for group in _GROUPS for arg in ("scale", "sigma", "value")},
}
#: The settings of :class:`fmfast.FactorizationMachine` that SageMaker has no hyperparameter for,
#: and their types: what ``fmfast.json`` may hold.
FMFAST_SETTINGS: dict[str, type] = {
    "optimizer": str,
    "n_threads": int,
    "deterministic": bool,
    "progress": bool,
    "random_state": int,
    "burn_in": int,
    "posterior_samples": int,
    "num_chains": int,
    "noise": str,
    "als_regularization": str,
}
_TYPE_NAMES = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}

Source = str | os.PathLike[str] | bytes | bytearray | memoryview


@dataclass(frozen=True, eq=False)
class SageMakerFM:
    """The weights of a SageMaker Factorization Machines model.

    The score of a row ``x`` is ``w0 + x·w + ½ Σ_f ((x·V[:, f])² - (x²)·(V[:, f]²))``; a
    ``binary_classifier`` predicts ``sigmoid(score)``, a ``regressor`` the score itself.

    Attributes:
        w0: the global bias.
        w: linear weights, shape ``(feature_dim,)``, float32.
        V: factor matrix, shape ``(feature_dim, num_factors)``, float32.
        predictor_type: ``"binary_classifier"`` or ``"regressor"``.
        hyperparameters: the training parameters (``meta.json``) as stored, at least
            ``feature_dim``, ``num_factors`` and ``predictor_type`` (the values the weights and
            ``predictor_type`` give, unless given as a string of the same value); see
            :func:`parse_hyperparameters`.
        fmfast_params: fmfast's own settings (:data:`FMFAST_SETTINGS`), written to
            ``fmfast.json`` beside ``model_algo-1`` when there are any.
    """

    w0: float
    w: np.ndarray
    V: np.ndarray
    predictor_type: str
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    fmfast_params: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.predictor_type not in HEAD_OPS:
            raise InvalidInputError(
                f"predictor_type must be one of {sorted(HEAD_OPS)}, got {self.predictor_type!r}"
            )
        V = np.array(self.V, dtype=np.float32, order="C")
        w = np.array(self.w, dtype=np.float32).reshape(-1)
        if V.ndim != 2:
            raise InvalidInputError(f"V must be (feature_dim, num_factors), got shape {V.shape}")
        if w.shape != (V.shape[0],):
            raise InvalidInputError(f"w has {w.size} weights but V has {V.shape[0]} rows")
        V.setflags(write=False)
        w.setflags(write=False)
        shape = {"feature_dim": V.shape[0], "num_factors": V.shape[1], "predictor_type": self.predictor_type}
        # A shape key given in SageMaker's formatting ("50" for 50) is kept as given.
        hyperparameters = {
            **shape,
            **{k: v for k, v in self.hyperparameters.items() if k not in shape or str(v) == str(shape[k])},
        }
        object.__setattr__(self, "w0", float(np.float32(self.w0)))
        object.__setattr__(self, "w", w)
        object.__setattr__(self, "V", V)
        object.__setattr__(self, "hyperparameters", hyperparameters)

    @property
    def feature_dim(self) -> int:
        """Number of features (rows of ``V``)."""
        return int(self.V.shape[0])

    @property
    def num_factors(self) -> int:
        """Number of latent factors (columns of ``V``)."""
        return int(self.V.shape[1])

    def score(self, X: Any) -> np.ndarray:
        """The raw FM score of each row of ``X`` (sparse or dense, ``feature_dim`` columns), float64."""
        rows = prepare_rows(X if sp.issparse(X) else np.atleast_2d(X))
        if rows.n_cols != self.feature_dim:
            raise InvalidInputError(f"X has {rows.n_cols} columns, the model {self.feature_dim} features")
        check_finite(rows)
        return raw_scores(rows, self.w0, self.w, self.V)

    def predict(self, X: Any) -> np.ndarray:
        """Predictions as SageMaker FM returns them: ``sigmoid(score)`` for a classifier, else the score."""
        scores = self.score(X)
        return sigmoid(scores) if self.predictor_type == "binary_classifier" else scores


# ---------------------------------------------------------------------------------------------
# Hyperparameters: SageMaker's strings and Python values


def _typed(value: Any, kind: type, what: str) -> Any:
    """``value`` as a ``kind`` (``None`` stays ``None``); a string is read as SageMaker writes one."""
    original = value
    if isinstance(value, str):
        # "100", "0.001", "true", and the JSON in a string that framework estimators send
        # ('"regressor"'); a string that is not JSON ("regressor", "inf") is taken as it is.
        try:
            value = json.loads(value)
        except (ValueError, RecursionError):
            pass
    if value is None:
        return None
    if kind is bool or not isinstance(value, bool):
        try:
            if kind is float and isinstance(value, int | float | str):
                return float(value)
            if kind is int and isinstance(value, str):
                return int(value)
        except ValueError:
            pass
        if isinstance(value, kind):
            return value
    raise ModelFormatError(f"{what} is {original!r}, not {_TYPE_NAMES[kind]}")


def parse_hyperparameters(
    stored: dict[str, Any], kinds: dict[str, type] = HYPERPARAMETERS, source: str = "meta.json"
) -> dict[str, Any]:
    """The settings of ``kinds`` in ``stored``, each as its Python type; other keys are left out.

    Values may be given as SageMaker stores them, as strings (``"100"``, ``"0.001"``,
    ``"regressor"``, ``"true"``, also JSON-encoded: ``'"regressor"'``), or as JSON values.

    Raises:
        ModelFormatError: a value that is not of its key's type; the message names ``source`` and
            the key.
    """
    return {
        key: _typed(value, kinds[key], f"{source} {key!r}") for key, value in stored.items() if key in kinds
    }


def format_hyperparameters(values: dict[str, Any]) -> dict[str, str]:
    """SageMaker's hyperparameters among ``values``, as the SageMaker SDK sends them: ``str(kind(value))``.

    Keys that are not SageMaker FM hyperparameters (:data:`HYPERPARAMETERS`) and ``None`` values
    are left out, as the SDK leaves them out.
    """
    return {
        key: str(HYPERPARAMETERS[key](value))
        for key, value in values.items()
        if key in HYPERPARAMETERS and value is not None
    }


# ---------------------------------------------------------------------------------------------
# Reading archives safely, in memory


def _check_member_name(name: str) -> None:
    if not name or name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        raise ModelFormatError(f"archive member {name!r} has an absolute path")
    if ".." in name.replace("\\", "/").split("/"):
        raise ModelFormatError(f"archive member {name!r} leaves the archive ('..')")


def _read_tar(stream: io.BufferedIOBase, limit: int) -> tuple[dict[str, bytes], int]:
    """The members of the tar read from ``stream``, and the offset where the tar ends.

    ``stream`` is read in order, as far as the tar goes and at most one read (``_TAR_READ_BYTES``)
    beyond.
    """
    files: dict[str, bytes] = {}
    total = 0
    # "r|": a stream, read in order; each member's declared size is checked before it is read.
    with tarfile.open(fileobj=stream, mode="r|", bufsize=_TAR_READ_BYTES) as tar:
        for member in tar:
            _check_member_name(member.name)
            if member.isdir():
                continue
            if not member.isreg():
                raise ModelFormatError(f"archive member {member.name!r} is a link or special file")
            total += member.size
            if member.size > limit or total > limit:
                raise ModelFormatError(
                    f"archive member {member.name!r} ({member.size} bytes) exceeds the {limit}-byte limit"
                )
            handle = tar.extractfile(member)
            assert handle is not None
            content = handle.read(member.size)
            if len(content) != member.size:
                raise ModelFormatError(f"archive member {member.name!r} is truncated")
            files[posixpath.basename(member.name)] = content
        end = tar.offset
    return files, end


def _read_tar_gz(data: bytes, limit: int) -> dict[str, bytes]:
    """The members of a gzip'd tar, inflated only as far as the tar and its padding go."""
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(data)) as stream:
            files, end = _read_tar(stream, limit)
            # The rest of the stream: tar padding, then the gzip trailer (checksum and length,
            # checked at its end), read a chunk at a time and refused beyond MAX_TAR_PADDING.
            left = MAX_TAR_PADDING - (stream.tell() - end)
            while left >= 0 and (chunk := stream.read(min(left + 1, _TAR_READ_BYTES))):
                left -= len(chunk)
            if left < 0:
                raise ModelFormatError(
                    f"gzip stream inflates more than {MAX_TAR_PADDING} bytes beyond its tar archive"
                )
    except tarfile.TarError as error:
        raise ModelFormatError(f"not a readable tar archive: {error}") from error
    except (EOFError, OSError, zlib.error) as error:
        raise ModelFormatError(f"not a readable gzip stream: {error}") from error
    return files


def _read_plain_tar(data: bytes, limit: int) -> dict[str, bytes]:
    try:
        return _read_tar(io.BytesIO(data), limit)[0]
    except (tarfile.TarError, EOFError, OSError) as error:
        raise ModelFormatError(f"not a readable tar archive: {error}") from error


def _read_zip(data: bytes, limit: int) -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    total = 0
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            for info in archive.infolist():
                _check_member_name(info.filename)
                if info.is_dir():
                    continue
                file_type = stat.S_IFMT(info.external_attr >> 16)
                if info.create_system == 3 and file_type not in (0, stat.S_IFREG):
                    raise ModelFormatError(f"archive member {info.filename!r} is a link or special file")
                total += info.file_size
                if info.file_size > limit or total > limit:
                    raise ModelFormatError(
                        f"archive member {info.filename!r} ({info.file_size} bytes) "
                        f"exceeds the {limit}-byte limit"
                    )
                with archive.open(info) as handle:
                    content = handle.read(info.file_size + 1)
                if len(content) != info.file_size:
                    raise ModelFormatError(f"archive member {info.filename!r} is not the size it declares")
                files[posixpath.basename(info.filename)] = content
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, zlib.error, RuntimeError) as error:
        raise ModelFormatError(f"not a readable zip archive: {error}") from error
    return files


def _files_of(data: bytes, limit: int, depth: int = 0) -> dict[str, bytes]:
    """The model files in ``data``, whatever it is: tar(.gz), zip, or a bare params file."""
    if depth > 2:
        raise ModelFormatError("archives nested too deeply")
    if data[:4] == b"PK\x03\x04" or data[:4] == b"PK\x05\x06":
        files = _read_zip(data, limit)
    elif data[:2] == b"\x1f\x8b":
        files = _read_tar_gz(data, limit)
    elif _is_plain_tar(data):
        files = _read_plain_tar(data, limit)
    elif data[:8] == (0x112).to_bytes(8, "little"):
        return {"params": data}
    else:
        raise ModelFormatError("not a model.tar.gz, a model_algo-1 zip or an MXNet params file")
    nested = files.pop("model_algo-1", None)
    if nested is not None:
        files = {**files, **_files_of(nested, limit, depth + 1)}
    return files


def _is_plain_tar(data: bytes) -> bool:
    return len(data) >= 512 and data[257:262] == b"ustar"


def _read_source(source: Source, limit: int, storage_options: StorageOptions = None) -> dict[str, bytes]:
    if isinstance(source, (bytes, bytearray, memoryview)):
        return _files_of(bytes(source), limit)
    if not storage.is_directory(source, storage_options):
        return _files_of(_read_file(source, limit, storage_options), limit)
    present = set(storage.list_files(source, storage_options))
    for archive in ("model.tar.gz", "model_algo-1"):
        if archive in present:
            return _read_source(storage.join(source, archive), limit, storage_options)
    return {
        name: _read_file(storage.join(source, name), limit, storage_options)
        for name in (*_PARAMS_NAMES, *_SYMBOL_NAMES, "meta.json", _SETTINGS_NAME)
        if name in present
    }


def _read_file(path: str | os.PathLike[str], limit: int, storage_options: StorageOptions) -> bytes:
    size = storage.size(path, storage_options)
    if size > limit:
        raise ModelFormatError(f"{os.fspath(path)} ({size} bytes) exceeds the {limit}-byte limit")
    return storage.read_bytes(path, storage_options)


# ---------------------------------------------------------------------------------------------
# From files to a model


def _json(files: dict[str, bytes], names: tuple[str, ...]) -> Any:
    for name in names:
        if name in files:
            try:
                return json.loads(files[name])
            except (ValueError, UnicodeDecodeError) as error:
                raise ModelFormatError(f"{name} is not valid JSON: {error}") from error
            except RecursionError as error:
                raise ModelFormatError(f"{name} nests JSON too deeply") from error
    return None


def _head_op_type(symbol: Any) -> str | None:
    try:
        head = symbol["heads"][0][0]
        op = symbol["nodes"][head]["op"]
    except (KeyError, IndexError, TypeError) as error:
        raise ModelFormatError(f"symbol.json has no head node: {error}") from error
    for ptype, head_op in HEAD_OPS.items():
        if op == head_op:
            return ptype
    raise ModelFormatError(f"symbol.json head op {op!r} is not an FM output ({sorted(HEAD_OPS.values())})")


def _weights(params: dict[str, Any]) -> dict[str, np.ndarray]:
    weights: dict[str, np.ndarray] = {}
    for key, value in params.items():
        prefix, _, name = key.rpartition(":")
        if prefix not in ("", "arg"):
            continue
        if name in weights:
            raise ModelFormatError(f"params hold {name!r} twice")
        if sp.issparse(value):
            raise ModelFormatError(f"params {key!r} is stored as csr; FM weights are dense or row_sparse")
        if value.dtype.kind != "f":
            raise ModelFormatError(f"params {key!r} has dtype {value.dtype}, FM weights are floating point")
        weights[name] = value.astype(np.float32, copy=False)
    missing = [name for name in ("v", "w1_weight", "w0_weight") if name not in weights]
    if missing:
        raise ModelFormatError(f"params lack the FM weights {missing} (found {sorted(params)})")
    return weights


def read_sagemaker_model(
    source: Source,
    *,
    predictor_type: str | None = None,
    max_bytes: int = MAX_MEMBER_BYTES,
    storage_options: StorageOptions = None,
) -> SageMakerFM:
    """Read a SageMaker FM model from ``model.tar.gz``, ``model_algo-1``, a directory or a params file.

    Args:
        source: a path to a ``model.tar.gz``, a ``model_algo-1`` zip, an MXNet params file, or a
            directory holding one of them or the extracted ``params``/``symbol.json``/``meta.json``
            (also as ``model-0000.params``/``model-symbol.json``); or the bytes of a file. Paths
            may be a store's URLs (``s3://bucket/job/output/model.tar.gz``).
        predictor_type: needed only when neither ``meta.json`` nor a symbol says it.
        max_bytes: refuse archive members (and files) larger than this, in total too.
        storage_options: options of the store's fsspec file system, for a URL.

    Weights may be named with or without the ``arg:`` prefix and stored dense or row_sparse
    (missing rows are zeros, up to :data:`fmfast.interop.mxnet_params.MAX_DENSE_BYTES` an array). The
    predictor type comes from ``meta.json``, else from the symbol's head op
    (``LogisticRegressionOutput`` → binary_classifier, ``LinearRegressionOutput`` → regressor).
    ``meta.json`` values may be strings, as SageMaker stores them (see :func:`parse_hyperparameters`).

    Raises:
        ModelFormatError: unreadable, hostile or inconsistent content; a hyperparameter of
            ``meta.json`` or a setting of ``fmfast.json`` of the wrong type.
        OSError: the path cannot be read.
    """
    files = _read_source(source, max_bytes, storage_options)
    raw = next((files[name] for name in _PARAMS_NAMES if name in files), None)
    if raw is None:
        raise ModelFormatError(f"no params file among {sorted(files)}")
    params = read_mxnet_params(raw)
    if not isinstance(params, dict):
        raise ModelFormatError("params is a list file; FM weights need names")
    weights = _weights(params)
    V, w1, w0 = weights["v"], weights["w1_weight"], weights["w0_weight"]
    if V.ndim != 2 or w1.size != V.shape[0] or w1.ndim > 2 or (w1.ndim == 2 and w1.shape[1] != 1):
        raise ModelFormatError(f"weight shapes v {V.shape}, w1_weight {w1.shape} do not match")
    if w0.size != 1:
        raise ModelFormatError(f"w0_weight has shape {w0.shape}, expected (1,)")
    meta = _json(files, ("meta.json",))
    training: dict[str, Any] = {}
    if meta is not None:
        found = meta.get("training_parameters", {}) if isinstance(meta, dict) else None
        if not isinstance(found, dict):
            raise ModelFormatError("meta.json training_parameters is not an object")
        training = found
    stated = parse_hyperparameters(training)
    settings = _json(files, (_SETTINGS_NAME,))
    if settings is not None and not isinstance(settings, dict):
        raise ModelFormatError(f"{_SETTINGS_NAME} is not an object")
    symbol = _json(files, _SYMBOL_NAMES)
    from_symbol = _head_op_type(symbol) if symbol is not None else None
    ptype = stated.get("predictor_type") or from_symbol or predictor_type
    if ptype is None:
        raise ModelFormatError("no meta.json or symbol says the predictor type; pass predictor_type=")
    if ptype not in HEAD_OPS:
        raise ModelFormatError(f"unknown predictor_type {ptype!r}")
    if from_symbol is not None and from_symbol != ptype:
        raise ModelFormatError(f"meta.json says {ptype} but symbol.json's head is a {from_symbol}")
    for key, actual in (("feature_dim", V.shape[0]), ("num_factors", V.shape[1])):
        if stated.get(key) not in (None, actual):
            raise ModelFormatError(f"meta.json {key} is {training[key]} but the weights have {actual}")
    return SageMakerFM(
        w0=float(w0.reshape(-1)[0]),
        w=w1.reshape(-1),
        V=V,
        predictor_type=ptype,
        hyperparameters=dict(training),
        fmfast_params=parse_hyperparameters(settings or {}, FMFAST_SETTINGS, _SETTINGS_NAME),
    )


# ---------------------------------------------------------------------------------------------
# Writing


def _node(op: str, name: str, inputs: list[int], attrs: dict[str, str] | None = None) -> dict[str, Any]:
    node: dict[str, Any] = {"op": op, "name": name}
    if attrs:
        node["attrs"] = attrs
    node["inputs"] = [[i, 0, 0] for i in inputs]
    return node


def _fm_nodes(feature_dim: int, num_factors: int, predictor_type: str) -> list[dict[str, Any]]:
    return [
        _node("null", "data", [], {"__storage_type__": "2"}),
        _node("null", "w1_weight", [], {"__shape__": str((feature_dim, 1))}),
        _node("dot", "dot0", [0, 1]),
        _node("null", "w0_weight", [], {"__shape__": str((1,))}),
        _node("broadcast_add", "broadcast_add0", [2, 3]),
        _node("null", "v", [], {"__shape__": str((feature_dim, num_factors))}),
        _node("dot", "dot1", [0, 5]),
        _node("square", "square2", [6]),
        _node("square", "square0", [0]),
        _node("square", "square1", [5]),
        _node("dot", "dot2", [8, 9]),
        _node("elemwise_sub", "_minus0", [7, 10]),
        _node("sum", "sum0", [11], {"axis": "1", "keepdims": "True"}),
        _node("_mul_scalar", "_mulscalar0", [12], {"scalar": "0.5"}),
        _node("elemwise_add", "_plus0", [4, 13]),
        _node("null", "out_label", []),
        _node(HEAD_OPS[predictor_type], "out", [14, 15]),
    ]


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(", ", ": "))


def _node_json(node: dict[str, Any]) -> str:
    fields = []
    for key, value in node.items():
        if key == "attrs" and len(value) > 1:
            items = ", \n".join(f"        {_dumps(k)}: {_dumps(v)}" for k, v in value.items())
            fields.append(f'      "attrs": {{\n{items}\n      }}')
        else:
            fields.append(f"      {_dumps(key)}: {_dumps(value)}")
    return "    {\n" + ", \n".join(fields) + "\n    }"


def fm_symbol_json(feature_dim: int, num_factors: int, predictor_type: str) -> str:
    """The MXNet symbol (nnvm graph JSON) of SageMaker's FM network, as MXNet 1.9 writes it.

    ``dot(data, w1_weight) + w0_weight + ½·sum(square(dot(data, v)) - dot(square(data),
    square(v)), axis=1)`` with a ``LogisticRegressionOutput`` (binary_classifier) or
    ``LinearRegressionOutput`` (regressor) head named ``out``; ``data`` is CSR.
    """
    if predictor_type not in HEAD_OPS:
        raise InvalidInputError(f"predictor_type must be one of {sorted(HEAD_OPS)}, got {predictor_type!r}")
    nodes = _fm_nodes(feature_dim, num_factors, predictor_type)
    row_ptr = ", \n".join(f"    {i}" for i in range(len(nodes) + 1))
    return (
        '{\n  "nodes": [\n'
        + ", \n".join(_node_json(node) for node in nodes)
        + '\n  ], \n  "arg_nodes": [0, 1, 3, 5, 15], \n'
        + f'  "node_row_ptr": [\n{row_ptr}\n  ], \n'
        + f'  "heads": [[{len(nodes) - 1}, 0, 0]], \n'
        + '  "attrs": {"mxnet_version": ["int", 10901]}\n}'
    )


def _zip_bytes(members: list[tuple[str, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in members:
            info = zipfile.ZipInfo(name, date_time=FIXED_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            info.create_system = 3
            archive.writestr(info, content)
    return buffer.getvalue()


def _tar_gz_bytes(members: list[tuple[str, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name, content in members:
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(content), 0o644, _FIXED_MTIME
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(content))
    compressed = io.BytesIO()
    # GzipFile rather than gzip.compress: no file name, mtime 0, the same header on every Python.
    with gzip.GzipFile(filename="", mode="wb", fileobj=compressed, compresslevel=9, mtime=0) as out:
        out.write(buffer.getvalue())
    return compressed.getvalue()


def model_algo_bytes(model: SageMakerFM) -> bytes:
    """The ``model_algo-1`` zip of ``model``: ``symbol.json``, ``params`` and ``meta.json``."""
    params = write_mxnet_params(
        {
            "arg:v": model.V,
            "arg:w1_weight": model.w.reshape(-1, 1),
            "arg:w0_weight": np.array([model.w0], dtype=np.float32),
        }
    )
    meta = json.dumps({"training_parameters": model.hyperparameters})
    symbol = fm_symbol_json(model.feature_dim, model.num_factors, model.predictor_type)
    return _zip_bytes([("symbol.json", symbol.encode()), ("params", params), ("meta.json", meta.encode())])


def sagemaker_model_bytes(model: SageMakerFM) -> bytes:
    """The ``model.tar.gz`` of ``model`` as bytes; the same model always gives the same bytes.

    It holds ``model_algo-1`` and, when ``model.fmfast_params`` is not empty, ``fmfast.json``.
    """
    members = [("model_algo-1", model_algo_bytes(model))]
    if model.fmfast_params:
        members.append((_SETTINGS_NAME, json.dumps(model.fmfast_params).encode()))
    return _tar_gz_bytes(members)


def write_sagemaker_model(
    path: str | os.PathLike[str], model: SageMakerFM, storage_options: StorageOptions = None
) -> None:
    """Write ``model`` as a SageMaker FM ``model.tar.gz`` at ``path``, atomically.

    The archive holds ``model_algo-1`` (a zip of ``symbol.json``, ``params`` with dense float32
    ``arg:v``, ``arg:w1_weight`` (feature_dim, 1) and ``arg:w0_weight`` (1,), and ``meta.json``
    with the hyperparameters as ``training_parameters``), then ``fmfast.json`` with
    ``model.fmfast_params`` if there are any. Member dates are fixed, so the bytes depend only on
    the model. A failure leaves no file behind. ``path`` may be a store's URL, opened with
    ``storage_options`` (see :mod:`fmfast._storage`).
    """
    data = sagemaker_model_bytes(model)
    with atomic_output(path, storage_options) as out:
        out.write(data)


__all__ = [
    "FMFAST_SETTINGS",
    "HYPERPARAMETERS",
    "MAX_MEMBER_BYTES",
    "MAX_TAR_PADDING",
    "SageMakerFM",
    "fm_symbol_json",
    "format_hyperparameters",
    "model_algo_bytes",
    "parse_hyperparameters",
    "read_sagemaker_model",
    "sagemaker_model_bytes",
    "write_sagemaker_model",
]
