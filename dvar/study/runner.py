"""Run a study's jobs: data, training, evaluation, through the functions `dvar generate`,
`dvar train` and `dvar eval` call — no second training loop, no second evaluator.

Resumable at every level: generated data (its done.json), a finished run (its weights),
a finished evaluation (its metrics.json, written last and atomically) and a whole-budget
run's overfitting measurement (its fit.json, `dvar.evaluate.fit_losses`) are reused; a
run killed after a checkpoint resumes from it; a run directory trained with other
settings is an error, never silently reused (`dvar.rundir`).

On a CPU the jobs run in worker processes (one pool, the cores split between them,
longest job first); where GPUs are visible each training is one `torchrun` over all of
them, one job after another. A job owns its run directory while it trains and evaluates
(`RunDir.claim`): a second `dvar study run` on the same folder skips that job and its
branches instead of writing into them, and says so. A worker ends with the process that
started it.
"""

from __future__ import annotations

import dataclasses
import json
import multiprocessing
import multiprocessing.connection
import os
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Any

from dvar.study.plan import Job, data_files, estimate, seed_dir
from dvar.study.spec import Decoding, Family


def say(text: str) -> None:
    print(text, flush=True)  # a long study's progress reaches a log file as it happens


# ---------------------------------------------------------------------- data
def make_data(family: Family, seed: int, out: Path, train_size: int = 0, test_size: int = 0,
              data_scale: float = 1.0) -> dict[str, Any]:
    """A family's data for one seed, generated once (then reused): training problems that
    are never one of the family's public test sets, then held-out test problems that
    never occur in training (canonical forms compared, no repeats). A `paper:` family
    reads one of the paper's data sets (`dvar generate paper`), shared by every seed."""
    from dvar.data import read_examples, write_jsonl
    from dvar.generation import generate
    from dvar.tasks import get_task

    files = data_files(family, seed, out)
    folder = Path(files["train"]).parent
    done = folder / "done.json"
    if done.is_file():
        info = json.loads(done.read_text())
        if family.paper and info.get("scale") == data_scale:
            return info
        if not family.paper and all(Path(test).is_file() for test in files["tests"]):
            return info
    start = time.perf_counter()
    if family.paper:
        from dvar.generation import default_workers
        from dvar.paper import generate_paper

        generate_paper(out / "data", seed=0, scale=data_scale, workers=default_workers(), only=[family.paper])
        info = {**files, "scale": data_scale}
    else:
        task = get_task(family.task)
        options = task.make_options(**family.options)
        exclude = set()
        for public in files["public"]:
            exclude |= {task.canonical(ex.problem) for ex in read_examples(public, task)}
        if done.is_file():  # generated before, without the test problems it now borrows
            problems = [ex.problem for ex in read_examples(files["train"], task)]
        else:
            train_rows = generate(task, train_size or family.train_size, seed, options, exclude=exclude)
            write_jsonl(files["train"], train_rows)
            problems = [task.parse_input(row["input"]) for row in train_rows]
        seen = {task.canonical(problem) for problem in problems}
        if family.test_of is not None:
            test_rows = _borrowed_tests(family, seed, out, seen, train_size, test_size, data_scale)
        else:
            test_rows = generate(task, test_size or family.test_size, 1_000_000 + seed, options,
                                 exclude=seen, unique=True)
        write_jsonl(files["tests"][0], test_rows)
        info = {"train": files["train"], "test": files["tests"][0], "public": files["public"],
                "train_size": len(problems), "test_size": len(test_rows)}
        if family.test_of is not None:
            info["test_of"] = family.test_of.name
    info["seconds"] = round(time.perf_counter() - start, 2)
    done.write_text(json.dumps(info, indent=2) + "\n")
    return info


def _borrowed_tests(family: Family, seed: int, out: Path, seen: set, train_size: int, test_size: int,
                    data_scale: float) -> list[dict[str, Any]]:
    """The held-out test problems of `family.test_of` (its data generated if need be), none
    of which may be one of `family`'s training problems (`seen`, canonical forms)."""
    from dvar.config import ConfigError
    from dvar.data import read_examples
    from dvar.tasks import get_task

    other = make_data(family.test_of, seed, out, train_size, test_size, data_scale)
    task = get_task(family.task)
    examples = read_examples(other["test"], task)
    shared = [ex.line for ex in examples if task.canonical(ex.problem) in seen]
    if shared:
        raise ConfigError(f"{other['test']}: line {shared[0]} (and {len(shared) - 1} more) is a training problem "
                          f"of {family.name} (seed {seed}): its test_of family {family.test_of.name} does not "
                          f"hold out {family.name}'s training problems")
    return [ex.record for ex in examples]


