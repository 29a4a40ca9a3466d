"""Plots (matplotlib, no display needed): a run's loss curve (`plot_loss`, written by
training into the run directory) and the plots of `dvar report` (`plot_breakdowns`,
`plot_nfe`, `plot_losses`, `plot_sizes`, over `dvar.report.Result`s)."""

from __future__ import annotations

import json
import math
import re
import statistics
from pathlib import Path

import matplotlib
import yaml

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from dvar.metrics import group_sort_key  # noqa: E402
from dvar.model import SIZES  # noqa: E402
from dvar.report import Result, column_labels, series_labels  # noqa: E402


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


# ---------------------------------------------------------------------- dvar report's plots
def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-")[-60:] or "data"


def _save(fig: plt.Figure, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def _accuracy_axis(ax: plt.Axes, accuracies: list[float]) -> None:
    """Percent from a multiple of 10 below the lowest value to 100, so that close
    results stay apart while the axis still says where it starts."""
    ax.set_ylim(max(0, 10 * math.floor(min(accuracies) * 10) - 10) - 1, 101)
    ax.set_ylabel("accuracy (%)")


def _by_test_set(results: list[Result]) -> dict[tuple[str, str], list[Result]]:
    groups: dict[tuple[str, str], list[Result]] = {}
    for r in results:
        groups.setdefault((r.task, r.data), []).append(r)
    return dict(sorted(groups.items()))


def plot_breakdowns(results: list[Result], out: Path) -> tuple[list[Path], list[str]]:
    """Accuracy per breakdown key (PD, givens, ...) per test set, one line per column (the
    mean over its seeds), AR solid and MDM dashed. Drawn where some result has two or more
    keys."""
    written, skipped = [], []
    headers = column_labels(results)
    for (task, data), group in _by_test_set(results).items():
        if max(len(r.by) for r in group) < 2:
            skipped.append(f"accuracy by breakdown key for {task} on {data}: fewer than two keys")
            continue
        keys = sorted({k for r in group for k in r.by}, key=group_sort_key)
        fig, ax = plt.subplots(figsize=(6.4, 4.0))
        lines: dict[str, list[Result]] = {}
        for r in group:
            lines.setdefault(headers[id(r)], []).append(r)
        for label, members in sorted(lines.items()):
            xs = [i for i, k in enumerate(keys) if any(k in r.by for r in members)]
            ys = [100 * statistics.mean(r.by[keys[i]]["accuracy"] for r in members if keys[i] in r.by) for i in xs]
            seeds = f" (mean of {len(members)} seeds)" if len(members) > 1 else ""
            ax.plot(xs, ys, "o-" if members[0].objective == "ar" else "s--", label=label + seeds)
        ax.set_xticks(range(len(keys)), keys, rotation=30 if len(keys) > 6 else 0)
        _accuracy_axis(ax, [g["accuracy"] for r in group for g in r.by.values()])
        ax.set_title(f"{task}: {data}", fontsize=9)
        ax.legend(fontsize=8)
        written.append(_save(fig, out / f"accuracy_by_group-{task}-{_slug(data)}.png"))
    return written, skipped


def plot_nfe(results: list[Result], out: Path) -> tuple[list[Path], list[str]]:
    """Accuracy vs model calls per problem (`nfe_per_example`), one line per column but
    its steps, through its step counts (a point: the mean over seeds); drawn where a test
    set has two or more evaluations with a call count."""
    written, skipped = [], []
    series = series_labels(results)
    for (task, data), group in _by_test_set(results).items():
        counted = [r for r in group if r.nfe_per_example]
        if len(counted) < 2:
            skipped.append(f"accuracy vs NFE for {task} on {data}: fewer than two evaluations with NFE")
            continue
        lines: dict[str, dict[int | None, list[Result]]] = {}
        for r in counted:
            lines.setdefault(series[id(r)], {}).setdefault(r.steps, []).append(r)
        fig, ax = plt.subplots(figsize=(6.4, 4.0))
        for label, by_steps in sorted(lines.items()):
            points = sorted(((statistics.mean(r.nfe_per_example for r in members),
                              statistics.mean(100 * r.accuracy for r in members), steps)
                             for steps, members in by_steps.items()), key=lambda p: p[0])
            ax.plot([x for x, _, _ in points], [y for _, y, _ in points],
                    "o-" if next(iter(by_steps.values()))[0].objective == "ar" else "s--", label=label)
            for x, y, steps in points if len(points) > 1 else []:
                if steps:
                    ax.annotate(f"T={steps}", (x, y), fontsize=7, textcoords="offset points", xytext=(3, 3))
        nfes = [r.nfe_per_example for r in counted]
        if max(nfes) > 10 * min(nfes):
            ax.set_xscale("log")
        ax.set_xlabel("model calls per problem (NFE)")
        _accuracy_axis(ax, [r.accuracy for r in counted])
        ax.set_title(f"{task}: {data}", fontsize=9)
        ax.legend(fontsize=7)
        written.append(_save(fig, out / f"accuracy_vs_nfe-{task}-{_slug(data)}.png"))
    return written, skipped


def plot_losses(runs: list[Path], out: Path) -> tuple[list[Path], list[str]]:
    """Training loss vs step of every run, one panel per objective (their losses are on
    different scales)."""
    curves: dict[str, list[tuple[str, list[int], list[float]]]] = {}
    for run in runs:
        log = run / "train_log.jsonl"
        if not log.is_file():
            continue
        rows = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
        if rows:
            objective = (yaml.safe_load((run / "config.yaml").read_text()) or {}).get("objective", "?")
            same_name = sum(other.name == run.name for other in runs) > 1
            curves.setdefault(objective, []).append(
                (str(run) if same_name else run.name, [r["step"] for r in rows], [r["loss"] for r in rows]))
    if not curves:
        return [], ["training loss curves: no run directory with a train_log.jsonl"]
    fig, axes = plt.subplots(1, len(curves), figsize=(5.0 * len(curves), 3.6), squeeze=False)
    for ax, (objective, lines) in zip(axes[0], sorted(curves.items())):
        for name, steps, losses in lines:
            ax.plot(steps, losses, label=name)
        ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_ylabel("training loss")
        ax.set_title(objective.upper())
        ax.legend(fontsize=8)
    return [_save(fig, out / "loss_curves.png")], []


def plot_sizes(results: list[Result], out: Path) -> tuple[list[Path], list[str]]:
    """Accuracy vs model size, one line per (objective, decoder), per test set; drawn
    where a test set was evaluated with two or more model sizes."""
    written, skipped = [], []
    order = {name: i for i, name in enumerate(SIZES)}
    for (task, data), group in _by_test_set(results).items():
        sizes = sorted({r.model for r in group}, key=lambda s: (order.get(s, len(order)), s))
        if len(sizes) < 2:
            skipped.append(f"accuracy vs model size for {task} on {data}: one model size")
            continue
        fig, ax = plt.subplots(figsize=(6.4, 4.0))
        lines: dict[str, dict[str, float]] = {}
        for r in group:  # the best run of a size, where a size has several
            line = lines.setdefault(f"{r.objective} {r.decoder}", {})
            line[r.model] = max(line.get(r.model, 0.0), r.accuracy)
        for label, points in sorted(lines.items()):
            xs = [i for i, s in enumerate(sizes) if s in points]
            ax.plot(xs, [100 * points[sizes[i]] for i in xs], "o-", label=label)
        ax.set_xticks(range(len(sizes)), sizes)
        ax.set_xlabel("model size")
        _accuracy_axis(ax, [r.accuracy for r in group])
        ax.set_title(f"{task}: {data}", fontsize=9)
        ax.legend(fontsize=8)
        written.append(_save(fig, out / f"accuracy_vs_size-{task}-{_slug(data)}.png"))
    return written, skipped
