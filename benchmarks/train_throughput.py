"""Training-step throughput in fp32 and bf16: dvar against the reference's Hugging Face
GPT-2 stack, against this CPU's (or GPU's) matrix-multiply ceiling, and decoding speed.

One process, one run, the same batches, sequence length and optimizer for every stack:

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

Every stack and precision (`--dtypes`, default fp32 and bf16) alternates in rounds (order
flipped every round) so that drift in machine load hits all alike; each round times
`--steps` steps after `--warmup` untimed ones. Printed per setting: tokens/s (batch x
sequence length per second, median over rounds), the ratios measured in the same run
(dvar/hf per precision, and dvar bf16/fp32: medians of the per-round ratios), and achieved
FLOP/s against the measured matrix-multiply rate of this machine in the same precision at
the model's width (a (B*L x D) @ (D x 4D) product, the MLP's shape; measured after every
round, median), where

    FLOPs per token = 6 * (N + D*V) + 12 * n_layer * L * D

with N the non-embedding parameters, D*V the output head, and 12*n_layer*L*D the attention
scores and their weighted sum (forward 4*L*D per token and layer, backward twice that).
Both stacks are charged the same nominal FLOPs, so the FLOP/s ratio equals the tokens/s
ratio; dvar does less than nominal work (only the logits the loss reads).

`--levers` times dvar's bf16 step one lever at a time, in rounds: SDPA's attention (the
CPU flash kernel, dvar's path before `attention_by_matmul`), dvar's own attention path,
and that plus bf16 weights for the forward pass with fp32 master weights in AdamW
(measured here, not adopted by the trainer: about 1.07x under load). `--decode` times
decoding on 9x9 Sudoku (puzzles/s, topk T=20 and threshold tau=0.9) in fp32 and bf16 with
a `tiny` MDM (random weights unless `--decode-run` names a trained run).

    python benchmarks/train_throughput.py --sizes micro mini tiny --lengths 164 --objectives mdm --decode
    DVAR_BENCH_SMALL=1 python benchmarks/train_throughput.py   # seconds: micro, batch 2
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

import dvar.model  # noqa: E402
from dvar.config import Config  # noqa: E402
from dvar.evaluate import Run, build_objective, decode_samples, load_run  # noqa: E402
from dvar.generation import generate  # noqa: E402
from dvar.model import SIZES, Transformer, model_config  # noqa: E402
from dvar.objectives import Batch, get_objective, make_batch  # noqa: E402
from dvar.tasks import get_task  # noqa: E402
from dvar.tokenizer import MASK_ID, CharTokenizer  # noqa: E402
from dvar.precision import cpu_bf16_flags  # noqa: E402
from dvar.trainer import make_optimizer  # noqa: E402

DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
SMALL = os.environ.get("DVAR_BENCH_SMALL") == "1"  # seconds instead of minutes (tests)
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


def sdpa_attention(q_BxHxLxK, k_BxHxSxK, v_BxHxSxK, mask_LxS=None, is_causal=False, dropout=0.0):
    """PyTorch's fused SDPA on every device and dtype (dvar's CPU bf16 path before
    `dvar.model.attention_by_matmul`)."""
    return F.scaled_dot_product_attention(q_BxHxLxK, k_BxHxSxK, v_BxHxSxK, attn_mask=mask_LxS,
                                          dropout_p=dropout, is_causal=is_causal)


class SdpaAttentionStep(DvarStep):
    """Lever off: dvar's step with SDPA's attention instead of `dvar.model.attention`."""

    def __call__(self, batch: Batch) -> torch.Tensor:
        chosen = dvar.model.attention
        dvar.model.attention = sdpa_attention
        try:
            return super().__call__(batch)
        finally:
            dvar.model.attention = chosen


class Bf16WeightsStep(DvarStep):
    """Lever on: a bf16 copy of the weights runs forward and backward (no per-step weight
    casts by autocast); its gradients go to the fp32 master weights, which AdamW updates
    and which are copied back into the bf16 copy."""

    def _setup(self, model, device, dtype, compile, seed) -> None:
        super()._setup(model, device, dtype, compile, seed)
        self.shadow = copy.deepcopy(model).to(torch.bfloat16)
        self.net = torch.compile(self.shadow) if compile else self.shadow
        self.master = list(model.parameters())
        self.half = list(self.shadow.parameters())

    def __call__(self, batch: Batch) -> torch.Tensor:
        with torch.autocast(self.device.type, dtype=torch.bfloat16):
            loss = self.loss(batch)
        loss.backward()
        for master, half in zip(self.master, self.half):
            master.grad, half.grad = half.grad.float(), None
        torch.nn.utils.clip_grad_norm_(self.master, 1.0)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        with torch.no_grad():
            torch._foreach_copy_(self.half, self.master)
        return loss.detach()


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


def run_rounds(steps: dict[str, TrainStep], batches: list[Batch], args: argparse.Namespace,
               device: torch.device, ceilings: dict[str, tuple[int, int]]) -> tuple[
                   dict[str, list[float]], dict[str, list[float]]]:
    """Seconds per step of each labelled step per round (order flipped every round), and
    the matmul ceiling of each dtype name in `ceilings` ((rows, width)) after every round."""
    per_step: dict[str, list[float]] = {label: [] for label in steps}
    rates: dict[str, list[float]] = {name: [] for name in ceilings}
    items = list(steps.items())
    for round_index in range(args.rounds):
        for label, step in items if round_index % 2 == 0 else items[::-1]:
            warmup = args.warmup if round_index < 2 else 0  # each warms up in its first round
            per_step[label].append(time_steps(step, batches, args.steps, warmup, device))
        for name, (rows, width) in ceilings.items():
            rates[name].append(matmul_rate(rows, width, device, DTYPES[name], 0.5))
    return per_step, rates


def paired_ratio(faster: list[float], slower: list[float]) -> tuple[float, list[float]]:
    """Median over rounds of slower/faster seconds (a speed-up), and the per-round values."""
    ratios = [b / a for a, b in zip(faster, slower)]
    return statistics.median(ratios), [round(r, 3) for r in ratios]


def bench_one(size: str, length: int, objective: str, args: argparse.Namespace,
              device: torch.device, tokenizer: CharTokenizer) -> dict[str, Any]:
    """dvar and hf in every dtype of `args.dtypes`, alternating in the same rounds."""
    batches = make_batches(length, args.batch, args.data_batches, tokenizer, device)
    steps: dict[str, TrainStep] = {}
    for name in args.dtypes:
        for cls in (DvarStep, HfStep):
            steps[f"{cls.name} {name}"] = cls(size, objective, tokenizer.vocab_size, length, device,
                                              DTYPES[name], args.dropout, args.compile)
    width = SIZES[size]["n_embd"]
    ceilings = {name: (args.batch * length, width) for name in args.dtypes}
    per_step, rates = run_rounds(steps, batches, args, device, ceilings)
    tokens = args.batch * length
    result: dict[str, Any] = {
        "size": size, "length": length, "objective": objective, "batch": args.batch,
        "dtypes": list(args.dtypes), "device": device_name(device), "compile": args.compile,
        "steps_per_round": args.steps, "rounds": args.rounds,
        "flops_per_token": flops_per_token(size, tokenizer.vocab_size, length),
        "matmul_shape": [args.batch * length, width, 4 * width],
    }
    for name in args.dtypes:
        rate = statistics.median(rates[name])
        result[f"matmul_flops_per_s {name}"] = rate
        result[f"matmul_flops_per_s_rounds {name}"] = [round(r / 1e9, 2) for r in rates[name]]
        for stack in ("dvar", "hf"):
            seconds = per_step[f"{stack} {name}"]
            key = f"{stack} {name}"
            result[f"{key} tokens_per_s"] = tokens / statistics.median(seconds)
            result[f"{key} tokens_per_s_rounds"] = [round(tokens / s, 1) for s in seconds]
            achieved = result[f"{key} tokens_per_s"] * result["flops_per_token"]
            result[f"{key} flops_per_s"] = achieved
            result[f"{key} of_matmul"] = achieved / rate  # share of the same dtype's ceiling
        # dvar against hf, per round side by side: a drift-free ratio estimate.
        result[f"dvar/hf {name}"], result[f"dvar/hf {name} rounds"] = paired_ratio(
            per_step[f"dvar {name}"], per_step[f"hf {name}"])
    base = args.dtypes[0]
    for name in args.dtypes[1:]:  # each precision against the first (fp32 by default)
        for stack in ("dvar", "hf"):
            result[f"{stack} {name}/{base}"], result[f"{stack} {name}/{base} rounds"] = paired_ratio(
                per_step[f"{stack} {name}"], per_step[f"{stack} {base}"])
    return result


def bench_levers(size: str, length: int, objective: str, args: argparse.Namespace,
                 device: torch.device, tokenizer: CharTokenizer) -> dict[str, Any]:
    """dvar's bf16 step one lever at a time, against its fp32 step, in the same rounds."""
    batches = make_batches(length, args.batch, args.data_batches, tokenizer, device)
    make = lambda cls, dtype: cls(size, objective, tokenizer.vocab_size, length, device,  # noqa: E731
                                  dtype, args.dropout, args.compile)
    steps = {"fp32": make(DvarStep, None),
             "bf16, SDPA attention": make(SdpaAttentionStep, torch.bfloat16),
             "bf16, dvar attention": make(DvarStep, torch.bfloat16),
             "bf16, dvar attention + bf16 weights": make(Bf16WeightsStep, torch.bfloat16)}
    per_step, _ = run_rounds(steps, batches, args, device, {})
    tokens = args.batch * length
    result: dict[str, Any] = {"size": size, "length": length, "objective": objective,
                              "batch": args.batch, "device": device_name(device)}
    for label, seconds in per_step.items():
        result[f"{label} tokens_per_s"] = tokens / statistics.median(seconds)
        result[f"{label} /fp32"], result[f"{label} /fp32 rounds"] = paired_ratio(
            seconds, per_step["fp32"])
    return result


