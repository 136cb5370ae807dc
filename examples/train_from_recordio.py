"""Train a rating FM straight from RecordIO files, evaluate it, and save it for fmfast and SageMaker.

    python examples/train_from_recordio.py [OUT_DIR]

Reads the shards and test file that ``examples/convert.py OUT_DIR`` wrote (and runs it first when
they are missing). Training streams the shards with bounded memory, as SageMaker's container does.
"""

import sys
from pathlib import Path

import convert  # the example beside this one
import fmfast


def main(out: Path) -> None:
    """Train on ``out/train``, report test RMSE, write ``out/model.fmfast`` and ``out/model.tar.gz``."""
    if not (out / "train").is_dir():
        convert.main(out)

    model = fmfast.FactorizationMachine(
        "regressor",
        num_factors=8,
        epochs=10,
        mini_batch_size=100,
        bias_lr=0.01,
        linear_lr=0.01,
        factors_lr=0.01,
        linear_wd=0.001,
        factors_wd=0.001,
        random_state=0,
    )
    model.fit(out / "train")  # a directory of shards, read in name order; labels from the records
    print(f"trained {len(model.history_)} epochs, train rmse {model.history_[-1]['rmse']:.4f}")

    X_test, y_test = fmfast.read_recordio(out / "test.recordio")
    baseline = float(((y_test - y_test.mean()) ** 2).mean() ** 0.5)
    print(f"test rmse {model.evaluate(X_test, y_test)['rmse']:.4f} (predicting the mean: {baseline:.4f})")

    model.save(out / "model.fmfast")  # fmfast.FactorizationMachine.load reads it back
    model.to_sagemaker(out / "model.tar.gz")  # what a SageMaker FM endpoint or fmfast serve loads
    print(f"wrote {out / 'model.fmfast'} and {out / 'model.tar.gz'}")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "fmfast-example"))
