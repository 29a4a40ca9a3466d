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
    # About 30 s on 2 CPU cores. The model must first learn to copy each given from the
    # input (a positional lookup). With learned absolute positions alone that takes a few
    # hundred steps and when depends on the seed and even the machine (the same seed passed
    # on one 2-core machine and stayed at 2.5% on another); rotary positions on top make
    # the lookup form within ~100 steps.
    assert main(["train", "task=sudoku", "objective=mdm", "model=mini", "seed=0",
                 f"data.train={train}", f"out_dir={run}", "data.valid_size=64",
                 "train.max_steps=600", "train.batch_size=32", "train.lr=3e-3",
                 "train.log_every=100", "train.eval_size=32", "arch.positions=learned+rope"]) == 0
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
    # Blank cells right, recounted from the predictions against the gold grids: overall and
    # per group; a solved puzzle has all of them.
    def blanks_right(rs):
        shares = [sum(r["predict"][i:i + 1] == r["output"][i] for i, ch in enumerate(r["input"]) if ch == "0")
                  / r["input"].count("0") for r in rs]
        return sum(shares) / len(shares)
    assert metrics["partial_credit_label"] == "blank cells right"
    assert metrics["partial_credit"] == pytest.approx(blanks_right(rows))
    assert metrics["accuracy"] <= metrics["partial_credit"] <= 1
    for key, stats in metrics["by"].items():
        assert stats["partial_credit"] == pytest.approx(blanks_right([r for r in rows if r["group"] == key]))


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


def test_eval_draws_k_samples_and_aggregates_them(tmp_path, sudoku4, capsys):
    from dvar.evaluate import load_run
    from dvar.data import read_examples

    train, test = sudoku4
    run = tmp_path / "ar"
    assert main(["train", "task=sudoku", "objective=ar", "model=micro", f"data.train={train}",
                 f"out_dir={run}", "data.valid_size=16", "train.max_steps=5",
                 "train.batch_size=16", "train.eval_size=0"]) == 0
    head = tmp_path / "head.jsonl"
    head.write_text("".join(test.read_text().splitlines(keepends=True)[:40]))
    out = tmp_path / "eval"
    assert main(["eval", str(run), "--data", str(head), "--decoder", "sample", "--samples", "3",
                 "--decoder-arg", "temperature=1.5", "--decoder-arg", "top_p=0.9",
                 "--batch-size", "16", "--out", str(out)]) == 0
    assert "K=3 samples" in capsys.readouterr().out
    metrics = json.loads((out / "metrics.json").read_text())
    rows = read_jsonl(out / "predictions.jsonl")
    assert metrics["samples"] == 3 and metrics["decoder"] == "sample" and metrics["steps"] is None
    assert metrics["decoder_settings"] == {"known_length": False, "temperature": 1.5, "top_p": 0.9}
    assert set(rows[0]) == {"input", "output", "predict", "correct", "group", "samples",
                            "samples_correct"}
    # Re-judge every sample: the metrics follow from the verdicts exactly.
    task = load_run(run).task
    problems = [ex.problem for ex in read_examples(head, task)]
    for row, problem in zip(rows, problems):
        assert len(row["samples"]) == 3
        assert row["samples_correct"] == [task.judge(problem, a)["correct"] for a in row["samples"]]
        first_correct = next((a for a, c in zip(row["samples"], row["samples_correct"]) if c), None)
        assert row["predict"] == (first_correct if first_correct is not None else row["samples"][0])
        assert row["correct"] == any(row["samples_correct"])
    n = len(rows)
    assert metrics["pass_at_k"] == metrics["best_of_k"] == metrics["accuracy"] == sum(
        r["correct"] for r in rows) / n
    assert metrics["pass_at_1"] == pytest.approx(sum(sum(r["samples_correct"]) for r in rows) / (3 * n))
    # 40 problems of one prompt length in batches of 16 (16, 16, 8), 3 rounds: each
    # problem carries its own batch's calls, and only its batch's.
    assert metrics["row_nfe_per_example"] == metrics["nfe_per_example"]
    assert 3 <= metrics["nfe_per_example"] <= 3 * 17 and metrics["examples_per_s"] > 0
    assert len(set(map(tuple, (r["samples"] for r in rows)))) > 1
    # Unknown settings are errors naming the known ones.
    assert main(["eval", str(run), "--data", str(head), "--decoder", "sample",
                 "--decoder-arg", "tau=0.5"]) == 2
    assert "known: ['known_length', 'temperature', 'top_p']" in capsys.readouterr().err


