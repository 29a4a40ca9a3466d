"""`dvar reproduce`: the paper's study in one command (SPEC §10), at two scales.

`--scale cpu`, the miniature: for every task family a smaller setting (`MINIATURES`)
sized for a 2-core CPU (measured: README, Reproducing the paper), several seeds, the MDM beside
AR at equal training compute and at the paper's epoch ratio, the answer-order controls
(SPEC §9) and the MDM trained with the reference's settings beside dvar's own. Every
run and evaluation is an ordinary `dvar` run / eval directory:

    DIR/FAMILY/seedS/data/{train,test}.jsonl
    DIR/FAMILY/seedS/runs/MODEL/                (config.yaml, model.safetensors, train_log ...)
    DIR/FAMILY/seedS/runs/MODEL/eval/TEST-DECODING/{predictions.jsonl,metrics.json}
    DIR/results.md   DIR/reproduce.json   DIR/FAMILY.png

`--scale gpu`, the paper: its data (`dvar generate paper`), the 16 recipes of `configs/`
(or dvar's own, `configs/dvar/`), each evaluated on the paper's test sets and the
matching public sets of `../shared/testsets/`; the same results.md / reproduce.json.

Both are resumable: a finished run or evaluation (its model.safetensors or metrics.json)
is reused, a run killed after a checkpoint resumes from it, anything else starts over.
results.md and reproduce.json are always rebuilt from the metrics.json files on disk.
"""

from __future__ import annotations

import dataclasses
import json
import math
import multiprocessing
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Any

import yaml

from dvar.generation import _natural

RESULTS = "results.md"
SUMMARY = "reproduce.json"
TIE = 0.02  # an accuracy difference within 2 points on a seed is a tie


def _say(text: str) -> None:
    print(text, flush=True)  # a long run's progress reaches a log file as it happens


# ---------------------------------------------------------------------- what runs
@dataclasses.dataclass(frozen=True)
class Decoding:
    """One evaluation of a model: a decoder and its settings."""

    key: str  # short name, used in directory names and tables
    decoder: str = ""  # empty: the run's own (config decode.decoder / the objective's)
    settings: tuple[tuple[str, Any], ...] = ()


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """One model trained per family and seed."""

    name: str  # directory name: mdm, ar, ar-reverse, ...
    label: str
    objective: str
    role: str  # main | paper-ratio | control | recipe
    order: str = "forward"
    steps_factor: float = 1.0  # of the miniature's steps (the paper's epoch ratio)
    overrides: tuple[str, ...] = ()  # config key=value on top of the miniature's
    decodings: tuple[Decoding, ...] = ()


# MDM decodings, measured on every MDM of the miniature: dvar's default (deterministic
# easy-first, `topk`), the reference's stochastic0.5-linear (`topk-paper`), and margin
# (Kim et al. 2025).
TOPK = Decoding("topk", "topk", (("noise", 0.0),))
TOPK_PAPER = Decoding("topk-paper", "topk", (("noise", 0.5),))
MARGIN = Decoding("margin", "margin", (("noise", 0.0),))
# The reference's decoding in full: it also re-predicts decoded tokens (meaningful with the
# logit shift it trains with).
TOPK_PAPER_REPREDICT = Decoding("topk-paper-repredict", "topk", (("noise", 0.5), ("repredict", True)))
GREEDY = Decoding("greedy", "greedy", ())
MDM_DECODINGS = (TOPK, TOPK_PAPER, MARGIN)

# What `--scale cpu` trains by default: MDM and AR at equal steps, and at the paper's
# epoch ratio; `--controls` adds the answer orders, `--reference` the reference's MDM.
DEFAULT_ROLES = ("main", "paper-ratio")
ROLES = ("main", "paper-ratio", "control", "recipe")
# The reference's training settings that dvar's own recipe does not share (issue 12): the
# causal-LM logit shift, dropout 0.1; and the paper's `linear` time weighting. (Its third,
# re-predicting decoding, is TOPK_PAPER_REPREDICT.)
REFERENCE_MDM = ("diffusion.shift=true", "arch.dropout=0.1", "diffusion.time_weighting=linear")


CONTROL_ORDERS = ("reverse", "solver")  # SPEC §9 orders trained as controls (`random` is not)


def model_specs(paper_epochs: tuple[int, int], orders: tuple[str, ...]) -> tuple[ModelSpec, ...]:
    """The models of one family: MDM and AR at equal steps; the model the paper trains
    for fewer epochs again at the paper's ratio; AR in each of `orders` the task has
    among CONTROL_ORDERS (controls); the MDM with the reference's settings."""
    mdm_epochs, ar_epochs = paper_epochs
    specs = [
        ModelSpec("mdm", "MDM", "mdm", "main", decodings=MDM_DECODINGS),
        ModelSpec("ar", "AR", "ar", "main", decodings=(GREEDY,)),
    ]
    if ar_epochs < mdm_epochs:
        specs.append(ModelSpec("ar-paper-ratio", f"AR at the paper's ratio ({ar_epochs}:{mdm_epochs} epochs)",
                               "ar", "paper-ratio", steps_factor=ar_epochs / mdm_epochs, decodings=(GREEDY,)))
    elif mdm_epochs < ar_epochs:
        specs.append(ModelSpec("mdm-paper-ratio", f"MDM at the paper's ratio ({mdm_epochs}:{ar_epochs} epochs)",
                               "mdm", "paper-ratio", steps_factor=mdm_epochs / ar_epochs, decodings=(TOPK,)))
    for order in orders:
        if order in CONTROL_ORDERS:
            specs.append(ModelSpec(f"ar-{order}", f"AR {order} order", "ar", "control", order=order,
                                   decodings=(GREEDY,)))
    specs.append(ModelSpec("mdm-reference", "MDM, the reference's settings", "mdm", "recipe",
                           overrides=REFERENCE_MDM, decodings=(TOPK_PAPER_REPREDICT, TOPK)))
    return tuple(specs)


