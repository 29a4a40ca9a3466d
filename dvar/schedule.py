"""Learning-rate schedules, and the branch points of warmup-stable-decay runs.

    cosine   linear warm-up to the peak, then a cosine decay to lr * min_lr_ratio at max_steps
    wsd      linear warm-up, constant (stable) to the decay start, then a linear decay to
             lr * min_lr_ratio over the last decay_fraction of max_steps (warmup-stable-decay;
             Hägele et al. 2024, "Scaling Laws and Compute-Optimal Training Beyond Fixed
             Training Durations", arXiv 2405.18392)

Under wsd a run of S steps is, up to its decay start, step for step the run of any longer
budget with the same warm-up: the rate does not depend on the budget before the decay.
So one long run (the trunk) that keeps a checkpoint at each shorter budget's decay start
(`train.save_at`) gives every shorter budget for the price of its decay alone
(`train.branch_from`): the same weights, bit for bit, as training it from scratch.
The same holds the other way: a longer budget starts from the trunk's last checkpoint
before the trunk's own decay (every wsd run keeps one at its decay start) and trains only
the steps the trunk has not (`dvar study run --extend`).
"""

from __future__ import annotations

import filecmp
import math
from pathlib import Path

SCHEDULES = ("cosine", "wsd")


def decay_start(max_steps: int, decay_fraction: float) -> int:
    """The first step of a wsd run's decay: max_steps - round(max_steps * decay_fraction)."""
    return max_steps - round(max_steps * decay_fraction)


def lr_factor(step: int, warmup: int, total: int, min_ratio: float, schedule: str = "cosine",
              decay_fraction: float = 0.2) -> float:
    """The learning rate of step `step` (0-based) as a share of the peak."""
    if step < warmup:
        return (step + 1) / warmup
    if schedule == "wsd":
        start = max(warmup, decay_start(total, decay_fraction))
        if step < start:
            return 1.0
        progress = min(1.0, (step - start + 1) / max(1, total - start))
        return 1.0 - (1.0 - min_ratio) * progress
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def check_schedule(schedule: str, decay_fraction: float, max_steps: int, save_at: list[int],
                   branch_from: str) -> None:
    """ValueError naming the setting that does not make sense."""
    if schedule not in SCHEDULES:
        raise ValueError(f"train.schedule must be one of {', '.join(SCHEDULES)}, got {schedule!r}")
    if not 0 < decay_fraction <= 1:
        raise ValueError(f"train.decay_fraction must be in (0, 1], got {decay_fraction}")
    bad = [s for s in save_at if not 0 < int(s) < max_steps]
    if bad:
        raise ValueError(f"train.save_at: step {bad[0]} is not between 0 and max_steps={max_steps}")
    if branch_from and schedule != "wsd":
        raise ValueError("train.branch_from needs train.schedule=wsd (a cosine run has no "
                         "budget-independent trunk to branch from)")


# Settings a branch may set differently from its trunk: where it lives, how long it trains
# and how it decays, what it logs, checkpoints and decodes. Everything else (data, model,
# objective, optimizer, warm-up, seed) must be the trunk's, or the branch is another run.
BRANCH_FREE = ("out_dir", "resume", "decode", "train.max_steps", "train.epochs", "train.save_at",
               "train.branch_from", "train.save_every", "train.keep_checkpoints", "train.log_every",
               "train.eval_every", "train.eval_size", "train.progress", "train.report_to",
               "train.time_limit", "train.decay_fraction", "train.min_lr_ratio")


def branch_point(trunk: dict, branch: dict, where: str) -> int:
    """The last step up to which a wsd run (`branch`, a resolved config as a dict) is its
    trunk (`trunk`, the trunk's config.yaml as a dict), step for step: the earlier of the
    two decay starts (a shorter branch leaves at its own, a longer one at the trunk's).
    ValueError if the two differ in anything but BRANCH_FREE. Data files at other paths
    with the same bytes count as the same data."""
    def flat(d: dict, prefix: str = "") -> dict:
        out = {}
        for key, value in d.items():
            name = prefix + key
            if any(name == free or name.startswith(free + ".") for free in BRANCH_FREE):
                continue
            out.update(flat(value, name + ".") if isinstance(value, dict) else {name: value})
        return out

    have, want = flat(trunk), flat(branch)
    for key in sorted(set(have) | set(want)):
        if have.get(key) != want.get(key) and not _same_file(key, have.get(key), want.get(key)):
            raise ValueError(f"{where} was trained with {key}={have.get(key)!r}, this branch has "
                             f"{want.get(key)!r}: a branch differs from its trunk only in its budget "
                             "and decay")
    t, b = trunk["train"], branch["train"]
    return min(decay_start(b["max_steps"], b["decay_fraction"]), decay_start(t["max_steps"], t["decay_fraction"]))


def _same_file(key: str, a: object, b: object) -> bool:
    """Two data settings naming byte-identical files (a study's data regenerated elsewhere)."""
    if not key.startswith("data.") or not (isinstance(a, str) and isinstance(b, str) and a and b):
        return False
    first, second = Path(a), Path(b)
    return first.is_file() and second.is_file() and filecmp.cmp(first, second, shallow=False)
