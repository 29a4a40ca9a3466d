"""Training-step throughput: dvar against the reference's Hugging Face GPT-2 stack.

One process, one run, the same batches, sequence length, precision and optimizer for both:

- `dvar`: `dvar.model.Transformer` with dvar's objective (`dvar.objectives`), dvar's own
  optimizer settings (`dvar.trainer.make_optimizer`) and its step (autocast, loss, backward,
  gradient clipping, AdamW), as `dvar train` runs it.
- `hf`: what the reference (HKUNLP/diffusion-vs-ar) trains: `transformers`'
  `GPT2LMHeadModel` of the same size and vocabulary. For MDM its causal mask is removed
  (the reference fills each block's causal `bias` buffer with True; recent `transformers`
  read `attn.is_causal` instead, so both are set and bidirectionality is checked), logits
  are computed at every position and shifted by one, the cross-entropy is taken over the
  full vocabulary at every position, then masked, token- and time-reweighted and averaged
  over masked positions (the reference's `inner_forward`). For AR it is
  `GPT2LMHeadModel(input_ids, labels=...)` with the prompt and padding labelled -100.

The two alternate in rounds (order flipped every round) so that drift in machine load
hits both alike; each round times `--steps` steps after `--warmup` untimed ones. Printed per
setting: tokens/s (batch x sequence length per second, median over rounds), the ratio
dvar/hf, and achieved FLOP/s against the measured matrix-multiply rate of this machine
at the model's width (a (B*L x D) @ (D x 4D) product, the MLP's shape; measured after
every round, median), where

    FLOPs per token = 6 * (N + D*V) + 12 * n_layer * L * D

with N the non-embedding parameters, D*V the output head, and 12*n_layer*L*D the attention
scores and their weighted sum (forward 4*L*D per token and layer, backward twice that).
Both stacks are charged the same nominal FLOPs, so the FLOP/s ratio equals the tokens/s
ratio; dvar does less than nominal work (only the logits the loss reads).

    python benchmarks/train_throughput.py --sizes tiny --lengths 164 --batch 64 --objectives mdm
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

from dvar.generation import generate  # noqa: E402
from dvar.model import SIZES, Transformer, model_config  # noqa: E402
from dvar.objectives import Batch, get_objective, make_batch  # noqa: E402
from dvar.tasks import get_task  # noqa: E402
from dvar.tokenizer import MASK_ID, CharTokenizer  # noqa: E402
from dvar.trainer import make_optimizer  # noqa: E402

DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
IGNORE_INDEX = -100


# ----------------------------------------------------------------------------- data
def task_for_length(length: int) -> tuple[str, dict[str, Any]]:
    """Real problems of the paper's task at that length: 164 = sudoku, 64 = countdown 4."""
    if length == 164:
        return "sudoku", {}
    if length == 64:
        return "countdown", {"numbers": 4}
    raise SystemExit(f"--lengths: 164 (sudoku) or 64 (countdown 4), got {length}")


def make_batches(length: int, batch: int, count: int, tokenizer: CharTokenizer,
                 device: torch.device) -> list[Batch]:
    """`count` batches of generated problems padded to `length` (SEP, EOS, PAD as training)."""
    name, overrides = task_for_length(length)
    task = get_task(name)
    options = dataclasses.replace(task.make_options(), **overrides)
    rows = generate(task, batch * count, seed=0, options=options)
    encoded = [tokenizer.encode_example(r["input"], r["output"], length) for r in rows]
    return [make_batch(encoded[i * batch : (i + 1) * batch], tokenizer, device) for i in range(count)]


# ----------------------------------------------------------------------------- the step
class TrainStep:
    """One training step as `dvar.trainer.train` takes it (one process, no accumulation):
    autocast forward and loss, backward, clip to 1.0, AdamW (dvar's `make_optimizer`, the
    same for both stacks). Subclasses build the model and say how its loss is computed."""

    name = ""

    def _setup(self, model: torch.nn.Module, device: torch.device, dtype: torch.dtype | None,
               compile: bool, seed: int) -> None:
        self.model = model
        self.optimizer = make_optimizer(self.model, lr=1e-4, betas=(0.9, 0.999), weight_decay=0.0,
                                        device=device)
        self.net = torch.compile(self.model) if compile else self.model
        self.device, self.dtype = device, dtype
        self.generator = torch.Generator(device=device).manual_seed(seed)
        self.scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)

    def loss(self, batch: Batch) -> torch.Tensor:
        raise NotImplementedError

    def __call__(self, batch: Batch) -> torch.Tensor:
        with torch.autocast(self.device.type, dtype=self.dtype, enabled=self.dtype is not None):
            loss = self.loss(batch)
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(self.optimizer)
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        return loss.detach()


