"""Decoders, registered by name: one file per decoder, each serving one objective family.

Every decoder is a dataclass of settings, called the same way:

    decoder = get_decoder("topk", steps=20, noise=0.0)
    result = decoder(objective.predictor(model), prompts, seq_len=164, max_new_tokens=82)
    texts = [tokenizer.decode_answer(ids) for ids in result.answers]

- `predict`: `objective.predictor(model)`. For `mdm` decoders a callable
  `predict(x_BxL) -> logits B x L x V`; for `ar` decoders the causal `Transformer` itself
  (called with `kv_cache=`, `start_pos=`, `logits_at=`).
- `prompts`: token ids `input SEP` (`CharTokenizer.encode_prompt`), any lengths.
- `seq_len`: total sequence length (the task's cutoff). MDM decoders fill positions
  len(prompt) .. seq_len-1; AR decoders never let a sequence grow past it.
- `max_new_tokens`: AR only (stop after that many new tokens); MDM decoders ignore it,
  so one call works for every decoder.
- `generator`: the only source of randomness (drawn on its device, moved to `device`).
- `device`: where to run; default `predict.device` if it has one, else CPU.
- `eos_id`, `mask_id`: special ids (defaults: `dvar.tokenizer`'s).
- `answer_lengths`: per prompt, the answer's length in ids where the task fixes it
  (`Task.answer_length`, e.g. a Sudoku grid); needed by, and only used by, a decoder set
  `known_length=True` (a setting of every decoder): an MDM's canvas then holds EOS (then
  PAD) right after the answer's span and no position inside it may become EOS or PAD;
  an AR decoder may not stop before the length and stops at it. Off by default: the
  model alone decides where its answer ends, as in the paper.

The caller puts the model in eval mode; decoders run under `torch.no_grad()`.
`DecodeResult.answers[i]` holds the ids after prompt i's SEP up to (not including) the
first EOS; `nfe` counts calls of `predict` (a batched call counts once); `row_nfe[i]`
counts the calls that included prompt i. The two differ for adaptive decoders, which
drop finished rows from later calls (`threshold`), and for AR decoders, which batch
prompts by length (a row is in its own length group's calls only).

Decoders (one file each): MDM `topk` (easy-first with re-masking, the paper's), `margin`
and `entropy` (the same loop, other confidence scores), `random` (D3PM order),
`threshold` (parallel, adaptive number of calls); AR `greedy` and `sample`
(temperature / nucleus sampling).
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import torch

from dvar.config import ConfigError
from dvar.registry import Registry
from dvar.tokenizer import EOS_ID, MASK_ID, PAD_ID

if TYPE_CHECKING:
    from dvar.config import Config


@dataclasses.dataclass
class DecodeResult:
    answers: list[list[int]]  # per prompt: ids after SEP, up to the first EOS (excluded)
    nfe: int  # model calls made, a batched call counting once
    # Per prompt: every id the decoder produced after the prompt (EOS and beyond
    # included), for inspection.
    generated: list[list[int]] = dataclasses.field(default_factory=list)
    # Per prompt: the calls of `predict` that included it (<= nfe); None if not tracked.
    row_nfe: list[int] | None = None


class Decoder(abc.ABC):
    """Subclasses are dataclasses whose fields are the decoder's settings; the frames
    below (`MaskedDecoder`, `CachedDecoder`) add `known_length`, keyword-only."""

    name: ClassVar[str]
    family: ClassVar[str]  # "ar" or "mdm": the objective family it decodes

    @abc.abstractmethod
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
        """Decode every prompt; see the module docstring."""


def resolve_device(predict: Any, device: torch.device | str | None) -> torch.device:
    if device is not None:
        return torch.device(device)
    return torch.device(getattr(predict, "device", "cpu"))


def checked_lengths(
    known_length: bool, answer_lengths: Sequence[int] | None, prompts: Sequence[Sequence[int]], seq_len: int
) -> list[int] | None:
    """The answer lengths a `known_length` decoder works to (None when the setting is off),
    each checked to fit `seq_len` after its prompt."""
    if not known_length:
        return None
    if answer_lengths is None or len(answer_lengths) != len(prompts):
        raise ValueError("known_length=True needs answer_lengths, one per prompt (Task.answer_length)")
    for prompt, length in zip(prompts, answer_lengths):
        if length < 1 or len(prompt) + length > seq_len:
            raise ValueError(f"an answer of {length} ids does not fit after a prompt of {len(prompt)} "
                             f"within {seq_len}")
    return [int(length) for length in answer_lengths]


class NoEndInside:
    """`predict` wrapped so that EOS and PAD are never a prediction: with `known_length`
    the canvas already holds the answer's EOS (and PAD after it) as given tokens, so the
    answer's span is filled with answer ids only, re-predicted tokens included. Banned at
    every position, as `log_probs` bans MASK: decoders read predictions at maskable
    positions alone, so the others do not matter (and rows may be any subset, `threshold`)."""

    def __init__(self, predict: Callable[..., torch.Tensor], banned: Sequence[int]) -> None:
        self.predict = predict
        self.banned = list(banned)

    def __call__(self, x_BxL: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        logits_BxLxV = self.predict(x_BxL, *args, **kwargs).clone()
        logits_BxLxV[..., self.banned] = float("-inf")
        return logits_BxLxV


def cut_at_eos(ids: Sequence[int], eos_id: int) -> list[int]:
    ids = list(ids)
    return ids[: ids.index(eos_id)] if eos_id in ids else ids


def uniform(
    shape: Sequence[int], generator: torch.Generator | None, device: torch.device
) -> torch.Tensor:
    """U[0, 1) numbers drawn on the generator's device, then moved to `device`."""
    draw_on = generator.device if generator is not None else device
    return torch.rand(*shape, generator=generator, device=draw_on).to(device)


