"""Experiment tracking: `train.report_to` = none | tensorboard | wandb, or a list of them.

The trainer and `dvar eval` send scalars to one `Tracker`, which passes them to every
chosen backend; train_log.jsonl and eval_log.jsonl are written as before either way.

    names = check_report_to(["tensorboard"])          # unknown name or missing package: error
    with open_tracker(names, run_dir, config=to_dict(cfg)) as tracker:
        tracker.log(step, {"train/loss": 0.41, "train/lr": 1e-3})

- `tensorboard`: event files in RUN_DIR/tensorboard/ (`torch.utils.tensorboard`), read
  with `tensorboard --logdir RUN_DIR` (or a folder of runs). A resumed run purges the
  events logged after its checkpoint, as the logs are truncated.
- `wandb`: one W&B run per run directory, through the `wandb` client; its id is kept in
  RUN_DIR/wandb_id so a resumed run and later `dvar eval`s continue the same W&B run.
  The project is $WANDB_PROJECT (default "dvar"); WANDB_MODE=offline works without a
  network (`wandb sync` uploads later). Every scalar is plotted against dvar's `step`.

Names used: train/loss, train/lr, train/tokens_per_s, train/epoch; val/loss,
val/accuracy; eval/DATA-DECODER[-T]/accuracy (and per breakdown key) from `dvar eval`.
Under torchrun only rank 0 opens a tracker (`open_tracker(..., enabled=False)` elsewhere).
"""

from __future__ import annotations

import math
import os
import uuid
from pathlib import Path
from typing import Any, Protocol

from dvar.config import ConfigError
from dvar.optional import require

BACKENDS = ("tensorboard", "wandb")
NONE = "none"
TENSORBOARD_DIR = "tensorboard"
WANDB_ID_FILE = "wandb_id"


def check_report_to(names: list[str], setting: str = "train.report_to") -> list[str]:
    """The backends of a `report_to` value (none: []). An unknown name is a ConfigError
    listing the valid ones, a missing package a one-line MissingDependency; both before
    anything else happens."""
    valid = ", ".join((NONE, *BACKENDS))
    for name in names:
        if name != NONE and name not in BACKENDS:
            raise ConfigError(f"{setting}={name!r} is not a tracker; valid: {valid} "
                              f"(several as a list: {setting}=[tensorboard,wandb])")
    chosen = [name for name in names if name != NONE]
    if len(chosen) < len(names) and chosen:
        raise ConfigError(f"{setting}={names}: 'none' cannot be combined with a tracker")
    if len(set(chosen)) < len(chosen):
        raise ConfigError(f"{setting}={names}: a tracker is named twice")
    for name in chosen:
        require(name, f"{setting}={name}")
    return chosen


class Backend(Protocol):
    def log(self, step: int, scalars: dict[str, float]) -> None: ...

    def close(self) -> None: ...


class Tracker:
    """Scalars to every backend; with none, nothing happens."""

    def __init__(self, backends: list[Backend]) -> None:
        self.backends = backends

    def log(self, step: int, scalars: dict[str, float | None]) -> None:
        """Log the finite numbers of `scalars` at `step` (None and NaN are skipped)."""
        kept = {k: float(v) for k, v in scalars.items()
                if isinstance(v, (int, float)) and math.isfinite(v)}
        if kept:
            for backend in self.backends:
                backend.log(step, kept)

    def close(self) -> None:
        for backend in self.backends:
            backend.close()
        self.backends = []

    def __enter__(self) -> Tracker:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def open_tracker(
    names: list[str],
    run_dir: str | Path,
    config: dict[str, Any] | None = None,
    resumed_at: int | None = None,
    job: str = "train",
    enabled: bool = True,
) -> Tracker:
    """A tracker for `names` (as checked by `check_report_to`) writing into `run_dir`.

    resumed_at: the step of the checkpoint a resumed training run continues from
    (TensorBoard hides the events the killed run logged after it). job: "train" or "eval" (W&B's job type).
    enabled=False (a process other than rank 0) gives a tracker that does nothing."""
    if not enabled:
        return Tracker([])
    run_dir = Path(run_dir)
    backends: list[Backend] = []
    for name in check_report_to(names):
        if name == "tensorboard":
            backends.append(_TensorBoard(run_dir, None if resumed_at is None else resumed_at + 1))
        else:
            backends.append(_WandB(run_dir, config, job))
    return Tracker(backends)


class _TensorBoard:
    def __init__(self, run_dir: Path, purge_step: int | None) -> None:
        # purge_step: events at this step and later, from earlier writers, are hidden.
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(run_dir / TENSORBOARD_DIR), purge_step=purge_step,
                                    flush_secs=10)

    def log(self, step: int, scalars: dict[str, float]) -> None:
        for name, value in scalars.items():
            self.writer.add_scalar(name, value, global_step=step)

    def close(self) -> None:
        self.writer.close()


class _WandB:
    def __init__(self, run_dir: Path, config: dict[str, Any] | None, job: str) -> None:
        wandb = require("wandb", "train.report_to=wandb")
        id_file = run_dir / WANDB_ID_FILE
        run_id = id_file.read_text().strip() if id_file.is_file() else uuid.uuid4().hex[:12]
        self.run = wandb.init(
            project=os.environ.get("WANDB_PROJECT", "dvar"), name=run_dir.name, id=run_id,
            resume="allow", dir=str(run_dir), config=config, job_type=job,
        )
        id_file.write_text(run_id + "\n")
        # dvar's step is the x axis of every chart (W&B's own step only counts log calls,
        # which a resumed run or a later evaluation would not continue).
        self.run.define_metric("step")
        self.run.define_metric("*", step_metric="step")

    def log(self, step: int, scalars: dict[str, float]) -> None:
        self.run.log({**scalars, "step": step})

    def close(self) -> None:
        self.run.finish()


def eval_scalars(tag: str, metrics: dict[str, Any]) -> dict[str, float | None]:
    """What `dvar eval` logs from its metrics.json, under eval/TAG/: accuracy and its
    variants (countdown's accuracy_reference), model calls per problem, accuracy per
    breakdown key (accuracy/KEY) and, with --samples K > 1, pass@1, pass@K, majority@K."""
    keys = [k for k in metrics if k == "accuracy" or k.startswith("accuracy_")]
    keys.append("nfe_per_example")
    if metrics.get("samples", 1) > 1:
        keys += ["pass_at_1", "pass_at_k", "majority_at_k"]
    scalars = {f"eval/{tag}/{key}": metrics.get(key) for key in keys}
    for group, stats in metrics.get("by", {}).items():
        scalars[f"eval/{tag}/accuracy/{group}"] = stats.get("accuracy")
    return scalars


__all__ = ["Tracker", "check_report_to", "open_tracker", "eval_scalars", "BACKENDS",
           "TENSORBOARD_DIR", "WANDB_ID_FILE"]
