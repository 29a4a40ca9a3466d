"""Typed run configuration: dataclass defaults <- YAML recipe <- `key=value` overrides.

Every key has a type and a default here, so a typo in a recipe or on the command line is
an error that lists the valid keys, never a silently ignored setting.

    cfg = load_config("configs/sudoku-mdm.yaml", ["train.lr=3e-4", "model=mini"])
    cfg = load_config(["configs/sudoku-mdm.yaml", "configs/dvar/mdm.yaml"])  # dvar's recipe
    cfg = recipe_config("sudoku-mdm", "dvar")  # the same, run directory runs/dvar-sudoku-mdm

Several files merge in order, a later file's keys winning; a mapping value
(`decode.settings`) is replaced whole, `decode.settings.noise=0.5` sets one entry.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import io
import textwrap
import tokenize
import types
import typing
from dataclasses import dataclass, field
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from dvar.errors import DvarError


@dataclass
class DataConfig:
    train: str = ""  # training JSONL
    valid: str = ""  # validation JSONL; empty: hold `valid_size` examples out of train
    valid_size: int = 448  # examples held out of train when valid is empty (the reference: 448)
    cutoff: int = 0  # sequence length in tokens; 0: the longest example of train/valid
    max_new_tokens: int = 0  # AR decoding budget; 0: the longest answer + EOS
    # The order the answer is written in (SPEC §9): forward (the task's own format) |
    # reverse | solver | random; each task lists the ones it has. Answers are mapped back
    # to the task's format before judging.
    answer_order: str = "forward"


@dataclass
class TrainConfig:
    max_steps: int = 0  # optimizer steps; 0: derived from `epochs`
    epochs: float = 1.0  # passes over the training set, when max_steps is 0
    batch_size: int = 64  # global batch (all processes, all accumulation steps)
    micro_batch_size: int = 0  # per process and forward pass; 0: batch_size / processes
    lr: float = 1e-3  # peak learning rate (AdamW), after warm-up, before the decay
    min_lr_ratio: float = 0.0  # the schedule decays to lr * min_lr_ratio
    # cosine: warm-up, then cosine decay over the remaining steps | wsd: warm-up, constant
    # (stable), then a linear decay over the last decay_fraction of max_steps
    # (warmup-stable-decay, Hägele et al. 2024); a wsd run can branch off another's trunk.
    schedule: str = "cosine"
    decay_fraction: float = 0.2  # wsd: the share of max_steps spent decaying
    warmup_steps: int = -1  # linear warm-up steps; -1: 1% of max_steps (at least 1)
    weight_decay: float = 0.0  # AdamW's decoupled weight decay
    betas: tuple[float, float] = (0.9, 0.999)  # AdamW's (beta1, beta2), as [b1, b2]
    grad_clip: float = 1.0  # clip the gradient's global norm to this; 0: no clipping
    # auto | fp32 | bf16 | fp16. auto: bf16 on GPUs that have it and on CPUs with native bf16
    # matrix units (AMX, AVX512-BF16, Arm BF16/SME) for dvar's own model, else fp32
    # (dvar.precision.resolve_precision); config.yaml records the resolved choice.
    precision: str = "auto"
    log_every: int = 10  # a train_log.jsonl row (loss, lr, tokens/s) every N steps
    # auto: a progress bar on a terminal, else a log line every log_every steps | bar |
    # log | quiet (no per-step output)
    progress: str = "auto"
    eval_every: int = 0  # validation loss + decoded accuracy every N steps; 0: at the end only
    eval_size: int = 128  # validation examples decoded for accuracy
    save_every: int = 0  # checkpoint every N steps; 0: at the end only
    keep_checkpoints: int = 2  # the newest N checkpoints kept in checkpoints/
    # Checkpoints at these steps as well, never rotated away: the branch points of shorter
    # wsd runs (branch_from) that share this run's trunk.
    save_at: list[int] = field(default_factory=list)
    # A wsd run directory (the trunk) to start from: a fresh run loads the trunk's checkpoint
    # at this run's decay start (kept by the trunk's save_at) and trains only its decay.
    # Weights, optimizer, data order and schedule up to there are those of training this
    # run from scratch, so the result is the same run at a fraction of the cost.
    branch_from: str = ""
    compile: bool = False  # torch.compile the model (GPU)
    # Stop after this many seconds of training (validation excluded), then validate and
    # save as at max_steps; 0: no limit. max_steps still sets the schedule.
    time_limit: float = 0.0
    # Experiment tracking (dvar/tracking.py): none | tensorboard | wandb, or a list such as
    # [tensorboard, wandb]; a single name is a one-item list.
    report_to: list[str] = field(default_factory=lambda: ["none"])


@dataclass
class ArchConfig:
    dropout: float = 0.0  # dropout rate of dvar's own model (the reference's recipes: 0.1)
    positions: str = "learned"  # learned (GPT-2, the reference) | rope (rotary) | learned+rope
    vocab: str = ""  # character set; empty: the default dvar vocabulary
    # n_layer, n_embd, n_head reshape the named size `model`; model.json records the result.
    n_layer: int = 0  # transformer blocks of `model`; 0: the size's own
    n_embd: int = 0  # width of `model`'s residual stream, a multiple of n_head; 0: the size's own
    n_head: int = 0  # attention heads of `model`; 0: the size's own
    # N > 0: learned positions start out structured for an `N x N grid SEP N x N grid`
    # sequence (Sudoku's input SEP output): a cell's vector is the sum of its row's, its
    # column's and its box's (shared by both grids) and its grid's. An inductive bias for
    # a lever study, not the paper's model; 0: GPT-2's independent random vectors.
    grid: int = 0


@dataclass
class DiffusionConfig:
    steps: int = 20  # T: the forward process's noise levels t = 0..T-1 (MDM training)
    alpha: float = 0.25  # token reweighting alpha * (1 - exp(-loss))^gamma * loss
    gamma: float = 1.0  # token reweighting's exponent (the paper: 2 for Countdown)
    time_weighting: str = "linear"  # loss weight w(t): linear (T - t) | elbo (1 / (t + 1)) | none
    token_reweighting: bool = True  # weight hard tokens more (alpha, gamma); false: plain cross-entropy
    # Read position i's prediction from i-1 (causal-LM convention); empty (null): on for
    # pretrained hf backbones, off for dvar's own models.
    shift: bool | None = None


@dataclass
class ArConfig:
    """The AR objective's settings (objective=ar)."""

    # Input corruption (Gao et al. 2025, arXiv 2510.04071): during training each
    # answer-side input token is replaced by MASK with a probability drawn per sequence;
    # the targets stay the clean next tokens, validation and decoding see clean inputs.
    input_mask: float = 0.0  # the corruption rate (its largest, under diffusion); 0: off, today's AR
    # fixed: every sequence at input_mask | diffusion: input_mask * (t+1)/T with
    # t ~ U{0..T-1}, T = diffusion.steps (at input_mask 1 the MDM's forward process)
    input_mask_schedule: str = "fixed"
    mask_prompt: bool = False  # corrupt the prompt's tokens as well (never SEP)


