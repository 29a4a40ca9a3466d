"""`dvar generate TASK ...` and `dvar generate paper --out DIR`."""

from __future__ import annotations

import argparse
import time

from tqdm import tqdm

from dvar.config import ConfigError
from dvar.data import read_examples, write_jsonl
from dvar.generation import default_workers, generate, group_counts
from dvar.tasks import get_task, task_names

EXAMPLES = {
    "path": "dvar generate path --n 1000 --seed 0 --out data/path.jsonl --nodes 6",
    "countdown": "dvar generate countdown --n 1000 --seed 0 --out data/cd4.jsonl --numbers 4 --split train",
    "sudoku": "dvar generate sudoku --n 100 --seed 0 --out data/sudoku.jsonl --preset hard",
    "sat": "dvar generate sat --n 1000 --seed 0 --out data/sat5.jsonl --vars 5",
}


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "generate",
        help="write a data set (JSONL) of one task, or every data set of the paper",
        description="Write seeded, deterministic SPEC-format JSONL data.",
        epilog="examples:\n  dvar generate path --n 1000 --seed 0 --out data/path.jsonl\n"
        "  dvar generate paper --out data/paper",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    tasks = parser.add_subparsers(dest="task", metavar="TASK", required=True)
    for name in task_names():
        task = get_task(name)
        sub = tasks.add_parser(
            name,
            help=task.summary,
            description=f"{task.summary}\n\nexample line: {task.example['input']} -> {task.example['output']}",
            epilog=f"example:\n  {EXAMPLES.get(name, f'dvar generate {name} --n 100 --out {name}.jsonl')}",
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        sub.add_argument("--n", type=int, required=True, help="number of problems")
        sub.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
        sub.add_argument("--out", required=True, help="output JSONL file")
        sub.add_argument(
            "--exclude",
            action="append",
            default=[],
            metavar="FILE",
            help="never write a problem that is in FILE (decontamination; repeatable)",
        )
        sub.add_argument("--unique", action="store_true", help="no repeated problem within the file")
        _add_workers(sub)
        task.add_arguments(sub)
        sub.set_defaults(run=run_task)

    from dvar import paper

    sub = tasks.add_parser(
        "paper",
        help="every data set the paper uses, at its sizes",
        description=paper.__doc__,
        epilog="example:\n  dvar generate paper --out data/paper\n"
        "  dvar generate paper --out /tmp/small --scale 0.01   # 1%% of the sizes",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub.add_argument("--out", required=True, help="output directory")
    sub.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    sub.add_argument(
        "--scale", type=float, default=1.0, help="multiply every size by this (default: 1.0)"
    )
    sub.add_argument(
        "--only", action="append", default=[], metavar="NAME",
        help=f"only these data sets (repeatable): {', '.join(paper.dataset_names())}",
    )
    _add_workers(sub)
    sub.set_defaults(run=run_paper)


def _add_workers(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--workers",
        type=int,
        default=default_workers(),
        help="processes to generate with; the data do not depend on it (default: all cores)",
    )


def run_task(args: argparse.Namespace) -> int:
    task = get_task(args.task)
    options = task.options_from_args(args)
    try:  # a bad option: one line before any work
        task.prepare(options)
    except ValueError as error:
        raise ConfigError(str(error)) from None
    excluded = set()
    for path in args.exclude:
        excluded.update(task.canonical(ex.problem) for ex in read_examples(path, task))
    start = time.perf_counter()
    with tqdm(total=args.n, desc=f"generate {task.name}", unit="ex", leave=False) as bar:
        rows = generate(
            task, args.n, args.seed, options, exclude=excluded, unique=args.unique,
            workers=args.workers, on_progress=lambda done: bar.update(done - bar.n),
        )
    write_jsonl(args.out, rows)
    seconds = time.perf_counter() - start
    print(f"wrote {len(rows)} {task.name} problems to {args.out} in {seconds:.1f} s")
    counts = group_counts(task, rows)
    print("distribution: " + ", ".join(f"{k}: {v}" for k, v in counts.items()))
    return 0


def run_paper(args: argparse.Namespace) -> int:
    from dvar import paper

    paper.generate_paper(args.out, seed=args.seed, scale=args.scale, workers=args.workers, only=args.only)
    return 0
