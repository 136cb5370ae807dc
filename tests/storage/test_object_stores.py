"""Every path argument takes a store's URL: round trips through memory:// and a real S3 server (moto)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys

import fmfast
import fsspec
import numpy as np
import pytest
import scipy.sparse as sp
from fmfast._atomic import atomic_directory, atomic_output
from fmfast._storage import join
from fmfast.interop.transform import read_model

ROWS = 3_000


def data(seed: int = 0, n_rows: int = ROWS, n_cols: int = 60) -> tuple[sp.csr_array, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = sp.random(n_rows, n_cols, density=0.05, format="csr", dtype=np.float32, random_state=rng)
    return sp.csr_array(X), rng.integers(1, 6, n_rows).astype(np.float32)


@pytest.fixture(params=["memory", "s3"])
def store(request) -> tuple[str, dict | None]:
    """``(root URL, storage_options)`` of an empty folder of each kind of store."""
    if request.param == "memory":
        return request.getfixturevalue("memory"), None
    return request.getfixturevalue("s3")


def objects(url: str, options: dict | None) -> list[str]:
    """The names of the objects under a prefix, fresh from the store."""
    fs, path = fsspec.core.url_to_fs(url, **(options or {}))
    fs.invalidate_cache()
    return sorted(name.rsplit("/", 1)[-1] for name in fs.find(path))


def fs_of(url: str, options: dict | None):
    fs, _ = fsspec.core.url_to_fs(url, **(options or {}))
    fs.invalidate_cache()
    return fs


def assert_same_rows(got, expected) -> None:
    assert (got[0] != expected[0]).nnz == 0 and got[0].shape == expected[0].shape
    np.testing.assert_array_equal(got[1], expected[1])


def test_recordio_files_round_trip(store):
    root, options = store
    X, y = data()
    fmfast.write_recordio(f"{root}/train.recordio", X, y, storage_options=options)
    assert_same_rows(fmfast.read_recordio(f"{root}/train.recordio", storage_options=options), (X, y))
    batches = list(fmfast.iter_recordio(f"{root}/train.recordio", 1_000, storage_options=options))
    assert [len(labels) for _, labels in batches] == [1_000] * 3
    assert_same_rows((sp.vstack([b for b, _ in batches]), np.concatenate([b for _, b in batches])), (X, y))
    with fmfast.RecordIOWriter(f"{root}/chunks.recordio", storage_options=options) as writer:
        for start in range(0, ROWS, 700):
            writer.write(X[start : start + 700], y[start : start + 700])
    assert fs_of(root, options).cat(f"{root}/chunks.recordio") == fmfast.encode_recordio(X, y)


def test_file_urls_are_local_paths(tmp_path):
    X, y = data()
    fmfast.write_recordio(f"file://{tmp_path}/train.recordio", X, y)
    assert (tmp_path / "train.recordio").read_bytes() == fmfast.encode_recordio(X, y)
    assert_same_rows(fmfast.read_recordio(f"file://{tmp_path}/train.recordio"), (X, y))


def test_shards_on_a_store_carry_a_sagemaker_manifest(store):
    root, options = store
    X, y = data()
    shards = fmfast.write_recordio_shards(f"{root}/train/", X, y, n_shards=4, storage_options=options)
    names = [f"part-0000{i}-of-00004.recordio" for i in range(4)]
    assert shards == [f"{root}/train/{name}" for name in names]
    assert objects(f"{root}/train", options) == ["manifest.json", *names]
    # SageMaker's ManifestFile: [{"prefix": URL}, relative names...]; every entry names a shard.
    manifest = json.loads(fs_of(root, options).cat(f"{root}/train/manifest.json"))
    assert manifest == [{"prefix": f"{root}/train/"}, *names]
    parts = [fmfast.read_recordio(manifest[0]["prefix"] + name, storage_options=options) for name in names]
    assert sum(part[0].shape[0] for part in parts) == ROWS
    assert_same_rows(fmfast.read_recordio(f"{root}/train/", storage_options=options), (X, y))
    assert_same_rows(fmfast.read_recordio(f"{root}/train", storage_options=options), (X, y))


def test_a_new_set_replaces_the_old_one_whole(store):
    root, options = store
    X, y = data()
    fmfast.write_recordio_shards(f"{root}/train", X, y, n_shards=5, storage_options=options)
    fmfast.write_recordio_shards(f"{root}/train", X[:100], y[:100], n_shards=2, storage_options=options)
    assert objects(f"{root}/train", options) == [
        "manifest.json",
        "part-00000-of-00002.recordio",
        "part-00001-of-00002.recordio",
    ]
    assert_same_rows(fmfast.read_recordio(f"{root}/train", storage_options=options), (X[:100], y[:100]))


def test_a_failed_set_leaves_nothing_readable(store):
    root, options = store
    X, y = data()
    fmfast.write_recordio_shards(f"{root}/train", X, y, n_shards=3, storage_options=options)
    calls = []

    def fail_in_the_second_shard(done: int) -> None:
        calls.append(done)
        if len(calls) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fmfast.write_recordio_shards(
            f"{root}/train", X, y, n_shards=3, storage_options=options, progress=fail_in_the_second_shard
        )
    assert objects(f"{root}/train", options) == []
    with pytest.raises(FileNotFoundError) as missing:
        fmfast.read_recordio(f"{root}/train/", storage_options=options)
    assert missing.value.filename == f"{root}/train/"


def test_an_incomplete_set_is_refused_not_read(store):
    root, options = store
    X, y = data()
    fmfast.write_recordio_shards(f"{root}/train", X, y, n_shards=3, storage_options=options)
    # What a reader sees while a set is being written: some shards, no manifest yet.
    fs_of(root, options).rm([f"{root}/train/manifest.json", f"{root}/train/part-00001-of-00003.recordio"])
    with pytest.raises(fmfast.InvalidInputError, match=r"train is an incomplete shard set: part-00001"):
        fmfast.read_recordio(f"{root}/train", storage_options=options)


def test_fit_from_an_s3_prefix_equals_fit_from_the_local_copy(s3, tmp_path):
    root, options = s3
    X, y = data(1, n_rows=5_000)
    fmfast.write_recordio_shards(f"{root}/train", X, y, n_shards=3, storage_options=options)
    fmfast.write_recordio_shards(tmp_path / "train", X, y, n_shards=3)
    params = {"num_factors": 4, "epochs": 3, "mini_batch_size": 100, "random_state": 0, "n_threads": 1}
    remote = fmfast.FactorizationMachine("regressor", **params).fit(f"{root}/train/")
    local = fmfast.FactorizationMachine("regressor", **params).fit(tmp_path / "train")
    assert remote.history_ == local.history_
    np.testing.assert_array_equal(remote.V_, local.V_)
    np.testing.assert_array_equal(remote.w_, local.w_)


def test_models_round_trip(store):
    root, options = store
    X, y = data(2)
    model = fmfast.FactorizationMachine("regressor", num_factors=4, epochs=2, random_state=0).fit(X, y)
    model.save(f"{root}/model.fmfast", storage_options=options)
    loaded = fmfast.FactorizationMachine.load(f"{root}/model.fmfast", storage_options=options)
    np.testing.assert_array_equal(loaded.V_, model.V_)
    model.to_sagemaker(f"{root}/job/output/model.tar.gz", storage_options=options)
    for source in (f"{root}/job/output/model.tar.gz", f"{root}/job/output/"):
        artifact = fmfast.FactorizationMachine.from_sagemaker(source, storage_options=options)
        np.testing.assert_array_equal(artifact.predict(X), model.predict(X))


def test_a_damaged_model_is_named_by_its_url(store):
    root, options = store
    fs_of(root, options).pipe(f"{root}/model.fmfast", b"not a zip")
    with pytest.raises(fmfast.ModelFormatError, match=f"'{root}/model.fmfast' is not a readable"):
        fmfast.FactorizationMachine.load(f"{root}/model.fmfast", storage_options=options)


def test_a_failed_write_leaves_the_object_as_it_was(store):
    root, options = store
    X, y = data()
    fmfast.write_recordio(f"{root}/train.recordio", X, y, storage_options=options)
    before = fs_of(root, options).cat(f"{root}/train.recordio")
    with pytest.raises(fmfast.InvalidInputError, match="columns"):
        with fmfast.RecordIOWriter(f"{root}/train.recordio", storage_options=options) as writer:
            writer.write(X[:10], y[:10])
            writer.write(X[10:20, :5], y[10:20])
    assert fs_of(root, options).cat(f"{root}/train.recordio") == before
    with pytest.raises(fmfast.InvalidInputError, match="3000 rows but labels"):
        fmfast.write_recordio_shards(f"{root}/other", X, y[:5], n_shards=2, storage_options=options)
    assert objects(root, options) == ["train.recordio"]


def test_an_interrupted_multipart_upload_is_aborted(s3):
    root, options = s3
    fs = fs_of(root, options)
    bucket = root.removeprefix("s3://")
    fs.pipe(f"{root}/train.recordio", b"the old object")
    X, y = data(3, n_rows=400_000)  # about 13 MB: three 5 MiB parts
    in_flight = []

    def interrupt(done: int) -> None:
        in_flight.append(len(fs.list_multipart_uploads(bucket)))
        if done >= 300_000:
            raise KeyboardInterrupt

    small_parts = {**options, "default_block_size": 5 << 20}
    with pytest.raises(KeyboardInterrupt):
        fmfast.write_recordio(f"{root}/train.recordio", X, y, progress=interrupt, storage_options=small_parts)
    assert max(in_flight) == 1  # the multipart upload had started: parts were uploaded
    assert fs.list_multipart_uploads(bucket) == []
    assert fs_of(root, options).cat(f"{root}/train.recordio") == b"the old object"


def test_errors_name_the_url(s3, monkeypatch):
    root, options = s3
    missing_bucket = "s3://fmfast-no-such-bucket/train.recordio"
    for url in (missing_bucket, f"{root}/no-such-key.recordio", f"{root}/no-such-prefix/"):
        with pytest.raises(FileNotFoundError) as error:
            fmfast.read_recordio(url, storage_options=options)
        assert error.value.filename == url
    with pytest.raises(FileNotFoundError) as error:
        fmfast.write_recordio(missing_bucket, *data(), storage_options=options)
    assert error.value.filename == missing_bucket
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    anonymous = {"endpoint_url": options["endpoint_url"], "skip_instance_cache": True}
    with pytest.raises(PermissionError, match="Unable to locate credentials") as error:
        fmfast.read_recordio(f"{root}/train.recordio", storage_options=anonymous)
    assert error.value.filename == f"{root}/train.recordio"


def test_without_fsspec_the_error_names_the_extra(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "fsspec", None)  # what an interpreter without fsspec does
    with pytest.raises(fmfast.FmFastError, match=r"pip install 'fmfast\[cloud\]'"):
        fmfast.read_recordio("s3://bucket/train.recordio")
    X, y = data()
    fmfast.write_recordio(tmp_path / "train.recordio", X, y)  # local paths never need it
    assert_same_rows(fmfast.read_recordio(tmp_path / "train.recordio"), (X, y))


def test_read_model_finds_artifacts_under_a_prefix(s3):
    root, _ = s3
    X, y = data(4)
    model = fmfast.FactorizationMachine("regressor", num_factors=4, epochs=1, random_state=0).fit(X, y)
    model.to_sagemaker(f"{root}/job/output/model.tar.gz")  # credentials and endpoint from the environment
    model.save(f"{root}/model.fmfast")
    for source in (f"{root}/job/output", f"{root}/job/output/model.tar.gz", f"{root}/model.fmfast"):
        np.testing.assert_array_equal(read_model(source).predict(X), model.predict(X))


CHILD = """
import sys
import numpy as np, scipy.sparse as sp, fmfast

