"""Autoregressive objective: next-token cross-entropy on `output EOS` only.

For the sequence `5,1 SEP 5,6 EOS PAD PAD` the targets are `5 , 6 EOS` (positions
answer_start .. answer_end-1), each predicted from the position before it; the prompt
and the padding carry no loss, as in the reference's SFT preprocessing (labels of the
prompt are IGNORE_INDEX, HKUNLP/diffusion-vs-ar `src/llmtuner/dsets/preprocess.py`).
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import torch
import torch.nn as nn
import torch.nn.functional as F

from dvar.objectives import Batch, Objective, Predictor, answer_masks, register_objective


@register_objective("ar")
@dataclasses.dataclass
class Autoregressive(Objective):
    family: ClassVar[str] = "ar"
    causal: ClassVar[bool] = True
    default_decoder: ClassVar[str] = "greedy"

    def loss(
        self, model: nn.Module, batch: Batch, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        self.check_model(model)
        input_ids_BxL = batch["input_ids"]
        target_BxL = answer_masks(batch)
        # A causal model's prediction at i never sees i+1.., so the padding after the
        # longest answer can be dropped from the forward pass altogether.
        used = int(batch["answer_end"].max()) - 1
        target_BxL = target_BxL[:, : used + 1]
        # Position i predicts token i+1; answer_start >= 1, so no target sits at 0.
        predict_from_BxU = target_BxL[:, 1:]
        logits_NxV = model(input_ids_BxL[:, :used], logits_at=predict_from_BxU)
        targets_N = input_ids_BxL[:, : used + 1][target_BxL]
        loss = F.cross_entropy(logits_NxV.float(), targets_N)
        with torch.no_grad():
            accuracy = (logits_NxV.argmax(-1) == targets_N).float().mean()
        stats = {
            "loss": loss.detach(),
            "tokens": torch.tensor(targets_N.numel(), device=loss.device),
            "acc": accuracy,
        }
        return loss, stats

    def logits(
        self, model: nn.Module, x_BxL: torch.Tensor, logits_at: torch.Tensor | None = None
    ) -> torch.Tensor:
        return model(x_BxL, logits_at=logits_at)

    def predictor(self, model: nn.Module) -> Predictor:
        # The greedy decoder drives the model's KV cache directly.
        return model
