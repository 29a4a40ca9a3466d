"""Summarise a study from what its runs wrote: every evaluation's metrics.json and every
run's config.yaml and compute record, aggregated over seeds (each seed listed, mean,
min–max).

Results are keyed by what they are — family, model, decoding, test set, seed — as the
plan says where each one lives and its metrics.json says what it is: an evaluation
whose recorded objective, answer order or decoder differs from the plan's is an error,
never silently filed under the wrong name. Nothing is parsed out of directory names.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

from dvar.config import ConfigError, load_config
from dvar.study.plan import Job, plan
from dvar.study.spec import Decoding, Study, flatten
from dvar.study.verdicts import family_verdicts, study_verdicts


def stats(values: list[float]) -> dict[str, float]:
    return {"mean": statistics.fmean(values), "min": min(values), "max": max(values)}


def run_compute(run_dir: Path) -> dict[str, Any]:
    """A run's compute: steps × batch, parameters, tokens, FLOPs, wall seconds, last loss."""
    from dvar.rundir import RunDir

    info: dict[str, Any] = {}
    cfg = load_config(run_dir / "config.yaml") if (run_dir / "config.yaml").is_file() else None
    if cfg is not None:
        info.update(steps=cfg.train.max_steps, batch_size=cfg.train.batch_size, model=cfg.model,
                    examples=cfg.train.max_steps * cfg.train.batch_size, cutoff=cfg.data.cutoff)
    recorded = RunDir(run_dir).compute()
    if recorded:
        info.update({k: v for k, v in recorded.items() if k not in info or k in ("parameters",)})
    elif cfg is not None:
        info["parameters"] = _parameters(cfg)
    log = run_dir / "train_log.jsonl"
    rows = [json.loads(line) for line in log.read_text().splitlines() if line.strip()] if log.is_file() else []
    if rows:
        info["final_loss"] = rows[-1].get("loss")
    evals = run_dir / "eval_log.jsonl"
    valid = [json.loads(line) for line in evals.read_text().splitlines() if line.strip()] if evals.is_file() else []
    if valid and valid[-1].get("val_loss") is not None:
        info["final_valid_loss"] = valid[-1]["val_loss"]  # the held-out validation problems, at the last step
    fit = RunDir(run_dir).fit()
    if fit and "heldout_minus_train" in fit:  # measured alike on seen and unseen problems
        info["fit"] = {key: fit.get(key) for key in ("train_loss", "heldout_loss", "heldout_minus_train", "examples",
                                                      "distinct_train_problems")}
    for name in ("study-train.json", "reproduce-train.json"):  # the latter: runs of before the engine
        if (run_dir / name).is_file():
            info["train_seconds"] = json.loads((run_dir / name).read_text())["seconds"]
            break
    return info


def _parameters(cfg: Any) -> int | None:
    """The parameter count of a dvar model from its resolved config (runs that predate
    the compute record)."""
    from dvar.hf import hf_path
    from dvar.model import SIZES, Transformer, model_config
    from dvar.tokenizer import DEFAULT_CHARS, CharTokenizer

    if hf_path(cfg.model) or cfg.model not in SIZES or not cfg.data.cutoff:
        return None
    vocab = CharTokenizer(cfg.arch.vocab or DEFAULT_CHARS).vocab_size
    model = Transformer(model_config(cfg.model, vocab, cfg.data.cutoff, positions=cfg.arch.positions))
    return model.num_parameters().total


def _evaluation(metrics_file: Path, job: Job, decoding: Decoding) -> dict[str, Any] | None:
    if not metrics_file.is_file():
        return None
    metrics = json.loads(metrics_file.read_text())
    recorded = {"objective": metrics.get("objective"), "answer_order": metrics.get("answer_order", "forward")}
    wanted = {"objective": job.model.objective, "answer_order": job.model.order}
    if decoding.decoder:
        recorded["decoder"], wanted["decoder"] = metrics.get("decoder"), decoding.decoder
        settings = metrics.get("decoder_settings") or {}
        for key, value in decoding.settings:
            recorded[f"decoder_settings.{key}"] = settings.get(key)
            wanted[f"decoder_settings.{key}"] = value
    wrong = [k for k in wanted if recorded[k] is not None and recorded[k] != wanted[k]]
    if wrong:
        raise ConfigError(f"{metrics_file}: records {wrong[0]}={recorded[wrong[0]]!r}, the study planned "
                          f"{wanted[wrong[0]]!r} for {job.name} {decoding.name}")
    formed = metrics.get("well_formed")
    if formed is None:  # evaluations of before metrics.json recorded it
        formed = _well_formed(metrics_file.parent / "predictions.jsonl", job.family.task)
    by = {k: v["accuracy"] for k, v in metrics["by"].items()}
    by.update(_extra_breakdowns(metrics_file.parent / "predictions.jsonl", job.family.task))
    extra = {k: v for k, v in metrics.items() if k.startswith("accuracy_")}  # countdown: accuracy_reference
    return {"accuracy": metrics["accuracy"], "n": metrics["n"], "well_formed": formed, "by": by, **extra,
            "partial_credit": metrics.get("partial_credit"), "nfe_per_example": metrics.get("nfe_per_example"),
            "seconds": metrics.get("seconds"),
            "metrics": str(metrics_file), "data": metrics.get("data")}


