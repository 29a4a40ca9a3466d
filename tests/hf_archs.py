"""Tiny random causal LMs of every common Hugging Face architecture, built here (no
download): 2 layers, width 64, a character-level tokenizer (the one tests/test_hf.py
builds). Used by tests/test_hf_matrix.py."""

from __future__ import annotations

from pathlib import Path

import torch

import transformers
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers

CHARS = "0123456789+-*/=,abcdefghij"
WIDTH, LAYERS, HEADS = 64, 2, 4
COMMON = dict(hidden_size=WIDTH, intermediate_size=128, num_hidden_layers=LAYERS,
              num_attention_heads=HEADS, max_position_embeddings=128, initializer_range=0.2)
ROPE = dict(COMMON, num_key_value_heads=2, head_dim=WIDTH // HEADS)


def _configs() -> dict[str, tuple[str, dict]]:
    """arch -> (config class name, keyword arguments); token ids are filled in by `build`."""
    return {
        "llama": ("LlamaConfig", ROPE),
        "qwen2": ("Qwen2Config", ROPE),
        "qwen3": ("Qwen3Config", ROPE),
        "mistral": ("MistralConfig", dict(ROPE, sliding_window=None)),
        "gpt2": ("GPT2Config", dict(n_embd=WIDTH, n_layer=LAYERS, n_head=HEADS, n_positions=128,
                                    resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                                    initializer_range=0.2)),
        "gpt_neox": ("GPTNeoXConfig", dict(COMMON, hidden_dropout=0.0, attention_dropout=0.0)),
        "phi3": ("Phi3Config", dict(ROPE, resid_pdrop=0.0, embd_pdrop=0.0, attention_dropout=0.0)),
        "gemma": ("GemmaConfig", ROPE),
        # Gemma2's logits pass through 30 * tanh(x / 30): the test of dvar's logits needs it.
        "gemma2": ("Gemma2Config", dict(ROPE, final_logit_softcapping=30.0, query_pre_attn_scalar=16,
                                        sliding_window=16)),
        "gemma3_text": ("Gemma3TextConfig", dict(ROPE, query_pre_attn_scalar=16, sliding_window=16,
                                                 final_logit_softcapping=30.0)),
        "opt": ("OPTConfig", dict(hidden_size=WIDTH, ffn_dim=128, num_hidden_layers=LAYERS,
                                  num_attention_heads=HEADS, max_position_embeddings=128,
                                  word_embed_proj_dim=WIDTH, dropout=0.0, attention_dropout=0.0,
                                  init_std=0.2)),
        "falcon": ("FalconConfig", dict(hidden_size=WIDTH, num_hidden_layers=LAYERS,
                                        num_attention_heads=HEADS, hidden_dropout=0.0,
                                        attention_dropout=0.0, initializer_range=0.2)),
        "bloom": ("BloomConfig", dict(hidden_size=WIDTH, n_layer=LAYERS, n_head=HEADS,
                                      hidden_dropout=0.0, attention_dropout=0.0,
                                      initializer_range=0.2)),
        # Cohere scales its logits by `logit_scale`, Granite divides by `logits_scaling`.
        "cohere": ("CohereConfig", dict(ROPE, logit_scale=0.5)),
        "granite": ("GraniteConfig", dict(ROPE, logits_scaling=4.0)),
    }


def available() -> list[str]:
    """The architectures the installed transformers offers."""
    return [arch for arch, (name, _) in _configs().items() if hasattr(transformers, name)]


def build(arch: str, directory: Path) -> Path:
    """A random model of `arch` and its tokenizer saved in `directory`. The tokenizer has
    `<unk>`, BOS `<s>`, EOS `</s>` and no PAD or MASK (GPT-2: `<|endoftext|>` for all three,
    as the real one)."""
    gpt2 = arch == "gpt2"
    specials = ["<|endoftext|>"] if gpt2 else ["<unk>", "<s>", "</s>"]
    vocab = {token: i for i, token in enumerate(specials + list(CHARS))}
    core = Tokenizer(models.WordLevel(vocab, unk_token=specials[0]))
    core.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")  # characters
    core.decoder = decoders.Fuse()  # joined without spaces
    bos, eos = (0, 0) if gpt2 else (1, 2)
    tokenizer = transformers.PreTrainedTokenizerFast(
        tokenizer_object=core, unk_token=specials[0], bos_token=specials[bos],
        eos_token=specials[eos])
    name, kwargs = _configs()[arch]
    config = getattr(transformers, name)(vocab_size=len(vocab), bos_token_id=bos, eos_token_id=eos,
                                         pad_token_id=0, **kwargs)
    torch.manual_seed(0)
    model = transformers.AutoModelForCausalLM.from_config(config)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory
