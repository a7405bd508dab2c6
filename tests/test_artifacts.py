"""kerasrv.artifacts: one card schema, atomic writes, and damaged files named in one line."""

import json

import pytest

from kerasrv import artifacts, zoo


def test_a_card_round_trips_through_its_file(tmp_path):
    card = zoo.info("lrcn")
    artifacts.write_card(tmp_path, card)
    read = artifacts.read_card(tmp_path)
    assert "path" not in read.weights  # a card file holds no local paths
    assert read.replace(weights=card.weights) == card
    assert read["input_name"] == "frames" and read.class_names == card.class_names


def test_a_card_of_an_earlier_version_still_reads(tmp_path):
    """Runs and exports made before `int8_activations` became two formats keep loading."""
    card = zoo.info("lrcn")
    artifacts.write_card(tmp_path, card)
    old = json.loads((tmp_path / artifacts.CARD_FILE).read_text())
    (tmp_path / artifacts.CARD_FILE).write_text(json.dumps({**old, "int8_activations": 16}))
    assert artifacts.read_card(tmp_path).replace(weights=card.weights) == card


def test_a_card_reads_as_a_mapping_and_copies_never_share_state():
    card = zoo.info("cnn_lstm")
    assert card["task"] == card.task == "classification"
    assert card.get("nothing", 3) == 3
    card["metrics"]["tampered"] = 1.0
    assert "tampered" not in zoo.info("cnn_lstm")["metrics"]
    with pytest.raises(KeyError):
        card["nothing"]


@pytest.mark.parametrize(
    "content, message",
    [
        (None, "card.json is missing"),
        ('{"name": "x",\n', "card.json is not valid JSON"),
        ('["a", "list"]', "is not a card: expected a JSON object"),
        ('{"name": "row_rnn.gru", "metrics": {}}', "records no weights sha256"),
        ('{"name": "row_rnn.gru", "weights": {"sha256": "ab"}, "colour": 1}', "unknown field"),
    ],
)
def test_a_damaged_card_is_named_in_one_line(content, message, tmp_path, monkeypatch):
    directory = tmp_path / "row_rnn.gru"
    directory.mkdir()
    (directory / artifacts.WEIGHTS_FILE).write_bytes(
        (artifacts.shipped("row_rnn.gru") / artifacts.WEIGHTS_FILE).read_bytes()
    )
    if content is not None:
        (directory / artifacts.CARD_FILE).write_text(content)
    monkeypatch.setenv("KERASRV_MODELS_DIR", str(tmp_path))
    for call in (lambda: zoo.load("row_rnn.gru"), lambda: zoo.info("row_rnn.gru")):
        with pytest.raises(artifacts.CardError, match=message) as caught:
            call()
        assert "\n" not in str(caught.value) and str(directory) in str(caught.value)


def test_a_whole_card_is_refused_with_what_it_misses(tmp_path):
    (tmp_path / artifacts.CARD_FILE).write_text(
        json.dumps({"name": "x", "task": "classification", "weights": {"sha256": "ab"}})
    )
    with pytest.raises(artifacts.CardError, match="not a complete card: no input_shape"):
        artifacts.read_card(tmp_path)


def test_writes_are_atomic_and_leave_no_temporary_files(tmp_path):
    artifacts.write_json(tmp_path / "card.json", {"a": 1})
    artifacts.write_json(tmp_path / "card.json", {"a": 2})
    assert json.loads((tmp_path / "card.json").read_text()) == {"a": 2}
    assert [p.name for p in tmp_path.iterdir()] == ["card.json"]
