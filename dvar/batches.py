"""Training data as tensors: encoded splits, the validation split, the seeded data order.

A step's data is a function of the seed and the step alone (`DataOrder`), so a resumed or
multi-process run reads exactly what the uninterrupted single-process run reads.
"""

from __future__ import annotations

import dataclasses
import random

import torch

from dvar.config import Config, ConfigError
from dvar.data import Example
from dvar.hf import HFTokenizer
from dvar.runtime import seed_of
from dvar.tasks import Task
from dvar.tokenizer import CharTokenizer

Tokenizer = CharTokenizer | HFTokenizer


@dataclasses.dataclass
class EncodedData:
    """Every example of a split as one tensor of token ids plus answer spans."""

    examples: list[Example]
    ids_NxL: torch.Tensor  # int64
    answer_start_N: torch.Tensor
    answer_end_N: torch.Tensor
    duplicates_removed: int = 0  # examples dropped because their problem is a training one

    def __len__(self) -> int:
        return len(self.examples)

    def batch(self, index_B: torch.Tensor, device: torch.device) -> dict[str, torch.Tensor]:
        return {
            "input_ids": self.ids_NxL[index_B].to(device, non_blocking=True),
            "answer_start": self.answer_start_N[index_B].to(device, non_blocking=True),
            "answer_end": self.answer_end_N[index_B].to(device, non_blocking=True),
        }


def encode(examples: list[Example], tokenizer: Tokenizer, cutoff: int, source: str,
           answers: list[str] | None = None) -> EncodedData:
    """Token ids of `input SEP answer EOS` per example; `answers` (default: the gold
    outputs) is what the model is trained to write, e.g. the gold in another order."""
    answers = [ex.output for ex in examples] if answers is None else answers
    rows = [
        tokenizer.encode_example(ex.input, answer, cutoff, name=f"{source}:{ex.line}")
        for ex, answer in zip(examples, answers)
    ]
    spans = [tokenizer.answer_span(ex.input, answer) for ex, answer in zip(examples, answers)]
    return EncodedData(
        examples, torch.tensor(rows, dtype=torch.long),
        torch.tensor([start for start, _ in spans]), torch.tensor([end for _, end in spans]),
    )


def split_valid(cfg: Config, examples: list[Example]) -> tuple[list[Example], list[Example]]:
    """(train, valid): `data.valid_size` examples held out of `examples` by a seeded shuffle."""
    count = cfg.data.valid_size
    if count <= 0:
        return examples, []
    if count >= len(examples):
        raise ConfigError(f"data.valid_size={count} leaves no training data ({len(examples)} examples)")
    order = list(range(len(examples)))
    random.Random(f"valid:{cfg.seed}").shuffle(order)
    held = set(order[:count])
    return ([ex for i, ex in enumerate(examples) if i not in held],
            [ex for i, ex in enumerate(examples) if i in held])



class DataOrder:
    """Stream positions -> example indices: a seeded permutation per epoch, concatenated."""

    def __init__(self, size: int, seed: int):
        self.size, self.seed = size, seed
        self._perms: dict[int, torch.Tensor] = {}

    def _perm(self, epoch: int) -> torch.Tensor:
        if epoch not in self._perms:
            generator = torch.Generator().manual_seed(seed_of(self.seed, epoch, 7))
            self._perms = {epoch: torch.randperm(self.size, generator=generator), **{
                e: p for e, p in self._perms.items() if e >= epoch - 1}}
        return self._perms[epoch]

    def batch(self, step: int, batch_size: int) -> torch.Tensor:
        start = step * batch_size
        positions = torch.arange(start, start + batch_size)
        epochs = positions // self.size
        out = torch.empty(batch_size, dtype=torch.long)
        for epoch in epochs.unique().tolist():
            where = epochs == epoch
            out[where] = self._perm(epoch)[positions[where] % self.size]
        return out




def new_problems(task: Task, examples: list[Example], training: list[Example]) -> list[int]:
    """Indices of the `examples` whose problem (`task.canonical`) is not a training one."""
    seen = {task.canonical(ex.problem) for ex in training}
    return [i for i, ex in enumerate(examples) if task.canonical(ex.problem) not in seen]


__all__ = ["Tokenizer", "EncodedData", "encode", "split_valid", "new_problems", "DataOrder"]