def _well_formed(predictions: Path, task_name: str) -> float | None:
    """The share of answers in the task's form, from an evaluation's predictions."""
    if not predictions.is_file():
        return None
    from dvar.tasks import get_task

    task = get_task(task_name)
    rows = [json.loads(line) for line in predictions.read_text().splitlines() if line.strip()]
    return sum(task.well_formed(task.parse_input(r["input"]), r["predict"]) for r in rows) / max(len(rows), 1)


def _extra_breakdowns(predictions: Path, task_name: str) -> dict[str, float]:
    """Accuracy by each of the task's extra breakdowns (`Task.extra_breakdowns`, e.g. the
    path's goal-side planning distance `rpd`), from an evaluation's predictions."""
    from dvar.tasks import get_task

    task = get_task(task_name)
    extra = task.extra_breakdowns
    if not extra or not predictions.is_file():
        return {}
    from dvar.metrics import format_group

    groups: dict[str, list[bool]] = {}
    for line in predictions.read_text().splitlines():
        if line.strip():
            row = json.loads(line)
            problem = task.parse_input(row["input"])
            for name, breakdown in extra.items():
                groups.setdefault(format_group({name: breakdown(problem)}), []).append(bool(row["correct"]))
    return {key: sum(oks) / len(oks) for key, oks in groups.items()}


def _aggregate(slot: dict[str, Any]) -> None:
    from dvar.metrics import group_sort_key

    seeds = slot["seeds"].values()
    slot["accuracy"] = stats([s["accuracy"] for s in seeds])
    formed = [s["well_formed"] for s in seeds if s["well_formed"] is not None]
    slot["well_formed"] = stats(formed) if formed else None
    partial = [s["partial_credit"] for s in seeds if s.get("partial_credit") is not None]
    slot["partial_credit"] = stats(partial) if partial else None
    keys = sorted({k for s in seeds for k in s["by"]}, key=group_sort_key)
    slot["by"] = {k: stats([s["by"][k] for s in seeds if k in s["by"]]) for k in keys}


def collect(study: Study, out: str | Path, seeds: list[int], only: list[str] | None = None,
            quick: bool = False, steps: int = 0, train_size: int = 0, test_size: int = 0) -> dict[str, Any]:
    """Everything results.md shows: every model of every family (any role) that has a run
    directory for one of `seeds`, read from its files under `out`."""
    from dvar.rundir import RunDir
    from dvar.tasks import get_task

    out = Path(out)
    roles = sorted({m.role for f in study.families for m in f.models})
    jobs = plan(study, out, seeds, only=only, roles=roles, quick=quick, steps=steps)
    summary: dict[str, Any] = {"study": study.name, "title": study.title, "description": study.description,
                               "by_decodings": list(study.by_decodings), "families": {}}
    for family in study.families:
        if only and family.name not in only:
            continue
        family_jobs = [j for j in jobs if j.family.name == family.name and j.run_dir.is_dir()]
        fam: dict[str, Any] = {"setting": _setting(family, jobs, quick, steps, train_size, test_size),
                               "models": {}, "published": published(family.task)}
        for model in family.models:
            model_jobs = [j for j in family_jobs if j.model.name == model.name]
            if not model_jobs:
                continue
            entry: dict[str, Any] = {
                "label": model.label, "objective": model.objective, "order": model.order, "role": model.role,
                "steps_factor": model.steps_factor,
                "overrides": [f"{k}={json.dumps(v) if not isinstance(v, str) else v}"
                              for k, v in flatten(model.run).items()],
                "decodings": {}, "compute": {}}
            held_out = {data for job in model_jobs if job.budget != 1.0 for data, _ in job.tests}
            points: dict[str, dict[str, dict[float, dict[str, Any]]]] = {}  # decoding -> stem -> budget
            for job in model_jobs:
                compute = run_compute(job.run_dir)
                if job.budget == 1.0:  # a branch is a point of the curve only
                    entry["compute"][str(job.seed)] = compute
                for data_file, decodings in job.tests:
                    for decoding in decodings:
                        metrics_file = RunDir(job.run_dir).eval_dir(data_file, decoding.name) / "metrics.json"
                        found = _evaluation(metrics_file, job, decoding)
                        if not found:
                            continue
                        stem = test_name(job, data_file)
                        if job.budget == 1.0:
                            tests = entry["decodings"].setdefault(decoding.name, {})
                            tests.setdefault(stem, {"seeds": {}})["seeds"][str(job.seed)] = found
                        if data_file in held_out:
                            point = points.setdefault(decoding.name, {}).setdefault(stem, {}).setdefault(
                                job.budget, {"budget": job.budget, "steps": job.config.train.max_steps,
                                             "seeds": {}})
                            point["seeds"][str(job.seed)] = _curve_point(job, found, compute)
            for name, tests in entry["decodings"].items():
                entry["decodings"][name] = dict(sorted(tests.items()))
                for slot in tests.values():
                    _aggregate(slot)
            if family.curve:
                entry["curve"] = _curve(points)
            fam["models"][model.name] = entry
        fam["chance"] = _chance(family, family_jobs)
        fam["partial_credit_label"] = get_task(family.task).partial_credit_label
        fam["verdicts"] = family_verdicts(study, family.name, fam)
        summary["families"][family.name] = fam
    summary["verdicts"] = study_verdicts(study, summary)
    return summary


