"""Plots written into run directories (matplotlib, no display needed)."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def _rows(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def plot_loss(run_dir: str | Path) -> Path:
    """`loss.png`: training loss (and validation loss / accuracy when logged) vs step."""
    run_dir = Path(run_dir)
    train = _rows(run_dir / "train_log.jsonl")
    valid = _rows(run_dir / "eval_log.jsonl")
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    ax.plot([r["step"] for r in train], [r["loss"] for r in train], label="train loss")
    if valid:
        ax.plot([r["step"] for r in valid], [r["val_loss"] for r in valid], "o-", label="valid loss")
    scored = [r for r in valid if "val_accuracy" in r]
    if scored:
        acc = ax.twinx()
        acc.plot([r["step"] for r in scored], [100 * r["val_accuracy"] for r in scored], "s--",
                 color="tab:green", label="valid accuracy")
        acc.set_ylabel("valid accuracy (%)")
        acc.set_ylim(0, 100)
        acc.legend(loc="center right")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_yscale("log")
    ax.legend(loc="upper left" if valid else "best")
    ax.set_title(run_dir.name)
    fig.tight_layout()
    out = run_dir / "loss.png"
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out
