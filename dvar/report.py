"""Gather evaluations into one report: `results.md`, `results.csv` and PNG plots.

    write_report(["runs/s4-mdm", "runs/s4-ar/eval/test-greedy"], "report/")

An evaluation is a directory holding `metrics.json` (written by `dvar eval`); a run
directory (`config.yaml`) holds them under `eval/*/`, and its `train_log.jsonl` gives the
loss curve. Any other directory is searched for both. The paper's published numbers
(`PUBLISHED`) are shown beside ours where our breakdown keys cover the same subset.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import matplotlib
import yaml

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from dvar.metrics import Breakdown, group_sort_key, parse_group  # noqa: E402
from dvar.model import SIZES  # noqa: E402


@dataclass
class Result:
    """One `metrics.json`, with what its run says about the model."""

    task: str
    data: str  # the test set, as given to `dvar eval`
    model: str
    objective: str
    decoder: str  # name plus settings that differ from the decoder's defaults
    steps: int | None
    n: int
    correct: int
    accuracy: float
    nfe_per_example: float | None  # model calls per problem (own calls when tracked)
    examples_per_s: float | None
    by: dict[str, dict[str, Any]]
    run: str  # run directory ("" for a lone eval directory)
    path: str  # the metrics.json file
    answer_order: str = "forward"  # SPEC §9; named in the column when not forward

    @property
    def model_label(self) -> str:
        """`tiny ar`, or with another answer order `tiny ar reverse`."""
        order = "" if self.answer_order == "forward" else f" {self.answer_order}"
        return f"{self.model} {self.objective}{order}"

    @property
    def column(self) -> str:
        steps = f" T={self.steps}" if self.steps else ""
        return f"{self.model_label} {self.decoder}{steps}"


@dataclass(frozen=True)
class Published:
    """A published accuracy and the subset of our breakdown keys it corresponds to."""

    task: str
    subset: str
    objective: str  # "ar" or "mdm"
    accuracy: float
    model: str
    source: str
    select: Callable[[Breakdown], bool] = field(compare=False)  # on a parsed breakdown key
    answer_order: str = "forward"  # compared only with our runs trained in this order (SPEC §9)


def _int_field(breakdown: Breakdown, name: str) -> int:
    """The breakdown's integer field `name`; 0 when it has none (e.g. `pd=none`)."""
    value = breakdown.get(name)
    return value if isinstance(value, int) else 0


def _pd_at_least_2(breakdown: Breakdown) -> bool:
    return _int_field(breakdown, "pd") >= 2


def _nine_by_nine_easy(breakdown: Breakdown) -> bool:  # 4x4 grids have at most 16 givens
    return _int_field(breakdown, "givens") >= 27


def _nine_by_nine_hard(breakdown: Breakdown) -> bool:
    return 17 <= _int_field(breakdown, "givens") <= 26


def _four_numbers(breakdown: Breakdown) -> bool:
    return breakdown.get("numbers") == 4


_YE = "Ye et al., ICLR 2025 (arXiv 2410.14157), via SPEC §6"
_KIM = "Kim et al. 2025 (arXiv 2502.06768), via SPEC §6"
# SPEC §6, "Results to reproduce and beat". The path AR figure is reported as "near
# chance (≈50%)", recorded here as 0.50.
PUBLISHED: tuple[Published, ...] = (
    Published("path", "PD ≥ 2", "ar", 0.50, "AR, near chance", _YE, _pd_at_least_2),
    Published("path", "PD ≥ 2", "mdm", 1.00, "MDM", _YE, _pd_at_least_2),
    Published("countdown", "4 numbers", "ar", 0.458, "GPT-2 85M", _YE, _four_numbers),
    Published("countdown", "4 numbers", "mdm", 0.915, "MDM 85M", _YE, _four_numbers),
    Published("sudoku", "9×9, ≥ 27 givens (1M collection)", "ar", 0.207, "AR", _YE, _nine_by_nine_easy),
    Published("sudoku", "9×9, ≥ 27 givens (1M collection)", "mdm", 1.00, "MDM 6M", _YE,
              _nine_by_nine_easy),
    Published("sudoku", "9×9, 17–26 givens (hard)", "ar", 0.872,
              "AR, solver-order training", _KIM, _nine_by_nine_hard,
              answer_order="solver"),
    Published("sudoku", "9×9, 17–26 givens (hard)", "mdm", 0.895, "MDM, margin decoding", _KIM,
              _nine_by_nine_hard),
)


