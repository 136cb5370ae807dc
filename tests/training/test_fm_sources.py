"""Training with an eval set, early stopping, and straight from RecordIO files and shards."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import fmfast
import fmfast.training.loop
import numpy as np
import pytest
import scipy.sparse as sp
from fmfast import FactorizationMachine, InvalidInputError


def data(n: int = 3000, d: int = 40, seed: int = 0) -> tuple[sp.csr_array, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = sp.random_array((n, d), density=0.1, rng=rng, format="csr", dtype=np.float32)
    return X, (X @ rng.normal(size=d) + rng.normal(0, 0.3, n)).astype(np.float32)


def fm(**params: object) -> FactorizationMachine:
    base: dict[str, object] = {"epochs": 4, "mini_batch_size": 50, "random_state": 0, "linear_lr": 0.05}
    base.update(params)
    return FactorizationMachine("regressor", 4, **base)  # type: ignore[arg-type]


def assert_same_model(a: FactorizationMachine, b: FactorizationMachine) -> None:
    assert a.w0_ == b.w0_
    np.testing.assert_array_equal(a.w_, b.w_)
    np.testing.assert_array_equal(a.V_, b.V_)


def test_eval_set_adds_eval_metrics_without_changing_training() -> None:
    X, y = data()
    plain = fm().fit(X[:2000], y[:2000])
    watched = fm().fit(X[:2000], y[:2000], eval_set=(X[2000:], y[2000:]))
    assert_same_model(plain, watched)
    assert [h["rmse"] for h in watched.history_] == [h["rmse"] for h in plain.history_]
    final = watched.evaluate(X[2000:], y[2000:])["rmse"]
    assert watched.history_[-1]["eval_rmse"] == pytest.approx(final)
    assert watched.best_epoch_ is None


def test_early_stopping_keeps_the_best_epoch() -> None:
    X, y = data()
    # A learning rate this large overshoots after a few epochs, so the eval loss turns up.
    model = fm(epochs=30, linear_lr=0.5, bias_lr=0.5).fit(
        X[:2000], y[:2000], eval_set=(X[2000:], y[2000:]), early_stopping_rounds=2
    )
    losses = [h["eval_rmse"] for h in model.history_]
    best = int(np.argmin(losses))
    assert model.best_epoch_ == best
    assert len(losses) == min(30, best + 3)
    assert model.evaluate(X[2000:], y[2000:])["rmse"] == pytest.approx(losses[best])


def test_early_stopping_needs_an_eval_set() -> None:
    X, y = data(100)
    with pytest.raises(InvalidInputError, match="needs an eval_set"):
        fm().fit(X, y, early_stopping_rounds=3)


def test_fit_from_a_recordio_file_equals_fit_in_memory(tmp_path: Path) -> None:
    X, y = data(5000)
    fmfast.write_recordio(tmp_path / "train.recordio", X, y)
    in_memory = fm(mini_batch_size=10).fit(X, y)
    streamed = fm(mini_batch_size=10).fit(tmp_path / "train.recordio")
    assert_same_model(in_memory, streamed)
    assert [h["rmse"] for h in streamed.history_] == pytest.approx([h["rmse"] for h in in_memory.history_])


def test_fit_from_a_directory_of_shards(tmp_path: Path) -> None:
    X, y = data(4000)
    fmfast.write_recordio_shards(tmp_path, X, y, n_shards=2, manifest_prefix="s3://bucket/train/")
    sharded = fm(mini_batch_size=100).fit(str(tmp_path))
    in_memory = fm(mini_batch_size=100).fit(X, y)
    # Each shard of 2,000 rows is a whole number of mini-batches, so the updates are the same.
    assert_same_model(in_memory, sharded)
    more = fm(mini_batch_size=100).fit(X, y).partial_fit(tmp_path)
    assert len(more.history_) == 5


ROWS_PER_READ = 512


def four_reads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, short_by: int = 0) -> Path:
    """A RecordIO file that streamed training takes in four reads of ``ROWS_PER_READ`` rows (fewer
    than its default, to keep tests small), the last one ``short_by`` rows short."""
    monkeypatch.setattr(fmfast.training.loop, "_ROWS_PER_READ", ROWS_PER_READ)
    X, y = data(4 * ROWS_PER_READ - short_by)
    fmfast.write_recordio(tmp_path / "train.recordio", X, y)
    return tmp_path / "train.recordio"


def interrupt_at_report(n: int) -> tuple[list[int], Callable[[int], None]]:
    """A progress callable that records every count it gets and raises KeyboardInterrupt at the ``n``-th."""
    calls: list[int] = []

    def report(done: int) -> None:
        calls.append(done)
        if len(calls) == n:
            raise KeyboardInterrupt

    return calls, report


def test_an_interrupted_streamed_epoch_leaves_the_model_as_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Streamed rows are trained a read at a time: this epoch takes 4 calls to the core.
    path = four_reads(tmp_path, monkeypatch)
    model = fm(mini_batch_size=2).fit(path)
    before = (model.w0_, model.w_.copy(), model.V_.copy(), model.n_updates_, len(model.history_))
    calls, stop_after_two_reads = interrupt_at_report(3)
    with pytest.raises(KeyboardInterrupt):
        model.set_params(progress=stop_after_two_reads).partial_fit(path)
    assert len(calls) == 3
    assert model.w0_ == before[0] and model.n_updates_ == before[3] and len(model.history_) == before[4]
    np.testing.assert_array_equal(model.w_, before[1])
    np.testing.assert_array_equal(model.V_, before[2])


def test_a_streamed_fit_reports_its_rows_as_one_count(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = four_reads(tmp_path, monkeypatch, short_by=5)
    seen: list[int] = []
    fm(mini_batch_size=2, epochs=2, progress=seen.append).fit(path)
    # The fit counts up across the four reads of each pass (not from 0 at every read) and on over
    # the second pass, as a fit in memory counts over all its epochs.
    rows = 4 * ROWS_PER_READ - 5
    one_pass = seen[: len(seen) // 2]
    assert seen == sorted(seen) and one_pass[-1] == rows and seen[-1] == 2 * rows
    assert seen[len(seen) // 2 :] == [rows + done for done in one_pass]
    assert ROWS_PER_READ in one_pass and 3 * ROWS_PER_READ in one_pass


def test_a_fit_epoch_by_epoch_stopped_by_ctrl_c_keeps_the_last_complete_epoch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # From RecordIO (as with an eval_set) fit trains an epoch per pass: four reads of the file each.
    path = four_reads(tmp_path, monkeypatch)
    calls, stop_in_the_third_epoch = interrupt_at_report(9)
    stopped = fm(mini_batch_size=2, epochs=3, progress=stop_in_the_third_epoch)
    with pytest.raises(KeyboardInterrupt):
        stopped.fit(path)
    assert len(calls) == 9
    two_epochs = fm(mini_batch_size=2, epochs=2).fit(path)
    assert_same_model(stopped, two_epochs)
    assert stopped.history_ == two_epochs.history_ and len(stopped.history_) == 2


def test_a_fit_in_memory_stopped_by_ctrl_c_keeps_the_last_complete_epoch() -> None:
    # One call to the core trains every epoch; it reports every 65,536 rows, so the first report
    # falls in the third epoch of 30,000 rows.
    X, y = data(30_000)
    calls, stop_in_the_third_epoch = interrupt_at_report(1)
    stopped = fm(epochs=4, progress=stop_in_the_third_epoch)
    with pytest.raises(KeyboardInterrupt):
        stopped.fit(X, y)
    assert len(calls) == 1 and 60_000 < calls[0] < 90_000
    two_epochs = fm(epochs=2).fit(X, y)
    assert_same_model(stopped, two_epochs)
    assert stopped.history_ == two_epochs.history_ and len(stopped.history_) == 2
    assert stopped.n_updates_ == two_epochs.n_updates_ == 1200
    # The optimizer state is the second epoch's too: training on gives the same model.
    stopped.set_params(progress=None).partial_fit(X, y)
    assert_same_model(stopped, two_epochs.partial_fit(X, y))


def test_a_fit_stopped_in_its_first_epoch_stays_unfitted() -> None:
    X, y = data(70_000)
    model = fm(epochs=3, progress=interrupt_at_report(1)[1])
    with pytest.raises(KeyboardInterrupt):
        model.fit(X, y)
    with pytest.raises(InvalidInputError, match="not fitted"):
        model.predict(X)
    assert model.history_ == []


def test_recordio_input_refuses_separate_labels(tmp_path: Path) -> None:
    X, y = data(100)
    fmfast.write_recordio(tmp_path / "train.recordio", X, y)
    with pytest.raises(InvalidInputError, match="labels come from the RecordIO records"):
        fm().fit(tmp_path / "train.recordio", y)
    fmfast.write_recordio(tmp_path / "unlabelled.recordio", X)
    with pytest.raises(InvalidInputError, match="carry no labels"):
        fm().fit(tmp_path / "unlabelled.recordio")


GOLDEN = Path(__file__).parent.parent / "data" / "mxnet-golden"


@pytest.mark.parametrize("predictor_type", ["regressor", "binary_classifier"])
def test_a_sagemaker_artifact_predicts_like_mxnet(predictor_type: str) -> None:
    model = FactorizationMachine.from_sagemaker(GOLDEN / "sagemaker" / predictor_type / "model.tar.gz")
    truth = np.load(GOLDEN / "truth" / f"forward_{predictor_type}.npz")
    X = sp.csr_array(
        (truth["x_csr_data"], truth["x_csr_indices"], truth["x_csr_indptr"]), shape=tuple(truth["x_shape"])
    )
    assert model.predictor_type == predictor_type and model.num_factors == 4
    np.testing.assert_allclose(model.predict_score(X), truth["pred_numpy"].reshape(-1), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(model.predict_score(X), truth["pred_mxnet"].reshape(-1), rtol=1e-5, atol=1e-5)


def test_to_sagemaker_round_trips_and_keeps_training(tmp_path: Path) -> None:
    X, y = data(500)
    model = fm(epochs=2).fit(X, y)
    model.to_sagemaker(tmp_path / "model.tar.gz")
    artifact = fmfast.read_sagemaker_model(tmp_path / "model.tar.gz")
    # The weights are float32 on both sides: the round trip is exact.
    assert model.V_.dtype == model.w_.dtype == np.float32
    np.testing.assert_array_equal(artifact.V, model.V_)
    np.testing.assert_array_equal(artifact.w, model.w_)
    assert artifact.hyperparameters["mini_batch_size"] == "50"  # a string, as SageMaker stores it
    back = FactorizationMachine.from_sagemaker(tmp_path / "model.tar.gz")
    assert back.get_params()["linear_lr"] == 0.05 and back.epochs == 2
    np.testing.assert_array_equal(back.predict(X), model.predict(X))
    assert len(back.partial_fit(X, y).history_) == 1
