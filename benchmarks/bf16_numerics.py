"""Does bf16 training cost accuracy? MDM and AR, bf16 against fp32, same seeds.

For each seed and objective, two `dvar train` runs that differ only in
`train.precision` (fp32, bf16) train a `mini` model on generated 4x4 Sudoku (8-12 givens);
each is evaluated with its own decoding (topk for MDM, greedy for AR, in the run's
precision) on held-out puzzles kept out of the training data. Reported per run: the final
training loss (mean of the logged losses over the last 10% of steps), the validation loss
and the held-out accuracy; per objective and metric: the mean bf16 - fp32 difference over
seeds against the seed-to-seed spread (max - min over seeds of the fp32 runs). Verdict:
bf16 is "within the spread" where |mean difference| <= that spread.

Throughput does not matter here (one thread per run, any load):

    python benchmarks/bf16_numerics.py --out runs/bf16-numerics --report numerics.md
    DVAR_BENCH_SMALL=1 python benchmarks/bf16_numerics.py --out /tmp/n   # seconds, 1 seed
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

from dvar.cli import main as dvar_main  # noqa: E402
from dvar.config import load_config  # noqa: E402
from dvar.data import read_examples  # noqa: E402
from dvar.evaluate import evaluate, load_run  # noqa: E402
from dvar.precision import cpu_bf16_flags  # noqa: E402
from dvar.trainer import EVAL_LOG_FILE, LOG_FILE, train  # noqa: E402

PRECISIONS = ("fp32", "bf16")
METRICS = ("final_loss", "val_loss", "accuracy")


def make_data(out: Path, n_train: int, n_test: int) -> tuple[Path, Path]:
    train_file, test_file = out / "data" / "train.jsonl", out / "data" / "test.jsonl"
    common = ["--size", "4", "--givens", "8:12", "--workers", "1"]
    if not train_file.exists():
        assert dvar_main(["generate", "sudoku", *common, "--n", str(n_train), "--seed", "0",
                          "--out", str(train_file)]) == 0
    if not test_file.exists():
        assert dvar_main(["generate", "sudoku", *common, "--n", str(n_test), "--seed", "1",
                          "--unique", "--exclude", str(train_file), "--out", str(test_file)]) == 0
    return train_file, test_file


def train_and_score(run: Path, objective: str, precision: str, seed: int, steps: int,
                    train_file: Path, test_file: Path, size: str) -> dict[str, Any]:
    """One run (reused when already finished), scored on the held-out puzzles."""
    if not (run / "model.safetensors").exists():
        resume = run.exists()
        train(load_config(None, [
            "task=sudoku", f"objective={objective}", f"model={size}", f"seed={seed}",
            f"data.train={train_file}", "data.valid_size=64", f"out_dir={run}",
            f"train.max_steps={steps}", "train.batch_size=32", "train.lr=3e-3",
            f"train.log_every={max(1, steps // 40)}", "train.eval_size=0",
            f"train.save_every={max(1, steps // 4)}", "arch.positions=learned+rope",
            f"train.precision={precision}", f"resume={str(resume).lower()}",
        ]))
    log = [json.loads(line) for line in (run / LOG_FILE).read_text().splitlines() if line.strip()]
    tail = [row["loss"] for row in log if row["step"] > 0.9 * steps] or [log[-1]["loss"]]
    evals = [json.loads(line) for line in (run / EVAL_LOG_FILE).read_text().splitlines() if line]
    loaded = load_run(run)
    result = evaluate(loaded, read_examples(str(test_file), loaded.task), batch_size=100, seed=0)
    return {"objective": objective, "precision": precision, "seed": seed, "steps": steps,
            "final_loss": statistics.mean(tail), "val_loss": evals[-1]["val_loss"],
            "accuracy": result.metrics["accuracy"], "n_test": result.metrics["n"],
            "decoder": result.metrics["decoder"],
            "train_seconds": evals[-1].get("train_seconds")}


def verdicts(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per objective and metric: mean paired bf16 - fp32 difference against the fp32 spread."""
    out = []
    for objective in sorted({r["objective"] for r in rows}):
        by = {(r["precision"], r["seed"]): r for r in rows if r["objective"] == objective}
        seeds = sorted({seed for _, seed in by})
        for metric in METRICS:
            fp32 = [by["fp32", s][metric] for s in seeds]
            diffs = [by["bf16", s][metric] - by["fp32", s][metric] for s in seeds]
            spread = max(fp32) - min(fp32)
            mean_diff = statistics.mean(diffs)
            out.append({"objective": objective, "metric": metric, "seeds": len(seeds),
                        "fp32_mean": statistics.mean(fp32),
                        "bf16_mean": statistics.mean(by["bf16", s][metric] for s in seeds),
                        "mean_diff": mean_diff, "fp32_spread": spread,
                        "within_spread": abs(mean_diff) <= spread})
    return out


