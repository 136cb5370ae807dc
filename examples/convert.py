"""Generate MovieLens-shaped ratings and write them as SageMaker RecordIO-protobuf shards.

    python examples/convert.py [OUT_DIR]

Writes ``OUT_DIR/train/part-0000i-of-00004.recordio`` (one-hot user + item rows, the ratings as
labels) with a SageMaker ``manifest.json`` listing them under an S3 prefix, and
``OUT_DIR/test.recordio``, then reads a shard back. Upload ``OUT_DIR/train`` to that prefix and a
SageMaker FM training job can read it.
"""

import sys
from pathlib import Path

import fmfast
from fmfast.recsys import random_split, synthetic_ratings


def main(out: Path) -> None:
    """Write the shards and the test file under ``out``."""
    ratings = synthetic_ratings(n_users=300, n_items=500, n_ratings=20_000, seed=0)
    X, y = ratings.one_hot()  # CSR, float32: a 1 in the user's column and one in the item's
    train, test = random_split(len(y), test_fraction=0.2, seed=0)

    shards = fmfast.write_recordio_shards(
        out / "train", X[train], y[train], n_shards=4, manifest_prefix="s3://my-bucket/fm/train/"
    )
    fmfast.write_recordio(out / "test.recordio", X[test], y[test])
    for path in shards:
        print(f"wrote {path} ({path.stat().st_size:,} bytes)")

    X_back, y_back = fmfast.read_recordio(shards[0])
    print(f"{shards[0].name}: {X_back.shape[0]:,} rows, {X_back.shape[1]:,} features, labels {y_back[:5]}")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "fmfast-example"))