@dataclass
class LoraConfig:
    """LoRA fine-tuning of a pretrained backbone (`model=hf:PATH`), via peft."""

    r: int = 0  # LoRA rank; 0: full fine-tuning (every weight trained)
    alpha: float = 32.0  # the adapter's output is scaled by alpha / r
    dropout: float = 0.05  # dropout on the adapter's input
    target_modules: str = ""  # comma-separated module names or all-linear; empty: peft's default


@dataclass
class DecodeConfig:
    decoder: str = ""  # a registered decoder (dvar/decoders/); empty: the objective's default
    # The decoder's settings, a mapping checked against the decoder's own, e.g. the paper's
    # {noise: 0.5, repredict: true} for topk; empty: the decoder's defaults. With decoder,
    # the run's decoding: validation's, and `dvar eval`'s without --decoder. (Old runs'
    # `args: [noise=0.5, ...]` loads as these settings.)
    settings: dict[str, Any] = field(default_factory=dict)
    steps: int = 0  # decoding steps T of decoders that have them; 0: diffusion.steps
    batch_size: int = 64  # problems decoded together in validation


@dataclass
class Config:
    task: str = ""  # a registered task, one file in dvar/tasks/ (e.g. sudoku)
    objective: str = "mdm"  # a registered objective, one file in dvar/objectives/ (ar, mdm)
    model: str = "tiny"  # a size name (micro, mini, tiny, base, medium) or hf:PATH (dvar/hf.py)
    out_dir: str = ""  # the run directory training writes
    seed: int = 0  # seeds weights, data order, masks and the validation split
    resume: bool = False  # continue the run in out_dir from its last checkpoint
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    arch: ArchConfig = field(default_factory=ArchConfig)
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    ar: ArConfig = field(default_factory=ArConfig)
    lora: LoraConfig = field(default_factory=LoraConfig)
    decode: DecodeConfig = field(default_factory=DecodeConfig)


class ConfigError(DvarError, ValueError):
    pass


PathLike = str | Path
# configs/ of the checkout: the reference's recipes (NAME.yaml) and dvar's overlays (dvar/).
CONFIGS_DIR = Path(__file__).resolve().parent.parent / "configs"
RECIPE_FAMILIES = ("reference", "dvar")


