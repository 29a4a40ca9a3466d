"""Greedy autoregressive decoding with a KV cache (the AR baseline).

From the prompt `5,1 SEP` the model appends its most likely next token, one model call
per token, until EOS, `max_new_tokens` or `seq_len`: `5 , 6 EOS` -> answer ids of `5,6`.

Prompts of equal length are decoded together in one batch (no padding, so the result is
the same as decoding each alone); a row that has finished keeps being computed until its
whole group has, and its extra tokens are dropped. NFE counts batched calls; `row_nfe`
gives each prompt its own group's calls.

`CachedDecoder` is that loop with the choice of the next token left open: `Greedy` takes
the argmax, `sample.Sample` draws it (temperature, nucleus).
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Callable, Sequence

import torch

from dvar.decoders import DecodeResult, Decoder, checked_lengths, register_decoder, resolve_device
from dvar.model import KVCache
from dvar.tokenizer import EOS_ID, MASK_ID, PAD_ID


@dataclasses.dataclass
class CachedDecoder(Decoder):
    """Left-to-right decoding with a KV cache; subclasses choose each next token. With
    `known_length` a row cannot choose EOS or PAD before its answer's length and must
    choose EOS there."""

    family = "ar"
    known_length: bool = dataclasses.field(default=False, kw_only=True)

    @abc.abstractmethod
    def choose(self, logits_BxV: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """The next token of every row (B ids) from the model's logits for it."""

    def __call__(
        self,
        predict: Callable[..., torch.Tensor],
        prompts: Sequence[Sequence[int]],
        *,
        seq_len: int,
        max_new_tokens: int | None = None,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
        eos_id: int = EOS_ID,
        mask_id: int = MASK_ID,
        answer_lengths: Sequence[int] | None = None,
    ) -> DecodeResult:
        run_on = resolve_device(predict, device)
        known = checked_lengths(self.known_length, answer_lengths, prompts, seq_len)
        groups: dict[int, list[int]] = {}
        for index, prompt in enumerate(prompts):
            groups.setdefault(len(prompt), []).append(index)
        generated: list[list[int]] = [[] for _ in prompts]
        row_nfe = [0] * len(prompts)
        nfe = 0
        with torch.no_grad():
            for length, indices in sorted(groups.items()):
                budget = seq_len - length
                if max_new_tokens is not None:
                    budget = min(budget, max_new_tokens)
                if budget <= 0:
                    continue
                prompt_BxP = torch.tensor([list(prompts[i]) for i in indices], device=run_on)
                ends_B = None if known is None else torch.tensor([known[i] for i in indices], device=run_on)
                tokens, calls = self._decode_group(predict, prompt_BxP, budget, eos_id, generator, ends_B)
                nfe += calls
                for index, row in zip(indices, tokens):
                    generated[index] = row
                    row_nfe[index] = calls
        answers = [row[:-1] if row and row[-1] == eos_id else row for row in generated]
        return DecodeResult(answers=answers, nfe=nfe, generated=generated, row_nfe=row_nfe)

    def _decode_group(
        self,
        predict: Callable[..., torch.Tensor],
        prompt_BxP: torch.Tensor,
        budget: int,
        eos_id: int,
        generator: torch.Generator | None,
        ends_B: torch.Tensor | None = None,
    ) -> tuple[list[list[int]], int]:
        """Up to `budget` new tokens per row, each row cut after its first EOS; a row with
        an answer length in `ends_B` writes exactly that many answer ids, then EOS."""
        B, P = prompt_BxP.shape
        # A model with its own cache type (a Hugging Face backbone) provides it.
        cache = predict.new_cache() if hasattr(predict, "new_cache") else KVCache()
        last_BxP = torch.zeros(B, P, dtype=torch.bool, device=prompt_BxP.device)
        last_BxP[:, -1] = True
        logits_BxV = predict(prompt_BxP, logits_at=last_BxP, kv_cache=cache, start_pos=0)
        calls = 1
        new_tokens_BxN = []
        finished_B = torch.zeros(B, dtype=torch.bool, device=prompt_BxP.device)
        every_Bx1 = torch.ones(B, 1, dtype=torch.bool, device=prompt_BxP.device)
        while True:
            if ends_B is not None:
                logits_BxV = self.within_length(logits_BxV, len(new_tokens_BxN), ends_B, eos_id)
            next_B = self.choose(logits_BxV, generator)
            new_tokens_BxN.append(next_B)
            finished_B |= next_B == eos_id
            # One sync per token to stop early; tiny next to the model call.
            if len(new_tokens_BxN) == budget or bool(finished_B.all()):
                break
            logits_BxV = predict(
                next_B[:, None], logits_at=every_Bx1, kv_cache=cache, start_pos=cache.length
            )
            calls += 1
        rows = torch.stack(new_tokens_BxN, dim=1).tolist()
        return [row[: row.index(eos_id) + 1] if eos_id in row else row for row in rows], calls

    @staticmethod
    def within_length(logits_BxV: torch.Tensor, written: int, ends_B: torch.Tensor, eos_id: int) -> torch.Tensor:
        """Logits for the next token when `written` answer ids are out: EOS and PAD
        impossible before a row's length, only EOS at it."""
        logits_BxV = logits_BxV.clone()
        short_B = written < ends_B
        for token in (eos_id, PAD_ID):
            logits_BxV[:, token] = logits_BxV[:, token].masked_fill(short_B, float("-inf"))
        at_end_B = written == ends_B
        eos_BxV = torch.full_like(logits_BxV, float("-inf"))
        eos_BxV[:, eos_id] = 0.0
        return torch.where(at_end_B[:, None], eos_BxV, logits_BxV)


@register_decoder("greedy")
@dataclasses.dataclass
class Greedy(CachedDecoder):
    def choose(self, logits_BxV: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        return logits_BxV.argmax(dim=-1)