# ---------------------------------------------------------------------- collecting
def find(paths: list[str | Path]) -> tuple[list[Path], list[Path]]:
    """(metrics.json files, run directories) under `paths`, each once, in a stable order."""
    metrics: dict[Path, None] = {}
    runs: dict[Path, None] = {}
    for path in map(Path, paths):
        if (path / "metrics.json").is_file():
            found = [path / "metrics.json"]
        elif (path / "config.yaml").is_file():
            found = sorted(path.glob("eval/*/metrics.json"))
            runs[path] = None
        elif path.is_dir():
            found = sorted(path.rglob("metrics.json"))
            runs.update((p.parent, None) for p in sorted(path.rglob("config.yaml")))
        else:
            raise FileNotFoundError(f"{path}: not a run or evaluation directory")
        for file in found:
            metrics[file] = None
            run = _run_of(file)
            if run is not None:
                runs[run] = None
    return list(metrics), list(runs)


def _run_of(metrics_file: Path) -> Path | None:
    """RUN/eval/NAME/metrics.json -> RUN when RUN holds a config."""
    run = metrics_file.parent.parent.parent
    return run if metrics_file.parent.parent.name == "eval" and (run / "config.yaml").is_file() else None


def load_result(metrics_file: Path) -> Result:
    m = json.loads(metrics_file.read_text())
    run = _run_of(metrics_file)
    config: dict[str, Any] = {}
    if run is not None:
        config = yaml.safe_load((run / "config.yaml").read_text()) or {}
    nfe = m.get("row_nfe_per_example")
    return Result(
        task=m.get("task") or config.get("task", "?"),
        data=m.get("data", "?"),
        model=m.get("model") or config.get("model", "?"),
        objective=m.get("objective") or config.get("objective", "?"),
        decoder=_decoder_label(m),
        steps=m.get("steps"),
        n=m["n"],
        correct=m["correct"],
        accuracy=m["accuracy"],
        nfe_per_example=nfe if nfe is not None else m.get("nfe_per_example"),
        examples_per_s=m.get("examples_per_s"),
        by=m.get("by", {}),
        run=str(run) if run is not None else "",
        path=str(metrics_file),
        answer_order=m.get("answer_order") or (config.get("data") or {}).get("answer_order") or "forward",
    )


def _decoder_label(m: dict[str, Any]) -> str:
    return decoder_label(m.get("decoder", "?"), m.get("decoder_settings") or {}, m.get("samples") or 1)


def decoder_label(name: str, settings: dict[str, Any], samples: int = 1) -> str:
    """`threshold tau=0.8`: the decoder and the settings it was not run at by default
    (steps is shown apart), so two settings never share a column; `k=8` with samples."""
    from dvar.decoders import decoder_class

    parts = [name]
    try:
        defaults = {f.name: f.default for f in dataclasses.fields(decoder_class(name))}
    except KeyError:
        defaults = {}
    for key, value in sorted(settings.items()):
        if key != "steps" and defaults.get(key, object()) != value:
            parts.append(f"{key}={value}")
    if samples > 1:
        parts.append(f"k={samples}")
    return " ".join(parts)


# ---------------------------------------------------------------------- tables
def _columns(results: list[Result]) -> dict[int, str]:
    """Column header per result; the run's name is added where two runs share a header."""
    runs_per_label: dict[str, set[str]] = {}
    for r in results:
        runs_per_label.setdefault(r.column, set()).add(r.run)
    return {
        id(r): r.column + (f" ({Path(r.run).name or r.path})" if len(runs_per_label[r.column]) > 1 else "")
        for r in results
    }


