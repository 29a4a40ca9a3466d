"""`dvar study run|plan|summary FILE`: a study file (configs/studies/) run by the engine."""

from __future__ import annotations

import argparse


def names(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def ints(text: str) -> list[int]:
    try:
        return [int(part) for part in names(text)]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def add_selection(parser: argparse.ArgumentParser) -> None:
    """The flags every study command shares: which families, models, seeds, budgets."""
    parser.add_argument("--only", type=names, default=None, metavar="FAMILY,...",
                        help="only these of the study's families (default: all)")
    parser.add_argument("--seeds", type=ints, default=None, help="seeds, comma-separated (default: the study's)")
    parser.add_argument("--roles", type=names, default=None, metavar="ROLE,...",
                        help="model roles to run (default: the study's `roles`), e.g. main,paper-ratio,control,recipe")
    parser.add_argument("--models", type=names, default=None, metavar="NAME,...",
                        help="only these models, whatever their role")
    parser.add_argument("--quick", action="store_true", help="the study's quick seeds and quick_steps")
    parser.add_argument("--steps", type=int, default=0, help="training steps of every family (default: the study's)")
    parser.add_argument("--out", default="", help="output folder (default: ./studies/NAME)")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "study", help="run, plan or summarise a study file (configs/studies/*.yaml)",
        description=(
            "A study is a YAML file (configs/studies/: demo, miniature, answer-orders, paper-cpu,\n"
            "paper-gpu, controls, or your own; docs/studies.md has its keys): task families with\n"
            "their data, models, decodings, seeds, budgets and verdicts. `run` generates the data,\n"
            "trains and evaluates every job with the functions `dvar train` and `dvar eval` call,\n"
            "then writes DIR/results.md, DIR/study.json and a plot per family; finished runs and\n"
            "evaluations are reused and a killed run resumes from its last checkpoint. `plan` lists\n"
            "the jobs with their steps, tokens and FLOPs, what --out already holds of each and what\n"
            "is left (runs, FLOPs, evaluations, minutes at the pace of its finished runs), without\n"
            "running anything. `summary` rebuilds the report from what is on disk; `record`\n"
            "copies what a study's record commits (then `summary --out` there). key=value items\n"
            "override the run config of every job (dvar train keys)."),
        epilog="examples:\n  dvar study plan miniature\n  dvar study run miniature --only sudoku --seeds 0,1,2\n"
        "  dvar study run configs/studies/demo.yaml --out demo diffusion.time_weighting=elbo\n"
        "  dvar study run paper-cpu --only path-table --steps 32000 --extend studies/paper-cpu\n"
        "  dvar study summary miniature --out docs/studies/2026-12-02-reproduce/runs\n"
        "  dvar study record paper-cpu --out studies/paper-cpu --to docs/studies/2026-12-04-paper-cpu",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    for action, text in (("run", "data, training, evaluation, report"),
                         ("plan", "the jobs, what --out holds of them and what is left, without running"),
                         ("summary", "rebuild results.md and study.json from the files under --out"),
                         ("record", "copy what is committed of --out (configs, logs, evaluations, test data, "
                                    "the study's first seed's models) to --to")):
        sub = actions.add_parser(action, help=text)
        sub.add_argument("study", help="a study file, or a name under configs/studies/ (e.g. miniature)")
        sub.add_argument("overrides", nargs="*", metavar="key=value")
        add_selection(sub)
        if action == "record":
            sub.add_argument("--to", required=True, help="the record folder, e.g. docs/studies/DATE-NAME")
            sub.add_argument("--max-weights-mb", type=float, default=20.0,
                             help="models whose weights are larger are left out (default 20)")
            sub.add_argument("--weights-seed", type=int, default=None,
                             help="the seed whose whole-budget models are copied (default: the study's first "
                                  "seed, so that recording seeds 1,2 later adds none)")
        if action == "run":
            sub.add_argument("--workers", type=int, default=0,
                             help="models trained at once, the cores split between them (default: all cores)")
            sub.add_argument("--train-size", type=int, default=0, help="training problems per seed")
            sub.add_argument("--test-size", type=int, default=0, help="test problems per seed")
            sub.add_argument("--data-scale", type=float, default=1.0,
                             help="paper data sets: fraction of the paper's sizes (for tests)")
        if action in ("run", "plan"):
            sub.add_argument("--extend", default="", metavar="DIR",
                             help="an earlier --out of this study at another --steps: each whole-budget "
                                  "run starts from the same run there (its last checkpoint before "
                                  "either's decay) instead of from scratch; same weights, fewer steps")
        sub.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from dvar import study as engine

    spec = engine.load_study(args.study)
    out = Path(args.out or f"studies/{spec.name}")
    selection = dict(only=args.only, roles=args.roles, models=args.models, quick=args.quick, steps=args.steps)
    if args.action == "plan":
        jobs = engine.plan(spec, out, args.seeds, overrides=args.overrides, extend=args.extend or None,
                           **selection)
        print(engine.format_plan(jobs))
        return 0
    if args.action == "record":
        from dvar.study.record import record

        jobs = engine.plan(spec, out, args.seeds, **selection)
        first = min(spec.quick_seeds if args.quick else spec.seeds)
        counts = record(jobs, out, Path(args.to), args.max_weights_mb,
                        first if args.weights_seed is None else args.weights_seed)
        print(f"copied to {args.to}: " + ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in counts.items()))
        return 0
    if args.action == "summary":
        seeds = args.seeds or list(spec.seeds)
        summary = engine.summarize(spec, out, seeds, only=args.only, quick=args.quick, steps=args.steps)
        engine.write_report(out, summary, seeds)
        print(f"wrote {out}/results.md and study.json")
        return 0
    engine.run_study(spec, out, args.seeds, overrides=args.overrides, train_size=args.train_size,
                     test_size=args.test_size, workers=args.workers, data_scale=args.data_scale,
                     extend=args.extend or None, **selection)
    return 0
