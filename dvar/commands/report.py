"""`dvar report RUN_DIR_OR_EVAL_DIR... --out DIR`."""

from __future__ import annotations

import argparse


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "report",
        help="gather evaluations into results.md, results.csv and plots",
        description=(
            "Find every metrics.json (an eval directory holds one; a run directory holds\n"
            "eval/*/metrics.json and train_log.jsonl; any other directory is searched) and write\n"
            "to --out: results.md (rows: task and test set; columns: model, objective, decoder,\n"
            "steps, read from metrics.json and config.yaml, never from directory names; runs that\n"
            "differ only in seed share a cell: mean accuracy, min-max and the seeds; cells:\n"
            "accuracy with n; the paper's published numbers beside ours where our\n"
            "breakdown keys cover their subset), results.csv (one row per evaluation, then the\n"
            "published numbers; NFE per example: model calls one problem costs decoded batch by\n"
            "batch) and PNG plots: accuracy by breakdown key, accuracy vs NFE,\n"
            "training loss curves, accuracy vs model size. A plot without data is not drawn;\n"
            "results.md says which."
        ),
        epilog="examples:\n  dvar report runs/s4-mdm runs/s4-ar --out report\n"
        "  dvar report runs/ --out report          # every run and evaluation under runs/",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("paths", nargs="+", metavar="RUN_DIR_OR_EVAL_DIR")
    parser.add_argument("--out", required=True, help="output directory")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from dvar.report import write_report

    written = write_report(args.paths, args.out)
    print(f"{len(written['results'])} evaluation(s) from {len(written['runs'])} run(s); "
          f"{len(written['plots'])} plot(s), {len(written['skipped'])} skipped")
    print(f"wrote {args.out}/results.md, results.csv" + "".join(f", {p.name}" for p in written["plots"]))
    return 0
