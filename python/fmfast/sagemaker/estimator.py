"""``FactorizationMachines``: the SageMaker SDK 2.x FM estimator, trained by fmfast on this machine.

Code written against ``sagemaker.FactorizationMachines`` runs unchanged but for the import:
``record_set`` writes RecordIO shards and a manifest to a directory or prefix, ``fit`` trains with
:class:`fmfast.FactorizationMachine` and writes ``model.tar.gz`` where SageMaker would
(``{output_path}/{job_name}/output/model.tar.gz``), and ``deploy`` serves it on 127.0.0.1.

Locations (``output_path``, ``data_location``, the session's ``default_bucket()``) are local
directories, ``file://`` URLs or the URLs of object stores (``s3://bucket/prefix``, with the
credentials of the environment). Without them everything goes under :data:`DEFAULT_BUCKET`.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from fmfast import _storage as storage
from fmfast.exceptions import InvalidInputError, NotFittedError
from fmfast.interop.artifact import format_hyperparameters
from fmfast.sagemaker.model import FactorizationMachinesModel
from fmfast.sagemaker.predictor import FactorizationMachinesPredictor
from fmfast.sagemaker.record_set import Channel, RecordSet, read_channel, resolve_location, write_record_set
from fmfast.training.estimator import FactorizationMachine

#: Where data and models go when neither the arguments nor a session name a place: the local
#: stand-in for the session's default S3 bucket.
DEFAULT_BUCKET = Path.home() / ".fmfast" / "sagemaker"

#: SageMaker FM's hyperparameters, in the SDK's order (``mini_batch_size`` is the base class's).
HYPERPARAMETERS = (
    "num_factors",
    "predictor_type",
    "epochs",
    "clip_gradient",
    "eps",
    "rescale_grad",
    "bias_lr",
    "linear_lr",
    "factors_lr",
    "bias_wd",
    "linear_wd",
    "factors_wd",
    "bias_init_method",
    "bias_init_scale",
    "bias_init_sigma",
    "bias_init_value",
    "linear_init_method",
    "linear_init_scale",
    "linear_init_sigma",
    "linear_init_value",
    "factors_init_method",
    "factors_init_scale",
    "factors_init_sigma",
    "factors_init_value",
)
#: The one host of a local job, as SageMaker names the first instance in its logs.
HOST = "algo-1"


class TrainingJob:
    """A finished local training job: its name and a ``describe()`` shaped like SageMaker's."""

    def __init__(self, name: str, description: dict[str, Any]) -> None:
        self.name = name
        self.job_name = name
        self._description = description

    def describe(self) -> dict[str, Any]:
        """``DescribeTrainingJob``'s answer: status, hyperparameters, ``ModelArtifacts``, final metrics."""
        return self._description

    def wait(self, logs: str | bool = "All") -> None:
        """Nothing to wait for: a local job has finished when ``fit`` returns."""


