"""`dvar reproduce --scale cpu|gpu`: the paper's study in one command — an alias of the
study files configs/studies/miniature.yaml (cpu) and configs/studies/paper-gpu.yaml (gpu)."""

from __future__ import annotations

import argparse

from dvar.commands.study import ints, names

STUDIES = {"cpu": "miniature", "gpu": "paper-gpu"}


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "reproduce",
        help="the paper's study in one command: in miniature on a CPU, or at full scale on GPUs",
        description=(
            "--scale cpu runs configs/studies/miniature.yaml: for every task family a smaller\n"
            "setting sized for a 2-core CPU (path 4 nodes, Countdown 3 small numbers, 4x4 Sudoku,\n"
            "3-SAT 4 variables), MDM and AR at equal training steps and at the paper's epoch ratio,\n"
            "several seeds, judged on held-out problems (and the public sets of ../shared/testsets\n"
            "that fit), with the spread over seeds, the published numbers beside and verdicts\n"
            "computed from the numbers. --controls adds AR in the other answer orders (SPEC §9),\n"
            "--reference the MDM with the reference's settings. Measured times: docs/reproducing.md.\n"
            "--scale gpu runs configs/studies/paper-gpu.yaml: the paper's data and its 16 recipes\n"
            "(configs/, or --recipes dvar for dvar's own settings), torchrun over the visible GPUs.\n"
            "Both write DIR/results.md, DIR/study.json, a plot per family and every run and\n"
            "evaluation as ordinary dvar run and eval directories; resumable. The same as\n"
            "`dvar study run miniature|paper-gpu` (docs/studies.md)."
        ),
        epilog="examples:\n  dvar reproduce --scale cpu                 # 4 tasks x 3 seeds\n"
        "  dvar reproduce --scale cpu --quick         # one seed, shorter\n"
        "  dvar reproduce --scale cpu --tasks path --models mdm --set diffusion.time_weighting=elbo --out lever\n"
        "  dvar reproduce --scale cpu --tasks sudoku --seeds 0,1,2 --controls --reference\n"
        "  dvar reproduce --scale gpu --dry-run\n"
        "  dvar reproduce --scale gpu --data-scale 0.001 --max-steps 2 --model micro   # a CPU test",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--scale", choices=tuple(STUDIES), required=True)
    parser.add_argument("--tasks", type=names, default=None,
                        help="task families, comma-separated (default: all of the study's)")
    parser.add_argument("--seeds", type=ints, default=None,
                        help="seeds, comma-separated (default: 0,1,2 for cpu, 0 with --quick and for gpu)")
    parser.add_argument("--out", default="dvar-reproduce", help="output folder (default: ./dvar-reproduce)")
    parser.add_argument("--quick", action="store_true", help="one seed and shorter training")
    parser.add_argument("--controls", action="store_true", help="cpu: also AR in every other answer order")
    parser.add_argument("--reference", action="store_true",
                        help="cpu: also the MDM trained and decoded with the reference's settings")
    parser.add_argument("--workers", type=int, default=0, help="models trained at once (default: all cores)")
    parser.add_argument("--steps", type=int, default=0, help="cpu: training steps of the MDM and AR")
    parser.add_argument("--train-size", type=int, default=0, help="cpu: training problems per seed")
    parser.add_argument("--test-size", type=int, default=0, help="cpu: test problems per seed")
    parser.add_argument("--models", type=names, default=None, help="only these models, comma-separated")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a config override for every model (repeatable)")
    parser.add_argument("--recipes", choices=("reference", "dvar"), default="reference",
                        help="gpu: the reference's settings (configs/) or dvar's own (+ configs/dvar/)")
    parser.add_argument("--dry-run", action="store_true", help="print the plan and exit")
    parser.add_argument("--data-scale", type=float, default=1.0, help="gpu: fraction of the paper's data sizes")
    parser.add_argument("--max-steps", type=int, default=0, help="gpu: cap on every recipe's steps (for tests)")
    parser.add_argument("--model", default="", help="gpu: model size instead of the recipes' (for tests)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import dataclasses

    from dvar import study as engine
    from dvar.config import recipe_files

    study = engine.load_study(STUDIES[args.scale])
    roles = list(study.roles) + (["control"] if args.controls else []) + (["recipe"] if args.reference else [])
    overrides = list(args.set) + ([f"model={args.model}"] if args.model else [])
    if args.max_steps:
        overrides.append(f"train.max_steps={args.max_steps}")
    if args.recipes == "dvar":  # each recipe with dvar's overlay (configs/dvar/OBJECTIVE.yaml)
        study = dataclasses.replace(study, families=tuple(
            dataclasses.replace(f, models=tuple(dataclasses.replace(
                m, config=tuple(map(str, recipe_files(f"{f.name}-{m.objective}", "dvar")))) for m in f.models))
            for f in study.families))
    selection = dict(only=args.tasks, roles=roles, models=args.models, quick=args.quick, steps=args.steps)
    if args.dry_run:
        print(engine.format_plan(engine.plan(study, args.out, args.seeds, overrides=overrides, **selection)))
        return 0
    engine.run_study(study, args.out, args.seeds, overrides=overrides, train_size=args.train_size,
                     test_size=args.test_size, workers=args.workers, data_scale=args.data_scale, **selection)
    return 0
