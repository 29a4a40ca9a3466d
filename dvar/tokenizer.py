"""Character-level tokenizer shared by every task and both objectives.

Ids 0..4 are the specials PAD, SEP, MASK, EOS, UNK (the reference's order, see
HKUNLP/diffusion-vs-ar `src/llmtuner/tuner/core/custom_tokenizer.py`); each character of
`chars` then gets one id, in order. With the default characters there are 31 ids:

    >>> tok = CharTokenizer()
    >>> tok.encode("5,1")
    [10, 20, 6]
    >>> tok.encode_example("5,1", "5,6", cutoff=10)   # input SEP output EOS PAD...
    [10, 20, 6, 1, 10, 20, 11, 3, 0, 0]
    >>> tok.decode_answer([10, 20, 11, 3, 0, 0])
    '5,6'

A training sequence is `input SEP output EOS PAD...`, exactly `cutoff` ids long; one that
does not fit raises `SequenceTooLong` naming the example (never a silent cut, unlike the
reference, which truncated). A prompt is `input SEP`; the model writes the rest.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from typing import Any

from dvar.errors import DvarError, TextError

PAD_ID, SEP_ID, MASK_ID, EOS_ID, UNK_ID = 0, 1, 2, 3, 4
SPECIAL_TOKENS = ("[PAD]", "[SEP]", "[MASK]", "[EOS]", "[UNK]")
DEFAULT_CHARS = "0123456789+-*/=,abcdefghij"


class SequenceTooLong(DvarError, ValueError):
    """An example's `input SEP output EOS` does not fit the cutoff length."""


class CharTokenizer:
    """Maps characters to ids and back; specials first, then `chars` in order."""

    pad_id = PAD_ID
    sep_id = SEP_ID
    mask_id = MASK_ID
    eos_id = EOS_ID
    unk_id = UNK_ID

    def __init__(self, chars: str = DEFAULT_CHARS) -> None:
        if not isinstance(chars, str) or not chars:
            raise ValueError("chars must be a non-empty string")
        repeated = sorted({c for c in chars if chars.count(c) > 1})
        if repeated:
            raise ValueError(f"chars has repeated characters: {repeated}")
        self.chars = chars
        self._id_of = {c: i + len(SPECIAL_TOKENS) for i, c in enumerate(chars)}
        self.vocab_size = len(SPECIAL_TOKENS) + len(chars)

    # ------------------------------------------------------------------ encoding
    def encode(self, text: str) -> list[int]:
        """Ids of `text`, one per character; an unknown character is a ValueError."""
        ids = []
        for index, char in enumerate(text):
            token = self._id_of.get(char)
            if token is None:
                raise TextError(
                    f"character {char!r} (position {index} of {text[:40]!r}) is not in the "
                    f"vocabulary {self.chars!r}"
                )
            ids.append(token)
        return ids

    def encode_prompt(self, input: str) -> list[int]:
        """`input SEP`: what a decoder starts from."""
        return self.encode(input) + [self.sep_id]

    def encode_example(self, input: str, output: str, cutoff: int, name: str = "") -> list[int]:
        """`input SEP output EOS PAD...`, exactly `cutoff` ids.

        `name` (e.g. "train.jsonl:17") prefixes every error so a bad line can be found.
        """
        label = name or "example"
        try:
            input_ids = self.encode(input)
            output_ids = self.encode(output)
        except ValueError as error:
            raise TextError(f"{label}: {error}") from None
        ids = input_ids + [self.sep_id] + output_ids + [self.eos_id]
        if len(ids) > cutoff:
            raise SequenceTooLong(
                f"{label}: needs {len(ids)} tokens (input {len(input_ids)} + SEP + output "
                f"{len(output_ids)} + EOS) but the cutoff length is {cutoff}"
            )
        return ids + [self.pad_id] * (cutoff - len(ids))

    def answer_span(self, input: str, output: str) -> tuple[int, int]:
        """(start, end) of `output EOS` in `encode_example`'s row: right after SEP, right
        after EOS (one id per character, so no encoding needed)."""
        return len(input) + 1, len(input) + 1 + len(output) + 1

    # ------------------------------------------------------------------ decoding
    def decode_answer(self, ids: Iterable[int]) -> str:
        """Characters of `ids` up to the first EOS, specials and unknown ids dropped.

        The result is untrusted model output for a task's `judge`; this never raises.
        """
        if hasattr(ids, "tolist"):  # a tensor or array
            ids = ids.tolist()
        first_char = len(SPECIAL_TOKENS)
        out = []
        for token in ids:
            token = int(token)
            if token == self.eos_id:
                break
            if first_char <= token < self.vocab_size:
                out.append(self.chars[token - first_char])
        return "".join(out)

    def decode(self, ids: Iterable[int]) -> str:
        """Every id rendered, specials as `[SEP]` etc. (for logs and debugging)."""
        if hasattr(ids, "tolist"):
            ids = ids.tolist()
        first_char = len(SPECIAL_TOKENS)
        pieces = []
        for token in ids:
            token = int(token)
            if 0 <= token < first_char:
                pieces.append(SPECIAL_TOKENS[token])
            elif token < self.vocab_size:
                pieces.append(self.chars[token - first_char])
            else:
                pieces.append(f"[{token}?]")
        return "".join(pieces)

    # ------------------------------------------------------------------ building / saving
    def with_chars(self, texts: Iterable[str]) -> CharTokenizer:
        """A tokenizer that also knows every character of `texts` (new ones appended
        in order of first appearance, so existing ids keep their meaning)."""
        chars = self.chars
        for text in texts:
            for char in text:
                if char not in chars:
                    chars += char
        return self if chars == self.chars else CharTokenizer(chars)

    def to_dict(self) -> dict[str, Any]:
        return {"type": "char", "chars": self.chars, "specials": list(SPECIAL_TOKENS)}

    def save(self, path: str | os.PathLike) -> None:
        with open(path, "w", encoding="utf-8") as handle:
            json.dump(self.to_dict(), handle, ensure_ascii=False, indent=2)
            handle.write("\n")

    @classmethod
    def load(cls, path: str | os.PathLike) -> CharTokenizer:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
        return cls.from_dict(data, source=str(path))

    @classmethod
    def from_dict(cls, data: Any, source: str = "tokenizer") -> CharTokenizer:
        if not isinstance(data, dict) or data.get("type") != "char":
            raise ValueError(f'{source}: expected {{"type": "char", "chars": ...}}')
        specials = data.get("specials", list(SPECIAL_TOKENS))
        if list(specials) != list(SPECIAL_TOKENS):
            raise ValueError(f"{source}: special tokens {specials} differ from {SPECIAL_TOKENS}")
        chars = data.get("chars")
        if not isinstance(chars, str):
            raise ValueError(f'{source}: "chars" must be a string')
        return cls(chars)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CharTokenizer) and other.chars == self.chars

    def __hash__(self) -> int:
        return hash(self.chars)

    def __repr__(self) -> str:
        return f"CharTokenizer(chars={self.chars!r})"


__all__ = [
    "CharTokenizer",
    "SequenceTooLong",
    "DEFAULT_CHARS",
    "SPECIAL_TOKENS",
    "PAD_ID",
    "SEP_ID",
    "MASK_ID",
    "EOS_ID",
    "UNK_ID",
]
