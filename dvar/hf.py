"""Pretrained Hugging Face causal LMs as dvar backbones: `model=hf:PATH`.

PATH is a local directory holding a causal LM and its tokenizer (what
`AutoModelForCausalLM.from_pretrained` / `AutoTokenizer.from_pretrained` read); nothing is
downloaded. The task text goes through that tokenizer, and the model is wrapped so that
objectives and decoders call it exactly like dvar's own `Transformer`:

    tokenizer = HFTokenizer.from_pretrained("models/llama-7b", mask=True)   # mdm: adds a MASK
    model = build_backbone("models/llama-7b", tokenizer, causal=False, lora=LoraConfig(r=16))
    model(ids_BxL)                       # logits B x L x V
    model(ids_BxL, logits_at=mask_BxL)   # N x V at the True entries only

Sequence layout, the same as dvar's `input SEP output EOS PAD...` with these ids:
- BOS first, when the tokenizer has one distinct from its EOS (LLaMA's `<s>`), since the
  pretrained model always saw it at position 0; GPT-2's BOS is its EOS, so none there;
- SEP is the tokenizer's EOS: it ends the prompt the way a document ends in pretraining,
  and needs no new token, so an AR LoRA run leaves the vocabulary and the embeddings as
  they are (its adapter alone is the whole result). The answer starts right after it and
  ends at the next EOS (`decode_answer` reads the generated ids only, never the prompt);
- EOS is the tokenizer's EOS; PAD is its pad token, or EOS if it has none (LLaMA and
  GPT-2 have none), which the MDM objective then learns to put after the answer;
- MASK (mdm only) is the tokenizer's mask token, or a new special token `<|mask|>` added
  to the tokenizer and the embeddings. Its input and output rows start as the mean of the
  existing rows (deterministic, so a LoRA run's frozen base can be rebuilt exactly) and,
  under LoRA, the input row is trained (`peft`'s trainable tokens, saved with the adapter).
Input and output texts are tokenized separately (no special tokens), so an answer's ids
never merge with the prompt's and `decode_answer` gives back the answer text.

Objectives: `ar` keeps the causal attention; `mdm` makes it bidirectional the way
transformers itself offers: `config.is_causal = False` (its mask functions then build a
bidirectional mask, or none at all when nothing is padded) and `is_causal = False` on every
attention module (what SDPA and flash-attention read when no mask is given), so the fast
kernels stay in use and position ids (OPT's, from a 2D mask) and ALiBi (Bloom's) are the
pretrained ones. `build_backbone` checks with one tiny forward that the first position
then sees the second, and otherwise stops with a one-line error naming the architecture.
To reload an MDM run in plain transformers, do the same two settings (docs/hf.md). With
`diffusion.shift` (on by default for hf backbones, SPEC §3) position i's prediction is
read from position i-1, as the causal LM was pretrained.

Logits are the model's own: the causal LM's forward runs whole, so its post-processing of
the head's output (Gemma2's `final_logit_softcapping`, Cohere's `logit_scale`, Granite's
`logits_scaling`) is applied; with `logits_at` the hidden states are gathered just before
the head (a pre-hook), so the head and that elementwise post-processing see N rows only.

Fine-tuning: `lora.r=0` trains every weight; `lora.r>0` wraps the model with a `peft`
LoRA adapter (`lora.alpha`, `lora.dropout`, `lora.target_modules`; empty = peft's default
modules for the architecture, e.g. q_proj,v_proj for LLaMA, c_attn for GPT-2, or
all-linear, said in the log, for one peft has none for, e.g. Phi-3) and trains only the
adapter (and an added MASK row).

A run directory keeps the result under `hf/` in Hugging Face format, with the tokenizer:
the full model (`save_pretrained`) or the LoRA adapter (peft's `save_pretrained`; its
`adapter_config.json` names the base directory). The adapter holds what was trained only:
the LoRA weights and the MASK token's input row (peft's trainable tokens), not the resized
embedding and head, which the loader rebuilds from the base (`_fit_vocabulary`); the log
states its size. Checkpoints hold what training changes only (every weight, or the
adapter), as safetensors.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Iterable
from pathlib import Path
from typing import Any, NamedTuple

import torch
import torch.nn as nn

from dvar.config import ConfigError
from dvar.errors import TextError
from dvar.model import ParameterCount
from dvar.optional import MissingDependency, require
from dvar.tokenizer import SequenceTooLong

PREFIX = "hf:"
RUN_SUBDIR = "hf"  # where a run directory keeps the model (or adapter) and tokenizer
ADDED_MASK_TOKEN = "<|mask|>"


def hf_path(model: str) -> str | None:
    """The directory of `model=hf:PATH`, or None for one of dvar's own sizes."""
    return model[len(PREFIX):] if model.startswith(PREFIX) else None


