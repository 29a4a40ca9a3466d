"""Margin-confidence MDM decoding (Kim et al. 2025): `topk`'s loop, another score.

Confidence of a position = p(top-1) - p(top-2) of its predictive distribution (MASK's
mass dropped): a position where the model hesitates between two tokens ranks low even
if the first has high probability. Everything else (steps, schedule, noise, repredict,
remask, exactly T model calls) is `topk`'s; see `dvar/decoders/topk.py`. A visible token
that is not re-predicted counts as certain (margin 1). Note that the noise is added to
scores in [0, 1] here, not to log-probabilities, so a given `noise` perturbs more.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import torch

from dvar.decoders import register_decoder
from dvar.decoders.topk import TopK


@register_decoder("margin")
@dataclasses.dataclass
class Margin(TopK):
    certain: ClassVar[float] = 1.0

    def confidence(self, logp_BxLxV: torch.Tensor) -> torch.Tensor:
        top2_BxLx2 = logp_BxLxV.exp().topk(2, dim=-1).values
        return top2_BxLx2[..., 0] - top2_BxLx2[..., 1]