# ---------------------------------------------------------------------- one job
def train_if_needed(job: Job) -> float | None:
    """Reuse a finished run, resume a killed one, else train; the training seconds, or
    None when the run was reused. The run directory is this process's meanwhile
    (`RunDir.claim`)."""
    from dvar.rundir import RunDir

    run = RunDir(job.run_dir)
    with run.claim():
        state = run.state(job.config)
        if state == "finished":
            return None
        start = time.perf_counter()
        _train_job(job, dataclasses.replace(job.config, resume=state == "resumable"))
        return time.perf_counter() - start


def _train_job(job: Job, cfg: Any) -> None:
    """`dvar train` of the job's run: GPUs visible, one torchrun over all of them, whose
    rank 0 shares this process's claim of the run directory."""
    import torch

    from dvar.rundir import CLAIM_ENV

    gpus = torch.cuda.device_count()
    if not gpus:
        from dvar.trainer import train

        train(cfg)
        return
    from dvar.config import save_config

    job.run_dir.parent.mkdir(parents=True, exist_ok=True)
    plan_file = job.run_dir.parent / f"{job.model.name}.job.yaml"
    save_config(cfg, plan_file)
    launcher = ["torchrun", "--standalone", f"--nproc_per_node={gpus}"] if gpus > 1 else [sys.executable]
    subprocess.run([*launcher, "-m", "dvar", "train", str(plan_file)], check=True,
                   env={**os.environ, CLAIM_ENV: str(job.run_dir.resolve())})


def evaluate_into(run: Any, job: Job, data_file: str, decoding: Decoding, out: Path) -> float:
    """`dvar eval RUN --data FILE [--decoder ...] --out OUT`; the seconds it took."""
    from dvar.data import read_examples
    from dvar.evaluate import evaluate, save_evaluation

    examples = read_examples(data_file, run.task)  # the verifier judges: no gold answer needed
    steps = (job.decode_steps or run.config.data.max_new_tokens) if job.model.objective == "mdm" else 0
    result = evaluate(run, examples, decoder=decoding.decoder, steps=steps, seed=job.seed,
                      source=data_file, decoder_settings=decoding.settings_dict or None)
    save_evaluation(result, out)
    return result.metrics["seconds"]


def run_job(job: Job) -> dict[str, Any]:
    """Train (unless done) and evaluate one job; its wall times."""
    import torch

    from dvar.evaluate import load_run
    from dvar.rundir import RunDir

    device = "cuda" if torch.cuda.is_available() else "cpu"
    with RunDir(job.run_dir).claim():
        train_seconds = train_if_needed(job)
        if train_seconds is not None:  # the study's own record of the training's wall time
            (job.run_dir / "study-train.json").write_text(json.dumps({"seconds": round(train_seconds, 1)}) + "\n")
        run = None  # loaded once, and only if an evaluation is missing
        evals: dict[str, float | None] = {}
        for data_file, decodings in job.tests:
            for decoding in decodings:
                out = RunDir(job.run_dir).eval_dir(data_file, decoding.name)
                seconds = None  # None: a finished evaluation (its metrics.json), reused
                if not (out / "metrics.json").is_file():
                    run = run or load_run(job.run_dir, device)
                    seconds = evaluate_into(run, job, data_file, decoding, out)
                evals[out.name] = seconds
        if job.budget == 1.0 and job.tests and RunDir(job.run_dir).fit() is None:
            run = run or load_run(job.run_dir, device)
            RunDir(job.run_dir).write_fit(measure_fit(run, job.tests[0][0]))
    return {"job": job.name, "train_seconds": train_seconds, "eval_seconds": evals}


