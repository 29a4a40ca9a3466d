"""`dvar analyze RUN_DIR --data FILE --out DIR [--limit N] [--mask-rates R,...] [--decoder NAME]
[--steps T] [--decoder-arg KEY=VALUE ...]`."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from dvar.config import ConfigError


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "analyze",
        help="subgoal diagnostics: per-position loss/accuracy and the MDM decoding order",
        description=(
            "The paper's subgoal analysis on --data (gold outputs needed). Per answer position\n"
            "(0 = first character after SEP, the last is EOS): for an AR run the teacher-forced\n"
            "loss and accuracy; for an MDM run the loss and accuracy at each --mask-rates rate\n"
            "(positions after SEP masked at that rate, as in training) and the step at which the\n"
            "decoder revealed each position for good (a grid for Sudoku). Path (edges) and\n"
            "countdown (equations) also get these per part of the answer, split by breakdown key\n"
            "(path: planning distance), and path whether the MDM decoded it goal side first.\n"
            "What a task's answer is made of comes from the task (dvar/tasks/base.py, analysis).\n"
            "Writes analysis.json (every number) and PNG plots."
        ),
        epilog="examples:\n"
        "  dvar analyze runs/path-mdm --data data/paper/path/test.jsonl --out analysis/path-mdm\n"
        "  dvar analyze runs/s4-ar --data test.jsonl --out analysis/s4-ar --limit 200",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("run_dir", metavar="RUN_DIR")
    parser.add_argument("--data", required=True,
                        help="data file with gold outputs (JSONL; sudoku also CSV)")
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--limit", type=int, default=500,
                        help="first N problems only (default: 500; 0 = all)")
    parser.add_argument("--mask-rates", default="0.25,0.5,0.75,1", metavar="R,...",
                        help="MDM mask rates in (0, 1] (default: 0.25,0.5,0.75,1)")
    parser.add_argument("--decoder", default="", help="MDM decoder traced for the order (default: topk)")
    parser.add_argument("--steps", type=int, default=0,
                        help="its steps T (default: the run's diffusion.steps)")
    parser.add_argument("--decoder-arg", action="append", default=[], metavar="KEY=VALUE",
                        help="a decoder setting, as in `dvar eval` (repeatable)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0, help="seed of the masks and the decoder's noise")
    parser.add_argument("--device", default="", help="cpu, cuda, ... (default: cuda if available)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from dvar.analyze import analyze, write_plots
    from dvar.decoders import parse_settings
    from dvar.data import read_examples
    from dvar.evaluate import load_run

    rates = [float(r) for r in args.mask_rates.split(",") if r.strip()]
    if not rates or any(not 0 < r <= 1 for r in rates):
        raise ConfigError(f"--mask-rates {args.mask_rates!r}: give rates in (0, 1]")
    run_ = load_run(args.run_dir, args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    examples = read_examples(args.data, run_.task)
    if args.limit:
        examples = examples[: args.limit]
    analysis = analyze(run_, examples, mask_rates=rates, decoder=args.decoder, steps=args.steps,
                       decoder_settings=parse_settings(args.decoder_arg), batch_size=args.batch_size,
                       seed=args.seed, source=args.data)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "analysis.json").write_text(json.dumps(analysis, indent=1) + "\n")
    plots = write_plots(analysis, out)
    print(f"{analysis['task']} {analysis['objective']} {analysis['model']}: {analysis['n']} problems, "
          f"{analysis['answer_positions']} answer positions")
    for label, entry in ({"teacher forcing": analysis["teacher_forcing"]} if "teacher_forcing" in analysis
                         else {f"mask rate {r}": e for r, e in analysis["mask_rates"].items()}).items():
        pairs = [(l, c) for l, c in zip(entry["loss"], entry["count"]) if l is not None]
        mean = sum(l * c for l, c in pairs) / max(sum(c for _, c in pairs), 1)
        worst = max((i for i, l in enumerate(entry["loss"]) if l is not None), key=entry["loss"].__getitem__)
        print(f"  {label}: mean loss {mean:.4f}; highest at position {worst} ({entry['loss'][worst]:.4f})")
    if "decode_order" in analysis:
        order = analysis["decode_order"]
        print(f"  decode order ({order['decoder']}, {order['nfe']} calls): "
              f"accuracy {100 * order['accuracy']:.1f}%")
        shares = {key: e for key, e in order.get("direction", {}).items() if e["backward"] is not None}
        if shares:
            print("  decoded the answer goal side first (backward) in: " + ", ".join(
                f"{key} {100 * e['backward']:.0f}%" for key, e in shares.items()))
    print(f"wrote {out}/analysis.json" + "".join(f", {p.name}" for p in plots))
    return 0
