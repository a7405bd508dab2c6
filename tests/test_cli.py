"""The `kerasrv` command line."""

import json
import subprocess
import sys

from kerasrv import cli, zoo


def test_list_prints_every_entry_as_a_table(capsys):
    assert cli.main(["list"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["name", "task", "input", "params", "metrics"]
    assert [line.split()[0] for line in out[2:]] == zoo.list_models()


def test_list_filters_with_a_pattern(capsys):
    assert cli.main(["list", "row_rnn*"]) == 0
    assert [line.split()[0] for line in capsys.readouterr().out.splitlines()[2:]] == [
        "row_rnn.gru",
        "row_rnn.lstm",
        "row_rnn.peephole",
    ]


def test_info_prints_the_card_as_json(capsys):
    assert cli.main(["info", "cnn_lstm"]) == 0
    card = json.loads(capsys.readouterr().out)
    assert card == json.loads(json.dumps(zoo.info("cnn_lstm.fmnist")))


def test_an_unknown_name_exits_2_with_the_suggestion_and_no_traceback():
    result = subprocess.run(
        [sys.executable, "-m", "kerasrv.cli", "info", "cnn_lsmt"], capture_output=True, text=True
    )
    assert result.returncode == 2
    assert "unknown model 'cnn_lsmt'; did you mean cnn_lstm" in result.stderr
    assert "Traceback" not in result.stderr


def test_data_show_writes_a_png(tmp_path, tfds_dir, monkeypatch, capsys):
    monkeypatch.setenv("TFDS_DATA_DIR", tfds_dir)
    out = tmp_path / "moving.png"
    assert cli.main(["data", "show", "moving_fashion_mnist/small", "--out", str(out)]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 20_000


def test_evaluate_prints_the_metrics_and_writes_pictures(tmp_path, tfds_dir, monkeypatch, capsys):
    monkeypatch.setenv("TFDS_DATA_DIR", tfds_dir)
    for name, metric, picture in [
        ("cnn_lstm", "accuracy", "confusion_matrix.png"),
        ("reseg", "mean_iou", "predictions.png"),
        ("convlstm_predict", "copy_last_mse", "predictions.png"),
    ]:
        assert cli.main(["evaluate", name, "--split", "test[:16]", "--out", str(tmp_path)]) == 0
        out = capsys.readouterr().out
        entry = zoo.get_entry(name).name
        assert out.startswith(f"{entry} on test[:16] (16 examples)")
        assert f"  {metric}" in out
        path = tmp_path / entry / picture
        assert f"picture: {path}" in out and path.read_bytes()[:4] == b"\x89PNG"
