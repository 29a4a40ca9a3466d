"""Autoregressive sampling with a KV cache: greedy's loop, the next token drawn.

From the prompt `5,1 SEP` each next token is drawn from softmax(logits / temperature),
restricted to the nucleus (`top_p`): the most likely tokens whose probabilities, taken
in decreasing order, first reach `top_p` in sum (the top token always counts, so a tiny
`top_p` is greedy). `temperature=0` is greedy exactly. One uniform number per row and
token comes from the passed generator (on its device, as every decoder draws), so a
seed fixes the samples; which row gets which number depends on the batch, so a prompt's
sample changes with the batch it is decoded in. Batching, stopping and NFE: `greedy.py`.
"""

from __future__ import annotations

import dataclasses

import torch

from dvar.decoders import register_decoder, uniform
from dvar.decoders.greedy import CachedDecoder


@register_decoder("sample")
@dataclasses.dataclass
class Sample(CachedDecoder):
    temperature: float = 1.0  # 0 = greedy
    top_p: float = 1.0  # nucleus mass; 1 = the whole distribution

    def __post_init__(self) -> None:
        if self.temperature < 0:
            raise ValueError(f"sample: temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"sample: top_p must be in (0, 1], got {self.top_p}")

    def choose(self, logits_BxV: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        if self.temperature == 0:
            return logits_BxV.argmax(dim=-1)
        probs_BxV = torch.softmax(logits_BxV.float() / self.temperature, dim=-1)
        # Decreasing probability, ties in id order (so the top token is greedy's argmax).
        sorted_BxV, ids_BxV = torch.sort(probs_BxV, dim=-1, descending=True, stable=True)
        before_BxV = sorted_BxV.cumsum(dim=-1) - sorted_BxV  # mass of the tokens ahead
        sorted_BxV = sorted_BxV.masked_fill(before_BxV >= self.top_p, 0.0)  # a suffix
        cdf_BxV = sorted_BxV.cumsum(dim=-1)
        u_Bx1 = uniform((logits_BxV.size(0), 1), generator, logits_BxV.device) * cdf_BxV[:, -1:]
        # The first token whose cumulative mass exceeds u, never one outside the nucleus
        # (float round-off could let u reach the total).
        pick_Bx1 = torch.searchsorted(cdf_BxV, u_Bx1, right=True)
        last_kept_Bx1 = (sorted_BxV > 0).sum(dim=-1, keepdim=True) - 1
        return ids_BxV.gather(1, torch.minimum(pick_Bx1, last_kept_Bx1)).squeeze(1)
