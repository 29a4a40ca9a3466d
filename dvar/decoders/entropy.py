"""Entropy-confidence MDM decoding: `topk`'s loop, another score.

Confidence of a position = the negative entropy sum_v p_v log p_v of its predictive
distribution (MASK's mass dropped, not renormalised): a position whose whole
distribution is peaked ranks high, one spread over many tokens ranks low, whatever its
top token's probability. Everything else (steps, schedule, noise, repredict, remask,
exactly T model calls) is `topk`'s; see `dvar/decoders/topk.py`. A visible token that is
not re-predicted counts as certain (entropy 0).
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import torch

from dvar.decoders import register_decoder
from dvar.decoders.topk import TopK


@register_decoder("entropy")
@dataclasses.dataclass
class Entropy(TopK):
    certain: ClassVar[float] = 0.0

    def confidence(self, logp_BxLxV: torch.Tensor) -> torch.Tensor:
        p_BxLxV = logp_BxLxV.exp()
        # 0 * log 0 = 0 (MASK's -inf log-probability, and any underflow).
        plogp_BxLxV = torch.where(p_BxLxV > 0, p_BxLxV * logp_BxLxV, torch.zeros_like(p_BxLxV))
        return plogp_BxLxV.sum(dim=-1)
