"""`dvar check TASK --data FILE [--predictions FILE] [--json]`."""

from __future__ import annotations

import argparse
import json
import sys

from dvar.data import DataError, read_examples, read_predictions
from dvar.metrics import add_partial_credit, format_table, judge_all, summarize
from dvar.tasks import get_task, task_names


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "check",
        help="verify a data file's gold answers, or score a predictions file",
        description=(
            "Judge answers with the task's verifier (its rules, not string match).\n"
            "Without --predictions every gold output of the data file is verified, and the\n"
            "exit status is 1 if any fails. With --predictions (JSONL, one object per line with\n"
            "a string `predict` field, in the data file's order; the reference's\n"
            "generated_predictions.jsonl with `label`/`predict` works) the predictions are\n"
            "scored, with the task's partial credit where it has one (sudoku: blank cells\n"
            "right; path: steps on graph edges). A prediction line that is not such an\n"
            "object is an error (exit 2, naming file and line); a `predict` text that does\n"
            "not parse is a wrong answer."
        ),
        epilog="examples:\n  dvar check sudoku --data data/paper/sudoku/test.jsonl\n"
        "  dvar check countdown --data data/paper/cd4/test.jsonl --predictions preds.jsonl --json",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("task", metavar="TASK", choices=task_names(), help=", ".join(task_names()))
    parser.add_argument("--data", required=True, help="data file (JSONL; sudoku also CSV)")
    parser.add_argument("--predictions", help="predictions JSONL to score")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    task = get_task(args.task)
    examples = read_examples(args.data, task, need_output=args.predictions is None)
    if args.predictions:
        answers = read_predictions(args.predictions)
        if len(answers) != len(examples):
            raise DataError(
                args.predictions, None,
                f"{len(answers)} predictions for {len(examples)} problems in {args.data}",
            )
        source = args.predictions
    else:
        answers = [ex.output for ex in examples]
        source = "gold outputs"
    problems = [ex.problem for ex in examples]
    verdicts = judge_all(task, problems, answers)
    groups = [task.group(problem) for problem in problems]
    summary = summarize(groups, verdicts)
    if args.predictions:
        add_partial_credit(summary, task, problems, answers, groups)
    if args.json:
        print(json.dumps(summary))
    else:
        print(format_table(summary, title=f"{task.name}: {args.data} ({source})"))
    if args.predictions is None and summary["correct"] < summary["n"]:
        bad = [ex.line for ex, v in zip(examples, verdicts) if not v["correct"]]
        print(f"{len(bad)} gold answer(s) fail, lines: {bad[:20]}", file=sys.stderr)
        return 1
    return 0
