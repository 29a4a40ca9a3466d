"""Training runs end to end on CPU: run directory, resume, multi-process equivalence."""

from __future__ import annotations

import copy
import dataclasses
import importlib.util
import inspect
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from dvar.cli import main
from dvar.config import ConfigError, load_config
from dvar.rundir import RunDir
from dvar.runtime import Dist, device_for
from dvar.trainer import _train, resolve, train


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data")
    assert main(["generate", "sudoku", "--size", "4", "--n", "96", "--seed", "0",
                 "--out", str(root / "train.jsonl"), "--workers", "1"]) == 0
    return root / "train.jsonl"


def config(data: Path, out: Path, *extra: str):
    return load_config(None, [
        "task=sudoku", "model=micro", f"data.train={data}", f"out_dir={out}", "data.valid_size=16",
        "train.batch_size=8", "train.lr=3e-3", "train.log_every=1", "train.eval_size=8",
        "decode.batch_size=8", *extra,
    ])


def weights(run: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run / "model.safetensors"))


def weight_bytes(run: Path) -> bytes:
    return (run / "model.safetensors").read_bytes()


@pytest.mark.parametrize("objective", ["mdm", "ar"])
def test_run_directory_holds_everything(tmp_path, data, objective):
    out = train(config(data, tmp_path / "run", f"objective={objective}", "train.max_steps=4",
                       "train.eval_every=2", "train.save_every=2"))
    for name in ("config.yaml", "vocab.json", "model.json", "model.safetensors", "train_log.jsonl",
                 "eval_log.jsonl", "loss.png", "compute.json"):
        assert (out / name).stat().st_size > 0, name
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert [row["step"] for row in log] == [1, 2, 3, 4]
    assert all({"step", "loss", "tokens_per_s"} <= set(row) for row in log)
    evals = [json.loads(line) for line in (out / "eval_log.jsonl").read_text().splitlines()]
    assert [row["step"] for row in evals] == [2, 4] and 0 <= evals[-1]["val_accuracy"] <= 1
    resolved = load_config(out / "config.yaml")
    assert resolved.data.cutoff == 34 and resolved.train.max_steps == 4 and not resolved.resume
    # A finished run is not overwritten by accident.
    with pytest.raises(ConfigError, match="already holds a run"):
        train(config(data, out, f"objective={objective}", "train.max_steps=4"))


