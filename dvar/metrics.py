"""Accuracy overall and per breakdown key, from a task's verifier.

The summary is the JSON that `dvar check --json` prints and `metrics.json` holds:
`{"n", "correct", "accuracy", "by": {KEY: {"n", "correct", "accuracy"}}}`, plus
`accuracy_NAME` for every extra verdict a task reports (countdown: `accuracy_reference`).
With K samples per problem, `summarize_samples` adds pass@1, pass@K, best-of-K and
majority@K.

Model calls (NFE), as `dvar.evaluate` records them in metrics.json: `nfe` is every call in
all (a batched call counts once); `nfe_per_example`, THE NFE per example of dvar (printed
by `dvar eval`, logged to trackers, used by `dvar report` and results.csv), is what one
problem costs when decoded batch by batch: each batch's calls count for every problem in
it, summed over the K samples, averaged over problems. `row_nfe_per_example` is another
quantity under its own name: the calls that included the problem's own row (lower where a
decoder stops finished rows: AR length groups, adaptive decoders); None when the decoder
does not say.

Breakdown keys: a task's `breakdown(problem)` is a mapping such as `{"pd": 3}` or
`{"numbers": 4, "target": "ood"}`; it becomes a string only for output (`by` keys of
metrics.json, `group` of predictions.jsonl), by `format_group` (`"pd=3"`,
`"numbers=4,target=ood"`), and is read back by `parse_group`. Keys are sorted by
`group_sort_key` (`pd=10` after `pd=9`).
"""

from __future__ import annotations

import re
from collections import Counter
from typing import TYPE_CHECKING, Any, Mapping, Sequence

if TYPE_CHECKING:  # dvar.tasks.base formats its keys with this module
    from dvar.tasks import Task

Breakdown = dict[str, "int | str"]
_NAME = re.compile(r"[a-z_][a-z0-9_]*")
_INT = re.compile(r"-?(?:0|[1-9][0-9]*)")


# ---------------------------------------------------------------------- breakdown keys
def format_group(breakdown: Mapping[str, int | str]) -> str:
    """`{"pd": 3}` -> `"pd=3"`; several fields joined by `,` in their order. ValueError for a
    name that is not lower_snake_case or a value that holds `=` or `,` (no round trip)."""
    if not breakdown:
        raise ValueError("a breakdown needs at least one field")
    parts = []
    for name, value in breakdown.items():
        if not isinstance(name, str) or _NAME.fullmatch(name) is None:
            raise ValueError(f"breakdown field name {name!r} is not lower_snake_case")
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            raise ValueError(f"breakdown field {name}: expected an int or a string, got {value!r}")
        text = str(value)
        if not text or "=" in text or "," in text:
            raise ValueError(f"breakdown field {name}: value {text!r} is empty or holds '=' or ','")
        parts.append(f"{name}={text}")
    return ",".join(parts)


def parse_group(key: str) -> Breakdown:
    """`"pd=3"` -> `{"pd": 3}`, `"numbers=4,target=ood"` -> `{"numbers": 4, "target": "ood"}`:
    the inverse of `format_group` (a value is an int when it reads back as the same text).
    ValueError naming the key if it is not `name=value[,name=value...]`."""
    out: Breakdown = {}
    for part in key.split(","):
        name, sep, value = part.partition("=")
        if not sep or _NAME.fullmatch(name) is None or not value or "=" in value or name in out:
            raise ValueError(f"breakdown key {key!r} is not name=value[,name=value...]")
        out[name] = int(value) if _INT.fullmatch(value) else value
    return out


def group_sort_key(key: str) -> tuple:
    """Sort key of a formatted breakdown key: numbers by value, `pd=10` after `pd=9`."""
    return tuple(int(p) if p.isdigit() else p for p in re.split(r"(\d+)", key))


# ---------------------------------------------------------------------- accuracy


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
    summary["by"] = {key: _tally(by[key]) for key in sorted(by, key=group_sort_key)}
    return summary