def markdown(rows: list[dict[str, Any]], summary: list[dict[str, Any]], args,
             argv: list[str] | None = None) -> str:
    lines = [
        "# bf16 against fp32 training: numerics", "",
        f"`python benchmarks/bf16_numerics.py {' '.join(sys.argv[1:] if argv is None else argv)}`; torch {torch.__version__}, "
        f"CPU bf16 flags: {', '.join(cpu_bf16_flags()) or 'none'}; {torch.get_num_threads()} thread(s).",
        f"4x4 Sudoku (8-12 givens), `{args.size}`, {args.steps} steps of 32, lr 3e-3, "
        "learned+rope positions; accuracy on held-out puzzles with the run's own decoder "
        "(topk for MDM, greedy for AR) in the run's precision.", "",
        "| objective | seed | precision | final train loss | val loss | held-out accuracy |",
        "|---|---|---|---|---|---|",
    ]
    for r in sorted(rows, key=lambda r: (r["objective"], r["seed"], r["precision"] != "fp32")):
        lines.append(f"| {r['objective']} | {r['seed']} | {r['precision']} | {r['final_loss']:.4f} "
                     f"| {r['val_loss']:.4f} | {100 * r['accuracy']:.1f}% (n={r['n_test']}) |")
    lines += ["", "| objective | metric | fp32 mean | bf16 mean | mean bf16 - fp32 | fp32 seed spread "
              "(max - min) | bf16 within spread |", "|---|---|---|---|---|---|---|"]
    for v in summary:
        scale = 100 if v["metric"] == "accuracy" else 1
        unit = " pts" if v["metric"] == "accuracy" else ""
        lines.append(f"| {v['objective']} | {v['metric']} | {scale * v['fp32_mean']:.4f} | "
                     f"{scale * v['bf16_mean']:.4f} | {scale * v['mean_diff']:+.4f}{unit} | "
                     f"{scale * v['fp32_spread']:.4f}{unit} | {'yes' if v['within_spread'] else 'NO'} |")
    ok = all(v["within_spread"] for v in summary)
    lines += ["", f"Verdict: bf16 is {'within' if ok else 'NOT within'} the seed-to-seed spread "
              f"on every metric{'' if ok else ' (see the NO rows)'}.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    small = os.environ.get("DVAR_BENCH_SMALL") == "1"
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="folder for the data and the runs")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0] if small else [0, 1, 2])
    parser.add_argument("--objectives", nargs="+", default=["mdm", "ar"], choices=["mdm", "ar"])
    parser.add_argument("--steps", type=int, default=20 if small else 2000)
    parser.add_argument("--size", default="micro" if small else "mini")
    parser.add_argument("--n-train", type=int, default=200 if small else 3000)
    parser.add_argument("--n-test", type=int, default=20 if small else 300)
    parser.add_argument("--report", help="also write the markdown report here")
    args = parser.parse_args(argv)
    out = Path(args.out)
    train_file, test_file = make_data(out, args.n_train, args.n_test)
    rows = []
    for seed in args.seeds:
        for objective in args.objectives:
            for precision in PRECISIONS:
                run = out / f"{objective}-s{seed}-{precision}"
                row = train_and_score(run, objective, precision, seed, args.steps, train_file,
                                      test_file, args.size)
                rows.append(row)
                print(json.dumps(row), flush=True)
    summary = verdicts(rows)
    text = markdown(rows, summary, args, argv)
    print(text)
    (out / "numerics.json").write_text(json.dumps({"runs": rows, "verdicts": summary}, indent=2) + "\n")
    if args.report:
        Path(args.report).parent.mkdir(parents=True, exist_ok=True)
        Path(args.report).write_text(text)
    return rows


if __name__ == "__main__":
    main()