class FactorizationMachines:
    """The SDK's ``FactorizationMachines`` estimator, trained locally by fmfast.

    Takes every SageMaker FM hyperparameter under its SDK name (``None`` leaves SageMaker's
    default); ``num_factors`` and ``predictor_type`` are required by ``fit``, as SageMaker
    requires them. ``mini_batch_size`` may be given here or to :meth:`fit`.

    Args:
        role: accepted for the SDK's sake and unused (no AWS account is involved).
        instance_count: the number of shards :meth:`record_set` writes (one per instance, as
            the SDK uploads them); training runs on this machine's cores whatever the count.
        instance_type: accepted and unused.
        output_path: where ``fit`` writes the model (a local directory or ``file://`` URL);
            default: the default bucket.
        data_location: where :meth:`record_set` writes; default:
            ``{default bucket}/sagemaker-record-sets/``.
        sagemaker_session: any object with ``default_bucket()`` returning a local directory or
            ``file://`` URL, used as the default bucket; otherwise unused.
        base_job_name: prefix of generated job names (default ``factorization-machines``).
        **kwargs: the SDK's other estimator arguments (``volume_size``, ``max_run``, ``tags``,
            ...), accepted and unused.
    """

    repo_name = "factorization-machines"
    repo_version = "1"

    def __init__(
        self,
        role: str | None = None,
        instance_count: int | None = None,
        instance_type: str | None = None,
        num_factors: int | None = None,
        predictor_type: str | None = None,
        epochs: int | None = None,
        clip_gradient: float | None = None,
        eps: float | None = None,
        rescale_grad: float | None = None,
        bias_lr: float | None = None,
        linear_lr: float | None = None,
        factors_lr: float | None = None,
        bias_wd: float | None = None,
        linear_wd: float | None = None,
        factors_wd: float | None = None,
        bias_init_method: str | None = None,
        bias_init_scale: float | None = None,
        bias_init_sigma: float | None = None,
        bias_init_value: float | None = None,
        linear_init_method: str | None = None,
        linear_init_scale: float | None = None,
        linear_init_sigma: float | None = None,
        linear_init_value: float | None = None,
        factors_init_method: str | None = None,
        factors_init_scale: float | None = None,
        factors_init_sigma: float | None = None,
        factors_init_value: float | None = None,
        *,
        mini_batch_size: int | None = None,
        output_path: str | None = None,
        data_location: str | None = None,
        sagemaker_session: Any = None,
        base_job_name: str | None = None,
        **kwargs: Any,
    ) -> None:
        self.role = role
        self.instance_count = 1 if instance_count is None else instance_count
        self.instance_type = instance_type
        self.num_factors = num_factors
        self.predictor_type = predictor_type
        self.epochs = epochs
        self.clip_gradient = clip_gradient
        self.eps = eps
        self.rescale_grad = rescale_grad
        self.bias_lr = bias_lr
        self.linear_lr = linear_lr
        self.factors_lr = factors_lr
        self.bias_wd = bias_wd
        self.linear_wd = linear_wd
        self.factors_wd = factors_wd
        self.bias_init_method = bias_init_method
        self.bias_init_scale = bias_init_scale
        self.bias_init_sigma = bias_init_sigma
        self.bias_init_value = bias_init_value
        self.linear_init_method = linear_init_method
        self.linear_init_scale = linear_init_scale
        self.linear_init_sigma = linear_init_sigma
        self.linear_init_value = linear_init_value
        self.factors_init_method = factors_init_method
        self.factors_init_scale = factors_init_scale
        self.factors_init_sigma = factors_init_sigma
        self.factors_init_value = factors_init_value
        self.mini_batch_size = mini_batch_size
        self.feature_dim: int | None = None
        self.sagemaker_session = sagemaker_session
        bucket = sagemaker_session.default_bucket() if hasattr(sagemaker_session, "default_bucket") else None
        self.output_path = output_path or os.fspath(bucket or DEFAULT_BUCKET)
        self.data_location = data_location or f"{bucket or DEFAULT_BUCKET}/sagemaker-record-sets/"
        self.base_job_name = base_job_name or self.repo_name
        self.latest_training_job: TrainingJob | None = None

    def hyperparameters(self) -> dict[str, str]:
        """The hyperparameters set, as the strings SageMaker receives (``feature_dim`` once fitted)."""
        names = ("feature_dim", "mini_batch_size", *HYPERPARAMETERS)
        return format_hyperparameters(
            {name: getattr(self, name) for name in names if getattr(self, name) is not None}
        )

    def record_set(
        self,
        train: Any,
        labels: Any = None,
        channel: str = "train",
        encrypt: bool = False,
        distribution: str = "ShardedByS3Key",
    ) -> RecordSet:
        """Write ``train`` and ``labels`` as ``instance_count`` RecordIO shards and a manifest.

        The files go to a new directory under ``data_location``. ``train`` is a 2-D NumPy array,
        as in the SDK, or a scipy sparse matrix (written as sparse records, which the SDK's
        ``record_set`` cannot do). ``encrypt`` is accepted and unused.

        Returns:
            A :class:`RecordSet` for :meth:`fit`, bound to ``channel``.
        """
        record_set = write_record_set(
            self.data_location,
            type(self).__name__,
            train,
            labels,
            n_shards=self.instance_count,
            channel=channel,
        )
        record_set.distribution = distribution
        return record_set

    def fit(
        self,
        records: RecordSet | list[RecordSet] | dict[str, Channel] | Channel,
        mini_batch_size: int | None = None,
        wait: bool = True,
        logs: bool | str = True,
        job_name: str | None = None,
        experiment_config: dict[str, str] | None = None,
    ) -> None:
        """Train on the ``train`` channel, report the ``test`` channel's metrics, write ``model.tar.gz``.

        Args:
            records: a :class:`RecordSet`, a list of them (one per channel), or a dict of channel
                name to a RecordSet, a RecordIO file or directory (a path or ``file://`` URL); a bare
                location is the ``train`` channel.
            mini_batch_size: overrides the one given to the constructor.
            wait: accepted for the SDK's sake: a local job always runs to the end.
            logs: print SageMaker-style logs (``False`` or ``"None"`` for none): every epoch's
                training metrics, printed when training ends, and the test channel's, under
                SageMaker's metric names (``#quality_metric: host=algo-1, ...``).
            job_name: the job's name (default: ``{base_job_name}-{timestamp}``); the model goes
                to ``{output_path}/{job_name}/output/model.tar.gz``.
            experiment_config: accepted and unused.

        Raises:
            InvalidInputError: no ``train`` channel, unlabelled records, a missing required or an
                invalid hyperparameter; nothing is written then.
            RecordIOError: a damaged RecordIO file (naming it).
        """
        show = logs not in (False, "None")  # the SDK also takes "All" and "None"
        channels = _channels(records)
        if "train" not in channels or not set(channels) <= {"train", "test"}:
            raise InvalidInputError(
                f"SageMaker FM takes a 'train' and optionally a 'test' channel, got {sorted(channels)}"
            )
        missing = [name for name in ("num_factors", "predictor_type") if getattr(self, name) is None]
        if missing:
            raise InvalidInputError(f"SageMaker FM requires the hyperparameters {', '.join(missing)}")
        output = resolve_location(self.output_path, "output_path")
        X, y = read_channel(channels["train"], "train")
        test = read_channel(channels["test"], "test") if "test" in channels else None
        batch = mini_batch_size or self.mini_batch_size
        values: dict[str, Any] = {name: getattr(self, name) for name in HYPERPARAMETERS}
        values["mini_batch_size"] = batch
        # None leaves SageMaker's default, which is FactorizationMachine's.
        model = FactorizationMachine(**{name: value for name, value in values.items() if value is not None})
        model.fit(X, y)
        name = job_name or f"{self.base_job_name}-{_timestamp()}"
        if show:
            for epoch in model.history_:
                scores = {metric: value for metric, value in epoch.items() if metric != "epoch"}
                _log_quality(f"epoch={epoch['epoch']}, train", scores)
        test_metrics = {} if test is None else model.evaluate(*test)
        if show:
            for metric, value in test_metrics.items():
                print(f"#test_score ({HOST}) : ({metric!r}, {value})")
            _log_quality("test", test_metrics)
        artifact = storage.join(storage.join(storage.join(output, name), "output"), "model.tar.gz")
        if isinstance(artifact, Path):
            artifact.parent.mkdir(parents=True, exist_ok=True)
        model.to_sagemaker(artifact)
        self.feature_dim = model.feature_dim_
        self.mini_batch_size = batch
        self.latest_training_job = TrainingJob(
            name,
            {
                "TrainingJobName": name,
                "TrainingJobStatus": "Completed",
                "HyperParameters": self.hyperparameters(),
                "ModelArtifacts": {"S3ModelArtifacts": str(artifact)},
                "FinalMetricDataList": [
                    {"MetricName": f"test:{metric}", "Value": value} for metric, value in test_metrics.items()
                ],
            },
        )
        if show:
            print(f"Training job {name} completed; model artifact {artifact}")

    @property
    def model_data(self) -> str:
        """The path of the last fit's ``model.tar.gz``.

        Raises:
            NotFittedError: before the first :meth:`fit`.
        """
        if self.latest_training_job is None:
            raise NotFittedError("this estimator has not been fitted: call fit first")
        return str(self.latest_training_job.describe()["ModelArtifacts"]["S3ModelArtifacts"])

    def create_model(self, **kwargs: Any) -> FactorizationMachinesModel:
        """A :class:`FactorizationMachinesModel` of the last fit's artifact (``kwargs`` go to it)."""
        return FactorizationMachinesModel(
            self.model_data, self.role, sagemaker_session=self.sagemaker_session, **kwargs
        )

    def deploy(
        self,
        initial_instance_count: int | None = None,
        instance_type: str | None = None,
        serializer: Any = None,
        deserializer: Any = None,
        **kwargs: Any,
    ) -> FactorizationMachinesPredictor:
        """Serve the last fit's model on a local endpoint; see :meth:`FactorizationMachinesModel.deploy`."""
        return self.create_model().deploy(
            initial_instance_count, instance_type, serializer=serializer, deserializer=deserializer, **kwargs
        )


def _channels(records: Any) -> dict[str, Channel]:
    """``fit``'s argument as ``{channel name: data}``."""
    if isinstance(records, RecordSet):
        return records.data_channel()
    if isinstance(records, list):
        if not all(isinstance(record, RecordSet) for record in records):
            raise InvalidInputError("a list given to fit must hold RecordSets")
        return {record.channel: record for record in records}
    if isinstance(records, dict):
        return dict(records)
    return {"train": records}


def _log_quality(where: str, metrics: dict[str, float]) -> None:
    """Print metrics as SageMaker FM's log lines (``#quality_metric: host=algo-1, test rmse <score>=...``)."""
    for metric, value in metrics.items():
        print(f"#quality_metric: host={HOST}, {where} {metric} <score>={value}")


def _timestamp() -> str:
    """UTC time to the millisecond, as the SDK stamps job names: ``2026-12-04-22-05-36-081``."""
    now = time.time()
    return f"{time.strftime('%Y-%m-%d-%H-%M-%S', time.gmtime(now))}-{int(now * 1000) % 1000:03d}"
