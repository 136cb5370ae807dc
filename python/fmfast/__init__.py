"""fmfast: fast, local Factorization Machines at Amazon SageMaker's semantics.

* RecordIO-protobuf training data: :func:`write_recordio`, :func:`read_recordio`,
  :func:`iter_recordio`, :class:`RecordIOWriter`, :func:`write_recordio_shards`, and drop-in
  replacements for the SageMaker SDK writers (:func:`write_spmatrix_to_sparse_tensor`,
  :func:`write_numpy_to_dense_tensor`).
* Factorization Machines at SageMaker's semantics, trained locally: :class:`FactorizationMachine`.
* SageMaker FM models: :func:`read_sagemaker_model`, :func:`write_sagemaker_model`,
  :class:`SageMakerFM`, and MXNet ``.params`` files (:func:`load_params`, :func:`dump_params`).
* SageMaker FM inference wire formats: :func:`parse_request`, :func:`serialize_request`,
  :func:`parse_response`, :func:`serialize_response`.
* Recommendation: rating loaders (:func:`load_ratings`), exact top-K by the FM algebra
  (:func:`recommend`, :func:`similar_items`), splits and metrics in :mod:`fmfast.evaluation`,
  implicit-feedback training pairs for ranking in :mod:`fmfast.implicit`.
* The SageMaker SDK's FM estimator, model and predictor, run locally: :mod:`fmfast.sagemaker`.
* Synthetic MovieLens-shaped ratings for demos and tests: :func:`fmfast.datasets.synthetic_ratings`.
"""

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
from fmfast.features import FeatureEncoder
from fmfast.inference import parse_request, parse_response, serialize_request, serialize_response
from fmfast.model import FactorizationMachine
from fmfast.mxnet_params import dump_params, load_params
from fmfast.ratings import load_ratings
from fmfast.recommend import recommend, similar_items
from fmfast.recordio import RecordIOWriter, encode_recordio, iter_recordio, read_recordio, write_recordio
from fmfast.sagemaker_compat import write_numpy_to_dense_tensor, write_spmatrix_to_sparse_tensor
from fmfast.sagemaker_model import SageMakerFM, read_sagemaker_model, write_sagemaker_model
from fmfast.shards import write_recordio_shards

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
    "dump_params",
    "encode_recordio",
    "iter_recordio",
    "load_params",
    "load_ratings",
    "parse_request",
    "parse_response",
    "read_recordio",
    "read_sagemaker_model",
    "recommend",
    "serialize_request",
    "serialize_response",
    "similar_items",
    "write_numpy_to_dense_tensor",
    "write_recordio",
    "write_recordio_shards",
    "write_sagemaker_model",
    "write_spmatrix_to_sparse_tensor",
]
