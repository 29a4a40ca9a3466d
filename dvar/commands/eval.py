"""`dvar eval RUN_DIR --data FILE [--decoder NAME] [--steps T] [--decoder-arg KEY=VALUE ...]
[--samples K] [--batch-size B] [--out DIR]`."""

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
            "group; with --samples K > 1 also samples, samples_correct) and metrics.json (n,\n"
            "correct, accuracy, by, well_formed (share of answers in the task's form, right or\n"
            "wrong), nfe, nfe_per_example, examples_per_s, seconds; pass_at_1, pass_at_k,\n"
            "best_of_k, majority_at_k) to --out\n"
            "(default RUN_DIR/eval/DATA-DECODER[-T][-KEYVALUE...][-kK]/). A run trained with\n"
            "data.answer_order other than forward is judged on its answers mapped back to the\n"
            "task's own format (predict); raw is what the model wrote. A run trained with\n"
            "train.report_to also gets these metrics in its tracker (TensorBoard, W&B), as\n"
            "eval/DATA-DECODER[-T].../accuracy and so on. Decoders: "
            + ", ".join(f"{n} ({'AR' if n in decoder_names('ar') else 'MDM'})" for n in decoder_names())
        ),
        epilog="examples:\n  dvar eval runs/sudoku-mdm --data data/paper/sudoku/test.jsonl\n"
        "  dvar eval runs/sudoku-mdm --data test.jsonl --decoder topk --steps 10 --out eval/t10\n"
        "  dvar eval runs/sudoku-mdm --data test.jsonl --decoder threshold --decoder-arg tau=0.8\n"
        "  dvar eval runs/sudoku-ar --data test.jsonl --decoder sample --decoder-arg temperature=0.7 "
        "--samples 8",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("run_dir", metavar="RUN_DIR")
    parser.add_argument("--data", required=True, help="data file (JSONL; sudoku also CSV)")
    parser.add_argument("--decoder", default="",
                        help="decoder name (default: the run's own decoding, its config's decode.decoder "
                        "with decode.settings, else greedy for AR, topk for MDM)")
    parser.add_argument("--steps", type=int, default=0,
                        help="decoding steps T of decoders with a steps setting (default: the run's "
                        "decode.steps, else its diffusion.steps)")
    parser.add_argument("--decoder-arg", action="append", default=[], metavar="KEY=VALUE",
                        help="a decoder setting, e.g. noise=0.5, tau=0.8, remask=false, temperature=0.7 "
                        "(repeatable; values read as int, float, bool or text). topk is deterministic "
                        "by default; the paper's decoding is noise=0.5 with repredict=true")
    parser.add_argument("--samples", type=int, default=1, metavar="K",
                        help="decode each problem K times; report pass@K, best-of-K, majority@K (default: 1)")
    parser.add_argument("--batch-size", type=int, default=64, help="problems decoded together (default: 64)")
    parser.add_argument("--seed", type=int, default=0, help="seed of stochastic decoders (default: 0)")
    parser.add_argument("--device", default="", help="cpu, cuda, cuda:1 ... (default: cuda if available)")
    parser.add_argument("--out", default="", help="output directory")
    parser.add_argument("--report-to", nargs="+", default=None, metavar="TRACKER",
                        help="none, tensorboard and/or wandb: where the metrics are logged besides "
                        "metrics.json (default: the run's train.report_to)")
    parser.set_defaults(run=run)


def _run_report_to(run_dir: Path) -> list[str]:
    """The run's train.report_to (none for a directory without config.yaml)."""
    from dvar.config import load_config

    config = run_dir / "config.yaml"
    return load_config(config).train.report_to if config.is_file() else ["none"]


def _last_step(run_dir: Path, default: int) -> int:
    """The step the run's training ended at (its last train_log row)."""
    from dvar.trainer import LOG_FILE

    log = run_dir / LOG_FILE
    rows = log.read_text().splitlines() if log.is_file() else []
    return int(json.loads(rows[-1])["step"]) if rows else default


def run(args: argparse.Namespace) -> int:
    import torch

    from dvar.data import read_examples
    from dvar.decoders import parse_settings
    from dvar.evaluate import evaluate, load_run, save_evaluation
    from dvar.metrics import format_table
    from dvar.tracking import check_report_to, eval_scalars, open_tracker

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    settings = parse_settings(args.decoder_arg)
    run_dir = Path(args.run_dir)
    if args.report_to is None:
        report_to = check_report_to(_run_report_to(run_dir), "the run's train.report_to")
    else:
        report_to = check_report_to(args.report_to, "--report-to")
    run_ = load_run(run_dir, device)
    examples = read_examples(args.data, run_.task)
    result = evaluate(run_, examples, decoder=args.decoder, steps=args.steps,
                      batch_size=args.batch_size, seed=args.seed, source=args.data,
                      samples=args.samples, decoder_settings=settings)
    metrics = result.metrics
    tag = metrics["decoder"] + (f"-{metrics['steps']}" if metrics["steps"] else "")
    tag += "".join(f"-{key}{value}" for key, value in sorted(settings.items()) if key != "steps")
    tag += f"-k{args.samples}" if args.samples > 1 else ""
    tag = f"{Path(args.data).stem}-{tag}"
    out = save_evaluation(result, Path(args.out) if args.out else run_dir / "eval" / tag)
    title = (f"{metrics['task']} {metrics['objective']} {metrics['model']} on {args.data}: "
             f"decoder {metrics['decoder']}, {metrics['nfe']} model calls "
             f"({metrics['nfe_per_example']} per problem), {metrics['seconds']} s")
    print(format_table(metrics, title=title))
    if args.samples > 1:
        print(f"K={args.samples} samples: pass@1 {100 * metrics['pass_at_1']:.2f}%, "
              f"pass@K {100 * metrics['pass_at_k']:.2f}%, best-of-K {100 * metrics['best_of_k']:.2f}% "
              f"(the table), majority@K {100 * metrics['majority_at_k']:.2f}%")
    print(f"wrote {out}/predictions.jsonl and metrics.json")
    if report_to:
        with open_tracker(report_to, run_dir, job="eval") as tracker:
            tracker.log(_last_step(run_dir, run_.config.train.max_steps), eval_scalars(tag, metrics))
        print(f"logged eval/{tag}/ to {' and '.join(report_to)}")
    return 0
