"""Decoding cost: examples/s, model calls (NFE) and accuracy per decoder on trained runs.

For an MDM run: `topk` (the paper's easy-first), `margin`, `entropy`, `threshold` at a few
confidence levels tau (adaptive number of calls) and `random` (D3PM order). For an AR run:
`greedy` with dvar's KV cache against the same greedy decoding without a cache, which
recomputes the whole prefix at every step (the baseline is written here, not in dvar);
both must give the same answers. Every answer is judged by the task's verifier.

    python benchmarks/decode.py RUN_DIR [RUN_DIR ...] --data test.jsonl
    python benchmarks/decode.py --train-small runs/decode-bench   # 4x4 sudoku, MDM + AR

`--train-small DIR` first generates 4x4 Sudoku (8-12 givens), trains a `mini` MDM and a
`mini` AR model on it (`arch.positions=learned+rope`) and decodes 300 held-out puzzles.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

from dvar.cli import main as dvar_main  # noqa: E402
from dvar.data import read_examples  # noqa: E402
from dvar.evaluate import Run, evaluate, load_run  # noqa: E402
from dvar.metrics import judge_all  # noqa: E402

TAUS = (0.5, 0.7, 0.9)


def mdm_decoders(steps: int) -> list[tuple[str, str, dict[str, Any]]]:
    """(label, decoder, settings) for an MDM run."""
    rows = [("topk", "topk", {"steps": steps}), ("margin", "margin", {"steps": steps}),
            ("entropy", "entropy", {"steps": steps})]
    rows += [(f"threshold tau={tau}", "threshold", {"tau": tau}) for tau in TAUS]
    rows.append(("random", "random", {"steps": steps}))
    return rows


def greedy_without_cache(run: Run, prompts: Sequence[Sequence[int]], batch_size: int) -> tuple[list[list[int]], int, float]:
    """Greedy AR decoding that recomputes the whole prefix at every step (no KV cache).

    Same batching as dvar's `greedy` (prompts of equal length together, a batch stops when
    all its rows have produced EOS or the budget is spent); returns answers, NFE and the
    calls per example (each batch's calls counted for each of its rows).
    """
    model, eos = run.model, run.tokenizer.eos_id
    answers: list[list[int]] = [[] for _ in prompts]
    groups: dict[int, list[int]] = {}
    for index, prompt in enumerate(prompts):
        groups.setdefault(len(prompt), []).append(index)
    nfe, row_calls = 0, 0
    with torch.no_grad():
        for length, indices in sorted(groups.items()):
            budget = min(run.cutoff - length, run.max_new_tokens)
            for start in range(0, len(indices), batch_size):
                chunk = indices[start : start + batch_size]
                x_BxT = torch.tensor([list(prompts[i]) for i in chunk], device=model.device)
                finished_B = torch.zeros(len(chunk), dtype=torch.bool, device=model.device)
                calls = 0
                for _ in range(budget):
                    last_BxT = torch.zeros_like(x_BxT, dtype=torch.bool)
                    last_BxT[:, -1] = True
                    next_B = model(x_BxT, logits_at=last_BxT).argmax(dim=-1)
                    nfe += 1
                    calls += 1
                    x_BxT = torch.cat([x_BxT, next_B[:, None]], dim=1)
                    finished_B |= next_B == eos
                    if bool(finished_B.all()):
                        break
                row_calls += calls * len(chunk)
                for index, row in zip(chunk, x_BxT[:, length:].tolist()):
                    answers[index] = row[: row.index(eos)] if eos in row else row
    return answers, nfe, row_calls / max(len(prompts), 1)


def bench_run(run_dir: str, data: str, limit: int, batch_size: int, steps: int,
              seed: int) -> list[dict[str, Any]]:
    run = load_run(run_dir)
    examples = read_examples(data, run.task)[: limit or None]
    steps = steps or run.config.diffusion.steps
    results = []
    if run.objective.family == "mdm":
        for label, name, settings in mdm_decoders(steps):
            result = evaluate(run, examples, decoder=name, batch_size=batch_size, seed=seed,
                              decoder_settings=settings)
            results.append(_row(run_dir, label, result.metrics))
        return results
    cached = evaluate(run, examples, decoder="greedy", batch_size=batch_size, seed=seed)
    results.append(_row(run_dir, "greedy + KV cache", cached.metrics))
    prompts = [run.tokenizer.encode_prompt(ex.input) for ex in examples]
    start = time.perf_counter()
    ids, nfe, per_example = greedy_without_cache(run, prompts, batch_size)
    seconds = time.perf_counter() - start
    texts = [run.tokenizer.decode_answer(row) for row in ids]
    verdicts = judge_all(run.task, [ex.problem for ex in examples], texts)
    accuracy = sum(v["correct"] for v in verdicts) / max(len(examples), 1)
    same = [r["predict"] for r in cached.rows] == texts
    results.append({
        "run": run_dir, "decoder": "greedy, no cache (recompute prefix)", "n": len(examples),
        "accuracy": accuracy, "examples_per_s": len(examples) / seconds, "nfe": nfe,
        "nfe_per_example": per_example, "seconds": seconds, "same_answers_as_cached": same,
    })
    return results


def _row(run_dir: str, label: str, metrics: dict[str, Any]) -> dict[str, Any]:
    return {"run": run_dir, "decoder": label, "n": metrics["n"], "accuracy": metrics["accuracy"],
            "examples_per_s": metrics["examples_per_s"], "nfe": metrics["nfe"],
            "nfe_per_example": metrics["row_nfe_per_example"] or metrics["nfe_per_example"],
            "seconds": metrics["seconds"]}


def train_small(out: Path, steps: int) -> tuple[list[str], str]:
    """4x4 Sudoku data and two trained `mini` runs (MDM, AR); returns (runs, test file)."""
    data = out / "data"
    train, test = data / "train.jsonl", data / "test.jsonl"
    common = ["--size", "4", "--givens", "8:12"]
    if not train.exists():
        assert dvar_main(["generate", "sudoku", *common, "--n", "3000", "--seed", "0",
                          "--out", str(train)]) == 0
    if not test.exists():
        assert dvar_main(["generate", "sudoku", *common, "--n", "300", "--seed", "1", "--unique",
                          "--exclude", str(train), "--out", str(test)]) == 0
    runs = []
    for objective in ("mdm", "ar"):
        run = out / objective
        if not (run / "model.safetensors").exists():
            assert dvar_main([
                "train", "task=sudoku", f"objective={objective}", "model=mini", "seed=0",
                f"data.train={train}", "data.valid_size=64", f"out_dir={run}",
                f"train.max_steps={steps}", "train.batch_size=32", "train.lr=3e-3",
                "train.log_every=100", "train.eval_size=32", "arch.positions=learned+rope",
            ]) == 0
        runs.append(str(run))
    return runs, str(test)


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  python benchmarks/decode.py runs/s4-mdm runs/s4-ar --data test.jsonl\n"
               "  python benchmarks/decode.py --train-small runs/decode-bench",
    )
    parser.add_argument("runs", nargs="*", help="run directories (dvar train out_dir)")
    parser.add_argument("--data", help="JSONL problems to decode (with gold outputs)")
    parser.add_argument("--train-small", metavar="DIR",
                        help="generate 4x4 sudoku, train mini MDM + AR runs in DIR, decode its test set")
    parser.add_argument("--train-steps", type=int, default=600)
    parser.add_argument("--n", type=int, default=0, help="decode only the first N problems")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=0, help="T for the fixed-step decoders (0: the run's)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args(argv)
    runs, data = list(args.runs), args.data
    if args.train_small:
        trained, test = train_small(Path(args.train_small), args.train_steps)
        runs += trained
        data = data or test
    if not runs or not data:
        parser.error("give RUN_DIR(s) and --data, or --train-small DIR")
    results = []
    print(f"{'run':28} {'decoder':38} {'n':>5} {'accuracy':>9} {'ex/s':>8} {'NFE/ex':>7}")
    for run_dir in runs:
        for r in bench_run(run_dir, data, args.n, args.batch_size, args.steps, args.seed):
            results.append(r)
            nfe = "-" if r["nfe_per_example"] is None else f"{r['nfe_per_example']:.1f}"
            extra = ""
            if "same_answers_as_cached" in r:
                extra = f"  (NFE {r['nfe']}; same answers as cached: {r['same_answers_as_cached']})"
            print(f"{Path(run_dir).name[:28]:28} {r['decoder']:38} {r['n']:>5} "
                  f"{100 * r['accuracy']:>8.1f}% {r['examples_per_s']:>8.1f} {nfe:>7}{extra}",
                  flush=True)
    ar = [r for r in results if r["decoder"].startswith("greedy")]
    if len(ar) == 2:
        print(f"KV cache speed-up: {ar[0]['examples_per_s'] / ar[1]['examples_per_s']:.2f}x")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return results


if __name__ == "__main__":
    main()
