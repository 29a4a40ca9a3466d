"""Top-k ("easy-first") MDM decoding, the paper's default decoder.

Reference: HKUNLP/diffusion-vs-ar `src/llmtuner/tuner/mdm/trainer.py`
(`generate_samples`, `topk_decoding`, `topk_masking`); its default strategy string
`stochastic0.5-linear` is `TopK(schedule="linear", noise=0.5)` here, and the paper's
decoding in full `TopK(noise=0.5, repredict=True)` (the recipes of configs/ set it with
`decode.settings: {noise: 0.5, repredict: true}`). dvar's default is deterministic (`noise=0`),
chosen on measurements across tasks and seeds: docs/reproducing.md (Decoders) and the
decoding verdicts in docs/results.md.

With T = 4 and m = 8 maskable positions (everything after SEP up to `seq_len`):

    t=3  predict all 8, keep the 2 most confident, re-mask k = floor(8*3/4) = 6
    t=2  predict all 8 again (earlier choices too), re-mask k = 4
    t=1  ... re-mask k = 2
    t=0  predict all 8, keep everything          -> exactly T model calls

Confidence is the log-probability of the predicted token; with `noise` > 0, Gumbel noise
scaled by noise * rate is added before ranking (rate = the fraction re-masked, t/T for
`linear`; the reference uses this rate for `cosine` too).

Visible (already decoded) tokens. The reference re-predicts them from the model's output at
their own position. It trains with the causal-LM logit shift, so that output comes from
the position before, which has learned to name its right neighbour and, the neighbour being
visible, copies it with near-certainty. A model trained without the shift (dvar's default)
is never trained on the output at a visible position: it is noise there. So by default a
visible token keeps its value and counts as certain (log-probability 0), which is what the
reference's copy amounts to; it can still be re-masked through the Gumbel noise.
`repredict=True` re-predicts and re-scores visible tokens literally, as the reference does
(meaningful for models trained with `diffusion.shift=true`).

Re-masking. By default (`remask=True`) every maskable position competes at every step,
so a token revealed earlier can be masked again (through the noise, or through a low
score with `repredict`). `remask=False` freezes revealed tokens: they are never
re-masked nor re-predicted, and each step reveals the most confident still-masked
positions until only k remain masked (MaskGIT-style easy-first without re-masking; the
schedule's k never grows, so that is always possible). `repredict=True` with
`remask=False` is an error: a frozen token is not re-predicted.

Confidence is the one thing the variants change: a subclass overrides `confidence`
(and `certain`, the score of a token known for sure, which visible tokens get unless
re-predicted); `margin.py` and `entropy.py` are such subclasses.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import ClassVar

import torch

from dvar.decoders import MaskedDecoder, log_probs, register_decoder, uniform

SCHEDULES = ("linear", "cosine")


def remask_rate(t: int, steps: int, schedule: str) -> float:
    """Fraction of the maskable positions re-masked after step t (t = steps-1 .. 1)."""
    if schedule == "linear":
        return t / steps
    return math.cos(math.pi / 2 * (steps - t) / steps)


def remask_count(m: int, t: int, steps: int, schedule: str) -> int:
    if schedule == "linear":
        return m * t // steps  # exact floor(m*t/T), no float rounding at integers
    return math.floor(m * remask_rate(t, steps, schedule))


def gumbel(shape: torch.Size, generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    # The reference's -log(-log(u + 1e-8) + 1e-8).
    u = uniform(shape, generator, device)
    return -torch.log(-torch.log(u + 1e-8) + 1e-8)


@register_decoder("topk")
@dataclasses.dataclass
class TopK(MaskedDecoder):
    steps: int = 20  # T: exactly this many model calls
    schedule: str = "linear"  # or "cosine"
    noise: float = 0.0  # Gumbel scale factor; 0 = deterministic (the paper's: 0.5)
    repredict: bool = False  # re-predict visible tokens too (the reference, for shifted models)
    remask: bool = True  # False: a revealed token is never masked again

    certain: ClassVar[float] = 0.0  # the confidence of a token known for sure: log 1

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ValueError(f"{self.name}: steps must be >= 1, got {self.steps}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"{self.name}: schedule {self.schedule!r} not in {SCHEDULES}")
        if self.noise < 0:
            raise ValueError(f"{self.name}: noise must be >= 0, got {self.noise}")
        if self.repredict and not self.remask:
            raise ValueError(f"{self.name}: repredict=True needs remask=True (frozen tokens are not re-predicted)")

    def confidence(self, logp_BxLxV: torch.Tensor) -> torch.Tensor:
        """B x L scores, higher = more confident: the log-probability of the prediction."""
        return logp_BxLxV.max(dim=-1).values

    def denoise(
        self,
        predict: Callable[..., torch.Tensor],
        x_BxL: torch.Tensor,
        maskable_BxL: torch.Tensor,
        generator: torch.Generator | None,
        mask_id: int,
    ) -> tuple[torch.Tensor, int, list[int]]:
        m_B = maskable_BxL.sum(dim=1).tolist()
        positions_BxL = torch.arange(x_BxL.size(1), device=x_BxL.device).expand_as(x_BxL)
        for t in range(self.steps - 1, -1, -1):
            logp_BxLxV = log_probs(predict, x_BxL, mask_id)
            token_BxL = logp_BxLxV.argmax(dim=-1)
            score_BxL = self.confidence(logp_BxLxV)
            masked_BxL = x_BxL == mask_id
            if self.repredict:
                x0_BxL = torch.where(maskable_BxL, token_BxL, x_BxL)
            else:
                x0_BxL = torch.where(masked_BxL, token_BxL, x_BxL)
                score_BxL = score_BxL.masked_fill(maskable_BxL & ~masked_BxL, self.certain)
            if t == 0:
                return x0_BxL, self.steps, [self.steps] * x_BxL.size(0)
            rate = remask_rate(t, self.steps, self.schedule)
            if self.noise > 0:
                score_BxL = score_BxL + self.noise * rate * gumbel(
                    score_BxL.shape, generator, x_BxL.device
                )
            # The prompt (and, without re-masking, every revealed token) is never
            # re-masked: rank it after every candidate. k never exceeds the masked count.
            frozen_BxL = ~maskable_BxL if self.remask else ~masked_BxL
            score_BxL = score_BxL.masked_fill(frozen_BxL, float("inf"))
            # Exactly k per row, ties broken by position (a stable sort). The reference
            # masks `score < k-th smallest`, which re-masks fewer than k on ties.
            order_BxL = torch.argsort(score_BxL, dim=1, stable=True)
            rank_BxL = torch.empty_like(order_BxL).scatter_(1, order_BxL, positions_BxL)
            k_Bx1 = torch.tensor(
                [remask_count(m, t, self.steps, self.schedule) for m in m_B], device=x_BxL.device
            )[:, None]
            x_BxL = x0_BxL.masked_fill(rank_BxL < k_Bx1, mask_id)
        raise AssertionError("unreachable: the loop returns at t = 0")
