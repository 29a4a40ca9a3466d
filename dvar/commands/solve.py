"""`dvar solve TASK --data FILE --out FILE`: the classical solver as an oracle baseline."""

from __future__ import annotations

import argparse
import time

from tqdm import tqdm

from dvar.data import read_examples, write_jsonl
from dvar.tasks import get_task, task_names


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "solve",
        help="run the task's classical solver on every problem of a data file",
        description="Solve every input with the task's classical solver, write predictions "
        "JSONL (input, output if the data has one, predict) and print how many verified "
        "correct and the time per problem. An unsolvable problem gets an empty prediction.",
        epilog="example:\n  dvar solve sudoku --data data/paper/sudoku/test.jsonl --out solved.jsonl",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("task", metavar="TASK", choices=task_names(), help=", ".join(task_names()))
    parser.add_argument("--data", required=True, help="data file (JSONL; sudoku also CSV)")
    parser.add_argument("--out", required=True, help="predictions JSONL to write")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    task = get_task(args.task)
    examples = read_examples(args.data, task)
    rows, solved, seconds = [], 0, 0.0
    for ex in tqdm(examples, desc=f"solve {task.name}", unit="problem", leave=False):
        start = time.perf_counter()
        answer = task.solve(ex.problem)
        seconds += time.perf_counter() - start
        answer = "" if answer is None else answer
        solved += task.verify(ex.problem, answer)
        row = {"input": ex.input}
        if ex.output is not None:
            row["output"] = ex.output
        row["predict"] = answer
        rows.append(row)
    write_jsonl(args.out, rows)
    n = len(examples)
    print(
        f"solved {solved}/{n} ({100 * solved / n:.2f}%, verified) in {seconds:.2f} s of solver "
        f"time, {1000 * seconds / n:.3f} ms per problem; wrote {args.out}"
    )
    return 0