# ---------------------------------------------------------------------- MDM helpers
@dataclasses.dataclass
class MaskedDecoder(Decoder):
    """Shared frame of the MDM decoders: a canvas `prompt MASK ... MASK` of `seq_len`
    ids per prompt, a loop of model calls that fills the masks, answers read after SEP.
    With `known_length` the canvas is `prompt MASK*n EOS PAD ...` (n the answer's length),
    and the masks are filled with answer ids only (`NoEndInside`)."""

    family: ClassVar[str] = "mdm"
    known_length: bool = dataclasses.field(default=False, kw_only=True)

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
        if not prompts:
            return DecodeResult(answers=[], nfe=0, generated=[], row_nfe=[])
        run_on = resolve_device(predict, device)
        lengths = [len(p) for p in prompts]
        if max(lengths) >= seq_len:
            raise ValueError(f"a prompt of {max(lengths)} ids leaves nothing to fill in {seq_len}")
        known = checked_lengths(self.known_length, answer_lengths, prompts, seq_len)
        x_BxL = torch.full((len(prompts), seq_len), mask_id, dtype=torch.long)
        ends = []  # where each row's maskable span stops
        for row, prompt in enumerate(prompts):
            x_BxL[row, : len(prompt)] = torch.tensor(list(prompt), dtype=torch.long)
            end = seq_len if known is None else len(prompt) + known[row]
            x_BxL[row, end:] = PAD_ID
            if end < seq_len:
                x_BxL[row, end] = eos_id
            ends.append(end)
        x_BxL = x_BxL.to(run_on)
        positions_1xL = torch.arange(seq_len, device=run_on)[None, :]
        maskable_BxL = (positions_1xL >= torch.tensor(lengths, device=run_on)[:, None]) & (
            positions_1xL < torch.tensor(ends, device=run_on)[:, None])
        if known is not None:
            predict = NoEndInside(predict, [eos_id, PAD_ID])
        with torch.no_grad():
            x_BxL, nfe, row_nfe = self.denoise(predict, x_BxL, maskable_BxL, generator, mask_id)
        rows = x_BxL.tolist()
        generated = [row[length:] for row, length in zip(rows, lengths)]
        return DecodeResult(
            answers=[cut_at_eos(ids, eos_id) for ids in generated], nfe=nfe,
            generated=generated, row_nfe=row_nfe,
        )

    @abc.abstractmethod
    def denoise(
        self,
        predict: Callable[..., torch.Tensor],
        x_BxL: torch.Tensor,
        maskable_BxL: torch.Tensor,
        generator: torch.Generator | None,
        mask_id: int,
    ) -> tuple[torch.Tensor, int, list[int]]:
        """Fill every maskable position of `x_BxL` (all MASK on entry); return the final
        sequences, the number of `predict` calls and, per row, the calls that included it."""