X = sp.random(100_000, 100, density=0.1, format="csr", dtype=np.float32, random_state=0)
y = np.ones(X.shape[0], dtype=np.float32)
with fmfast.RecordIOWriter(sys.argv[1], storage_options={"default_block_size": 5 << 20}) as writer:
    while True:  # until Ctrl-C
        writer.write(X, y)
        print("wrote", flush=True)
"""


def test_ctrl_c_in_a_process_uploading_leaves_no_object(s3):
    root, options = s3
    fs = fs_of(root, options)
    bucket = root.removeprefix("s3://")
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, f"{root}/train.recordio"], stdout=subprocess.PIPE, text=True
    )
    try:
        # Chunks of about 4 MB: after a few of them, parts of 5 MiB are being uploaded.
        for _ in range(4):
            assert child.stdout.readline() == "wrote\n"
        assert len(fs.list_multipart_uploads(bucket)) == 1
        child.send_signal(signal.SIGINT)
        assert child.wait(timeout=60) != 0
    finally:
        child.kill()
    assert fs.list_multipart_uploads(bucket) == []
    assert objects(root, options) == []


def test_atomic_outputs_take_urls(store):
    """What the other writers (tables, Spark) build on: a file, and a directory of files, on a store."""
    root, options = store
    with atomic_output(f"{root}/one.bin", options) as out:
        out.write(b"first")
    with pytest.raises(RuntimeError), atomic_output(f"{root}/one.bin", options) as out:
        out.write(b"second")
        raise RuntimeError("failed midway")
    assert fs_of(root, options).cat(f"{root}/one.bin") == b"first"
    for names in (["a", "b", "c"], ["d"]):
        with atomic_directory(f"{root}/set", options) as directory:
            for name in names:
                with atomic_output(join(directory, name), options) as out:
                    out.write(name.encode())
        assert objects(f"{root}/set", options) == names


def test_convert_table_from_parquet_on_a_store_to_shards_on_a_store(store):
    import pyarrow as pa
    import pyarrow.parquet as pq

    root, options = store
    rng = np.random.default_rng(3)
    table = pa.table(
        {
            "user": [f"u{i}" for i in rng.integers(0, 50, 2_500)],
            "item": rng.integers(0, 80, 2_500),
            "rating": rng.integers(1, 6, 2_500).astype(np.float32),
        }
    )
    fs = fs_of(root, options)
    with fs.open(f"{root}/lake/part-0.parquet", "wb") as out:
        pq.write_table(table, out, row_group_size=700)
    encoder = fmfast.FeatureEncoder().one_hot("user").one_hot("item")
    result = fmfast.convert_table(
        f"{root}/lake/",
        f"{root}/train/",
        encoder=encoder,
        label="rating",
        rows_per_shard=1_000,
        storage_options=options,
    )
    names = [f"part-0000{i}-of-00003.recordio" for i in range(3)]
    # Shards of a count known only at the end are renamed on the store; the manifest comes last.
    assert objects(f"{root}/train", options) == ["manifest.json", *names]
    expected = (result.encoder.transform(table), table.column("rating").to_numpy())
    assert_same_rows(fmfast.read_recordio(f"{root}/train/", storage_options=options), expected)
