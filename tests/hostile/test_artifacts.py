"""Hostile model files: tiny files that declare huge things, refused before the memory is taken.

Each is read in a child process whose address space is capped at 1 GiB (``RLIMIT_AS``), so an
allocation sized by what the file declares shows up as a ``MemoryError`` (a failed test), not as
a slow machine. A real artifact loads under the same cap.
"""

from __future__ import annotations

import gzip
import io
import json
import struct
import subprocess
import sys
import tarfile
import textwrap
import zipfile
import zlib
from pathlib import Path

import fmfast
import numpy as np
import pytest
import scipy.sparse as sp
from fmfast.recordio.convert import convert_file
from numpy.lib import format as npy

GOLDEN = Path(__file__).parents[1] / "data" / "mxnet-golden"
ARTIFACT = GOLDEN / "sagemaker" / "regressor" / "model.tar.gz"
ADDRESS_SPACE = 1 << 30
V2_MAGIC = 0xF993FAC9
FLOAT32, INT64 = 0, 6
LOAD_ARTIFACT = "fmfast.FactorizationMachine.from_sagemaker(path)"
LOAD_MODEL = "fmfast.FactorizationMachine.load(path)"

CHILD = """
import json, resource, sys
resource.setrlimit(resource.RLIMIT_AS, ({limit}, {limit}))
import numpy as np
import fmfast
path = sys.argv[1]
try:
{call}
except fmfast.FmFastError as error:
    print(json.dumps([type(error).__name__, str(error)]))
else:
    print(json.dumps(["loaded", ""]))
"""


