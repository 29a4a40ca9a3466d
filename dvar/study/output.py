"""What a study writes from its summary: results.md, study.json and one plot per family
(with budgets, FAMILY-curve.png too: accuracy against training FLOPs; a data verdict,
NAME.png: accuracy and the loss gap against distinct training problems).

Every table and verdict is rebuilt from the metrics files at every call, so a study's
report never disagrees with its runs.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dvar.study.summary import stats
from dvar.study.verdicts import signed

RESULTS = "results.md"
SUMMARY = "study.json"


def pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}%"


def spread(stats: dict[str, float] | None) -> str:
    if not stats:
        return "–"
    if stats["min"] == stats["max"]:
        return pct(stats["mean"])
    return f"{pct(stats['mean'])} ({100 * stats['min']:.1f}–{100 * stats['max']:.1f})"


def _header(summary: dict[str, Any], seeds: list[int]) -> list[str]:
    lines = [f"# {summary.get('title') or summary['study']}", ""]
    if summary.get("description"):
        lines += [summary["description"].format(seeds=", ".join(map(str, seeds))), ""]
    wall = summary.get("wall_seconds")
    if wall is not None:
        trained = summary.get("train_seconds_total")
        lines += [f"Wall time of this call: {wall / 60:.1f} min ({summary.get('workers', 1)} worker(s); "
                  "finished runs and evaluations are reused, not timed again)"
                  + (f". Training time of every model in this report, as each run recorded it: "
                     f"{trained / 60:.1f} worker-minutes." if trained else "."), ""]
    return lines


def _setting_line(setting: dict[str, Any]) -> str:
    steps = (f"{setting['steps']} steps × {setting['batch_size']}" if setting["steps"]
             else f"each recipe's epochs, batch {setting['batch_size']}")
    epochs = setting.get("paper_epochs") or {}
    text = f"Paper: {setting['paper_setting']}. " if setting.get("paper_setting") else ""
    text += f"Here: `{setting['model']}` models, {steps} at lr {setting['lr']}, "
    if setting.get("paper"):
        text += f"the paper's data set `{setting['paper']}`"
    elif setting.get("test_of"):
        text += (f"{setting['train_size']} training problems per seed, tested on {setting['test_of']}'s "
                 f"held-out test problems (the same seed's)")
    else:
        text += f"{setting['train_size']} training / {setting['test_size']} test problems per seed"
    if epochs:
        text += f"; the paper trains MDM {epochs.get('mdm')} and AR {epochs.get('ar')} epochs"
    return text + "."


def _by_decoding(entry: dict[str, Any], by_decodings: list[str]) -> str | None:
    """The decoding a model shows by breakdown key: the first of `by_decodings` it has,
    else its first."""
    return next((d for d in by_decodings if d in entry["decodings"]), None) if by_decodings else next(
        iter(entry["decodings"]), None)


def family_markdown(fam: dict[str, Any], family: str, seeds: list[int], summary_by: list[str] = ()) -> list[str]:
    """One family: every model × decoding per seed, by breakdown key, public sets, the
    published numbers, the verdicts."""
    from dvar.metrics import group_sort_key, parse_group

    setting = fam["setting"]
    lines = [f"## {family}: {setting['description']}", "", _setting_line(setting), ""]
    lines += ["| model | decoding | steps × batch | " + " | ".join(f"seed {s}" for s in seeds)
              + " | mean (min–max) | well-formed, min over seeds |",
              "|---|---|---|" + "---|" * len(seeds) + "---|---|"]
    by_rows, public_rows = [], []
    for entry in fam["models"].values():
        compute = next(iter(entry["compute"].values()), {})
        steps = f"{compute.get('steps', '?')} × {compute.get('batch_size', '?')}"
        shown = _by_decoding(entry, summary_by)
        for key, tests in entry["decodings"].items():
            for stem, slot in tests.items():
                cells = " | ".join(pct(slot["seeds"][str(s)]["accuracy"]) if str(s) in slot["seeds"] else "–"
                                   for s in seeds)
                formed = slot.get("well_formed")
                row = (f"| {entry['label']} | {key} | {steps} | {cells} | {spread(slot['accuracy'])} | "
                       f"{pct(formed['min']) if formed else '–'} |")
                if stem == "test":
                    lines.append(row)
                    if key == shown and len(slot["by"]) > 1:
                        by_rows.append((entry["label"], key, slot["by"]))
                else:
                    public_rows.append((stem, row))
    if by_rows:
        keys = sorted({k for _, _, by in by_rows for k in by}, key=group_sort_key)
        lines += ["", "By " + ", ".join(parse_group(keys[0])) + ", mean (min–max) over seeds:", "",
                  "| model | decoding | " + " | ".join(keys) + " |", "|---|---|" + "---|" * len(keys)]
        lines += [f"| {label} | {key} | " + " | ".join(spread(by.get(k)) for k in keys) + " |"
                  for label, key, by in by_rows]
    if public_rows:
        lines += ["", "Public test sets (`../shared/testsets/`, never trained on):", "",
                  "| test set | model | decoding | steps × batch | " + " | ".join(f"seed {s}" for s in seeds)
                  + " | mean (min–max) | well-formed |", "|---|---|---|---|" + "---|" * len(seeds) + "---|---|"]
        lines += [f"| {stem} " + row for stem, row in public_rows]
    lines += _extra_scoring(fam, seeds)
    if fam["published"]:
        lines += ["", "Published at the paper's scale (not this setting): " + "; ".join(
            f"{p['objective'].upper()} {100 * p['accuracy']:.1f}% on {p['subset']} ({p['model']}; {p['source']})"
            for p in fam["published"]) + "."]
    else:
        lines += ["", "Published: no figure for this family in SPEC §6."]
    if fam.get("chance") is not None:
        lines += ["", f"Chance (a uniformly random answer of the answer's form, on the held-out test): "
                  f"{pct(fam['chance'])}."]
    lines += curve_markdown(fam, seeds)
    lines += ["", "Verdicts (computed from the table):", ""]
    lines += [f"- {v['label']}: {v['verdict']}" for v in fam["verdicts"].values()]
    return lines + [""]


def _extra_scoring(fam: dict[str, Any], seeds: list[int]) -> list[str]:
    """Further verdicts a task reports (countdown: `accuracy_reference`, the reference's
    looser checker), per model, decoding and test set."""
    from dvar.study.summary import stats

    rows = []
    for entry in fam["models"].values():
        for key, tests in entry["decodings"].items():
            for stem, slot in tests.items():
                extra = sorted({k for s in slot["seeds"].values() for k in s if k.startswith("accuracy_")})
                for name in extra:
                    values = [slot["seeds"][str(s)].get(name) for s in seeds if str(s) in slot["seeds"]]
                    cells = [pct(slot["seeds"][str(s)].get(name)) if str(s) in slot["seeds"] else "–" for s in seeds]
                    shown = [v for v in values if v is not None]
                    rows.append(f"| {name.removeprefix('accuracy_')} | {stem} | {entry['label']} | {key} | "
                                + " | ".join(cells) + f" | {spread(stats(shown)) if shown else '–'} |")
    if not rows:
        return []
    return ["", "Other scorings the task reports (`reference`: the reference's own checker, looser than "
            "dvar's), beside the strict accuracy above:", "",
            "| scoring | test set | model | decoding | " + " | ".join(f"seed {s}" for s in seeds)
            + " | mean (min–max) |", "|---|---|---|---|" + "---|" * len(seeds) + "---|", *rows]


def curve_markdown(fam: dict[str, Any], seeds: list[int]) -> list[str]:
    """Accuracy on the held-out test at every budget: the seed spread, then each seed."""
    curves = [(entry["label"], name, points["test"]) for entry in fam["models"].values()
              for name, points in entry.get("curve", {}).items() if "test" in points]
    if not curves:
        return []
    budgets = [(p["budget"], p["steps"]) for p in curves[0][2]]
    head = " | ".join(f"{b:g} ({steps} steps)" for b, steps in budgets)
    lines = ["", "Accuracy against training compute (held-out test; each budget a warmup-stable-decay branch "
             "off the whole budget's run, the same run as training that budget alone), mean (min–max) over seeds, "
             "then training FLOPs (mean):", "",
             f"| model | decoding | {head} |", "|---|---|" + "---|" * len(budgets)]
    for label, name, points in curves:
        lines.append(f"| {label} | {name} | " + " | ".join(spread(p["accuracy"]) for p in points) + " |")
    partial = fam.get("partial_credit_label")
    for label, name, points in curves if partial else ():
        if any(p.get("partial_credit") for p in points):
            lines.append(f"| {label} | {name}, {partial} | "
                         + " | ".join(spread(p.get("partial_credit")) for p in points) + " |")
    flops = [f"{p['flops']['mean']:.3g}" if p["flops"] else "?" for p in curves[0][2]]
    lines += ["| training FLOPs | | " + " | ".join(flops) + " |", "", "Each seed:", "",
              f"| model | decoding | seed | {head} |", "|---|---|---|" + "---|" * len(budgets)]
    for label, name, points in curves:
        for seed in seeds:
            cells = [pct(p["seeds"][str(seed)]["accuracy"]) if str(seed) in p["seeds"] else "–" for p in points]
            lines.append(f"| {label} | {name} | {seed} | " + " | ".join(cells) + " |")
    return lines


def plot_curve(family: str, fam: dict[str, Any], path: Path, by_decodings: list[str] = ()) -> Path | None:
    """Accuracy against training FLOPs, every model and decoding: the seed mean with its
    min–max band; with a breakdown (planning distance, givens), FAMILY-curve-by.png as
    well, one panel per key, each model's `_by_decoding`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    from dvar.metrics import group_sort_key

    curves = [(entry, name, points["test"]) for entry in fam["models"].values()
              for name, points in entry.get("curve", {}).items() if "test" in points]
    curves = [(e, n, [p for p in pts if p["flops"]]) for e, n, pts in curves]
    if not curves:
        return None

    def draw(ax: Any, points: list[dict[str, Any]], get: Callable[[dict[str, Any]], dict | None], label: str) -> None:
        rows = [(p["flops"]["mean"], get(p)) for p in points if get(p)]
        xs = [x for x, _ in rows]
        ax.plot(xs, [100 * s["mean"] for _, s in rows], "o-", label=label, markersize=3)
        ax.fill_between(xs, [100 * s["min"] for _, s in rows], [100 * s["max"] for _, s in rows], alpha=0.2)
        ax.set_xscale("log")
        ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())  # the budgets are the ticks
        ax.set_xticks(xs, [f"{x:.2g}" for x in xs], fontsize=7)
        ax.set_ylim(-3, 103)

    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for entry, name, points in curves:
        draw(ax, points, lambda p: p["accuracy"], f"{entry['label']} {name}")
    ax.set_xlabel("training FLOPs")
    ax.set_ylabel("accuracy (%), mean and min–max over seeds")
    ax.set_title(f"{family}: {fam['setting']['description']}", fontsize=9)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    shown = [(e, n, pts) for e, n, pts in curves if n == _by_decoding(e, by_decodings)]
    keys = sorted({k for _, _, pts in shown for p in pts for k in p["by"]}, key=group_sort_key)
    if len(keys) > 1:
        cols = min(4, len(keys))
        rows = -(-len(keys) // cols)
        fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.6 * rows), squeeze=False, sharey=True)
        for ax, key in zip(axes.flat, keys):
            for entry, name, points in shown:
                draw(ax, points, lambda p, key=key: p["by"].get(key), f"{entry['label']} {name}")
            ax.set_title(key, fontsize=8)
        for ax in list(axes.flat)[len(keys):]:
            ax.set_visible(False)
        axes.flat[0].legend(fontsize=6)
        fig.supxlabel("training FLOPs", fontsize=8)
        fig.supylabel("accuracy (%)", fontsize=8)
        fig.tight_layout()
        fig.savefig(path.with_name(path.stem + "-by.png"), dpi=90)
        plt.close(fig)
    return path


