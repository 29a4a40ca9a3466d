"""The command line, through `dvar.cli.main` (and once through a real subprocess)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from dvar.cli import main
from dvar.tasks import get_task

TESTSETS = Path(__file__).resolve().parents[2] / "shared" / "testsets"


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_python_dash_m_and_help():
    out = subprocess.run(
        [sys.executable, "-m", "dvar", "generate", "--help"], capture_output=True, text=True, check=True
    ).stdout
    assert "paper" in out and "example" in out


def test_generate_is_deterministic_and_check_verifies_gold(tmp_path, capsys):
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    for out in (a, b):
        code, text, _ = run(capsys, "generate", "path", "--n", "40", "--seed", "4", "--out", str(out))
        assert code == 0 and "wrote 40 path problems" in text and "pd=" in text
    assert a.read_bytes() == b.read_bytes()
    code, text, _ = run(capsys, "check", "path", "--data", str(a), "--json")
    summary = json.loads(text)
    assert code == 0 and summary["n"] == 40 and summary["accuracy"] == 1.0
    assert sum(g["n"] for g in summary["by"].values()) == 40


def test_check_scores_predictions_and_treats_garbage_as_wrong(tmp_path, capsys):
    data = tmp_path / "d.jsonl"
    run(capsys, "generate", "sat", "--n", "10", "--seed", "1", "--out", str(data), "--vars", "5")
    rows = lines(data)
    preds = tmp_path / "p.jsonl"
    # The reference's layout: label + predict. Half right, half garbage.
    body = [{"label": r["output"], "predict": r["output"] if i % 2 == 0 else "__import__('os')"}
            for i, r in enumerate(rows)]
    preds.write_text("".join(json.dumps(x) + "\n" for x in body))
    code, text, _ = run(capsys, "check", "sat", "--data", str(data), "--predictions", str(preds), "--json")
    summary = json.loads(text)
    assert code == 0 and summary["correct"] == 5 and summary["accuracy"] == 0.5
    assert summary["by"] == {"vars=5": {"n": 10, "correct": 5, "accuracy": 0.5}}


def test_countdown_reports_reference_accuracy(tmp_path, capsys):
    data = tmp_path / "d.jsonl"
    run(capsys, "generate", "countdown", "--n", "5", "--numbers", "3", "--out", str(data))
    code, text, _ = run(capsys, "check", "countdown", "--data", str(data), "--json")
    summary = json.loads(text)
    assert summary["accuracy"] == 1.0 and summary["accuracy_reference"] == 1.0


@pytest.mark.parametrize(
    "content, where",
    [('{"input": "1,2/2,3-1,3", "output": "1,2/2,3"}\n{"input": \n', ":2:"),
     ('{"input": "1,2/2,3-1,3", "output": "1,2/2,3"}\n{"input": "x,y-1"}\n', ":2:"),
     ('["not", "an", "object"]\n', ":1:")],
)
def test_malformed_data_line_names_file_and_line(tmp_path, capsys, content, where):
    data = tmp_path / "bad.jsonl"
    data.write_text(content)
    code, _, err = run(capsys, "check", "path", "--data", str(data))
    assert code == 2 and f"bad.jsonl{where}" in err


def test_malformed_prediction_line_is_an_error(tmp_path, capsys):
    data = tmp_path / "d.jsonl"
    run(capsys, "generate", "path", "--n", "3", "--out", str(data))
    preds = tmp_path / "p.jsonl"
    preds.write_text('{"predict": "1,2"}\n{"predict": 7}\n{"predict": ""}\n')
    code, _, err = run(capsys, "check", "path", "--data", str(data), "--predictions", str(preds))
    assert code == 2 and "p.jsonl:2" in err
    preds.write_text('{"predict": "1,2"}\n')
    code, _, err = run(capsys, "check", "path", "--data", str(data), "--predictions", str(preds))
    assert code == 2 and "1 predictions for 3 problems" in err


def test_check_fails_on_wrong_gold(tmp_path, capsys):
    data = tmp_path / "d.jsonl"
    run(capsys, "generate", "path", "--n", "3", "--out", str(data))
    rows = lines(data)
    rows[1]["output"] = rows[1]["output"].rsplit("/", 1)[0]  # drop the last edge
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    code, _, err = run(capsys, "check", "path", "--data", str(data))
    assert code == 1 and "lines: [2]" in err


def test_unknown_task_lists_known_tasks(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["check", "chess", "--data", "x.jsonl"])
    assert exit_info.value.code == 2
    assert "countdown" in capsys.readouterr().err


def test_sudoku_kaggle_csv_and_solve(tmp_path, capsys):
    source = TESTSETS / "sudoku_kaggle1m_tky135_test.csv"
    if not source.exists():
        pytest.skip("shared test sets not present")
    csv = tmp_path / "kaggle.csv"
    csv.write_text("\n".join(source.read_text().splitlines()[:6]) + "\n")
    code, text, _ = run(capsys, "check", "sudoku", "--data", str(csv), "--json")
    assert code == 0 and json.loads(text)["correct"] == 5
    out = tmp_path / "solved.jsonl"
    code, text, _ = run(capsys, "solve", "sudoku", "--data", str(csv), "--out", str(out))
    assert code == 0 and "solved 5/5" in text and "ms per problem" in text
    code, text, _ = run(capsys, "check", "sudoku", "--data", str(csv), "--predictions", str(out), "--json")
    assert json.loads(text)["accuracy"] == 1.0


def test_generate_exclude_decontaminates(tmp_path, capsys):
    test = tmp_path / "test.jsonl"
    train = tmp_path / "train.jsonl"
    run(capsys, "generate", "countdown", "--n", "200", "--numbers", "3", "--seed", "0", "--out", str(test))
    run(capsys, "generate", "countdown", "--n", "200", "--numbers", "3", "--seed", "0",
        "--out", str(train), "--exclude", str(test))
    task = get_task("countdown")
    keys = {task.canonical(task.parse_input(r["input"])) for r in lines(test)}
    assert not keys & {task.canonical(task.parse_input(r["input"])) for r in lines(train)}


def test_generate_paper_small_scale(tmp_path, capsys):
    out = tmp_path / "paper"
    code, text, _ = run(capsys, "generate", "paper", "--out", str(out), "--scale", "0.002",
                        "--only", "path", "--only", "cd3", "--only", "sat5", "--workers", "1")
    assert code == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert set(manifest["datasets"]) == {"path", "cd3", "sat5"}
    assert manifest["datasets"]["path"]["files"]["train"]["n"] == 100
    assert (out / "cd3" / "test_ood.jsonl").exists()
    for name, task_name in (("path", "path"), ("cd3", "countdown"), ("sat5", "sat")):
        task = get_task(task_name)
        key = lambda r: task.canonical(task.parse_input(r["input"]))
        tests = {key(r) for stem in ("test", "test_ood") if (out / name / f"{stem}.jsonl").exists()
                 for r in lines(out / name / f"{stem}.jsonl")}
        assert not tests & {key(r) for r in lines(out / name / "train.jsonl")}


@pytest.mark.parametrize("argv, message", [
    (["generate", "sudoku", "--size", "5", "--n", "2", "--out", "{tmp}/x.jsonl"],
     "sudoku: --size must be 4 or 9, got 5"),
    (["generate", "paper", "--only", "nope", "--out", "{tmp}/paper"], "unknown data set(s) ['nope']"),
    (["train", "task=nope", "out_dir={tmp}/run", "data.train={tmp}/x.jsonl"], "unknown task 'nope'"),
    (["train", "task=sudoku", "out_dir={tmp}/run", "nope.key=1"], "unknown key 'nope.key'"),
    (["eval", "{tmp}", "--data", "x.jsonl", "--decoder-arg", "steps"], "expected KEY=VALUE"),
    (["check", "path", "--data", "{tmp}/missing.jsonl"], "missing.jsonl"),
])
def test_a_configuration_or_data_mistake_is_one_line(tmp_path, capsys, argv, message):
    code, _, err = run(capsys, *[arg.format(tmp=tmp_path) for arg in argv])
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert err.startswith(f"dvar {argv[0]}") and ": error: " in err and message in err


@pytest.mark.parametrize("error", [ValueError("deep inside a library"), KeyError("layer.7"),
                                   RuntimeError("size mismatch")])
def test_an_internal_error_is_a_traceback_not_a_user_error(tmp_path, monkeypatch, error):
    """Only dvar's own errors (DvarError) are one line: a ValueError or KeyError from deep
    inside (a library, a bug) propagates with its traceback."""
    def broken(*args, **kwargs):
        raise error

    monkeypatch.setattr("dvar.commands.generate.generate", broken)
    with pytest.raises(type(error)):
        main(["generate", "path", "--n", "2", "--out", str(tmp_path / "x.jsonl"), "--workers", "1"])


def test_dvars_errors_are_dvar_errors_with_their_old_bases():
    from dvar.config import ConfigError
    from dvar.data import DataError
    from dvar.errors import DvarError, TextError, UnknownName
    from dvar.optional import MissingDependency
    from dvar.tokenizer import SequenceTooLong

    for cls, base in ((ConfigError, ValueError), (DataError, ValueError), (SequenceTooLong, ValueError),
                      (MissingDependency, ImportError), (UnknownName, KeyError),
                      (TextError, ValueError)):
        assert issubclass(cls, DvarError) and issubclass(cls, base), cls
    with pytest.raises(UnknownName, match="known tasks: countdown"):
        get_task("chess")
    assert str(UnknownName("unknown task 'x'")) == "unknown task 'x'"  # not KeyError's quotes


def test_check_reports_partial_credit_for_predictions(tmp_path, capsys):
    data = tmp_path / "d.jsonl"
    run(capsys, "generate", "path", "--n", "4", "--seed", "2", "--out", str(data))
    rows = lines(data)
    preds = tmp_path / "p.jsonl"
    # Right, right, a step off the graph in the first of its edges, garbage.
    first = rows[2]["output"].split("/")
    broken = "/".join([first[0].split(",")[0] + ",999"] + first[1:])
    answers = [rows[0]["output"], rows[1]["output"], broken, "no path"]
    preds.write_text("".join(json.dumps({"predict": a}) + "\n" for a in answers))
    code, text, _ = run(capsys, "check", "path", "--data", str(data), "--predictions", str(preds), "--json")
    summary = json.loads(text)
    steps = len(first)
    expected = (1 + 1 + (steps - 1) / steps) / 4  # the garbage scores 0
    assert code == 0 and summary["partial_credit_label"] == "steps on graph edges"
    assert summary["partial_credit"] == pytest.approx(expected)
    code, text, _ = run(capsys, "check", "path", "--data", str(data), "--predictions", str(preds))
    assert "steps on graph edges:" in text
