"""Random-order MDM decoding (D3PM-style), the reference's non-top-k path.

Reference: HKUNLP/diffusion-vs-ar `src/llmtuner/tuner/mdm/trainer.py`
(`generate_samples` with `topk_decoding` off). Start from `5,1 SEP MASK MASK MASK ...`;
at step t = T-1 .. 1 every still-masked position is revealed with probability 1/(t+1)
(to the model's current prediction there) and then stays; at t = 0 every position still
masked is revealed. So each position is revealed at a uniformly random step, and the
decoder always makes exactly T model calls.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import torch

from dvar.decoders import MaskedDecoder, predict_x0, register_decoder, uniform


@register_decoder("random")
@dataclasses.dataclass
class RandomOrder(MaskedDecoder):
    steps: int = 20  # T: exactly this many model calls

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ValueError(f"random: steps must be >= 1, got {self.steps}")

    def denoise(
        self,
        predict: Callable[..., torch.Tensor],
        x_BxL: torch.Tensor,
        maskable_BxL: torch.Tensor,
        generator: torch.Generator | None,
        mask_id: int,
    ) -> tuple[torch.Tensor, int, list[int]]:
        still_masked_BxL = maskable_BxL.clone()
        for t in range(self.steps - 1, -1, -1):
            token_BxL, _ = predict_x0(predict, x_BxL, mask_id)
            if t == 0:
                reveal_BxL = still_masked_BxL
            else:
                coins_BxL = uniform(x_BxL.shape, generator, x_BxL.device)
                reveal_BxL = (coins_BxL < 1.0 / (t + 1)) & still_masked_BxL
            x_BxL = torch.where(reveal_BxL, token_BxL, x_BxL)
            still_masked_BxL &= ~reveal_BxL
        return x_BxL, self.steps, [self.steps] * x_BxL.size(0)
