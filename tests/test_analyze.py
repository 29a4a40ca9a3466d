"""`dvar analyze`: per-position diagnostics and the decoding order, on tiny trained runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from dvar.cli import main
from dvar.data import read_examples
from dvar.decoders import RevealTrace, get_decoder
from dvar.evaluate import load_run
from dvar.objectives import make_batch
from dvar.tokenizer import CharTokenizer

PNG = b"\x89PNG\r\n\x1a\n"
TOK = CharTokenizer()


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """4x4 Sudoku data, a micro MDM run (5 steps) and a micro AR run (20 steps, so that
    its predictions differ from position to position)."""
    root = tmp_path_factory.mktemp("analyze")
    data = root / "s4.jsonl"
    assert main(["generate", "sudoku", "--size", "4", "--givens", "8:12", "--workers", "1",
                 "--n", "300", "--seed", "0", "--out", str(data)]) == 0
    out = {"data": data}
    for objective, steps in (("mdm", 5), ("ar", 20)):
        out[objective] = root / objective
        assert main(["train", "task=sudoku", f"objective={objective}", "model=micro", f"data.train={data}",
                     f"out_dir={out[objective]}", "data.valid_size=16", f"train.max_steps={steps}",
                     "train.batch_size=32", "train.lr=3e-3", "train.eval_size=0"]) == 0
    return out


def valid_png(path: Path) -> bool:
    data = path.read_bytes()
    return len(data) > 1000 and data.startswith(PNG)


def test_mdm_analysis_shapes_mask_rates_and_decode_order(tmp_path, runs, capsys):
    out = tmp_path / "mdm"
    assert main(["analyze", str(runs["mdm"]), "--data", str(runs["data"]), "--out", str(out),
                 "--limit", "40", "--steps", "6", "--batch-size", "16"]) == 0
    assert "decode order (topk, 18 calls)" in capsys.readouterr().out  # 3 batches x 6 steps
    analysis = json.loads((out / "analysis.json").read_text())
    width = 16 + 1  # 16 cells and EOS
    assert analysis["n"] == 40 and analysis["answer_positions"] == width
    assert "teacher_forcing" not in analysis
    assert list(analysis["mask_rates"]) == ["0.25", "0.5", "0.75", "1"]
    for rate, entry in analysis["mask_rates"].items():
        assert len(entry["loss"]) == len(entry["accuracy"]) == len(entry["count"]) == width
        assert all(0 <= c <= 40 for c in entry["count"])
    assert analysis["mask_rates"]["1"]["count"] == [40] * width  # rate 1 masks everything
    quarter = sum(analysis["mask_rates"]["0.25"]["count"]) / (40 * width)
    assert 0.1 < quarter < 0.4
    order = analysis["decode_order"]
    assert order["decoder"] == "topk" and order["settings"]["steps"] == 6 and order["nfe"] == 18
    assert len(order["mean_reveal_step"]) == width and order["count"] == [40] * width
    assert all(1 <= s <= 6 for s in order["mean_reveal_step"])
    assert len(order["grid"]) == 4 and all(len(row) == 4 for row in order["grid"])
    assert order["grid"][1] == order["mean_reveal_step"][4:8]
    assert len(order["grid_blank_cells"]) == 4 and all(len(row) == 4 for row in order["grid_blank_cells"])
    assert 1 <= order["given_mean_reveal_step"] <= 6 and 1 <= order["blank_mean_reveal_step"] <= 6
    assert {p.name for p in out.glob("*.png")} == {"per_position.png", "decode_order.png"}
    assert all(valid_png(p) for p in out.glob("*.png"))


def test_ar_teacher_forced_loss_matches_the_objective(tmp_path, runs):
    out = tmp_path / "ar"
    assert main(["analyze", str(runs["ar"]), "--data", str(runs["data"]), "--out", str(out),
                 "--limit", "50"]) == 0
    analysis = json.loads((out / "analysis.json").read_text())
    entry = analysis["teacher_forcing"]
    assert "mask_rates" not in analysis and "decode_order" not in analysis
    assert len(entry["loss"]) == 17 and entry["count"] == [50] * 17
    # Averaged over every answer token, as the AR objective averages, the per-position
    # numbers give the objective's own loss and accuracy on the same 50 examples.
    run = load_run(runs["ar"])
    examples = read_examples(runs["data"], run.task)[:50]
    batch = make_batch([run.tokenizer.encode_example(ex.input, ex.output, run.cutoff) for ex in examples],
                       run.tokenizer)
    with torch.no_grad():
        loss, stats = run.objective.loss(run.model, batch)
    counts = entry["count"]
    mean_loss = sum(l * c for l, c in zip(entry["loss"], counts)) / sum(counts)
    mean_acc = sum(a * c for a, c in zip(entry["accuracy"], counts)) / sum(counts)
    assert mean_loss == pytest.approx(float(loss), abs=1e-4)
    assert mean_acc == pytest.approx(float(stats["acc"]), abs=1e-4)
    assert max(entry["loss"]) - min(entry["loss"]) > 0.05  # the positions do differ
    assert {p.name for p in out.glob("*.png")} == {"per_position.png"} and valid_png(out / "per_position.png")


def test_path_parts_split_by_planning_distance(tmp_path, runs):
    data = tmp_path / "path.jsonl"
    assert main(["generate", "path", "--n", "200", "--seed", "0", "--out", str(data)]) == 0
    run = tmp_path / "path-mdm"
    assert main(["train", "task=path", "objective=mdm", "model=micro", f"data.train={data}", f"out_dir={run}",
                 "data.valid_size=16", "train.max_steps=2", "train.batch_size=16", "train.eval_size=0"]) == 0
    out = tmp_path / "analysis"
    assert main(["analyze", str(run), "--data", str(data), "--out", str(out), "--limit", "30",
                 "--mask-rates", "0.5,1", "--steps", "4"]) == 0
    analysis = json.loads((out / "analysis.json").read_text())
    examples = read_examples(data, load_run(run).task)[:30]
    assert analysis["answer_positions"] == max(len(ex.output) for ex in examples) + 1
    parts = analysis["mask_rates"]["1"]["parts"]
    assert set(parts) == set(analysis["groups"]) and all(k.startswith("pd=") for k in parts)
    for key, entry in parts.items():
        # The gold path has 5 edges (6 nodes): one loss per edge, over every example of the key.
        assert len(entry["loss"]) == len(entry["accuracy"]) == 5 and entry["count"] == [entry["n"]] * 5
    assert sum(e["n"] for e in parts.values()) == 30
    assert set(analysis["decode_order"]["parts"]) == set(parts)
    assert {p.name for p in out.glob("*.png")} == {"per_position.png", "per_part_loss.png", "decode_order.png",
                                                    "decode_order_parts.png"}
    assert main(["analyze", str(run), "--data", str(data), "--out", str(out), "--mask-rates", "0"]) == 2


def confident_last(x_BxL: torch.Tensor) -> torch.Tensor:
    """Logits that always predict `5` and are more confident the later the position."""
    logits_BxLxV = torch.zeros(*x_BxL.shape, TOK.vocab_size)
    logits_BxLxV[:, :, TOK.encode("5")[0]] = torch.arange(x_BxL.size(1), dtype=torch.float)
    return logits_BxLxV


@pytest.mark.parametrize("name,settings", [("topk", {"noise": 0.0}), ("threshold", {"tau": 2.0})])
def test_reveal_trace_records_the_easy_first_order(name, settings):
    prompts = [TOK.encode_prompt("1,2"), TOK.encode_prompt("3,4")]  # 4 ids each
    seq_len, m = 10, 6
    if name == "topk":
        settings = {**settings, "steps": m}  # k = t: one position revealed per step
    trace = RevealTrace(confident_last)
    result = get_decoder(name, **settings)(trace, prompts, seq_len=seq_len)
    assert result.nfe == m == len(trace.masked)
    # The most confident (last) position is revealed first, the first one last.
    expected = [0] * 4 + [m - j for j in range(m)]
    assert trace.reveal_steps().tolist() == [expected, expected]


def test_reveal_trace_refuses_a_decoder_that_drops_rows():
    prompts = [TOK.encode_prompt("1,2"), TOK.encode_prompt("3")]  # different numbers of masks
    trace = RevealTrace(confident_last)
    with pytest.raises(ValueError, match="one prompt at a time"):
        get_decoder("threshold", tau=2.0)(trace, prompts, seq_len=10)
    random = RevealTrace(confident_last)
    get_decoder("random", steps=5)(random, prompts, seq_len=10, generator=torch.Generator().manual_seed(0))
    steps_BxL = random.reveal_steps()
    assert steps_BxL[0, :4].tolist() == [0] * 4 and steps_BxL[1, :2].tolist() == [0, 0]
    assert ((steps_BxL[0, 4:] >= 1) & (steps_BxL[0, 4:] <= 5)).all()