def load_config(
    paths: PathLike | Sequence[PathLike] | None = None, overrides: Sequence[str] = ()
) -> Config:
    """Defaults, then each YAML file in order (a later file's keys win), then `key=value`
    overrides. A file may name `base: other.yaml` (or a list), paths relative to the file,
    merged before its own keys."""
    cfg = Config()
    for path in _as_paths(paths):
        _merge_file(cfg, Path(path), chain=())
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"override {item!r} is not key=value")
        _set(cfg, key.strip(), yaml.safe_load(text) if text else "", source="command line")
    sources = [str(p) for p in _as_paths(paths)] + (["command line"] if overrides else [])
    check_config(cfg, " + ".join(sources) or "defaults")
    return cfg


def check_config(cfg: Config, source: str = "config") -> None:
    """Refuse what the registries do not know: the objective, the decoder (or one that
    decodes another objective family) and the decoder's settings; `source` names where
    the config came from. `load_config` calls it; so does training, for built configs."""
    from dvar.decoders import decoder_class, decoder_names
    from dvar.objectives import objective_class

    try:
        objective = objective_class(cfg.objective)
        name = cfg.decode.decoder or objective.default_decoder
        decoder = decoder_class(name)
    except KeyError as err:
        raise ConfigError(f"{source}: {err.args[0]}") from None
    if decoder.family != objective.family:
        raise ConfigError(
            f"{source}: decode.decoder {name!r} decodes {decoder.family} models, objective "
            f"{cfg.objective!r} is {objective.family}; valid: {', '.join(decoder_names(objective.family))}"
        )
    cfg.decode.settings = check_decoder_settings(name, cfg.decode.settings, source)
    try:  # the objective's own settings (diffusion.*, ar.*), before any data is read
        objective.from_config(cfg)
    except ValueError as err:
        raise ConfigError(f"{source}: {err}") from None
    shape = {k: getattr(cfg.arch, k) for k in ("n_layer", "n_embd", "n_head") if getattr(cfg.arch, k)}
    if any(v < 0 for v in shape.values()):
        raise ConfigError(f"{source}: arch shape must be positive (0: the size's), got {shape}")
    if cfg.arch.grid and cfg.model.startswith("hf:"):
        raise ConfigError(f"{source}: arch.grid structures dvar's own learned positions, not a "
                          f"pretrained {cfg.model}'s")
    if shape and cfg.model.startswith("hf:"):
        raise ConfigError(f"{source}: arch.{', arch.'.join(shape)} reshape dvar's own sizes, "
                          f"not a pretrained {cfg.model}")


def check_decoder_settings(name: str, settings: dict[str, Any], source: str = "config") -> dict[str, Any]:
    """`settings` of decoder `name` checked against its declared settings (the dataclass
    fields) and typed by them; steps are set by decode.steps, not here."""
    from dvar.decoders import decoder_class

    cls = decoder_class(name)
    hints = typing.get_type_hints(cls)
    known = sorted(f.name for f in dataclasses.fields(cls) if f.name != "steps")
    checked = {}
    for key, value in settings.items():
        if key == "steps" and "steps" in hints:
            raise ConfigError(f"{source}: decode.settings.steps: set decode.steps instead")
        if key not in known:
            raise ConfigError(
                f"{source}: decode.settings.{key}: decoder {name!r} has no such setting; "
                f"valid: {', '.join(known) or 'none'}"
            )
        checked[key] = _coerce(value, hints[key], f"decode.settings.{key}", source)
    return checked


def recipe_files(name: str, family: str = "reference", objective: str = "",
                 configs: PathLike | None = None) -> list[Path]:
    """The YAML files of recipe `name` (configs/NAME.yaml) in `family`: `reference` is the
    file alone, `dvar` adds dvar's overlay for the recipe's objective (configs/dvar/OBJECTIVE.yaml;
    `objective` replaces the recipe's own, e.g. when an override changes it)."""
    root = Path(configs) if configs else CONFIGS_DIR
    recipe = root / f"{name}.yaml"
    if not recipe.is_file():
        known = sorted(p.stem for p in root.glob("*.yaml"))
        raise ConfigError(f"{recipe}: no such recipe; recipes in {root}: {', '.join(known)}")
    if family not in RECIPE_FAMILIES:
        raise ConfigError(f"recipe family {family!r} unknown; known: {', '.join(RECIPE_FAMILIES)}")
    if family == "reference":
        return [recipe]
    objective = objective or load_config(recipe).objective
    overlay = root / "dvar" / f"{objective}.yaml"
    if not overlay.is_file():
        raise ConfigError(f"{overlay}: no dvar overlay for objective {objective!r}")
    return [recipe, overlay]