def read_capped(path: Path, call: str = LOAD_ARTIFACT) -> tuple[str, str]:
    """Run ``call`` on ``path`` in a child with 1 GiB of address space.

    Returns ``("loaded", "")``, or the name and message of the fmfast exception it raised.
    """
    code = CHILD.format(limit=ADDRESS_SPACE, call=textwrap.indent(call, "    "))
    result = subprocess.run(
        [sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr[-3000:]
    outcome, message = json.loads(result.stdout.splitlines()[-1])
    return outcome, message


def refused(path: Path, message: str, call: str = LOAD_ARTIFACT, error: str = "ModelFormatError") -> None:
    outcome, text = read_capped(path, call)
    assert outcome == error, f"{path.name}: {outcome} {text}"
    assert message in text, text


# ---------------------------------------------------------------------------------------------
# Building artifacts


def shape_bytes(shape: tuple[int, ...]) -> bytes:
    return struct.pack(f"<i{len(shape)}q", len(shape), *shape)


def dense_array(values: np.ndarray, shape: tuple[int, ...] | None = None) -> bytes:
    """An MXNet V2 dense array; ``shape`` may claim another shape than the data has."""
    header = (
        struct.pack("<Ii", V2_MAGIC, 0)
        + shape_bytes(shape or values.shape)
        + struct.pack("<iii", 1, 0, FLOAT32)
    )
    return header + values.astype("<f4").tobytes()


def row_sparse_array(shape: tuple[int, ...], rows: list[int], data: np.ndarray) -> bytes:
    """An MXNet V2 row_sparse array: ``data`` holds the rows ``rows`` of a ``shape`` array."""
    return (
        struct.pack("<Ii", V2_MAGIC, 1)
        + shape_bytes(data.shape)
        + shape_bytes(shape)
        + struct.pack("<iii", 1, 0, FLOAT32)
        + struct.pack("<i", INT64)
        + shape_bytes((len(rows),))
        + data.astype("<f4").tobytes()
        + np.asarray(rows, dtype="<i8").tobytes()
    )


def params_file(arrays: dict[str, bytes]) -> bytes:
    names = b"".join(struct.pack("<Q", len(name)) + name.encode() for name in arrays)
    return (
        struct.pack("<QQQ", 0x112, 0, len(arrays))
        + b"".join(arrays.values())
        + struct.pack("<Q", len(arrays))
        + names
    )


def model_tar_gz(members: dict[str, bytes]) -> bytes:
    """A ``model.tar.gz`` whose ``model_algo-1`` zip holds ``members``."""
    algo = io.BytesIO()
    with zipfile.ZipFile(algo, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return gzip.compress(tar_bytes({"model_algo-1": algo.getvalue()}))


def tar_bytes(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, content in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def zeros_deflated(n_mib: int) -> bytes:
    """Raw deflate blocks that inflate to ``n_mib`` MiB of zeros, built without compressing them all.

    One MiB compressed from a fresh stream refers only to itself, and ends byte-aligned (sync
    flush), so copies of it may follow one another.
    """
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = compressor.compress(bytes(1 << 20)) + compressor.flush(zlib.Z_SYNC_FLUSH)
    return block * n_mib


def gzip_bomb(prefix: bytes, n_mib: int) -> bytes:
    """A gzip stream of ``prefix`` then ``n_mib`` MiB of zeros (its trailer is never reached)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    head = compressor.compress(prefix) + compressor.flush(zlib.Z_SYNC_FLUSH)
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"
    return header + head + zeros_deflated(n_mib) + b"\x03\x00" + bytes(8)


def fm_params(v: bytes) -> bytes:
    return params_file(
        {
            "arg:v": v,
            "arg:w1_weight": dense_array(np.zeros((1, 1))),
            "arg:w0_weight": dense_array(np.zeros(1)),
        }
    )


# ---------------------------------------------------------------------------------------------
# The cap holds, and a real artifact fits under it


def test_the_cap_is_in_force(tmp_path):
    path = tmp_path / "unused"
    path.write_bytes(b"")
    code = CHILD.format(limit=ADDRESS_SPACE, call="    np.ones(3 << 28)")
    result = subprocess.run(
        [sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode != 0 and "MemoryError" in result.stderr


def test_a_real_artifact_and_model_file_load_under_the_cap(tmp_path):
    assert read_capped(ARTIFACT) == ("loaded", "")
    model = fmfast.FactorizationMachine.from_sagemaker(ARTIFACT)
    model.save(tmp_path / "model.fmfast")
    assert read_capped(tmp_path / "model.fmfast", LOAD_MODEL) == ("loaded", "")
    model.to_sagemaker(tmp_path / "model.tar.gz")
    assert read_capped(tmp_path / "model.tar.gz") == ("loaded", "")


# ---------------------------------------------------------------------------------------------
# Archives


@pytest.mark.parametrize("prefix", ["model_algo-1", "nothing"])
def test_gzip_bomb_is_refused_after_inflating_the_tar_and_its_padding(tmp_path, prefix):
    golden = tarfile.open(ARTIFACT).extractfile("model_algo-1").read()  # type: ignore[union-attr]
    tar = tar_bytes({"model_algo-1": golden}) if prefix == "model_algo-1" else b""
    bomb = gzip_bomb(tar, 3 << 10)
    assert len(bomb) < 4 << 20  # 3 GiB of zeros in under 4 MB
    path = tmp_path / "model.tar.gz"
    path.write_bytes(bomb)
    refused(path, f"gzip stream inflates more than {1 << 20} bytes beyond its tar archive")


def test_tar_member_declaring_more_than_the_limit_is_refused_before_inflating_it(tmp_path):
    header = tarfile.TarInfo("model_algo-1")
    header.size = 5 << 30  # 5 GiB of zeros follow, in 5 MB
    path = tmp_path / "model.tar.gz"
    path.write_bytes(gzip_bomb(header.tobuf(format=tarfile.GNU_FORMAT), 5 << 10))
    refused(path, f"archive member 'model_algo-1' ({5 << 30} bytes) exceeds the {4 << 30}-byte limit")


# ---------------------------------------------------------------------------------------------
# MXNet params


def test_row_sparse_params_declaring_a_billion_floats_are_refused(tmp_path):
    v = row_sparse_array((10**8, 10), [3], np.ones((1, 10)))
    path = tmp_path / "model.tar.gz"
    path.write_bytes(model_tar_gz({"params": fm_params(v)}))
    assert path.stat().st_size < 1000
    refused(path, "row_sparse shape (100000000, 10) would take 4000000000 bytes dense")


def test_dense_params_declaring_a_billion_floats_are_refused(tmp_path):
    v = dense_array(np.ones((1, 10)), shape=(10**8, 10))
    path = tmp_path / "model.tar.gz"
    path.write_bytes(model_tar_gz({"params": fm_params(v)}))
    refused(path, "needs 4000000000 bytes")


# ---------------------------------------------------------------------------------------------
# fmfast model files (.npz)


def saved_model(tmp_path: Path) -> tuple[Path, dict[str, bytes]]:
    X = sp.random(30, 8, density=0.3, format="csr", dtype=np.float32, random_state=0)
    model = fmfast.FactorizationMachine("regressor", 2, random_state=0).fit(X, np.ones(30))
    path = tmp_path / "good.fmfast"
    model.save(path)
    with zipfile.ZipFile(path) as archive:
        return path, {name: archive.read(name) for name in archive.namelist()}


def npz(path: Path, members: dict[str, bytes], compression: int = zipfile.ZIP_STORED) -> Path:
    with zipfile.ZipFile(path, "w", compression) as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return path


def npy_header(shape: tuple[int, ...], descr: str = "<f4") -> bytes:
    buffer = io.BytesIO()
    npy.write_array_header_1_0(buffer, {"descr": descr, "fortran_order": False, "shape": shape})
    return buffer.getvalue()


@pytest.mark.parametrize("compression", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])
def test_npy_header_declaring_a_trillion_floats_is_refused(tmp_path, compression):
    _, members = saved_model(tmp_path)
    members["factors.npy"] = npy_header((10**12,)) + bytes(64)
    path = npz(tmp_path / "huge.fmfast", members, compression)
    refused(
        path,
        f"member 'factors.npy' declares shape ({10**12},) of float32 ({4 * 10**12} bytes) but holds 64 bytes",
        LOAD_MODEL,
    )


def test_zip_member_declaring_more_bytes_than_the_file_is_refused(tmp_path):
    _, members = saved_model(tmp_path)
    path = npz(tmp_path / "lying.fmfast", members)
    data = bytearray(path.read_bytes())
    # The central directory entry of the last member: its compressed and uncompressed sizes.
    entry = data.rindex(b"PK\x01\x02")
    struct.pack_into("<II", data, entry + 20, 0x7FFFFFFF, 0x7FFFFFFF)
    path.write_bytes(bytes(data))
    refused(path, "declares more bytes than the file holds", LOAD_MODEL)


def test_deflated_member_inflating_to_less_than_it_declares_is_refused(tmp_path):
    _, members = saved_model(tmp_path)
    header = npy_header((10**9,))
    members["factors.npy"] = header + bytes(64)
    path = npz(tmp_path / "short.fmfast", members, zipfile.ZIP_DEFLATED)
    declared = len(header) + 4 * 10**9
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:
        local = archive.getinfo("factors.npy").header_offset
    # Its central directory entry repeats the local header's fields from version to sizes, 2 bytes on.
    entry = data.index(data[local + 4 : local + 22], local + 30) - 6
    struct.pack_into("<I", data, local + 22, declared)
    struct.pack_into("<I", data, entry + 24, declared)
    path.write_bytes(bytes(data))
    refused(
        path,
        f"member 'factors.npy' inflates to {len(header) + 64} bytes, not the {declared} it declares",
        LOAD_MODEL,
    )


def test_npy_of_python_objects_is_refused_unread(tmp_path):
    _, members = saved_model(tmp_path)
    members["linear.npy"] = npy_header((1,), "|O") + b"\x80\x04N."  # a pickle of None
    path = npz(tmp_path / "pickle.fmfast", members)
    with pytest.raises(fmfast.ModelFormatError, match="holds Python objects"):
        fmfast.FactorizationMachine.load(path)


# ---------------------------------------------------------------------------------------------
# JSON nested deeply


def test_deeply_nested_meta_json_is_refused(tmp_path):
    golden = zipfile.ZipFile(io.BytesIO(tarfile.open(ARTIFACT).extractfile("model_algo-1").read()))  # type: ignore[union-attr]
    members = {name: golden.read(name) for name in golden.namelist()}
    members["meta.json"] = b"[" * 100_000 + b"]" * 100_000
    path = tmp_path / "model.tar.gz"
    path.write_bytes(model_tar_gz(members))
    with pytest.raises(fmfast.ModelFormatError, match=r"meta\.json nests JSON too deeply"):
        fmfast.FactorizationMachine.from_sagemaker(path)


def test_deeply_nested_model_header_is_refused(tmp_path):
    _, members = saved_model(tmp_path)
    header = b'{"format": ' * 100_000 + b"1" + b"}" * 100_000
    buffer = io.BytesIO()
    np.save(buffer, np.frombuffer(header, dtype=np.uint8))
    members["header.npy"] = buffer.getvalue()
    path = npz(tmp_path / "deep.fmfast", members)
    with pytest.raises(fmfast.ModelFormatError, match="not a readable fmfast model file"):
        fmfast.FactorizationMachine.load(path)


# ---------------------------------------------------------------------------------------------
# Other inputs: the .npz and .npy that ``fmfast convert`` reads


def test_convert_refuses_npy_labels_declaring_a_trillion_floats(tmp_path):
    sp.save_npz(tmp_path / "X.npz", sp.random(4, 3, density=0.5, format="csr", random_state=0))
    (tmp_path / "y.npy").write_bytes(npy_header((10**12,)) + bytes(16))
    call = "fmfast.recordio.convert.convert_file(f'{path}/X.npz', f'{path}/out.recordio', labels=f'{path}/y.npy')"
    message = f"'{tmp_path}/y.npy' declares shape ({10**12},) of float32"
    refused(tmp_path, message, "import fmfast.recordio.convert\n" + call, "InvalidInputError")


def test_convert_refuses_a_sparse_npz_declaring_a_trillion_indices(tmp_path):
    sp.save_npz(tmp_path / "X.npz", sp.random(4, 3, density=0.5, format="csr", random_state=0))
    with zipfile.ZipFile(tmp_path / "X.npz") as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    members["indices.npy"] = npy_header((10**12,), "<i4") + bytes(8)
    npz(tmp_path / "X.npz", members, zipfile.ZIP_DEFLATED)
    with pytest.raises(fmfast.InvalidInputError, match=r"member 'indices\.npy' declares shape"):
        convert_file(tmp_path / "X.npz", tmp_path / "out.recordio")
    assert not (tmp_path / "out.recordio").exists()
