"""The GPT-2-style transformer that both objectives train (it knows nothing about masking).

Layout as in GPT-2 / nanoGPT: learned token + absolute position embeddings, pre-LayerNorm
blocks (attention, then a 4x GELU MLP), a final LayerNorm and an output head tied to the
token embeddings. `positions="rope"` replaces the learned absolute positions with rotary
embeddings on queries and keys (Su et al. 2021): attention then sees relative offsets
directly, which makes position-based lookups (copy the token k places back) easy to learn;
`"learned+rope"` keeps both (absolute positions still matter where the structure is
absolute, e.g. a Sudoku cell's row, column and box). One flag, `causal`, switches between the AR model and the bidirectional
MDM denoiser (the reference removes GPT-2's causal mask the same way, see
HKUNLP/diffusion-vs-ar `src/llmtuner/tuner/mdm/model.py`).

    >>> config = model_config("micro", vocab_size=31, block_size=16)
    >>> model = Transformer(config)
    >>> model(torch.zeros(2, 16, dtype=torch.long)).shape       # B x L x V
    torch.Size([2, 16, 31])

Shapes in names: B batch, L sequence, H heads, K head width, D model width, V vocab,
N selected positions.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any, NamedTuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from dvar.config import ConfigError


POSITIONS = ("learned", "rope", "learned+rope")


@dataclasses.dataclass
class ModelConfig:
    vocab_size: int
    block_size: int  # longest sequence (learned position embeddings)
    n_layer: int
    n_head: int
    n_embd: int
    dropout: float = 0.0
    causal: bool = True
    bias: bool = True
    positions: str = "learned"  # "learned" (GPT-2), "rope" (rotary) or "learned+rope" (both)
    rope_base: float = 10000.0
    grid: int = 0  # N > 0: learned positions initialised for `N x N grid SEP N x N grid` (grid_positions)

    def __post_init__(self) -> None:
        if self.positions not in POSITIONS:
            raise ConfigError(f"positions must be one of {POSITIONS}, got {self.positions!r}")
        if self.grid:
            if "learned" not in self.positions:
                raise ConfigError(f"grid={self.grid} structures learned positions; positions is {self.positions!r}")
            if self.grid < 0 or math.isqrt(self.grid) ** 2 != self.grid:
                raise ConfigError(f"grid must be a square side length (4, 9, ...), got {self.grid}")
            if self.block_size < 2 * self.grid**2 + 1:
                raise ConfigError(f"grid={self.grid} needs {2 * self.grid**2 + 1} positions, "
                                  f"block_size is {self.block_size}")
        if "rope" in self.positions and (self.n_embd // self.n_head) % 2:
            raise ConfigError("rotary positions need an even head width")
        if self.n_embd % self.n_head:
            raise ConfigError(f"n_embd={self.n_embd} is not divisible by n_head={self.n_head}")
        for name in ("vocab_size", "block_size", "n_layer", "n_head", "n_embd"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be positive, got {getattr(self, name)}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"dropout must be in [0, 1), got {self.dropout}")


# Named sizes. tiny/base/medium are the reference's model_config_tiny / model_config /
# model_config_medium (~6M / ~85M / ~303M parameters); micro and mini are for CPU runs.
SIZES: dict[str, dict[str, int]] = {
    "micro": dict(n_layer=2, n_embd=64, n_head=2),
    "mini": dict(n_layer=2, n_embd=128, n_head=4),
    "tiny": dict(n_layer=3, n_embd=384, n_head=12),
    "base": dict(n_layer=12, n_embd=768, n_head=12),
    "medium": dict(n_layer=24, n_embd=1024, n_head=16),
}


def model_config(size: str, vocab_size: int, block_size: int, **overrides: Any) -> ModelConfig:
    """The named `size` for this vocabulary and length, then `overrides` (e.g. causal=False,
    or n_layer=4 to reshape the size; a shape override of 0 keeps the size's value, as
    the run config's arch.n_layer / n_embd / n_head do)."""
    if size not in SIZES:
        raise KeyError(f"unknown model size {size!r}; known sizes: {', '.join(SIZES)}")
    known = {f.name for f in dataclasses.fields(ModelConfig)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ValueError(f"unknown model setting(s) {unknown}; known: {sorted(known)}")
    overrides = {k: v for k, v in overrides.items() if not (k in SIZES[size] and v == 0)}
    settings = {**SIZES[size], "vocab_size": vocab_size, "block_size": block_size, **overrides}
    return ModelConfig(**settings)


def grid_positions(config: ModelConfig) -> torch.Tensor:
    """Initial learned positions (block_size x n_embd) for a sequence that is an N x N grid,
    one separator, then another N x N grid, one token per cell row by row (Sudoku's
    `input SEP output`, N = config.grid): a cell's vector is the sum of random vectors for
    its row, its column, its box (the same in both grids) and its grid, so that cells that
    share a row, column or box start out alike, which attention can use from the first step.
    The separator and every later position keep independent vectors. Each part has std
    0.01, so a cell's vector has GPT-2's 0.02 (`Transformer._init_weights`)."""
    n, box, width = config.grid, math.isqrt(config.grid), config.n_embd

    def parts(count: int) -> torch.Tensor:
        return torch.randn(count, width) * 0.01

    rows, cols, boxes, grids = parts(n), parts(n), parts(n), parts(2)
    cell = torch.arange(n * n)
    row, col = cell // n, cell % n
    shared = rows[row] + cols[col] + boxes[(row // box) * box + col // box]
    table = torch.randn(config.block_size, width) * 0.02
    table[: n * n] = shared + grids[0]
    table[n * n + 1 : 2 * n * n + 1] = shared + grids[1]
    return table


class KVCache:
    """Keys and values of every layer for the tokens seen so far (causal decoding only).

    Pass the same object to successive `Transformer.forward(..., kv_cache=cache,
    start_pos=cache.length)` calls; each call appends its tokens.
    """

    def __init__(self) -> None:
        self.keys: list[torch.Tensor] = []  # per layer, B x H x length x K
        self.values: list[torch.Tensor] = []

    @property
    def length(self) -> int:
        return self.keys[0].size(2) if self.keys else 0

    def append(
        self, layer: int, k_BxHxLxK: torch.Tensor, v_BxHxLxK: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Store this layer's new keys/values; return all of them (past + new)."""
        if layer == len(self.keys):
            self.keys.append(k_BxHxLxK)
            self.values.append(v_BxHxLxK)
        else:
            self.keys[layer] = torch.cat([self.keys[layer], k_BxHxLxK], dim=2)
            self.values[layer] = torch.cat([self.values[layer], v_BxHxLxK], dim=2)
        return self.keys[layer], self.values[layer]


def rotary_tables(
    positions_L: torch.Tensor, head_width: int, base: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin, each L x K, for rotating pairs (i, i + K/2) of a head's features."""
    inv_freq_K2 = 1.0 / base ** (
        torch.arange(0, head_width, 2, device=positions_L.device, dtype=torch.float32) / head_width
    )
    angles_LxK2 = positions_L.float()[:, None] * inv_freq_K2[None, :]
    angles_LxK = torch.cat([angles_LxK2, angles_LxK2], dim=-1)
    return angles_LxK.cos(), angles_LxK.sin()


def apply_rotary(x_BxHxLxK: torch.Tensor, cos_LxK: torch.Tensor, sin_LxK: torch.Tensor) -> torch.Tensor:
    half = x_BxHxLxK.size(-1) // 2
    rotated = torch.cat([-x_BxHxLxK[..., half:], x_BxHxLxK[..., :half]], dim=-1)
    return (x_BxHxLxK * cos_LxK + rotated * sin_LxK).to(x_BxHxLxK.dtype)


def attention(
    q_BxHxLxK: torch.Tensor,
    k_BxHxSxK: torch.Tensor,
    v_BxHxSxK: torch.Tensor,
    mask_LxS: torch.Tensor | None = None,
    is_causal: bool = False,
    dropout: float = 0.0,
) -> torch.Tensor:
    """softmax(q k^T / sqrt(K)) v, B x H x L x K, by the fastest path for the device and
    dtype: bf16 on a CPU by plain matrix products (`attention_by_matmul`), everything else
    by PyTorch's fused SDPA. `mask_LxS` (bool, True = may attend) and `is_causal` (aligned
    top-left) are exclusive."""
    if q_BxHxLxK.device.type == "cpu" and q_BxHxLxK.dtype == torch.bfloat16:
        return attention_by_matmul(q_BxHxLxK, k_BxHxSxK, v_BxHxSxK, mask_LxS, is_causal, dropout)
    return F.scaled_dot_product_attention(
        q_BxHxLxK, k_BxHxSxK, v_BxHxSxK, attn_mask=mask_LxS, dropout_p=dropout, is_causal=is_causal
    )


def attention_by_matmul(
    q_BxHxLxK: torch.Tensor,
    k_BxHxSxK: torch.Tensor,
    v_BxHxSxK: torch.Tensor,
    mask_LxS: torch.Tensor | None = None,
    is_causal: bool = False,
    dropout: float = 0.0,
) -> torch.Tensor:
    """Attention as two batched matrix products in the inputs' dtype.

    Why: on a CPU with bf16 matrix units (Intel AMX) the products run on those units,
    while PyTorch's CPU flash-attention kernel (SDPA's default there) is slow in bf16,
    above all its backward (measured with benchmarks/train_throughput.py --levers). The
    scale and the mask (an additive -inf bias) ride on the first product (`baddbmm`), so
    no extra pass over the L x S scores; softmax accumulates in fp32 internally, its
    result is rounded to the inputs' dtype.
    """
    B, H, L, K = q_BxHxLxK.shape
    S = k_BxHxSxK.size(-2)
    q_NxLxK = q_BxHxLxK.reshape(B * H, L, K)  # N = B*H
    k_NxSxK = k_BxHxSxK.reshape(B * H, S, K)
    if is_causal:
        mask_LxS = torch.ones(L, S, dtype=torch.bool, device=q_BxHxLxK.device).tril()
    if mask_LxS is None:
        bias, beta = q_NxLxK.new_zeros(1, 1, 1), 0.0
    else:
        bias, beta = q_NxLxK.new_zeros(1, L, S).masked_fill(~mask_LxS, float("-inf")), 1.0
    scores_NxLxS = torch.baddbmm(bias.expand(B * H, L, S), q_NxLxK, k_NxSxK.transpose(1, 2),
                                 beta=beta, alpha=1.0 / math.sqrt(K))
    weights_NxLxS = torch.softmax(scores_NxLxS, dim=-1)
    if dropout > 0:
        weights_NxLxS = F.dropout(weights_NxLxS, p=dropout)
    return (weights_NxLxS @ v_BxHxSxK.reshape(B * H, S, K)).view(B, H, L, K)


class SelfAttention(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.n_head = config.n_head
        self.causal = config.causal
        self.dropout = config.dropout
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.resid_dropout = nn.Dropout(config.dropout)

    def forward(
        self,
        x_BxLxD: torch.Tensor,
        kv_cache: KVCache | None = None,
        layer: int = 0,
        rotary: tuple[torch.Tensor, torch.Tensor] | None = None,
        keep: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """B x L x D, or N x D at the True entries of `keep` (bool B x L)."""
        B, L, D = x_BxLxD.shape
        q_BxLxD, k_BxLxD, v_BxLxD = self.c_attn(x_BxLxD).split(D, dim=2)
        q_BxHxLxK = q_BxLxD.view(B, L, self.n_head, D // self.n_head).transpose(1, 2)
        k_BxHxSxK = k_BxLxD.view(B, L, self.n_head, D // self.n_head).transpose(1, 2)
        v_BxHxSxK = v_BxLxD.view(B, L, self.n_head, D // self.n_head).transpose(1, 2)
        if rotary is not None:  # keys are cached already rotated
            q_BxHxLxK = apply_rotary(q_BxHxLxK, *rotary)
            k_BxHxSxK = apply_rotary(k_BxHxSxK, *rotary)

        mask_LxS = None
        is_causal = self.causal
        if kv_cache is not None:
            k_BxHxSxK, v_BxHxSxK = kv_cache.append(layer, k_BxHxSxK, v_BxHxSxK)
            past = k_BxHxSxK.size(2) - L
            if past > 0:
                # SDPA's is_causal aligns the mask top-left, which is wrong once keys
                # outnumber queries; one new token may see everything, several need an
                # explicit bottom-right-aligned mask (decoding only, never in training).
                is_causal = False
                if L > 1:
                    mask_LxS = torch.ones(
                        L, past + L, dtype=torch.bool, device=x_BxLxD.device
                    ).tril(diagonal=past)

        y_BxHxLxK = attention(
            q_BxHxLxK, k_BxHxSxK, v_BxHxSxK, mask_LxS, is_causal,
            self.dropout if self.training else 0.0,
        )
        y_BxLxD = y_BxHxLxK.transpose(1, 2).contiguous().view(B, L, D)
        if keep is not None:
            return self.resid_dropout(self.c_proj(y_BxLxD[keep]))  # N x D
        return self.resid_dropout(self.c_proj(y_BxLxD))


class MLP(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)
        # GPT-2's "gelu_new" is the tanh approximation.
        self.gelu = nn.GELU(approximate="tanh")
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x_BxLxD: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.c_proj(self.gelu(self.c_fc(x_BxLxD))))


class Block(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.attn = SelfAttention(config)
        self.ln_2 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.mlp = MLP(config)

    def forward(
        self,
        x_BxLxD: torch.Tensor,
        kv_cache: KVCache | None = None,
        layer: int = 0,
        rotary: tuple[torch.Tensor, torch.Tensor] | None = None,
        keep: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """B x L x D, or N x D at the True entries of `keep` (bool B x L): every position
        still serves as a key and value, but only the kept ones get the output projection,
        the residual and the MLP."""
        attended = self.attn(self.ln_1(x_BxLxD), kv_cache, layer, rotary, keep)
        if keep is not None:
            x_BxLxD = x_BxLxD[keep]  # N x D from here on
        x_BxLxD = x_BxLxD + attended
        return x_BxLxD + self.mlp(self.ln_2(x_BxLxD))


class ParameterCount(NamedTuple):
    non_embedding: int  # without token and position embeddings (the head is tied to them)
    total: int


class Transformer(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.wte = nn.Embedding(config.vocab_size, config.n_embd)
        learned = "learned" in config.positions
        self.wpe = nn.Embedding(config.block_size, config.n_embd) if learned else None
        self.rotary = "rope" in config.positions
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layer))
        self.ln_f = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.lm_head.weight = self.wte.weight  # tied, as in GPT-2

        self.apply(self._init_weights)
        if config.grid:
            with torch.no_grad():
                self.wpe.weight.copy_(grid_positions(config))
        # GPT-2: residual projections scaled by 1/sqrt(2 * n_layer) so that the residual
        # stream's variance does not grow with depth.
        for name, param in self.named_parameters():
            if name.endswith("c_proj.weight"):
                nn.init.normal_(param, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    @property
    def device(self) -> torch.device:
        return self.wte.weight.device

    def num_parameters(self) -> ParameterCount:
        total = sum(p.numel() for p in self.parameters())  # the tied head counts once
        embeddings = self.wte.weight.numel() + (self.wpe.weight.numel() if self.wpe is not None else 0)
        return ParameterCount(non_embedding=total - embeddings, total=total)

    @property
    def dimensions(self) -> tuple[int, int]:
        """(layers, residual width): what the attention term of a FLOP count needs."""
        return self.config.n_layer, self.config.n_embd

    # A run directory's files (dvar.rundir): vocab.json, model.json, model.safetensors.
    def save(self, run_dir: str | Path, tokenizer: Any) -> None:
        """The trained model into `run_dir`: the tokenizer, the shape, then the weights
        (written last and atomically: their presence marks a finished run)."""
        from dvar.checkpoint import save_weights

        run_dir = Path(run_dir)
        tokenizer.save(run_dir / "vocab.json")
        (run_dir / "model.json").write_text(json.dumps(dataclasses.asdict(self.config), indent=2) + "\n")
        save_weights(self, run_dir / "model.safetensors")

    @classmethod
    def load(cls, run_dir: str | Path, device: str | torch.device = "cpu") -> Transformer:
        """The model `save` wrote (model.json + model.safetensors), in eval mode."""
        from dvar.checkpoint import load_weights

        run_dir = Path(run_dir)
        model = cls(ModelConfig(**json.loads((run_dir / "model.json").read_text()))).to(device)
        load_weights(model, run_dir / "model.safetensors")
        model.eval()
        return model

    def forward(
        self,
        input_ids_BxL: torch.Tensor,
        logits_at: torch.Tensor | None = None,
        kv_cache: KVCache | None = None,
        start_pos: int = 0,
    ) -> torch.Tensor:
        """Logits B x L x V, or N x V at the True entries of `logits_at` (bool B x L,
        row-major order) so that unused positions never pay for the output head.

        With `kv_cache` (causal models only) the tokens are positions `start_pos ..` of
        sequences whose earlier tokens are in the cache; they are appended to it.
        """
        B, L = input_ids_BxL.shape
        if kv_cache is not None:
            if not self.config.causal:
                raise ValueError("a KV cache is only valid for a causal model")
            if start_pos != kv_cache.length:
                raise ValueError(f"start_pos={start_pos} but the cache holds {kv_cache.length}")
        if start_pos + L > self.config.block_size:
            raise ValueError(
                f"sequence of {start_pos + L} tokens exceeds block_size={self.config.block_size}"
            )
        positions_L = torch.arange(start_pos, start_pos + L, device=input_ids_BxL.device)
        h_BxLxD = self.wte(input_ids_BxL)
        rotary = None
        if self.wpe is not None:
            h_BxLxD = h_BxLxD + self.wpe(positions_L)
        if self.rotary:
            config = self.config
            rotary = rotary_tables(positions_L, config.n_embd // config.n_head, config.rope_base)
        h_BxLxD = self.drop(h_BxLxD)
        last = len(self.blocks) - 1
        for layer, block in enumerate(self.blocks):
            # Positions nobody reads need keys and values in every layer, but the last
            # layer's projection and MLP only where logits are asked for: for an MDM step
            # (about a quarter of the positions masked) that is most of the last layer.
            keep = logits_at if layer == last else None
            h_BxLxD = block(h_BxLxD, kv_cache, layer, rotary, keep)
        return self.lm_head(self.ln_f(h_BxLxD))  # B x L x V, or N x V at logits_at


__all__ = [
    "ModelConfig",
    "SIZES",
    "model_config",
    "KVCache",
    "Transformer",
    "attention",
    "attention_by_matmul",
    "ParameterCount",
]
