"""Threshold (parallel) MDM decoding: the number of model calls adapts to the problem.

Each call predicts every still-masked position and reveals all whose confidence (the
probability of the predicted token, MASK's mass dropped) is >= `tau`, and at least one
per row (its most confident masked position, ties to the leftmost); revealed tokens are
never re-masked nor re-predicted. A row is done when nothing in it is masked.

With m maskable positions a row takes between 1 call (`tau=0`: everything at once) and
m calls (`tau > 1`: one position per call, most confident first). Rows of a batch finish
independently: a finished row is left out of later calls, so it stops changing and its
`row_nfe` is its own number of calls; `nfe` (batched calls) is the largest of them.
`max_steps` > 0 caps the calls: the last allowed call reveals everything still masked.
Deterministic: the generator is not used.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import torch

from dvar.decoders import MaskedDecoder, log_probs, register_decoder


@register_decoder("threshold")
@dataclasses.dataclass
class Threshold(MaskedDecoder):
    tau: float = 0.9  # reveal every masked position predicted with probability >= tau
    max_steps: int = 0  # cap on the calls per row; 0 = none (at most m calls anyway)

    def __post_init__(self) -> None:
        if self.max_steps < 0:
            raise ValueError(f"threshold: max_steps must be >= 0, got {self.max_steps}")

    def denoise(
        self,
        predict: Callable[..., torch.Tensor],
        x_BxL: torch.Tensor,
        maskable_BxL: torch.Tensor,
        generator: torch.Generator | None,
        mask_id: int,
    ) -> tuple[torch.Tensor, int, list[int]]:
        x_BxL = x_BxL.clone()
        masked_BxL = maskable_BxL.clone()
        row_nfe_B = torch.zeros(x_BxL.size(0), dtype=torch.long, device=x_BxL.device)
        calls = 0
        while True:
            rows_A = masked_BxL.any(dim=1).nonzero().squeeze(1)  # A rows still to fill
            if rows_A.numel() == 0:  # one sync per call, tiny next to the model call
                break
            x_AxL, masked_AxL = x_BxL[rows_A], masked_BxL[rows_A]
            logp_AxL, token_AxL = log_probs(predict, x_AxL, mask_id).max(dim=-1)
            calls += 1
            row_nfe_B[rows_A] += 1
            # Visible positions compete with nothing: below every probability.
            conf_AxL = logp_AxL.exp().masked_fill(~masked_AxL, -1.0)
            reveal_AxL = masked_AxL & (conf_AxL >= self.tau)
            best_A = conf_AxL.argmax(dim=1)  # a masked position: each row has one
            reveal_AxL[torch.arange(rows_A.numel(), device=x_BxL.device), best_A] = True
            if calls == self.max_steps:
                reveal_AxL = masked_AxL
            x_BxL[rows_A] = torch.where(reveal_AxL, token_AxL, x_AxL)
            masked_BxL[rows_A] = masked_AxL & ~reveal_AxL
        return x_BxL, calls, row_nfe_B.tolist()
