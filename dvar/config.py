"""Typed run configuration: dataclass defaults <- YAML recipe <- `key=value` overrides.

Every key has a type and a default here, so a typo in a recipe or on the command line is
an error that lists the valid keys, never a silently ignored setting.

    cfg = load_config("configs/sudoku-mdm.yaml", ["train.lr=3e-4", "model=mini"])
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


@dataclass
class DataConfig:
    train: str = ""  # training JSONL
    valid: str = ""  # validation JSONL; empty: hold `valid_size` examples out of train
    valid_size: int = 448  # the reference holds 448 examples out of training
    cutoff: int = 0  # sequence length in tokens; 0: the longest example of train/valid
    max_new_tokens: int = 0  # AR decoding budget; 0: the longest answer + EOS
    # The order the answer is written in (SPEC §9): forward (the task's own format) |
    # reverse | solver | random; each task lists the ones it has. Answers are mapped back
    # to the task's format before judging.
    answer_order: str = "forward"


@dataclass
class TrainConfig:
    max_steps: int = 0  # optimizer steps; 0: derived from `epochs`
    epochs: float = 1.0
    batch_size: int = 64  # global batch (all processes, all accumulation steps)
    micro_batch_size: int = 0  # per process and forward pass; 0: batch_size / processes
    lr: float = 1e-3
    min_lr_ratio: float = 0.0  # cosine decays to lr * min_lr_ratio
    warmup_steps: int = -1  # -1: 1% of max_steps (at least 1)
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    grad_clip: float = 1.0
    # auto | fp32 | bf16 | fp16. auto: bf16 on GPUs that have it and on CPUs with native bf16
    # matrix units (AMX, AVX512-BF16, Arm BF16/SME) for dvar's own model, else fp32
    # (dvar.trainer.resolve_precision); config.yaml records the resolved choice.
    precision: str = "auto"
    log_every: int = 10
    eval_every: int = 0  # validation loss + decoded accuracy every N steps; 0: at the end only
    eval_size: int = 128  # validation examples decoded for accuracy
    save_every: int = 0  # checkpoint every N steps; 0: at the end only
    keep_checkpoints: int = 2
    compile: bool = False  # torch.compile the model (GPU)
    # Stop after this many seconds of training (validation excluded), then validate and
    # save as at max_steps; 0: no limit. max_steps still sets the schedule.
    time_limit: float = 0.0
    # Experiment tracking (dvar/tracking.py): none | tensorboard | wandb, or a list such as
    # [tensorboard, wandb]; a single name is a one-item list.
    report_to: list[str] = field(default_factory=lambda: ["none"])


@dataclass
class ArchConfig:
    dropout: float = 0.0
    positions: str = "learned"  # learned (GPT-2, the reference) | rope (rotary)
    vocab: str = ""  # character set; empty: the default dvar vocabulary


@dataclass
class DiffusionConfig:
    steps: int = 20  # T
    alpha: float = 0.25
    gamma: float = 1.0
    time_weighting: str = "linear"  # linear | elbo | none
    token_reweighting: bool = True
    # Read position i's prediction from i-1 (causal-LM convention); empty (null): on for
    # pretrained hf backbones, off for dvar's own models.
    shift: bool | None = None


@dataclass
class LoraConfig:
    """LoRA fine-tuning of a pretrained backbone (`model=hf:PATH`), via peft."""

    r: int = 0  # rank; 0: full fine-tuning (every weight trained)
    alpha: float = 32.0  # the adapter's output is scaled by alpha / r
    dropout: float = 0.05
    target_modules: str = ""  # comma-separated module names or all-linear; empty: peft's default


@dataclass
class DecodeConfig:
    decoder: str = ""  # empty: greedy for ar, topk for mdm
    # The decoder's settings as KEY=VALUE, like `dvar eval --decoder-arg`: used by the
    # in-training validation and by `dvar eval` when it is given no --decoder. The
    # paper's decoding (the reference's stochastic0.5-linear, re-predicting decoded
    # tokens) is [noise=0.5, repredict=true]; empty: the decoder's defaults.
    args: list[str] = field(default_factory=list)
    steps: int = 0  # 0: diffusion.steps
    batch_size: int = 64


@dataclass
class Config:
    task: str = ""
    objective: str = "mdm"  # ar | mdm
    model: str = "tiny"  # a size name (micro, mini, tiny, base, medium) or hf:PATH (dvar/hf.py)
    out_dir: str = ""
    seed: int = 0
    resume: bool = False
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    arch: ArchConfig = field(default_factory=ArchConfig)
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    lora: LoraConfig = field(default_factory=LoraConfig)
    decode: DecodeConfig = field(default_factory=DecodeConfig)


class ConfigError(ValueError):
    pass


def load_config(path: str | Path | None = None, overrides: list[str] = ()) -> Config:
    """Defaults, then the YAML file (if any), then `key=value` overrides."""
    cfg = Config()
    if path:
        loaded = yaml.safe_load(Path(path).read_text()) or {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: expected a mapping at the top level")
        _merge(cfg, loaded, prefix="", source=str(path))
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"override {item!r} is not key=value")
        _set(cfg, key.strip(), yaml.safe_load(text) if text else "", source="command line")
    return cfg


def to_dict(cfg: Config) -> dict[str, Any]:
    def plain(value: Any) -> Any:
        if isinstance(value, tuple):
            return list(value)
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return value

    return plain(dataclasses.asdict(cfg))


def save_config(cfg: Config, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False))


def _merge(node: Any, values: dict[str, Any], prefix: str, source: str) -> None:
    for key, value in values.items():
        _set(node, f"{prefix}{key}", value, source)


def _set(root: Any, key: str, value: Any, source: str) -> None:
    node = root
    parts = key.split(".")
    for depth, part in enumerate(parts):
        names = {f.name: f for f in dataclasses.fields(node)}
        if part not in names:
            where = ".".join(parts[:depth]) or "top level"
            raise ConfigError(
                f"{source}: unknown key {key!r}; valid keys at {where}: {', '.join(sorted(names))}"
            )
        current = getattr(node, part)
        if dataclasses.is_dataclass(current):
            if depth == len(parts) - 1:
                if not isinstance(value, dict):
                    raise ConfigError(f"{source}: {key!r} is a section; give a mapping")
                for sub_key, sub_value in value.items():
                    _set(current, str(sub_key), sub_value, f"{source} ({key})")
                return
            node = current
            continue
        if depth != len(parts) - 1:
            raise ConfigError(f"{source}: {'.'.join(parts[: depth + 1])!r} is not a section")
        hint = typing.get_type_hints(type(node))[part]
        setattr(node, part, _coerce(value, hint, key, source))


def _coerce(value: Any, hint: Any, key: str, source: str) -> Any:
    origin = typing.get_origin(hint)
    try:
        if hint is bool:
            if isinstance(value, bool):
                return value
            raise TypeError
        if hint is int:
            if isinstance(value, bool) or not isinstance(value, int):
                if isinstance(value, float) and value.is_integer():
                    return int(value)
                raise TypeError
            return value
        if hint is float:
            if isinstance(value, bool):
                raise TypeError
            return float(value)
        if hint is str:
            return "" if value is None else str(value)
        if origin is list:
            (item,) = typing.get_args(hint)
            values = value if isinstance(value, (list, tuple)) else [value]
            return [_coerce(v, item, key, source) for v in values]
        if origin is tuple:
            items = typing.get_args(hint)
            if not isinstance(value, (list, tuple)) or len(value) != len(items):
                raise TypeError
            return tuple(_coerce(v, t, key, source) for v, t in zip(value, items))
        if origin in (typing.Union, types.UnionType):
            for option in typing.get_args(hint):
                if option is type(None) and value is None:
                    return None
                try:
                    return _coerce(value, option, key, source)
                except ConfigError:
                    continue
            raise TypeError
    except (TypeError, ValueError):
        raise ConfigError(f"{source}: {key}={value!r} is not a valid {_name(hint)}") from None
    return value


def _name(hint: Any) -> str:
    return getattr(hint, "__name__", str(hint))
