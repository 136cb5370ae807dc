"""The RecordIO-protobuf codec: SageMaker's training data format, read and written in Rust.

* :mod:`~fmfast.recordio.codec`: :func:`write_recordio`, :func:`read_recordio`,
  :func:`iter_recordio`, :func:`encode_recordio` and :class:`RecordIOWriter` (larger than memory);
* :mod:`~fmfast.recordio.sdk`: drop-in replacements for the SageMaker SDK's writers;
* :mod:`~fmfast.recordio.shards`: shard sets with a SageMaker manifest;
* :mod:`~fmfast.recordio.inspection`: what a file holds, and whether SageMaker FM can train on it;
* :mod:`~fmfast.recordio.convert`: libSVM/libFM text, rating CSVs and ``.npz`` converted to RecordIO;
* :mod:`~fmfast.recordio.tables`: Arrow tables and Parquet datasets converted to RecordIO, streamed.
"""

from fmfast.recordio.codec import (
    RecordIOWriter,
    encode_recordio,
    iter_recordio,
    read_recordio,
    write_recordio,
)
from fmfast.recordio.convert import convert_file
from fmfast.recordio.inspection import RecordIOSummary, inspect_recordio
from fmfast.recordio.sdk import write_numpy_to_dense_tensor, write_spmatrix_to_sparse_tensor
from fmfast.recordio.shards import write_recordio_shards
from fmfast.recordio.tables import batch_rows, convert_table, encode_batch

__all__ = [
    "RecordIOSummary",
    "RecordIOWriter",
    "batch_rows",
    "convert_file",
    "convert_table",
    "encode_batch",
    "encode_recordio",
    "inspect_recordio",
    "iter_recordio",
    "read_recordio",
    "write_numpy_to_dense_tensor",
    "write_recordio",
    "write_recordio_shards",
    "write_spmatrix_to_sparse_tensor",
]