def _tally(verdicts: Sequence[dict[str, bool]]) -> dict[str, Any]:
    n = len(verdicts)
    correct = sum(v["correct"] for v in verdicts)
    out: dict[str, Any] = {"n": n, "correct": correct, "accuracy": correct / n if n else 0.0}
    extras = sorted({k for v in verdicts for k in v} - {"correct"})
    for name in extras:
        out[f"accuracy_{name}"] = sum(v.get(name, False) for v in verdicts) / n if n else 0.0
    return out


def mean_defined(values: Sequence[float | None]) -> float | None:
    """The mean of the values that are not None; None if there are none."""
    defined = [value for value in values if value is not None]
    return sum(defined) / len(defined) if defined else None


def add_partial_credit(summary: dict[str, Any], task: Task, problems: Sequence[Any],
                       answers: Sequence[str], groups: Sequence[str]) -> None:
    """Where the task measures how far short of solving its answers are (Sudoku: blank
    cells right; path: steps on graph edges), its mean overall and per group, in place."""
    if not task.partial_credit_label:
        return
    partial = [task.partial_credit(p, a) for p, a in zip(problems, answers)]
    summary["partial_credit_label"] = task.partial_credit_label
    summary["partial_credit"] = mean_defined(partial)
    for key in summary["by"]:
        summary["by"][key]["partial_credit"] = mean_defined(
            [score for score, group in zip(partial, groups) if group == key])


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
    if summary.get("partial_credit") is not None:
        lines.append(f"{summary['partial_credit_label']}: {100 * summary['partial_credit']:.2f}%")
    return "\n".join(lines)


# ---------------------------------------------------------------------- K samples
def best_of_k(verdicts: Sequence[dict[str, bool]]) -> int:
    """Index of the sample a verifier-filtered best-of-K keeps: the first correct one,
    else the first."""
    return next((i for i, v in enumerate(verdicts) if v["correct"]), 0)


def majority_vote(answers: Sequence[str]) -> int:
    """Index of the first sample carrying the most frequent answer text (ties: the
    answer drawn first). Texts are compared exactly, as the model wrote them."""
    counts = Counter(answers)
    top = max(counts.values())
    return next(i for i, a in enumerate(answers) if counts[a] == top)


def summarize_samples(
    groups: Sequence[str],
    samples: Sequence[Sequence[str]],
    sample_verdicts: Sequence[Sequence[dict[str, bool]]],
) -> dict[str, Any]:
    """K answers per problem and their verdicts -> `samples` (K) and, overall and in
    `by[group]`, the fraction of problems where
    - `pass_at_1`: a single draw is correct (mean over the K draws),
    - `pass_at_k`: any of the K is correct (exactly, not the unbiased estimator),
    - `best_of_k`: the best-of-K choice (`best_of_k`) is correct; equals pass_at_k when,
      as here, the filtering verifier is the judge itself,
    - `majority_at_k`: the most frequent answer (`majority_vote`) is correct."""
    per_problem = []
    for texts, verdicts in zip(samples, sample_verdicts):
        correct = [bool(v["correct"]) for v in verdicts]
        per_problem.append({
            "pass_at_1": sum(correct) / len(correct),
            "pass_at_k": float(any(correct)),
            "best_of_k": float(correct[best_of_k(verdicts)]),
            "majority_at_k": float(correct[majority_vote(texts)]),
        })

    def mean(rows: list[dict[str, float]]) -> dict[str, float]:
        keys = ("pass_at_1", "pass_at_k", "best_of_k", "majority_at_k")
        return {k: sum(r[k] for r in rows) / len(rows) if rows else 0.0 for k in keys}

    by: dict[str, list[dict[str, float]]] = {}
    for group, row in zip(groups, per_problem):
        by.setdefault(group, []).append(row)
    k = len(sample_verdicts[0]) if sample_verdicts else 0
    return {"samples": k, **mean(per_problem),
            "by": {key: mean(by[key]) for key in sorted(by, key=group_sort_key)}}