def measure_fit(run: Any, test_file: str) -> dict[str, Any]:
    """The overfitting signal of a whole-budget run (`fit.json`): its loss on the family's
    held-out test problems (never trained on) against as many of its training problems;
    a test file without gold answers says so instead."""
    from dvar.data import read_examples
    from dvar.evaluate import fit_losses

    examples = [ex for ex in read_examples(test_file, run.task) if ex.output]
    if not examples:
        return {"not_measured": f"{test_file} holds no gold answers to take a loss on"}
    return fit_losses(run, examples, test_file)


# ---------------------------------------------------------------------- the pool
def worker_pool(workers: int, threads: int) -> ProcessPoolExecutor:
    """`workers` fresh processes of `threads` threads each (spawned: no fork of a process
    that holds torch threads). A worker exits when the process that made the pool dies,
    so a killed `dvar study run` leaves no training behind to collide with the next one."""
    return ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_init_worker, initargs=(threads,))


def _init_worker(threads: int) -> None:
    import threading

    import torch

    torch.set_num_threads(threads)
    parent = multiprocessing.parent_process()
    if parent is not None:
        threading.Thread(target=_exit_with, args=(parent.sentinel,), daemon=True).start()


def _exit_with(sentinel: int) -> None:
    """Wait for the parent's end, then end this process (checkpoints are atomic: a
    training killed here resumes from its last one)."""
    multiprocessing.connection.wait([sentinel])
    os._exit(1)


def run_jobs(jobs: list[Job], workers: int = 1, log: Callable[[str], None] = say) -> list[dict[str, Any]]:
    """Every job, longest first, on `workers` processes (the cores split between them); a
    branch (`Job.trunk`) starts once its trunk has finished. A job whose run directory
    another process owns is skipped (its result says why), and so are its branches."""
    import torch

    from dvar.rundir import RunInUse

    waiting = sorted(jobs, key=lambda job: -estimate(job)["tokens"] * _cost_factor(job))
    planned = {job.run_dir for job in jobs}
    finished: set[Path] = set()
    skipped: set[Path] = set()
    results: list[dict[str, Any]] = []

    def next_ready() -> Job | None:
        for job in list(waiting):
            if job.trunk in skipped:
                waiting.remove(job)
                skip(job, f"its trunk {job.trunk} was skipped")
            elif job.trunk is None or job.trunk not in planned or job.trunk in finished:
                waiting.remove(job)
                return job
        return None

    def done(job: Job, result: dict[str, Any], left: int) -> None:
        took = result["train_seconds"]
        results.append(result)
        finished.add(job.run_dir)
        log(f"done: {job.name} ({'reused' if took is None else f'trained in {took:.0f} s'}; "
            f"{left} job(s) left)")

    def skip(job: Job, why: str) -> None:
        results.append({"job": job.name, "skipped": why})
        skipped.add(job.run_dir)
        log(f"skipped: {job.name} ({why})")

    if workers <= 1 or len(waiting) <= 1 or torch.cuda.device_count():
        while waiting:
            if (job := next_ready()) is None:
                break
            try:
                done(job, run_job(job), len(waiting))
            except RunInUse as err:
                skip(job, str(err))
        return results
    threads = max(1, torch.get_num_threads() // workers)
    with worker_pool(workers, threads) as pool:
        pending: dict[Any, Job] = {}
        while waiting or pending:
            while len(pending) < workers and (job := next_ready()) is not None:
                pending[pool.submit(run_job, job)] = job
            if not pending:
                break
            finished_now, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in finished_now:
                job = pending.pop(future)
                try:
                    done(job, future.result(), len(pending) + len(waiting))
                except RunInUse as err:
                    skip(job, str(err))
    return results


def _cost_factor(job: Job) -> float:
    """Small models are slower per token than their FLOPs say (scheduling only)."""
    return 2.0 if job.config.model == "micro" else 1.0


def prepare_data(jobs: list[Job], out: Path, train_size: int = 0, test_size: int = 0,
                 data_scale: float = 1.0) -> dict[str, Any]:
    """Generate (or reuse) the data of every (family, seed) the jobs need."""
    data = {}
    for job in jobs:
        key = f"{job.family.name}/seed{job.seed}"
        if key not in data:
            data[key] = make_data(job.family, job.seed, out, train_size, test_size, data_scale)
    return data


__all__ = ["make_data", "prepare_data", "run_job", "run_jobs", "seed_dir", "train_if_needed",
           "worker_pool"]