def bench_decode(args: argparse.Namespace, device: torch.device) -> list[dict[str, Any]]:
    """9x9 Sudoku puzzles per second, topk T=20 and threshold tau=0.9, fp32 against bf16:
    the same model and puzzles, decoded by `dvar.evaluate.decode_samples` in each precision
    (the run's precision is what `dvar eval` decodes in), alternating in rounds."""
    task = get_task("sudoku")
    if args.decode_run:
        run = load_run(args.decode_run, device)
    else:
        tokenizer = CharTokenizer()
        cfg = Config(task="sudoku", objective="mdm", model=args.decode_size)
        cfg.data.cutoff, cfg.data.max_new_tokens = 164, 81
        torch.manual_seed(0)
        model = Transformer(model_config(args.decode_size, tokenizer.vocab_size, 164,
                                         causal=False)).to(device).eval()
        run = Run(cfg, task, tokenizer, model, build_objective(cfg, tokenizer.mask_id))
    rows = generate(task, args.decode_n, seed=1)
    inputs = [r["input"] for r in rows]
    names = [f"puzzle {i}" for i in range(len(rows))]
    decoders = [("topk T=20", "topk", {"steps": 20}), ("threshold tau=0.9", "threshold", {"tau": 0.9})]
    seconds: dict[tuple[str, str], list[float]] = {}
    nfe: dict[tuple[str, str], float] = {}
    answers: dict[tuple[str, str], list[list[str]]] = {}
    settings = [(label, name, options, dtype) for label, name, options in decoders
                for dtype in args.dtypes]
    for round_index in range(max(1, args.rounds // 2)):
        for label, name, options, dtype in settings if round_index % 2 == 0 else settings[::-1]:
            precision = copy.deepcopy(run.config)
            precision.train.precision = dtype
            timed = dataclasses.replace(run, config=precision)
            start = time.perf_counter()
            decoded = decode_samples(timed, inputs, names, decoder=name, decoder_settings=options,
                                     batch_size=args.decode_batch)
            synchronize(device)
            seconds.setdefault((label, dtype), []).append(time.perf_counter() - start)
            nfe[label, dtype] = decoded.row_nfe_per_example or decoded.nfe_per_example
            answers[label, dtype] = decoded.samples
    results = []
    for label, _, _ in decoders:
        base = args.dtypes[0]
        for dtype in args.dtypes:
            speedup, rounds = paired_ratio(seconds[label, dtype], seconds[label, base])
            same = sum(a == b for a, b in zip(answers[label, dtype], answers[label, base]))
            results.append({"decoder": label, "dtype": dtype, "n": len(rows),
                            "puzzles_per_s": len(rows) / statistics.median(seconds[label, dtype]),
                            "nfe_per_puzzle": nfe[label, dtype], f"/{base}": speedup,
                            f"/{base} rounds": rounds, f"same answers as {base}": same / len(rows),
                            "model": args.decode_run or f"{args.decode_size} (random weights)"})
    return results


def profile(size: str, length: int, objective: str, args: argparse.Namespace,
            device: torch.device, tokenizer: CharTokenizer) -> None:
    """Where a step's time goes: torch.profiler's op table for one step of each stack."""
    from torch.profiler import ProfilerActivity, profile as torch_profile

    dtype = DTYPES[args.dtypes[-1]]
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
        print(f"--- {cls.name}: {size} L={length} {objective} batch {args.batch} {args.dtypes[-1]}")
        print(prof.key_averages().table(sort_by=sort, row_limit=args.profile))


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{cpu_model()} ({torch.get_num_threads()} threads)"


def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo), else what `platform` says."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main(argv: list[str] | None = None) -> dict[str, list[dict[str, Any]]]:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  python benchmarks/train_throughput.py --sizes micro mini tiny --lengths 164 "
               "--objectives mdm ar --decode\n  python benchmarks/train_throughput.py --sizes tiny "
               "--lengths 164 --objectives mdm --levers-only",
    )
    parser.add_argument("--sizes", nargs="+", default=["micro"] if SMALL else ["micro", "mini", "tiny"],
                        choices=list(SIZES))
    parser.add_argument("--lengths", nargs="+", type=int, default=[64] if SMALL else [164],
                        help="164 = sudoku, 64 = countdown 4 (real generated problems)")
    parser.add_argument("--batch", type=int, default=2 if SMALL else 64)
    parser.add_argument("--dtypes", "--dtype", nargs="+", choices=list(DTYPES), default=["fp32", "bf16"],
                        help="autocast dtypes (fp32: none); ratios are against the first")
    parser.add_argument("--objectives", nargs="+", choices=["mdm", "ar"],
                        default=["mdm"] if SMALL else ["mdm", "ar"])
    parser.add_argument("--steps", type=int, default=1 if SMALL else 3, help="timed steps per round")
    parser.add_argument("--rounds", type=int, default=2 if SMALL else 4, help="alternations")
    parser.add_argument("--warmup", type=int, default=0 if SMALL else 1,
                        help="untimed steps before each first round")
    parser.add_argument("--data-batches", type=int, default=1 if SMALL else 4, help="distinct batches cycled")
    parser.add_argument("--dropout", type=float, default=0.0,
                        help="for both (the reference's configs use 0.1; dvar's default is 0)")
    parser.add_argument("--compile", action="store_true", help="torch.compile both models")
    parser.add_argument("--levers", action="store_true",
                        help="also time dvar's bf16 step one lever at a time")
    parser.add_argument("--levers-only", action="store_true", help="only the levers")
    parser.add_argument("--decode", action="store_true", help="also time 9x9 sudoku decoding")
    parser.add_argument("--decode-run", help="a trained MDM run for --decode (default: random weights)")
    parser.add_argument("--decode-size", default="micro" if SMALL else "tiny", choices=list(SIZES))
    parser.add_argument("--decode-n", type=int, default=4 if SMALL else 256, help="puzzles decoded")
    parser.add_argument("--decode-batch", type=int, default=4 if SMALL else 64)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument("--profile", type=int, default=0, metavar="ROWS",
                        help="instead: torch.profiler over one step of each (last dtype), top ROWS ops")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    tokenizer = CharTokenizer()
    results: dict[str, list[dict[str, Any]]] = {"train": [], "levers": [], "decode": []}
    flags = ", ".join(cpu_bf16_flags()) or "none"
    print(f"device: {device_name(device)}; CPU: {cpu_model()}; CPU bf16 flags: {flags}; "
          f"torch {torch.__version__}; batch {args.batch}; {args.rounds} rounds x {args.steps} steps")
    settings = [(size, length, objective) for size in args.sizes for length in args.lengths
                for objective in args.objectives]
    if args.profile:
        for setting in settings:
            profile(*setting, args, device, tokenizer)
        return results
    base = args.dtypes[0]
    if not args.levers_only:
        for size, length, objective in settings:
            r = bench_one(size, length, objective, args, device, tokenizer)
            results["train"].append(r)
            print(f"{size} L={length} {objective}: matmul {r['matmul_shape'][0]}x"
                  f"{r['matmul_shape'][1]}x{r['matmul_shape'][2]}")
            for name in args.dtypes:
                print(f"  {name:5} dvar {r[f'dvar {name} tokens_per_s']:>9.0f} tok/s "
                      f"{_si(r[f'dvar {name} flops_per_s']):>7}FLOP/s = "
                      f"{100 * r[f'dvar {name} of_matmul']:5.1f}% of {name} matmul "
                      f"{_si(r[f'matmul_flops_per_s {name}']):>7}FLOP/s | hf "
                      f"{r[f'hf {name} tokens_per_s']:>9.0f} tok/s "
                      f"{100 * r[f'hf {name} of_matmul']:5.1f}% | dvar/hf {r[f'dvar/hf {name}']:.2f}x",
                      flush=True)
            for name in args.dtypes[1:]:
                print(f"  {name}/{base}: dvar {r[f'dvar {name}/{base}']:.2f}x "
                      f"(rounds {r[f'dvar {name}/{base} rounds']}), hf {r[f'hf {name}/{base}']:.2f}x",
                      flush=True)
    if args.levers or args.levers_only:
        for size, length, objective in settings:
            r = bench_levers(size, length, objective, args, device, tokenizer)
            results["levers"].append(r)
            print(f"levers, dvar {size} L={length} {objective} (x = against fp32, same rounds):")
            for label in ("fp32", "bf16, SDPA attention", "bf16, dvar attention",
                          "bf16, dvar attention + bf16 weights"):
                print(f"  {label:38} {r[f'{label} tokens_per_s']:>9.0f} tok/s "
                      f"{r[f'{label} /fp32']:5.2f}x", flush=True)
    if args.decode:
        print(f"decoding 9x9 sudoku ({args.decode_n} puzzles, batch {args.decode_batch}):")
        for r in bench_decode(args, device):
            results["decode"].append(r)
            print(f"  {r['decoder']:18} {r['dtype']:5} {r['puzzles_per_s']:8.1f} puzzles/s "
                  f"{r['nfe_per_puzzle']:6.1f} NFE/puzzle  {r[f'/{base}']:.2f}x {base}; "
                  f"same answers as {base}: {100 * r[f'same answers as {base}']:.0f}%", flush=True)
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
