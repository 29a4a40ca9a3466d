"""The study engine: a study is a YAML file (`configs/studies/`), run by one engine.

    study = load_study("miniature")                  # configs/studies/miniature.yaml
    jobs = plan(study, "out", seeds=[0, 1, 2])       # what would run (dvar study plan)
    summary = run_study(study, "out")                # data, training, evaluation, report

`spec` reads and validates the file, `plan` turns it into jobs, `runner` runs them with
the functions `dvar train` / `dvar eval` call, `summary` aggregates the metrics files
over seeds, `verdicts` computes what the numbers show, `output` writes results.md,
study.json and the plots. `dvar demo` and `dvar reproduce` are aliases of study files.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dvar.rundir import RunInUse
from dvar.study.output import write_report
from dvar.study.plan import Job, format_plan, plan
from dvar.study.runner import prepare_data, run_jobs, say
from dvar.study.spec import Study, load_study, study_path
from dvar.study.summary import branch_seconds, collect


def run_study(study: Study, out: str | Path, seeds: list[int] | None = None, only: list[str] | None = None,
              roles: list[str] | None = None, models: list[str] | None = None, overrides: list[str] = (),
              quick: bool = False, steps: int = 0, train_size: int = 0, test_size: int = 0,
              workers: int = 0, data_scale: float = 1.0, extend: str | Path | None = None,
              log: Callable[[str], None] = say) -> dict[str, Any]:
    """Data, training and evaluation of every job (finished ones reused), then the
    report; returns study.json's content."""
    from dvar.generation import default_workers

    start = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    seeds = list(seeds if seeds is not None else (study.quick_seeds if quick else study.seeds))
    jobs = plan(study, out, seeds, only, roles, models, list(overrides), quick, steps, extend)
    families = sorted({job.family.name for job in jobs})
    log(f"[1/3] data: {', '.join(families)} × seeds {', '.join(map(str, seeds))}")
    data = prepare_data(jobs, out, train_size, test_size, data_scale)
    data_seconds = time.perf_counter() - start
    workers = workers or default_workers()
    log(f"[2/3] {len(jobs)} model(s) to train and evaluate on {workers} worker(s)")
    results = run_jobs(jobs, workers, log)
    log("[3/3] report")
    summary = summarize(study, out, seeds, only=families, quick=quick, steps=steps,
                        train_size=train_size, test_size=test_size)
    summary.update(seeds=seeds, workers=workers, data=data, overrides=list(overrides),
                   stages={"data_seconds": round(data_seconds, 1), "jobs": results},
                   wall_seconds=round(time.perf_counter() - start, 1))
    write_report(out, summary, seeds)
    log(f"wrote {out}/results.md, study.json and a plot per family in {summary['wall_seconds'] / 60:.1f} min")
    skipped = [result for result in results if "skipped" in result]
    if skipped:
        raise RunInUse(f"{len(skipped)} job(s) skipped, their runs another process's; run again once it "
                       "ends: " + "; ".join(f"{result['job']}: {result['skipped']}" for result in skipped))
    return summary


def summarize(study: Study, out: str | Path, seeds: list[int], **selection: Any) -> dict[str, Any]:
    """The summary of what is on disk under `out` (no training): see `dvar.study.summary`."""
    summary = collect(study, out, seeds, **selection)
    models = [m for fam in summary["families"].values() for m in fam["models"].values()]
    branches = sum(branch_seconds(m) for m in models)
    summary["train_seconds_total"] = round(branches + sum(
        c.get("train_seconds", 0.0) for m in models for c in m["compute"].values()), 1)
    return summary


__all__ = ["Job", "Study", "format_plan", "load_study", "plan", "run_study", "study_path", "summarize",
           "write_report"]
