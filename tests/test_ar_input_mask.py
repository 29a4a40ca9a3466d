"""AR input corruption (`ar.input_mask`): MASK on answer-side inputs in training, clean
targets, the prompt untouched unless asked, rate 0 today's AR bit for bit."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
from hypothesis import given, settings
from hypothesis import strategies as st

from dvar.config import ConfigError, load_config
from dvar.model import Transformer, model_config
from dvar.objectives import get_objective, make_batch
from dvar.objectives.ar import Autoregressive
from dvar.tokenizer import MASK_ID, CharTokenizer

TOK = CharTokenizer()


class Spy(nn.Module):
    """Records what the model reads; returns logits that depend only on position."""

    def __init__(self, length: int, vocab: int) -> None:
        super().__init__()
        self.logits = nn.Parameter(torch.randn(1, length, vocab, generator=torch.Generator().manual_seed(0)))
        self.inputs: list[torch.Tensor] = []

    def forward(self, input_ids, logits_at=None):
        self.inputs.append(input_ids.clone())
        out = self.logits[:, : input_ids.size(1)].expand(input_ids.size(0), -1, -1)
        return out if logits_at is None else out[logits_at]


def batch_of(n: int, length: int = 20):
    pairs = [("5,1,9", "5,6,7,8"), ("1,2", "4,3"), ("9,8,7,6", "8,7,6,5,4")] * n
    return make_batch([TOK.encode_example(a, b, length) for a, b in pairs], TOK)


def test_rate_0_is_todays_ar_bit_for_bit_and_draws_nothing():
    torch.manual_seed(0)
    model = Transformer(model_config("micro", TOK.vocab_size, 20, causal=True)).train()
    batch = batch_of(2)
    generator = torch.Generator().manual_seed(7)
    plain = get_objective("ar").loss(model, batch, torch.Generator().manual_seed(7))[0]
    zero = Autoregressive(input_mask=0.0, input_mask_schedule="diffusion", mask_prompt=True)
    same = zero.loss(model, batch, generator)[0]
    assert same.item() == plain.item()
    assert torch.equal(generator.get_state(), torch.Generator().manual_seed(7).get_state())


def test_corruption_hits_answer_inputs_only_and_targets_stay_clean():
    batch = batch_of(200)
    spy = Spy(20, TOK.vocab_size).train()
    clean_loss, clean = Autoregressive().loss(spy, batch)
    loss, stats = Autoregressive(input_mask=0.3).loss(spy, batch, torch.Generator().manual_seed(0))
    read = spy.inputs[-1]
    ids = batch["input_ids"][:, : read.size(1)]
    masked = read == MASK_ID
    positions = torch.arange(read.size(1))[None, :]
    answer = positions >= batch["answer_start"][:, None]
    assert not masked[~answer].any()  # the prompt and SEP are never corrupted
    assert torch.equal(read[~masked], ids[~masked])
    share = masked[answer].float().mean().item()
    assert 0.26 < share < 0.34  # the fixed rate
    # The spy's logits do not depend on the input, so the loss (clean targets) is unchanged.
    assert loss.item() == pytest.approx(clean_loss.item()) and stats["tokens"] == clean["tokens"]


def test_diffusion_schedule_draws_a_rate_per_sequence():
    steps = 4
    objective = Autoregressive(input_mask=1.0, input_mask_schedule="diffusion", steps=steps)
    ids = torch.full((4000, 40), 7)
    starts = torch.full((4000,), 5)
    _, corrupted = objective.corrupt(ids, starts, torch.Generator().manual_seed(0))
    rates = corrupted[:, 5:].float().mean(1)
    # each row's rate is one of (t+1)/T; the mean over rows (T+1)/(2T)
    levels = torch.tensor([(t + 1) / steps for t in range(steps)])
    nearest = (rates[:, None] - levels[None, :]).abs().argmin(1)
    assert torch.bincount(nearest, minlength=steps).min() > 800
    assert rates.mean().item() == pytest.approx((steps + 1) / (2 * steps), abs=0.02)
    assert not corrupted[:, :5].any()


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**31 - 1), st.floats(0.05, 1.0), st.integers(2, 12))
def test_mask_prompt_corrupts_the_prompt_but_never_sep(seed, rate, start):
    objective = Autoregressive(input_mask=rate, mask_prompt=True)
    ids = torch.full((8, 16), 9)
    starts = torch.full((8,), start)
    _, corrupted = objective.corrupt(ids, starts, torch.Generator().manual_seed(seed))
    assert not corrupted[:, start - 1].any()


def test_validation_reads_clean_inputs():
    batch = batch_of(4)
    spy = Spy(20, TOK.vocab_size).eval()
    Autoregressive(input_mask=1.0).loss(spy, batch, torch.Generator().manual_seed(0))
    assert not (spy.inputs[-1] == MASK_ID).any()


@pytest.mark.parametrize("setting, message", [
    ("ar.input_mask=1.5", "input_mask must be in"), ("ar.input_mask_schedule=cosine", "input_mask_schedule")])
def test_bad_settings_are_errors(tmp_path, setting, message):
    args = ["task=sudoku", "objective=ar", "model=micro", f"data.train={tmp_path / 'never-read.jsonl'}",
            f"out_dir={tmp_path / 'run'}", setting]
    with pytest.raises(ConfigError, match=message):  # before any data is read
        load_config(None, args)


def test_a_run_with_input_masking_trains_and_is_another_run(tmp_path, one_thread):
    from dvar.cli import main
    from dvar.trainer import train

    data = tmp_path / "train.jsonl"
    assert main(["generate", "sudoku", "--size", "4", "--n", "64", "--seed", "0", "--out", str(data),
                 "--workers", "1"]) == 0
    args = ["task=sudoku", "objective=ar", "model=micro", f"data.train={data}", "data.valid_size=8",
            "train.batch_size=8", "train.max_steps=3", "train.eval_size=4", "decode.batch_size=4",
            f"out_dir={tmp_path / 'run'}"]
    run = train(load_config(None, [*args, "ar.input_mask=0.5", "ar.input_mask_schedule=diffusion"]))
    resolved = load_config(run / "config.yaml")
    assert (resolved.ar.input_mask, resolved.ar.input_mask_schedule) == (0.5, "diffusion")
    from dvar.rundir import RunDir

    with pytest.raises(ConfigError, match="ar.input_mask=0.5"):
        RunDir(run).state(load_config(None, args))
