"""Training precision: what `auto` resolves to and records, bf16 against fp32 on one batch,
and a bf16 run that resumes bit-identically. bf16 runs on any CPU (slowly where it has no
native bf16), so these tests run everywhere."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import dvar.precision
from dvar.cli import main
from dvar.config import load_config
from dvar.data import read_examples
from dvar.evaluate import decoding_dtype, evaluate, load_run
from dvar.generation import generate
from dvar.model import Transformer, model_config
from dvar.objectives import get_objective, make_batch
from dvar.tasks import get_task
from dvar.tokenizer import CharTokenizer
from dvar.precision import cpu_bf16_flags, resolve_precision
from dvar.trainer import _train, train

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data")
    assert main(["generate", "sudoku", "--size", "4", "--n", "64", "--seed", "0",
                 "--out", str(root / "train.jsonl"), "--workers", "1"]) == 0
    return root / "train.jsonl"


def config(data: Path, out: Path, *extra: str):
    return load_config(None, [
        "task=sudoku", "model=micro", f"data.train={data}", f"out_dir={out}", "data.valid_size=8",
        "train.batch_size=8", "train.lr=3e-3", "train.log_every=1", "train.eval_size=8",
        "decode.batch_size=8", *extra,
    ])


def test_cpu_flags_are_read_from_cpuinfo(tmp_path):
    x86 = tmp_path / "x86"
    x86.write_text("processor\t: 0\nflags\t\t: fpu sse avx512f avx512_bf16 amx_tile amx_bf16\n")
    assert cpu_bf16_flags(str(x86)) == ["amx_bf16", "avx512_bf16"]
    arm = tmp_path / "arm"
    arm.write_text("processor\t: 0\nFeatures\t: fp asimd bf16 i8mm sme\n")
    assert cpu_bf16_flags(str(arm)) == ["bf16", "sme"]
    old = tmp_path / "old"
    old.write_text("flags\t\t: fpu sse sse2 avx2 avx512f avx512_vnni\n")
    assert cpu_bf16_flags(str(old)) == []
    assert cpu_bf16_flags(str(tmp_path / "absent")) == []


@pytest.mark.parametrize("flags, expected", [(["amx_bf16"], "bf16"), ([], "fp32")])
def test_auto_follows_the_cpu_flags_and_is_recorded(tmp_path, data, monkeypatch, flags, expected,
                                                    capsys):
    monkeypatch.setattr(dvar.precision, "cpu_bf16_flags", lambda: flags)
    assert resolve_precision("auto", CPU, "tiny")[0] == expected
    assert resolve_precision("auto", CPU, "hf:some/model")[0] == "fp32"  # its CPU attention is slow in bf16
    for explicit in ("fp32", "bf16"):  # explicit choices stay what they say
        assert resolve_precision(explicit, CPU, "tiny") == (explicit, "set")
    out = train(config(data, tmp_path / "run", "train.max_steps=1"))
    assert load_config(out / "config.yaml").train.precision == expected
    assert f"precision {expected} (auto: " in capsys.readouterr().out
    run = load_run(out)
    assert decoding_dtype(run.config.train.precision) == (torch.bfloat16 if expected == "bf16" else None)


def test_old_runs_with_auto_still_decode_in_fp32():
    assert decoding_dtype("auto") is None and decoding_dtype("fp32") is None
    assert decoding_dtype("bf16") == torch.bfloat16


@pytest.mark.parametrize("objective", ["mdm", "ar"])
def test_bf16_step_agrees_with_fp32(objective):
    """One forward and backward on a fixed batch: the bf16 loss is within 0.1% of fp32's and
    each weight's gradient points the same way (cosine > 0.999) with a norm within 2%
    (measured at init: 1e-5, 0.99999 and 0.2%)."""
    tokenizer = CharTokenizer()
    task = get_task("sudoku")
    options = dataclasses.replace(task.make_options(), size=4, givens=(8, 12))
    rows = generate(task, 16, seed=3, options=options)
    batch = make_batch([tokenizer.encode_example(r["input"], r["output"], 34) for r in rows],
                       tokenizer)
    loss_fn = get_objective(objective)
    results = {}
    for dtype in (None, torch.bfloat16):
        torch.manual_seed(0)
        model = Transformer(model_config("mini", tokenizer.vocab_size, 34, causal=loss_fn.causal))
        with torch.autocast("cpu", dtype=dtype, enabled=dtype is not None):
            loss, _ = loss_fn.loss(model, batch, torch.Generator().manual_seed(5))
        loss.backward()
        grads = {name: p.grad for name, p in model.named_parameters()}
        results[dtype] = (loss.item(), grads)
    (loss32, grads32), (loss16, grads16) = results[None], results[torch.bfloat16]
    assert abs(loss16 - loss32) < 1e-3 * loss32, (loss16, loss32)
    for name in grads32:
        a, b = grads32[name].flatten(), grads16[name].flatten()
        assert torch.nn.functional.cosine_similarity(a, b, dim=0) > 0.999, name
        assert abs(b.norm() / a.norm() - 1) < 0.02, name


def test_bf16_run_resumes_bit_identically(tmp_path, data):
    settings = ("train.max_steps=4", "train.save_every=2", "train.eval_every=0",
                "train.precision=bf16", "arch.dropout=0.1")
    straight = train(config(data, tmp_path / "straight", *settings))
    killed = config(data, tmp_path / "killed", *settings)
    _train(killed, stop_after=3)  # dies one step after the step-2 checkpoint
    resumed = train(config(data, tmp_path / "killed", *settings, "resume=true"))
    a, b = load_file(str(straight / "model.safetensors")), load_file(str(resumed / "model.safetensors"))
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=0, atol=0, msg=name)
    # Decoding runs in the run's bf16 and gives answers the verifier can judge.
    run = load_run(resumed)
    assert run.config.train.precision == "bf16"
    report = evaluate(run, read_examples(data, run.task)[:4], batch_size=4)
    assert report.metrics["n"] == 4 and 0 <= report.metrics["accuracy"] <= 1
