"""`dvar train [CONFIG.yaml ...] [key=value ...]`."""

from __future__ import annotations

import argparse
import textwrap

from dvar.config import Config, ConfigError, key_help, load_config, to_dict


def _keys(node: dict, prefix: str = "") -> list[tuple[str, str]]:
    """(key, default as typed on the command line) of every key."""
    keys = []
    for name, value in node.items():
        if isinstance(value, dict) and name != "settings":
            keys += _keys(value, f"{prefix}{name}.")
        elif isinstance(value, list):  # as typed on the command line: key=[a,b]
            keys.append((f"{prefix}{name}", f"[{','.join(str(item) for item in value)}]"))
        elif isinstance(value, dict):
            keys.append((f"{prefix}{name}", "{" + ", ".join(f"{k}: {v}" for k, v in value.items()) + "}"))
        elif isinstance(value, bool):
            keys.append((f"{prefix}{name}", str(value).lower()))
        else:
            keys.append((f"{prefix}{name}", "" if value is None else str(value)))
    return keys


def describe_keys(width: int = 100, column: int = 34) -> str:
    """Every key=default with its meaning (dvar.config's comments), wrapped to `width`."""
    meanings = key_help()
    lines = []
    for key, default in _keys(to_dict(Config())):
        head = f"  {key}={default}"
        text = textwrap.wrap(meanings[key], width - column - 1) or [""]
        if len(head) >= column:
            lines.append(head)
            lines += [" " * column + " " + part for part in text]
        else:
            lines.append(f"{head:<{column}} {text[0]}")
            lines += [" " * column + " " + part for part in text[1:]]
    return "\n".join(lines)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train an AR or MDM model on a task (YAML recipe + key=value overrides)",
        description=(
            "Train a model. Settings: defaults <- each CONFIG.yaml in order <- key=value\n"
            "overrides; an unknown key is an error. A file may name `base: other.yaml`\n"
            "(merged before its own keys). dvar's own recipes are overlays: configs/NAME.yaml\n"
            "configs/dvar/mdm.yaml (or ar.yaml). Writes the run directory `out_dir` (config.yaml,\n"
            "vocab.json, model.json, model.safetensors, train_log.jsonl, eval_log.jsonl,\n"
            "loss.png, checkpoints/); with model=hf:PATH (a local Hugging Face causal LM)\n"
            "config.yaml and hf/ (the model or LoRA adapter and its tokenizer) instead of\n"
            "vocab.json, model.json and model.safetensors. train.report_to=tensorboard\n"
            "(event files in tensorboard/), wandb, or [tensorboard,wandb] also logs loss,\n"
            "learning rate, tokens/s and validation there (pip install 'dvar[tracking]').\n"
            "resume=true continues a killed run from its last complete checkpoint.\n"
            "Several processes: torchrun --nproc_per_node N -m dvar train ...\n\n"
            "keys, defaults and meanings:\n" + describe_keys()
        ),
        epilog="examples:\n"
        "  dvar train configs/sudoku-mdm.yaml data.train=data/paper/sudoku/train.jsonl\n"
        "  dvar train configs/sudoku-mdm.yaml configs/dvar/mdm.yaml out_dir=runs/dvar-sudoku-mdm\n"
        "  dvar train task=path objective=ar model=mini data.train=path.jsonl out_dir=runs/p "
        "train.max_steps=500\n"
        "  dvar train configs/llama-cd4-ar.yaml model=hf:/models/llama-7b lora.r=16",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("items", nargs="*", metavar="CONFIG.yaml ... key=value")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from dvar.trainer import train

    paths, overrides = [], []
    for item in args.items:
        if "=" in item:
            overrides.append(item)
        elif overrides:
            raise ConfigError(f"config file {item} after key=value items: give the files first")
        else:
            paths.append(item)
    train(load_config(paths, overrides))
    return 0