def test_threshold_eval_counts_calls_per_problem(tmp_path, sudoku4):
    train, test = sudoku4
    run = tmp_path / "mdm"
    assert main(["train", "task=sudoku", "objective=mdm", "model=micro", f"data.train={train}",
                 f"out_dir={run}", "data.valid_size=16", "train.max_steps=1",
                 "train.batch_size=8", "train.eval_size=0"]) == 0
    head = tmp_path / "head.jsonl"
    head.write_text("".join(test.read_text().splitlines(keepends=True)[:20]))
    out = tmp_path / "eval"
    assert main(["eval", str(run), "--data", str(head), "--decoder", "threshold",
                 "--decoder-arg", "tau=2", "--batch-size", "8", "--out", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    from dvar.evaluate import load_run

    cutoff = load_run(run).cutoff
    m = cutoff - (16 + 1)  # a 4x4 input is 16 digits + SEP; one position per call
    assert metrics["steps"] is None and metrics["decoder_settings"] == {"known_length": False, "tau": 2, "max_steps": 0}
    assert metrics["nfe"] == 3 * m and metrics["nfe_per_example"] == metrics["row_nfe_per_example"] == m
    assert metrics["pass_at_k"] == metrics["accuracy"] and metrics["samples"] == 1


@pytest.mark.parametrize("objective, decoder", [("mdm", "topk"), ("ar", "greedy")])
def test_known_length_eval_writes_every_grid_in_full(tmp_path, sudoku4, objective, decoder):
    """A barely trained model ends answers anywhere; with known_length every answer has the
    grid's 16 cells (the task's answer_length), and the setting is recorded."""
    train, test = sudoku4
    run = tmp_path / objective
    assert main(["train", "task=sudoku", f"objective={objective}", "model=micro", f"data.train={train}",
                 f"out_dir={run}", "data.valid_size=16", "train.max_steps=3", "train.batch_size=16",
                 "train.eval_size=8"]) == 0
    out = tmp_path / "eval"
    assert main(["eval", str(run), "--data", str(test), "--decoder", decoder,
                 "--decoder-arg", "known_length=true", "--out", str(out)]) == 0
    rows = read_jsonl(out / "predictions.jsonl")
    assert len(rows) == 200 and all(len(row["predict"]) == 16 for row in rows)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["decoder_settings"]["known_length"] is True


def test_known_length_is_refused_where_the_task_does_not_fix_the_answer(tmp_path, capsys):
    data = tmp_path / "path.jsonl"
    assert main(["generate", "path", "--n", "200", "--seed", "0", "--workers", "1", "--out", str(data)]) == 0
    run = tmp_path / "run"
    assert main(["train", "task=path", "objective=mdm", "model=micro", f"data.train={data}",
                 f"out_dir={run}", "data.valid_size=16", "train.max_steps=1", "train.batch_size=8",
                 "train.eval_size=4"]) == 0
    assert main(["eval", str(run), "--data", str(data), "--decoder-arg", "known_length=true"]) == 2
    assert "does not fix the length" in capsys.readouterr().err


@pytest.mark.parametrize("objective", ["mdm", "ar"])
def test_fit_losses_measure_seen_and_unseen_problems_alike(tmp_path, sudoku4, objective):
    """The overfitting signal: one measurement on training and held-out problems. With one
    draw on the validation split it is the trainer's own validation loss; held-out problems
    that are training problems, or longer than the cutoff, are left out."""
    from dvar.config import ConfigError
    from dvar.data import Example, read_examples
    from dvar.evaluate import fit_losses, load_run
    from dvar.trainer import resolve

    train, test = sudoku4
    run_dir = tmp_path / objective
    extra = ["ar.input_mask=0.5", "arch.dropout=0.1"] if objective == "ar" else []
    assert main(["train", "task=sudoku", f"objective={objective}", "model=micro", f"data.train={train}",
                 f"out_dir={run_dir}", "data.valid_size=16", "train.max_steps=6", "train.batch_size=16",
                 "train.eval_size=0", *extra]) == 0
    run = load_run(run_dir)
    logged = [json.loads(line) for line in (run_dir / "eval_log.jsonl").read_text().splitlines()][-1]
    own = fit_losses(run, draws=1)
    assert own["heldout_loss"] == pytest.approx(logged["val_loss"], rel=1e-6)
    assert own["examples"] == 16 and own["heldout"] == "the validation split"
    # eval mode: dropout and input masking off, so a second call measures the same
    assert fit_losses(run, draws=1) == own

    task = run.task
    held = read_examples(test, task, need_output=True)[:40]
    seen = resolve(run.config).train.examples[100:110]  # training problems: dropped
    too_long = Example(0, held[0].input, held[0].output + "1" * 40, held[0].problem, {})
    mixed = fit_losses(run, held + seen + [too_long], str(test), count=512, draws=2)
    assert mixed["examples"] == 40 and mixed["draws"] == 2
    assert mixed["heldout_minus_train"] == pytest.approx(mixed["heldout_loss"] - mixed["train_loss"])
    assert fit_losses(run, held[:40], str(test), count=512, draws=2) == mixed
    with pytest.raises(ConfigError, match="no held-out problems"):
        fit_losses(run, seen, str(train))
