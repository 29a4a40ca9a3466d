"""`dvar reproduce --scale cpu|gpu [--tasks ...] [--seeds ...] [--out DIR]`: the paper's
study in one command (dvar/reproduce.py)."""

from __future__ import annotations

import argparse

from dvar.config import ConfigError


def _names(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _ints(text: str) -> list[int]:
    try:
        return [int(part) for part in _names(text)]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    from dvar.reproduce import FAMILIES

    parser = subparsers.add_parser(
        "reproduce",
        help="the paper's study in one command: in miniature on a CPU, or at full scale on GPUs",
        description=(
            "--scale cpu: the paper in miniature (SPEC §10). For every task family a smaller\n"
            "setting sized for a 2-core CPU (path 4 nodes, Countdown 3 small\n"
            "numbers, 4x4 Sudoku, 3-SAT 4 variables), MDM and AR at equal training steps and at\n"
            "the paper's epoch ratio, several seeds, judged on held-out problems (and the public\n"
            "sets of ../shared/testsets that fit), reported with the spread over seeds, the\n"
            "published numbers beside and a verdict per task computed from the numbers.\n"
            "--controls adds AR in the other answer orders (SPEC §9), --reference the MDM with\n"
            "the reference's settings (logit shift, dropout 0.1, re-predicting decoding).\n"
            "Measured on 2 CPU cores: 36 min for the default, 40 min more with --controls\n"
            "--reference, 6 min with --quick (README, Reproducing the paper).\n"
            "--scale gpu: the paper's data and its 16 recipes (configs/, or --recipes dvar for\n"
            "configs/dvar/), each evaluated on the paper's test sets and the matching public sets;\n"
            "torchrun when several GPUs are visible. --dry-run prints the plan.\n"
            "Both write DIR/results.md, DIR/reproduce.json, a plot per task, and every run and\n"
            "evaluation as ordinary dvar run and eval directories. Resumable: finished runs and\n"
            "evaluations are reused, a killed run resumes from its last checkpoint."
        ),
        epilog="examples:\n  dvar reproduce --scale cpu                 # 4 tasks x 3 seeds\n"
        "  dvar reproduce --scale cpu --quick         # one seed, shorter\n"
        "  dvar reproduce --scale cpu --tasks path --models mdm --set diffusion.time_weighting=elbo --out lever\n"
        "  dvar reproduce --scale cpu --tasks sudoku --seeds 0,1,2 --controls --reference\n"
        "  dvar reproduce --scale gpu --dry-run\n"
        "  dvar reproduce --scale gpu --data-scale 0.001 --max-steps 2 --model micro   # a CPU test",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--scale", choices=("cpu", "gpu"), required=True)
    parser.add_argument("--tasks", type=_names, default=list(FAMILIES),
                        help=f"task families, comma-separated (default: {','.join(FAMILIES)})")
    parser.add_argument("--seeds", type=_ints, default=None,
                        help="seeds, comma-separated (default: 0,1,2 for cpu, 0 with --quick and for gpu)")
    parser.add_argument("--out", default="dvar-reproduce", help="output folder (default: ./dvar-reproduce)")
    parser.add_argument("--quick", action="store_true", help="cpu: one seed and shorter training")
    parser.add_argument("--controls", action="store_true",
                        help="cpu: also AR in every other answer order the task has (reverse; solver for "
                        "Sudoku and SAT)")
    parser.add_argument("--reference", action="store_true",
                        help="cpu: also the MDM trained and decoded with the reference's settings")
    parser.add_argument("--workers", type=int, default=0,
                        help="cpu: models trained at once, the cores split between them (default: all cores)")
    parser.add_argument("--steps", type=int, default=0,
                        help="cpu: training steps of the MDM and AR (default: each task's; the paper-ratio "
                        "model gets its share)")
    parser.add_argument("--train-size", type=int, default=0, help="cpu: training problems per seed (default: each task's)")
    parser.add_argument("--test-size", type=int, default=0, help="cpu: test problems per seed (default: each task's)")
    parser.add_argument("--recipes", choices=("reference", "dvar"), default="reference",
                        help="gpu: configs/ (the reference's settings) or configs/dvar/ (dvar's own)")
    parser.add_argument("--configs", default="", help="gpu: the recipe folder (default: the checkout's configs/)")
    parser.add_argument("--only", type=_names, default=None,
                        help="gpu: recipe names, comma-separated (default: all 16), e.g. sudoku-mdm,cd4-ar")
    parser.add_argument("--dry-run", action="store_true", help="gpu: print the plan and exit")
    parser.add_argument("--tokens-per-s", type=float, default=0.0,
                        help="gpu: training tokens/s per GPU for the --dry-run estimate (default: none known)")
    parser.add_argument("--data-scale", type=float, default=1.0,
                        help="gpu: fraction of the paper's data sizes (a scale-down for tests)")
    parser.add_argument("--max-steps", type=int, default=0, help="gpu: cap on every recipe's steps (for tests)")
    parser.add_argument("--model", default="", help="gpu: model size instead of the recipes' (for tests)")
    parser.add_argument("--models", type=_names, default=None,
                        help="cpu: only these models, comma-separated (mdm, ar, ar-paper-ratio, mdm-paper-ratio, "
                        "ar-reverse, ar-solver, mdm-reference)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a config override for every model (cpu) or recipe (gpu), e.g. "
                        "diffusion.time_weighting=elbo (repeatable)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from dvar import reproduce

    unknown = sorted(set(args.tasks) - set(reproduce.FAMILIES))
    if unknown:
        raise ConfigError(f"unknown task(s) {', '.join(unknown)}; known: {', '.join(reproduce.FAMILIES)}")
    if args.scale == "cpu":
        roles = reproduce.DEFAULT_ROLES + (("control",) if args.controls else ()) + (
            ("recipe",) if args.reference else ())
        seeds = args.seeds if args.seeds is not None else ([0] if args.quick else [0, 1, 2])
        reproduce.reproduce_cpu(args.out, args.tasks, seeds, quick=args.quick, workers=args.workers,
                                roles=roles, models=args.models, overrides=tuple(args.set),
                                train_size=args.train_size, test_size=args.test_size, steps=args.steps)
        return 0
    return reproduce.reproduce_gpu(
        args.out, tasks=args.tasks, seeds=args.seeds or [0], recipes=args.recipes, configs=args.configs,
        only=args.only, dry_run=args.dry_run, tokens_per_s=args.tokens_per_s,
        data_scale=args.data_scale, max_steps=args.max_steps, model=args.model, extra=args.set)
