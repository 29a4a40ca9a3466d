"""Plan a study: (study, seeds, selections, `key=value` overrides) -> the jobs to run.

A job is one model of one family and seed: its complete run config (what `dvar train`
gets), the data files it is evaluated on and with which decodings. Planning reads no
data and trains nothing; `dvar study plan` prints the jobs with their steps, tokens and
estimated training FLOPs.

    DIR/FAMILY/seedS/data/{train,test}.jsonl     generated per family and seed
    DIR/data/NAME/                               a paper data set (`paper:` families)
    DIR/FAMILY/seedS/runs/MODEL/                 a run directory (dvar.rundir)
    DIR/FAMILY/seedS/runs/MODEL-sSTEPS/          a shorter budget of a family with `budgets`,
                                                 branched off MODEL/ (its trunk)
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import yaml

from dvar.config import Config, ConfigError, _set, load_config
from dvar.rundir import training_flops_per_token
from dvar.study.spec import ROOT, Decoding, Family, Model, Study, flatten, public_dir


@dataclasses.dataclass(frozen=True)
class Job:
    family: Family
    seed: int
    model: Model
    config: Config  # the run config, before the trainer resolves cutoff etc. from the data
    tests: tuple[tuple[str, tuple[Decoding, ...]], ...]  # (data file, decodings), held-out test first
    decode_steps: int  # MDM decoding steps; 0: one answer token per step
    budget: float = 1.0  # the share of the family's step budget (families with `budgets`)

    @property
    def run_dir(self) -> Path:
        return Path(self.config.out_dir)

    @property
    def trunk(self) -> Path | None:
        """The run this one branches off (trained first), or None."""
        return Path(self.config.train.branch_from) if self.config.train.branch_from else None

    @property
    def name(self) -> str:
        name = f"{self.family.name}/seed{self.seed}/{self.model.name}"
        return name if self.budget == 1.0 else f"{name}@{self.config.train.max_steps}"


def seed_dir(out: Path, family: str, seed: int) -> Path:
    return out / family / f"seed{seed}"


def data_files(family: Family, seed: int, out: Path) -> dict[str, Any]:
    """Where a family's data live: train, the held-out tests (stems), the public sets. A
    family tested on another's problems (`test_of`) holds a copy of them as
    data/test-OTHER.jsonl (so its evaluations are named apart from its own test's)."""
    if family.paper:
        from dvar.paper import DATASETS

        dataset = next(d for d in DATASETS if d.name == family.paper)
        folder = out / "data" / family.paper
        tests = [str(folder / f"{stem}.jsonl") for stem in dataset.tests]
        train = str(folder / "train.jsonl")
    else:
        folder = seed_dir(out, family.name, seed) / "data"
        test = f"test-{family.test_of.name}.jsonl" if family.test_of else "test.jsonl"
        train, tests = str(folder / "train.jsonl"), [str(folder / test)]
    public = public_dir()
    publics = [str(public / name) for name in family.public if public is not None and (public / name).is_file()]
    return {"train": train, "tests": tests, "public": publics}


def plan(study: Study, out: str | Path, seeds: list[int] | None = None, only: list[str] | None = None,
         roles: list[str] | None = None, models: list[str] | None = None, overrides: list[str] = (),
         quick: bool = False, steps: int = 0, extend: str | Path | None = None) -> list[Job]:
    """Every job of the study: families `only` (default all), models of `roles` (default
    the study's) or named in `models`, `overrides` (run-config key=value) on every job.
    `extend`: an earlier out folder of this study (another budget); each whole-budget run
    there starts this one's (`extended`)."""
    out = Path(out)
    seeds = list(seeds if seeds is not None else (study.quick_seeds if quick else study.seeds))
    for name in only or ():
        study.family(name)
    known = {m.name for f in study.families for m in f.models}
    unknown = sorted(set(models or ()) - known)
    if unknown:
        raise ConfigError(f"{study.path}: no model {unknown[0]!r}; the study has {', '.join(sorted(known))}")
    roles = list(roles or study.roles)
    jobs = []
    for family in study.families:
        if only and family.name not in only:
            continue
        base_steps = family.budget(quick, steps)
        for seed in seeds:
            files = data_files(family, seed, out)
            for model in family.models:
                if models and model.name not in models or not models and model.role not in roles:
                    continue
                runs = seed_dir(out, family.name, seed) / "runs"
                cfg = job_config(study, family, model, seed, base_steps, files["train"],
                                 runs / model.name, overrides)
                tests = [(test, model.decodings) for test in files["tests"]]
                if model.public_decodings:
                    tests += [(public, model.public_decodings) for public in files["public"]]
                jobs.append(Job(family, seed, model, cfg, tuple(tests), family.decode_steps))
                if family.curve and base_steps:
                    jobs += branches(jobs[-1], runs, files["tests"])
                if extend:
                    extended(cfg, Path(extend) / family.name / f"seed{seed}" / "runs" / model.name)
    return jobs


def branches(trunk: Job, runs: Path, held_out: list[str]) -> list[Job]:
    """A family with `budgets`: its whole-budget job becomes a warmup-stable-decay trunk
    that keeps a checkpoint at each shorter budget's decay start, and each shorter budget a
    job that branches off it there (`train.branch_from`), evaluated on the held-out tests
    (the public sets at the whole budget only)."""
    from dvar.schedule import decay_start

    t = trunk.config.train
    t.schedule = "wsd"
    jobs = []
    for budget in trunk.family.budgets[:-1]:
        steps = max(1, round(t.max_steps * budget))
        cfg = dataclasses.replace(trunk.config, train=dataclasses.replace(
            t, max_steps=steps, branch_from=str(trunk.run_dir), save_at=[],
            save_every=max(1, t.save_every * steps // t.max_steps) if t.save_every else 0),
            out_dir=str(runs / f"{trunk.model.name}-s{steps}"))
        tests = tuple((data, decodings) for data, decodings in trunk.tests if data in held_out)
        jobs.append(dataclasses.replace(trunk, config=cfg, tests=tests, budget=budget))
    t.save_at = sorted({decay_start(j.config.train.max_steps, t.decay_fraction) for j in jobs})
    return jobs


def extended(cfg: Config, earlier: Path) -> None:
    """Start a whole-budget run from `earlier`, the same run at another budget (a wsd
    trunk): from its last checkpoint before either decay, training only the steps it has
    not (`train.branch_from`; bit for bit the run trained from scratch). Nothing to start
    from there: trained from scratch."""
    if (earlier / "config.yaml").is_file():
        if cfg.train.schedule != "wsd":
            raise ConfigError(f"--extend: {cfg.out_dir} is not a warmup-stable-decay run (a family "
                              "without budgets); only a wsd run can start from another budget")
        cfg.train.branch_from = str(earlier)


def job_config(study: Study, family: Family, model: Model, seed: int, base_steps: int, train_file: str,
               run_dir: Path, overrides: list[str] = ()) -> Config:
    """Recipe files <- the study's run <- the family's <- the model's <- overrides <- the job's."""
    recipes = [ROOT / path.format(family=family.name) for path in model.config]
    cfg = load_config(recipes if len(recipes) > 1 else (recipes[0] if recipes else None))
    for source, values in ((f"{study.path}: run", study.run), (f"family {family.name}", family.run),
                           (f"model {model.name}", model.run)):
        for key, value in flatten(values).items():
            _set(cfg, key, value, source)
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep:
            raise ConfigError(f"override {item!r} is not key=value")
        _set(cfg, key.strip(), yaml.safe_load(text) if text else "", "command line")
    cfg = dataclasses.replace(cfg, task=family.task, objective=model.objective, seed=seed,
                              out_dir=str(run_dir), resume=False)
    cfg.data.train = train_file
    cfg.data.answer_order = model.order
    if base_steps:  # a step budget of the study's (else each recipe's epochs)
        job_steps = max(1, round(base_steps * model.steps_factor))
        cfg.train.max_steps = job_steps
        cfg.train.warmup_steps = min(100 if cfg.train.warmup_steps < 0 else cfg.train.warmup_steps,
                                     max(1, job_steps // 10))
        cfg.train.log_every = max(1, min(50, job_steps // 10))
        if study.checkpoints:  # a killed study resumes from the last of these
            cfg.train.save_every = max(1, job_steps // study.checkpoints)
    return cfg


# ---------------------------------------------------------------------- estimates
def estimate(job: Job, sizes: dict[str, int] | None = None) -> dict[str, Any]:
    """Steps, tokens (steps x batch x cutoff) and training FLOPs of a job, before its data
    exist: the cutoff from 64 drawn problems (or the config), parameters from the size."""
    from dvar.model import SIZES

    cfg = job.config
    steps = cfg.train.max_steps
    if not steps:
        n = (sizes or paper_sizes()).get(job.family.paper, job.family.train_size)
        steps = max(1, math.ceil(cfg.train.epochs * max(1, n - cfg.data.valid_size) / cfg.train.batch_size))
    cutoff = cfg.data.cutoff or _drawn_cutoff(job.family)
    shape = dict(SIZES.get(cfg.model, {}))
    for key in ("n_layer", "n_embd", "n_head"):
        if getattr(cfg.arch, key, 0):
            shape[key] = getattr(cfg.arch, key)
    tokens = steps * cfg.train.batch_size * cutoff
    flops = None
    if shape:  # N ≈ 12 n_layer n_embd^2 non-embedding parameters
        non_embedding = 12 * shape["n_layer"] * shape["n_embd"] ** 2
        flops = tokens * training_flops_per_token(non_embedding, shape["n_layer"], shape["n_embd"], cutoff)
    return {"job": job.name, "model": cfg.model, "steps": steps, "batch_size": cfg.train.batch_size,
            "cutoff": cutoff, "tokens": tokens, "flops": flops}


def paper_sizes(scale: float = 1.0) -> dict[str, int]:
    """Training problems of each of the paper's data sets at `scale`."""
    from dvar.paper import DATASETS

    return {d.name: max(1, round(d.train_size * scale)) for d in DATASETS}


_CUTOFFS: dict[tuple, int] = {}


def _drawn_cutoff(family: Family) -> int:
    from dvar.generation import generate
    from dvar.tasks import get_task

    key = (family.task, family.paper, repr(sorted(family.options.items())))
    if key not in _CUTOFFS:
        task = get_task(family.task)
        options = family.options
        if family.paper:
            from dvar.paper import DATASETS

            options = next(d for d in DATASETS if d.name == family.paper).options
        rows = generate(task, 64, 0, task.make_options(**options))
        _CUTOFFS[key] = max(len(r["input"]) + len(r["output"]) + 2 for r in rows)
    return _CUTOFFS[key]


def job_state(job: Job) -> dict[str, Any]:
    """What of a job its out folder already holds, read without touching it: the run's
    state (trained, resumable, to train, or held with other settings: the run would stop),
    the pid of a process that has it in hand now (`owner`), and how many of its
    evaluations are done."""
    from dvar.config import ConfigError
    from dvar.rundir import RunDir

    run = RunDir(job.run_dir)
    try:
        state = {"finished": "trained", "resumable": "resumable", "fresh": "to train"}[run.peek(job.config)]
    except ConfigError:
        state = "other settings"
    evals = [run.eval_dir(data, decoding.name) / "metrics.json" for data, decodings in job.tests
             for decoding in decodings]
    return {"state": state, "owner": run.owner(), "evaluations": len(evals),
            "evaluations_done": sum(f.is_file() for f in evals)}


def trained_steps(job: Job) -> int:
    """The steps a job trains itself: a branch only its decay (from its trunk's checkpoint)."""
    from dvar.schedule import decay_start

    t = job.config.train
    if job.budget != 1.0 and t.branch_from:
        return t.max_steps - decay_start(t.max_steps, t.decay_fraction)
    return t.max_steps


def format_plan(jobs: list[Job], sizes: dict[str, int] | None = None) -> str:
    """Markdown: one row per job with steps, tokens and FLOPs and what its out folder
    already holds, then the totals and what is left to do; where the folder holds finished
    runs of a family, the training time left at their pace (seconds per training FLOP)."""
    from dvar.rundir import RunDir

    lines = ["| job | model | steps × batch | cutoff (≈) | tokens | training FLOPs | state | evaluations done |",
             "|---|---|---|---|---|---|---|---|"]
    total_tokens, total_flops = 0, 0.0
    left_flops: dict[str, float] = {}  # per family: the FLOPs still to train
    pace: dict[str, list[float]] = {}  # per family: seconds and FLOPs of finished whole-budget runs
    to_train, evals_left, conflicts = 0, 0, []
    for job in jobs:
        e = estimate(job, sizes)
        state = job_state(job)
        total_tokens += e["tokens"]
        total_flops += e["flops"] or 0.0
        flops = f"{e['flops']:.3g}" if e["flops"] else "?"
        name = f"{job.name} (extends {job.trunk})" if job.budget == 1.0 and job.trunk else job.name
        now = f", in hand now (pid {state['owner']})" if state["owner"] else ""
        lines.append(f"| {name} | {e['model']} | {e['steps']} × {e['batch_size']} | {e['cutoff']} | "
                     f"{e['tokens']:.3g} | {flops} | {state['state']}{now} | "
                     f"{state['evaluations_done']} of {state['evaluations']} |")
        evals_left += state["evaluations"] - state["evaluations_done"]
        if state["state"] == "other settings":
            conflicts.append(job.name)
        elif state["state"] != "trained":
            to_train += 1
            share = trained_steps(job) / max(1, job.config.train.max_steps)
            left_flops[job.family.name] = left_flops.get(job.family.name, 0.0) + (e["flops"] or 0.0) * share
        elif job.budget == 1.0 and not job.trunk:
            compute = RunDir(job.run_dir).compute() or {}
            if compute.get("train_seconds") and compute.get("flops"):
                seconds_flops = pace.setdefault(job.family.name, [0.0, 0.0])
                seconds_flops[0] += compute["train_seconds"]
                seconds_flops[1] += compute["flops"]
    lines.append(f"\n{len(jobs)} job(s); {total_tokens:.3g} training tokens, {total_flops:.3g} FLOPs in all "
                 "(6 N per token plus attention, as compute.json counts them; cutoff estimated from 64 drawn "
                 "problems).")
    left = f"Left to do: {to_train} run(s) to train or resume, {sum(left_flops.values()):.3g} FLOPs " \
           f"(a branch trains only its decay), {evals_left} evaluation(s)"
    timed = {f: left_flops[f] * pace[f][0] / pace[f][1] for f in left_flops if f in pace}
    if timed:
        left += "; at the pace of this folder's finished runs, " + ", ".join(
            f"{f} ≈ {seconds / 60:.0f} worker-min" for f, seconds in timed.items())
    lines.append(left + ".")
    if conflicts:
        lines.append(f"Held with other settings (the run would stop; give another --out): {', '.join(conflicts)}.")
    return "\n".join(lines)
