"""The answer-order controls (SPEC §9) on Sudoku, several seeds, on a CPU.

For each seed: generate training puzzles and a held-out test set (excluded from training),
train an MDM and AR models that write the answer forward / reverse / in the solver's order
/ in a random order (`data.answer_order`), evaluate each on the test set (MDM with `topk`
noise=0 and `margin`), then print and write a table with every seed and the spread.
Everything is plain `dvar generate/train/eval` in subprocesses, one thread each, `--jobs`
at a time; finished runs and evaluations are reused, so a killed study resumes.

    python scripts/order_controls.py --size 4 --givens 4:8 --steps 1500 --out studies/sudoku4
    python scripts/order_controls.py --size 9 --givens 31:36 --steps 800 --model mini \\
        --train-size 20000 --out studies/sudoku9

Path planning has the same controls in `dvar demo --controls` (AR reverse beside AR forward).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

MODELS = (  # (name, objective, answer order)
    ("mdm", "mdm", "forward"),
    ("ar-forward", "ar", "forward"),
    ("ar-reverse", "ar", "reverse"),
    ("ar-solver", "ar", "solver"),
    ("ar-random", "ar", "random"),
)
# (column, evaluation folder, model name, dvar eval arguments)
EVALS = (
    ("MDM topk (noise=0)", "topk-noise0", "mdm", ["--decoder", "topk", "--decoder-arg", "noise=0"]),
    ("MDM margin", "margin", "mdm", ["--decoder", "margin"]),
    ("MDM topk (reference: noise 0.5)", "topk-reference", "mdm", []),
    ("AR forward", "greedy", "ar-forward", []),
    ("AR reverse", "greedy", "ar-reverse", []),
    ("AR solver", "greedy", "ar-solver", []),
    ("AR random", "greedy", "ar-random", []),
)


def run(command: list[str], log: Path) -> None:
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    with log.open("w") as handle:
        done = subprocess.run(command, stdout=handle, stderr=subprocess.STDOUT, env=env)
    if done.returncode:
        raise RuntimeError(f"failed ({done.returncode}): {' '.join(command)}; see {log}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=4)
    parser.add_argument("--givens", default="4:8")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--train-size", type=int, default=10000)
    parser.add_argument("--test-size", type=int, default=500)
    parser.add_argument("--model", default="mini")
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--jobs", type=int, default=2, help="trainings at once, one thread each")
    parser.add_argument("--models", default=",".join(name for name, _, _ in MODELS))
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    seeds = [int(s) for s in args.seeds.split(",")]
    wanted = args.models.split(",")
    dvar = [sys.executable, "-m", "dvar"]
    started = time.perf_counter()

    def data(seed: int) -> tuple[Path, Path]:
        folder = out / f"seed{seed}" / "data"
        train, test = folder / "train.jsonl", folder / "test.jsonl"
        if not test.is_file():
            folder.mkdir(parents=True, exist_ok=True)
            common = ["sudoku", "--size", str(args.size), "--givens", args.givens]
            run([*dvar, "generate", *common, "--n", str(args.train_size), "--seed", str(seed),
                 "--out", str(train)], folder / "generate-train.log")
            run([*dvar, "generate", *common, "--n", str(args.test_size), "--seed", str(seed + 1_000_000),
                 "--unique", "--exclude", str(train), "--out", str(test)], folder / "generate-test.log")
        return train, test

    def job(seed: int, name: str, objective: str, order: str) -> None:
        train, test = data(seed)
        run_dir = out / f"seed{seed}" / "runs" / name
        if not (run_dir / "config.yaml").is_file() or not any(run_dir.glob("model.safetensors")):
            resume = ["resume=true"] if run_dir.exists() else []
            t0 = time.perf_counter()
            run([*dvar, "train", "task=sudoku", f"objective={objective}", f"model={args.model}",
                 f"seed={seed}", f"data.train={train}", "data.valid_size=64", f"data.answer_order={order}",
                 f"out_dir={run_dir}", f"train.max_steps={args.steps}", f"train.batch_size={args.batch_size}",
                 f"train.lr={args.lr}", "train.log_every=50", "train.eval_size=0", "train.save_every=500",
                 "arch.positions=learned+rope", *resume], out / f"seed{seed}" / f"train-{name}.log")
            (run_dir / "wall_seconds.txt").write_text(f"{time.perf_counter() - t0:.1f}\n")
        for _, folder, model, extra in EVALS:
            if model != name:
                continue
            eval_dir = run_dir / "eval" / folder
            if not (eval_dir / "metrics.json").is_file():
                run([*dvar, "eval", str(run_dir), "--data", str(test), *extra, "--out", str(eval_dir)],
                    out / f"seed{seed}" / f"eval-{eval_dir.name}.log")

    jobs = [(seed, *model) for seed in seeds for model in MODELS if model[0] in wanted]
    for seed in seeds:
        data(seed)
    with ThreadPoolExecutor(args.jobs) as pool:
        for future in [pool.submit(job, *j) for j in jobs]:
            future.result()
    table = summarize(out, seeds)
    (out / "results.md").write_text(table + f"\n\nWall time of this invocation: {time.perf_counter() - started:.0f} s\n")
    print(table)
    return 0


def summarize(out: Path, seeds: list[int]) -> str:
    """Markdown: one row per model/decoder, each seed's accuracy, mean and min-max."""
    lines = ["| model | " + " | ".join(f"seed {s}" for s in seeds) + " | mean | min–max | train s (mean) |",
             "|---|" + "---|" * (len(seeds) + 3)]
    summary = {}
    for column, folder, model, _ in EVALS:
        accs, walls = [], []
        for seed in seeds:
            run_dir = out / f"seed{seed}" / "runs" / model
            metrics = run_dir / "eval" / folder / "metrics.json"
            accs.append(json.loads(metrics.read_text())["accuracy"] if metrics.is_file() else None)
            wall = run_dir / "wall_seconds.txt"
            if wall.is_file():
                walls.append(float(wall.read_text()))
        have = [a for a in accs if a is not None]
        if not have:
            continue
        summary[column] = accs
        cells = ["—" if a is None else f"{100 * a:.1f}%" for a in accs]
        wall = f"{statistics.mean(walls):.0f}" if walls else "—"
        lines.append(f"| {column} | " + " | ".join(cells) + f" | {100 * statistics.mean(have):.1f}% | "
                     f"{100 * min(have):.1f}–{100 * max(have):.1f}% | {wall} |")
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
