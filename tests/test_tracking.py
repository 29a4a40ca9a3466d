"""Experiment tracking (`train.report_to`): TensorBoard event files that TensorBoard itself
reads back, W&B through a fake client (and the real one offline when installed), names
checked before anything else, and `dvar eval` metrics logged into the run's tracker."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import pytest

from dvar.cli import main
from dvar.config import ConfigError, load_config
from dvar.tracking import TENSORBOARD_DIR, WANDB_ID_FILE, Tracker, check_report_to, open_tracker
from dvar.trainer import _train, train

pytest.importorskip("tensorboard")
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("data") / "train.jsonl"
    assert main(["generate", "sudoku", "--size", "4", "--n", "48", "--seed", "0", "--out", str(path),
                 "--workers", "1"]) == 0
    return path


def train_args(data: Path, out: Path, *extra: str) -> list[str]:
    return ["train", "task=sudoku", "model=micro", f"data.train={data}", f"out_dir={out}",
            "data.valid_size=8", "train.batch_size=8", "train.max_steps=4", "train.log_every=1",
            "train.eval_every=2", "train.eval_size=4", "decode.batch_size=4", "diffusion.steps=4",
            *extra]


def scalars(run: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar of the run's event files, as TensorBoard reads them."""
    events = EventAccumulator(str(run / TENSORBOARD_DIR))
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_tensorboard_events_hold_training_validation_and_eval_scalars(tmp_path, data, capsys):
    run = tmp_path / "run"
    assert main(train_args(data, run, "train.report_to=tensorboard")) == 0
    assert len(list((run / TENSORBOARD_DIR).glob("events.out.tfevents.*"))) == 1
    logged = scalars(run)
    train_log, eval_log = rows(run / "train_log.jsonl"), rows(run / "eval_log.jsonl")
    for key in ("loss", "lr", "tokens_per_s", "epoch"):
        assert [step for step, _ in logged[f"train/{key}"]] == [1, 2, 3, 4]
        assert [v for _, v in logged[f"train/{key}"]] == pytest.approx([r[key] for r in train_log], rel=1e-6)
    assert logged["val/loss"] == [(r["step"], pytest.approx(r["val_loss"], rel=1e-6)) for r in eval_log]
    assert [step for step, _ in logged["val/accuracy"]] == [2, 4]
    assert load_config(run / "config.yaml").train.report_to == ["tensorboard"]

    # dvar eval logs into the same event directory, at the step training ended.
    capsys.readouterr()
    assert main(["eval", str(run), "--data", str(data), "--out", str(tmp_path / "eval")]) == 0
    assert "logged eval/train-topk-4/ to tensorboard" in capsys.readouterr().out
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    logged = scalars(run)
    assert logged["eval/train-topk-4/accuracy"] == [(4, pytest.approx(metrics["accuracy"]))]
    assert logged["eval/train-topk-4/nfe_per_example"] == [(4, 4.0)]
    assert {f"eval/train-topk-4/accuracy/{group}" for group in metrics["by"]} <= set(logged)
    # --report-to none leaves the tracker alone.
    assert main(["eval", str(run), "--data", str(data), "--steps", "2", "--report-to", "none",
                 "--out", str(tmp_path / "eval2")]) == 0
    assert not any(tag.startswith("eval/train-topk-2") for tag in scalars(run))


def test_a_resumed_run_replaces_the_events_after_its_checkpoint(tmp_path, data):
    extra = ("train.report_to=tensorboard", "train.max_steps=6", "train.save_every=3", "train.eval_every=0")
    cfg = load_config(None, train_args(data, tmp_path / "run", *extra)[1:])
    _train(cfg, stop_after=4)  # killed one step after the step-3 checkpoint
    assert [step for step, _ in scalars(tmp_path / "run")["train/loss"]] == [1, 2, 3, 4]
    train(load_config(None, train_args(data, tmp_path / "run", *extra, "resume=true")[1:]))
    logged = scalars(tmp_path / "run")
    assert [step for step, _ in logged["train/loss"]] == [1, 2, 3, 4, 5, 6]
    losses = [r["loss"] for r in rows(tmp_path / "run" / "train_log.jsonl")]
    assert [v for _, v in logged["train/loss"]] == pytest.approx(losses, rel=1e-6)


