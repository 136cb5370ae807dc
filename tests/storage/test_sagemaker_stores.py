"""``fmfast.sagemaker`` with its locations on a real S3 server, as a notebook has them."""

from __future__ import annotations

import json

import fmfast
import fsspec
import numpy as np
from fmfast.sagemaker import FactorizationMachines, FactorizationMachinesModel


def test_record_sets_training_and_endpoint_on_s3(s3):
    root, options = s3
    fs = fsspec.filesystem("s3", **options)
    rng = np.random.default_rng(0)
    X = (rng.random((600, 20)) < 0.2).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.float32)
    fm = FactorizationMachines(
        "role",
        3,
        "ml.c4.xlarge",
        num_factors=4,
        predictor_type="binary_classifier",
        epochs=2,
        output_path=f"{root}/output",
        data_location=f"{root}/record-sets/",
    )
    train = fm.record_set(X, labels=y)
    test = fm.record_set(X[:100], labels=y[:100], channel="test")
    assert train.s3_data.startswith(f"{root}/record-sets/FactorizationMachines-")
    manifest = json.loads(fs.cat(train.s3_data))
    assert manifest[0] == {"prefix": train.s3_data.removesuffix("manifest.json")}
    assert manifest[1:] == [f"matrix-0000{i}-of-00003.recordio" for i in range(3)]
    fm.fit([train, test], logs=False, job_name="job")
    assert fm.model_data == f"{root}/output/job/output/model.tar.gz"
    trained = fmfast.FactorizationMachine.from_sagemaker(fm.model_data, storage_options=options)
    predictor = FactorizationMachinesModel(fm.model_data).deploy(1, "ml.t2.medium")
    try:
        result = predictor.predict(X[:5])
    finally:
        predictor.delete_endpoint()
    scores = [record.label["score"].float32_tensor.values[0] for record in result]
    np.testing.assert_allclose(scores, trained.predict_proba(X[:5])[:, 1], rtol=1e-6)
