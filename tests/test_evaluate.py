"""`dvar eval` end to end: a seeded MDM learns 4x4 Sudoku on CPU and is scored by the verifier."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dvar.cli import main


@pytest.fixture(scope="module")
def sudoku4(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("sudoku4")
    train, test = root / "train.jsonl", root / "test.jsonl"
    common = ["generate", "sudoku", "--size", "4", "--givens", "8:12", "--workers", "1"]
    assert main([*common, "--n", "3000", "--seed", "0", "--out", str(train)]) == 0
    assert main([*common, "--n", "200", "--seed", "1", "--unique", "--exclude", str(train),
                 "--out", str(test)]) == 0
    return train, test


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_micro_mdm_learns_4x4_sudoku_and_eval_scores_it(tmp_path, sudoku4, capsys):
    train, test = sudoku4
    run = tmp_path / "mdm"
    # About 50 s on 2 CPU cores. The model must first learn to copy each given from the
    # input (a positional lookup); with learned absolute positions that takes a few hundred
    # steps, and when depends on the seed: seed 0 gets there by step ~400.
    assert main(["train", "task=sudoku", "objective=mdm", "model=mini", "seed=0",
                 f"data.train={train}", f"out_dir={run}", "data.valid_size=64",
                 "train.max_steps=600", "train.batch_size=32", "train.lr=3e-3",
                 "train.log_every=100", "train.eval_size=32"]) == 0
    out = tmp_path / "eval"
    assert main(["eval", str(run), "--data", str(test), "--steps", "10", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "givens=" in printed and "all" in printed
    metrics = json.loads((out / "metrics.json").read_text())
    rows = read_jsonl(out / "predictions.jsonl")
    assert len(rows) == metrics["n"] == 200
    assert set(rows[0]) == {"input", "output", "predict", "correct", "group"}
    assert metrics["correct"] == sum(r["correct"] for r in rows)
    # Chance of a whole random 4x4 grid being right is below 1e-3; the verifier decides.
    assert metrics["accuracy"] >= 0.5, metrics
    # 10 steps per batch of at most 64 problems: 4 batches.
    assert metrics["decoder"] == "topk" and metrics["steps"] == 10 and metrics["nfe"] == 40
    assert sum(g["n"] for g in metrics["by"].values()) == 200


def test_ar_run_decodes_greedily_through_eval(tmp_path, sudoku4):
    train, test = sudoku4
    run = tmp_path / "ar"
    assert main(["train", "task=sudoku", "objective=ar", "model=micro", f"data.train={train}",
                 f"out_dir={run}", "data.valid_size=16", "train.max_steps=5",
                 "train.batch_size=16", "train.eval_size=8"]) == 0
    out = tmp_path / "eval"
    assert main(["eval", str(run), "--data", str(test), "--batch-size", "50", "--out", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["decoder"] == "greedy" and metrics["steps"] is None
    # One prompt length (16 + SEP): per batch 1 prefill + at most 16 more calls.
    assert 4 <= metrics["nfe"] <= 4 * 17
    assert main(["eval", str(run), "--data", str(test), "--decoder", "nope"]) == 2


def test_eval_refuses_a_decoder_of_the_other_family(tmp_path, sudoku4, capsys):
    train, test = sudoku4
    run = tmp_path / "ar"
    main(["train", "task=sudoku", "objective=ar", "model=micro", f"data.train={train}",
          f"out_dir={run}", "data.valid_size=16", "train.max_steps=1", "train.batch_size=8",
          "train.eval_size=4"])
    assert main(["eval", str(run), "--data", str(test), "--decoder", "topk"]) == 2
    assert "decodes mdm models" in capsys.readouterr().err
