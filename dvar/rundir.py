"""A run directory and the one module that knows its layout.

    RUN/config.yaml          the resolved config (`dvar train` writes it at the start)
    RUN/checkpoints/step-N/  resumable checkpoints (`dvar.checkpoint`)
    RUN/model.safetensors    dvar's own model, with vocab.json and model.json
    RUN/hf/                  a pretrained `model=hf:PATH` run: model (or adapter), tokenizer
    RUN/compute.json         parameters, tokens, FLOPs and seconds of training
    RUN/train_log.jsonl, eval_log.jsonl, loss.png
    RUN/eval/STEM-LABEL/     one evaluation: predictions.jsonl, metrics.json
    RUN/fit.json             the finished model's loss on training and held-out problems, alike
    RUN/.claim               the lock of the process that owns the directory (`RunDir.claim`)

Everything else asks `RunDir` what a directory holds (finished, resumable, fresh, or
trained with other settings) and where an evaluation goes; `save_model`/`load_model`
write and read both kinds of backbone through one interface. One process at a time owns a
run directory: training and a study's job claim it, a second claimant gets an error.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from dvar.checkpoint import list_checkpoints
from dvar.config import Config, ConfigError, load_config, to_dict

CONFIG_FILE = "config.yaml"
WEIGHTS_FILE = "model.safetensors"
HF_SUBDIR = "hf"  # = dvar.hf.RUN_SUBDIR
COMPUTE_FILE = "compute.json"
FIT_FILE = "fit.json"
EVAL_DIR = "eval"
CLAIM_FILE = ".claim"
# A run directory the parent process claimed for this one (`dvar study` for the torchrun
# it starts): this process shares the parent's claim instead of taking its own.
CLAIM_ENV = "DVAR_CLAIMED_RUN"
_claims: dict[Path, int] = {}  # this process's claims: directory -> its lock's fd

# The settings that define a run: a directory trained with other values is another run.
# Whole sections (`arch`, `diffusion`) compare every key they hold.
RUN_SETTINGS = ("task", "objective", "model", "seed", "data.train", "data.answer_order",
                "train.max_steps", "train.batch_size", "train.lr", "arch", "diffusion", "ar")


class RunInUse(ConfigError):
    """The run directory is another process's (`RunDir.claim`)."""


