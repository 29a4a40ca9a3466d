"""Training runs end to end on CPU: run directory, resume, multi-process equivalence."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from dvar.cli import main
from dvar.config import ConfigError, load_config
from dvar.trainer import train


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


@pytest.mark.parametrize("objective", ["mdm", "ar"])
def test_run_directory_holds_everything(tmp_path, data, objective):
    out = train(config(data, tmp_path / "run", f"objective={objective}", "train.max_steps=4",
                       "train.eval_every=2", "train.save_every=2"))
    for name in ("config.yaml", "vocab.json", "model.json", "model.safetensors", "train_log.jsonl",
                 "eval_log.jsonl", "loss.png"):
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
    train(killed, stop_after=4)  # dies one step after the step-3 checkpoint
    assert not (tmp_path / "killed" / "model.safetensors").exists()
    resumed = train(config(data, tmp_path / "killed", *settings, "resume=true"))
    a, b = weights(straight), weights(resumed)
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=0, atol=0, msg=name)
    steps = [json.loads(l)["step"] for l in (resumed / "train_log.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4, 5, 6]


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