def test_killed_run_resumes_to_the_same_weights(tmp_path, data):
    settings = ("train.max_steps=6", "train.save_every=3", "train.eval_every=0", "arch.dropout=0.1")
    straight = train(config(data, tmp_path / "straight", *settings))
    killed = config(data, tmp_path / "killed", *settings)
    _train(killed, stop_after=4)  # dies one step after the step-3 checkpoint
    assert not (tmp_path / "killed" / "model.safetensors").exists()
    with (tmp_path / "killed" / "train_log.jsonl").open("a") as log:
        log.write('{"step": 5, "loss": 0.4')  # and while writing its next row
    resumed = train(config(data, tmp_path / "killed", *settings, "resume=true"))
    a, b = weights(straight), weights(resumed)
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=0, atol=0, msg=name)
    assert weight_bytes(straight) == weight_bytes(resumed)
    steps = [json.loads(l)["step"] for l in (resumed / "train_log.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4, 5, 6]
    # compute.json counts the training seconds of both invocations (up to the checkpoint
    # the second resumed from, then the rest).
    checkpoint = json.loads((resumed / "checkpoints" / "step-00000003" / "state.json").read_text())
    compute = RunDir(resumed).compute()
    assert 0 < checkpoint["train_seconds"] < compute["train_seconds"]
    assert compute["steps"] == 6 and compute["tokens"] == 6 * 8 * 34


def test_unknown_config_key_is_an_error(data, tmp_path):
    with pytest.raises(ConfigError, match="unknown key 'train.lrr'"):
        config(data, tmp_path, "train.lrr=1")


def test_too_long_example_is_an_error_naming_it(data, tmp_path):
    with pytest.raises(ValueError, match=r"train\.jsonl:\d+"):
        train(config(data, tmp_path / "run", "data.cutoff=30", "train.max_steps=1"))


def test_two_processes_match_one(tmp_path, data):
    if shutil.which("torchrun") is None and not (Path(sys.executable).parent / "torchrun").exists():
        pytest.skip("torchrun not installed")
    common = ["task=sudoku", "model=micro", f"data.train={data}", "data.valid_size=16",
              "train.batch_size=8", "train.micro_batch_size=4", "train.max_steps=3",
              "train.lr=3e-3", "train.eval_size=4", "decode.batch_size=4", "train.log_every=1"]
    single = train(load_config(None, common + [f"out_dir={tmp_path / 'one'}"]))
    env = dict(os.environ, OMP_NUM_THREADS="1")
    torchrun = shutil.which("torchrun") or str(Path(sys.executable).parent / "torchrun")
    tracked = ["train.report_to=tensorboard"] if importlib.util.find_spec("tensorboard") else []
    subprocess.run(
        [torchrun, "--standalone", "--nproc_per_node", "2", "-m", "dvar", "train", *common,
         f"out_dir={tmp_path / 'two'}", *tracked],
        check=True, env=env, capture_output=True, timeout=300,
    )
    if tracked:  # rank 0 alone writes events
        assert len(list((tmp_path / "two" / "tensorboard").glob("events.out.tfevents.*"))) == 1
    a, b = weights(single), weights(tmp_path / "two")
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=1e-4, atol=1e-5, msg=name)
    losses = [[json.loads(line)["loss"] for line in (run / "train_log.jsonl").read_text().splitlines()]
              for run in (single, tmp_path / "two")]
    assert len(losses[0]) == 3
    torch.testing.assert_close(torch.tensor(losses[0]), torch.tensor(losses[1]), rtol=1e-5, atol=0)


def test_time_limit_ends_training_early_and_eval_log_has_training_time(tmp_path, data):
    out = train(config(data, tmp_path / "run", "train.max_steps=1000", "train.eval_every=2",
                       "train.time_limit=1e-9"))
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    evals = [json.loads(line) for line in (out / "eval_log.jsonl").read_text().splitlines()]
    # The limit is checked after each step: one step, then the final validation and save.
    assert [row["step"] for row in log] == [1] and [row["step"] for row in evals] == [1]
    assert evals[0]["train_seconds"] > 0 and (out / "model.safetensors").exists()
    # No limit: evaluations every 2 steps report increasing training time.
    out = train(config(data, tmp_path / "full", "train.max_steps=4", "train.eval_every=2"))
    evals = [json.loads(line) for line in (out / "eval_log.jsonl").read_text().splitlines()]
    assert [row["step"] for row in evals] == [2, 4]
    assert 0 < evals[0]["train_seconds"] < evals[1]["train_seconds"]


@pytest.mark.parametrize("objective", ["mdm", "ar"])
def test_the_same_config_and_seed_give_byte_identical_weights(tmp_path, data, objective):
    # A stored hash would pin one platform's floating point (BLAS, CPU features, torch
    # version); two runs on one machine must agree to the byte.
    settings = (f"objective={objective}", "train.max_steps=50", "arch.dropout=0.1")
    first = train(config(data, tmp_path / "a", *settings))
    second = train(config(data, tmp_path / "b", *settings))
    assert weight_bytes(first) == weight_bytes(second)
    other = train(config(data, tmp_path / "c", *settings, "seed=1"))
    assert weight_bytes(first) != weight_bytes(other)


def test_resolve_returns_a_new_config_and_leaves_the_callers_alone(tmp_path, data):
    cfg = config(data, tmp_path / "run")
    before = copy.deepcopy(cfg)
    resolved = resolve(cfg)
    assert cfg == before  # cutoff, max_steps, warm-up and shift still unresolved
    assert cfg.data.cutoff == 0 and cfg.train.max_steps == 0 and cfg.diffusion.shift is None
    assert resolved.config is not cfg and resolved.config.data.cutoff == 34
    assert resolved.config.train.max_steps == 10 and resolved.config.diffusion.shift is False
    assert len(resolved.train) == 80 and len(resolved.valid) == 16
    # train() does not change its argument either.
    train(dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, max_steps=1)))
    assert cfg == before