def results_markdown(summary: dict[str, Any], seeds: list[int]) -> str:
    lines = _header(summary, seeds)
    for family, fam in summary["families"].items():
        lines += family_markdown(fam, family, seeds, summary.get("by_decodings", []))
    if summary.get("verdicts"):
        lines += ["## Across families", ""]
        for name, verdict in summary["verdicts"].items():
            lines += data_axis_markdown(name, verdict)
        lines += ["Verdicts (computed from the tables above):", ""]
        lines += [f"- {v['label']}: {v['verdict']}" for v in summary["verdicts"].values()] + [""]
    return "\n".join(lines) + "\n"


def data_axis_markdown(name: str, verdict: dict[str, Any]) -> list[str]:
    """A data verdict's table (none before it has numbers): each model's accuracy per seed
    at each number of training problems (and distinct ones), with the epochs that makes at
    equal compute and the mean held-out − training loss (the overfitting signal);
    `NAME.png` plots it."""
    rows = [row for model_rows in (verdict.get("rows") or {}).values() for row in model_rows]
    if verdict.get("kind") != "data" or not rows:
        return []
    seeds = sorted({s for row in rows for s in row["accuracy"]}, key=int)
    lines = [f"{verdict['label'][0].upper()}{verdict['label'][1:]} ([{name}.png]({name}.png)):", "",
             "| model | training problems | distinct | epochs | " + " | ".join(f"seed {s}" for s in seeds)
             + " | mean (min–max) | held-out − train loss |",
             "|---|---|---|---|" + "---|" * len(seeds) + "---|---|"]
    for row in rows:
        accs = list(row["accuracy"].values())
        gaps = [g for g in row["heldout_minus_train_loss"].values() if g is not None]
        gap = signed(sum(gaps) / len(gaps)) if gaps else "–"
        if gaps and not row.get("loss_gap_measured", True):
            gap += " (logged)"
        distinct = f"{row['distinct']:,}" if row.get("distinct") else "–"
        lines.append(f"| {row['label']} | {row['train_size']:,} | {distinct} | {row['epochs']:.3g} | "
                     + " | ".join(pct(row["accuracy"].get(s)) for s in seeds) + f" | {spread(stats(accs))} | {gap} |")
    note = ("Distinct: the training problems that differ after `Task.canonical` (seed mean, counted in each "
            "run's fit.json); epochs: steps × batch over training problems. Held-out − train loss: the "
            "finished model's loss on the held-out test problems minus its loss on as many of its training "
            "problems, measured alike (`fit.json`: eval mode, so no dropout or input masking, the same fixed "
            "MDM masks), seed mean; each model in its own loss, so read a model against itself across data "
            "sizes: a gap that widens as the training problems shrink is overfitting.")
    if any(not row.get("loss_gap_measured", True) for row in rows):
        note += (" (logged): a run without fit.json, read off its logs instead — the last validation loss minus "
                 "the last logged training loss, which a model trained with dropout or input masking logs "
                 "under them (its gap then starts below zero).")
    return lines + ["", note, ""]


