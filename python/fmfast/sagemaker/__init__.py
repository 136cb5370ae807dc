"""The SageMaker Python SDK's Factorization Machines classes, run locally by fmfast.

Change ``from sagemaker import FactorizationMachines`` to
``from fmfast.sagemaker import FactorizationMachines`` and a notebook written for SageMaker runs
on this machine, without an AWS account:

* :class:`FactorizationMachines`: the estimator (``record_set``, ``fit``, ``model_data``,
  ``deploy``), with the SDK 2.x signature and every FM hyperparameter;
* :class:`FactorizationMachinesModel`: deploys an existing ``model.tar.gz``, fmfast's or
  SageMaker's;
* :class:`FactorizationMachinesPredictor`: ``predict(ndarray)`` against a local endpoint,
  returning :class:`Record` objects as the SDK's ``RecordDeserializer`` does;
* :class:`RecordSet`, :class:`RecordSerializer`, :class:`RecordDeserializer`.

Inside this package ``import sagemaker`` is the real SDK, which fmfast does not need.
"""

from fmfast.sagemaker.estimator import FactorizationMachines
from fmfast.sagemaker.model import FactorizationMachinesModel
from fmfast.sagemaker.predictor import FactorizationMachinesPredictor
from fmfast.sagemaker.record_set import RecordSet
from fmfast.sagemaker.records import Float32Tensor, Record, RecordDeserializer, RecordSerializer, Value

__all__ = [
    "FactorizationMachines",
    "FactorizationMachinesModel",
    "FactorizationMachinesPredictor",
    "Float32Tensor",
    "Record",
    "RecordDeserializer",
    "RecordSerializer",
    "RecordSet",
    "Value",
]