def _cell(accuracy: float, n: int) -> str:
    return f"{100 * accuracy:.1f}% (n={n})"


def results_table(results: list[Result]) -> list[list[str]]:
    """Header row, then one row per (task, test set): accuracy with n per column."""
    headers = _columns(results)
    columns = sorted(set(headers.values()), key=group_sort_key)
    rows: dict[tuple[str, str], dict[str, str]] = {}
    for r in results:
        rows.setdefault((r.task, r.data), {})[headers[id(r)]] = _cell(r.accuracy, r.n)
    table = [["task", "test set", *columns]]
    for (task, data), cells in sorted(rows.items()):
        table.append([task, data, *(cells.get(c, "") for c in columns)])
    return table


def published_table(results: list[Result]) -> list[list[str]]:
    """Each published number whose subset our breakdown keys cover, beside our accuracy on
    that subset (pooled over the matching keys) for every result of the same objective and
    answer order (the solver-order AR figure is compared with AR solver runs only)."""
    table = [["task", "test set", "subset", "ours", "ours: accuracy", "published", "published: accuracy",
              "source"]]
    for paper in PUBLISHED:
        for r in results:
            if r.task != paper.task or r.objective != paper.objective or r.answer_order != paper.answer_order:
                continue
            groups = [g for key, g in r.by.items() if paper.select(parse_group(key))]
            n = sum(g["n"] for g in groups)
            if not n:
                continue
            correct = sum(g["correct"] for g in groups)
            table.append([r.task, r.data, paper.subset, r.column, _cell(correct / n, n), paper.model,
                          f"{100 * paper.accuracy:.1f}%", paper.source])
    return table


def markdown(table: list[list[str]]) -> str:
    lines = ["| " + " | ".join(table[0]) + " |", "|" + "---|" * len(table[0])]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in table[1:]]
    return "\n".join(lines)


CSV_FIELDS = ("task", "test_set", "model", "objective", "answer_order", "decoder", "steps", "accuracy", "n",
              "correct", "nfe_per_example", "examples_per_s", "run", "source")


def csv_rows(results: list[Result]) -> list[dict[str, Any]]:
    """One row per evaluation (source `ours`), then every published number (`published`)."""
    def blank_if_none(value: Any) -> Any:
        return "" if value is None else value

    rows = [
        {"task": r.task, "test_set": r.data, "model": r.model, "objective": r.objective,
         "answer_order": r.answer_order, "decoder": r.decoder, "steps": blank_if_none(r.steps),
         "accuracy": r.accuracy, "n": r.n,
         "correct": r.correct, "nfe_per_example": blank_if_none(r.nfe_per_example),
         "examples_per_s": blank_if_none(r.examples_per_s), "run": r.run, "source": "ours"}
        for r in sorted(results, key=lambda r: (r.task, r.data, r.column, r.run))
    ]
    rows += [
        {"task": p.task, "test_set": p.subset, "model": p.model, "objective": p.objective,
         "answer_order": "", "decoder": "",
         "steps": "", "accuracy": p.accuracy, "n": "", "correct": "", "nfe_per_example": "",
         "examples_per_s": "", "run": "", "source": f"published: {p.source}"}
        for p in PUBLISHED
    ]
    return rows


# ---------------------------------------------------------------------- plots
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
    """Accuracy per breakdown key (PD, givens, ...) per test set, one line per column, AR
    solid and MDM dashed. Drawn where some result has two or more keys."""
    written, skipped = [], []
    headers = _columns(results)
    for (task, data), group in _by_test_set(results).items():
        if max(len(r.by) for r in group) < 2:
            skipped.append(f"accuracy by breakdown key for {task} on {data}: fewer than two keys")
            continue
        keys = sorted({k for r in group for k in r.by}, key=group_sort_key)
        fig, ax = plt.subplots(figsize=(6.4, 4.0))
        for r in sorted(group, key=lambda r: headers[id(r)]):
            xs = [i for i, k in enumerate(keys) if k in r.by]
            ax.plot(xs, [100 * r.by[keys[i]]["accuracy"] for i in xs],
                    "o-" if r.objective == "ar" else "s--", label=headers[id(r)])
        ax.set_xticks(range(len(keys)), keys, rotation=30 if len(keys) > 6 else 0)
        _accuracy_axis(ax, [g["accuracy"] for r in group for g in r.by.values()])
        ax.set_title(f"{task}: {data}", fontsize=9)
        ax.legend(fontsize=8)
        written.append(_save(fig, out / f"accuracy_by_group-{task}-{_slug(data)}.png"))
    return written, skipped