def log_probs(predict: Callable[..., torch.Tensor], x_BxL: torch.Tensor, mask_id: int) -> torch.Tensor:
    """The model's log-probabilities B x L x V, with MASK's set to -inf (its mass dropped,
    not renormalised).

    MASK itself is never a prediction: it is no answer token (training never targets it)
    and keeping it out guarantees that no MASK is left at the end. The reference does not
    exclude it; a trained model puts no mass there, so its choices are the same.
    """
    logp_BxLxV = torch.log_softmax(predict(x_BxL).float(), dim=-1)
    logp_BxLxV[..., mask_id] = float("-inf")
    return logp_BxLxV


def predict_x0(
    predict: Callable[..., torch.Tensor], x_BxL: torch.Tensor, mask_id: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Most likely token at every position (never MASK) and its log-probability, both B x L."""
    score_BxL, token_BxL = log_probs(predict, x_BxL, mask_id).max(dim=-1)
    return token_BxL, score_BxL


class RevealTrace:
    """`predict` wrapped to record the order in which an MDM decoder reveals positions:

        trace = RevealTrace(objective.predictor(model))
        decoder(trace, prompts, seq_len=L)
        step_BxL = trace.reveal_steps()

    Every call sees the decoder's current canvas, so the calls' inputs replay the whole
    decoding without touching any decoder's loop. It needs every call to see the whole
    batch (`threshold` drops finished rows: decode one prompt at a time there).
    """

    def __init__(self, predict: Callable[..., torch.Tensor], mask_id: int = MASK_ID) -> None:
        self.predict = predict
        self.mask_id = mask_id
        self.masked: list[torch.Tensor] = []  # per call: bool B x L, MASK in its input

    @property
    def device(self) -> torch.device:
        return resolve_device(self.predict, None)

    def __call__(self, x_BxL: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        if self.masked and x_BxL.shape != self.masked[0].shape:
            raise ValueError(
                f"RevealTrace: a call on {tuple(x_BxL.shape)} after {tuple(self.masked[0].shape)}; "
                "the decoder dropped rows, trace one prompt at a time"
            )
        self.masked.append((x_BxL == self.mask_id).cpu())
        return self.predict(x_BxL, *args, **kwargs)

    def reveal_steps(self) -> torch.Tensor:
        """Long B x L: the call (1 = first) whose decision revealed each position for good,
        i.e. the last call whose input still had it masked (decoders leave no MASK at the
        end); 0 where it was never masked (the prompt)."""
        if not self.masked:
            raise ValueError("RevealTrace: no call recorded")
        masked_SxBxL = torch.stack(self.masked)
        calls_Sx1x1 = torch.arange(1, len(self.masked) + 1)[:, None, None]
        return (masked_SxBxL * calls_Sx1x1).amax(dim=0)


# ---------------------------------------------------------------------- registry
_DECODERS: Registry[type[Decoder]] = Registry("decoder", __name__)
register_decoder = _DECODERS.register
decoder_class = _DECODERS.get  # `dataclasses.fields` of the class lists its settings
get_decoder = _DECODERS.build  # defaults, then settings; unknown settings are errors


def decoder_names(family: str | None = None) -> list[str]:
    """All decoder names, or those serving `family` ("ar" / "mdm")."""
    return sorted(n for n, c in _DECODERS.classes().items() if family is None or c.family == family)


def decode_steps(cfg: Config, override: int = 0) -> int:
    """The decoding steps T of a run (decoders with a `steps` setting): `override` (e.g.
    `dvar eval --steps`), else the config's decode.steps, else its diffusion.steps. Every
    caller takes T from here."""
    return override or cfg.decode.steps or cfg.diffusion.steps


# Decoder settings as text (`dvar eval --decoder-arg`; old runs' `decode.args`).
def parse_value(text: str) -> int | float | bool | str:
    """`3` -> 3, `0.5` -> 0.5, `true`/`false` (any case) -> bool, anything else: the text."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(text.lower(), text)


def parse_settings(pairs: Sequence[str], what: str = "--decoder-arg") -> dict[str, int | float | bool | str]:
    """KEY=VALUE items as a settings mapping; `what` names them in errors."""
    settings = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"{what} {pair!r}: expected KEY=VALUE")
        if key in settings:
            raise ConfigError(f"{what} {key} given twice")
        settings[key] = parse_value(value)
    return settings


__all__ = [
    "Decoder",
    "DecodeResult",
    "MaskedDecoder",
    "RevealTrace",
    "log_probs",
    "predict_x0",
    "register_decoder",
    "get_decoder",
    "decoder_class",
    "decoder_names",
    "decode_steps",
    "parse_settings",
    "parse_value",
]