def recipe_config(name: str, family: str = "reference", overrides: Sequence[str] = (),
                  configs: PathLike | None = None) -> Config:
    """Recipe `name` of the `reference` or `dvar` family, then `overrides`. A dvar recipe's
    run directory defaults to runs/dvar-NAME (the reference's is the recipe's out_dir)."""
    if family != "dvar":
        return load_config(recipe_files(name, family, configs=configs), overrides)
    objective = load_config(recipe_files(name, configs=configs), overrides).objective
    files = recipe_files(name, family, objective, configs)
    return load_config(files, [f"out_dir=runs/dvar-{name}", *overrides])


def _as_paths(paths: PathLike | Sequence[PathLike] | None) -> list[PathLike]:
    if not paths:
        return []
    if isinstance(paths, (str, Path)):
        return [paths]
    return [p for p in paths if p]


def _merge_file(cfg: Config, path: Path, chain: tuple[Path, ...]) -> None:
    if path.resolve() in chain:
        raise ConfigError(f"{path}: `base` loops back to itself ({' -> '.join(map(str, chain))})")
    if not path.is_file():
        where = f" (named by {chain[-1]}'s base)" if chain else ""
        raise ConfigError(f"{path}: no such config file{where}")
    loaded = yaml.safe_load(path.read_text()) or {}
    if not isinstance(loaded, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    bases = loaded.pop("base", None) or []
    for base in [bases] if isinstance(bases, str) else bases:
        if not isinstance(base, str):
            raise ConfigError(f"{path}: base {base!r} is not a file name")
        _merge_file(cfg, path.parent / base, (*chain, path.resolve()))
    _merge(cfg, loaded, prefix="", source=str(path))


def key_help(section: type = Config, prefix: str = "") -> dict[str, str]:
    """Every key (`train.lr`, ...) and its meaning, read from the comments of these
    dataclasses (the comment block above a field, then the one after it on its line):
    the one source of `dvar train --help`."""
    comments = _field_comments(section)
    hints = typing.get_type_hints(section)
    meanings = {}
    for f in dataclasses.fields(section):
        if dataclasses.is_dataclass(hints[f.name]):
            meanings.update(key_help(hints[f.name], f"{prefix}{f.name}."))
        else:
            meanings[f"{prefix}{f.name}"] = comments.get(f.name, "")
    return meanings


def _field_comments(cls: type) -> dict[str, str]:
    source = textwrap.dedent(inspect.getsource(cls))
    lines = source.splitlines()
    comments: dict[int, str] = {}  # 1-based line -> its comment's text
    alone: set[int] = set()  # lines that hold nothing but a comment
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            row = token.start[0]
            comments[row] = token.string.lstrip("#").strip()
            if not lines[row - 1][: token.start[1]].strip():
                alone.add(row)
    (node,) = ast.parse(source).body
    found = {}
    for statement in node.body:
        if isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name):
            above, row = [], statement.lineno - 1
            while row in alone:
                above.insert(0, comments[row])
                row -= 1
            after = comments.get(statement.end_lineno) if statement.end_lineno not in alone else None
            found[statement.target.id] = " ".join(above + ([after] if after else []))
    return found


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
        if isinstance(node, DecodeConfig) and part == "args" and depth == len(parts) - 1:
            node.settings = _settings_from_args(value, key, source)
            return
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
        hint = typing.get_type_hints(type(node))[part]
        if typing.get_origin(hint) is dict and depth == len(parts) - 2:  # decode.settings.noise
            getattr(node, part)[parts[-1]] = value
            return
        if depth != len(parts) - 1:
            raise ConfigError(f"{source}: {'.'.join(parts[: depth + 1])!r} is not a section")
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
        if origin is dict:  # a mapping replaces the earlier one whole
            if value is None:
                return {}
            if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
                raise TypeError
            return dict(value)
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


def _settings_from_args(value: Any, key: str, source: str) -> dict[str, Any]:
    """The deprecated `decode.args: [noise=0.5, repredict=true]` (run directories written
    before decode.settings) as settings, values read as `dvar eval --decoder-arg` reads them."""
    from dvar.decoders import parse_settings

    items = [] if value is None else value if isinstance(value, list) else [value]
    try:
        return parse_settings([str(item) for item in items], what=key)
    except ValueError as err:
        raise ConfigError(f"{source}: {key}: {err}") from None


def _name(hint: Any) -> str:
    if typing.get_origin(hint) is dict:
        return "mapping (KEY: VALUE, ...)"
    return getattr(hint, "__name__", str(hint))
