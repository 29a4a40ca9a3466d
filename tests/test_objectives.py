import math

import pytest
import torch
import torch.nn as nn
from hypothesis import given, settings
from hypothesis import strategies as st

from dvar.model import Transformer, model_config
from dvar.objectives import get_objective, make_batch, objective_class, objective_names
from dvar.objectives.mdm import mask_batch
from dvar.tokenizer import MASK_ID, CharTokenizer

TOK = CharTokenizer()


class FixedLogits(nn.Module):
    """Returns the same known logits B x L x V whatever the input (a stub model)."""

    def __init__(self, logits_BxLxV: torch.Tensor) -> None:
        super().__init__()
        self.logits = logits_BxLxV
        self.weight = nn.Parameter(torch.zeros(()))  # so the loss has a gradient path
        self.calls: list[torch.Tensor | None] = []

    def forward(self, input_ids, logits_at=None):
        self.calls.append(logits_at)
        out = self.logits[:, : input_ids.size(1)] + self.weight
        return out if logits_at is None else out[logits_at]


def cross_entropy(row: list[float], target: int) -> float:
    return math.log(sum(math.exp(v) for v in row)) - row[target]


def sample_batch(seed: int = 0):
    pairs = [("5,1", "5,6"), ("1,2,3", "4"), ("9", "8,7,6")]
    return make_batch([TOK.encode_example(a, b, 12) for a, b in pairs], TOK)


def test_registry():
    assert {"ar", "mdm"} <= set(objective_names())
    assert objective_class("mdm").causal is False and objective_class("ar").causal is True
    assert get_objective("mdm", steps=5).steps == 5
    with pytest.raises(ValueError, match="unknown setting"):
        get_objective("mdm", step=5)
    with pytest.raises(KeyError):
        get_objective("bert")
    with pytest.raises(ValueError):
        get_objective("mdm", time_weighting="cubic")


def test_make_batch_finds_answer_spans():
    batch = sample_batch()
    assert batch["answer_start"].tolist() == [4, 6, 2]
    assert batch["answer_end"].tolist() == [8, 8, 8]
    with pytest.raises(ValueError):
        make_batch([[1, 2, 3], [1, 2]], TOK)


@settings(deadline=None, max_examples=40)
@given(st.integers(0, 2**31 - 1), st.lists(st.integers(1, 10), min_size=1, max_size=6))
def test_masking_never_touches_the_prompt(seed, starts):
    ids = torch.randint(5, 31, (len(starts), 10), generator=torch.Generator().manual_seed(seed))
    start = torch.tensor(starts)
    noisy, masked, t = mask_batch(ids, start, 20, torch.Generator().manual_seed(seed))
    positions = torch.arange(10)[None, :]
    assert not masked[positions < start[:, None]].any()
    assert torch.equal(noisy[~masked], ids[~masked])
    assert torch.all(noisy[masked] == MASK_ID)
    assert t.min() >= 0 and t.max() < 20


def test_masking_rate_follows_schedule_and_seed():
    steps = 10
    ids = torch.randint(5, 31, (4000, 40))
    start = torch.full((4000,), 8)
    noisy, masked, t = mask_batch(ids, start, steps, torch.Generator().manual_seed(1))
    for value in range(steps):
        rows = masked[t == value][:, 8:]
        assert rows.shape[0] > 250  # t is uniform
        assert abs(rows.float().mean().item() - (value + 1) / steps) < 0.02
    again = mask_batch(ids, start, steps, torch.Generator().manual_seed(1))
    assert torch.equal(again[1], masked) and torch.equal(again[2], t)


def test_mdm_loss_matches_hand_computation_all_masked():
    # T = 1: t = 0 always and every maskable position is masked, so the example is
    # fully determined; V = 4, one sequence [9, SEP, 7, EOS, PAD] with answer_start 2.
    logits = torch.tensor(
        [[[0.0, 0, 0, 0], [0, 0, 0, 0], [2.0, -1, 0.5, 0], [0, 1, 0, 3], [1, 0, 0, 0]]]
    )
    ids = torch.tensor([[3, 1, 2, 3, 0]])  # targets at 2..4: 2, 3, 0 (ids < V=4)
    batch = {"input_ids": ids, "answer_start": torch.tensor([2]), "answer_end": torch.tensor([4])}
    ls = [cross_entropy(logits[0, i].tolist(), ids[0, i].item()) for i in (2, 3, 4)]
    for gamma in (1.0, 2.0):
        objective = get_objective("mdm", steps=1, gamma=gamma, mask_id=99)
        expected = sum(0.25 * (1 - math.exp(-l)) ** gamma * l for l in ls) / 3
        loss, stats = objective.loss(FixedLogits(logits), batch, torch.Generator().manual_seed(0))
        assert loss.item() == pytest.approx(expected, rel=1e-6)
        assert stats["tokens"].item() == 3
    plain = get_objective("mdm", steps=1, token_reweighting=False, mask_id=99)
    loss, _ = plain.loss(FixedLogits(logits), batch, torch.Generator().manual_seed(0))
    assert loss.item() == pytest.approx(sum(ls) / 3, rel=1e-6)