def test_report_to_takes_a_name_or_a_list():
    assert load_config(None, []).train.report_to == ["none"]
    assert load_config(None, ["train.report_to=tensorboard"]).train.report_to == ["tensorboard"]
    both = load_config(None, ["train.report_to=[tensorboard,wandb]"]).train.report_to
    assert both == ["tensorboard", "wandb"]
    assert check_report_to(["none"]) == [] and check_report_to(["tensorboard"]) == ["tensorboard"]
    with pytest.raises(ConfigError, match="cannot be combined"):
        check_report_to(["none", "tensorboard"])
    with pytest.raises(ConfigError, match="named twice"):
        check_report_to(["tensorboard", "tensorboard"])


def test_an_unknown_tracker_is_an_error_listing_the_valid_ones_before_reading_data(tmp_path, capsys):
    code = main(train_args(tmp_path / "no-such-file.jsonl", tmp_path / "run", "train.report_to=[mlflow]"))
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert "train.report_to='mlflow' is not a tracker; valid: none, tensorboard, wandb" in err
    assert not (tmp_path / "run").exists()


class FakeWandb(types.ModuleType):
    """The part of the wandb client dvar uses, recording every call."""

    def __init__(self) -> None:
        super().__init__("wandb")
        self.runs: list[FakeWandb.Run] = []

    class Run:
        def __init__(self, **init) -> None:
            self.init, self.logged, self.metrics, self.finished = init, [], [], False

        def define_metric(self, name, step_metric=None) -> None:
            self.metrics.append((name, step_metric))

        def log(self, row) -> None:
            self.logged.append(dict(row))

        def finish(self) -> None:
            self.finished = True

    def init(self, **kwargs):
        self.runs.append(FakeWandb.Run(**kwargs))
        return self.runs[-1]


def test_wandb_gets_the_same_scalars_and_eval_continues_the_same_run(tmp_path, data, monkeypatch):
    fake = FakeWandb()
    monkeypatch.setitem(sys.modules, "wandb", fake)
    run = tmp_path / "run"
    assert main(train_args(data, run, "train.report_to=[tensorboard,wandb]")) == 0
    (trained,) = fake.runs
    run_id = (run / WANDB_ID_FILE).read_text().strip()
    assert trained.init["id"] == run_id and trained.init["resume"] == "allow"
    assert trained.init["dir"] == str(run) and trained.init["job_type"] == "train"
    assert trained.init["config"]["task"] == "sudoku" and trained.finished
    assert ("*", "step") in trained.metrics
    by_step = {}
    for row in trained.logged:
        by_step.setdefault(row["step"], {}).update(row)
    assert sorted(by_step) == [1, 2, 3, 4]
    tensorboard = scalars(run)
    for tag, points in tensorboard.items():  # the two trackers got the same numbers
        assert [(s, pytest.approx(v, rel=1e-6)) for s, v in points] == [
            (s, by_step[s][tag]) for s in sorted(by_step) if tag in by_step[s]]

    assert main(["eval", str(run), "--data", str(data), "--out", str(tmp_path / "eval")]) == 0
    evaluated = fake.runs[-1]
    assert evaluated.init["id"] == run_id and evaluated.init["job_type"] == "eval" and evaluated.finished
    (row,) = evaluated.logged
    assert row["step"] == 4 and "eval/train-topk-4/accuracy" in row


def test_real_wandb_client_offline(tmp_path, data, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    run = tmp_path / "run"
    assert main(train_args(data, run, "train.report_to=wandb")) == 0
    assert main(["eval", str(run), "--data", str(data), "--out", str(tmp_path / "eval")]) == 0
    run_id = (run / WANDB_ID_FILE).read_text().strip()
    offline = sorted((run / "wandb").glob(f"offline-run-*-{run_id}"))
    assert len(offline) == 2 and all(list(d.glob("*.wandb")) for d in offline)  # train, eval


def test_tracker_off_rank_zero_and_without_backends_does_nothing(tmp_path):
    tracker = open_tracker(["tensorboard"], tmp_path / "run", enabled=False)
    tracker.log(1, {"train/loss": 1.0})
    tracker.close()
    assert not (tmp_path / "run").exists()
    seen = []

    class Backend:
        def log(self, step, values):
            seen.append((step, values))

        def close(self):
            seen.append("closed")

    with Tracker([Backend()]) as tracker:
        tracker.log(3, {"a": 1, "b": None, "c": float("nan"), "d": "text"})
        tracker.log(4, {"b": None})  # nothing left: no call
    assert seen == [(3, {"a": 1.0}), "closed"]
