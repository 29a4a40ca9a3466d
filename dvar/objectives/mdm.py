"""Masked diffusion objective (MDM), reproducing the reference's training loss.

Reference: HKUNLP/diffusion-vs-ar `src/llmtuner/tuner/mdm/trainer.py`
(`CustomDiffusionTrainer.q_sample` and `inner_forward`). For one sequence

    input_ids  5,1 SEP 5,6 EOS PAD          (answer_start = 4)
    t = 9, T = 20 -> each position >= 4 masked with probability (t+1)/T = 0.5
    noisy      5,1 SEP 5 MASK 6 MASK PAD

a bidirectional model predicts every position; the cross-entropy l at the masked ones is
reweighted to alpha*(1-exp(-l))^gamma*l (hard tokens count more) and multiplied by the
time weight w(t) (`linear`: T-t, `elbo`: 1/(t+1), `none`: 1); the loss is the sum over
masked positions divided by their number in the batch.

Maskable positions are output, EOS *and* padding, so the model also learns where the
answer ends. The prompt (input and SEP) is never masked.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, ClassVar

import torch
import torch.nn as nn
import torch.nn.functional as F

from dvar.objectives import Batch, Objective, register_objective
from dvar.tokenizer import MASK_ID

if TYPE_CHECKING:
    from dvar.config import Config

TIME_WEIGHTINGS = ("linear", "elbo", "none")


def mask_batch(
    input_ids_BxL: torch.Tensor,
    answer_start_B: torch.Tensor,
    steps: int,
    generator: torch.Generator | None = None,
    mask_id: int = MASK_ID,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Forward process: `(noisy_ids B x L, masked bool B x L, t B)`.

    t ~ U{0..steps-1} per sequence; each position >= answer_start is masked independently
    with probability (t+1)/steps. Random numbers are drawn on the generator's device (CPU
    when there is none) and moved, so a seed gives the same masks on every device.
    """
    device = input_ids_BxL.device
    draw_on = generator.device if generator is not None else device
    t_B = torch.randint(0, steps, (input_ids_BxL.size(0),), generator=generator, device=draw_on).to(device)
    noisy_BxL, masked_BxL = mask_at_rates(
        input_ids_BxL, answer_start_B, (t_B + 1).float() / steps, generator, mask_id
    )
    return noisy_BxL, masked_BxL, t_B


def mask_at_rates(
    input_ids_BxL: torch.Tensor,
    answer_start_B: torch.Tensor,
    rate_B: torch.Tensor,
    generator: torch.Generator | None = None,
    mask_id: int = MASK_ID,
) -> tuple[torch.Tensor, torch.Tensor]:
    """`(noisy_ids B x L, masked bool B x L)`: each position >= answer_start of row b masked
    independently with probability rate_B[b] (the forward process at a chosen mask rate;
    `mask_batch` draws the rate, `dvar analyze` fixes it)."""
    B, L = input_ids_BxL.shape
    device = input_ids_BxL.device
    draw_on = generator.device if generator is not None else device
    u_BxL = torch.rand(B, L, generator=generator, device=draw_on).to(device)
    positions_1xL = torch.arange(L, device=device)[None, :]
    maskable_BxL = positions_1xL >= answer_start_B[:, None]
    masked_BxL = (u_BxL < rate_B.to(device)[:, None]) & maskable_BxL
    return input_ids_BxL.masked_fill(masked_BxL, mask_id), masked_BxL


@register_objective("mdm")
@dataclasses.dataclass
class MaskedDiffusion(Objective):
    steps: int = 20  # T
    alpha: float = 0.25
    gamma: float = 1.0  # the paper uses 2 for Countdown
    time_weighting: str = "linear"
    token_reweighting: bool = True
    # Read position i's prediction from position i-1 (the reference's causal-LM
    # convention, for models adapted from pretrained causal LMs); off from scratch.
    shift: bool = False
    mask_id: int = MASK_ID

    family: ClassVar[str] = "mdm"
    causal: ClassVar[bool] = False
    default_decoder: ClassVar[str] = "topk"
    uses_mask: ClassVar[bool] = True

    @classmethod
    def from_config(cls, cfg: Config, mask_id: int | None = None) -> MaskedDiffusion:
        d = cfg.diffusion
        return cls(
            steps=d.steps, alpha=d.alpha, gamma=d.gamma, time_weighting=d.time_weighting,
            token_reweighting=d.token_reweighting, shift=bool(d.shift),
            **({} if mask_id is None else {"mask_id": mask_id}),
        )

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ValueError(f"mdm: steps must be >= 1, got {self.steps}")
        if self.time_weighting not in TIME_WEIGHTINGS:
            raise ValueError(
                f"mdm: time_weighting {self.time_weighting!r} not in {TIME_WEIGHTINGS}"
            )

    def time_weights(self, t_B: torch.Tensor) -> torch.Tensor:
        if self.time_weighting == "linear":
            return (self.steps - t_B).float()
        if self.time_weighting == "elbo":  # the reference's "original"
            return 1.0 / (t_B + 1).float()
        return torch.ones_like(t_B, dtype=torch.float)

    def loss(
        self, model: nn.Module, batch: Batch, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        self.check_model(model)
        input_ids_BxL = batch["input_ids"]
        noisy_BxL, masked_BxL, t_B = mask_batch(
            input_ids_BxL, batch["answer_start"], self.steps, generator, self.mask_id
        )
        logits_NxV = self.logits(model, noisy_BxL, logits_at=masked_BxL)
        targets_N = input_ids_BxL[masked_BxL]
        token_loss_N = F.cross_entropy(logits_NxV.float(), targets_N, reduction="none")
        weighted_N = token_loss_N
        if self.token_reweighting:
            weighted_N = self.alpha * (1 - torch.exp(-token_loss_N)) ** self.gamma * token_loss_N
        weight_BxL = self.time_weights(t_B)[:, None].expand_as(masked_BxL)
        weighted_N = weighted_N * weight_BxL[masked_BxL]
        count = masked_BxL.sum()
        # The reference divides by the count unguarded; a batch with nothing masked (all
        # t small, all coins lucky) would give NaN, here it gives 0 with zero gradient.
        loss = weighted_N.sum() / count.clamp(min=1)
        with torch.no_grad():
            stats = {
                "loss": loss.detach(),
                "tokens": count,
                "ce": token_loss_N.sum() / count.clamp(min=1),  # unweighted, for monitoring
                "acc": (logits_NxV.argmax(-1) == targets_N).float().sum() / count.clamp(min=1),
                "t": t_B.float().mean(),
            }
        return loss, stats

    def logits(
        self, model: nn.Module, x_BxL: torch.Tensor, logits_at: torch.Tensor | None = None
    ) -> torch.Tensor:
        if not self.shift:
            return model(x_BxL, logits_at=logits_at)
        # Position i reads the output at i-1; position 0 reads its own (as the reference's
        # `torch.cat([logits[:, 0:1], logits[:, :-1]], dim=1)`).
        if logits_at is None:
            logits_BxLxV = model(x_BxL)
            return torch.cat([logits_BxLxV[:, :1], logits_BxLxV[:, :-1]], dim=1)
        source_BxL = torch.zeros_like(logits_at)
        source_BxL[:, :-1] = logits_at[:, 1:]
        if bool(logits_at[:, 0].any()):
            # Position 0 is prompt in every real batch; handle it anyway by the slow path.
            return self.logits(model, x_BxL)[logits_at]
        return model(x_BxL, logits_at=source_BxL)


__all__ = ["MaskedDiffusion", "mask_batch", "mask_at_rates", "TIME_WEIGHTINGS"]