def plot_data_axis(verdict: dict[str, Any], path: Path) -> Path | None:
    """A data verdict against distinct training problems (log scale; the families' training
    problems where a fit.json did not count them): each model's accuracy (seed mean,
    min–max error bars) and its mean held-out − training loss."""
    rows_by_model = {ref: sorted(rows, key=lambda r: r["train_size"])
                     for ref, rows in (verdict.get("rows") or {}).items() if rows}
    if verdict.get("kind") != "data" or not rows_by_model:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    distinct = all(r.get("distinct") for rows in rows_by_model.values() for r in rows)
    x_key = "distinct" if distinct else "train_size"
    fig, (acc_ax, gap_ax) = plt.subplots(1, 2, figsize=(9.6, 3.8))
    for ref, rows in rows_by_model.items():
        label = f"{rows[0]['label']} {ref.partition('/')[2]}"
        xs = [r[x_key] for r in rows]
        accs = [stats(list(r["accuracy"].values())) for r in rows]
        means = [100 * a["mean"] for a in accs]
        errors = [[m - 100 * a["min"] for m, a in zip(means, accs)], [100 * a["max"] - m for m, a in zip(means, accs)]]
        acc_ax.errorbar(xs, means, yerr=errors, fmt="o-", capsize=3, label=label)
        gaps = [[g for g in r["heldout_minus_train_loss"].values() if g is not None] for r in rows]
        shown = [(x, sum(g) / len(g)) for x, g in zip(xs, gaps) if g]
        if shown:
            gap_ax.plot([x for x, _ in shown], [g for _, g in shown], "o-", label=label)
    ticks = sorted({r[x_key] for rows in rows_by_model.values() for r in rows})
    for ax in (acc_ax, gap_ax):
        ax.set_xscale("log")
        ax.minorticks_off()
        ax.set_xticks(ticks, [f"{x / 1000:.3g}k" if x >= 1000 else str(x) for x in ticks])
        ax.set_xlabel(f"{'distinct ' if distinct else ''}training problems (same compute)")
    acc_ax.set_ylabel("accuracy (%), mean and min–max over seeds")
    acc_ax.set_ylim(-3, 103)
    gap_ax.set_ylabel("held-out − training loss, seed mean")
    gap_ax.axhline(0, color="grey", linewidth=0.5)
    acc_ax.legend(fontsize=7, loc="best")
    fig.suptitle(verdict["label"], fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_family(family: str, fam: dict[str, Any], path: Path, by_decodings: list[str] = ()) -> Path | None:
    """Accuracy by breakdown key (or overall) of each model's `_by_decoding`, mean over
    seeds with min–max error bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from dvar.metrics import group_sort_key, parse_group

    series = []
    for entry in fam["models"].values():
        shown = entry["decodings"].get(_by_decoding(entry, by_decodings), {})
        if "test" in shown:
            series.append((entry["label"], shown["test"]))
    if not series:
        return None
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    keys = sorted({k for _, slot in series for k in slot["by"]}, key=group_sort_key)
    use_by = len(keys) > 1
    for index, (label, slot) in enumerate(series):
        if use_by:
            xs = [k for k in keys if k in slot["by"]]
            points, positions = [slot["by"][k] for k in xs], [keys.index(k) for k in xs]
        else:
            points, positions = [slot["accuracy"]], [index]
        means = [100 * s["mean"] for s in points]
        errors = [[100 * (s["mean"] - s["min"]) for s in points], [100 * (s["max"] - s["mean"]) for s in points]]
        ax.errorbar(positions, means, yerr=errors, fmt="o-" if use_by else "o", capsize=3, label=label)
    if use_by:
        ax.set_xticks(range(len(keys)), keys)
        ax.set_xlabel(", ".join(parse_group(keys[0])))
    else:
        ax.set_xticks(range(len(series)), [label for label, _ in series], rotation=20, ha="right")
    ax.set_ylabel("accuracy (%), mean and min–max over seeds")
    ax.set_ylim(-3, 103)
    ax.set_title(f"{family}: {fam['setting']['description']}", fontsize=9)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def write_report(out: Path, summary: dict[str, Any], seeds: list[int]) -> None:
    """results.md, study.json (atomically) and FAMILY.png under `out`."""
    (out / RESULTS).write_text(results_markdown(summary, seeds))
    tmp = out / (SUMMARY + ".tmp")
    tmp.write_text(json.dumps(summary, indent=2, default=str) + "\n")
    os.replace(tmp, out / SUMMARY)
    for family, fam in summary["families"].items():
        plot_family(family, fam, out / f"{family}.png", summary.get("by_decodings", []))
        plot_curve(family, fam, out / f"{family}-curve.png", summary.get("by_decodings", []))
    for name, verdict in (summary.get("verdicts") or {}).items():
        plot_data_axis(verdict, out / f"{name}.png")