# ----------------------------------------------------------------------------- tokenizer
class HFTokenizer:
    """A Hugging Face tokenizer with the interface dvar's `CharTokenizer` offers."""

    def __init__(self, tokenizer: Any, mask: bool) -> None:
        if tokenizer.eos_token_id is None:
            raise ConfigError("the tokenizer has no EOS token; dvar needs one (it is also SEP)")
        # True when this tokenizer gained the MASK token here (its embedding row is new).
        self.added_mask = mask and tokenizer.mask_token_id is None
        if self.added_mask:
            tokenizer.add_special_tokens({"mask_token": ADDED_MASK_TOKEN})
        self.tokenizer = tokenizer
        self.eos_id = self.sep_id = int(tokenizer.eos_token_id)
        pad = tokenizer.pad_token_id
        self.pad_id = int(pad) if pad is not None else self.eos_id
        self.mask_id = int(tokenizer.mask_token_id) if mask else None
        bos = tokenizer.bos_token_id
        self.prefix = [int(bos)] if bos is not None and bos != self.eos_id else []
        self.vocab_size = len(tokenizer)
        # Ids that no task text may encode to: a character the tokenizer cannot spell
        # (a SentencePiece model without byte fallback gives <unk>), or a special token.
        self._not_text = {int(t) for t in (tokenizer.unk_token_id, self.eos_id, self.pad_id,
                                           self.mask_id, *self.prefix) if t is not None}

    @classmethod
    def from_pretrained(cls, path: str | Path, mask: bool) -> HFTokenizer:
        transformers = _transformers(path)
        try:
            tokenizer = transformers.AutoTokenizer.from_pretrained(_local(path), local_files_only=True)
        except ImportError as error:  # e.g. a SentencePiece tokenizer without sentencepiece
            first_line = str(error).strip().splitlines()[0] if str(error).strip() else repr(error)
            raise MissingDependency(f"model={PREFIX}{path}: its tokenizer cannot be loaded: "
                                    f"{first_line} (pip install 'dvar[hf]' installs sentencepiece "
                                    "and protobuf)") from None
        return cls(tokenizer, mask)

    def save(self, directory: str | Path) -> None:
        self.tokenizer.save_pretrained(str(directory))

    def encode(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def encode_prompt(self, input: str) -> list[int]:
        """`[BOS] input SEP`: what a decoder starts from."""
        return self.prefix + self.encode(input) + [self.sep_id]

    def encode_example(self, input: str, output: str, cutoff: int, name: str = "") -> list[int]:
        """`[BOS] input SEP output EOS PAD...`, exactly `cutoff` ids.

        A text that encodes to the unknown token (or a special one) is an error naming the
        example: the model would learn <unk>, and its answers could never decode right."""
        prompt = self.encode_prompt(input)
        answer = self.encode(output)
        for part, text, ids in (("input", input, prompt[len(self.prefix):-1]), ("output", output, answer)):
            bad = sorted(self._not_text.intersection(ids))
            if bad:
                raise TextError(
                    f"{name or 'example'}: the tokenizer cannot spell the {part} {text[:60]!r}: it "
                    f"gives {', '.join(self.tokenizer.convert_ids_to_tokens(bad))} (a character "
                    "outside its vocabulary, and no byte fallback?)")
        ids = prompt + answer + [self.eos_id]
        if len(ids) > cutoff:
            raise SequenceTooLong(
                f"{name or 'example'}: needs {len(ids)} tokens (prompt {len(prompt)} with SEP + "
                f"output {len(answer)} + EOS) but the cutoff length is {cutoff}"
            )
        return ids + [self.pad_id] * (cutoff - len(ids))

    def answer_span(self, input: str, output: str) -> tuple[int, int]:
        """(start, end) of `output EOS` in `encode_example`'s row: right after SEP, right
        after EOS."""
        start = len(self.encode_prompt(input))
        return start, start + len(self.encode(output)) + 1

    def decode_answer(self, ids: Iterable[int]) -> str:
        """Text of `ids` up to the first EOS, special and unknown ids dropped; never raises."""
        if hasattr(ids, "tolist"):
            ids = ids.tolist()
        kept = []
        for token in ids:
            token = int(token)
            if token == self.eos_id:
                break
            if 0 <= token < self.vocab_size:
                kept.append(token)
        sentencepiece = getattr(self.tokenizer, "sp_model", None)
        if sentencepiece is not None:
            # A SentencePiece-backed tokenizer (transformers' "slow" LLaMA one): transformers 5
            # joins its pieces as plain text, so a byte-fallback piece stays "<0x63>" instead
            # of "c"; SentencePiece decodes the pieces itself (bytes, "▁" as spaces).
            pieces = self.tokenizer.convert_ids_to_tokens(kept, skip_special_tokens=True)
            text = sentencepiece.decode(pieces)
        else:
            text = self.tokenizer.decode(kept, skip_special_tokens=True,
                                         clean_up_tokenization_spaces=False)
        # Texts are encoded on their own, and a SentencePiece tokenizer (LLaMA's) marks the
        # start of one as a word boundary, which may decode to a leading space.
        return text.strip()

    def decode(self, ids: Iterable[int]) -> str:
        """Every id rendered, specials included (for logs and debugging)."""
        if hasattr(ids, "tolist"):
            ids = ids.tolist()
        return self.tokenizer.decode([int(t) for t in ids], skip_special_tokens=False)


# ----------------------------------------------------------------------------- model
@dataclasses.dataclass
class BackboneInfo:
    path: str  # the pretrained directory
    causal: bool  # what objectives check (`Objective.check_model`)
    lora: bool


class _Keys(NamedTuple):
    missing_keys: list[str]
    unexpected_keys: list[str]


class HFBackbone(nn.Module):
    """A (possibly LoRA-wrapped) causal LM called like `dvar.model.Transformer`."""

    def __init__(self, lm: nn.Module, info: BackboneInfo) -> None:
        super().__init__()
        self.lm = lm  # a PreTrainedModel, or a peft PeftModel around one
        self.config = info
        forward = inspect.signature(self._pretrained().forward).parameters
        # transformers 5 renamed `past_key_values` to `cache`.
        self._cache_arg = "cache" if "cache" in forward else "past_key_values"

    @property
    def causal(self) -> bool:
        return self.config.causal

    @property
    def device(self) -> torch.device:
        return self._pretrained().device

    def _pretrained(self) -> nn.Module:
        """The transformers model (LoRA layers, if any, are injected into it in place)."""
        return self.lm.get_base_model() if self.config.lora else self.lm

    def num_parameters(self) -> ParameterCount:
        total = sum(p.numel() for p in self.parameters())
        embeddings = self._pretrained().get_input_embeddings().weight.numel()
        return ParameterCount(non_embedding=total - embeddings, total=total)

    def new_cache(self) -> _HFCache:
        """An empty KV cache for `forward(..., kv_cache=, start_pos=)` (the AR decoders)."""
        return _HFCache(_transformers(self.config.path).DynamicCache())

    def forward(
        self,
        input_ids_BxL: torch.Tensor,
        logits_at: torch.Tensor | None = None,
        kv_cache: _HFCache | None = None,
        start_pos: int = 0,
    ) -> torch.Tensor:
        """As `Transformer.forward`: logits B x L x V, or N x V at the True entries of
        `logits_at`; with `kv_cache` (from `new_cache`, causal only) the tokens continue
        the cached ones and are appended to the cache."""
        lm = self._pretrained()
        kwargs: dict[str, Any] = {"use_cache": kv_cache is not None}
        if kv_cache is not None:
            if not self.causal:
                raise ValueError("a KV cache is only valid for a causal model")
            if start_pos != kv_cache.length:
                raise ValueError(f"start_pos={start_pos} but the cache holds {kv_cache.length}")
            kwargs[self._cache_arg] = kv_cache.cache
        if logits_at is None:
            return lm(input_ids=input_ids_BxL, **kwargs).logits
        # The head (and the model's elementwise post-processing after it) only where logits
        # are used: its input B x L x D is gathered to N x D.
        handle = lm.get_output_embeddings().register_forward_pre_hook(
            lambda module, args: (args[0][logits_at], *args[1:]))
        try:
            logits_NxV = lm(input_ids=input_ids_BxL, **kwargs).logits
        finally:
            handle.remove()
        return logits_NxV

    # A LoRA run's checkpoints hold the trainable tensors only (the adapter and an added
    # MASK row); the frozen base is re-read from its directory. A full fine-tune holds all.
    def state_dict(self, *, destination: Any = None, prefix: str = "", keep_vars: bool = False):
        state = super().state_dict(destination=destination, prefix=prefix, keep_vars=keep_vars)
        if not self.config.lora:
            return state
        trainable = self._trainable_names(prefix)
        for name in [k for k in state if k.startswith(prefix) and k not in trainable]:
            del state[name]
        return state

    def load_state_dict(self, state: dict[str, torch.Tensor], strict: bool = True, **kwargs: Any):
        if not self.config.lora:
            return super().load_state_dict(state, strict=strict, **kwargs)
        missing, unexpected = super().load_state_dict(state, strict=False, **kwargs)
        trainable = self._trainable_names("")
        keys = _Keys([k for k in missing if k in trainable], list(unexpected))
        if strict and (keys.missing_keys or keys.unexpected_keys):
            raise RuntimeError(f"state does not fit the adapter: {keys}")
        return keys

    def _trainable_names(self, prefix: str) -> set[str]:
        return {prefix + name for name, p in self.named_parameters() if p.requires_grad}

    def save_pretrained(self, directory: str | Path, tokenizer: HFTokenizer) -> None:
        """The model (or adapter) and tokenizer in Hugging Face format. An adapter leaves
        out the resized embedding and head (peft would save them whole after a vocabulary
        resize): the MASK row that was trained is in it as trainable tokens, the rest is
        the base's, rebuilt on loading."""
        if self.config.lora:
            self.lm.save_pretrained(str(directory), save_embedding_layers=False)
        else:
            self.lm.save_pretrained(str(directory))
        tokenizer.save(directory)
        size = sum(f.stat().st_size for f in Path(directory).glob("*.safetensors"))
        print(f"saved the {'LoRA adapter' if self.config.lora else 'model'} in {directory}: "
              f"{size / 1e6:.2f} MB of weights")

    # A run directory's files (dvar.rundir): hf/ holds model (or adapter) and tokenizer.
    def save(self, run_dir: str | Path, tokenizer: HFTokenizer) -> None:
        """The trained model into `run_dir`/hf/ (its presence marks a finished run)."""
        self.save_pretrained(Path(run_dir) / RUN_SUBDIR, tokenizer)

    @property
    def dimensions(self) -> tuple[int, int] | None:
        """(layers, hidden width) from the transformers config, where it names them."""
        config = self._pretrained().config
        layers = getattr(config, "num_hidden_layers", None) or getattr(config, "n_layer", None)
        width = getattr(config, "hidden_size", None) or getattr(config, "n_embd", None)
        return (int(layers), int(width)) if layers and width else None


class _HFCache:
    """A transformers cache with the `length` dvar's decoders read."""

    def __init__(self, cache: Any) -> None:
        self.cache = cache

    @property
    def length(self) -> int:
        return int(self.cache.get_seq_length())


def _transformers(path: str | Path) -> Any:
    """The transformers module, or a one-line MissingDependency naming `model=hf:PATH`."""
    return require("transformers", f"model={PREFIX}{path}")


def _peft(lora: Any) -> Any:
    return require("peft", f"lora.r={lora.r}")


def check_dependencies(path: str, lora: Any) -> None:
    """Fail early (before any data is read) if `model=hf:PATH` lacks transformers, or
    LoRA lacks peft."""
    _transformers(path)
    if lora.r > 0:
        _peft(lora)


def _load_pretrained(path: str | Path, dtype: torch.dtype) -> nn.Module:
    transformers = _transformers(path)
    return transformers.AutoModelForCausalLM.from_pretrained(
        _local(path), dtype=dtype, local_files_only=True)


def _local(path: str | Path) -> str:
    """`path` if it is a directory; never a Hub name, nothing is downloaded."""
    if not Path(path).is_dir():
        raise FileNotFoundError(f"model=hf:{path}: not a local directory (a Hugging Face "
                                "causal LM saved with save_pretrained, with its tokenizer)")
    return str(path)


def _fit_vocabulary(lm: nn.Module, tokenizer: HFTokenizer) -> None:
    """Grow the embeddings to the tokenizer (an added MASK); new rows = mean of the old."""
    old = lm.get_input_embeddings().weight.size(0)
    if tokenizer.vocab_size <= old:
        return
    lm.resize_token_embeddings(tokenizer.vocab_size, mean_resizing=False)
    with torch.no_grad():
        for weight in {id(w): w for w in (lm.get_input_embeddings().weight,
                                           lm.get_output_embeddings().weight)}.values():
            weight[old:] = weight[:old].mean(dim=0)


def _make_bidirectional(lm: nn.Module, path: str | Path) -> None:
    """Full attention in place of the causal one (see the module docstring), checked: the
    first position's output must change with the second token."""
    lm.config.is_causal = False
    for module in lm.modules():
        if hasattr(module, "is_causal"):
            module.is_causal = False
    probe_1x2 = torch.zeros(1, 2, dtype=torch.long, device=lm.device)
    with torch.no_grad():
        first = lm(input_ids=probe_1x2).logits[0, 0]
        probe_1x2[0, 1] = 1
        sees_later = not torch.equal(first, lm(input_ids=probe_1x2).logits[0, 0])
    if not sees_later:
        raise ConfigError(
            f"objective=mdm: model={PREFIX}{path} ({lm.config.model_type}) stays causal with "
            f"is_causal=False (its attention ignores it in transformers "
            f"{_transformers(path).__version__}); it cannot be a bidirectional MDM")


def _peft_default_targets() -> dict[str, Any]:
    """peft's default LoRA target modules, by model type."""
    from peft.utils.constants import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING
    return TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING


def build_backbone(
    path: str | Path,
    tokenizer: HFTokenizer,
    causal: bool,
    lora: Any,
    dtype: torch.dtype = torch.float32,
    cutoff: int = 0,
) -> HFBackbone:
    """The pretrained model at `path`, fitted to `tokenizer`; LoRA-wrapped if `lora.r` > 0.

    `dtype` is the dtype of the weights (fp32 for anything trained; a LoRA run may keep
    its frozen base in bf16, peft keeps the adapter in fp32). `cutoff`: the sequence
    length, checked against the model's position limit."""
    lm = _load_pretrained(path, dtype)
    limit = getattr(lm.config, "max_position_embeddings", None)
    if cutoff and limit and cutoff > limit:
        raise ConfigError(f"data.cutoff={cutoff} exceeds the {limit} positions of {path}")
    if not causal:
        _make_bidirectional(lm, path)
    _fit_vocabulary(lm, tokenizer)
    if lora.r > 0:
        peft = _peft(lora)
        targets = [t.strip() for t in lora.target_modules.split(",") if t.strip()]
        if targets == ["all-linear"]:  # peft's keyword, given as a plain string
            targets = "all-linear"
        if not targets and lm.config.model_type not in _peft_default_targets():
            targets = "all-linear"
            print(f"lora.target_modules: peft has no default for {lm.config.model_type}; "
                  "using all-linear (every linear layer but the output head)")
        lm = peft.get_peft_model(lm, peft.LoraConfig(
            r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
            target_modules=targets or None,  # None: peft's default for the architecture
            trainable_token_indices=[tokenizer.mask_id] if tokenizer.added_mask else None,
        ))
    return HFBackbone(lm, BackboneInfo(str(path), causal, lora.r > 0))



def load_backbone(run_dir: str | Path, path: str, causal: bool, lora: Any,
                  device: str | torch.device = "cpu") -> tuple[HFTokenizer, HFBackbone]:
    """Tokenizer and model of a finished run (its `hf/` directory), in eval mode."""
    check_dependencies(path, lora)
    saved = Path(run_dir) / RUN_SUBDIR
    tokenizer = HFTokenizer.from_pretrained(saved, mask=not causal)
    if lora.r > 0:
        base = _load_pretrained(path, torch.float32)
        if not causal:
            _make_bidirectional(base, path)
        _fit_vocabulary(base, tokenizer)
        lm = _peft(lora).PeftModel.from_pretrained(base, str(saved))
    else:
        lm = _load_pretrained(saved, torch.float32)
        if not causal:
            _make_bidirectional(lm, path)
    model = HFBackbone(lm, BackboneInfo(path, causal, lora.r > 0)).to(device)
    model.eval()
    return tokenizer, model


__all__ = ["HFTokenizer", "HFBackbone", "build_backbone", "load_backbone", "check_dependencies",
           "hf_path", "PREFIX", "RUN_SUBDIR"]
