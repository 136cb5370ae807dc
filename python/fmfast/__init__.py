"""fmfast: fast, local Factorization Machines at Amazon SageMaker's semantics.

* RecordIO-protobuf training data: :func:`write_recordio`, :func:`read_recordio`,
  :func:`iter_recordio`, :class:`RecordIOWriter`, :func:`write_recordio_shards`, and drop-in
  replacements for the SageMaker SDK writers (:func:`write_spmatrix_to_sparse_tensor`,
  :func:`write_numpy_to_dense_tensor`).
* Factorization Machines at SageMaker's semantics, trained locally: :class:`FactorizationMachine`.
* Synthetic MovieLens-shaped ratings for demos and tests: :func:`fmfast.datasets.synthetic_ratings`.
"""

from fmfast._fmfast import __version__
from fmfast.exceptions import (
    DivergenceError,
    FmFastError,
    InvalidInputError,
    ModelFormatError,
    ParseError,
    RecordIOError,
)
from fmfast.model import FactorizationMachine
from fmfast.recordio import RecordIOWriter, encode_recordio, iter_recordio, read_recordio, write_recordio
from fmfast.sagemaker_compat import write_numpy_to_dense_tensor, write_spmatrix_to_sparse_tensor
from fmfast.shards import write_recordio_shards

__all__ = [
    "DivergenceError",
    "FactorizationMachine",
    "FmFastError",
    "InvalidInputError",
    "ModelFormatError",
    "ParseError",
    "RecordIOError",
    "RecordIOWriter",
    "__version__",
    "encode_recordio",
    "iter_recordio",
    "read_recordio",
    "write_numpy_to_dense_tensor",
    "write_recordio",
    "write_recordio_shards",
    "write_spmatrix_to_sparse_tensor",
]
