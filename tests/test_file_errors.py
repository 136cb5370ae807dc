"""Files that cannot be opened raise the ``OSError`` subclass ``open`` would, naming the file."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import fmfast
import numpy as np
import pytest
from fmfast.recordio.convert import convert_file
from fmfast.recordio.inspection import inspect_recordio

GOOD_LIBSVM = "1 1:1 3:0.5\n0 2:1\n"


def _readers() -> dict[str, Callable[[Path], object]]:
    """Every public way of reading a path, as one-argument calls."""
    return {
        "read_recordio": fmfast.read_recordio,
        "iter_recordio": lambda path: list(fmfast.iter_recordio(path)),
        "inspect_recordio": inspect_recordio,
        "fit": lambda path: fmfast.FactorizationMachine("regressor", 2).fit(path),
        "convert libsvm": lambda path: convert_file(path, path.parent / "out.recordio", format="libsvm"),
        "convert csv": lambda path: convert_file(path, path.parent / "out.recordio", format="csv"),
    }


def _writers() -> dict[str, Callable[[Path, Path], object]]:
    """Every public way of writing a path, as ``(scratch, target)`` calls."""

    def libsvm_source(scratch: Path) -> Path:
        (scratch / "in.libsvm").write_text(GOOD_LIBSVM)
        return scratch / "in.libsvm"

    return {
        "write_recordio": lambda scratch, target: fmfast.write_recordio(target, np.eye(2)),
        "RecordIOWriter": lambda scratch, target: fmfast.RecordIOWriter(target),
        "convert libsvm": lambda scratch, target: convert_file(libsvm_source(scratch), target),
        "FactorizationMachine.save": lambda scratch, target: (
            fmfast.FactorizationMachine("regressor", 2).fit(np.eye(2), np.ones(2)).save(target)
        ),
    }


@pytest.mark.parametrize("read", _readers().values(), ids=_readers().keys())
def test_a_missing_input_raises_file_not_found_naming_it(tmp_path, read):
    path = tmp_path / "nosuch.recordio"
    with pytest.raises(FileNotFoundError) as caught:
        read(path)
    assert caught.value.filename == str(path)
    assert str(path) in str(caught.value) and "os error" not in str(caught.value)


# The RecordIO readers (and fit) read a directory as the RecordIO shards in it.
_DIRECTORY_READERS = ("fit", "read_recordio", "iter_recordio", "inspect_recordio")
_FILE_READERS = {name: read for name, read in _readers().items() if name not in _DIRECTORY_READERS}


@pytest.mark.parametrize("read", _FILE_READERS.values(), ids=_FILE_READERS.keys())
def test_a_directory_given_as_input_raises_is_a_directory_naming_it(tmp_path, read):
    path = tmp_path / "a-directory"
    path.mkdir()
    with pytest.raises(IsADirectoryError) as caught:
        read(path)
    assert caught.value.filename == str(path)


@pytest.mark.parametrize("name", _DIRECTORY_READERS)
def test_an_empty_directory_given_as_input_is_named(tmp_path, name):
    path = tmp_path / "a-directory"
    path.mkdir()
    with pytest.raises(fmfast.InvalidInputError, match=f"^{path} holds no RecordIO files$"):
        _readers()[name](path)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
@pytest.mark.parametrize("read", _readers().values(), ids=_readers().keys())
def test_an_unreadable_input_raises_permission_error_naming_it(tmp_path, read):
    path = tmp_path / "locked.recordio"
    fmfast.write_recordio(path, np.eye(2), np.ones(2))
    path.chmod(0)
    with pytest.raises(PermissionError) as caught:
        read(path)
    assert caught.value.filename == str(path)


@pytest.mark.parametrize("write", _writers().values(), ids=_writers().keys())
def test_an_output_in_a_missing_directory_raises_file_not_found_naming_it(tmp_path, write):
    target = tmp_path / "no-such-dir" / "out.recordio"
    with pytest.raises(FileNotFoundError) as caught:
        write(tmp_path, target)
    assert caught.value.filename is not None and str(caught.value.filename).startswith(str(target.parent))
    assert ".tmp" not in str(caught.value), "the error names the output, not a temporary file"
    assert not target.parent.exists()


def test_an_output_over_a_directory_raises_is_a_directory_and_leaves_nothing(tmp_path):
    target = tmp_path / "taken"
    target.mkdir()
    with pytest.raises(IsADirectoryError) as caught:
        fmfast.write_recordio(target, np.eye(2))
    assert caught.value.filename == str(target)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"] and not any(target.iterdir())


# The text converters report a bad line by its number (ParseError), not a record.
_RECORDIO_READERS = {name: read for name, read in _readers().items() if not name.startswith("convert")}


@pytest.mark.parametrize("read", _RECORDIO_READERS.values(), ids=_RECORDIO_READERS.keys())
def test_corrupt_content_read_from_a_path_names_the_file(tmp_path, read):
    path = tmp_path / "corrupt.recordio"
    path.write_bytes(b"\0" * 12)
    with pytest.raises(fmfast.RecordIOError, match="bad magic") as caught:
        read(path)
    assert caught.value.filename == str(path) and str(caught.value).startswith(f"{path}: record 0 at")
    assert (caught.value.record, caught.value.offset) == (0, 0)
