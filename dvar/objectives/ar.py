"""Autoregressive objective: next-token cross-entropy on `output EOS` only.

For the sequence `5,1 SEP 5,6 EOS PAD PAD` the targets are `5 , 6 EOS` (positions
answer_start .. answer_end-1), each predicted from the position before it; the prompt
and the padding carry no loss, as in the reference's SFT preprocessing (labels of the
prompt are IGNORE_INDEX, HKUNLP/diffusion-vs-ar `src/llmtuner/dsets/preprocess.py`).

Input corruption (`ar.input_mask`, a regularization control after Gao et al. 2025): in
training, each answer-side *input* token (positions answer_start.., the tokens the model
reads while writing the answer) is replaced by MASK with a rate drawn per sequence, fixed
or the MDM's (t+1)/T; the targets stay the clean next tokens. The prompt is corrupted only
with `ar.mask_prompt` (SEP never). Rate 0 draws nothing: today's AR, bit for bit.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, ClassVar

import torch
import torch.nn as nn
import torch.nn.functional as F

from dvar.objectives import Batch, Objective, Predictor, answer_masks, register_objective
from dvar.tokenizer import MASK_ID

if TYPE_CHECKING:
    from dvar.config import Config

INPUT_MASK_SCHEDULES = ("fixed", "diffusion")


@register_objective("ar")
@dataclasses.dataclass
class Autoregressive(Objective):
    input_mask: float = 0.0  # rate of MASK on answer-side inputs in training; 0: off
    input_mask_schedule: str = "fixed"  # fixed | diffusion: input_mask * (t+1)/steps per sequence
    mask_prompt: bool = False
    steps: int = 20  # T of the diffusion schedule
    mask_id: int = MASK_ID

    family: ClassVar[str] = "ar"
    causal: ClassVar[bool] = True
    default_decoder: ClassVar[str] = "greedy"

    @classmethod
    def needs_mask(cls, cfg: Config) -> bool:
        return cfg.ar.input_mask > 0

    @classmethod
    def from_config(cls, cfg: Config, mask_id: int | None = None) -> Autoregressive:
        a = cfg.ar
        return cls(input_mask=a.input_mask, input_mask_schedule=a.input_mask_schedule,
                   mask_prompt=a.mask_prompt, steps=cfg.diffusion.steps,
                   **({} if mask_id is None else {"mask_id": mask_id}))

    def __post_init__(self) -> None:
        if not 0.0 <= self.input_mask <= 1.0:
            raise ValueError(f"ar: input_mask must be in [0, 1], got {self.input_mask}")
        if self.input_mask_schedule not in INPUT_MASK_SCHEDULES:
            raise ValueError(f"ar: input_mask_schedule {self.input_mask_schedule!r} not in "
                             f"{INPUT_MASK_SCHEDULES}")
        if self.steps < 1:
            raise ValueError(f"ar: steps (diffusion.steps) must be >= 1, got {self.steps}")

    def corrupt(self, input_ids_BxU: torch.Tensor, answer_start_B: torch.Tensor,
                generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """`(inputs B x U with MASK, corrupted bool B x U)`: answer-side positions (and the
        prompt's before SEP, with mask_prompt) masked at the sequence's rate."""
        B, U = input_ids_BxU.shape
        device = input_ids_BxU.device
        draw_on = generator.device if generator is not None else device
        if self.input_mask_schedule == "diffusion":
            t_B = torch.randint(0, self.steps, (B,), generator=generator, device=draw_on).to(device)
            rate_B = self.input_mask * (t_B + 1).float() / self.steps
        else:
            rate_B = torch.full((B,), self.input_mask, device=device)
        u_BxU = torch.rand(B, U, generator=generator, device=draw_on).to(device)
        positions_1xU = torch.arange(U, device=device)[None, :]
        start_Bx1 = answer_start_B.to(device)[:, None]
        maskable_BxU = positions_1xU >= start_Bx1
        if self.mask_prompt:
            maskable_BxU |= positions_1xU < start_Bx1 - 1  # SEP sits at answer_start - 1
        corrupted_BxU = (u_BxU < rate_B[:, None]) & maskable_BxU
        return input_ids_BxU.masked_fill(corrupted_BxU, self.mask_id), corrupted_BxU

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
        inputs_BxU = input_ids_BxL[:, :used]
        if self.input_mask > 0 and model.training:
            inputs_BxU, _ = self.corrupt(inputs_BxU, batch["answer_start"], generator)
        logits_NxV = model(inputs_BxU, logits_at=predict_from_BxU)
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
