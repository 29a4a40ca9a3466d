"""Atomic, pickle-free checkpoints.

A checkpoint is a directory `checkpoints/step-000100/` holding
- `model.safetensors`: the weights,
- `optimizer.safetensors`: every tensor of the optimizer state,
- `state.json`: everything else (optimizer hyper-parameters, schedule, step, RNG state).
It is written into a temporary directory that is renamed into place as the last act, so a
run killed at any moment leaves either a complete checkpoint or none.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Collection
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

CHECKPOINT_DIR = "checkpoints"


def save_weights(model: torch.nn.Module, path: str | Path) -> None:
    """Write a model's weights as safetensors (tied weights stored once), atomically."""
    state = _untied(model.state_dict())
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    save_file(state, str(tmp))
    os.replace(tmp, path)


def load_weights(model: torch.nn.Module, path: str | Path) -> None:
    state = load_file(str(path), device=str(_device_of(model)))
    missing, unexpected = model.load_state_dict(state, strict=False)
    # Tied parameters are saved once; anything else missing is an error.
    tied = {name for name in missing if _is_tied(model, name)}
    if set(missing) - tied or unexpected:
        raise ValueError(f"{path}: weights do not fit the model (missing {sorted(set(missing) - tied)}, "
                         f"unexpected {sorted(unexpected)})")


def save_checkpoint(
    run_dir: str | Path,
    step: int,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    state: dict[str, Any],
    extra_tensors: dict[str, torch.Tensor] | None = None,
    keep: int = 2,
    pinned: Collection[int] = (),
) -> Path:
    """Write checkpoint `step` atomically and keep only the newest `keep` of them, and
    those at the `pinned` steps."""
    root = Path(run_dir) / CHECKPOINT_DIR
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step-{step:08d}"
    tmp = Path(tempfile.mkdtemp(dir=root, prefix=".tmp-"))
    try:
        save_file(_untied(model.state_dict()), str(tmp / "model.safetensors"))
        tensors, optim_meta = _flatten_optimizer(optimizer.state_dict())
        for name, value in (extra_tensors or {}).items():
            tensors[f"extra.{name}"] = value
        save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()},
                  str(tmp / "optimizer.safetensors"))
        (tmp / "state.json").write_text(json.dumps({"step": step, "optimizer": optim_meta, **state}))
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    for old in list_checkpoints(run_dir)[:-keep] if keep > 0 else []:
        if checkpoint_step(old) not in pinned:
            shutil.rmtree(old, ignore_errors=True)
    return final


def checkpoint_step(path: str | Path) -> int:
    """The step of checkpoint directory `step-00000100` (100)."""
    return int(Path(path).name.split("-")[1])


def list_checkpoints(run_dir: str | Path) -> list[Path]:
    """Complete checkpoints, oldest first."""
    root = Path(run_dir) / CHECKPOINT_DIR
    if not root.is_dir():
        return []
    found = [p for p in root.glob("step-*") if (p / "state.json").is_file()]
    return sorted(found, key=checkpoint_step)


def load_checkpoint(
    path: str | Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer
) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Restore model and optimizer in place; returns (state.json content, extra tensors)."""
    path = Path(path)
    load_weights(model, path / "model.safetensors")
    state = json.loads((path / "state.json").read_text())
    tensors = load_file(str(path / "optimizer.safetensors"))
    extra = {k[len("extra."):]: v for k, v in tensors.items() if k.startswith("extra.")}
    optimizer.load_state_dict(_unflatten_optimizer(tensors, state.pop("optimizer")))
    return state, extra


# ----------------------------------------------------------------------------- helpers
def _device_of(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


def _untied(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop entries that share storage with an earlier one (safetensors refuses aliases)."""
    seen: set[tuple[int, int]] = set()
    out = {}
    for name, tensor in state.items():
        key = (tensor.untyped_storage().data_ptr(), tensor.storage_offset())
        if key in seen:
            continue
        seen.add(key)
        out[name] = tensor.detach().cpu().contiguous()
    return out


def _is_tied(model: torch.nn.Module, name: str) -> bool:
    params = dict(model.named_parameters(remove_duplicate=False))
    target = params.get(name)
    return target is not None and any(
        other is target for other_name, other in params.items() if other_name != name
    )


def _flatten_optimizer(state_dict: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for index, per_param in state_dict["state"].items():
        for key, value in per_param.items():
            if torch.is_tensor(value):
                tensors[f"state.{index}.{key}"] = value
            else:
                scalars.setdefault(str(index), {})[key] = value
    return tensors, {"param_groups": state_dict["param_groups"], "scalars": scalars}


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        if not name.startswith("state."):
            continue
        _, index, key = name.split(".", 2)
        state.setdefault(int(index), {})[key] = value
    for index, values in meta["scalars"].items():
        state.setdefault(int(index), {}).update(values)
    groups = [dict(g, betas=tuple(g["betas"])) if "betas" in g else g for g in meta["param_groups"]]
    return {"state": state, "param_groups": groups}
