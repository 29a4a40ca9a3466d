"""Verdicts a study file asks for, computed from the per-seed numbers of its summary.

    {kind: compare, a: mdm/topk, b: ar/greedy}        who is ahead on every seed
    {kind: compare, a: mdm/topk, b_role: control}     ... against each model of a role
    {kind: bars, group: pd, bars: [{model: mdm/topk, at_least: 0.9},
                                   {model: ar/greedy, from: 2, below: 0.75}]}
                                                      a finding, seed by seed
    {kind: well_formed, models: {mdm: topk, ar: greedy}, bar: 0.95}
                                                      the answer's form learned
    {kind: reach, a: mdm/topk, b: ar/greedy, thresholds: [0.5, 0.9]}
                                                      families with budgets: the compute
                                                      each needs to reach each accuracy,
                                                      A = log10(C_b / C_a), who leads at
                                                      each budget and where they cross

    {kind: gap, a: mdm/topk, b: ar/greedy, others: [ar-input-mask/greedy, ...]}
                                                      the share of a's lead over b that
                                                      each other model reaches: does a
                                                      regularized AR close the gap, which
                                                      ablation of the MDM loses its lead
    {kind: saturation, models: [mdm/topk, ar/greedy]} families with budgets: where, in
                                                      epochs, each model stops gaining
    {kind: data, families: [F1, F2, ...], models: [mdm/topk, ...]}
                                                      across families that differ only in
                                                      their training problems:
                                                      accuracy against training data at
                                                      equal compute, the held-out/train
                                                      loss gap (`study_verdicts`)

A reference is MODEL/DECODING, read on the family's held-out test set ("test"). A
compare verdict is listed when both of its models were trained (or `always: true`); a
verdict may be limited to some `families`.
"""

from __future__ import annotations

import math
import statistics
from typing import Any

TIE = 0.02  # an accuracy difference within 2 points on a seed is a tie


def per_seed(fam: dict[str, Any], ref: str, stem: str = "test") -> dict[str, dict]:
    model, _, decoding = ref.partition("/")
    try:
        return fam["models"][model]["decodings"][decoding][stem]["seeds"]
    except KeyError:
        return {}


def _points(diffs: list[float]) -> str:
    return ", ".join(f"{100 * d:+.1f}" for d in diffs) + " points"


def compare(a: dict[str, dict], b: dict[str, dict], label_a: str, label_b: str,
            verb: str = "ahead") -> dict[str, Any]:
    """`a` against `b` seed by seed: who is ahead (more than TIE) on every seed (`winner`:
    "a", "b", or None where mixed); `verb` says what being ahead means."""
    seeds = sorted(set(a) & set(b), key=int)
    diffs = [a[s]["accuracy"] - b[s]["accuracy"] for s in seeds]
    if not diffs:
        return {"verdict": "not measured", "seeds": [], "diffs": [], "winner": None}
    every = "on every seed" if len(seeds) > 1 else f"on the one seed run so far (seed {seeds[0]})"
    winner = None
    if all(d > TIE for d in diffs):
        text, winner = f"{label_a} {verb} {every} ({_points(diffs)})", "a"
    elif all(d < -TIE for d in diffs):
        text, winner = f"{label_b} {verb} {every} ({_points([-d for d in diffs])})", "b"
    else:
        text = f"not shown: no side {verb} on every seed ({label_a} − {label_b}: {_points(diffs)})"
    return {"verdict": text, "seeds": seeds, "diffs": diffs, "winner": winner}


def _group_value(key: str, group: str) -> int | None:
    """The integer value of `group` in a breakdown key ("pd=3" -> 3), else None."""
    from dvar.metrics import parse_group

    value = parse_group(key).get(group)
    return value if isinstance(value, int) else None


def _bar_fails(by: dict[str, float], bar: dict[str, Any], group: str) -> list[str]:
    """The breakdown keys of `group` in the bar's range where the bar does not hold."""
    failing = []
    for key, accuracy in by.items():
        value = _group_value(key, group)
        if value is None or value < bar.get("from", value) or value > bar.get("upto", value):
            continue
        if "at_least" in bar and accuracy < bar["at_least"] or "below" in bar and accuracy >= bar["below"]:
            failing.append(key)
    return failing


