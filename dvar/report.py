"""Gather evaluations into one report: `results.md`, `results.csv` and PNG plots.

    write_report(["runs/s4-mdm", "runs/s4-ar/eval/test-greedy"], "report/")

The plots are drawn by `dvar.plots`. An evaluation is a directory holding `metrics.json` (written by `dvar eval`); a run
directory (`config.yaml`) holds them under `eval/*/`, and its `train_log.jsonl` gives the
loss curve. Any other directory is searched for both. The paper's published numbers
(`PUBLISHED`) are shown beside ours where our breakdown keys cover the same subset.

Results are keyed by what they are, never by a directory's name: the task and test set
(rows), and the model, objective, answer order, decoder with its settings and steps
(columns), from metrics.json and the run's config.yaml. Evaluations whose runs differ only
in `seed` (and in their file paths: out_dir, data.train, data.valid) share a cell: the
mean accuracy, min–max and every seed. Runs that differ in another setting get columns of
their own, named by the settings that differ; evaluations that nothing recorded tells
apart (a lone eval directory, the same run evaluated twice) are named by their directory.

NFE per example is metrics.json's `nfe_per_example` everywhere (plots, results.csv): the
model calls one problem costs when decoded batch by batch (defined in `dvar.metrics`);
results.csv keeps `row_nfe_per_example`, a different quantity, under that name.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import yaml

from dvar.metrics import Breakdown, group_sort_key, parse_group


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
    nfe_per_example: float | None  # model calls one problem costs, decoded batch by batch
    examples_per_s: float | None
    by: dict[str, dict[str, Any]]
    run: str  # run directory ("" for a lone eval directory)
    path: str  # the metrics.json file
    answer_order: str = "forward"  # SPEC §9; named in the column when not forward
    seed: int | None = None  # the run's seed (None for a lone eval directory)
    # The run's config.yaml flattened (`train.lr`: 0.001), without seed and file paths
    # (out_dir, resume, data.train, data.valid): runs with equal settings are seeds of one.
    settings: dict[str, Any] = field(default_factory=dict)
    row_nfe_per_example: float | None = None  # calls that included the problem's own row

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


_NOT_SETTINGS = ("seed", "out_dir", "resume", "data.train", "data.valid")


def _flatten(mapping: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in mapping.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = tuple(value) if isinstance(value, list) else value
    return out


def read_metrics(path: str | Path) -> Result:
    """One evaluation: a metrics.json file (or its directory), with its run's config.yaml
    when it lies in RUN/eval/NAME/. ValueError naming the file for a file that is not a
    metrics.json."""
    metrics_file = Path(path)
    if metrics_file.is_dir():
        metrics_file = metrics_file / "metrics.json"
    try:
        m = json.loads(metrics_file.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{metrics_file}: not JSON ({error})") from None
    missing = [key for key in ("n", "correct", "accuracy") if not isinstance(m, dict) or key not in m]
    if missing:
        raise ValueError(f"{metrics_file}: not a metrics.json, no {', '.join(missing)}")
    run = _run_of(metrics_file)
    config: dict[str, Any] = {}
    if run is not None:
        config = yaml.safe_load((run / "config.yaml").read_text()) or {}
        if not isinstance(config, dict):
            raise ValueError(f"{run / 'config.yaml'}: expected a mapping")
    seed = config.get("seed", 0) if run is not None else None
    settings = {k: v for k, v in _flatten(config).items() if k not in _NOT_SETTINGS}
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
        nfe_per_example=m.get("nfe_per_example"),
        examples_per_s=m.get("examples_per_s"),
        by=m.get("by", {}),
        run=str(run) if run is not None else "",
        path=str(metrics_file),
        answer_order=m.get("answer_order") or (config.get("data") or {}).get("answer_order") or "forward",
        seed=seed,
        settings=settings,
        row_nfe_per_example=m.get("row_nfe_per_example"),
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
def _suffixes(results: list[Result]) -> dict[int, str]:
    """Per result, what tells it apart from the others with the same header in its row
    (task, test set): the settings its run differs in (`train.lr=0.0003`), or, where one
    setting would hold a seed twice, its directory. "" when nothing needs it."""
    def identity(r: Result) -> frozenset:
        return frozenset((k, repr(v)) for k, v in r.settings.items())

    cells: dict[tuple[str, str, str], dict[frozenset, list[Result]]] = {}
    for r in results:
        cells.setdefault((r.column, r.task, r.data), {}).setdefault(identity(r), []).append(r)
    out: dict[int, str] = {}
    for identities in cells.values():
        keys = sorted({k for members in identities.values() for k in members[0].settings})
        differing = [k for k in keys if len({repr(m[0].settings.get(k)) for m in identities.values()}) > 1]
        for members in identities.values():
            named = ", ".join(f"{k}={members[0].settings.get(k, '-')}" for k in differing)
            seeds = [r.seed for r in members]
            for r in members:
                where = _where(r, members) if len(seeds) != len(set(seeds)) else ""
                out[id(r)] = ", ".join(part for part in (named, where) if part)
    return {key: f" ({text})" if text else "" for key, text in out.items()}


def _where(r: Result, members: list[Result]) -> str:
    """The run directory, or the eval directory where one run has several evaluations."""
    if r.run and sum(m.run == r.run for m in members) == 1:
        return r.run
    return str(Path(r.path).parent)


def column_labels(results: list[Result]) -> dict[int, str]:
    """Column header per result (`Result.column` plus what tells it apart); results that
    differ only in seed share it."""
    suffixes = _suffixes(results)
    return {id(r): r.column + suffixes[id(r)] for r in results}


def series_labels(results: list[Result]) -> dict[int, str]:
    """Per result, its column header without the decoding steps (a line through steps)."""
    suffixes = _suffixes(results)
    return {id(r): f"{r.model_label} {r.decoder}{suffixes[id(r)]}" for r in results}


def _cell(accuracy: float, n: int) -> str:
    return f"{100 * accuracy:.1f}% (n={n})"


def seed_cell(results: list[Result]) -> str:
    """One cell: `90.0% (n=10)`, or over seeds the mean, min–max and every seed:
    `85.0% (80.0–90.0%, seeds 0, 1; n=10 each)`."""
    if len(results) == 1:
        return _cell(results[0].accuracy, results[0].n)
    ordered = sorted(results, key=lambda r: (r.seed is None, r.seed or 0))
    accuracies = [r.accuracy for r in ordered]
    ns = [r.n for r in ordered]
    n = f"{ns[0]} each" if len(set(ns)) == 1 else "/".join(map(str, ns))
    seeds = ", ".join("?" if r.seed is None else str(r.seed) for r in ordered)
    return (f"{100 * statistics.mean(accuracies):.1f}% ({100 * min(accuracies):.1f}–{100 * max(accuracies):.1f}%, "
            f"seeds {seeds}; n={n})")


def results_table(results: list[Result]) -> list[list[str]]:
    """Header row, then one row per (task, test set): accuracy with n per column, over
    seeds the mean, min–max and the seeds (`seed_cell`)."""
    headers = column_labels(results)
    columns = sorted(set(headers.values()), key=group_sort_key)
    rows: dict[tuple[str, str], dict[str, list[Result]]] = {}
    for r in results:
        rows.setdefault((r.task, r.data), {}).setdefault(headers[id(r)], []).append(r)
    table = [["task", "test set", *columns]]
    for (task, data), cells in sorted(rows.items()):
        table.append([task, data, *(seed_cell(cells[c]) if c in cells else "" for c in columns)])
    return table


def published_table(results: list[Result]) -> list[list[str]]:
    """Each published number whose subset our breakdown keys cover, beside our accuracy on
    that subset (pooled over the matching keys) for every result of the same objective and
    answer order (the solver-order AR figure is compared with AR solver runs only)."""
    table = [["task", "test set", "subset", "ours", "ours: accuracy", "published", "published: accuracy",
              "source"]]
    headers = column_labels(results)
    seeded = {label for label in headers.values() if sum(h == label for h in headers.values()) > 1}
    for paper in PUBLISHED:
        for r in results:
            if r.task != paper.task or r.objective != paper.objective or r.answer_order != paper.answer_order:
                continue
            groups = [g for key, g in r.by.items() if paper.select(parse_group(key))]
            n = sum(g["n"] for g in groups)
            if not n:
                continue
            correct = sum(g["correct"] for g in groups)
            label = headers[id(r)] + (f" seed {r.seed}" if headers[id(r)] in seeded and r.seed is not None else "")
            table.append([r.task, r.data, paper.subset, label, _cell(correct / n, n), paper.model,
                          f"{100 * paper.accuracy:.1f}%", paper.source])
    return table


def markdown(table: list[list[str]]) -> str:
    lines = ["| " + " | ".join(table[0]) + " |", "|" + "---|" * len(table[0])]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in table[1:]]
    return "\n".join(lines)


CSV_FIELDS = ("task", "test_set", "model", "objective", "answer_order", "decoder", "steps", "seed", "accuracy",
              "n", "correct", "nfe_per_example", "row_nfe_per_example", "examples_per_s", "column", "run",
              "source")


def csv_rows(results: list[Result]) -> list[dict[str, Any]]:
    """One row per evaluation (source `ours`), then every published number (`published`)."""
    def blank_if_none(value: Any) -> Any:
        return "" if value is None else value

    headers = column_labels(results)
    rows = [
        {"task": r.task, "test_set": r.data, "model": r.model, "objective": r.objective,
         "answer_order": r.answer_order, "decoder": r.decoder, "steps": blank_if_none(r.steps),
         "seed": blank_if_none(r.seed), "accuracy": r.accuracy, "n": r.n,
         "correct": r.correct, "nfe_per_example": blank_if_none(r.nfe_per_example),
         "row_nfe_per_example": blank_if_none(r.row_nfe_per_example),
         "examples_per_s": blank_if_none(r.examples_per_s), "column": headers[id(r)], "run": r.run,
         "source": "ours"}
        for r in sorted(results, key=lambda r: (r.task, r.data, headers[id(r)], r.seed or 0, r.run, r.path))
    ]
    rows += [
        {**{name: "" for name in CSV_FIELDS}, "task": p.task, "test_set": p.subset, "model": p.model,
         "objective": p.objective, "accuracy": p.accuracy, "source": f"published: {p.source}"}
        for p in PUBLISHED
    ]
    return rows


# ---------------------------------------------------------------------- report
def write_report(paths: list[str | Path], out: str | Path) -> dict[str, Any]:
    """Write results.md, results.csv and the plots to `out`; returns what was written."""
    metrics, runs = find(paths)
    if not metrics:
        raise FileNotFoundError(f"no metrics.json under {', '.join(map(str, paths))}")
    from dvar.plots import plot_breakdowns, plot_losses, plot_nfe, plot_sizes

    results = [read_metrics(file) for file in metrics]
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
            "model size, objective, decoder (settings other than its defaults) and decoding steps T;",
            "runs that differ only in seed share a cell: mean accuracy (min–max, the seeds).", "",
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
