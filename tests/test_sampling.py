"""AR sampling (`sample`) and the aggregation of K samples (pass@K, best-of-K, majority@K)."""

import pytest
import torch

from dvar.decoders import decoder_class, get_decoder
from dvar.metrics import best_of_k, majority_vote, summarize_samples
from dvar.objectives import get_objective
from dvar.tokenizer import EOS_ID

from test_decoders import PROMPTS, SEQ_LEN, TOK, Spy, make_model


def sampled(seed, prompts=PROMPTS, max_new_tokens=8, **settings):
    model = make_model(causal=True, seed=4)
    spy = Spy(get_objective("ar").predictor(model))
    generator = None if seed is None else torch.Generator().manual_seed(seed)
    result = get_decoder("sample", **settings)(
        spy, prompts, seq_len=SEQ_LEN, max_new_tokens=max_new_tokens, generator=generator)
    return result, spy


def test_sample_is_an_ar_decoder_with_checked_settings():
    assert decoder_class("sample").family == "ar"
    assert get_decoder("sample").temperature == 1.0 and get_decoder("sample").top_p == 1.0
    for bad in ({"temperature": -1.0}, {"top_p": 0.0}, {"top_p": 1.5}):
        with pytest.raises(ValueError):
            get_decoder("sample", **bad)


@pytest.mark.parametrize("settings", [{"temperature": 0.0}, {"temperature": 1e-4}, {"top_p": 1e-6}])
def test_cold_or_narrow_sampling_is_greedy(settings):
    greedy_spy = Spy(get_objective("ar").predictor(make_model(causal=True, seed=4)))
    greedy = get_decoder("greedy")(greedy_spy, PROMPTS, seq_len=SEQ_LEN, max_new_tokens=8)
    result, spy = sampled(7, **settings)
    assert result.generated == greedy.generated and result.answers == greedy.answers
    assert result.nfe == greedy.nfe == len(spy.inputs) == len(greedy_spy.inputs)
    assert result.row_nfe == greedy.row_nfe


def test_same_seed_same_samples_and_the_cache_loop_is_greedys():
    first, spy = sampled(3)
    again, _ = sampled(3)
    other, _ = sampled(4)
    assert first == again
    assert first.generated != other.generated  # the draws do depend on the seed
    assert first.nfe == len(spy.inputs)
    # Greedy's loop: one prefill per prompt length, then one call per token.
    assert spy.inputs[0].shape[1] > 1 and all(x.shape[1] == 1 for x in spy.inputs[1:3])
    for row, generated in enumerate(first.generated):
        assert len(generated) <= min(8, SEQ_LEN - len(PROMPTS[row]))
        assert first.answers[row] == (generated[:-1] if generated[-1:] == [EOS_ID] else generated)


def fixed_next_token(probs):
    """A fake cached model whose next-token distribution is `probs` (token id -> p)."""
    logits_V = torch.full((TOK.vocab_size,), float("-inf"))
    for token, p in probs.items():
        logits_V[token] = torch.tensor(p).log()

    def predict(ids, logits_at=None, kv_cache=None, start_pos=0):
        B, L = ids.shape
        kv_cache.keys = [torch.zeros(B, 1, start_pos + L, 1)]
        return logits_V.expand(B, L, -1)[logits_at]

    return predict


def test_sample_frequencies_follow_temperature_and_nucleus():
    a, b, c = 10, 11, 12
    predict = fixed_next_token({a: 0.6, b: 0.3, c: 0.1})
    prompts = [PROMPTS[0]] * 4000

    def frequencies(**settings):
        result = get_decoder("sample", **settings)(
            predict, prompts, seq_len=SEQ_LEN, max_new_tokens=1,
            generator=torch.Generator().manual_seed(0))
        assert result.nfe == 1
        tokens = [g[0] for g in result.generated]
        return {t: tokens.count(t) / len(tokens) for t in (a, b, c)}

    plain = frequencies()
    assert abs(plain[a] - 0.6) < 0.03 and abs(plain[b] - 0.3) < 0.03 and abs(plain[c] - 0.1) < 0.02
    nucleus = frequencies(top_p=0.8)  # {a, b}: 0.6 < 0.8 <= 0.9, renormalised to 2/3, 1/3
    assert nucleus[c] == 0 and abs(nucleus[a] - 2 / 3) < 0.03
    assert frequencies(top_p=0.6)[a] == 1.0  # a alone reaches 0.6
    hot = frequencies(temperature=2.0)  # p ~ sqrt(p): 0.6/0.3/0.1 -> 0.47/0.34/0.19
    assert abs(hot[c] - 0.1 ** 0.5 / (0.6 ** 0.5 + 0.3 ** 0.5 + 0.1 ** 0.5)) < 0.03


# ---------------------------------------------------------------- K samples
def v(correct):
    return {"correct": correct}


def test_best_of_k_and_majority_pick_the_documented_sample():
    assert best_of_k([v(False), v(True), v(True)]) == 1
    assert best_of_k([v(False), v(False)]) == 0  # none correct: the first sample
    assert majority_vote(["1", "2", "2", "1", "3"]) == 0  # a tie goes to the answer drawn first
    assert majority_vote(["3", "2", "2", "1"]) == 1


def test_summarize_samples_aggregates_a_known_verdict_pattern():
    # Three problems, K = 4, hand-made answers with a known verdict per answer text.
    truth = {"p1": {"7"}, "p2": {"5", "five"}, "p3": {"9"}}
    problems = ["p1", "p2", "p3"]
    samples = [
        ["1", "7", "1", "2"],     # pass@K yes; majority "1" wrong; 1/4 correct
        ["5", "x", "x", "five"],  # pass@K yes; majority "x" wrong; 2/4 correct
        ["9", "9", "3", "9"],     # pass@K yes; majority "9" right; 3/4 correct
    ]
    verdicts = [[v(a in truth[p]) for a in texts] for p, texts in zip(problems, samples)]
    groups = ["g1", "g2", "g2"]
    out = summarize_samples(groups, samples, verdicts)
    assert out["samples"] == 4
    assert out["pass_at_1"] == pytest.approx((1 / 4 + 2 / 4 + 3 / 4) / 3)
    assert out["pass_at_k"] == 1.0 and out["best_of_k"] == 1.0
    assert out["majority_at_k"] == pytest.approx(1 / 3)
    assert out["by"]["g1"] == {"pass_at_1": 0.25, "pass_at_k": 1.0, "best_of_k": 1.0, "majority_at_k": 0.0}
    assert out["by"]["g2"]["majority_at_k"] == 0.5 and out["by"]["g2"]["pass_at_1"] == 0.625
    # A problem never solved counts against pass@K and best-of-K alike.
    out = summarize_samples(["g"] * 2, [["1", "1"], ["9", "8"]], [[v(False), v(False)], [v(False), v(True)]])
    assert out["pass_at_k"] == out["best_of_k"] == 0.5 and out["majority_at_k"] == 0.0
    assert out["pass_at_1"] == 0.25
