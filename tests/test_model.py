import math
import time

import pytest
import torch

from dvar.model import KVCache, ModelConfig, Transformer, attention, attention_by_matmul, model_config

V, L = 31, 12


def make_model(causal: bool, seed: int = 0, **overrides) -> Transformer:
    torch.manual_seed(seed)
    return Transformer(model_config("micro", V, 16, causal=causal, **overrides)).eval()


def embedding_grads(model: Transformer, ids, position: int) -> torch.Tensor:
    """|d logits[:, position] / d embeddings| per input position, B x L."""
    captured = {}

    def keep(module, inputs, output):
        output.retain_grad()
        captured["emb"] = output

    handle = model.wte.register_forward_hook(keep)
    logits = model(ids)
    handle.remove()
    logits[:, position].sum().backward()
    return captured["emb"].grad.abs().sum(-1)


@pytest.mark.parametrize("positions", ["learned", "rope"])
def test_causal_model_never_sees_the_future(positions):
    model = make_model(causal=True, positions=positions)
    ids = torch.randint(0, V, (2, L))
    for position in (0, 5, L - 1):
        grads = embedding_grads(model, ids, position)
        assert torch.all(grads[:, position + 1 :] == 0)
        assert torch.all(grads[:, : position + 1] > 0)


@pytest.mark.parametrize("positions", ["learned", "rope"])
def test_bidirectional_model_sees_everything(positions):
    model = make_model(causal=False, positions=positions)
    ids = torch.randint(0, V, (2, L))
    grads = embedding_grads(model, ids, 3)
    assert torch.all(grads > 0)


@pytest.mark.parametrize("causal", [True, False])
def test_logits_at_equals_indexing(causal):
    model = make_model(causal)
    ids = torch.randint(0, V, (3, L))
    at = torch.rand(3, L) < 0.4
    full = model(ids)
    assert torch.allclose(model(ids, logits_at=at), full[at], atol=1e-6)
    assert model(ids, logits_at=at).shape == (int(at.sum()), V)


def test_kv_cache_equals_full_recomputation():
    model = make_model(causal=True)
    ids = torch.randint(0, V, (2, L))
    full = model(ids)
    cache = KVCache()
    pieces = [model(ids[:, :4], kv_cache=cache, start_pos=0)]
    for p in range(4, 7):  # one token at a time
        pieces.append(model(ids[:, p : p + 1], kv_cache=cache, start_pos=p))
    pieces.append(model(ids[:, 7:], kv_cache=cache, start_pos=7))  # a chunk after a past
    assert cache.length == L
    assert torch.allclose(torch.cat(pieces, dim=1), full, atol=1e-5)


def test_kv_cache_misuse_is_an_error():
    with pytest.raises(ValueError, match="causal"):
        make_model(causal=False)(torch.zeros(1, 3, dtype=torch.long), kv_cache=KVCache())
    model = make_model(causal=True)
    cache = KVCache()
    model(torch.zeros(1, 3, dtype=torch.long), kv_cache=cache)
    with pytest.raises(ValueError, match="start_pos"):
        model(torch.zeros(1, 1, dtype=torch.long), kv_cache=cache, start_pos=5)
    with pytest.raises(ValueError, match="block_size"):
        model(torch.zeros(1, 17, dtype=torch.long))


def test_sizes_and_parameter_counts():
    tiny = Transformer(model_config("tiny", 31, 164))
    counts = tiny.num_parameters()
    assert 5.0e6 < counts.non_embedding < 5.5e6  # "~6M" in the paper (1024 positions)
    assert counts.total == counts.non_embedding + 31 * 384 + 164 * 384  # head tied
    assert tiny.lm_head.weight is tiny.wte.weight
    assert len(tiny.blocks) == 3 and tiny.blocks[0].attn.n_head == 12
    with pytest.raises(ValueError, match="unknown"):
        model_config("tiny", 31, 164, n_layers=2)
    with pytest.raises(KeyError):
        model_config("huge", 31, 164)
    with pytest.raises(ValueError):
        ModelConfig(vocab_size=31, block_size=8, n_layer=1, n_head=3, n_embd=64)


def test_gpt2_init_scales_residual_projections():
    model = Transformer(model_config("mini", 31, 16, n_layer=8))
    proj = torch.cat([b.attn.c_proj.weight.flatten() for b in model.blocks])
    fc = torch.cat([b.mlp.c_fc.weight.flatten() for b in model.blocks])
    assert abs(proj.std().item() - 0.02 / math.sqrt(16)) < 1e-3
    assert abs(fc.std().item() - 0.02) < 1e-3
    assert torch.all(model.blocks[0].attn.c_attn.bias == 0)


def test_dropout_is_a_setting():
    model = make_model(causal=False, dropout=0.5)
    ids = torch.randint(0, V, (2, L))
    model.train()
    assert not torch.equal(model(ids), model(ids))
    model.eval()
    assert torch.equal(model(ids), model(ids))


@pytest.mark.slow
def test_report_tiny_mdm_throughput():
    """Forward+backward tokens/s of `tiny` at L=164, batch 64, MDM objective (prints)."""
    from dvar.objectives import get_objective

    objective = get_objective("mdm")
    model = Transformer(model_config("tiny", 31, 164, causal=False)).train()
    batch = {
        "input_ids": torch.randint(5, 31, (64, 164)),
        "answer_start": torch.full((64,), 82),
        "answer_end": torch.full((64,), 164),
    }
    generator = torch.Generator().manual_seed(0)
    objective.loss(model, batch, generator)[0].backward()  # warm-up
    start, repeats = time.perf_counter(), 3
    for _ in range(repeats):
        model.zero_grad(set_to_none=True)
        objective.loss(model, batch, generator)[0].backward()
    seconds = (time.perf_counter() - start) / repeats
    print(f"tiny mdm fwd+bwd: {64 * 164 / seconds:.0f} tokens/s ({seconds:.2f} s/step)")