# ----------------------------------------------------------------------------- dvar
class DvarStep(TrainStep):
    """dvar's model and objective."""

    name = "dvar"

    def __init__(self, size: str, objective: str, vocab_size: int, length: int,
                 device: torch.device, dtype: torch.dtype | None, dropout: float,
                 compile: bool, seed: int = 0) -> None:
        self.objective = get_objective(objective)
        torch.manual_seed(seed)
        model = Transformer(model_config(size, vocab_size, length, causal=self.objective.causal,
                                         dropout=dropout)).to(device)
        self._setup(model, device, dtype, compile, seed)

    def loss(self, batch: Batch) -> torch.Tensor:
        return self.objective.loss(self.net, batch, self.generator)[0]


# ----------------------------------------------------------------------------- reference
def hf_model(size: str, vocab_size: int, length: int, causal: bool, dropout: float,
             device: torch.device) -> torch.nn.Module:
    """GPT2LMHeadModel of a dvar size; bidirectional (the reference's way) unless causal."""
    from transformers import GPT2Config, GPT2LMHeadModel

    shape = SIZES[size]
    config = GPT2Config(
        vocab_size=vocab_size, n_positions=length, n_embd=shape["n_embd"],
        n_layer=shape["n_layer"], n_head=shape["n_head"], activation_function="gelu_new",
        resid_pdrop=dropout, embd_pdrop=dropout, attn_pdrop=dropout,
        bos_token_id=3, eos_token_id=3,  # the reference's configs
    )
    config._attn_implementation = "sdpa"  # PyTorch's fused attention, as dvar uses
    model = GPT2LMHeadModel(config).to(device)
    if not causal:
        for block in model.transformer.h:
            if getattr(block.attn, "bias", None) is not None and block.attn.bias.dtype == torch.bool:
                block.attn.bias.fill_(True)  # transformers 4.x: the reference's exact line
            block.attn.is_causal = False  # transformers 5.x
        check_bidirectional(model, vocab_size, length, device)
    return model


def check_bidirectional(model: torch.nn.Module, vocab_size: int, length: int,
                        device: torch.device) -> None:
    """Position 0's output must change when the last token does, else the mask is causal."""
    x = torch.randint(5, vocab_size, (1, length), device=device)
    y = x.clone()
    y[0, -1] = 5 if x[0, -1] != 5 else 6
    ones = torch.ones_like(x)
    with torch.no_grad():
        a = model(x, attention_mask=ones).logits[0, 0]
        b = model(y, attention_mask=ones).logits[0, 0]
    if torch.allclose(a, b):
        raise RuntimeError("could not remove GPT-2's causal mask in this transformers version")


def reference_mdm_loss(model: torch.nn.Module, batch: Batch, generator: torch.Generator,
                       steps: int = 20, alpha: float = 0.25, gamma: float = 1.0) -> torch.Tensor:
    """The reference's MDM loss (`CustomDiffusionTrainer.inner_forward`), re-implemented:
    all-position logits shifted by one, full-vocabulary cross-entropy at every position,
    then masked, token-reweighted, linear time weights, mean over masked positions."""
    x_BxL = batch["input_ids"]
    B, L = x_BxL.shape
    device = x_BxL.device
    t_B = torch.randint(0, steps, (B,), device=device, generator=generator)
    u_BxL = torch.rand(B, L, device=device, generator=generator)
    maskable_BxL = torch.arange(L, device=device)[None, :] >= batch["answer_start"][:, None]
    masked_BxL = (u_BxL < ((t_B + 1) / steps)[:, None]) & maskable_BxL
    noisy_BxL = x_BxL.masked_fill(masked_BxL, MASK_ID)
    logits_BxLxV = model(noisy_BxL, attention_mask=torch.ones_like(noisy_BxL)).logits
    logits_BxLxV = torch.cat([logits_BxLxV[:, :1], logits_BxLxV[:, :-1]], dim=1)
    V = logits_BxLxV.size(-1)
    loss = F.cross_entropy(logits_BxLxV.reshape(-1, V), x_BxL.reshape(-1), reduction="none").float()
    loss = loss.masked_fill(~masked_BxL.reshape(-1), 0)
    loss = alpha * (1 - torch.exp(-loss)) ** gamma * loss
    weight_BxL = (steps - t_B)[:, None].float().expand(B, L)
    return (loss * weight_BxL.reshape(-1)).sum() / masked_BxL.sum()


