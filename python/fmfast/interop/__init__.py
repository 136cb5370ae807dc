"""SageMaker's formats and contracts, without AWS: what a SageMaker FM job reads, writes and serves.

* :mod:`~fmfast.interop.artifact`: SageMaker FM model artifacts (``model.tar.gz``),
  :func:`read_sagemaker_model`, :func:`write_sagemaker_model`, :class:`SageMakerFM`;
* :mod:`~fmfast.interop.mxnet_params`: MXNet ``.params`` files, the weights inside an artifact;
* :mod:`~fmfast.interop.inference`: the inference wire formats, requests and responses both ways;
* :mod:`~fmfast.interop.serve`: a local endpoint with the inference container's contract (needs the
  ``serve`` extra, so it is not imported here);
* :mod:`~fmfast.interop.transform`: batch transform, a file of requests scored into responses.

:mod:`fmfast.sagemaker` builds the SageMaker SDK's classes on these.
"""

from fmfast.interop.artifact import SageMakerFM, read_sagemaker_model, write_sagemaker_model
from fmfast.interop.inference import parse_request, parse_response, serialize_request, serialize_response
from fmfast.interop.mxnet_params import read_mxnet_params, write_mxnet_params

__all__ = [
    "SageMakerFM",
    "parse_request",
    "parse_response",
    "read_mxnet_params",
    "read_sagemaker_model",
    "serialize_request",
    "serialize_response",
    "write_mxnet_params",
    "write_sagemaker_model",
]
