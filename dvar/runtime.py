"""Where a training runs: its processes and device, seeds, the training clock, and what
it prints per step (a bar on a terminal, log lines otherwise, or nothing).

Several processes: launch with `torchrun`; `init_distributed` joins them (NCCL on GPUs,
gloo on CPUs).
"""

from __future__ import annotations

import contextlib
import dataclasses
import multiprocessing
import os
import sys
import time
from typing import Any

import torch
import torch.distributed as dist
from tqdm import tqdm

PROGRESS = ("auto", "bar", "log", "quiet")  # train.progress


@dataclasses.dataclass
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed() -> Dist:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if torch.cuda.is_available() else "gloo")
    return Dist(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def device_for(d: Dist) -> torch.device:
    if torch.cuda.is_available():
        torch.cuda.set_device(d.local_rank)
        return torch.device("cuda", d.local_rank)
    return torch.device("cpu")


def seed_of(*parts: int) -> int:
    """A 63-bit seed from integers (stable across runs and processes)."""
    value = 0x9E3779B97F4A7C15
    for part in parts:
        value = (value ^ (part + 0x9E3779B97F4A7C15 + (value << 6) + (value >> 2))) & (2**63 - 1)
    return value



class LossWindow:
    """Loss and token sums since the last log line; they stay on the device between log
    lines (no sync per step)."""

    def __init__(self, device: torch.device) -> None:
        self.totals = torch.zeros(2, device=device)
        self.sequences = 0
        self.restart()

    def add(self, totals: torch.Tensor, sequences: int) -> None:
        self.totals += totals
        self.sequences += sequences

    def restart(self) -> None:
        """Restart the clock (after a log line, or after validation: the sums stay)."""
        self.start = time.perf_counter()

    def read(self) -> tuple[float, float, float, int]:
        """(loss sum, loss positions, seconds, sequences) since the last `read`."""
        loss_sum, tokens = self.totals.tolist()
        seconds, sequences = time.perf_counter() - self.start, self.sequences
        self.totals.zero_()
        self.sequences = 0
        return loss_sum, tokens, seconds, sequences


class Progress:
    """Per-step output: a tqdm bar, a line per train_log row, or nothing (train.progress;
    auto: the bar on a terminal, lines otherwise, so log files stay readable)."""

    def __init__(self, mode: str, total: int, initial: int, desc: str, enabled: bool) -> None:
        if mode == "auto":
            mode = "bar" if sys.stderr.isatty() else "log"
        self.mode = mode if enabled else "quiet"
        self.total = total
        self.bar = (tqdm(total=total, initial=initial, desc=desc, unit="step", dynamic_ncols=True,
                         position=_worker_line()) if self.mode == "bar" else None)

    def update(self) -> None:
        if self.bar is not None:
            self.bar.update(1)

    def log(self, step: int, row: dict[str, Any]) -> None:
        if self.bar is not None:
            self.bar.set_postfix(loss=f"{row['loss']:.4f}", tok_s=f"{row['tokens_per_s']:.0f}")
        elif self.mode == "log":
            print(f"step {step}/{self.total}: loss {row['loss']:.4f}, {row['tokens_per_s']:.0f} tok/s, "
                  f"lr {row['lr']:.3g}", flush=True)

    def write(self, message: str) -> None:
        """A message that must be seen (validation, time limit), whatever the mode."""
        if self.bar is not None:
            tqdm.write(message)
        else:
            print(message, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _worker_line() -> int | None:
    """The bar's line: a pool's k-th worker process draws on line k-1, so trainings side
    by side in a process pool keep their own lines; None (tqdm's choice) elsewhere."""
    identity = multiprocessing.current_process()._identity  # (k,) in a pool's k-th worker
    return identity[-1] - 1 if identity else None


class TrainClock:
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


def agree(d: Dist, flag: bool, device: torch.device) -> bool:
    """True if any process says so (every process must leave the loop at the same step)."""
    if d.world == 1:
        return flag
    value = torch.tensor([float(flag)], device=device)
    dist.all_reduce(value)
    return bool(value.item() > 0)


def barrier(d: Dist) -> None:
    if d.world > 1:
        dist.barrier()



__all__ = ["Dist", "init_distributed", "device_for", "seed_of", "agree", "barrier", "TrainClock",
           "LossWindow", "Progress", "PROGRESS"]