@pytest.mark.parametrize("weighting", ["linear", "elbo", "none"])
@pytest.mark.parametrize("shift", [False, True])
def test_mdm_loss_matches_hand_computation(weighting, shift):
    steps, V = 20, 31
    batch = sample_batch()
    logits = torch.randn(3, 12, V, generator=torch.Generator().manual_seed(3))
    objective = get_objective("mdm", steps=steps, time_weighting=weighting, gamma=2.0, shift=shift)
    loss, stats = objective.loss(FixedLogits(logits), batch, torch.Generator().manual_seed(7))
    # Replay the masking with the same seed, then compute by hand.
    _, masked, t = mask_batch(
        batch["input_ids"], batch["answer_start"], steps, torch.Generator().manual_seed(7)
    )
    total, count = 0.0, 0
    for b in range(3):
        w = {"linear": steps - t[b].item(), "elbo": 1 / (t[b].item() + 1), "none": 1.0}[weighting]
        for i in range(12):
            if masked[b, i]:
                source = i - 1 if shift else i
                l = cross_entropy(logits[b, source].tolist(), batch["input_ids"][b, i].item())
                total += w * 0.25 * (1 - math.exp(-l)) ** 2 * l
                count += 1
    assert count > 0 and stats["tokens"].item() == count
    assert loss.item() == pytest.approx(total / count, rel=1e-5)


def test_mdm_shifted_logits_read_the_previous_position():
    logits = torch.randn(2, 6, 5)
    shifted = get_objective("mdm", shift=True).logits(FixedLogits(logits), torch.zeros(2, 6).long())
    assert torch.equal(shifted[:, 1:], logits[:, :-1]) and torch.equal(shifted[:, 0], logits[:, 0])


def test_mdm_loss_with_nothing_masked_is_zero_not_nan():
    batch = sample_batch()
    batch["answer_start"] = torch.full((3,), 12)  # nothing maskable
    loss, stats = get_objective("mdm").loss(FixedLogits(torch.zeros(3, 12, 31)), batch)
    assert loss.item() == 0.0 and stats["tokens"].item() == 0


def test_ar_loss_is_output_and_eos_only():
    batch = sample_batch()
    logits = torch.randn(3, 12, 31, generator=torch.Generator().manual_seed(0))
    stub = FixedLogits(logits)
    loss, stats = get_objective("ar").loss(stub, batch)
    terms = []
    for b in range(3):
        for i in range(batch["answer_start"][b], batch["answer_end"][b]):
            terms.append(cross_entropy(logits[b, i - 1].tolist(), batch["input_ids"][b, i].item()))
    assert stats["tokens"].item() == len(terms) == 4 + 2 + 6
    assert loss.item() == pytest.approx(sum(terms) / len(terms), rel=1e-6)
    assert not stub.calls[0][:, batch["answer_end"].max() - 1 :].any()


def test_ar_loss_ignores_prompt_targets_and_padding_with_a_real_model():
    torch.manual_seed(0)
    model = Transformer(model_config("micro", 31, 12, causal=True))
    batch = sample_batch()
    loss, _ = get_objective("ar").loss(model, batch)
    full = model(batch["input_ids"])
    terms = [
        torch.nn.functional.cross_entropy(full[b, i - 1], batch["input_ids"][b, i]).item()
        for b in range(3)
        for i in range(batch["answer_start"][b], batch["answer_end"][b])
    ]
    assert loss.item() == pytest.approx(sum(terms) / len(terms), rel=1e-5)
    padded = dict(batch, input_ids=batch["input_ids"].clone())
    padded["input_ids"][:, 8:] = 17  # garbage after every EOS changes nothing
    assert get_objective("ar").loss(model, padded)[0].item() == pytest.approx(loss.item(), rel=1e-6)
    loss.backward()
    assert model.wte.weight.grad is not None


def test_objective_refuses_a_model_with_the_wrong_attention():
    bidirectional = Transformer(model_config("micro", 31, 12, causal=False))
    with pytest.raises(ValueError, match="causal"):
        get_objective("ar").loss(bidirectional, sample_batch())
    with pytest.raises(ValueError, match="bidirectional"):
        get_objective("mdm").loss(Transformer(model_config("micro", 31, 12)), sample_batch())
