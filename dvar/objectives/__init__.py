"""Training objectives, registered by name: one file per objective.

An objective owns corruption, loss weighting and logit conventions (e.g. the MDM logit
shift); the model knows none of it. Usage:

    objective = get_objective("mdm", steps=20, time_weighting="linear")
    model = Transformer(model_config("tiny", tok.vocab_size, 164, causal=objective.causal))
    batch = make_batch([tok.encode_example(x, y, 164) for x, y in pairs], tok)
    loss, stats = objective.loss(model, batch, generator)
    decoder(objective.predictor(model), prompts, seq_len=164, max_new_tokens=82)
    objective = objective_from_config(cfg, tokenizer.mask_id)  # a run config's objective

A new objective is one file here with a decorated class: `@register_objective("name")` on
a dataclass subclass of `Objective` that sets `family`, `causal`, `default_decoder` (and
`uses_mask`, `from_config` where it needs them); `objective=name` in a run config then
trains and evaluates it.

A batch is a dict of LongTensors: `input_ids` B x L (layout of
`CharTokenizer.encode_example`), `answer_start` B (index right after SEP) and
`answer_end` B (index right after EOS).
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, ClassVar

import torch
import torch.nn as nn

from dvar.registry import Registry
from dvar.tokenizer import CharTokenizer

if TYPE_CHECKING:
    from dvar.config import Config

Batch = dict[str, torch.Tensor]
# Logits B x L x V of a whole sequence (or N x V at `logits_at`), as decoders see them.
Predictor = Callable[..., torch.Tensor]


class Objective(abc.ABC):
    """Subclasses are dataclasses whose fields are the objective's settings."""

    name: ClassVar[str]
    family: ClassVar[str]  # "ar" or "mdm": which decoders apply
    causal: ClassVar[bool]  # the attention the model must be built with
    default_decoder: ClassVar[str]  # the decoder of a run whose decode.decoder is empty
    uses_mask: ClassVar[bool] = False  # needs a MASK token (a pretrained tokenizer gets one added)

    @classmethod
    def needs_mask(cls, cfg: Config) -> bool:
        """Whether a run with `cfg` needs a MASK token (`uses_mask`, or a setting's)."""
        return cls.uses_mask

    @classmethod
    def from_config(cls, cfg: Config, mask_id: int | None = None) -> Objective:
        """The objective a run config describes; `mask_id`: the tokenizer's MASK (None:
        dvar's). An objective without settings is its defaults; one with settings reads
        its own section of the config (`mdm`: diffusion)."""
        return cls()

    @abc.abstractmethod
    def loss(
        self, model: nn.Module, batch: Batch, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Scalar loss to minimise and stats (detached 0-dim tensors, so logging them is
        the caller's choice of when to synchronise; `"loss"` and `"tokens"`, the number of
        positions the loss is averaged over, are always present)."""

    @abc.abstractmethod
    def logits(
        self, model: nn.Module, x_BxL: torch.Tensor, logits_at: torch.Tensor | None = None
    ) -> torch.Tensor:
        """What the model predicts for each position of `x_BxL` under this objective's
        conventions: B x L x V, or N x V at the True entries of `logits_at` (bool B x L)."""

    def predictor(self, model: nn.Module) -> Predictor:
        """The callable decoders of this family take as `predict`."""
        return _BoundLogits(self, model)

    def check_model(self, model: nn.Module) -> None:
        """Refuse a model built with the wrong attention (a silent mismatch would train
        an AR objective bidirectionally, i.e. let it copy its targets)."""
        config = getattr(model, "config", None)
        causal = getattr(config, "causal", None)
        if causal is not None and causal != self.causal:
            kind = "causal" if self.causal else "bidirectional"
            raise ValueError(f"objective {self.name!r} needs a {kind} model (config.causal={causal})")


class _BoundLogits:
    """`objective.logits` bound to a model; carries the model's device for decoders."""

    def __init__(self, objective: Objective, model: nn.Module) -> None:
        self.objective = objective
        self.model = model

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def __call__(self, x_BxL: torch.Tensor, logits_at: torch.Tensor | None = None) -> torch.Tensor:
        return self.objective.logits(self.model, x_BxL, logits_at)


def answer_masks(batch: Batch) -> torch.Tensor:
    """Bool B x L: True at positions answer_start <= i < answer_end (output and EOS)."""
    input_ids = batch["input_ids"]
    positions_1xL = torch.arange(input_ids.size(1), device=input_ids.device)[None, :]
    return (positions_1xL >= batch["answer_start"][:, None]) & (
        positions_1xL < batch["answer_end"][:, None]
    )


def make_batch(
    rows: Sequence[Sequence[int]], tokenizer: CharTokenizer, device: torch.device | str = "cpu"
) -> Batch:
    """Stack equal-length `encode_example` rows and find each answer's span."""
    if not rows:
        raise ValueError("empty batch")
    length = len(rows[0])
    starts, ends = [], []
    for index, row in enumerate(rows):
        if len(row) != length:
            raise ValueError(f"row {index} has {len(row)} ids, row 0 has {length}")
        row = list(row)
        try:
            start = row.index(tokenizer.sep_id) + 1
            end = row.index(tokenizer.eos_id, start) + 1
        except ValueError:
            raise ValueError(f"row {index} lacks SEP ... EOS") from None
        starts.append(start)
        ends.append(end)
    return {
        "input_ids": torch.tensor([list(r) for r in rows], dtype=torch.long, device=device),
        "answer_start": torch.tensor(starts, dtype=torch.long, device=device),
        "answer_end": torch.tensor(ends, dtype=torch.long, device=device),
    }


# ---------------------------------------------------------------------- registry
_OBJECTIVES: Registry[type[Objective]] = Registry("objective", __name__)
register_objective = _OBJECTIVES.register
objective_names = _OBJECTIVES.names
objective_class = _OBJECTIVES.get  # `dataclasses.fields` of the class lists its settings
get_objective = _OBJECTIVES.build  # defaults, then settings; unknown settings are errors


def objective_from_config(cfg: Config, mask_id: int | None = None) -> Objective:
    """The objective `cfg.objective` names, built from the config (`Objective.from_config`)."""
    return objective_class(cfg.objective).from_config(cfg, mask_id)


__all__ = [
    "Objective",
    "Batch",
    "Predictor",
    "answer_masks",
    "make_batch",
    "register_objective",
    "get_objective",
    "objective_from_config",
    "objective_class",
    "objective_names",
]
