"""The training loop: `train(config)`; `dvar train` is its command line.

One straight loop for both objectives. What makes it reproducible and resumable:
- the data order is a seeded permutation per epoch, and step s uses stream positions
  [s*B, (s+1)*B) of the concatenated epochs (B = global batch), so the data of a step is a
  function of the seed and s alone;
- every random draw of step s (MDM masks, dropout) comes from generators seeded with
  (seed, s, position in the global batch), so a resumed run draws exactly what the
  uninterrupted run would have, and so does a run split over several processes;
- the loss of a step is normalised by the number of loss positions in the whole global
  batch (all processes, all accumulation steps), so 1 process with accumulation and N
  processes give the same update.
Checkpoints (model, optimizer, schedule, step) are written atomically (`dvar.checkpoint`).
Several processes: launch with `torchrun`; gradients are averaged by PyTorch's
DistributedDataParallel (NCCL on GPUs, gloo on CPUs).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import random
import time
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from dvar.checkpoint import list_checkpoints, load_checkpoint, save_checkpoint, save_weights
from dvar.config import Config, ConfigError, save_config, to_dict
from dvar.data import Example, read_examples, written_answers
from dvar.evaluate import Run, build_objective, evaluate
from dvar.hf import RUN_SUBDIR, HFBackbone, HFTokenizer, build_backbone, check_dependencies, hf_path
from dvar.model import SIZES, Transformer, model_config
from dvar.objectives import Objective
from dvar.tasks import get_task
from dvar.tokenizer import DEFAULT_CHARS, CharTokenizer
from dvar.tracking import Tracker, check_report_to, open_tracker

LOG_FILE = "train_log.jsonl"
EVAL_LOG_FILE = "eval_log.jsonl"


# ----------------------------------------------------------------------------- data
@dataclasses.dataclass
class EncodedData:
    """Every example of a split as one tensor of token ids plus answer spans."""

    examples: list[Example]
    ids_NxL: torch.Tensor  # int64
    answer_start_N: torch.Tensor
    answer_end_N: torch.Tensor

    def __len__(self) -> int:
        return len(self.examples)

    def batch(self, index_B: torch.Tensor, device: torch.device) -> dict[str, torch.Tensor]:
        return {
            "input_ids": self.ids_NxL[index_B].to(device, non_blocking=True),
            "answer_start": self.answer_start_N[index_B].to(device, non_blocking=True),
            "answer_end": self.answer_end_N[index_B].to(device, non_blocking=True),
        }


Tokenizer = CharTokenizer | HFTokenizer


def encode(examples: list[Example], tokenizer: Tokenizer, cutoff: int, source: str,
           answers: list[str] | None = None) -> EncodedData:
    """Token ids of `input SEP answer EOS` per example; `answers` (default: the gold
    outputs) is what the model is trained to write, e.g. the gold in another order."""
    answers = [ex.output for ex in examples] if answers is None else answers
    rows = [
        tokenizer.encode_example(ex.input, answer, cutoff, name=f"{source}:{ex.line}")
        for ex, answer in zip(examples, answers)
    ]
    spans = [tokenizer.answer_span(ex.input, answer) for ex, answer in zip(examples, answers)]
    return EncodedData(
        examples, torch.tensor(rows, dtype=torch.long),
        torch.tensor([start for start, _ in spans]), torch.tensor([end for _, end in spans]),
    )


def _split_valid(cfg: Config, examples: list[Example]) -> tuple[list[Example], list[Example]]:
    count = cfg.data.valid_size
    if count <= 0:
        return examples, []
    if count >= len(examples):
        raise ConfigError(f"data.valid_size={count} leaves no training data ({len(examples)} examples)")
    order = list(range(len(examples)))
    random.Random(f"valid:{cfg.seed}").shuffle(order)
    held = set(order[:count])
    return ([ex for i, ex in enumerate(examples) if i not in held],
            [ex for i, ex in enumerate(examples) if i in held])


# ----------------------------------------------------------------------------- distributed
@dataclasses.dataclass
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def _init_distributed() -> Dist:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if torch.cuda.is_available() else "gloo")
    return Dist(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def _device(d: Dist) -> torch.device:
    if torch.cuda.is_available():
        torch.cuda.set_device(d.local_rank)
        return torch.device("cuda", d.local_rank)
    return torch.device("cpu")


def _seed(*parts: int) -> int:
    """A 63-bit seed from integers (stable across runs and processes)."""
    value = 0x9E3779B97F4A7C15
    for part in parts:
        value = (value ^ (part + 0x9E3779B97F4A7C15 + (value << 6) + (value >> 2))) & (2**63 - 1)
    return value


# ----------------------------------------------------------------------------- schedule
def lr_lambda(step: int, warmup: int, total: int, min_ratio: float) -> float:
    """Linear warm-up to 1, then cosine decay to min_ratio at `total`."""
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def make_optimizer(
    model: torch.nn.Module, lr: float, betas: tuple[float, float], weight_decay: float,
    device: torch.device,
) -> torch.optim.AdamW:
    """AdamW as `train` uses it (benchmarks build the same one)."""
    # GPT-2 practice: no weight decay on biases and LayerNorm gains. Frozen weights (a
    # LoRA run's base) are not optimised at all.
    trained = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in trained if p.dim() >= 2]
    no_decay = [p for p in trained if p.dim() < 2]
    return torch.optim.AdamW(
        [{"params": decay, "weight_decay": weight_decay},
         {"params": no_decay, "weight_decay": 0.0}],
        lr=lr, betas=betas,
        fused=device.type == "cuda",
    )


PRECISIONS: dict[str, torch.dtype | None] = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
# CPU flags that name native bf16 matrix arithmetic: Intel AMX and AVX512-BF16 (also recent
# AMD), Arm's BF16 extension and SME (in /proc/cpuinfo's "Features" on Arm).
BF16_CPU_FLAGS = ("amx_bf16", "avx512_bf16", "bf16", "sme")


def cpu_bf16_flags(cpuinfo: str = "/proc/cpuinfo") -> list[str]:
    """The flags of BF16_CPU_FLAGS that this CPU reports ([] where /proc/cpuinfo is absent)."""
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        return []
    flags: set[str] = set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() in ("flags", "features"):
            flags.update(value.split())
    return [flag for flag in BF16_CPU_FLAGS if flag in flags]


def resolve_precision(choice: str, device: torch.device, model: str) -> tuple[str, str]:
    """fp32, bf16 or fp16 for `train.precision=choice`, and why (for the log).

    auto: bf16 on a GPU that supports it; on a CPU with native bf16 matrix support
    (`cpu_bf16_flags`) bf16 for dvar's own model of any size (with `attention_by_matmul`
    even `micro` and `mini` trained faster in bf16, benchmarks/train_throughput.py) but
    fp32 for a pretrained `hf:` model, whose attention is PyTorch's CPU flash kernel,
    slow in bf16; fp32 everywhere else. `model` is cfg.model (a size or hf:PATH)."""
    if choice != "auto":
        return choice, "set"
    if device.type == "cuda":
        if torch.cuda.is_bf16_supported():
            return "bf16", "auto: the GPU supports bf16"
        return "fp32", "auto: the GPU lacks bf16"
    if device.type != "cpu":
        return "fp32", f"auto: {device.type}"
    flags = cpu_bf16_flags()
    if not flags:
        return "fp32", "auto: the CPU has no native bf16"
    if hf_path(model):
        return "fp32", f"auto: the CPU has {', '.join(flags)}, but an hf model's attention is slow in bf16"
    return "bf16", f"auto: the CPU has {', '.join(flags)}"


# ----------------------------------------------------------------------------- backbone
# The one place where dvar's own model and a pretrained Hugging Face one (`model=hf:PATH`,
# dvar/hf.py) part ways; everything after works with either.
def build_tokenizer(cfg: Config) -> Tokenizer:
    path = hf_path(cfg.model)
    if path:
        return HFTokenizer.from_pretrained(path, mask=cfg.objective == "mdm")
    return CharTokenizer(cfg.arch.vocab or DEFAULT_CHARS)


def build_model(cfg: Config, tokenizer: Tokenizer, objective: Objective,
                dtype: torch.dtype | None) -> Transformer | HFBackbone:
    path = hf_path(cfg.model)
    if path:
        # A frozen LoRA base may stay in the autocast dtype; trained weights are fp32.
        frozen_bf16 = cfg.lora.r > 0 and dtype == torch.bfloat16
        return build_backbone(path, tokenizer, objective.causal, cfg.lora,
                              torch.bfloat16 if frozen_bf16 else torch.float32, cfg.data.cutoff)
    return Transformer(model_config(
        cfg.model, tokenizer.vocab_size, cfg.data.cutoff, causal=objective.causal,
        dropout=cfg.arch.dropout, positions=cfg.arch.positions,
    ))


def describe_model(out: Path, model: Transformer | HFBackbone, tokenizer: Tokenizer) -> None:
    """What a run directory holds from its start: vocab.json and model.json (an hf run
    saves its tokenizer and model config with the model, `save_model`)."""
    if isinstance(model, Transformer):
        tokenizer.save(out / "vocab.json")
        (out / "model.json").write_text(json.dumps(dataclasses.asdict(model.config), indent=2) + "\n")


def save_model(out: Path, model: Transformer | HFBackbone, tokenizer: Tokenizer) -> None:
    """The finished model: model.safetensors, or hf/ in Hugging Face format."""
    if isinstance(model, HFBackbone):
        model.save_pretrained(out / RUN_SUBDIR, tokenizer)
    else:
        save_weights(model, out / "model.safetensors")


# ----------------------------------------------------------------------------- main loop
def resolve(cfg: Config) -> tuple[Config, Tokenizer, EncodedData, EncodedData]:
    """Read the data, fill in derived settings (cutoff, max_new_tokens, max_steps)."""
    if not cfg.task:
        raise ConfigError("set task=... (one of the registered tasks)")
    if cfg.objective not in ("ar", "mdm"):
        raise ConfigError(f"objective must be ar or mdm, got {cfg.objective!r}")
    if cfg.model not in SIZES and not hf_path(cfg.model):
        raise ConfigError(f"unknown model size {cfg.model!r}; known: {', '.join(SIZES)}, hf:PATH")
    if not cfg.out_dir:
        raise ConfigError("set out_dir=... (the run directory)")
    if not cfg.data.train:
        raise ConfigError("set data.train=... (a JSONL file)")
    if cfg.train.precision not in ("auto", "fp32", "bf16", "fp16"):
        raise ConfigError(f"train.precision must be auto, fp32, bf16 or fp16, got {cfg.train.precision!r}")
    # Optional packages the settings need: a one-line error now, not after reading the data.
    check_report_to(cfg.train.report_to)
    if hf_path(cfg.model):
        check_dependencies(hf_path(cfg.model), cfg.lora)
    task = get_task(cfg.task)
    task.check_order(cfg.data.answer_order)
    train_examples = read_examples(cfg.data.train, task, need_output=True)
    if cfg.data.valid:
        valid_examples = read_examples(cfg.data.valid, task, need_output=True)
        valid_source = cfg.data.valid
    else:
        train_examples, valid_examples = _split_valid(cfg, train_examples)
        valid_source = cfg.data.train
    order = cfg.data.answer_order
    train_answers = written_answers(task, train_examples, order, cfg.seed, cfg.data.train)
    valid_answers = written_answers(task, valid_examples, order, cfg.seed, valid_source)
    tokenizer = build_tokenizer(cfg)
    spans = [tokenizer.answer_span(ex.input, answer)
             for ex, answer in zip(train_examples + valid_examples, train_answers + valid_answers)]
    if cfg.data.cutoff == 0:
        cfg.data.cutoff = max(end for _, end in spans)
    if cfg.data.max_new_tokens == 0:
        cfg.data.max_new_tokens = max(end - start for start, end in spans)
    if cfg.diffusion.shift is None:  # the causal-LM convention for pretrained causal LMs
        cfg.diffusion.shift = hf_path(cfg.model) is not None
    train = encode(train_examples, tokenizer, cfg.data.cutoff, cfg.data.train, train_answers)
    valid = encode(valid_examples, tokenizer, cfg.data.cutoff, valid_source, valid_answers)
    if cfg.train.max_steps == 0:
        cfg.train.max_steps = max(1, math.ceil(cfg.train.epochs * len(train) / cfg.train.batch_size))
    if cfg.train.warmup_steps < 0:
        cfg.train.warmup_steps = max(1, cfg.train.max_steps // 100)
    return cfg, tokenizer, train, valid


def train(cfg: Config, *, stop_after: int | None = None, bar_position: int = 0) -> Path:
    """Train a run described by `cfg`; returns the run directory.

    stop_after: end abruptly after that many steps of this invocation, without the
    final save (used by tests to simulate a killed run).
    bar_position: the progress bar's line, for several trainings side by side (`dvar demo`).
    """
    d = _init_distributed()
    device = _device(d)
    cfg, tokenizer, train_data, valid_data = resolve(cfg)
    out = Path(cfg.out_dir)
    checkpoints = list_checkpoints(out)
    finished = (out / "model.safetensors").exists() or (out / RUN_SUBDIR).exists()
    if not cfg.resume and (checkpoints or finished):
        raise ConfigError(f"{out} already holds a run; pass resume=true to continue it, or another out_dir")

    B, W = cfg.train.batch_size, d.world
    if B % W:
        raise ConfigError(f"train.batch_size={B} is not divisible by {W} processes")
    per_rank = B // W
    micro = cfg.train.micro_batch_size or per_rank
    if per_rank % micro:
        raise ConfigError(f"per-process batch {per_rank} is not divisible by micro_batch_size={micro}")
    accumulation = per_rank // micro

    objective = build_objective(cfg, tokenizer.mask_id)
    # Resolved once per run; config.yaml records the choice (evaluation decodes in it).
    cfg.train.precision, why = resolve_precision(cfg.train.precision, device, cfg.model)
    dtype = PRECISIONS[cfg.train.precision]
    torch.manual_seed(cfg.seed)  # identical initial weights in every process
    model = build_model(cfg, tokenizer, objective, dtype).to(device)
    optimizer = make_optimizer(model, cfg.train.lr, cfg.train.betas, cfg.train.weight_decay, device)
    max_steps, warmup = cfg.train.max_steps, cfg.train.warmup_steps
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_lambda(s, warmup, max_steps, cfg.train.min_lr_ratio)
    )
    step = 0
    resumed = cfg.resume and bool(checkpoints)
    if resumed:
        state, _ = load_checkpoint(checkpoints[-1], model, optimizer)
        schedule.load_state_dict(state["schedule"])
        step = state["step"]
        if d.main:
            print(f"resuming {out} from {checkpoints[-1].name}")
            _truncate_logs(out, step)
    elif d.main:
        out.mkdir(parents=True, exist_ok=True)
    resolved = dataclasses.replace(cfg, resume=False)
    tracker = open_tracker(cfg.train.report_to, out, config=to_dict(resolved),
                           resumed_at=step if resumed else None, enabled=d.main)
    if d.main:
        save_config(resolved, out / "config.yaml")
        describe_model(out, model, tokenizer)
        counts = model.num_parameters()
        trained_count = sum(p.numel() for p in model.parameters() if p.requires_grad)
        print(f"{cfg.objective} {cfg.model}: {counts.total / 1e6:.2f}M parameters "
              f"({counts.non_embedding / 1e6:.2f}M without embeddings, "
              f"{trained_count / 1e6:.2f}M trained); {len(train_data)} train / "
              f"{len(valid_data)} valid examples; cutoff {cfg.data.cutoff}; {max_steps} steps of {B}; "
              f"precision {cfg.train.precision} ({why})")

    net: torch.nn.Module = model
    if cfg.train.compile:
        net = torch.compile(net)
    if W > 1:
        net = DistributedDataParallel(net, device_ids=[d.local_rank] if device.type == "cuda" else None)
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)
    order = _DataOrder(len(train_data), cfg.seed)

    bar = tqdm(total=max_steps, initial=step, desc=f"train {cfg.objective}", unit="step",
               disable=not d.main, dynamic_ncols=True, position=bar_position)
    # Loss and token sums stay on the device between log lines: no sync per step.
    window_totals = torch.zeros(2, device=device)
    window_seqs, window_start = 0, time.perf_counter()
    steps_this_run = 0
    # Training time of this invocation without validation: eval_log's `train_seconds`
    # (accuracy against training time) and the clock of train.time_limit.
    clock = _TrainClock()
    while step < max_steps:
        model.train()
        torch.manual_seed(_seed(cfg.seed, step, d.rank))  # dropout
        index_B = order.batch(step, B)
        loss_sum = torch.zeros((), device=device)
        tokens = torch.zeros((), device=device)
        for k in range(accumulation):
            offset = d.rank * per_rank + k * micro
            batch = train_data.batch(index_B[offset : offset + micro], device)
            generator = torch.Generator(device=device).manual_seed(_seed(cfg.seed, step, offset))
            sync = k == accumulation - 1 or W == 1
            with (contextlib.nullcontext() if sync else net.no_sync()):
                with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
                    loss, stats = objective.loss(net, batch, generator)
                scaler.scale(loss * stats["tokens"]).backward()
            loss_sum += loss.detach() * stats["tokens"]
            tokens += stats["tokens"]
        totals = torch.stack([loss_sum, tokens.float()])
        if W > 1:
            dist.all_reduce(totals)
        scaler.unscale_(optimizer)
        # DDP averaged the per-process sums over W processes; turn them into the mean over
        # every loss position of the global batch.
        scale = W / totals[1].clamp(min=1)
        for p in model.parameters():
            if p.grad is not None:
                p.grad.mul_(scale)
        if cfg.train.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.train.grad_clip)
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad(set_to_none=True)
        schedule.step()
        step += 1
        steps_this_run += 1
        bar.update(1)

        window_totals += totals
        window_seqs += B
        if d.main and (step % cfg.train.log_every == 0 or step == max_steps):
            window_loss, window_tokens = window_totals.tolist()
            elapsed = time.perf_counter() - window_start
            row = {
                "step": step,
                "loss": window_loss / max(window_tokens, 1.0),
                "tokens_per_s": window_seqs * cfg.data.cutoff / elapsed,
                "lr": schedule.get_last_lr()[0],
                "epoch": step * B / len(train_data),
            }
            _append(out / LOG_FILE, row)
            tracker.log(step, {f"train/{key}": row[key] for key in ("loss", "lr", "tokens_per_s", "epoch")})
            bar.set_postfix(loss=f"{row['loss']:.4f}", tok_s=f"{row['tokens_per_s']:.0f}")
            window_totals.zero_()
            window_seqs, window_start = 0, time.perf_counter()

        limit = cfg.train.time_limit
        if limit > 0 and _agree(d, clock.seconds(device) >= limit, device):
            if d.main:
                tqdm.write(f"train.time_limit={cfg.train.time_limit:g}s reached at step {step}")
            break
        if cfg.train.eval_every and step % cfg.train.eval_every == 0 and step < max_steps:
            with clock.paused(device):
                _validate(cfg, d, model, objective, tokenizer, valid_data, step, out, tracker,
                          clock.total)
            window_start = time.perf_counter()
        if cfg.train.save_every and step % cfg.train.save_every == 0 and step < max_steps:
            if d.main:
                save_checkpoint(out, step, model, optimizer, {"schedule": schedule.state_dict()},
                                keep=cfg.train.keep_checkpoints)
            _barrier(d)
        if stop_after is not None and steps_this_run >= stop_after:
            bar.close()
            tracker.close()
            return out
    bar.close()

    _validate(cfg, d, model, objective, tokenizer, valid_data, step, out, tracker,
              clock.seconds(device))
    tracker.close()
    if d.main:
        save_checkpoint(out, step, model, optimizer, {"schedule": schedule.state_dict()},
                        keep=cfg.train.keep_checkpoints)
        save_model(out, model, tokenizer)
        from dvar.plots import plot_loss

        plot_loss(out)
        saved = f"{RUN_SUBDIR}/" if isinstance(model, HFBackbone) else "model.safetensors, vocab.json"
        print(f"wrote {out}/ ({saved}, config.yaml, {LOG_FILE}, loss.png)")
    _barrier(d)
    return out


class _DataOrder:
    """Stream positions -> example indices: a seeded permutation per epoch, concatenated."""

    def __init__(self, size: int, seed: int):
        self.size, self.seed = size, seed
        self._perms: dict[int, torch.Tensor] = {}

    def _perm(self, epoch: int) -> torch.Tensor:
        if epoch not in self._perms:
            generator = torch.Generator().manual_seed(_seed(self.seed, epoch, 7))
            self._perms = {epoch: torch.randperm(self.size, generator=generator), **{
                e: p for e, p in self._perms.items() if e >= epoch - 1}}
        return self._perms[epoch]

    def batch(self, step: int, batch_size: int) -> torch.Tensor:
        start = step * batch_size
        positions = torch.arange(start, start + batch_size)
        epochs = positions // self.size
        out = torch.empty(batch_size, dtype=torch.long)
        for epoch in epochs.unique().tolist():
            where = epochs == epoch
            out[where] = self._perm(epoch)[positions[where] % self.size]
        return out


class _TrainClock:
    """Wall-clock seconds of training, with validation paused out (GPU work synchronised)."""

    def __init__(self) -> None:
        self.start, self.excluded = time.perf_counter(), 0.0
        self.total = 0.0  # training seconds when the current pause began

    def seconds(self, device: torch.device) -> float:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return time.perf_counter() - self.start - self.excluded

    @contextlib.contextmanager
    def paused(self, device: torch.device):
        self.total = self.seconds(device)
        began = time.perf_counter()
        try:
            yield
        finally:
            self.excluded += time.perf_counter() - began


def _agree(d: Dist, flag: bool, device: torch.device) -> bool:
    """True if any process says so (every process must leave the loop at the same step)."""
    if d.world == 1:
        return flag
    value = torch.tensor([float(flag)], device=device)
    dist.all_reduce(value)
    return bool(value.item() > 0)


def _validate(cfg, d, model, objective, tokenizer, valid, step, out, tracker: Tracker,
              train_seconds=None) -> None:
    """Validation loss (fixed masks) and verifier accuracy on a decoded subset; rank 0."""
    if d.main and len(valid):
        model.eval()
        device = next(model.parameters()).device
        start = time.perf_counter()
        loss_sum, tokens = 0.0, 0.0
        size = cfg.decode.batch_size
        with torch.no_grad():
            for offset in range(0, len(valid), size):
                index = torch.arange(offset, min(offset + size, len(valid)))
                generator = torch.Generator(device=device).manual_seed(_seed(cfg.seed, offset, 99))
                loss, stats = objective.loss(model, valid.batch(index, device), generator)
                loss_sum += float(loss) * float(stats["tokens"])
                tokens += float(stats["tokens"])
        row: dict[str, Any] = {"step": step, "val_loss": loss_sum / max(tokens, 1)}
        if train_seconds is not None:
            row["train_seconds"] = round(train_seconds, 3)
        message = f"step {step}: val_loss {row['val_loss']:.4f}"
        subset = valid.examples[: cfg.train.eval_size]
        if subset:
            run = Run(cfg, get_task(cfg.task), tokenizer, model, objective)
            # The run's own decoding: decode.decoder with decode.args.
            result = evaluate(run, subset, steps=cfg.decode.steps,
                              batch_size=cfg.decode.batch_size, seed=cfg.seed, source="valid")
            row.update(val_accuracy=result.metrics["accuracy"], val_n=result.metrics["n"],
                       decoder=result.metrics["decoder"], nfe=result.metrics["nfe"])
            message += f", val_accuracy {100 * row['val_accuracy']:.1f}% (n={row['val_n']})"
        row["seconds"] = round(time.perf_counter() - start, 2)
        _append(out / EVAL_LOG_FILE, row)
        tracker.log(step, {"val/loss": row["val_loss"], "val/accuracy": row.get("val_accuracy")})
        tqdm.write(message)
    _barrier(d)


def _barrier(d: Dist) -> None:
    if d.world > 1:
        dist.barrier()


def _append(path: Path, row: dict[str, Any]) -> None:
    with path.open("a") as handle:
        handle.write(json.dumps(row) + "\n")


def _truncate_logs(out: Path, step: int) -> None:
    """Drop log rows written after the checkpoint a run resumes from."""
    for name in (LOG_FILE, EVAL_LOG_FILE):
        path = out / name
        if path.exists():
            kept = [line for line in path.read_text().splitlines()
                    if line.strip() and json.loads(line)["step"] <= step]
            path.write_text("".join(line + "\n" for line in kept))

