"""The public names of the first release still import; old paths and names warn, then work.

``FIRST_RELEASE`` is what ``fmfast`` and its flat modules exported before the package was grouped
by concern (issue 14), frozen here so a move that drops a name fails this test.
"""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys
import warnings

import fmfast
import numpy as np
import pytest
from fmfast._deprecated import MOVED_MODULES, RENAMED

TOP_LEVEL = {
    "DivergenceError", "FactorizationMachine", "FeatureEncoder", "FmFastError", "InvalidInputError",
    "ModelFormatError", "NotFittedError", "ParseError", "RecordIOError", "RecordIOWriter", "SageMakerFM",
    "UnsupportedContentTypeError", "__version__", "dump_params", "encode_recordio", "iter_recordio",
    "load_params", "load_ratings", "parse_request", "parse_response", "read_recordio", "read_sagemaker_model",
    "recommend", "serialize_request", "serialize_response", "similar_items", "write_numpy_to_dense_tensor",
    "write_recordio", "write_recordio_shards", "write_sagemaker_model", "write_spmatrix_to_sparse_tensor",
}  # fmt: skip

FIRST_RELEASE = {
    "model": ["FactorizationMachine"],
    "recordio": ["RecordIOWriter", "encode_recordio", "iter_recordio", "read_recordio", "write_recordio"],
    "sagemaker_compat": ["write_numpy_to_dense_tensor", "write_spmatrix_to_sparse_tensor"],
    "shards": ["recordio_files", "shard_name", "write_recordio_shards"],
    "inspect": ["RecordIOSummary", "inspect_recordio"],
    "convert": ["RatingsColumns", "columns_path", "convert_file", "convert_libsvm", "convert_ratings_csv",
                "detect_format", "load_columns", "ratings_one_hot"],
    "ratings": ["MOVIELENS_GENRES", "MovieLensItems", "MovieLensUsers", "RatingsData", "load_movielens_items",
                "load_movielens_users", "load_ratings"],
    "features": ["BlockInfo", "FeatureEncoder"],
    "implicit": ["Interactions", "sample_negatives"],
    "recommend": ["model_weights", "most_popular", "one_hot", "recommend", "side_sums", "similar_items"],
    "evaluation": ["catalog_coverage", "hit_rate_at_k", "leave_n_out", "mae", "map_at_k", "ndcg_at_k",
                   "precision_at_k", "random_split", "recall_at_k", "rmse", "temporal_split"],
    "datasets": ["Ratings", "synthetic_ratings", "user_item_one_hot"],
    "sagemaker_model": ["FMFAST_SETTINGS", "HYPERPARAMETERS", "MAX_MEMBER_BYTES", "MAX_TAR_PADDING",
                        "SageMakerFM", "fm_symbol_json", "format_hyperparameters", "model_algo_bytes",
                        "parse_hyperparameters", "read_sagemaker_model", "sagemaker_model_bytes",
                        "write_sagemaker_model"],
    "mxnet_params": ["DTYPES", "MAX_DENSE_BYTES", "ModelFormatError", "RowSparse", "dump_params", "load_params"],
    "inference": ["CONTENT_TYPES", "JSON", "JSONLINES", "RECORDIO", "negotiate_accept", "normalize_content_type",
                  "parse_request", "parse_response", "serialize_request", "serialize_response"],
    "serve": ["ModelScorer", "Scorer", "create_app", "serve"],
    "transform": ["content_type_of", "load_model", "transform_file"],
}  # fmt: skip

SUB_PACKAGES = ["fmfast.recordio", "fmfast.training", "fmfast.recsys", "fmfast.interop", "fmfast.sagemaker"]
SUB_PACKAGES += ["fmfast.spark"]


def test_every_top_level_name_of_the_first_release_is_still_exported():
    assert set(fmfast.__all__) >= TOP_LEVEL
    for name in fmfast.__all__:
        assert getattr(fmfast, name) is not None
    # The additions are the new names of renamed functions, and new functions.
    assert set(fmfast.__all__) - TOP_LEVEL == {
        "read_mxnet_params",
        "write_mxnet_params",
        "read_ratings",
        "convert_table",
    }


@pytest.mark.parametrize("package", SUB_PACKAGES)
def test_each_sub_package_names_its_public_api(package):
    module = importlib.import_module(package)
    assert module.__doc__ and module.__all__ == sorted(module.__all__)
    for name in module.__all__:
        assert getattr(module, name).__doc__, f"{package}.{name} has no docstring"