def test_name(job: Job, data_file: str) -> str:
    """What the summary calls a test file: its stem, except that a family tested on another
    family's held-out problems (`test_of`, data/test-OTHER.jsonl) calls them `test`, as
    every family calls its held-out problems."""
    if job.family.test_of is not None and data_file == job.tests[0][0]:
        return "test"
    return Path(data_file).stem


def _curve_point(job: Job, found: dict[str, Any], compute: dict[str, Any]) -> dict[str, Any]:
    """One seed's point of a curve. Its compute is compute.json's: a branch's whole budget,
    trunk steps included, as if trained alone; own_seconds is the job's own wall time (a
    branch: its decay)."""
    from dvar.rundir import RunDir

    recorded = RunDir(job.run_dir).compute() or {}
    return {"accuracy": found["accuracy"], "well_formed": found["well_formed"], "by": found["by"],
            "partial_credit": found["partial_credit"],
            "flops": recorded.get("flops"), "tokens": recorded.get("tokens"),
            "train_seconds": recorded.get("train_seconds"), "own_seconds": compute.get("train_seconds"),
            "metrics": found["metrics"]}


def _curve(points: dict[str, dict[str, dict[float, dict[str, Any]]]]) -> dict[str, Any]:
    """decoding -> held-out test stem -> one point per budget, ascending: {budget, steps,
    seeds: {seed: `_curve_point`}, accuracy, well_formed, by (as `_aggregate`), flops}."""
    curve: dict[str, Any] = {}
    for name, stems in points.items():
        curve[name] = {}
        for stem, by_budget in sorted(stems.items()):
            rows = [by_budget[b] for b in sorted(by_budget)]
            for row in rows:
                _aggregate(row)
                flops = [s["flops"] for s in row["seeds"].values() if s["flops"]]
                row["flops"] = stats(flops) if flops else None
            curve[name][stem] = rows
    return curve


def _chance(family: Any, jobs: list[Job]) -> float | None:
    """The mean chance of a random answer (`Task.chance`) over the first seed's held-out
    test, where the task defines it."""
    from dvar.data import read_examples
    from dvar.tasks import get_task

    task = get_task(family.task)
    test = next((data for job in jobs for data, _ in job.tests[:1]), None)
    if test is None or not Path(test).is_file():
        return None
    values = [task.chance(ex.problem) for ex in read_examples(test, task)]
    return None if not values or values[0] is None else sum(values) / len(values)


def branch_seconds(entry: dict[str, Any]) -> float:
    """What a model's shorter budgets cost the study: their branches' own seconds (read off
    the first decoding and test set of its curve, where every branch appears once)."""
    points = next(iter(next(iter(entry.get("curve", {}).values()), {}).values()), [])
    return sum(seed.get("own_seconds") or 0.0 for point in points if point["budget"] != 1.0
               for seed in point["seeds"].values())


def _setting(family: Any, jobs: list[Job], quick: bool, steps: int, train_size: int,
             test_size: int) -> dict[str, Any]:
    main = next((j.config for j in jobs if j.family.name == family.name and j.model.steps_factor == 1.0), None)
    if main is None:
        main = next((j.config for j in jobs if j.family.name == family.name), None)
    base = family.budget(quick, steps)
    return {"task": family.task, "options": family.options, "paper": family.paper,
            "description": family.description, "paper_setting": family.paper_setting,
            "model": main.model if main else "", "steps": base,
            "batch_size": main.train.batch_size if main else 0, "lr": main.train.lr if main else 0,
            "train_size": train_size or family.train_size, "test_size": test_size or family.test_size,
            "time_weighting": main.diffusion.time_weighting if main else "",
            "gamma": main.diffusion.gamma if main else 0, "paper_epochs": family.paper_epochs,
            "public": list(family.public), "test_of": family.test_of.name if family.test_of else None}


def published(task: str) -> list[dict[str, Any]]:
    """SPEC §6's numbers for a task (at the paper's scale)."""
    from dvar.report import PUBLISHED

    return [{"subset": p.subset, "objective": p.objective, "accuracy": p.accuracy, "model": p.model,
             "source": p.source, "answer_order": p.answer_order} for p in PUBLISHED if p.task == task]
