"""Optional packages, imported where a setting needs them.

dvar's core needs torch alone; pretrained backbones need transformers (and peft for LoRA),
experiment tracking needs tensorboard or wandb. Each is imported through `require`, so a
missing one is a `MissingDependency` naming the setting that needs it and the command
that installs it, which the command line prints as one line (exit status 2):

    peft = require("peft", "lora.r=16")
    # MissingDependency: lora.r=16 needs peft, which is not installed: pip install 'dvar[hf]'
"""

from __future__ import annotations

import importlib
from types import ModuleType

from dvar.errors import DvarError

# Package -> the extra of pyproject.toml that installs it.
EXTRAS = {
    "transformers": "hf",
    "peft": "hf",
    "sentencepiece": "hf",
    "tensorboard": "tracking",
    "wandb": "tracking",
}


class MissingDependency(DvarError, ImportError):
    """An optional package that a setting needs cannot be imported."""


def require(module: str, needed_by: str) -> ModuleType:
    """Import `module` (e.g. "transformers" or "torch.utils.tensorboard"); if its package
    cannot be imported, raise MissingDependency saying that `needed_by` (a setting, e.g.
    "model=hf:/models/llama") needs it and how to install it."""
    package = module.split(".")[0]
    try:
        return importlib.import_module(module)
    except ImportError as error:
        missing = (error.name or "").split(".")[0]
        if missing == package:
            why = "which is not installed"
        else:  # the package is there but one of its own imports fails
            why = f"which cannot be imported ({' '.join(str(error).split())})"
        install = f"pip install 'dvar[{EXTRAS[package]}]'" if package in EXTRAS else f"pip install {package}"
        raise MissingDependency(f"{needed_by} needs {package}, {why}: {install}") from None


__all__ = ["MissingDependency", "require", "EXTRAS"]