def bars(fam: dict[str, Any], spec: dict[str, Any], labels: dict[str, str]) -> dict[str, Any]:
    """Every bar on every seed that has all the bars' models: shown where all hold."""
    group = spec["group"]
    series = [(bar, per_seed(fam, bar["model"])) for bar in spec["bars"]]
    seeds = sorted(set.intersection(*(set(s) for _, s in series)), key=int) if series else []
    results = {}
    for seed in seeds:
        reasons = []
        for bar, by_seed in series:
            failing = _bar_fails(by_seed[seed]["by"], bar, group)
            if failing:
                model = labels.get(bar["model"].split("/")[0], bar["model"])
                rule = (f"below {100 * bar['at_least']:.0f}%" if "at_least" in bar
                        else f"at or above {100 * bar['below']:.0f}%")
                reasons.append(f"{model} {rule} at {', '.join(failing)}")
        results[seed] = {"shown": not reasons, "reasons": reasons}
    shown = [s for s, v in results.items() if v["shown"]]
    text = f"shown on {len(shown)} of {len(results)} seeds ({spec.get('says', 'every bar held')})"
    if len(shown) < len(results) or not results:
        text = "not shown on every seed: " + text
    return {"verdict": text, "per_seed": results}


def well_formed(fam: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
    """Did the models learn the answer's form (>= bar well-formed on every seed)?"""
    bar = float(spec.get("bar", 0.95))
    low = {}
    for name, decoding in spec["models"].items():
        slot = fam["models"].get(name, {}).get("decodings", {}).get(decoding, {}).get("test")
        formed = slot and slot.get("well_formed")
        if formed and formed["min"] < bar:
            low[name] = formed["min"]
    who = "both write" if len(spec["models"]) == 2 else "every model writes"
    if not low:
        return {"verdict": f"{who} >= {100 * bar:.0f}% well-formed answers on every seed", "low": low}
    return {"verdict": "format NOT learned on every seed: " + ", ".join(
        f"{n.upper()} {100 * v:.1f}% well-formed at worst" for n, v in low.items()), "low": low}


def reach_flops(points: list[tuple[float, float]], threshold: float) -> tuple[float | None, bool]:
    """The training FLOPs at which a curve [(flops, accuracy), ...] (ascending compute)
    first reaches `threshold`: interpolated linearly in log FLOPs between the budgets on
    either side; (flops, True) when already reached at the smallest budget (an upper
    bound), (None, False) when never reached."""
    previous = None
    for flops, accuracy in points:
        if accuracy >= threshold:
            if previous is None:
                return flops, True
            (f0, a0), (f1, a1) = previous, (flops, accuracy)
            share = (threshold - a0) / (a1 - a0)
            return 10 ** (math.log10(f0) + share * (math.log10(f1) - math.log10(f0))), False
        previous = (flops, accuracy)
    return None, False


def _flops_text(found: tuple[float | None, bool]) -> str:
    flops, first = found
    return "not reached" if flops is None else f"{'≤ ' if first else ''}{flops:.2g} FLOPs"


def reach(fam: dict[str, Any], spec: dict[str, Any], labels: dict[str, str]) -> dict[str, Any]:
    """Compute to reach each threshold per seed and on the seed-mean curve, the ratio A, and
    which model leads at each budget (TIE as in `compare`)."""
    names = {}
    curves = {}
    for side in ("a", "b"):
        model, _, decoding = spec[side].partition("/")
        names[side] = spec.get(f"{side}_label", labels.get(model, model))
        curves[side] = fam["models"].get(model, {}).get("curve", {}).get(decoding, {}).get("test", [])
    if not curves["a"] or not curves["b"]:
        return {"verdict": "not measured (no curve for both models)", "thresholds": {}, "leads": []}
    seeds = sorted(set.intersection(*(set(p["seeds"]) for c in curves.values() for p in c)), key=int)

    def series(side: str, seed: str | None) -> list[tuple[float, float]]:
        if seed is None:
            return [(p["flops"]["mean"], p["accuracy"]["mean"]) for p in curves[side] if p["flops"]]
        return [(p["seeds"][seed]["flops"], p["seeds"][seed]["accuracy"]) for p in curves[side]
                if p["seeds"][seed]["flops"]]

    thresholds, texts = {}, []
    for threshold in spec.get("thresholds", [0.5, 0.9]):
        row: dict[str, Any] = {"seeds": {}}
        for seed in [*seeds, None]:
            a, b = reach_flops(series("a", seed), threshold), reach_flops(series("b", seed), threshold)
            ratio = math.log10(b[0] / a[0]) if a[0] and b[0] and not (a[1] and b[1]) else None
            bound = _bound(a[0], b[0], series("a", seed), series("b", seed))
            if ratio is not None and a[1] != b[1]:
                # One side reached the threshold at its smallest budget, so its compute is an
                # upper bound: C_b ≤ x makes A ≤ log10(x / C_a); C_a ≤ y makes A ≥ log10(C_b / y).
                bound, ratio = ("≤" if b[1] else "≥", ratio), None
            cell = {"a": a[0], "a_upper_bound": a[1], "b": b[0], "b_upper_bound": b[1], "A": ratio,
                    "A_bound": bound}
            if seed is None:
                row["mean_curve"] = cell
            else:
                row["seeds"][seed] = cell
        thresholds[str(threshold)] = row
        per_seed = ", ".join(f"{c['A']:+.2f}" if c["A"] is not None else
                             f"{c['A_bound'][0]} {c['A_bound'][1]:+.2f}" if c["A_bound"] else "n/a"
                             for c in row["seeds"].values())
        mean = row["mean_curve"]
        texts.append(f"{100 * threshold:.0f}%: {names['a']} {_flops_text((mean['a'], mean['a_upper_bound']))}"
                     f", {names['b']} {_flops_text((mean['b'], mean['b_upper_bound']))} (seed-mean "
                     f"curves); A = log10(C_{names['b']}/C_{names['a']}) per seed: {per_seed}")
    leads = []
    for pa, pb in zip(curves["a"], curves["b"]):
        result = compare({s: pa["seeds"][s] for s in seeds}, {s: pb["seeds"][s] for s in seeds},
                         names["a"], names["b"])
        diffs = result["diffs"]
        side = "a" if diffs and all(d > TIE for d in diffs) else "b" if diffs and all(d < -TIE for d in diffs) else ""
        leads.append({"budget": pa["budget"], "steps": pa["steps"], "leader": side, **result})
    lead_text = "; ".join(f"{p['steps']} steps: {names[p['leader']] if p['leader'] else 'no side on every seed'}"
                          for p in leads)
    crossing = "the lead changes sides" if _crosses(leads) else "no crossing within the budget"
    return {"verdict": " | ".join(texts) + f" | ahead on every seed: {lead_text} ({crossing})",
            "thresholds": thresholds, "leads": leads, "seeds": seeds}


def _bound(a: float | None, b: float | None, series_a: list, series_b: list) -> tuple[str, float] | None:
    """Where one side reaches the threshold and the other does not within its budget: A is
    below (or above) log10 of the reached side's compute over the other's largest."""
    if a is None and b is not None and series_a:
        return ("<", math.log10(b / series_a[-1][0]))
    if b is None and a is not None and series_b:
        return (">", math.log10(series_b[-1][0] / a))
    return None


def _crosses(leads: list[dict[str, Any]]) -> bool:
    sides = [p["leader"] for p in leads if p["leader"]]
    return any(x != y for x, y in zip(sides, sides[1:]))


def gap(fam: dict[str, Any], spec: dict[str, Any], labels: dict[str, str]) -> dict[str, Any]:
    """Per seed, the share (c − b) / (a − b) of a's lead over b that each other model c
    reaches: 1 closes the gap, 0 is b's level. Only seeds where a leads b by more than TIE
    count; with none, there is no gap to share."""
    a, b = per_seed(fam, spec["a"]), per_seed(fam, spec["b"])
    name = lambda ref: labels.get(ref.split("/")[0], ref)
    lead_seeds = [s for s in sorted(set(a) & set(b), key=int) if a[s]["accuracy"] - b[s]["accuracy"] > TIE]
    others: dict[str, Any] = {}
    texts = []
    for ref in spec["others"]:
        c = per_seed(fam, ref)
        seeds = [s for s in lead_seeds if s in c]
        if not seeds:
            continue
        shares = [(c[s]["accuracy"] - b[s]["accuracy"]) / (a[s]["accuracy"] - b[s]["accuracy"]) for s in seeds]
        behind = [a[s]["accuracy"] - c[s]["accuracy"] for s in seeds]
        if all(d <= TIE for d in behind):
            word = f"reaches {name(spec['a'])} on every seed"
        elif all(c[s]["accuracy"] - b[s]["accuracy"] > TIE for s in seeds):
            word = f"above {name(spec['b'])}, below {name(spec['a'])}" if all(d > TIE for d in behind) else \
                f"above {name(spec['b'])} on every seed"
        elif all(c[s]["accuracy"] - b[s]["accuracy"] < -TIE for s in seeds):
            word = f"below {name(spec['b'])} on every seed"
        else:
            word = f"not above {name(spec['b'])} on every seed"
        others[ref] = {"seeds": seeds, "shares": shares, "behind": behind, "says": word}
        texts.append(f"{name(ref)}: {', '.join(f'{round(100 * x)}%' for x in shares)} of the gap ({word})")
    if not lead_seeds:
        return {"verdict": f"no gap: {name(spec['a'])} is not ahead of {name(spec['b'])} by more than "
                           f"{100 * TIE:.0f} points on any seed", "others": others, "seeds": []}
    # The model with the smallest share on every seed they all have (for ablations of a:
    # the part whose removal costs a's lead most).
    common = [s for s in lead_seeds if all(s in o["seeds"] for o in others.values())]
    lowest = {min(others, key=lambda ref: others[ref]["shares"][others[ref]["seeds"].index(s)]) for s in common}
    least = lowest.pop() if len(others) > 1 and len(lowest) == 1 else None
    head = (f"{name(spec['a'])} leads {name(spec['b'])} by "
            f"{_points([a[s]['accuracy'] - b[s]['accuracy'] for s in lead_seeds])} on seed(s) {', '.join(lead_seeds)}")
    least_text = f"; the smallest share on every seed: {name(least)}" if least else ""
    return {"verdict": f"{head}; share of that lead per seed — " + "; ".join(texts) + least_text,
            "others": others, "seeds": lead_seeds, "least": least}


def saturation(fam: dict[str, Any], spec: dict[str, Any], labels: dict[str, str]) -> dict[str, Any]:
    """Where, in epochs (steps × batch / training problems), each model's curve stops
    gaining: the first budget from which no later budget adds more than TIE on any seed;
    "still gaining" when the last step of the curve adds more than TIE on some seed."""
    train_size = fam["setting"].get("train_size") or 0
    batch = fam["setting"].get("batch_size") or 0
    results, texts = {}, []
    for ref in spec["models"]:
        model, _, decoding = ref.partition("/")
        points = fam["models"].get(model, {}).get("curve", {}).get(decoding, {}).get("test", [])
        if len(points) < 2:
            continue
        seeds = sorted(set.intersection(*(set(p["seeds"]) for p in points)), key=int)
        epochs = [p["steps"] * batch / train_size if train_size else None for p in points]
        gains = [[points[i + 1]["seeds"][s]["accuracy"] - points[i]["seeds"][s]["accuracy"] for s in seeds]
                 for i in range(len(points) - 1)]
        flat_from = len(points) - 1
        while flat_from > 0 and all(g <= TIE for g in gains[flat_from - 1]):
            flat_from -= 1
        label = labels.get(model, model)
        at = lambda i: f"{epochs[i]:.2g} epochs ({points[i]['steps']} steps)" if epochs[i] else f"{points[i]['steps']} steps"
        if flat_from == len(points) - 1:
            text = f"{label}: still gaining at {at(flat_from)} (last budget: {_points(gains[-1])})"
        else:
            text = f"{label}: stops gaining at {at(flat_from)} (no later budget adds more than {100 * TIE:.0f} points on any seed)"
        results[ref] = {"stops_at": None if flat_from == len(points) - 1 else points[flat_from]["steps"],
                        "epochs": epochs, "gains": gains, "seeds": seeds}
        texts.append(text)
    return {"verdict": "; ".join(texts) if texts else "not measured (no curve)", "models": results}


def study_verdicts(study: Any, summary: dict[str, Any]) -> dict[str, Any]:
    """The study's verdicts across families (kind `data`): name -> {label, verdict, ...}."""
    out = {}
    for spec in study.verdicts:
        if spec["kind"] == "data":
            out[spec["name"]] = {"label": spec.get("label", spec["name"]), "kind": "data", **data_axis(summary, spec)}
    return out


def data_axis(summary: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
    """Families that differ only in their training problems, at equal compute: each model's
    accuracy per seed against training problems (how many, how many distinct where its
    fit.json counted them, and epochs), the gap between its held-out and training loss,
    and who leads at each data size."""
    families = [f for f in spec["families"] if f in summary["families"]]
    rows: dict[str, list[dict[str, Any]]] = {}
    texts = []
    for ref in spec["models"]:
        model = ref.split("/")[0]
        for name in families:
            fam = summary["families"][name]
            entry = fam["models"].get(model)
            seeds = per_seed(fam, ref)
            if not entry or not seeds:
                continue
            setting = fam["setting"]
            gaps = {s: _loss_gap(c) for s, c in entry.get("compute", {}).items()}
            distinct = [c["fit"].get("distinct_train_problems") for c in entry.get("compute", {}).values()
                        if c.get("fit")]
            rows.setdefault(ref, []).append({
                "family": name, "label": _label(summary, name, ref), "train_size": setting["train_size"],
                "distinct": round(statistics.fmean(distinct)) if distinct and None not in distinct else None,
                "epochs": setting["steps"] * setting["batch_size"] / setting["train_size"],
                "accuracy": {s: v["accuracy"] for s, v in seeds.items()},
                "heldout_minus_train_loss": {s: gap for s, (gap, _) in gaps.items()},
                "loss_gap_measured": all(measured for gap, measured in gaps.values() if gap is not None)})
        if ref in rows:
            label = _label(summary, rows[ref][0]["family"], ref)
            parts = []
            for row in sorted(rows[ref], key=lambda r: -r["train_size"]):
                accs = list(row["accuracy"].values())
                loss_gaps = [g for g in row["heldout_minus_train_loss"].values() if g is not None]
                gap_text = f", held-out − train loss {signed(statistics.fmean(loss_gaps))}" if loss_gaps else ""
                distinct = f"{row['distinct']:,} distinct, " if row["distinct"] else ""
                parts.append(f"{row['train_size']:,} problems ({distinct}{row['epochs']:.2g} epochs): "
                             f"{100 * statistics.fmean(accs):.1f}% ({100 * min(accs):.1f}–{100 * max(accs):.1f})"
                             f"{gap_text}")
            texts.append(f"{label}: " + "; ".join(parts))
    leads = []
    if len(rows) >= 2:
        (ref_a, a_rows), (ref_b, b_rows) = list(rows.items())[:2]
        for ra in a_rows:
            rb = next((r for r in b_rows if r["family"] == ra["family"]), None)
            if rb:
                result = compare({s: {"accuracy": v} for s, v in ra["accuracy"].items()},
                                 {s: {"accuracy": v} for s, v in rb["accuracy"].items()},
                                 _label(summary, ra["family"], ref_a), _label(summary, rb["family"], ref_b))
                leads.append({"family": ra["family"], "train_size": ra["train_size"], **result})
        texts.append("at each data size: " + "; ".join(f"{r['train_size']:,}: {r['verdict']}" for r in leads))
    losses = _losses(summary, rows)
    if losses:
        texts.append("as the data shrinks: " + "; ".join(loss["verdict"] for loss in losses))
    return {"verdict": " | ".join(texts) if texts else "not measured", "rows": rows, "leads": leads,
            "losses": losses}


def _losses(summary: dict[str, Any], rows: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """For the first two models, each smaller data size against the largest: each one's
    change in accuracy per seed, and which of them loses less (more than TIE) on every seed."""
    if len(rows) < 2:
        return []
    (ref_a, a_rows), (ref_b, b_rows) = list(rows.items())[:2]
    start, changes = {}, {}
    for ref, model_rows in ((ref_a, a_rows), (ref_b, b_rows)):
        top, *smaller = sorted(model_rows, key=lambda r: -r["train_size"])
        start[ref] = top["train_size"]
        changes[ref] = {row["train_size"]: {s: v - top["accuracy"][s] for s, v in row["accuracy"].items()
                                            if s in top["accuracy"]} for row in smaller}
    if start[ref_a] != start[ref_b]:
        return []
    label_a, label_b = _label(summary, a_rows[0]["family"], ref_a), _label(summary, b_rows[0]["family"], ref_b)
    out = []
    for size in sorted(set(changes[ref_a]) & set(changes[ref_b]), reverse=True):
        a, b = changes[ref_a][size], changes[ref_b][size]
        if not set(a) & set(b):
            continue
        result = compare({s: {"accuracy": v} for s, v in a.items()}, {s: {"accuracy": v} for s, v in b.items()},
                         label_a, label_b, verb="loses less")
        seeds = result["seeds"]
        says = result["verdict"] if result["winner"] else "neither loses less on every seed"
        out.append({"from": start[ref_a], "to": size, "a": a, "b": b, "seeds": seeds,
                    "verdict": f"from {start[ref_a]:,} to {size:,} problems, {label_a} "
                               f"{_points([a[s] for s in seeds])}, {label_b} {_points([b[s] for s in seeds])}: "
                               f"{says}"})
    return out


def signed(value: float) -> str:
    """A loss difference to 3 decimals with its sign; one that rounds to zero is +0.000."""
    return f"{round(value, 3) or 0.0:+.3f}"


def _loss_gap(compute: dict[str, Any]) -> tuple[float | None, bool]:
    """A run's held-out − training loss and whether it was measured alike on both (its
    fit.json: eval mode, the same draws) rather than read off its logs (the validation
    loss at the end minus the last logged training loss, which a model trained with
    corruption or dropout logs under them)."""
    if compute.get("fit"):
        return compute["fit"]["heldout_minus_train"], True
    if compute.get("final_loss") is not None and compute.get("final_valid_loss") is not None:
        return compute["final_valid_loss"] - compute["final_loss"], False
    return None, False


def _label(summary: dict[str, Any], family: str, ref: str) -> str:
    model = ref.split("/")[0]
    return summary["families"][family]["models"].get(model, {}).get("label", model)


def family_verdicts(study: Any, family: str, fam: dict[str, Any]) -> dict[str, Any]:
    """The study's verdicts for one family's summary: name -> {label, verdict, ...}."""
    labels = {name: entry["label"] for name, entry in fam["models"].items()}
    present = set(fam["models"])
    out: dict[str, Any] = {}
    for spec in study.verdicts:
        if spec.get("families") and family not in spec["families"]:
            continue
        kind = spec["kind"]
        if kind == "compare":
            a_model = spec["a"].split("/")[0]
            if spec.get("b_role"):
                for name, entry in fam["models"].items():
                    if entry["role"] == spec["b_role"]:
                        result = compare(per_seed(fam, spec["a"]), per_seed(fam, f"{name}/{_first(entry)}"),
                                         spec.get("a_label", labels.get(a_model, a_model)), entry["label"])
                        out[f"{spec['name']}_{name}"] = {
                            "label": f"{spec.get('label', labels.get(a_model, a_model))} vs {entry['label']}",
                            **result}
                continue
            b_model = spec["b"].split("/")[0]
            if not spec.get("always") and not {a_model, b_model} <= present:
                continue
            result = compare(per_seed(fam, spec["a"]), per_seed(fam, spec["b"]),
                             spec.get("a_label", labels.get(a_model, a_model)),
                             spec.get("b_label", labels.get(b_model, b_model)))
        elif kind == "reach":
            if not {spec["a"].split("/")[0], spec["b"].split("/")[0]} <= present:
                continue
            result = reach(fam, spec, labels)
        elif kind == "gap":
            if not {ref.split("/")[0] for ref in (spec["a"], spec["b"])} <= present:
                continue
            result = gap(fam, spec, labels)
        elif kind == "saturation":
            if not any(ref.split("/")[0] in present for ref in spec["models"]):
                continue
            result = saturation(fam, spec, labels)
        elif kind == "data":
            continue  # across families: study_verdicts
        elif kind == "bars":
            if not {bar["model"].split("/")[0] for bar in spec["bars"]} <= present:
                continue
            result = bars(fam, spec, labels)
        else:
            result = well_formed(fam, spec)
        out[spec["name"]] = {"label": spec.get("label", spec["name"]), **result}
    return out


def _first(entry: dict[str, Any]) -> str:
    """A model's first decoding (the one a role-wide comparison reads)."""
    return next(iter(entry["decodings"]), "")