def reference_ar_loss(model: torch.nn.Module, batch: Batch, generator: torch.Generator) -> torch.Tensor:
    """The reference's SFT: labels = input ids with prompt and padding set to -100."""
    x_BxL = batch["input_ids"]
    positions_1xL = torch.arange(x_BxL.size(1), device=x_BxL.device)[None, :]
    answer_BxL = (positions_1xL >= batch["answer_start"][:, None]) & (
        positions_1xL < batch["answer_end"][:, None])
    labels_BxL = x_BxL.masked_fill(~answer_BxL, IGNORE_INDEX)
    return model(x_BxL, attention_mask=torch.ones_like(x_BxL), labels=labels_BxL).loss


class HfStep(TrainStep):
    """The reference's step: HF Trainer = forward, loss, backward, clip to 1.0, AdamW."""

    name = "hf"

    def __init__(self, size: str, objective: str, vocab_size: int, length: int,
                 device: torch.device, dtype: torch.dtype | None, dropout: float,
                 compile: bool, seed: int = 0) -> None:
        torch.manual_seed(seed)
        model = hf_model(size, vocab_size, length, objective == "ar", dropout, device)
        self.loss_fn: Callable[..., torch.Tensor] = (
            reference_ar_loss if objective == "ar" else reference_mdm_loss)
        self._setup(model, device, dtype, compile, seed)

    def loss(self, batch: Batch) -> torch.Tensor:
        return self.loss_fn(self.net, batch, self.generator)


# ----------------------------------------------------------------------------- timing
def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_rate(rows: int, width: int, device: torch.device, dtype: torch.dtype | None,
                seconds: float = 0.5) -> float:
    """Measured FLOP/s of (rows x width) @ (width x 4*width), the MLP's product."""
    kind = dtype or torch.float32
    a = torch.randn(rows, width, device=device, dtype=kind)
    b = torch.randn(width, 4 * width, device=device, dtype=kind)
    a @ b
    synchronize(device)
    count, start = 0, time.perf_counter()
    while True:
        a @ b
        count += 1
        if count % 4 == 0:
            synchronize(device)
            if time.perf_counter() - start > seconds:
                break
    return 2 * rows * width * 4 * width * count / (time.perf_counter() - start)


def flops_per_token(size: str, vocab_size: int, length: int) -> float:
    shape = SIZES[size]
    D, layers = shape["n_embd"], shape["n_layer"]
    non_embedding = layers * (12 * D * D + 13 * D) + 2 * D  # blocks + final LayerNorm
    return 6 * (non_embedding + D * vocab_size) + 12 * layers * length * D


def time_steps(step: Callable[[Batch], torch.Tensor], batches: list[Batch], steps: int,
               warmup: int, device: torch.device) -> float:
    """Seconds per step (mean over `steps` timed steps after `warmup` untimed ones)."""
    for i in range(warmup):
        step(batches[i % len(batches)])
    synchronize(device)
    start = time.perf_counter()
    for i in range(steps):
        loss = step(batches[i % len(batches)])
    synchronize(device)
    elapsed = time.perf_counter() - start
    if not torch.isfinite(loss):
        raise RuntimeError(f"{step.name}: loss is {loss}")
    return elapsed / steps


def bench_one(size: str, length: int, objective: str, args: argparse.Namespace,
              device: torch.device, tokenizer: CharTokenizer) -> dict[str, Any]:
    dtype = DTYPES[args.dtype]
    batches = make_batches(length, args.batch, args.data_batches, tokenizer, device)
    impls = [cls(size, objective, tokenizer.vocab_size, length, device, dtype, args.dropout,
                 args.compile) for cls in (DvarStep, HfStep)]
    per_step: dict[str, list[float]] = {impl.name: [] for impl in impls}
    rates = []  # the matmul ceiling, measured in every round too (the load drifts)
    for round_index in range(args.rounds):
        order = impls if round_index % 2 == 0 else impls[::-1]
        for impl in order:
            warmup = args.warmup if round_index < 2 else 0  # each warms up in its first round
            per_step[impl.name].append(time_steps(impl, batches, args.steps, warmup, device))
        rates.append(matmul_rate(args.batch * length, SIZES[size]["n_embd"], device, dtype, 0.5))
    tokens = args.batch * length
    result: dict[str, Any] = {
        "size": size, "length": length, "objective": objective, "batch": args.batch,
        "dtype": args.dtype, "device": device_name(device), "compile": args.compile,
        "steps_per_round": args.steps, "rounds": args.rounds,
        "flops_per_token": flops_per_token(size, tokenizer.vocab_size, length),
    }
    for name, seconds in per_step.items():
        result[f"{name}_tokens_per_s"] = tokens / statistics.median(seconds)
        result[f"{name}_tokens_per_s_rounds"] = [round(tokens / s, 1) for s in seconds]
    # Per round, the two measurements next to each other: a drift-free ratio estimate.
    ratios = [h / d for d, h in zip(per_step["dvar"], per_step["hf"])]
    result["ratio"] = statistics.median(ratios)
    result["ratio_rounds"] = [round(r, 3) for r in ratios]
    rate = statistics.median(rates)
    result["matmul_flops_per_s"] = rate
    result["matmul_flops_per_s_rounds"] = [round(r / 1e9, 2) for r in rates]  # GFLOP/s
    for name in per_step:
        achieved = result[f"{name}_tokens_per_s"] * result["flops_per_token"]
        result[f"{name}_flops_per_s"] = achieved
        result[f"{name}_of_matmul"] = achieved / rate
    return result


