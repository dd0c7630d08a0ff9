import csv
import json

import pytest

from bhscore.cli import main


def test_score_prints_and_writes_table(accuracy_settings, tmp_path, capsys):
    out = tmp_path / "t.csv"
    rc = main(["score", "--settings", str(accuracy_settings.source), "--n-bootstrap", "20", "-o", str(out)])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "D0" in printed and "averaged" in printed and str(out) in printed
    rows = list(csv.DictReader(out.open()))
    assert [r["dnn"] for r in rows] == ["D0", "D1", "D2"]
    assert float(rows[0]["averaged"]) > float(rows[2]["averaged"])


def test_score_default_output_in_results_root(accuracy_settings, tmp_path, monkeypatch):
    monkeypatch.setenv("BHSCORE_RESULTS", str(tmp_path / "res"))
    assert main(["score", "--settings", str(accuracy_settings.source), "--dnn", "D1", "--n-bootstrap", "0"]) == 0
    assert (tmp_path / "res" / "bhscores.csv").exists()
    assert main(["score", "--settings", str(accuracy_settings.source), "--dnn", "D1", "--n-bootstrap", "0",
                 "--p-method", "corrected"]) == 0  # fmt: skip
    assert (tmp_path / "res" / "bhscores_corrected.csv").exists()


def test_score_missing_tree_is_a_clear_error(tmp_path, capsys):
    from .conftest import small_settings_dict

    p = tmp_path / "settings.json"
    p.write_text(json.dumps(small_settings_dict(tmp_path / "nodata", n_dnns=1)))
    assert main(["score", "--settings", str(p)]) == 2
    err = capsys.readouterr().err
    assert "not found" in err and "accuracy.mat" in err and "make download-accuracy" in err
    assert "Traceback" not in err


def test_unknown_dnn_lists_choices(accuracy_settings, capsys):
    assert main(["score", "--settings", str(accuracy_settings.source), "--dnn", "D9"]) == 2
    assert "Valid choices: D0, D1, D2" in capsys.readouterr().err


def test_settings_command_reports_errors(tmp_path, capsys):
    p = tmp_path / "s.json"
    p.write_text(json.dumps({"subjects": ["s"], "rois": ["V1", "V9"], "dnns": {}}))
    assert main(["settings", "--settings", str(p)]) == 2
    err = capsys.readouterr().err
    assert "rois" in err and "V9" in err and "dnns" in err


def test_simulate_command(tmp_path, capsys):
    assert main(["simulate"]) == 2
    assert "give the data root" in capsys.readouterr().err


@pytest.mark.parametrize("cmd", ["score", "settings", "simulate"])
def test_help(cmd, capsys):
    with pytest.raises(SystemExit) as e:
        main([cmd, "--help"])
    assert e.value.code == 0
    assert "--settings" in capsys.readouterr().out
