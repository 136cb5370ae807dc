"""fmfast: fast, local Factorization Machines at Amazon SageMaker's semantics.

* RecordIO-protobuf training data: :func:`write_recordio`, :func:`read_recordio`,
  :func:`iter_recordio`, :class:`RecordIOWriter`, :func:`write_recordio_shards`, and drop-in
  replacements for the SageMaker SDK writers (:func:`write_spmatrix_to_sparse_tensor`,
  :func:`write_numpy_to_dense_tensor`); Arrow tables and Parquet datasets converted, streamed
  (:func:`convert_table`).
* Factorization Machines at SageMaker's semantics, trained locally: :class:`FactorizationMachine`.
* SageMaker FM models: :func:`read_sagemaker_model`, :func:`write_sagemaker_model`,
  :class:`SageMakerFM`, and MXNet ``.params`` files (:func:`read_mxnet_params`, :func:`write_mxnet_params`).
* SageMaker FM inference wire formats: :func:`parse_request`, :func:`serialize_request`,
  :func:`parse_response`, :func:`serialize_response`.
* Recommendation: rating files (:func:`read_ratings`), exact top-K by the FM algebra
  (:func:`recommend`, :func:`similar_items`), splits and metrics in :mod:`fmfast.recsys.evaluation`,
  implicit-feedback training pairs for ranking in :mod:`fmfast.recsys.implicit`.
* The SageMaker SDK's FM estimator, model and predictor, run locally: :mod:`fmfast.sagemaker`.
* Synthetic MovieLens-shaped ratings for demos and tests: :func:`fmfast.recsys.datasets.synthetic_ratings`.

The sub-packages are the architecture: :mod:`fmfast.recordio` (the codec), :mod:`fmfast.training`
(the estimator), :mod:`fmfast.recsys` (recommendation), :mod:`fmfast.interop` (SageMaker's formats
and contracts), :mod:`fmfast.sagemaker` (the SDK's classes) and :mod:`fmfast.cli` (the ``fmfast``
command). The old flat module paths (``fmfast.evaluation``, ...) still import, with a
``DeprecationWarning``, until the next release.
"""

import sys

from fmfast._deprecated import MOVED_MODULES, register_moved_modules, renamed
from fmfast._fmfast import __version__
from fmfast.exceptions import (
    DivergenceError,
    FmFastError,
    InvalidInputError,
    ModelFormatError,
    NotFittedError,
    ParseError,
    RecordIOError,
    UnsupportedContentTypeError,
)
from fmfast.interop import (
    SageMakerFM,
    parse_request,
    parse_response,
    read_mxnet_params,
    read_sagemaker_model,
    serialize_request,
    serialize_response,
    write_mxnet_params,
    write_sagemaker_model,
)
from fmfast.recordio import (
    RecordIOWriter,
    convert_table,
    encode_recordio,
    iter_recordio,
    read_recordio,
    write_numpy_to_dense_tensor,
    write_recordio,
    write_recordio_shards,
    write_spmatrix_to_sparse_tensor,
)
from fmfast.recsys import FeatureEncoder, read_ratings, recommend, similar_items
from fmfast.training import FactorizationMachine

register_moved_modules()

# The names of the first release, deprecated: file formats are read and written (``read_*``/``write_*``).
load_params = renamed(read_mxnet_params, "fmfast.load_params")
dump_params = renamed(write_mxnet_params, "fmfast.dump_params")
load_ratings = renamed(read_ratings, "fmfast.load_ratings")

__all__ = [
    "DivergenceError",
    "FactorizationMachine",
    "FeatureEncoder",
    "FmFastError",
    "InvalidInputError",
    "ModelFormatError",
    "NotFittedError",
    "ParseError",
    "RecordIOError",
    "RecordIOWriter",
    "SageMakerFM",
    "UnsupportedContentTypeError",
    "__version__",
    "convert_table",
    "dump_params",
    "encode_recordio",
    "iter_recordio",
    "load_params",
    "load_ratings",
    "parse_request",
    "parse_response",
    "read_mxnet_params",
    "read_ratings",
    "read_recordio",
    "read_sagemaker_model",
    "recommend",
    "serialize_request",
    "serialize_response",
    "similar_items",
    "write_mxnet_params",
    "write_numpy_to_dense_tensor",
    "write_recordio",
    "write_recordio_shards",
    "write_sagemaker_model",
    "write_spmatrix_to_sparse_tensor",
]


def __getattr__(name: str) -> object:
    """The old flat module paths as attributes (``fmfast.evaluation``): deprecated, they warn on use."""
    if name in MOVED_MODULES:
        return sys.modules[f"fmfast.{name}"]
    raise AttributeError(f"module 'fmfast' has no attribute {name!r}")