@dataclasses.dataclass(frozen=True)
class Miniature:
    """One task family's CPU setting (chosen by measurement: README, Reproducing)."""

    family: str
    task: str
    options: dict[str, Any]
    description: str  # what is smaller than the paper
    paper_setting: str  # the paper's setting of this family
    model: str
    steps: int
    batch_size: int = 32
    lr: float = 3e-3
    train_size: int = 20000
    test_size: int = 500
    time_weighting: str = "none"
    gamma: float = 1.0
    decode_steps: int = 0  # MDM decoding steps; 0: one answer token per step
    paper_epochs: tuple[int, int] = (100, 100)  # (MDM, AR) epochs of the paper's recipe
    public: tuple[str, ...] = ()  # files of ../shared/testsets/ in this setting's format
    quick_steps: int = 0  # steps under --quick (0: the same)

    def specs(self) -> tuple[ModelSpec, ...]:
        from dvar.tasks import get_task

        return model_specs(self.paper_epochs, tuple(get_task(self.task).answer_orders))


MINIATURES: dict[str, Miniature] = {
    # The demo's recipe at 4 nodes and 12,000 steps (6,000 was not enough on any seed).
    # Whether the MDM reaches 90% at every PD depends on the run's data order: 6 of 12 runs
    # measured did (README, Reproducing the paper: the levers).
    "path": Miniature(
        "path", "path", dict(nodes=4, paths=2, id_count=8, compact=True, table=True),
        "2 paths of 4 nodes over ids 0-7 (PD 0-3), graph as successor/predecessor tables",
        "2 paths of 6 nodes (PD 0-5), edge list", model="micro", steps=12000,
        paper_epochs=(100, 200), quick_steps=4000,
    ),
    "countdown": Miniature(
        "countdown", "countdown", dict(numbers=3, max_number=20, max_target=50),
        "3 numbers from 1-20, targets 10-50", "3-5 numbers from 1-99, targets 10-100",
        model="mini", steps=3000, gamma=2.0, paper_epochs=(600, 40), quick_steps=1500,
    ),
    "sudoku": Miniature(
        "sudoku", "sudoku", dict(size=4, givens=(4, 8)),
        "4x4 grids with 4-8 givens", "9x9 grids with 31-36 givens (1M collection)",
        model="mini", steps=1500, train_size=10000, paper_epochs=(300, 100),
        public=("sudoku_dream_4x4.csv", "sudoku_d1_4x4.csv"), quick_steps=1000,
    ),
    "sat": Miniature(
        "sat", "sat", dict(vars=4),
        "3-SAT over 4 variables (18-28 clauses)", "3-SAT over 5, 7, 9 variables", model="micro",
        steps=1500, paper_epochs=(600, 300), quick_steps=800,
    ),
}
FAMILIES = tuple(MINIATURES)


# ---------------------------------------------------------------------- the miniature
@dataclasses.dataclass(frozen=True)
class Job:
    """Train one model of one family and seed (unless done), then run its evaluations."""

    family: str
    seed: int
    spec: ModelSpec
    steps: int
    run_dir: str
    train_file: str
    tests: tuple[str, ...]  # data files to evaluate on (the held-out test first)
    decode_steps: int

    @property
    def cost(self) -> float:  # for scheduling, longest first
        return self.steps * MINIATURES[self.family].batch_size * _TOKENS.get(self.family, 64)


# Rough tokens per example, for ordering the jobs (longest first) only.
_TOKENS = {"path": 120, "countdown": 30, "sudoku": 40, "sat": 140}  # path: micro is slow per token


def seed_dir(out: Path, family: str, seed: int) -> Path:
    return out / family / f"seed{seed}"


def public_dir() -> Path | None:
    """../shared/testsets beside the checkout (or $DVAR_TESTSETS), if present."""
    env = os.environ.get("DVAR_TESTSETS")
    candidates = [Path(env)] if env else []
    root = Path(__file__).resolve().parent.parent
    candidates += [root.parent / "shared" / "testsets", Path.cwd().parent / "shared" / "testsets"]
    return next((path for path in candidates if path.is_dir()), None)


def make_data(mini: Miniature, seed: int, out: Path, train_size: int, test_size: int) -> dict[str, Any]:
    """Training problems (never one of a public test set used for this family), then
    held-out test problems that never occur in training (canonical forms compared), as
    `dvar demo` draws them: the path miniature trains on the demo's data."""
    from dvar.data import read_examples, write_jsonl
    from dvar.generation import generate
    from dvar.tasks import get_task

    data = seed_dir(out, mini.family, seed) / "data"
    done = data / "done.json"
    if done.is_file():
        return json.loads(done.read_text())
    start = time.perf_counter()
    task = get_task(mini.task)
    options = task.make_options(**mini.options)
    public, exclude = [], set()
    folder = public_dir()
    for name in mini.public:
        if folder is not None and (folder / name).is_file():
            public.append(str(folder / name))
            exclude |= {task.canonical(ex.problem) for ex in read_examples(folder / name, task)}
    train_rows = generate(task, train_size, seed, options, exclude=exclude)
    seen = {task.canonical(task.parse_input(row["input"])) for row in train_rows}
    test_rows = generate(task, test_size, 1_000_000 + seed, options, exclude=seen, unique=True)
    write_jsonl(data / "train.jsonl", train_rows)
    write_jsonl(data / "test.jsonl", test_rows)
    info = {"train": str(data / "train.jsonl"), "test": str(data / "test.jsonl"), "public": public,
            "train_size": len(train_rows), "test_size": len(test_rows),
            "seconds": round(time.perf_counter() - start, 2)}
    done.write_text(json.dumps(info, indent=2) + "\n")
    return info


