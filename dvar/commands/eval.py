"""`dvar eval RUN_DIR --data FILE [--decoder NAME] [--steps T] [--batch-size B] [--out DIR]`."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    from dvar.decoders import decoder_names

    parser = subparsers.add_parser(
        "eval",
        help="decode a data set with a trained run and score it with the task's verifier",
        description=(
            "Decode every input of --data with the run's model, judge each answer with the\n"
            "task's verifier, and write predictions.jsonl (input, output, predict, correct,\n"
            "group) and metrics.json (n, correct, accuracy, by, nfe, seconds) to --out\n"
            "(default RUN_DIR/eval/DATA-DECODER[-T]/). Decoders: "
            + ", ".join(f"{n} ({'AR' if n in decoder_names('ar') else 'MDM'})" for n in decoder_names())
        ),
        epilog="examples:\n  dvar eval runs/sudoku-mdm --data data/paper/sudoku/test.jsonl\n"
        "  dvar eval runs/sudoku-mdm --data test.jsonl --decoder topk --steps 10 --out eval/t10",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("run_dir", metavar="RUN_DIR")
    parser.add_argument("--data", required=True, help="data file (JSONL; sudoku also CSV)")
    parser.add_argument("--decoder", default="", help="decoder name (default: greedy for AR, topk for MDM)")
    parser.add_argument("--steps", type=int, default=0, help="MDM decoding steps T (default: the run's diffusion.steps)")
    parser.add_argument("--batch-size", type=int, default=64, help="problems decoded together (default: 64)")
    parser.add_argument("--seed", type=int, default=0, help="seed of stochastic decoders (default: 0)")
    parser.add_argument("--device", default="", help="cpu, cuda, cuda:1 ... (default: cuda if available)")
    parser.add_argument("--out", default="", help="output directory")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from dvar.data import read_examples, write_jsonl
    from dvar.evaluate import evaluate, load_run
    from dvar.metrics import format_table

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    run_ = load_run(args.run_dir, device)
    examples = read_examples(args.data, run_.task)
    result = evaluate(run_, examples, decoder=args.decoder, steps=args.steps,
                      batch_size=args.batch_size, seed=args.seed, source=args.data)
    metrics = result.metrics
    if args.out:
        out = Path(args.out)
    else:
        tag = metrics["decoder"] + (f"-{metrics['steps']}" if metrics["steps"] else "")
        out = Path(args.run_dir) / "eval" / f"{Path(args.data).stem}-{tag}"
    out.mkdir(parents=True, exist_ok=True)
    write_jsonl(out / "predictions.jsonl", result.rows)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    title = (f"{metrics['task']} {metrics['objective']} {metrics['model']} on {args.data}: "
             f"decoder {metrics['decoder']}, {metrics['nfe']} model calls, {metrics['seconds']} s")
    print(format_table(metrics, title=title))
    print(f"wrote {out}/predictions.jsonl and metrics.json")
    return 0
