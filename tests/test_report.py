"""`dvar report`: hand-made metrics files -> exact table rows, published numbers, plots."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from dvar.cli import main

PNG = b"\x89PNG\r\n\x1a\n"
DATA = "data/path/test.jsonl"


def write_json(path: Path, obj: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))


def group(n: int, correct: int) -> dict:
    return {"n": n, "correct": correct, "accuracy": correct / n}


@pytest.fixture
def two_evaluations(tmp_path) -> tuple[Path, Path]:
    """An MDM run directory with one evaluation and a loss log; a lone AR eval directory."""
    run = tmp_path / "runs" / "p-mdm"
    run.mkdir(parents=True)
    (run / "config.yaml").write_text("task: path\nobjective: mdm\nmodel: mini\n")
    (run / "train_log.jsonl").write_text("".join(
        json.dumps({"step": s, "loss": 2.0 / s}) + "\n" for s in (10, 20, 30)))
    write_json(run / "eval" / "test-topk-20" / "metrics.json", {
        "task": "path", "data": DATA, "objective": "mdm", "model": "mini", "decoder": "topk",
        "decoder_settings": {"steps": 20, "schedule": "linear", "noise": 0.0, "repredict": False,
                             "remask": True},
        "steps": 20, "n": 10, "correct": 9, "accuracy": 0.9,
        "by": {"pd=1": group(4, 4), "pd=2": group(3, 3), "pd=3": group(3, 2)},
        "nfe": 20, "nfe_per_example": 20.0, "row_nfe_per_example": 20.0, "examples_per_s": 50.0,
    })
    lone = tmp_path / "evals" / "p-ar"
    write_json(lone / "metrics.json", {
        "task": "path", "data": DATA, "objective": "ar", "model": "micro", "decoder": "greedy",
        "decoder_settings": {}, "steps": None, "n": 10, "correct": 5, "accuracy": 0.5,
        "by": {"pd=1": group(4, 4), "pd=2": group(3, 1), "pd=3": group(3, 0)},
        "nfe": 12, "nfe_per_example": 11.5, "row_nfe_per_example": None, "examples_per_s": 80.0,
    })
    return run, lone


def table_rows(text: str, first_cell: str) -> list[str]:
    """The markdown table that starts with the header row `| first_cell | ...`."""
    lines = text.splitlines()
    start = lines.index(next(line for line in lines if line.startswith(f"| {first_cell} |")))
    end = next((i for i in range(start, len(lines)) if not lines[i].startswith("|")), len(lines))
    return lines[start:end]


def test_report_tables_from_two_metric_files(tmp_path, two_evaluations, capsys):
    run, lone = two_evaluations
    out = tmp_path / "report"
    assert main(["report", str(run), str(lone), "--out", str(out)]) == 0
    assert "2 evaluation(s) from 1 run(s); 4 plot(s), 0 skipped" in capsys.readouterr().out
    text = (out / "results.md").read_text()
    assert table_rows(text, "task") == [
        "| task | test set | micro ar greedy | mini mdm topk T=20 |",
        "|---|---|---|---|",
        f"| path | {DATA} | 50.0% (n=10) | 90.0% (n=10) |",
    ]
    # PD >= 2 pooled: AR 1/6, MDM 5/6, beside the paper's figures for that subset.
    lines = text.splitlines()
    second = lines.index("## Beside the published numbers")
    beside = [line for line in lines[second:] if line.startswith("| path")]
    source = "Ye et al., ICLR 2025 (arXiv 2410.14157), via SPEC §6"
    assert beside == [
        f"| path | {DATA} | PD ≥ 2 | micro ar greedy | 16.7% (n=6) | AR, near chance | 50.0% | {source} |",
        f"| path | {DATA} | PD ≥ 2 | mini mdm topk T=20 | 83.3% (n=6) | MDM | 100.0% | {source} |",
    ]
    with (out / "results.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    ours = [r for r in rows if r["source"] == "ours"]
    assert [(r["model"], r["objective"], r["decoder"], r["steps"], r["accuracy"], r["n"], r["nfe_per_example"])
            for r in ours] == [("micro", "ar", "greedy", "", "0.5", "10", "11.5"),
                               ("mini", "mdm", "topk", "20", "0.9", "10", "20.0")]
    assert ours[1]["run"] == str(run) and ours[0]["run"] == ""
    published = [r for r in rows if r["source"].startswith("published")]
    assert {(r["task"], r["objective"], r["accuracy"]) for r in published} >= {
        ("countdown", "ar", "0.458"), ("countdown", "mdm", "0.915"), ("sudoku", "ar", "0.207")}
    # Every plot written, a valid PNG, and referenced from results.md.
    names = {"accuracy_by_group-path-data-path-test-jsonl.png", "accuracy_vs_nfe-path-data-path-test-jsonl.png",
             "accuracy_vs_size-path-data-path-test-jsonl.png", "loss_curves.png"}
    assert {p.name for p in out.glob("*.png")} == names
    for name in names:
        data = (out / name).read_bytes()
        assert len(data) > 1000 and data.startswith(PNG)
        assert f"]({name})" in text
    assert "Not drawn" not in text


def test_report_skips_plots_without_data_and_names_settings(tmp_path):
    lone = tmp_path / "eval"
    write_json(lone / "a" / "metrics.json", {
        "task": "sudoku", "data": "s.csv", "objective": "mdm", "model": "tiny", "decoder": "threshold",
        "decoder_settings": {"tau": 0.8, "max_steps": 0}, "steps": None, "n": 4, "correct": 1,
        "accuracy": 0.25, "by": {"givens=8": group(4, 1)}, "nfe_per_example": 9.0,
    })
    out = tmp_path / "report"
    assert main(["report", str(tmp_path / "eval"), "--out", str(out)]) == 0  # searched
    text = (out / "results.md").read_text()
    # Non-default settings name the column; a 4x4 puzzle matches no published subset.
    assert "| sudoku | s.csv | 25.0% (n=4) |" in text and "tiny mdm threshold tau=0.8 |" in text
    assert "No evaluated test set covers a subset with a published number" in text
    assert not list(out.glob("*.png")) and "No plot had data." in text
    for reason in ("accuracy by breakdown key for sudoku on s.csv: fewer than two keys",
                   "accuracy vs NFE for sudoku on s.csv: fewer than two evaluations with NFE",
                   "accuracy vs model size for sudoku on s.csv: one model size",
                   "training loss curves: no run directory with a train_log.jsonl"):
        assert f"- {reason}" in text


def test_report_refuses_a_path_without_evaluations(tmp_path, capsys):
    assert main(["report", str(tmp_path / "missing"), "--out", str(tmp_path / "r")]) == 2
    (tmp_path / "empty").mkdir()
    assert main(["report", str(tmp_path / "empty"), "--out", str(tmp_path / "r")]) == 2
    assert "no metrics.json" in capsys.readouterr().err


def ar_run(root: Path, name: str, accuracy: float, seed: int, lr: float = 0.001, nfe: float = 24.0,
           row_nfe: float | None = 24.0) -> Path:
    """A run directory (resolved config) with one AR evaluation on DATA."""
    run = root / name
    run.mkdir(parents=True)
    (run / "config.yaml").write_text(
        f"task: path\nobjective: ar\nmodel: micro\nout_dir: {run}\nseed: {seed}\n"
        f"data:\n  train: {run}/train.jsonl\ntrain:\n  lr: {lr}\n")
    correct = round(10 * accuracy)
    write_json(run / "eval" / "test-greedy" / "metrics.json", {
        "task": "path", "data": DATA, "objective": "ar", "model": "micro", "decoder": "greedy",
        "decoder_settings": {}, "steps": None, "n": 10, "correct": correct, "accuracy": accuracy,
        "by": {"pd=1": group(5, min(correct, 5)), "pd=2": group(5, max(correct - 5, 0))},
        "nfe": 30, "nfe_per_example": nfe, "row_nfe_per_example": row_nfe, "examples_per_s": 9.0,
    })
    return run


def test_runs_with_one_directory_name_are_told_apart_and_seeds_averaged(tmp_path):
    # Issue 18: runs/coloring-ar and runs/s1/coloring-ar once shared one column, and one
    # value was gone. They are seeds 0 and 1 of one setting: one cell, both listed.
    runs = tmp_path / "runs"
    ar_run(runs, "p-ar", 0.5, seed=0)
    ar_run(runs / "s1", "p-ar", 0.7, seed=1)
    ar_run(runs / "s2", "p-ar", 0.9, seed=2)
    out = tmp_path / "report"
    assert main(["report", str(runs), "--out", str(out)]) == 0
    text = (out / "results.md").read_text()
    assert table_rows(text, "task") == [
        "| task | test set | micro ar greedy |",
        "|---|---|---|",
        f"| path | {DATA} | 70.0% (50.0–90.0%, seeds 0, 1, 2; n=10 each) |",
    ]
    with (out / "results.csv").open() as handle:
        ours = [r for r in csv.DictReader(handle) if r["source"] == "ours"]
    assert [(r["seed"], r["accuracy"], r["column"]) for r in ours] == [
        ("0", "0.5", "micro ar greedy"), ("1", "0.7", "micro ar greedy"), ("2", "0.9", "micro ar greedy")]
    assert {r["run"] for r in ours} == {str(runs / "p-ar"), str(runs / "s1" / "p-ar"), str(runs / "s2" / "p-ar")}


def test_runs_that_differ_in_a_setting_or_repeat_a_seed_get_their_own_columns(tmp_path):
    runs = tmp_path / "runs"
    ar_run(runs, "p-ar", 0.5, seed=0)
    ar_run(runs / "lr", "p-ar", 0.8, seed=0, lr=0.0003)
    ar_run(runs / "copy", "p-ar", 0.6, seed=0, lr=0.0003)  # the same setting and seed again
    out = tmp_path / "report"
    assert main(["report", str(runs), "--out", str(out)]) == 0
    header, _, row = table_rows((out / "results.md").read_text(), "task")
    assert header == (f"| task | test set | micro ar greedy (train.lr=0.001) "
                      f"| micro ar greedy (train.lr=0.0003, {runs / 'copy' / 'p-ar'}) "
                      f"| micro ar greedy (train.lr=0.0003, {runs / 'lr' / 'p-ar'}) |")
    assert row == f"| path | {DATA} | 50.0% (n=10) | 60.0% (n=10) | 80.0% (n=10) |"


def test_nfe_per_example_is_the_batch_by_batch_cost_everywhere(tmp_path):
    # One evaluation once showed 10.536 in `dvar eval` and 8.436 in results.csv.
    run = ar_run(tmp_path / "runs", "p-ar", 0.5, seed=0, nfe=10.536, row_nfe=8.436)
    out = tmp_path / "report"
    assert main(["report", str(run), "--out", str(out)]) == 0
    with (out / "results.csv").open() as handle:
        ours = [r for r in csv.DictReader(handle) if r["source"] == "ours"]
    assert (ours[0]["nfe_per_example"], ours[0]["row_nfe_per_example"]) == ("10.536", "8.436")


def test_read_metrics_reads_a_file_or_its_directory_and_names_a_bad_file(tmp_path):
    from dvar.report import read_metrics

    run = ar_run(tmp_path / "runs", "p-ar", 0.5, seed=3)
    result = read_metrics(run / "eval" / "test-greedy")
    assert (result.seed, result.run, result.nfe_per_example, result.settings["train.lr"]) == (3, str(run), 24.0, 0.001)
    assert "seed" not in result.settings and "out_dir" not in result.settings
    assert read_metrics(run / "eval" / "test-greedy" / "metrics.json") == result
    bad = tmp_path / "bad" / "metrics.json"
    write_json(bad, {"accuracy": 0.5})
    with pytest.raises(ValueError, match=f"{bad}: not a metrics.json, no n, correct"):
        read_metrics(bad)