def plot_nfe(results: list[Result], out: Path) -> tuple[list[Path], list[str]]:
    """Accuracy vs model calls per problem, one line per run and decoder through its step
    counts; drawn where a test set has two or more evaluations with a call count."""
    written, skipped = [], []
    for (task, data), group in _by_test_set(results).items():
        counted = [r for r in group if r.nfe_per_example]
        if len(counted) < 2:
            skipped.append(f"accuracy vs NFE for {task} on {data}: fewer than two evaluations with NFE")
            continue
        lines: dict[tuple[str, str], list[Result]] = {}
        for r in counted:
            lines.setdefault((r.run or r.path, f"{r.model_label} {r.decoder}"), []).append(r)
        several_runs = len({run for run, _ in lines}) > len({label for _, label in lines})
        fig, ax = plt.subplots(figsize=(6.4, 4.0))
        for (run, label), points in sorted(lines.items(), key=lambda kv: kv[0][1]):
            points.sort(key=lambda r: r.nfe_per_example)
            ax.plot([r.nfe_per_example for r in points], [100 * r.accuracy for r in points],
                    "o-" if points[0].objective == "ar" else "s--",
                    label=label + (f" ({Path(run).name})" if several_runs else ""))
            for r in points if len(points) > 1 else []:
                if r.steps:
                    ax.annotate(f"T={r.steps}", (r.nfe_per_example, 100 * r.accuracy), fontsize=7,
                                textcoords="offset points", xytext=(3, 3))
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
            curves.setdefault(objective, []).append(
                (run.name, [r["step"] for r in rows], [r["loss"] for r in rows]))
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


# ---------------------------------------------------------------------- report
def write_report(paths: list[str | Path], out: str | Path) -> dict[str, Any]:
    """Write results.md, results.csv and the plots to `out`; returns what was written."""
    metrics, runs = find(paths)
    if not metrics:
        raise FileNotFoundError(f"no metrics.json under {', '.join(map(str, paths))}")
    results = [load_result(file) for file in metrics]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    plots: list[Path] = []
    skipped: list[str] = []
    for draw in (plot_breakdowns, plot_nfe, plot_sizes):
        drawn, missing = draw(results, out)
        plots += drawn
        skipped += missing
    drawn, missing = plot_losses(runs, out)
    plots += drawn
    skipped += missing

    with (out / "results.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_FIELDS)
        writer.writeheader()
        writer.writerows(csv_rows(results))
    beside = published_table(results)
    text = ["# Results", "",
            "Accuracy judged by each task's verifier, with the number of test problems; a column is",
            "model size, objective, decoder (settings other than its defaults) and decoding steps T.", "",
            markdown(results_table(results)), "", "## Beside the published numbers", ""]
    if len(beside) > 1:
        text += ["Our accuracy on the subset a published number was measured on (pooled over our",
                 "matching breakdown keys), and that number, labelled published.", "", markdown(beside)]
    else:
        text += ["No evaluated test set covers a subset with a published number "
                 f"({'; '.join(sorted({f'{p.task}: {p.subset}' for p in PUBLISHED}))})."]
    text += ["", "## Plots", ""]
    text += [f"![{p.stem}]({p.name})" for p in plots] or ["No plot had data."]
    if skipped:
        text += ["", "Not drawn (no data for them):", ""] + [f"- {reason}" for reason in skipped]
    text += ["", "## Sources", ""] + [f"- `{r.path}`" for r in results]
    (out / "results.md").write_text("\n".join(text) + "\n")
    return {"results": results, "plots": plots, "skipped": skipped, "runs": runs}
