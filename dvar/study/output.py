"""What a study writes from its summary: results.md, study.json and one plot per family.

Every table and verdict is rebuilt from the metrics files at every call, so a study's
report never disagrees with its runs.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

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
    text = (f"Paper: {setting['paper_setting']}. Here: `{setting['model']}` models, {steps} at lr "
            f"{setting['lr']}, ")
    text += (f"the paper's data set `{setting['paper']}`" if setting.get("paper")
             else f"{setting['train_size']} training / {setting['test_size']} test problems per seed")
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
    if fam["published"]:
        lines += ["", "Published at the paper's scale (not this setting): " + "; ".join(
            f"{p['objective'].upper()} {100 * p['accuracy']:.1f}% on {p['subset']} ({p['model']}; {p['source']})"
            for p in fam["published"]) + "."]
    else:
        lines += ["", "Published: no figure for this family in SPEC §6."]
    lines += ["", "Verdicts (computed from the table):", ""]
    lines += [f"- {v['label']}: {v['verdict']}" for v in fam["verdicts"].values()]
    return lines + [""]


def results_markdown(summary: dict[str, Any], seeds: list[int]) -> str:
    lines = _header(summary, seeds)
    for family, fam in summary["families"].items():
        lines += family_markdown(fam, family, seeds, summary.get("by_decodings", []))
    return "\n".join(lines) + "\n"


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