def test_rotary_positions_are_relative_and_work_with_the_cache():
    torch.manual_seed(0)
    for causal in (True, False):
        model = Transformer(model_config("micro", 31, 16, positions="rope", causal=causal)).eval()
        assert model.wpe is None
        x = torch.randint(5, 31, (2, 10))
        # Only offsets matter: the same tokens placed 3 positions later give the same logits.
        torch.testing.assert_close(model(x, start_pos=3), model(x), rtol=1e-4, atol=1e-5)
    learned = Transformer(model_config("micro", 31, 16)).eval()
    assert not torch.allclose(learned(x, start_pos=3), learned(x))
    model = Transformer(model_config("micro", 31, 16, positions="rope")).eval()
    cache = KVCache()
    steps = [model(x[:, :4], kv_cache=cache, start_pos=0)]
    for i in range(4, 10):
        steps.append(model(x[:, i : i + 1], kv_cache=cache, start_pos=i))
    torch.testing.assert_close(torch.cat(steps, dim=1), model(x), rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="positions"):
        model_config("micro", 31, 16, positions="alibi")


def sdpa(q, k, v, mask=None, is_causal=False):
    return torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=is_causal)


@pytest.mark.parametrize("case", ["bidirectional", "causal", "cache mask"])
def test_attention_paths_agree(case):
    """attention_by_matmul computes SDPA's function: exactly enough in fp32, and within
    bf16 rounding in bf16 (both against an fp32 reference)."""
    torch.manual_seed(0)
    q = torch.randn(2, 3, 5, 8)
    k, v = torch.randn(2, 3, 9, 8), torch.randn(2, 3, 9, 8)
    mask, is_causal = None, False
    if case == "causal":
        k, v, is_causal = k[:, :, :5], v[:, :, :5], True
    if case == "cache mask":  # 4 past keys, then the 5 new tokens causally (bottom-right)
        mask = torch.ones(5, 9, dtype=torch.bool).tril(diagonal=4)
    reference = sdpa(q, k, v, mask, is_causal)
    torch.testing.assert_close(attention_by_matmul(q, k, v, mask, is_causal), reference,
                               rtol=1e-5, atol=1e-5)
    half = [t.bfloat16() for t in (q, k, v)]
    for path in (attention_by_matmul, attention):  # attention: bf16 on a CPU takes matmul
        out = path(*half, mask, is_causal)
        assert out.dtype == torch.bfloat16
        torch.testing.assert_close(out.float(), reference, rtol=0, atol=0.05)


@pytest.mark.parametrize("causal", [True, False])
def test_bf16_model_agrees_with_fp32(causal):
    """The whole model under bf16 autocast (the matmul attention path) gives fp32's logits
    within bf16 rounding, and the KV cache gives what full recomputation does in bf16."""
    model = make_model(causal)
    ids = torch.randint(0, V, (2, L))
    full = model(ids)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        half = model(ids)
        if causal:
            cache = KVCache()
            pieces = [model(ids[:, :4], kv_cache=cache, start_pos=0)]
            pieces += [model(ids[:, p : p + 1], kv_cache=cache, start_pos=p) for p in range(4, 7)]
            pieces.append(model(ids[:, 7:], kv_cache=cache, start_pos=7))
            torch.testing.assert_close(torch.cat(pieces, dim=1).float(), half.float(),
                                       rtol=0, atol=0.02)
    assert half.dtype == torch.bfloat16
    torch.testing.assert_close(half.float(), full.detach(), rtol=0, atol=0.02)  # logits ~1


def test_grid_positions_share_row_column_and_box_parts():
    """arch.grid: the learned positions of `9x9 SEP 9x9` start as sums of a row, a column, a
    box and a grid vector: the 81 cells of a grid span at most 9 + 9 + 9 + 1 directions (an
    unstructured table spans 81), and the two grids differ by one constant vector."""
    torch.manual_seed(0)
    config = model_config("mini", vocab_size=16, block_size=164, positions="learned+rope", grid=9)
    table = Transformer(config).wpe.weight.detach()
    first, second = table[:81], table[82:163]
    plain = Transformer(model_config("mini", vocab_size=16, block_size=164)).wpe.weight.detach()
    assert torch.linalg.matrix_rank(first) <= 28 < torch.linalg.matrix_rank(plain[:81]) == 81
    assert torch.allclose(second - first, (second - first)[:1].expand(81, -1), atol=1e-6)
    # cells 0 and 1 share a row and a box, cells 0 and 80 nothing: the first pair starts closer
    shared = torch.stack([torch.nn.functional.cosine_similarity(table[a], table[b], dim=0)
                          for a, b in ((0, 1), (0, 9), (0, 10))])
    assert (shared > torch.nn.functional.cosine_similarity(table[0], table[80], dim=0)).all()
    assert 0.015 < table[:81].std().item() < 0.025  # GPT-2's scale


@pytest.mark.parametrize("settings, message", [
    (dict(positions="rope", grid=9), "structures learned positions"),
    (dict(grid=8), "square side length"),
    (dict(grid=9, block_size=100), "needs 163 positions"),
])
def test_grid_positions_refuse_what_they_cannot_structure(settings, message):
    from dvar.config import ConfigError

    with pytest.raises(ConfigError, match=message):
        model_config("mini", vocab_size=16, **{"block_size": 164, **settings})