class RunDir:
    """A run directory: `RunDir("runs/sudoku-mdm").state(cfg)`."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    def config(self) -> Config | None:
        """The resolved config the run was trained with, or None (no config.yaml)."""
        file = self.path / CONFIG_FILE
        return load_config(file) if file.is_file() else None

    @property
    def finished(self) -> bool:
        """The trained weights are there (model.safetensors, or hf/)."""
        return (self.path / WEIGHTS_FILE).is_file() or (self.path / HF_SUBDIR).is_dir()

    def checkpoints(self) -> list[Path]:
        """Complete checkpoints, oldest first."""
        return list_checkpoints(self.path)

    def check_same(self, cfg: Config) -> None:
        """ConfigError if the directory holds a run trained with other settings than
        `cfg`; settings `cfg` leaves unresolved (None; train.max_steps=0: then
        train.epochs) are not compared."""
        held = self.config()
        if held is None:
            return
        differences = setting_differences(held, cfg)
        if differences:
            name, held_value, wanted = differences[0]
            raise ConfigError(f"{self.path} holds a run with {name}={held_value}, this run "
                              f"wants {wanted}: give another out_dir (or remove that run)")

    def peek(self, cfg: Config | None = None) -> str:
        """"finished" (its weights are there), "resumable" (killed after a checkpoint) or
        "fresh", read without touching anything. With `cfg`: ConfigError if it holds a run
        with other settings."""
        if cfg is not None:
            self.check_same(cfg)
        if self.finished:
            return "finished"
        return "resumable" if self.checkpoints() else "fresh"

    def state(self, cfg: Config | None = None) -> str:
        """`peek`, made ready to train: a run directory killed before its first checkpoint
        is emptied (nothing in it to keep), unless another process owns it (ConfigError)."""
        state = self.peek(cfg)
        if state == "fresh" and self.path.is_dir():
            with self.claim():
                left = [path for path in self.path.iterdir() if path.name != CLAIM_FILE]
                if left and not (self.path / CONFIG_FILE).is_file():
                    raise ConfigError(f"{self.path} is not empty and holds no run ({CONFIG_FILE} "
                                      "is missing): give another out_dir")
                for path in left:
                    if path.is_dir() and not path.is_symlink():
                        shutil.rmtree(path)
                    else:
                        path.unlink()
        return state

    @contextlib.contextmanager
    def claim(self) -> Iterator[None]:
        """Own the directory while the block runs (created if missing, and removed again if
        the block leaves it empty): another process that claims it meanwhile gets a
        RunInUse error naming this one. The lock
        (`.claim`, an flock) ends with the block or with the process, however it dies.
        Nested claims in one process are one; a child started with DVAR_CLAIMED_RUN set
        to the directory shares its parent's claim."""
        key = self.path.resolve()
        if key in _claims or os.environ.get(CLAIM_ENV) == str(key):
            yield
            return
        created = not self.path.exists()
        self.path.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path / CLAIM_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        if not _lock(fd, fcntl.LOCK_EX):
            holder = _holder(fd)
            os.close(fd)
            raise RunInUse(f"{self.path} is in use by another process (pid {holder}): wait for it "
                           "to end, or give another out_dir")
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        _claims[key] = fd
        try:
            yield
        finally:
            del _claims[key]
            if created and [path.name for path in self.path.iterdir()] == [CLAIM_FILE]:
                shutil.rmtree(self.path)  # nothing came of it (a config error): leave nothing
            os.close(fd)  # releases the lock

    def owner(self) -> str | None:
        """The pid of another process that owns the directory now (`claim`), else None."""
        file = self.path / CLAIM_FILE
        if self.path.resolve() in _claims or not file.is_file():
            return None
        fd = os.open(file, os.O_RDONLY)
        try:
            return None if _lock(fd, fcntl.LOCK_SH) else _holder(fd)
        finally:
            os.close(fd)  # and with it a lock `_lock` took

    def eval_dir(self, data_file: str | Path, label: str) -> Path:
        """Where the evaluation of `data_file` labelled `label` (its decoding) goes:
        RUN/eval/{stem of data_file}-{label}."""
        return self.path / EVAL_DIR / f"{Path(data_file).stem}-{label}"

    def compute(self) -> dict[str, Any] | None:
        """compute.json (see `compute_record`), or None for a run trained before it existed."""
        file = self.path / COMPUTE_FILE
        return json.loads(file.read_text()) if file.is_file() else None

    def write_compute(self, record: dict[str, Any]) -> Path:
        """Write compute.json atomically."""
        return write_json(self.path / COMPUTE_FILE, record)

    def fit(self) -> dict[str, Any] | None:
        """fit.json (`dvar.evaluate.fit_losses`), or None where it was not measured."""
        file = self.path / FIT_FILE
        return json.loads(file.read_text()) if file.is_file() else None

    def write_fit(self, record: dict[str, Any]) -> Path:
        """Write fit.json atomically."""
        return write_json(self.path / FIT_FILE, record)


