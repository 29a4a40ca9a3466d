"""Learning-rate schedules and warmup-stable-decay branches: a branch off a trunk is the
short run trained from scratch, bit for bit, at the cost of its decay."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import test_trainer

from dvar.config import ConfigError
from dvar.schedule import decay_start, lr_factor
from dvar.trainer import train


data = test_trainer.data  # the fixture: 96 4x4 puzzles


def config(data: Path, out: Path, *extra: str):
    """test_trainer's tiny 4x4 Sudoku run, on the wsd schedule."""
    return test_trainer.config(data, out, "train.eval_size=0", "train.warmup_steps=2", "train.schedule=wsd",
                          "arch.dropout=0.1", *extra)


def test_wsd_is_warm_up_then_constant_then_a_linear_decay_to_the_floor():
    rates = [lr_factor(s, 4, 20, 0.1, "wsd", 0.25) for s in range(20)]
    assert rates[:4] == [0.25, 0.5, 0.75, 1.0]
    assert decay_start(20, 0.25) == 15 and rates[4:15] == [1.0] * 11
    decay = rates[15:]
    assert all(a > b for a, b in zip(decay, decay[1:])) and decay[-1] == pytest.approx(0.1)
    # Before its decay a wsd run's rate does not depend on its budget: the branch property.
    for total in (40, 80, 160):
        assert [lr_factor(s, 4, total, 0.0, "wsd") for s in range(30)] == \
               [lr_factor(s, 4, 160, 0.0, "wsd") for s in range(30)]


def test_cosine_is_unchanged():
    assert lr_factor(0, 2, 10, 0.0) == 0.5
    assert lr_factor(2, 2, 10, 0.0) == 1.0
    assert lr_factor(6, 2, 10, 0.0) == pytest.approx(0.5)
    assert lr_factor(10, 2, 10, 0.2) == pytest.approx(0.2)


def test_a_branch_is_the_short_run_bit_for_bit(tmp_path, data, one_thread):
    short = train(config(data, tmp_path / "short", "train.max_steps=10"))
    point = decay_start(10, 0.2)
    trunk = train(config(data, tmp_path / "trunk", "train.max_steps=20", f"train.save_at=[{point}]",
                         "train.keep_checkpoints=1"))
    assert (trunk / "checkpoints" / f"step-{point:08d}").is_dir()  # pinned, not rotated away
    branch = train(config(data, tmp_path / "branch", "train.max_steps=10",
                          f"train.branch_from={trunk}"))
    a, b = load_file(str(short / "model.safetensors")), load_file(str(branch / "model.safetensors"))
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=0, atol=0, msg=name)
    # Its log is the trunk's up to the branch point, then its own decay.
    log = [json.loads(line) for line in (branch / "train_log.jsonl").read_text().splitlines()]
    assert [row["step"] for row in log] == list(range(1, 11))
    straight = [json.loads(line) for line in (short / "train_log.jsonl").read_text().splitlines()]
    assert [row["loss"] for row in log] == [row["loss"] for row in straight]
    # (a row's lr is the next step's: the trunk's row at the branch point has the trunk's)
    assert [row["lr"] for row in log[point:]] == [row["lr"] for row in straight[point:]]
    # compute.json counts the branch as if trained alone: all 10 steps.
    assert json.loads((branch / "compute.json").read_text())["steps"] == 10


def test_a_branch_needs_a_matching_trunk_with_its_checkpoint(tmp_path, data, one_thread):
    trunk = train(config(data, tmp_path / "trunk", "train.max_steps=12", "train.keep_checkpoints=1"))
    with pytest.raises(ConfigError, match="no checkpoint at step 8.*save_at"):
        train(config(data, tmp_path / "b1", "train.max_steps=10", f"train.branch_from={trunk}"))
    with pytest.raises(ConfigError, match="train.lr"):
        train(config(data, tmp_path / "b2", "train.max_steps=10", "train.lr=1e-3",
                      f"train.branch_from={trunk}"))
    other = tmp_path / "other.jsonl"  # other data at another path: another run
    other.write_text("".join(data.read_text().splitlines(keepends=True)[::-1]))
    with pytest.raises(ConfigError, match="data.train"):
        train(config(other, tmp_path / "b3", "train.max_steps=20", f"train.branch_from={trunk}"))
    with pytest.raises(ConfigError, match="no run there"):
        train(config(data, tmp_path / "b4", "train.max_steps=10", f"train.branch_from={tmp_path / 'none'}"))


def test_a_longer_run_extends_its_trunk_bit_for_bit(tmp_path, data, one_thread, capsys):
    straight = train(config(data, tmp_path / "straight", "train.max_steps=20"))
    trunk = train(config(data, tmp_path / "trunk", "train.max_steps=12", "train.save_at=[4]",
                         "train.keep_checkpoints=1"))
    own = decay_start(12, 0.2)  # every wsd run keeps its decay start: where a longer one leaves it
    assert sorted(p.name for p in (trunk / "checkpoints").iterdir()) == \
        [f"step-{step:08d}" for step in (4, own, 12)]
    copy = tmp_path / "copy.jsonl"  # the same data at another path (a study regenerated elsewhere)
    copy.write_bytes(data.read_bytes())
    longer = train(config(copy, tmp_path / "longer", "train.max_steps=20", f"train.branch_from={trunk}"))
    assert f"from {trunk / 'checkpoints' / f'step-{own:08d}'}" in capsys.readouterr().out
    a, b = load_file(str(straight / "model.safetensors")), load_file(str(longer / "model.safetensors"))
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=0, atol=0, msg=name)
    rows = [json.loads(line) for line in (longer / "train_log.jsonl").read_text().splitlines()]
    alone = [json.loads(line) for line in (straight / "train_log.jsonl").read_text().splitlines()]
    assert [row["loss"] for row in rows] == [row["loss"] for row in alone]
    assert json.loads((longer / "compute.json").read_text())["steps"] == 20
    # A shorter budget of the longer run finds its decay start (4) in the run it started from.
    short = train(config(data, tmp_path / "short", "train.max_steps=5"))
    branch = train(config(data, tmp_path / "branch", "train.max_steps=5", f"train.branch_from={longer}"))
    assert f"from {trunk / 'checkpoints' / 'step-00000004'}" in capsys.readouterr().out
    a, b = load_file(str(short / "model.safetensors")), load_file(str(branch / "model.safetensors"))
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=0, atol=0, msg=name)


@pytest.mark.parametrize("setting, message", [
    ("train.schedule=linear", "train.schedule must be one of"),
    ("train.decay_fraction=0", "decay_fraction"),
    ("train.save_at=[12]", "save_at"),
])
def test_bad_schedule_settings_are_errors(tmp_path, data, setting, message):
    with pytest.raises(ConfigError, match=message):
        train(config(data, tmp_path / "run", "train.max_steps=12", setting))


def test_a_branch_needs_wsd(tmp_path, data):
    with pytest.raises(ConfigError, match="needs train.schedule=wsd"):
        train(config(data, tmp_path / "run", "train.max_steps=12", "train.schedule=cosine",
                     f"train.branch_from={tmp_path}"))
