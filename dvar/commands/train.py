"""`dvar train [CONFIG.yaml] [key=value ...]`."""

from __future__ import annotations

import argparse

from dvar.config import Config, ConfigError, load_config, to_dict


def _keys(node: dict, prefix: str = "") -> list[str]:
    keys = []
    for name, value in node.items():
        if isinstance(value, dict):
            keys += _keys(value, f"{prefix}{name}.")
        elif isinstance(value, list):  # as typed on the command line: key=[a,b]
            keys.append(f"{prefix}{name}=[{','.join(str(item) for item in value)}]")
        else:
            keys.append(f"{prefix}{name}={value}")
    return keys


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train an AR or MDM model on a task (YAML recipe + key=value overrides)",
        description=(
            "Train a model. Settings: defaults <- CONFIG.yaml <- key=value overrides; an\n"
            "unknown key is an error. Writes the run directory `out_dir` (config.yaml,\n"
            "vocab.json, model.json, model.safetensors, train_log.jsonl, eval_log.jsonl,\n"
            "loss.png, checkpoints/); with model=hf:PATH (a local Hugging Face causal LM)\n"
            "config.yaml and hf/ (the model or LoRA adapter and its tokenizer) instead of\n"
            "vocab.json, model.json and model.safetensors. train.report_to=tensorboard\n"
            "(event files in tensorboard/), wandb, or [tensorboard,wandb] also logs loss,\n"
            "learning rate, tokens/s and validation there (pip install 'dvar[tracking]').\n"
            "resume=true continues a killed run from its last complete checkpoint.\n"
            "Several processes: torchrun --nproc_per_node N -m dvar train ...\n\n"
            "keys and defaults:\n  " + "\n  ".join(_keys(to_dict(Config())))
        ),
        epilog="examples:\n"
        "  dvar train configs/sudoku-mdm.yaml data.train=data/paper/sudoku/train.jsonl\n"
        "  dvar train task=path objective=ar model=mini data.train=path.jsonl out_dir=runs/p "
        "train.max_steps=500\n"
        "  dvar train configs/llama-cd4-ar.yaml model=hf:/models/llama-7b lora.r=16",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("items", nargs="*", metavar="CONFIG.yaml | key=value")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from dvar.trainer import train

    path = None
    overrides = []
    for item in args.items:
        if "=" in item:
            overrides.append(item)
        elif path is None:
            path = item
        else:
            raise ConfigError(f"more than one config file: {path}, {item}")
    train(load_config(path, overrides))
    return 0