def test_the_top_level_names_are_the_sub_packages_objects():
    from fmfast import interop, recordio, recsys, training

    assert fmfast.read_recordio is recordio.read_recordio
    assert fmfast.write_recordio_shards is recordio.write_recordio_shards
    assert fmfast.FactorizationMachine is training.FactorizationMachine
    assert fmfast.recommend is recsys.recommend and fmfast.read_ratings is recsys.read_ratings
    assert fmfast.read_sagemaker_model is interop.read_sagemaker_model


@pytest.mark.parametrize("old", sorted(FIRST_RELEASE))
def test_the_old_module_paths_still_import_and_warn_on_use(old):
    module = importlib.import_module(f"fmfast.{old}")
    if old == "recordio":  # a package now, of the same name: no warning
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert all(getattr(module, name) for name in FIRST_RELEASE[old])
        return
    new = importlib.import_module(MOVED_MODULES[old])
    renamed = RENAMED.get(MOVED_MODULES[old], {})
    for name in FIRST_RELEASE[old]:
        with pytest.warns(
            DeprecationWarning, match=rf"fmfast\.{old}\.{name} is deprecated.*{MOVED_MODULES[old]}"
        ):
            value = getattr(module, name)
        assert value is getattr(new, renamed.get(name, name))


def test_from_imports_of_an_old_path_warn_at_the_users_line():
    with pytest.warns(
        DeprecationWarning, match=r"fmfast\.evaluation\.rmse .*fmfast\.recsys\.evaluation\.rmse"
    ) as record:
        from fmfast.evaluation import rmse
    assert record[0].filename == __file__
    assert rmse(np.array([1.0, 2.0]), np.array([1.0, 4.0])) == pytest.approx(2**0.5)


def test_the_old_module_names_are_attributes_of_fmfast_as_before():
    assert isinstance(fmfast.evaluation, type(fmfast))
    with pytest.warns(DeprecationWarning, match="fmfast.recsys.datasets.synthetic_ratings"):
        assert fmfast.datasets.synthetic_ratings is fmfast.recsys.datasets.synthetic_ratings
    # fmfast.recommend stays the function, as it was, even after `import fmfast.recommend`.
    old = importlib.import_module("fmfast.recommend")
    assert fmfast.recommend is fmfast.recsys.recommend and old.__name__ == "fmfast.recommend"
    with pytest.raises(AttributeError, match="no attribute 'not_a_module'"):
        _ = fmfast.not_a_module


def test_fmfast_uses_no_deprecated_path_itself_and_imports_no_server():
    code = (
        "import warnings; warnings.simplefilter('error');"
        "import fmfast, fmfast.cli, fmfast.sagemaker, fmfast.interop.serve, fmfast.interop.transform;"
        "import fmfast.recordio.inspection, fmfast.recordio.convert"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    bare = "import sys, fmfast; print(sorted(m for m in ('starlette', 'uvicorn', 'sagemaker') if m in sys.modules))"
    shown = subprocess.run([sys.executable, "-c", bare], capture_output=True, text=True, check=True)
    assert shown.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("old", "new", "args"),
    [
        ("load_params", "read_mxnet_params", ()),
        ("dump_params", "write_mxnet_params", ()),
        ("load_ratings", "read_ratings", ()),
    ],
)
def test_the_renamed_top_level_functions_warn_on_call_and_do_the_same(tmp_path, old, new, args):
    alias = getattr(fmfast, old)
    assert alias.__name__ == old and new in alias.__doc__
    if old == "load_ratings":
        path = tmp_path / "r.csv"
        path.write_text("user,item,rating\na,b,4\nc,b,2\n")
        call = (path,)
    elif old == "dump_params":
        call = ({"arg:w0_weight": np.ones(1, np.float32)},)
    else:
        path = tmp_path / "p.params"
        path.write_bytes(fmfast.write_mxnet_params({"arg:w0_weight": np.ones(1, np.float32)}))
        call = (path.read_bytes(),)
    with pytest.warns(DeprecationWarning, match=rf"fmfast\.{old} is deprecated.*\.{new}$") as record:
        result = alias(*call)
    assert record[0].filename == __file__
    expected = getattr(fmfast, new)(*call)
    if old == "load_ratings":
        assert result.ratings.tolist() == expected.ratings.tolist() == [4.0, 2.0]
    elif old == "dump_params":
        assert result == expected
    else:
        assert result.keys() == expected.keys() and result["arg:w0_weight"].tolist() == [1.0]


def test_no_module_shadows_the_standard_library():
    # fmfast/inspect.py shadowed `inspect` for scripts run from inside the package.
    names = {info.name.rsplit(".", 1)[-1] for info in pkgutil.walk_packages(fmfast.__path__, "fmfast.")}
    public = {name for name in names if not name.startswith("_")}
    assert "inspection" in public and not public & set(sys.stdlib_module_names)