def _lock(fd: int, kind: int) -> bool:
    """flock `fd` without waiting for an owner; a few tries ride out another process's
    `owner` probe, which holds a shared lock for an instant."""
    for attempt in range(5):
        try:
            fcntl.flock(fd, kind | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            time.sleep(0.05 * (attempt + 1))
    return False


def _holder(fd: int) -> str:
    """The pid an owner wrote into its claim file."""
    return os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"


def setting_differences(held: Config, wanted: Config) -> list[tuple[str, Any, Any]]:
    """`(setting, held value, wanted value)` for each of RUN_SETTINGS on which a run trained
    with `held` is not the run `wanted` asks for; settings `wanted` leaves unresolved (None;
    train.max_steps=0: then train.epochs) are not compared."""
    have, want = to_dict(held), to_dict(wanted)
    keys = list(RUN_SETTINGS)
    if want["train"]["max_steps"] == 0:
        keys[keys.index("train.max_steps")] = "train.epochs"
    differences = []
    for key in keys:
        a, b = have, want
        for part in key.split("."):
            a, b = a[part], b[part]
        pairs = [(f"{key}.{k}", a[k], b[k]) for k in b] if isinstance(b, dict) else [(key, a, b)]
        differences += [(name, h, w) for name, h, w in pairs if w is not None and h != w]
    return differences


def write_json(path: Path, value: Any) -> Path:
    """`value` as indented JSON, written to a temporary file renamed into place."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(value, indent=2) + "\n")
    os.replace(tmp, path)
    return path


def training_flops_per_token(non_embedding: int, n_layer: int, n_embd: int, cutoff: int) -> int:
    """Training FLOPs per token (`compute_record`'s count): 6·N + 12·n_layer·n_embd·cutoff;
    n_layer = n_embd = 0 leaves the attention term out."""
    return 6 * non_embedding + 12 * n_layer * n_embd * cutoff


def compute_record(model: torch.nn.Module, steps: int, batch_size: int, cutoff: int,
                   train_seconds: float, **extra: Any) -> dict[str, Any]:
    """What training cost, for compute.json.

    tokens = steps x batch_size x cutoff: the sequence positions the model processed
    (padding included; every position goes through the network). FLOPs follow the
    PaLM/Chinchilla count (PaLM, Chowdhery et al. 2022, appendix B): per token
    6·N for the weight matmuls, forward and backward, with N the non-embedding parameter
    count, plus 12·n_layer·n_embd·cutoff for the attention scores and the weighted sum
    of values (forward 4·n_layer·n_embd·cutoff, backward twice that; full attention, not
    halved for causal masks). A backbone whose config names no layer count or width
    (`model.dimensions` None) gets the 6·N term alone and `attention_flops: false`.
    """
    counts = model.num_parameters()
    trained = sum(p.numel() for p in model.parameters() if p.requires_grad)
    tokens = steps * batch_size * cutoff
    dimensions = model.dimensions
    per_token = training_flops_per_token(counts.non_embedding, *(dimensions or (0, 0)), cutoff)
    return {
        "parameters": counts.total,
        "non_embedding_parameters": counts.non_embedding,
        "trained_parameters": trained,
        "steps": steps,
        "batch_size": batch_size,
        "cutoff": cutoff,
        "tokens": tokens,
        "flops": per_token * tokens,
        "attention_flops": dimensions is not None,
        "train_seconds": round(train_seconds, 3),
        "tokens_per_s": round(tokens / train_seconds, 1) if train_seconds > 0 else None,
        **extra,
    }


# ----------------------------------------------------------------------------- backbones
def save_model(run_dir: str | Path, model: torch.nn.Module, tokenizer: Any) -> None:
    """The finished model and its tokenizer: model.safetensors + vocab.json + model.json
    (dvar's own), or hf/ (a pretrained backbone); each backbone class writes its own."""
    model.save(run_dir, tokenizer)


def load_model(run_dir: str | Path, cfg: Config, device: str | torch.device = "cpu") -> tuple[Any, Any]:
    """(tokenizer, model) of a finished run trained with `cfg`, in eval mode.
    FileNotFoundError naming the missing file if the run is not finished."""
    from dvar.hf import load_backbone, hf_path
    from dvar.model import Transformer
    from dvar.objectives import objective_class
    from dvar.tokenizer import CharTokenizer

    run_dir = Path(run_dir)
    pretrained = hf_path(cfg.model)
    needed = (HF_SUBDIR,) if pretrained else ("vocab.json", "model.json", WEIGHTS_FILE)
    for name in needed:
        if not (run_dir / name).exists():
            raise FileNotFoundError(f"{run_dir} is not a finished run: {name} is missing")
    if pretrained:
        return load_backbone(run_dir, pretrained, objective_class(cfg.objective).causal,
                             cfg.lora, device)
    return CharTokenizer.load(run_dir / "vocab.json"), Transformer.load(run_dir, device)


__all__ = ["RunDir", "RUN_SETTINGS", "compute_record", "save_model", "load_model", "write_json",
           "CONFIG_FILE", "WEIGHTS_FILE", "COMPUTE_FILE", "EVAL_DIR"]
