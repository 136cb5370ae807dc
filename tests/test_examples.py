"""The scripts in ``examples/``, each run as a user runs it: a subprocess in a fresh directory."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
from pathlib import Path

import fmfast
import numpy as np

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def run_example(name: str, *args: str | Path, cwd: Path) -> str:
    """Run ``python examples/NAME ARGS`` and return what it printed; a failure shows its stderr."""
    command = [sys.executable, str(EXAMPLES / name), *map(str, args)]
    done = subprocess.run(command, capture_output=True, text=True, cwd=cwd, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def number(pattern: str, text: str) -> float:
    """The number that ``pattern``'s group matches in ``text``."""
    found = re.search(pattern, text)
    assert found, f"{pattern!r} not in {text!r}"
    return float(found.group(1))


def test_convert_writes_shards_a_manifest_and_a_test_file(tmp_path):
    printed = run_example("convert.py", "out", cwd=tmp_path)
    shards = sorted((tmp_path / "out" / "train").glob("part-*.recordio"))
    assert [p.name for p in shards] == [f"part-0000{i}-of-00004.recordio" for i in range(4)]
    assert all(f"wrote {Path('out/train') / p.name}" in printed for p in shards)
    manifest = json.loads((tmp_path / "out" / "train" / "manifest.json").read_text())
    assert manifest[0] == {"prefix": "s3://my-bucket/fm/train/"}
    assert manifest[1:] == [p.name for p in shards]

    parts = [fmfast.read_recordio(p) for p in shards]
    X_test, y_test = fmfast.read_recordio(tmp_path / "out" / "test.recordio")
    assert sum(X.shape[0] for X, _ in parts) + X_test.shape[0] == 20_000
    for X, y in [*parts, (X_test, y_test)]:
        assert X.shape[1] == 300 + 500 and (X.sum(axis=1) == 2).all()  # one-hot user + item
        assert set(np.unique(y)) <= {1, 2, 3, 4, 5}
    assert f"{parts[0][0].shape[0]:,} rows, 800 features" in printed


def test_train_from_recordio_beats_the_mean_and_writes_both_model_formats(tmp_path):
    printed = run_example("train_from_recordio.py", "out", cwd=tmp_path)
    assert "trained 10 epochs" in printed
    rmse = number(r"test rmse (\d+\.\d+)", printed)
    assert rmse < number(r"predicting the mean: (\d+\.\d+)", printed) - 0.05

    X_test, y_test = fmfast.read_recordio(tmp_path / "out" / "test.recordio")
    model = fmfast.FactorizationMachine.load(tmp_path / "out" / "model.fmfast")
    assert abs(model.evaluate(X_test, y_test)["rmse"] - rmse) < 1e-4
    sagemaker = fmfast.FactorizationMachine.from_sagemaker(tmp_path / "out" / "model.tar.gz")
    np.testing.assert_array_equal(sagemaker.predict(X_test), model.predict(X_test))


def test_recommend_ranks_better_than_the_most_popular_items(tmp_path):
    printed = run_example("recommend.py", cwd=tmp_path)
    fm = number(r"ranking FM: precision@10 \d\.\d+, NDCG@10 (\d\.\d+)", printed)
    popular = number(r"most popular: precision@10 \d\.\d+, NDCG@10 (\d\.\d+)", printed)
    assert fm > popular > 0
    assert re.search(r"user 0's top 3: items \[\s*\d+\s+\d+\s+\d+\]", printed)


def test_serve_answers_over_http_and_stops_the_server(tmp_path):
    printed = run_example("serve.py", "out", cwd=tmp_path)
    lines = printed.splitlines()
    url = next(line for line in lines if line.startswith("serving on ")).removeprefix("serving on ")
    scored = next(line for line in lines if line.startswith("200 "))
    assert scored.count("'score':") == 2
    refused = next(line for line in lines if line.startswith("400 "))
    assert "'error': 'body is not valid JSON" in refused
    assert lines[-1] == "stopped"

    log = (tmp_path / "out" / "serve.log").read_text()
    assert '"POST /invocations HTTP/1.1" 200' in log and '"POST /invocations HTTP/1.1" 400' in log
    assert "Finished server process" in log  # stopped cleanly, not killed
    host, port = url.removeprefix("http://").split(":")
    with socket.socket() as probe:
        assert probe.connect_ex((host, int(port))) != 0  # nothing listens there any more
