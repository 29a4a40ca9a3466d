"""Accuracy overall and per breakdown key, from a task's verifier.

The summary is the JSON that `dvar check --json` prints and `metrics.json` holds:
`{"n", "correct", "accuracy", "by": {KEY: {"n", "correct", "accuracy"}}}`, plus
`accuracy_NAME` for every extra verdict a task reports (countdown: `accuracy_reference`).
"""

from __future__ import annotations

from typing import Any, Sequence

from dvar.generation import _natural
from dvar.tasks import Task


def judge_all(task: Task, problems: Sequence[Any], answers: Sequence[str]) -> list[dict[str, bool]]:
    if len(problems) != len(answers):
        raise ValueError(f"{len(problems)} problems but {len(answers)} answers")
    return [task.judge(problem, answer) for problem, answer in zip(problems, answers)]


def summarize(groups: Sequence[str], verdicts: Sequence[dict[str, bool]]) -> dict[str, Any]:
    """Aggregate per-example verdicts into overall and per-group accuracies."""
    summary = _tally(verdicts)
    by: dict[str, list[dict[str, bool]]] = {}
    for group, verdict in zip(groups, verdicts):
        by.setdefault(group, []).append(verdict)
    summary["by"] = {key: _tally(by[key]) for key in sorted(by, key=_natural)}
    return summary


def _tally(verdicts: Sequence[dict[str, bool]]) -> dict[str, Any]:
    n = len(verdicts)
    correct = sum(v["correct"] for v in verdicts)
    out: dict[str, Any] = {"n": n, "correct": correct, "accuracy": correct / n if n else 0.0}
    extras = sorted({k for v in verdicts for k in v} - {"correct"})
    for name in extras:
        out[f"accuracy_{name}"] = sum(v.get(name, False) for v in verdicts) / n if n else 0.0
    return out


def format_table(summary: dict[str, Any], title: str = "") -> str:
    """A short human-readable table of a summary."""
    extras = [k for k in summary if k.startswith("accuracy_")]
    head = f"{'group':<24}{'n':>8}{'correct':>9}{'accuracy':>10}"
    head += "".join(f"{k[len('accuracy_'):]:>12}" for k in extras)
    lines = [title] if title else []
    lines.append(head)

    def row(name: str, stats: dict[str, Any]) -> str:
        text = f"{name:<24}{stats['n']:>8}{stats['correct']:>9}{100 * stats['accuracy']:>9.2f}%"
        return text + "".join(f"{100 * stats.get(k, 0.0):>11.2f}%" for k in extras)

    for key, stats in summary["by"].items():
        lines.append(row(key, stats))
    lines.append(row("all", summary))
    return "\n".join(lines)