def profile(size: str, length: int, objective: str, args: argparse.Namespace,
            device: torch.device, tokenizer: CharTokenizer) -> None:
    """Where a step's time goes: torch.profiler's op table for one step of each stack."""
    from torch.profiler import ProfilerActivity, profile as torch_profile

    dtype = DTYPES[args.dtype]
    batches = make_batches(length, args.batch, 2, tokenizer, device)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    for cls in (DvarStep, HfStep):
        step = cls(size, objective, tokenizer.vocab_size, length, device, dtype, args.dropout,
                   args.compile)
        step(batches[0])  # warm-up
        synchronize(device)
        with torch_profile(activities=activities) as prof:
            step(batches[1])
            synchronize(device)
        sort = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
        print(f"--- {cls.name}: {size} L={length} {objective} batch {args.batch} {args.dtype}")
        print(prof.key_averages().table(sort_by=sort, row_limit=args.profile))


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({torch.get_num_threads()} threads)"


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example:\n  python benchmarks/train_throughput.py --sizes tiny --lengths 164 "
               "--batch 64 --objectives mdm ar --rounds 4 --steps 2",
    )
    parser.add_argument("--sizes", nargs="+", default=["tiny"], choices=list(SIZES))
    parser.add_argument("--lengths", nargs="+", type=int, default=[164, 64],
                        help="164 = sudoku, 64 = countdown 4 (real generated problems)")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--dtype", choices=list(DTYPES), default="fp32",
                        help="autocast dtype for both (fp32: none)")
    parser.add_argument("--objectives", nargs="+", choices=["mdm", "ar"], default=["mdm", "ar"])
    parser.add_argument("--steps", type=int, default=3, help="timed steps per round")
    parser.add_argument("--rounds", type=int, default=4, help="alternations dvar/hf")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps before each first round")
    parser.add_argument("--data-batches", type=int, default=4, help="distinct batches cycled")
    parser.add_argument("--dropout", type=float, default=0.0,
                        help="for both (the reference's configs use 0.1; dvar's default is 0)")
    parser.add_argument("--compile", action="store_true", help="torch.compile both models")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--json", help="also write the results to this file (a JSON list)")
    parser.add_argument("--profile", type=int, default=0, metavar="ROWS",
                        help="instead: torch.profiler over one step of each, top ROWS ops")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    tokenizer = CharTokenizer()
    results = []
    print(f"device: {device_name(device)}; torch {torch.__version__}; batch {args.batch}; "
          f"{args.dtype}; {args.rounds} rounds x {args.steps} steps")
    if args.profile:
        for size in args.sizes:
            for length in args.lengths:
                for objective in args.objectives:
                    profile(size, length, objective, args, device, tokenizer)
        return results
    header = (f"{'size':6} {'L':>4} {'obj':4} {'dvar tok/s':>11} {'hf tok/s':>10} {'ratio':>6} "
              f"{'dvar FLOP/s':>11} {'hf FLOP/s':>10} {'matmul':>10} {'dvar %':>7} {'hf %':>6}")
    print(header)
    for size in args.sizes:
        for length in args.lengths:
            for objective in args.objectives:
                r = bench_one(size, length, objective, args, device, tokenizer)
                results.append(r)
                print(f"{size:6} {length:>4} {objective:4} {r['dvar_tokens_per_s']:>11.0f} "
                      f"{r['hf_tokens_per_s']:>10.0f} {r['ratio']:>5.2f}x "
                      f"{_si(r['dvar_flops_per_s']):>11} {_si(r['hf_flops_per_s']):>10} "
                      f"{_si(r['matmul_flops_per_s']):>10} {100 * r['dvar_of_matmul']:>6.1f}% "
                      f"{100 * r['hf_of_matmul']:>5.1f}%", flush=True)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return results


def _si(value: float) -> str:
    for unit, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6)):
        if value >= scale:
            return f"{value / scale:.1f}{unit}"
    return f"{value:.0f}"


if __name__ == "__main__":
    main()