def test_train_takes_a_config_only():
    assert list(inspect.signature(train).parameters) == ["cfg"]


def test_validation_never_holds_a_training_problem(tmp_path, data):
    rows = data.read_text().splitlines()
    # 24 examples repeat earlier problems: the held-out split catches some of them.
    with_copies = tmp_path / "copies.jsonl"
    with_copies.write_text("\n".join(rows + rows[:24]) + "\n")
    resolved = resolve(config(with_copies, tmp_path / "run"))
    task_problems = {ex.input for ex in resolved.train.examples}
    dropped = resolved.valid.duplicates_removed
    assert dropped > 0 and len(resolved.valid) == 16 - dropped
    assert len(resolved.train) == 120 - 16  # the training data are not touched
    assert not task_problems & {ex.input for ex in resolved.valid.examples}
    # A separate validation file: the same check.
    valid = tmp_path / "valid.jsonl"
    valid.write_text("\n".join(rows[:5] + rows[-3:]) + "\n")
    separate = resolve(config(data, tmp_path / "run", f"data.valid={valid}", "data.valid_size=0"))
    assert separate.valid.duplicates_removed == 8 and len(separate.valid) == 0
    held = resolve(config(data, tmp_path / "run", f"data.valid={tmp_path / 'copies.jsonl'}",
                          "data.valid_size=0"))
    assert held.valid.duplicates_removed == 120 and len(held.train) == 96
    # Reported when training: the log line and compute.json.
    out = train(config(with_copies, tmp_path / "trained", "train.max_steps=2"))
    assert RunDir(out).compute()["valid_duplicates_removed"] == dropped


@pytest.mark.parametrize("progress, lines", [("auto", 2), ("log", 2), ("quiet", 0)])
def test_progress_output_without_a_terminal(tmp_path, data, capsys, progress, lines):
    train(config(data, tmp_path / "run", "train.max_steps=4", "train.log_every=2",
                 f"train.progress={progress}"))
    out, err = capsys.readouterr()
    assert len(re.findall(r"^step \d/4: loss ", out, re.M)) == lines
    assert "step/s" not in err and "\r" not in err  # no tqdm bar
    assert "val_loss" in out  # validation is reported in every mode


def test_unknown_progress_mode_is_an_error(tmp_path, data):
    with pytest.raises(ConfigError, match="train.progress must be one of auto, bar, log, quiet"):
        train(config(data, tmp_path / "run", "train.progress=loud"))


def test_grid_positions_are_a_recorded_run_setting(tmp_path, data):
    """arch.grid trains (4x4 Sudoku: `4x4 SEP 4x4`), lands in model.json, and loads back;
    hf backbones refuse it."""
    from dvar.model import Transformer

    out = train(config(data, tmp_path / "run", "objective=mdm", "train.max_steps=2", "arch.grid=4",
                       "arch.positions=learned+rope"))
    assert json.loads((out / "model.json").read_text())["grid"] == 4
    assert Transformer.load(out).config.grid == 4
    with pytest.raises(ConfigError, match="arch.grid structures dvar's own"):
        load_config(None, ["task=sudoku", "model=hf:gpt2", "arch.grid=9"])


def test_a_gpu_process_selects_its_local_device(monkeypatch):
    chosen = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "set_device", chosen.append)
    assert device_for(Dist(rank=3, world=4, local_rank=1)) == torch.device("cuda", 1)
    assert chosen == [1]
