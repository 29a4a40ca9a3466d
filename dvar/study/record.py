"""A study's record: what of its output folder is committed (`dvar study record`).

Copied from OUT to DEST, keeping the layout, so that `dvar study summary STUDY --out DEST`
rebuilds results.md from the copy alone:
- every run's config.yaml, compute.json, study-train.json, train_log.jsonl, eval_log.jsonl
  and fit.json;
- every evaluation's metrics.json and predictions.jsonl;
- each family and seed's held-out test data (data/test.jsonl; training data regenerate
  from the study file and seed);
- for one seed (`weights_seed`; `dvar study record`: the study's first), each model's
  whole-budget run directory as a model: vocab.json, model.json and model.safetensors,
  where the weights are under `max_weights_mb`, so anyone can evaluate it on other test
  sets without retraining.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from dvar.study.plan import Job, data_files

RUN_FILES = ("config.yaml", "compute.json", "study-train.json", "train_log.jsonl", "eval_log.jsonl", "fit.json")
MODEL_FILES = ("vocab.json", "model.json", "model.safetensors")
EVAL_FILES = ("metrics.json", "predictions.jsonl")


def record(jobs: list[Job], out: Path, dest: Path, max_weights_mb: float = 20.0,
           weights_seed: int | None = None) -> dict[str, int]:
    """Copy the record of `jobs` (run under `out`) to `dest`; counts of what was copied.
    Models are copied for `weights_seed` (default: the smallest seed among `jobs`)."""
    out, dest = Path(out).resolve(), Path(dest)
    counts = {"runs": 0, "evaluations": 0, "models": 0, "skipped_models": 0, "tests": 0}
    first_seed = min((job.seed for job in jobs), default=0) if weights_seed is None else weights_seed

    def copy(path: Path) -> None:
        target = dest / path.resolve().relative_to(out)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)

    tests_done = set()
    for job in jobs:
        run = job.run_dir
        if not (run / "config.yaml").is_file():
            continue
        counts["runs"] += 1
        for name in RUN_FILES:
            if (run / name).is_file():
                copy(run / name)
        for metrics in sorted(run.glob("eval/*/metrics.json")):
            counts["evaluations"] += 1
            for name in EVAL_FILES:
                if (metrics.parent / name).is_file():
                    copy(metrics.parent / name)
        if job.seed == first_seed and job.budget == 1.0 and (run / "model.safetensors").is_file():
            if (run / "model.safetensors").stat().st_size <= max_weights_mb * 2**20:
                counts["models"] += 1
                for name in MODEL_FILES:
                    copy(run / name)
            else:
                counts["skipped_models"] += 1
        for test in data_files(job.family, job.seed, out)["tests"]:
            if test not in tests_done and Path(test).is_file() and Path(test).resolve().is_relative_to(out):
                tests_done.add(test)
                counts["tests"] += 1
                copy(Path(test))
    return counts
