"""Summaries of RecordIO-protobuf files: what they hold, and whether SageMaker FM can train on them."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fmfast._progress import Progress
from fmfast.recordio.codec import DEFAULT_BATCH_SIZE, Source, iter_recordio


@dataclass
class RecordIOSummary:
    """What :func:`inspect_recordio` found in a stream."""

    records: int = 0
    feature_dim: int = 0
    nonzeros: int = 0
    feature_dtype: str | None = None
    label_dtype: str | None = None
    label_min: float | None = None
    label_max: float | None = None
    label_mean: float | None = None
    label_values: list[float] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def fm_trainable(self) -> bool:
        """Whether SageMaker Factorization Machines accepts this data for training."""
        return not self.problems


#: Distinct label values listed in a summary before it stops counting them.
MAX_LISTED_LABELS = 10


def inspect_recordio(
    source: Source | os.PathLike[str], batch_size: int = DEFAULT_BATCH_SIZE, *, progress: Progress = None
) -> RecordIOSummary:
    """Stream through ``source`` and summarise it with bounded memory.

    ``progress`` is ``True`` for a progress bar (in records) or a callable receiving the records read.

    Raises:
        RecordIOError: the stream is corrupt; nothing is summarised.
    """
    return _summarise(iter_recordio(source, batch_size, progress=progress))


def _summarise(batches: Iterator[tuple[Any, Any]]) -> RecordIOSummary:
    summary = RecordIOSummary()
    label_sum = 0.0
    distinct: set[float] = set()
    for X, labels in batches:
        summary.records += X.shape[0]
        summary.feature_dim = X.shape[1]
        summary.nonzeros += X.nnz
        summary.feature_dtype = str(X.dtype)
        if labels is not None and len(labels):
            summary.label_dtype = str(labels.dtype)
            low, high = float(labels.min()), float(labels.max())
            summary.label_min = low if summary.label_min is None else min(summary.label_min, low)
            summary.label_max = high if summary.label_max is None else max(summary.label_max, high)
            label_sum += float(labels.sum(dtype=np.float64))
            if len(distinct) <= MAX_LISTED_LABELS:
                distinct.update(np.unique(labels)[: MAX_LISTED_LABELS + 1].tolist())
    if summary.label_dtype is not None and summary.records:
        summary.label_mean = label_sum / summary.records
        summary.label_values = sorted(distinct)[:MAX_LISTED_LABELS]
    summary.problems = _fm_problems(summary)
    return summary


def _fm_problems(summary: RecordIOSummary) -> list[str]:
    problems = []
    if summary.records == 0:
        problems.append("the file holds no records")
    if summary.feature_dtype not in (None, "float32"):
        problems.append(f"features are {summary.feature_dtype}; FM trains only on Float32Tensor")
    if summary.label_dtype is None and summary.records:
        problems.append("records carry no label; FM training needs one per record")
    elif summary.label_dtype not in (None, "float32"):
        problems.append(f"labels are {summary.label_dtype}; FM expects a Float32Tensor label")
    return problems
