"""The benchmarks compare like with like: the reference stack computes dvar's function,
the no-cache AR baseline decodes what the cached decoder does, and the scripts run."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from dvar.config import Config
from dvar.decoders import get_decoder
from dvar.evaluate import Run
from dvar.model import Transformer, model_config
from dvar.objectives import get_objective, make_batch
from dvar.tasks import get_task
from dvar.tokenizer import CharTokenizer

ROOT = Path(__file__).resolve().parents[1]


def load(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def sudoku4_batch(tokenizer: CharTokenizer, n: int, cutoff: int = 34):
    from dvar.generation import generate

    task = get_task("sudoku")
    options = task.make_options()
    import dataclasses

    options = dataclasses.replace(options, size=4, givens=(8, 12))
    rows = generate(task, n, seed=3, options=options)
    return rows, make_batch([tokenizer.encode_example(r["input"], r["output"], cutoff) for r in rows],
                            tokenizer)


def copy_into_gpt2(model: Transformer, hf) -> None:
    """dvar weights into a GPT2LMHeadModel (Conv1D stores the transposed matrix)."""
    t = hf.transformer
    with torch.no_grad():
        t.wte.weight.copy_(model.wte.weight)
        t.wpe.weight.copy_(model.wpe.weight)
        for ours, theirs in zip(model.blocks, t.h):
            for a, b in ((ours.ln_1, theirs.ln_1), (ours.ln_2, theirs.ln_2)):
                b.weight.copy_(a.weight)
                b.bias.copy_(a.bias)
            for a, b in ((ours.attn.c_attn, theirs.attn.c_attn), (ours.attn.c_proj, theirs.attn.c_proj),
                         (ours.mlp.c_fc, theirs.mlp.c_fc), (ours.mlp.c_proj, theirs.mlp.c_proj)):
                b.weight.copy_(a.weight.T)
                b.bias.copy_(a.bias)
        t.ln_f.weight.copy_(model.ln_f.weight)
        t.ln_f.bias.copy_(model.ln_f.bias)


@pytest.mark.parametrize("objective", ["mdm", "ar"])
def test_reference_stack_computes_dvars_loss(objective):
    """Same weights, same masks: the HF stack with the reference's loss gives dvar's loss
    (MDM with the reference's logit shift), so the benchmark times the same function."""
    pytest.importorskip("transformers")
    bench = load("train_throughput")
    tokenizer = CharTokenizer()
    _, batch = sudoku4_batch(tokenizer, 6)
    causal = objective == "ar"
    torch.manual_seed(0)
    ours = Transformer(model_config("micro", tokenizer.vocab_size, 34, causal=causal))
    theirs = bench.hf_model("micro", tokenizer.vocab_size, 34, causal, 0.0, torch.device("cpu"))
    copy_into_gpt2(ours, theirs)
    if objective == "mdm":
        dvar_objective = get_objective("mdm", shift=True)
        reference = bench.reference_mdm_loss
    else:
        dvar_objective = get_objective("ar")
        reference = bench.reference_ar_loss
    a, _ = dvar_objective.loss(ours, batch, torch.Generator().manual_seed(5))
    b = reference(theirs, batch, torch.Generator().manual_seed(5))
    assert torch.allclose(a, b, rtol=1e-4, atol=1e-6), (a, b)


def test_reference_mdm_model_is_bidirectional():
    pytest.importorskip("transformers")
    bench = load("train_throughput")
    model = bench.hf_model("micro", 31, 16, False, 0.0, torch.device("cpu"))
    x = torch.randint(5, 31, (1, 16))
    y = x.clone()
    y[0, -1] = 5 if x[0, -1] != 5 else 6
    with torch.no_grad():
        assert not torch.allclose(model(x).logits[0, 0], model(y).logits[0, 0])


def test_greedy_without_cache_decodes_what_the_cached_decoder_does():
    decode = load("decode")
    tokenizer = CharTokenizer()
    rows, _ = sudoku4_batch(tokenizer, 10)
    torch.manual_seed(3)
    model = Transformer(model_config("micro", tokenizer.vocab_size, 34, causal=True)).eval()
    with torch.no_grad():  # large random weights (seed picked so that rows end at EOS at
        for p in model.parameters():  # different steps: early stopping is exercised)
            p.normal_(0, 2.0)
    cfg = Config(task="sudoku", objective="ar")
    cfg.data.cutoff, cfg.data.max_new_tokens = 34, 17
    run = Run(cfg, get_task("sudoku"), tokenizer, model, get_objective("ar"))
    prompts = [tokenizer.encode_prompt(r["input"]) for r in rows]
    answers, nfe, per_example = decode.greedy_without_cache(run, prompts, batch_size=4)
    greedy = get_decoder("greedy")
    chunks = [greedy(model, prompts[i : i + 4], seq_len=34, max_new_tokens=17) for i in (0, 4, 8)]
    assert answers == [a for c in chunks for a in c.answers]
    assert len({len(a) for a in answers}) > 1
    assert nfe == sum(c.nfe for c in chunks)
    assert per_example == sum(sum(c.row_nfe) for c in chunks) / len(prompts)


def test_throughput_benchmark_prints_ratios_in_both_precisions(monkeypatch):
    """Small mode (DVAR_BENCH_SMALL=1 defaults): fp32 and bf16 for dvar and hf, ratios from
    the same rounds, each dtype's matmul ceiling, the levers and 9x9 sudoku decoding."""
    pytest.importorskip("transformers")
    monkeypatch.setenv("DVAR_BENCH_SMALL", "1")
    bench = load("train_throughput")
    results = bench.main(["--levers", "--decode"])
    (r,) = results["train"]
    assert (r["size"], r["length"], r["batch"]) == ("micro", 64, 2)
    for name in ("fp32", "bf16"):
        assert r[f"dvar {name} tokens_per_s"] > 0 and r[f"hf {name} tokens_per_s"] > 0
        assert r[f"matmul_flops_per_s {name}"] > 0 and 0 < r[f"dvar {name} of_matmul"]
        assert len(r[f"dvar/hf {name} rounds"]) == 2
    assert r["dvar bf16/fp32"] > 0 and len(r["dvar bf16/fp32 rounds"]) == 2
    (levers,) = results["levers"]
    assert levers["fp32 /fp32"] == 1.0 and levers["bf16, dvar attention /fp32"] > 0
    decode = {(d["decoder"], d["dtype"]): d for d in results["decode"]}
    assert set(decode) == {(a, b) for a in ("topk T=20", "threshold tau=0.9") for b in ("fp32", "bf16")}
    assert all(d["puzzles_per_s"] > 0 and d["n"] == 4 for d in decode.values())
    assert decode["topk T=20", "bf16"]["nfe_per_puzzle"] == 20


def test_bf16_weights_lever_trains_the_fp32_master_weights():
    """The lever's step updates the fp32 weights AdamW holds and refreshes the bf16 copy."""
    bench = load("train_throughput")
    tokenizer = CharTokenizer()
    _, batch = sudoku4_batch(tokenizer, 4)
    step = bench.Bf16WeightsStep("micro", "mdm", tokenizer.vocab_size, 34, torch.device("cpu"),
                                 torch.bfloat16, 0.0, False)
    before = [p.detach().clone() for p in step.model.parameters()]
    assert torch.isfinite(step(batch))
    for master, half, old in zip(step.model.parameters(), step.shadow.parameters(), before):
        assert master.dtype == torch.float32 and half.dtype == torch.bfloat16
        assert not torch.equal(master, old)
        assert torch.equal(half, master.detach().bfloat16())


def test_numerics_script_reports_a_verdict(tmp_path, monkeypatch):
    """benchmarks/bf16_numerics.py in small mode: one seed, fp32 and bf16 runs, a report."""
    monkeypatch.setenv("DVAR_BENCH_SMALL", "1")
    numerics = load("bf16_numerics")
    rows = numerics.main(["--out", str(tmp_path), "--objectives", "mdm", "--steps", "4",
                          "--report", str(tmp_path / "numerics.md")])
    assert [(r["precision"], r["seed"]) for r in rows] == [("fp32", 0), ("bf16", 0)]
    text = (tmp_path / "numerics.md").read_text()
    assert "| mdm | 0 | bf16 |" in text and "Verdict: bf16 is" in text


@pytest.mark.slow
def test_gpu_script_runs_at_reduced_size_on_cpu(tmp_path):
    """benchmarks/gpu.sh end to end with DVAR_BENCH_SMALL=1 (minutes on 2 cores)."""
    pytest.importorskip("transformers")
    env = dict(os.environ, DVAR_BENCH_SMALL="1", OUT=str(tmp_path), PYTHON=sys.executable)
    subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu.sh")], check=True, env=env)
    assert (tmp_path / "throughput.json").exists() and (tmp_path / "tta" / "summary.json").exists()
