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
Checkpoints (model, optimizer, schedule, step, training seconds) are written atomically
(`dvar.checkpoint`); what the run directory holds at the end is `dvar.rundir`'s (weights,
config.yaml, compute.json). The data as tensors and the data order are `dvar.batches`;
processes, seeds, the clock and the per-step output (`train.progress`) `dvar.runtime`.
Several processes: launch with `torchrun`; gradients are averaged by PyTorch's
DistributedDataParallel (NCCL on GPUs, gloo on CPUs).
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import functools
import json
import math
import os
import time
from pathlib import Path
from typing import Any, NamedTuple

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from dvar.batches import DataOrder, EncodedData, Tokenizer, encode, new_problems, split_valid
from dvar.checkpoint import checkpoint_step, load_checkpoint, save_checkpoint
from dvar.config import Config, ConfigError, check_config, save_config, to_dict
from dvar.data import read_examples, written_answers
from dvar.evaluate import Run, build_objective, evaluate
from dvar.hf import HFBackbone, HFTokenizer, build_backbone, check_dependencies, hf_path
from dvar.model import SIZES, Transformer, model_config
from dvar.objectives import Objective, objective_class
from dvar.rundir import (COMPUTE_FILE, CONFIG_FILE, HF_SUBDIR, WEIGHTS_FILE, RunDir, compute_record,
                         save_model)
from dvar.precision import PRECISIONS, resolve_precision
from dvar.schedule import branch_point, check_schedule, decay_start, lr_factor
from dvar.runtime import (PROGRESS, Dist, LossWindow, Progress, TrainClock, agree, barrier, device_for,
                          init_distributed, seed_of)
from dvar.tasks import get_task
from dvar.tokenizer import DEFAULT_CHARS, CharTokenizer
from dvar.tracking import Tracker, check_report_to, open_tracker

LOG_FILE = "train_log.jsonl"
EVAL_LOG_FILE = "eval_log.jsonl"


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


# ----------------------------------------------------------------------------- backbone
# The one place where dvar's own model and a pretrained Hugging Face one (`model=hf:PATH`,
# dvar/hf.py) part ways; everything after works with either (saving: `dvar.rundir`).
def build_tokenizer(cfg: Config) -> Tokenizer:
    path = hf_path(cfg.model)
    if path:
        return HFTokenizer.from_pretrained(path, mask=objective_class(cfg.objective).needs_mask(cfg))
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
        dropout=cfg.arch.dropout, positions=cfg.arch.positions, grid=cfg.arch.grid,
        n_layer=cfg.arch.n_layer, n_embd=cfg.arch.n_embd, n_head=cfg.arch.n_head,
    ))


# ----------------------------------------------------------------------------- resolving
class Resolved(NamedTuple):
    """A config with its derived settings filled in, and the data it trains on."""

    config: Config
    tokenizer: Tokenizer
    train: EncodedData
    valid: EncodedData


