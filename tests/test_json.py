"""Every JSON reader of untrusted text refuses what ``json.loads`` cannot parse with an ``InvalidInputError``."""

from __future__ import annotations

import fmfast
import pytest
from fmfast._json import loads
from fmfast.cli import main
from fmfast.recsys.features import FeatureEncoder

DEEP = "[" * 100_000 + "]" * 100_000

READERS = {
    "request json": lambda text: fmfast.parse_request(text, "application/json", 3),
    "request jsonlines": lambda text: fmfast.parse_request(text, "application/jsonlines", 3),
    "response json": lambda text: fmfast.parse_response(text, "application/json"),
    "response jsonlines": lambda text: fmfast.parse_response(text, "application/jsonlines"),
    "feature encoder": FeatureEncoder.from_json,
}


@pytest.mark.parametrize("reader", READERS, ids=list(READERS))
@pytest.mark.parametrize(
    ("text", "message"),
    [
        (DEEP, "nested too deeply"),
        ('{"a": ' * 100_000 + "1" + "}" * 100_000, "nested too deeply"),
        ("[1, 2", "not valid JSON"),
        ("9" * 5_000, "not valid JSON"),  # beyond Python's limit on integer digits
    ],
)
def test_each_reader_refuses_unparsable_json(reader, text, message):
    with pytest.raises(fmfast.InvalidInputError, match=message):
        READERS[reader](text)


def test_the_helper_names_what_it_reads():
    assert loads(b'{"a": [1, 2.5, null]}', "x") == {"a": [1, 2.5, None]}
    with pytest.raises(fmfast.InvalidInputError, match=r"^line 3 is JSON nested too deeply to parse$"):
        loads(DEEP, "line 3")
    with pytest.raises(fmfast.InvalidInputError, match=r"^the file is not valid JSON: "):
        loads(b"\xff", "the file")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (DEEP, "columns.json is not a .columns.json file: it is JSON nested too deeply"),
        ("[1]", "columns.json is not a .columns.json file: no list of users"),
    ],
)
def test_recommend_refuses_a_bad_columns_file(tmp_path, capsys, content, message):
    model = fmfast.FactorizationMachine("regressor", 2, epochs=1).fit([[1.0, 0.0], [0.0, 1.0]], [1.0, 2.0])
    model.save(tmp_path / "model.fmfast")
    (tmp_path / "columns.json").write_text(content)
    assert (
        main(["recommend", str(tmp_path / "model.fmfast"), str(tmp_path / "columns.json"), "--user", "u"])
        == 1
    )
    assert message in capsys.readouterr().err
