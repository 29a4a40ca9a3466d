"""Training precision: `train.precision=auto|fp32|bf16|fp16` resolved once per run.

auto picks bf16 where the hardware has native bf16 matrix arithmetic (a GPU that supports
it; a CPU whose flags name it, for dvar's own models) and fp32 elsewhere; config.yaml
records the choice and evaluation decodes in it (docs/studies/2026-12-03-bf16/).
"""

from __future__ import annotations

from pathlib import Path

import torch

from dvar.hf import hf_path

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