def resolve(cfg: Config) -> Resolved:
    """Check `cfg`, read the data and return a NEW config with the derived settings
    filled in (cutoff, max_new_tokens, diffusion.shift, max_steps, warmup_steps); `cfg`
    itself is left as it was. Validation examples whose problem is also a training
    problem are dropped (counted in `valid.duplicates_removed`)."""
    cfg = copy.deepcopy(cfg)
    if not cfg.task:
        raise ConfigError("set task=... (one of the registered tasks)")
    check_config(cfg)  # objective, decoder and its settings against their registries
    if cfg.model not in SIZES and not hf_path(cfg.model):
        raise ConfigError(f"unknown model size {cfg.model!r}; known: {', '.join(SIZES)}, hf:PATH")
    if not cfg.out_dir:
        raise ConfigError("set out_dir=... (the run directory)")
    if not cfg.data.train:
        raise ConfigError("set data.train=... (a JSONL file)")
    if cfg.train.precision not in ("auto", "fp32", "bf16", "fp16"):
        raise ConfigError(f"train.precision must be auto, fp32, bf16 or fp16, got {cfg.train.precision!r}")
    if cfg.train.progress not in PROGRESS:
        raise ConfigError(f"train.progress must be one of {', '.join(PROGRESS)}, got {cfg.train.progress!r}")
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
        train_examples, valid_examples = split_valid(cfg, train_examples)
        valid_source = cfg.data.train
    order = cfg.data.answer_order
    train_answers = written_answers(task, train_examples, order, cfg.seed, cfg.data.train)
    valid_answers = written_answers(task, valid_examples, order, cfg.seed, valid_source)
    tokenizer = build_tokenizer(cfg)
    # Derived lengths count the whole validation split, dropped duplicates too: the
    # cutoff (and so the model) is what it was before duplicates were dropped.
    spans = [tokenizer.answer_span(ex.input, answer)
             for ex, answer in zip(train_examples + valid_examples, train_answers + valid_answers)]
    if cfg.data.cutoff == 0:
        cfg.data.cutoff = max(end for _, end in spans)
    if cfg.data.max_new_tokens == 0:
        cfg.data.max_new_tokens = max(end - start for start, end in spans)
    if cfg.diffusion.shift is None:  # the causal-LM convention for pretrained causal LMs
        cfg.diffusion.shift = hf_path(cfg.model) is not None
    kept = new_problems(task, valid_examples, train_examples)
    train = encode(train_examples, tokenizer, cfg.data.cutoff, cfg.data.train, train_answers)
    valid = encode([valid_examples[i] for i in kept], tokenizer, cfg.data.cutoff, valid_source,
                   [valid_answers[i] for i in kept])
    valid.duplicates_removed = len(valid_examples) - len(kept)
    if cfg.train.max_steps == 0:
        cfg.train.max_steps = max(1, math.ceil(cfg.train.epochs * len(train) / cfg.train.batch_size))
    if cfg.train.warmup_steps < 0:
        cfg.train.warmup_steps = max(1, cfg.train.max_steps // 100)
    try:
        check_schedule(cfg.train.schedule, cfg.train.decay_fraction, cfg.train.max_steps,
                       cfg.train.save_at, cfg.train.branch_from)
    except ValueError as err:
        raise ConfigError(str(err)) from None
    return Resolved(cfg, tokenizer, train, valid)


# ----------------------------------------------------------------------------- the loop
def train(cfg: Config) -> Path:
    """Train the run `cfg` describes (resume=true: continue it from its last checkpoint);
    returns the run directory. `cfg` is not changed; config.yaml holds the resolved one.
    The run directory is this process's while it trains (`RunDir.claim`; rank 0 of a
    torchrun claims it for all ranks)."""
    if not cfg.out_dir:
        raise ConfigError("set out_dir=... (the run directory)")
    owner = int(os.environ.get("RANK", "0")) == 0
    with RunDir(cfg.out_dir).claim() if owner else contextlib.nullcontext():
        return _train(cfg)


def _train(cfg: Config, stop_after: int | None = None) -> Path:
    """`train`; `stop_after`: end abruptly after that many steps of this invocation,
    without the final save (tests simulate a killed run with it)."""
    s = _set_up(cfg)
    steps_this_run = 0
    while s.step < s.max_steps:
        s.window.add(_train_step(s), s.cfg.train.batch_size)
        s.step += 1
        steps_this_run += 1
        s.progress.update()
        if s.d.main and (_due(s.step, s.cfg.train.log_every) or s.step == s.max_steps):
            _log(s)
        if _time_is_up(s):
            break
        if _due(s.step, s.cfg.train.eval_every) and s.step < s.max_steps:
            with s.clock.paused(s.device):
                _validate(s, s.earlier_seconds + s.clock.total)
            s.window.restart()
        if (_due(s.step, s.cfg.train.save_every) or s.step in s.pinned) and s.step < s.max_steps:
            _save_checkpoint(s)
        if stop_after is not None and steps_this_run >= stop_after:
            s.progress.close()
            s.tracker.close()
            return s.out
    s.progress.close()
    _finish(s)
    return s.out


@dataclasses.dataclass
class _Session:
    """What one invocation of the training loop works with."""

    cfg: Config
    d: Dist
    device: torch.device
    out: Path
    tokenizer: Tokenizer
    train_data: EncodedData
    valid_data: EncodedData
    objective: Objective
    dtype: torch.dtype | None
    model: Transformer | HFBackbone
    net: torch.nn.Module  # the model as called: compiled and/or DDP-wrapped
    optimizer: torch.optim.Optimizer
    schedule: torch.optim.lr_scheduler.LambdaLR
    scaler: torch.amp.GradScaler
    order: DataOrder
    tracker: Tracker
    progress: Progress
    micro: int  # examples per forward pass and process
    accumulation: int  # forward passes per process and step
    step: int
    # Training seconds (validation excluded) of the invocations before a resume; with
    # `clock` (this invocation's) eval_log's and compute.json's `train_seconds`.
    earlier_seconds: float
    # This invocation's: also the clock of train.time_limit.
    clock: TrainClock = dataclasses.field(default_factory=TrainClock)
    window: LossWindow | None = None

    @property
    def max_steps(self) -> int:
        return self.cfg.train.max_steps

    @functools.cached_property
    def pinned(self) -> set[int]:
        """Checkpoints never rotated away: train.save_at, and a wsd run's decay start
        (where a longer budget branches off it)."""
        t = self.cfg.train
        pinned = {int(step) for step in t.save_at}
        if t.schedule == "wsd":
            pinned.add(decay_start(t.max_steps, t.decay_fraction))
        return pinned

    def train_seconds(self) -> float:
        return self.earlier_seconds + self.clock.seconds(self.device)


def _set_up(cfg: Config) -> _Session:
    d = init_distributed()
    device = device_for(d)
    cfg, tokenizer, train_data, valid_data = resolve(cfg)
    run = RunDir(cfg.out_dir)
    checkpoints = run.checkpoints()
    if not cfg.resume and (checkpoints or run.finished):
        raise ConfigError(f"{run.path} already holds a run; pass resume=true to continue it, or another out_dir")
    B, W = cfg.train.batch_size, d.world
    if B % W:
        raise ConfigError(f"train.batch_size={B} is not divisible by {W} processes")
    per_rank = B // W
    micro = cfg.train.micro_batch_size or per_rank
    if per_rank % micro:
        raise ConfigError(f"per-process batch {per_rank} is not divisible by micro_batch_size={micro}")

    objective = build_objective(cfg, tokenizer.mask_id)
    # Resolved once per run; config.yaml records the choice (evaluation decodes in it).
    cfg.train.precision, why = resolve_precision(cfg.train.precision, device, cfg.model)
    dtype = PRECISIONS[cfg.train.precision]
    torch.manual_seed(cfg.seed)  # identical initial weights in every process
    model = build_model(cfg, tokenizer, objective, dtype).to(device)
    optimizer = make_optimizer(model, cfg.train.lr, cfg.train.betas, cfg.train.weight_decay, device)
    t = cfg.train
    max_steps = t.max_steps

    def factor(s: int) -> float:
        return lr_factor(s, t.warmup_steps, t.max_steps, t.min_lr_ratio, t.schedule, t.decay_fraction)

    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    step, earlier_seconds = 0, 0.0
    resumed = cfg.resume and bool(checkpoints)
    start_from = checkpoints[-1] if resumed else _branch_checkpoint(cfg) if t.branch_from else None
    if start_from is not None:
        state, _ = load_checkpoint(start_from, model, optimizer)
        schedule.load_state_dict(state["schedule"])
        # The next step's rate is this run's (a branch decays where its trunk did not).
        for group, base in zip(optimizer.param_groups, schedule.base_lrs):
            group["lr"] = base * factor(schedule.last_epoch)
        schedule._last_lr = [group["lr"] for group in optimizer.param_groups]
        step, earlier_seconds = state["step"], state.get("train_seconds", 0.0)
        if d.main:
            print(f"{'resuming' if resumed else 'branching'} {run.path} from {start_from}")
            if not resumed:
                _copy_logs(start_from.parent.parent, run.path)
            _truncate_logs(run.path, step)
    elif d.main:
        run.path.mkdir(parents=True, exist_ok=True)
    resolved = dataclasses.replace(cfg, resume=False)
    tracker = open_tracker(cfg.train.report_to, run.path, config=to_dict(resolved),
                           resumed_at=step if resumed else None, enabled=d.main)
    if d.main:
        save_config(resolved, run.path / CONFIG_FILE)
        counts = model.num_parameters()
        trained_count = sum(p.numel() for p in model.parameters() if p.requires_grad)
        dropped = valid_data.duplicates_removed
        print(f"{cfg.objective} {cfg.model}: {counts.total / 1e6:.2f}M parameters "
              f"({counts.non_embedding / 1e6:.2f}M without embeddings, "
              f"{trained_count / 1e6:.2f}M trained); {len(train_data)} train / "
              f"{len(valid_data)} valid examples"
              + (f" ({dropped} validation problems also in training dropped)" if dropped else "")
              + f"; cutoff {cfg.data.cutoff}; {max_steps} steps of {B}; "
              f"precision {cfg.train.precision} ({why})")

    net: torch.nn.Module = model
    if cfg.train.compile:
        net = torch.compile(net)
    if W > 1:
        net = DistributedDataParallel(net, device_ids=[d.local_rank] if device.type == "cuda" else None)
    return _Session(
        cfg=cfg, d=d, device=device, out=run.path, tokenizer=tokenizer, train_data=train_data,
        valid_data=valid_data, objective=objective, dtype=dtype, model=model, net=net,
        optimizer=optimizer, schedule=schedule,
        scaler=torch.amp.GradScaler(device.type, enabled=dtype == torch.float16),
        order=DataOrder(len(train_data), cfg.seed), tracker=tracker,
        progress=Progress(cfg.train.progress, max_steps, step, f"train {cfg.objective}", d.main),
        micro=micro, accumulation=per_rank // micro, step=step, earlier_seconds=earlier_seconds,
        window=LossWindow(device),
    )


def _train_step(s: _Session) -> torch.Tensor:
    """One optimizer step on the global batch of step `s.step`; returns the (loss sum,
    loss positions) of the whole global batch, on the device."""
    d, device, B = s.d, s.device, s.cfg.train.batch_size
    s.model.train()
    torch.manual_seed(seed_of(s.cfg.seed, s.step, d.rank))  # dropout
    index_B = s.order.batch(s.step, B)
    loss_sum = torch.zeros((), device=device)
    tokens = torch.zeros((), device=device)
    for k in range(s.accumulation):
        offset = d.rank * (B // d.world) + k * s.micro
        batch = s.train_data.batch(index_B[offset : offset + s.micro], device)
        generator = torch.Generator(device=device).manual_seed(seed_of(s.cfg.seed, s.step, offset))
        sync = k == s.accumulation - 1 or d.world == 1
        with (contextlib.nullcontext() if sync else s.net.no_sync()):
            with torch.autocast(device.type, dtype=s.dtype, enabled=s.dtype is not None):
                loss, stats = s.objective.loss(s.net, batch, generator)
            s.scaler.scale(loss * stats["tokens"]).backward()
        loss_sum += loss.detach() * stats["tokens"]
        tokens += stats["tokens"]
    totals = torch.stack([loss_sum, tokens.float()])
    if d.world > 1:
        dist.all_reduce(totals)
    s.scaler.unscale_(s.optimizer)
    # DDP averaged the per-process sums over W processes; turn them into the mean over
    # every loss position of the global batch.
    scale = d.world / totals[1].clamp(min=1)
    for p in s.model.parameters():
        if p.grad is not None:
            p.grad.mul_(scale)
    if s.cfg.train.grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(s.model.parameters(), s.cfg.train.grad_clip)
    s.scaler.step(s.optimizer)
    s.scaler.update()
    s.optimizer.zero_grad(set_to_none=True)
    s.schedule.step()
    return totals


def _log(s: _Session) -> None:
    """A train_log.jsonl row for the steps since the last one (rank 0)."""
    loss_sum, tokens, seconds, sequences = s.window.read()
    row = {
        "step": s.step,
        "loss": loss_sum / max(tokens, 1.0),
        "tokens_per_s": sequences * s.cfg.data.cutoff / seconds,
        "lr": s.schedule.get_last_lr()[0],
        "epoch": s.step * s.cfg.train.batch_size / len(s.train_data),
    }
    _append(s.out / LOG_FILE, row)
    s.tracker.log(s.step, {f"train/{key}": row[key] for key in ("loss", "lr", "tokens_per_s", "epoch")})
    s.progress.log(s.step, row)
    s.window.restart()


def _time_is_up(s: _Session) -> bool:
    limit = s.cfg.train.time_limit
    if limit > 0 and agree(s.d, s.clock.seconds(s.device) >= limit, s.device):
        if s.d.main:
            s.progress.write(f"train.time_limit={limit:g}s reached at step {s.step}")
        return True
    return False


def _save_checkpoint(s: _Session, train_seconds: float | None = None) -> None:
    if s.d.main:
        seconds = s.train_seconds() if train_seconds is None else train_seconds
        save_checkpoint(s.out, s.step, s.model, s.optimizer,
                        {"schedule": s.schedule.state_dict(), "train_seconds": seconds},
                        keep=s.cfg.train.keep_checkpoints, pinned=s.pinned)
    barrier(s.d)


def _finish(s: _Session) -> None:
    """Validate, then save: the last checkpoint, the model, compute.json, loss.png."""
    seconds = s.train_seconds()
    _validate(s, seconds)
    s.tracker.close()
    _save_checkpoint(s, seconds)
    if s.d.main:
        save_model(s.out, s.model, s.tokenizer)
        RunDir(s.out).write_compute(compute_record(
            s.model, s.step, s.cfg.train.batch_size, s.cfg.data.cutoff, seconds,
            valid_duplicates_removed=s.valid_data.duplicates_removed))
        from dvar.plots import plot_loss

        plot_loss(s.out)
        print(f"wrote {s.out}/ ({', '.join(_written(s.out))})")
    barrier(s.d)


def _written(out: Path) -> list[str]:
    names = [HF_SUBDIR + "/", WEIGHTS_FILE, "vocab.json", CONFIG_FILE, COMPUTE_FILE, LOG_FILE, "loss.png"]
    return [name for name in names if (out / name.rstrip("/")).exists()]


def _validate(s: _Session, train_seconds: float | None = None) -> None:
    """Validation loss (fixed masks) and verifier accuracy on a decoded subset; rank 0."""
    cfg, valid = s.cfg, s.valid_data
    if s.d.main and len(valid):
        start = time.perf_counter()
        val_loss = heldout_loss(s.model, s.objective, valid, cfg.seed, cfg.decode.batch_size, s.device)
        row: dict[str, Any] = {"step": s.step, "val_loss": val_loss}
        if train_seconds is not None:
            row["train_seconds"] = round(train_seconds, 3)
        message = f"step {s.step}: val_loss {row['val_loss']:.4f}"
        subset = valid.examples[: cfg.train.eval_size]
        if subset:
            run = Run(cfg, get_task(cfg.task), s.tokenizer, s.model, s.objective)
            # The run's own decoding: decode.decoder with decode.settings, decode_steps(cfg).
            result = evaluate(run, subset, batch_size=cfg.decode.batch_size, seed=cfg.seed,
                              source="valid")
            row.update(val_accuracy=result.metrics["accuracy"], val_n=result.metrics["n"],
                       decoder=result.metrics["decoder"], nfe=result.metrics["nfe"])
            message += f", val_accuracy {100 * row['val_accuracy']:.1f}% (n={row['val_n']})"
        row["seconds"] = round(time.perf_counter() - start, 2)
        _append(s.out / EVAL_LOG_FILE, row)
        s.tracker.log(s.step, {"val/loss": row["val_loss"], "val/accuracy": row.get("val_accuracy")})
        s.progress.write(message)
    barrier(s.d)


def heldout_loss(model: torch.nn.Module, objective: Objective, data: EncodedData, seed: int, batch_size: int,
                 device: torch.device | str, count: int | None = None, draws: int = 1) -> float:
    """The objective's loss per target token on the first `count` examples of `data` (all:
    None), the model in eval mode (no dropout, no input corruption), every random draw
    (an MDM's masks) fixed by `seed` and the batch's offset: the validation loss of
    `train.eval_every` is `draws=1` on the validation split. `draws` > 1 averages over
    that many fixed draws (the first is the validation loss's)."""
    model.eval()
    count = len(data) if count is None else min(count, len(data))
    loss_sum, tokens = 0.0, 0.0
    with torch.no_grad():
        for draw in range(draws):
            for offset in range(0, count, batch_size):
                index = torch.arange(offset, min(offset + batch_size, count))
                parts = (seed, offset, 99) if draw == 0 else (seed, offset, 99, draw)
                generator = torch.Generator(device=device).manual_seed(seed_of(*parts))
                loss, stats = objective.loss(model, data.batch(index, device), generator)
                loss_sum += float(loss) * float(stats["tokens"])
                tokens += float(stats["tokens"])
    return loss_sum / max(tokens, 1.0)


def _due(step: int, every: int) -> bool:
    return every > 0 and step % every == 0


def _append(path: Path, row: dict[str, Any]) -> None:
    with path.open("a") as handle:
        handle.write(json.dumps(row) + "\n")


def _branch_checkpoint(cfg: Config) -> Path:
    """The checkpoint a fresh `train.branch_from` run starts from: the latest one, of the
    trunk or of the runs the trunk itself started from, at a step up to which that run and
    this one are the same run (`branch_point`: the earlier decay start). A shorter budget
    finds it at its decay start (the trunk's save_at), a longer one at the trunk's."""
    trunk = RunDir(cfg.train.branch_from)
    this = to_dict(dataclasses.replace(cfg, resume=False))
    found: list[Path] = []
    run, first_point, seen = trunk, None, set()
    while run is not None and run.path.resolve() not in seen:
        seen.add(run.path.resolve())
        held = run.config()
        if held is None:
            if run is trunk:
                raise ConfigError(f"train.branch_from={trunk.path}: no run there ({CONFIG_FILE} is missing)")
            break
        try:
            point = branch_point(to_dict(held), this, str(run.path))
        except ValueError as err:
            raise ConfigError(str(err)) from None
        first_point = point if first_point is None else first_point
        found += [p for p in run.checkpoints() if checkpoint_step(p) <= point]
        run = RunDir(held.train.branch_from) if held.train.branch_from else None
    if not found:
        raise ConfigError(f"train.branch_from={trunk.path} holds no checkpoint at step {first_point} (where this "
                          f"run leaves it) or before: train the trunk with {first_point} in its train.save_at")
    return max(found, key=checkpoint_step)


def _copy_logs(trunk: Path, out: Path) -> None:
    """A branch's logs start as its trunk's (truncated to the branch point by the caller)."""
    out.mkdir(parents=True, exist_ok=True)
    for name in (LOG_FILE, EVAL_LOG_FILE):
        if (trunk / name).is_file():
            (out / name).write_text((trunk / name).read_text())


def _truncate_logs(out: Path, step: int) -> None:
    """Drop log rows written after the checkpoint a run resumes from, and a last row the
    kill cut short (rows are appended: only the last can be)."""
    for name in (LOG_FILE, EVAL_LOG_FILE):
        path = out / name
        if not path.exists():
            continue
        lines = [line for line in path.read_text().splitlines() if line.strip()]
        kept = []
        for number, line in enumerate(lines, 1):
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                if number < len(lines):
                    raise
                break
            if row["step"] <= step:
                kept.append(line)
        path.write_text("".join(line + "\n" for line in kept))