def job_config(mini: Miniature, job: Job):
    """The trainer's Config of a job: the miniature's recipe, then the model's overrides."""
    from dvar.config import Config, _set

    cfg = Config(task=mini.task, objective=job.spec.objective, model=mini.model, out_dir=job.run_dir,
                 seed=job.seed)
    cfg.data.train = job.train_file
    cfg.data.answer_order = job.spec.order
    cfg.data.valid_size = 64
    cfg.train.max_steps = job.steps
    cfg.train.batch_size = mini.batch_size
    cfg.train.lr = mini.lr
    cfg.train.warmup_steps = min(100, max(1, job.steps // 10))
    cfg.train.log_every = max(1, min(50, job.steps // 10))
    cfg.train.eval_size = 0  # evaluated on the held-out test set afterwards
    cfg.train.save_every = max(1, job.steps // 4)  # a killed run resumes from here
    cfg.train.keep_checkpoints = 1
    cfg.arch.positions = "learned+rope"
    cfg.diffusion.time_weighting = mini.time_weighting
    cfg.diffusion.gamma = mini.gamma
    for item in job.spec.overrides:
        key, _, value = item.partition("=")
        _set(cfg, key, yaml.safe_load(value), source=f"model {job.spec.name}")
    return cfg


# What makes two runs the same for reuse (a run directory trained with other settings is
# never silently reused or resumed under new ones).
_SAME = ("task", "objective", "model", "seed", "data.train", "data.answer_order", "train.max_steps",
         "train.batch_size", "train.lr", "arch.dropout", "arch.positions", "diffusion.time_weighting",
         "diffusion.gamma", "diffusion.shift")


def check_same_run(cfg, out: Path) -> None:
    from dvar.config import load_config, to_dict

    if not (out / "config.yaml").is_file():
        return
    have, want = to_dict(load_config(out / "config.yaml")), to_dict(cfg)
    for key in _SAME:
        a, b = have, want
        for part in key.split("."):
            a, b = a[part], b[part]
        if b is not None and a != b:
            raise ValueError(f"{out} holds a run with {key}={a}, this plan wants {b}: "
                             "give another --out (or remove that run)")


def run_state(out: Path) -> str:
    """`done` (a finished run: its weights), `resume` (killed after a checkpoint) or
    `fresh`; a directory killed before its first checkpoint is removed (nothing to keep)."""
    from dvar.checkpoint import list_checkpoints
    from dvar.hf import RUN_SUBDIR

    if (out / "model.safetensors").is_file() or (out / RUN_SUBDIR).is_dir():
        return "done"
    if list_checkpoints(out):
        return "resume"
    if out.exists():
        shutil.rmtree(out)
    return "fresh"


def train_if_needed(cfg, bar_position: int = 0) -> tuple[Path, float | None]:
    """Reuse a finished run, resume a killed one from its last checkpoint, else start
    over; returns (run directory, training seconds or None when reused)."""
    from dvar.trainer import train

    out = Path(cfg.out_dir)
    check_same_run(cfg, out)
    state = run_state(out)
    if state == "done":
        return out, None
    cfg = dataclasses.replace(cfg, resume=state == "resume")
    start = time.perf_counter()
    train(cfg, bar_position=bar_position)
    return out, time.perf_counter() - start


def evaluate_into(run_dir: Path, data_file: str, decoding: Decoding, steps: int, seed: int,
                  run=None) -> tuple[dict[str, Any], float | None]:
    """`dvar eval RUN --data FILE --decoder ... --out RUN/eval/STEM-KEY`, reused if done."""
    from dvar.data import read_examples
    from dvar.evaluate import evaluate, load_run, save_evaluation

    out = run_dir / "eval" / f"{Path(data_file).stem}-{decoding.key}"
    if (out / "metrics.json").is_file():
        return json.loads((out / "metrics.json").read_text()), None
    run = run or load_run(run_dir)
    examples = read_examples(data_file, run.task)
    settings = dict(decoding.settings)
    decode_steps = steps if run.config.objective == "mdm" else 0
    result = evaluate(run, examples, decoder=decoding.decoder, steps=decode_steps, seed=seed,
                      source=data_file, decoder_settings=settings)
    save_evaluation(result, out)
    return result.metrics, result.metrics["seconds"]


_BAR = 0


def _init_worker(threads: int, counter: Any, lock: Any) -> None:
    import torch
    from tqdm import tqdm

    global _BAR
    torch.set_num_threads(threads)
    with counter.get_lock():
        _BAR = counter.value
        counter.value += 1
    tqdm.set_lock(lock)


def run_job(job: Job) -> dict[str, Any]:
    """Worker: train and evaluate one model; returns its wall times."""
    from dvar.evaluate import load_run

    mini = MINIATURES[job.family]
    cfg = job_config(mini, job)
    run_dir, train_seconds = train_if_needed(cfg, bar_position=_BAR)
    if train_seconds is not None:
        (run_dir / "reproduce-train.json").write_text(json.dumps({"seconds": round(train_seconds, 1)}) + "\n")
    run = load_run(run_dir)
    steps = job.decode_steps or run.config.data.max_new_tokens
    evals = {}
    for data_file in job.tests:
        for decoding in job.spec.decodings:
            if data_file != job.tests[0] and decoding not in (TOPK, GREEDY):
                continue  # public sets: each model's default decoding only
            _, seconds = evaluate_into(run_dir, data_file, decoding, steps, job.seed, run)
            evals[f"{Path(data_file).stem}-{decoding.key}"] = seconds
    return {"family": job.family, "seed": job.seed, "model": job.spec.name,
            "train_seconds": train_seconds, "eval_seconds": evals}


def plan_cpu(families: list[str], seeds: list[int], out: Path, quick: bool,
             train_size: int = 0, test_size: int = 0, steps: int = 0,
             roles: tuple[str, ...] = DEFAULT_ROLES, models: list[str] | None = None,
             overrides: tuple[str, ...] = ()) -> tuple[list[Job], dict[str, Any]]:
    """Generate every data set (done here, reused when present) and list the jobs."""
    jobs: list[Job] = []
    data: dict[str, Any] = {}
    for family in families:
        mini = MINIATURES[family]
        for seed in seeds:
            info = make_data(mini, seed, out, train_size or mini.train_size, test_size or mini.test_size)
            data[f"{family}/seed{seed}"] = info
            base = steps or (mini.quick_steps or mini.steps if quick else mini.steps)
            for spec in mini.specs():
                if spec.role not in roles or (models and spec.name not in models):
                    continue
                if overrides:
                    spec = dataclasses.replace(spec, overrides=spec.overrides + tuple(overrides))
                tests = (info["test"], *(info["public"] if spec.role == "main" else ()))
                jobs.append(Job(family, seed, spec, max(1, round(base * spec.steps_factor)),
                                str(seed_dir(out, family, seed) / "runs" / spec.name),
                                info["train"], tests, mini.decode_steps))
    return jobs, data


def run_jobs(jobs: list[Job], workers: int, log: Callable[[str], None] = _say) -> list[dict[str, Any]]:
    """Run the jobs, longest first, on `workers` processes with the cores split evenly."""
    import torch

    ordered = sorted(jobs, key=lambda job: -job.cost)

    def report(job: Job, result: dict[str, Any], left: int) -> None:
        took = result["train_seconds"]
        log(f"done: {job.family} seed {job.seed} {job.spec.name} "
            f"({'reused' if took is None else f'trained in {took:.0f} s'}; {left} job(s) left)")

    if workers <= 1 or len(ordered) <= 1:
        results = []
        for index, job in enumerate(ordered):
            results.append(run_job(job))
            report(job, results[-1], len(ordered) - index - 1)
        return results
    threads = max(1, torch.get_num_threads() // workers)
    context = multiprocessing.get_context("spawn")
    results = []
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker,
                             initargs=(threads, context.Value("i", 0), context.RLock())) as pool:
        pending = {pool.submit(run_job, job): job for job in ordered}
        while pending:
            finished, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in finished:
                job = pending.pop(future)
                results.append(future.result())
                report(job, results[-1], len(pending))
    return results


# ---------------------------------------------------------------------- the report
def _stats(values: list[float]) -> dict[str, float]:
    return {"mean": statistics.fmean(values), "min": min(values), "max": max(values)}


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}%"


def _spread(stats: dict[str, float] | None) -> str:
    if not stats:
        return "–"
    if stats["min"] == stats["max"]:
        return _pct(stats["mean"])
    return f"{_pct(stats['mean'])} ({100 * stats['min']:.1f}–{100 * stats['max']:.1f})"


def _run_compute(run_dir: Path) -> dict[str, Any]:
    """A trained run's compute: steps x batch, parameters, examples seen, wall seconds."""
    from dvar.config import load_config

    info: dict[str, Any] = {}
    if (run_dir / "config.yaml").is_file():
        cfg = load_config(run_dir / "config.yaml")
        info.update(steps=cfg.train.max_steps, batch_size=cfg.train.batch_size, model=cfg.model,
                    examples=cfg.train.max_steps * cfg.train.batch_size, cutoff=cfg.data.cutoff)
    if (run_dir / "model.json").is_file():
        model = json.loads((run_dir / "model.json").read_text())
        info["parameters"] = model.get("parameters", model.get("num_parameters"))
    log = run_dir / "train_log.jsonl"
    rows = [json.loads(line) for line in log.read_text().splitlines() if line.strip()] if log.is_file() else []
    if rows:
        info["final_loss"] = rows[-1].get("loss")
    timing = run_dir / "reproduce-train.json"
    if timing.is_file():
        info["train_seconds"] = json.loads(timing.read_text())["seconds"]
    return info


def collect(out: Path, families: list[str], seeds: list[int], quick: bool = False, steps: int = 0,
            train_size: int = 0, test_size: int = 0) -> dict[str, Any]:
    """Everything results.md shows, read from the metrics.json files under `out`: every
    model of the family that has a run directory for one of `seeds`."""
    summary: dict[str, Any] = {"families": {}}
    for family in families:
        mini = MINIATURES[family]
        specs = [s for s in mini.specs()
                 if any((seed_dir(out, family, seed) / "runs" / s.name).is_dir() for seed in seeds)]
        setting = _setting(mini)
        setting.update(steps=steps or (mini.quick_steps or mini.steps if quick else mini.steps),
                       train_size=train_size or mini.train_size, test_size=test_size or mini.test_size)
        fam: dict[str, Any] = {"setting": setting, "models": {}, "published": _published(mini.task)}
        for spec in specs:
            entry: dict[str, Any] = {"label": spec.label, "objective": spec.objective, "order": spec.order,
                                     "role": spec.role, "steps_factor": spec.steps_factor,
                                     "overrides": list(spec.overrides), "decodings": {}, "compute": {}}
            for seed in seeds:
                run_dir = seed_dir(out, family, seed) / "runs" / spec.name
                if (run_dir / "model.safetensors").is_file():
                    entry["compute"][str(seed)] = _run_compute(run_dir)
                for metrics_file in sorted((run_dir / "eval").glob("*/metrics.json")):
                    key = _decoding_key(metrics_file.parent.name, spec)
                    stem = metrics_file.parent.name[: -len(key) - 1]
                    metrics = json.loads(metrics_file.read_text())
                    slot = entry["decodings"].setdefault(key, {}).setdefault(stem, {"seeds": {}})
                    slot["seeds"][str(seed)] = {
                        "accuracy": metrics["accuracy"], "n": metrics["n"],
                        "well_formed": _well_formed(metrics, metrics_file.parent / "predictions.jsonl", family),
                        "by": {k: v["accuracy"] for k, v in metrics["by"].items()},
                        "nfe_per_example": metrics.get("nfe_per_example"),
                        "seconds": metrics.get("seconds"), "metrics": str(metrics_file),
                        "data": metrics.get("data"),
                    }
            for key, tests in entry["decodings"].items():
                for stem, slot in tests.items():
                    accs = [s["accuracy"] for s in slot["seeds"].values()]
                    slot["accuracy"] = _stats(accs)
                    formed = [s["well_formed"] for s in slot["seeds"].values() if s["well_formed"] is not None]
                    slot["well_formed"] = _stats(formed) if formed else None
                    keys = sorted({k for s in slot["seeds"].values() for k in s["by"]}, key=_natural)
                    slot["by"] = {k: _stats([s["by"][k] for s in slot["seeds"].values() if k in s["by"]])
                                  for k in keys}
            order = [d.key for d in spec.decodings]
            entry["decodings"] = dict(sorted(entry["decodings"].items(),
                                             key=lambda kv: order.index(kv[0]) if kv[0] in order else len(order)))
            fam["models"][spec.name] = entry
        fam["verdicts"] = verdicts(family, fam, seeds)
        summary["families"][family] = fam
    return summary


def _well_formed(metrics: dict[str, Any], predictions: Path, family: str) -> float | None:
    """The share of answers in the task's form (metrics.json's, else from the predictions)."""
    if "well_formed" in metrics:
        return metrics["well_formed"]
    if not predictions.is_file():
        return None
    from dvar.tasks import get_task

    task = get_task(MINIATURES[family].task)
    rows = [json.loads(line) for line in predictions.read_text().splitlines() if line.strip()]
    return sum(task.well_formed(task.parse_input(r["input"]), r["predict"]) for r in rows) / max(len(rows), 1)


def _decoding_key(name: str, spec: ModelSpec) -> str:
    """The decoding key at the end of an eval directory name `STEM-KEY` (keys may hold '-')."""
    keys = sorted((d.key for d in spec.decodings), key=len, reverse=True)
    return next((k for k in keys if name.endswith("-" + k)), name.rpartition("-")[2])


def _setting(mini: Miniature) -> dict[str, Any]:
    return {"task": mini.task, "options": mini.options, "description": mini.description,
            "paper_setting": mini.paper_setting, "model": mini.model, "steps": mini.steps,
            "batch_size": mini.batch_size, "lr": mini.lr, "train_size": mini.train_size,
            "test_size": mini.test_size, "time_weighting": mini.time_weighting, "gamma": mini.gamma,
            "paper_epochs": {"mdm": mini.paper_epochs[0], "ar": mini.paper_epochs[1]},
            "public": list(mini.public)}


def _published(task: str) -> list[dict[str, Any]]:
    from dvar.report import PUBLISHED

    return [{"subset": p.subset, "objective": p.objective, "accuracy": p.accuracy, "model": p.model,
             "source": p.source, "answer_order": p.answer_order} for p in PUBLISHED if p.task == task]


def _per_seed(fam: dict[str, Any], model: str, decoding: str, stem: str = "test") -> dict[str, dict]:
    try:
        return fam["models"][model]["decodings"][decoding][stem]["seeds"]
    except KeyError:
        return {}


def compare(a: dict[str, dict], b: dict[str, dict], label_a: str, label_b: str) -> dict[str, Any]:
    """`a` against `b` seed by seed: who is ahead (more than TIE) on every seed, or mixed."""
    seeds = sorted(set(a) & set(b), key=int)
    diffs = [a[s]["accuracy"] - b[s]["accuracy"] for s in seeds]
    if not diffs:
        return {"verdict": "not measured", "seeds": [], "diffs": []}
    if all(d > TIE for d in diffs):
        text = f"{label_a} ahead on every seed ({_points(diffs)})"
    elif all(d < -TIE for d in diffs):
        text = f"{label_b} ahead on every seed ({_points([-d for d in diffs])})"
    else:
        text = f"not shown: no side ahead on every seed ({label_a} − {label_b}: {_points(diffs)})"
    return {"verdict": text, "seeds": seeds, "diffs": diffs}


def _points(diffs: list[float]) -> str:
    return ", ".join(f"{100 * d:+.1f}" for d in diffs) + " points"


def verdicts(family: str, fam: dict[str, Any], seeds: list[int]) -> dict[str, Any]:
    """Verdicts computed from the numbers: MDM vs AR at equal steps, at the paper's epoch
    ratio, against the best other answer order, and dvar's recipe against the reference's;
    for path also the paper's finding by planning distance on every seed."""
    mdm, ar = _per_seed(fam, "mdm", TOPK.key), _per_seed(fam, "ar", GREEDY.key)
    out: dict[str, Any] = {
        "equal_compute": compare(mdm, ar, "MDM", "AR"),
    }
    if "ar-paper-ratio" in fam["models"]:
        out["paper_ratio"] = compare(mdm, _per_seed(fam, "ar-paper-ratio", GREEDY.key), "MDM", "AR")
    if "mdm-paper-ratio" in fam["models"]:
        out["paper_ratio"] = compare(_per_seed(fam, "mdm-paper-ratio", TOPK.key), ar, "MDM", "AR")
    for name in fam["models"]:
        if fam["models"][name]["role"] == "control":
            out[f"mdm_vs_{name}"] = compare(mdm, _per_seed(fam, name, GREEDY.key), "MDM",
                                            fam["models"][name]["label"])
    if "mdm-reference" in fam["models"]:
        out["dvar_vs_reference_recipe"] = compare(
            mdm, _per_seed(fam, "mdm-reference", TOPK_PAPER_REPREDICT.key),
            "dvar's MDM recipe", "the reference's")
    out["decoders"] = compare(mdm, _per_seed(fam, "mdm", TOPK_PAPER.key),
                              "top-k noise 0", "top-k noise 0.5 (the paper's)")
    if family == "path":
        out["finding"] = path_finding(mdm, ar)
    out["format"] = format_verdict(fam)
    return out


FORMAT_BAR = 0.95  # the miniature's bar: >= 95% of answers in the task's form


def format_verdict(fam: dict[str, Any]) -> dict[str, Any]:
    """Did MDM and AR learn the answer's form (>= 95% well-formed on every seed)?"""
    low = {}
    for name in ("mdm", "ar"):
        key = TOPK.key if name == "mdm" else GREEDY.key
        slot = fam["models"].get(name, {}).get("decodings", {}).get(key, {}).get("test")
        formed = slot and slot.get("well_formed")
        if formed and formed["min"] < FORMAT_BAR:
            low[name] = formed["min"]
    if not low:
        return {"verdict": f"both write >= {100 * FORMAT_BAR:.0f}% well-formed answers on every seed", "low": low}
    return {"verdict": "format NOT learned on every seed: " + ", ".join(
        f"{n.upper()} {100 * v:.1f}% well-formed at worst" for n, v in low.items()), "low": low}


def path_finding(mdm: dict[str, dict], ar: dict[str, dict]) -> dict[str, Any]:
    """The paper's path finding per seed, judged as `dvar demo` judges it
    (`dvar.demo.shows_finding`: MDM >= 90% at every PD, AR < 75% from PD 2 on)."""
    from dvar.demo import AR_BAR, MDM_BAR, shows_finding

    per_seed = {}
    for seed in sorted(set(mdm) & set(ar), key=int):
        m = [v for k, v in mdm[seed]["by"].items() if k.startswith("pd=")]
        a = [v for k, v in ar[seed]["by"].items() if k.startswith("pd=") and int(k[3:]) >= 2]
        per_seed[seed] = {"mdm_min": min(m, default=None), "ar_far_max": max(a, default=None),
                          "shown": shows_finding({"mdm": mdm[seed]["by"], "ar": ar[seed]["by"]})}
    shown = [s for s, v in per_seed.items() if v["shown"]]
    text = (f"shown on {len(shown)} of {len(per_seed)} seeds (MDM >= {100 * MDM_BAR:.0f}% at every planning "
            f"distance and AR < {100 * AR_BAR:.0f}% from planning distance 2 on)")
    if len(shown) < len(per_seed):
        text = "not shown on every seed: " + text
    return {"verdict": text, "per_seed": per_seed}


def results_markdown(summary: dict[str, Any], seeds: list[int]) -> str:
    """results.md: per family the setting, each model's accuracy per seed with mean and
    min–max, by breakdown key, the published numbers at the paper's scale, the verdicts."""
    lines = [f"# dvar reproduce --scale {summary.get('scale', 'cpu')}", ""]
    if summary.get("scale", "cpu") == "cpu":
        lines += ["The paper's study in miniature (SPEC §10): every family smaller than the paper's, "
                  f"seeds {', '.join(map(str, seeds))}, held-out test problems the training data exclude. "
                  "Accuracy per seed, then mean (min–max over seeds). Compute: optimizer steps × batch "
                  "(equal for MDM and AR unless the row says the paper's ratio). Published numbers are "
                  "at the paper's scale, not this one: beside, not comparable.", ""]
    wall = summary.get("wall_seconds")
    if wall is not None:
        trained = summary.get("train_seconds_total")
        lines += [f"Wall time of this call: {wall / 60:.1f} min ({summary.get('workers', 1)} worker(s); "
                  "finished runs and evaluations are reused, not timed again)"
                  + (f". Training time of every model in this report, as each run recorded it: "
                     f"{trained / 60:.1f} worker-minutes." if trained else "."), ""]
    for family, fam in summary["families"].items():
        setting = fam["setting"]
        lines += [f"## {family}: {setting['description']}", "",
                  f"Paper: {setting['paper_setting']}. Here: `{setting['model']}` models, "
                  f"{setting['steps']} steps × {setting['batch_size']} at lr {setting['lr']}, "
                  f"{setting['train_size']} training / {setting['test_size']} test problems per seed; "
                  f"the paper trains MDM {setting['paper_epochs']['mdm']} and AR "
                  f"{setting['paper_epochs']['ar']} epochs.", ""]
        header = ("| model | decoding | steps × batch | " + " | ".join(f"seed {s}" for s in seeds)
                  + " | mean (min–max) | well-formed, min over seeds |")
        lines += [header, "|---|---|---|" + "---|" * len(seeds) + "---|---|"]
        by_rows = []
        public_rows = []
        for name, entry in fam["models"].items():
            compute = next(iter(entry["compute"].values()), {})
            steps = f"{compute.get('steps', '?')} × {compute.get('batch_size', '?')}"
            for key, tests in entry["decodings"].items():
                for stem, slot in tests.items():
                    cells = " | ".join(_pct(slot["seeds"][str(s)]["accuracy"]) if str(s) in slot["seeds"] else "–"
                                       for s in seeds)
                    formed = slot.get("well_formed")
                    row = (f"| {entry['label']} | {key} | {steps} | {cells} | {_spread(slot['accuracy'])} | "
                           f"{_pct(formed['min']) if formed else '–'} |")
                    if stem == "test":
                        lines.append(row)
                        if key in (TOPK.key, GREEDY.key) and len(slot["by"]) > 1:
                            by_rows.append((entry["label"], key, slot["by"]))
                    else:
                        public_rows.append((stem, row))
        if by_rows:
            keys = sorted({k for _, _, by in by_rows for k in by}, key=_natural)
            lines += ["", "By " + keys[0].split("=")[0] + ", mean (min–max) over seeds:", "",
                      "| model | decoding | " + " | ".join(keys) + " |", "|---|---|" + "---|" * len(keys)]
            for label, key, by in by_rows:
                lines.append(f"| {label} | {key} | " + " | ".join(_spread(by.get(k)) for k in keys) + " |")
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
        names = {"finding": "the paper's path finding", "equal_compute": "MDM vs AR at equal steps",
                 "paper_ratio": "MDM vs AR at the paper's epoch ratio",
                 "dvar_vs_reference_recipe": "dvar's MDM recipe vs the reference's settings",
                 "decoders": "MDM decoding, noise 0 vs the paper's noise 0.5",
                 "format": "answer format"}
        for key, verdict in fam["verdicts"].items():
            model = key.removeprefix("mdm_vs_")
            label = names.get(key) or f"MDM vs {fam['models'][model]['label']}"
            lines.append(f"- {label}: {verdict['verdict']}")
        lines.append("")
    return "\n".join(lines) + "\n"


def plot_family(family: str, fam: dict[str, Any], path: Path) -> Path | None:
    """Accuracy by breakdown key (or overall), mean over seeds with the min–max band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series = []
    for name, entry in fam["models"].items():
        key = TOPK.key if entry["objective"] == "mdm" else GREEDY.key
        slot = entry["decodings"].get(key, {}).get("test")
        if slot:
            series.append((entry["label"], slot))
    if not series:
        return None
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    keys = sorted({k for _, slot in series for k in slot["by"]}, key=_natural)
    use_by = len(keys) > 1
    for index, (label, slot) in enumerate(series):
        if use_by:
            xs = [k for k in keys if k in slot["by"]]
            stats = [slot["by"][k] for k in xs]
            positions = [keys.index(k) for k in xs]
        else:
            stats, positions = [slot["accuracy"]], [index]
        means = [100 * s["mean"] for s in stats]
        low = [100 * (s["mean"] - s["min"]) for s in stats]
        high = [100 * (s["max"] - s["mean"]) for s in stats]
        ax.errorbar(positions, means, yerr=[low, high], fmt="o-" if use_by else "o", capsize=3, label=label)
    if use_by:
        ax.set_xticks(range(len(keys)), keys)
        ax.set_xlabel(keys[0].split("=")[0])
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


def _write_summary(out: Path, summary: dict[str, Any]) -> None:
    tmp = out / (SUMMARY + ".tmp")
    tmp.write_text(json.dumps(summary, indent=2, default=str) + "\n")
    os.replace(tmp, out / SUMMARY)


def write_report(out: Path, summary: dict[str, Any], seeds: list[int]) -> None:
    (out / RESULTS).write_text(results_markdown(summary, seeds))
    _write_summary(out, summary)
    for family, fam in summary["families"].items():
        plot_family(family, fam, out / f"{family}.png")


def reproduce_cpu(out: str | Path, families: list[str] = FAMILIES, seeds: list[int] = (0, 1, 2),
                  quick: bool = False, workers: int = 0, roles: tuple[str, ...] = DEFAULT_ROLES,
                  models: list[str] | None = None, overrides: tuple[str, ...] = (),
                  train_size: int = 0, test_size: int = 0, steps: int = 0,
                  log: Callable[[str], None] = _say) -> dict[str, Any]:
    """The miniature: data, training, evaluation, report. Returns reproduce.json's content."""
    from dvar.generation import default_workers

    start = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    seeds = list(seeds)
    workers = workers or default_workers()
    log(f"[1/3] data: {', '.join(families)} × seeds {', '.join(map(str, seeds))}")
    jobs, data = plan_cpu(list(families), seeds, out, quick, train_size, test_size, steps, roles,
                          models, tuple(overrides))
    data_seconds = time.perf_counter() - start
    log(f"[2/3] {len(jobs)} models to train and evaluate on {workers} worker(s)")
    results = run_jobs(jobs, workers, log)
    log("[3/3] report")
    summary = collect(out, list(families), seeds, quick, steps, train_size, test_size)
    summary["train_seconds_total"] = round(sum(
        c.get("train_seconds", 0.0) for fam in summary["families"].values() for m in fam["models"].values()
        for c in m["compute"].values()), 1)
    summary.update(scale="cpu", quick=quick, seeds=seeds, workers=workers, data=data,
                   overrides=list(overrides),
                   stages={"data_seconds": round(data_seconds, 1), "jobs": results},
                   wall_seconds=round(time.perf_counter() - start, 1))
    write_report(out, summary, seeds)
    log(f"wrote {out}/{RESULTS}, {SUMMARY} and a plot per family in {summary['wall_seconds'] / 60:.1f} min")
    return summary


# ---------------------------------------------------------------------- the paper (GPU)
# The paper's 16 recipes (configs/NAME.yaml; dvar's own settings in configs/dvar/): the
# data set each reads (`dvar generate paper`) and the public sets in its format.
PAPER_RECIPES: dict[str, tuple[str, str, tuple[str, ...]]] = {
    # name: (family, data set, public test files)
    **{f"path-{o}": ("path", "path", ()) for o in ("mdm", "ar")},
    **{f"cd{n}-{o}": ("countdown", f"cd{n}", (f"countdown_dream_cd{n}.jsonl",)
                      + (("game24_tot.jsonl",) if n == 4 else ())) for n in (3, 4, 5) for o in ("mdm", "ar")},
    **{f"sudoku-{o}": ("sudoku", "sudoku", ("sudoku_kaggle1m_tky135_test.csv", "sudoku_magictour_top1465.csv"))
       for o in ("mdm", "ar")},
    **{f"sat{n}-{o}": ("sat", f"sat{n}", ()) for n in (5, 7, 9) for o in ("mdm", "ar")},
}


def configs_dir(recipes: str = "reference", configs: str = "") -> Path:
    """configs/ of the checkout: the reference's recipes and dvar's overlays (configs/dvar/)."""
    from dvar.config import CONFIGS_DIR

    folder = Path(configs) if configs else CONFIGS_DIR
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no recipe folder (give --configs DIR)")
    return folder


@dataclasses.dataclass
class GpuRun:
    recipe: str
    family: str
    dataset: str
    seed: int
    config: list[Path]  # the recipe, then dvar's overlay (--recipes dvar)
    run_dir: Path
    overrides: list[str]
    tests: list[str]
    steps: int = 0
    tokens: int = 0


def plan_gpu(out: Path, families: list[str], seeds: list[int], recipes: str, configs: str,
             only: list[str] | None, max_steps: int, model: str, extra: list[str], sizes: dict[str, int]) -> list[GpuRun]:
    from dvar.config import load_config, recipe_files

    folder = configs_dir(recipes, configs)
    unknown = sorted(set(only or ()) - set(PAPER_RECIPES))
    if unknown:
        raise ValueError(f"unknown recipe(s) {', '.join(unknown)}; known: {', '.join(PAPER_RECIPES)}")
    public = public_dir()
    plan = []
    for name, (family, dataset, public_files) in PAPER_RECIPES.items():
        if family not in families or (only and name not in only):
            continue
        config = recipe_files(name, recipes, configs=folder)
        data = out / "data" / dataset
        tests = [str(data / "test.jsonl")] + ([str(data / "test_ood.jsonl")] if family == "countdown" else [])
        tests += [str(public / f) for f in public_files if public is not None and (public / f).is_file()]
        for seed in seeds:
            run_dir = out / "runs" / (name if len(seeds) == 1 else f"{name}-seed{seed}")
            overrides = [f"data.train={data / 'train.jsonl'}", f"out_dir={run_dir}", f"seed={seed}",
                         *([f"model={model}"] if model else []), *extra]
            cfg = load_config(config, overrides)
            n = max(1, sizes.get(dataset, 0) - cfg.data.valid_size)
            steps = cfg.train.max_steps or max(1, math.ceil(cfg.train.epochs * n / cfg.train.batch_size))
            if max_steps and steps > max_steps:
                steps = max_steps
                overrides.append(f"train.max_steps={steps}")
            plan.append(GpuRun(name, family, dataset, seed, config, run_dir, overrides, tests, steps,
                               steps * cfg.train.batch_size * cfg.data.cutoff))
    return plan


def _paper_sizes(data_scale: float) -> dict[str, int]:
    from dvar.paper import DATASETS

    return {d.name: max(1, round(d.train_size * data_scale)) for d in DATASETS}


def format_plan(plan: list[GpuRun], tokens_per_s: float, gpus: int) -> str:
    lines = ["| recipe | data | steps | tokens (steps × batch × cutoff) | est. GPU-hours |", "|---|---|---|---|---|"]
    total = 0.0
    for run in plan:
        hours = run.tokens / tokens_per_s / 3600 if tokens_per_s else None
        total += hours or 0.0
        lines.append(f"| {run.run_dir.name} | {run.dataset} | {run.steps} | {run.tokens:.3g} | "
                     f"{'unknown' if hours is None else f'{hours:.2f}'} |")
    if tokens_per_s:
        lines.append(f"\nTotal ≈ {total:.1f} GPU-hours at {tokens_per_s:.0f} tokens/s per GPU"
                     f" ({total / max(gpus, 1):.1f} h wall on {max(gpus, 1)} GPU(s), data parallel).")
    else:
        lines.append("\nGPU-hours: no GPU throughput measured yet (give --tokens-per-s from "
                     "benchmarks/train_throughput.py on your GPU).")
    return "\n".join(lines)


def _dvar(*args: str, gpus: int = 0) -> list[str]:
    if gpus > 1:
        return ["torchrun", "--standalone", f"--nproc_per_node={gpus}", "-m", "dvar", *args]
    return [sys.executable, "-m", "dvar", *args]


def reproduce_gpu(out: str | Path, tasks: list[str] = FAMILIES, seeds: list[int] = (0,),
                  recipes: str = "reference", configs: str = "", only: list[str] | None = None,
                  dry_run: bool = False, tokens_per_s: float = 0.0, data_scale: float = 1.0,
                  max_steps: int = 0, model: str = "", extra: list[str] = (),
                  log: Callable[[str], None] = _say) -> int:
    """The paper at its scale: data, the 16 recipes, evaluations, report (module docstring)."""
    import torch

    start = time.perf_counter()
    out = Path(out)
    seeds = list(seeds)
    gpus = torch.cuda.device_count()
    plan = plan_gpu(out, list(tasks), seeds, recipes, configs, only, max_steps, model, list(extra),
                    _paper_sizes(data_scale))
    log(f"plan: {len(plan)} run(s) of the {recipes} recipes ({configs_dir(recipes, configs)}), "
        f"{gpus} GPU(s) visible, data scale {data_scale}")
    log(format_plan(plan, tokens_per_s, gpus))
    if dry_run:
        return 0
    stages: dict[str, Any] = {}
    datasets = sorted({run.dataset for run in plan})
    manifest = out / "data" / "manifest.json"
    have = json.loads(manifest.read_text()) if manifest.is_file() else {}
    if have.get("scale") != data_scale or not set(datasets) <= set(have.get("datasets", {})):
        from dvar.generation import default_workers
        from dvar.paper import generate_paper

        t = time.perf_counter()
        generate_paper(out / "data", seed=0, scale=data_scale, workers=default_workers(), only=datasets)
        stages["data_seconds"] = round(time.perf_counter() - t, 1)
    for run in plan:
        state = run_state(run.run_dir)
        if state != "done":
            command = _dvar("train", *map(str, run.config), *run.overrides,
                            *(["resume=true"] if state == "resume" else []), gpus=gpus)
            t = time.perf_counter()
            log(f"train {run.run_dir.name}: {' '.join(command)}")
            subprocess.run(command, check=True)
            stages[f"train {run.run_dir.name}"] = round(time.perf_counter() - t, 1)
        for test in run.tests:
            eval_dir = run.run_dir / "eval" / f"{Path(test).stem}-default"
            if (eval_dir / "metrics.json").is_file():
                continue
            t = time.perf_counter()
            subprocess.run(_dvar("eval", str(run.run_dir), "--data", test, "--out", str(eval_dir)), check=True)
            stages[f"eval {run.run_dir.name} {Path(test).stem}"] = round(time.perf_counter() - t, 1)
    summary = collect_gpu(plan)
    summary.update(scale="gpu", recipes=recipes, data_scale=data_scale, gpus=gpus, stages=stages,
                   seeds=seeds, wall_seconds=round(time.perf_counter() - start, 1))
    (out / RESULTS).write_text(gpu_markdown(summary))
    _write_summary(out, summary)
    plot_gpu(summary, out)
    log(f"wrote {out}/{RESULTS}, {SUMMARY} and a plot per task")
    return 0


def collect_gpu(plan: list[GpuRun]) -> dict[str, Any]:
    runs: dict[str, Any] = {}
    for run in plan:
        entry = {"recipe": run.recipe, "family": run.family, "dataset": run.dataset, "seed": run.seed,
                 "steps": run.steps, "run_dir": str(run.run_dir), "compute": _run_compute(run.run_dir), "tests": {}}
        for metrics_file in sorted((run.run_dir / "eval").glob("*-default/metrics.json")):
            metrics = json.loads(metrics_file.read_text())
            entry["tests"][metrics_file.parent.name.removesuffix("-default")] = {
                "accuracy": metrics["accuracy"], "n": metrics["n"], "decoder": metrics["decoder"],
                "by": {k: v["accuracy"] for k, v in metrics["by"].items()}, "metrics": str(metrics_file)}
        runs[run.run_dir.name] = entry
    return {"runs": runs, "published": {f: _published(MINIATURES[f].task) for f in FAMILIES}}


def gpu_markdown(summary: dict[str, Any]) -> str:
    lines = ["# dvar reproduce --scale gpu", "",
             f"Recipes: {summary['recipes']}; data scale {summary['data_scale']}; {summary['gpus']} GPU(s); "
             f"wall time {summary['wall_seconds'] / 60:.1f} min.", "",
             "| run | test set | n | accuracy | decoder | steps |", "|---|---|---|---|---|---|"]
    for name, entry in summary["runs"].items():
        for stem, test in entry["tests"].items():
            lines.append(f"| {name} | {stem} | {test['n']} | {_pct(test['accuracy'])} | {test['decoder']} | {entry['steps']} |")
    lines += ["", "Published (the paper's scale; SPEC §6):", ""]
    for family, published in summary["published"].items():
        for p in published:
            lines.append(f"- {family}: {p['objective'].upper()} {100 * p['accuracy']:.1f}% on {p['subset']} "
                         f"({p['model']}; {p['source']})")
    lines += ["", "Verdicts (MDM vs AR per data set, on its own test set):", ""]
    by_data: dict[str, dict[str, float]] = {}
    for entry in summary["runs"].values():
        test = entry["tests"].get("test")
        if test:
            by_data.setdefault(entry["dataset"], {})[entry["recipe"].rsplit("-", 1)[1]] = test["accuracy"]
    for dataset, accs in by_data.items():
        if "mdm" in accs and "ar" in accs:
            d = accs["mdm"] - accs["ar"]
            who = "MDM ahead" if d > TIE else "AR ahead" if d < -TIE else "a tie"
            lines.append(f"- {dataset}: {who} (MDM {_pct(accs['mdm'])}, AR {_pct(accs['ar'])}; "
                         f"{len(summary['seeds'])} seed(s))")
    return "\n".join(lines) + "\n"


def plot_gpu(summary: dict[str, Any], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    for family in FAMILIES:
        entries = [(n, e) for n, e in summary["runs"].items() if e["family"] == family and "test" in e["tests"]]
        if not entries:
            continue
        fig, ax = plt.subplots(figsize=(6.4, 4.0))
        for name, entry in entries:
            by = entry["tests"]["test"]["by"]
            keys = sorted(by, key=_natural)
            ax.plot(range(len(keys)), [100 * by[k] for k in keys], "o-", label=name)
            ax.set_xticks(range(len(keys)), keys, rotation=20, ha="right", fontsize=7)
        ax.set_ylabel("accuracy (%)")
        ax.set_ylim(-3, 103)
        ax.set_title(f"{family}, the paper's recipes")
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(out / f"{family}.png", dpi=100)
        plt.close(fig)
