import functools
import math

import pytest
import torch

from dvar.decoders import DecodeResult, decoder_class, decoder_names, get_decoder
from dvar.decoders.topk import remask_count
from dvar.model import Transformer, model_config
from dvar.objectives import get_objective, objective_names
from dvar.tokenizer import EOS_ID, MASK_ID, CharTokenizer

TOK = CharTokenizer()
SEQ_LEN = 16
PROMPTS = [TOK.encode_prompt(s) for s in ("5,1", "12,3", "7", "5,2", "99,1")]


@functools.cache
def make_model(causal: bool, seed: int = 0) -> Transformer:
    """A micro model with varied, input-dependent predictions. At GPT-2's init with the
    tied head, a model answers the same token everywhere (or echoes its input), which
    would make the equivalence tests vacuous; a larger embedding and an untied random
    head make its argmax a rich function of the input."""
    torch.manual_seed(seed)
    model = Transformer(model_config("micro", TOK.vocab_size, SEQ_LEN, causal=causal)).eval()
    with torch.no_grad():
        model.wte.weight.mul_(20)
    model.lm_head.weight = torch.nn.Parameter(torch.randn(TOK.vocab_size, model.config.n_embd))
    return model


class Spy:
    """Wraps a predict callable and records every input it is called with."""

    def __init__(self, predict):
        self.predict = predict
        self.inputs: list[torch.Tensor] = []

    def __call__(self, x, *args, **kwargs):
        self.inputs.append(x.clone())
        return self.predict(x, *args, **kwargs)


def uniform_logits(x_BxL):
    return torch.zeros(*x_BxL.shape, TOK.vocab_size)  # every score ties


def test_registry_and_families():
    families = {get_objective(n).family for n in objective_names()}
    assert {"greedy", "topk", "random"} <= set(decoder_names())
    assert decoder_names("ar") == ["greedy"]
    for name in decoder_names():
        assert decoder_class(name).family in families
    assert get_decoder("topk").steps == 20 and get_decoder("topk").noise == 0.5
    with pytest.raises(ValueError, match="unknown setting"):
        get_decoder("topk", temperature=1.0)
    with pytest.raises(ValueError):
        get_decoder("topk", schedule="exp")


@pytest.mark.parametrize(
    "name,settings",
    [("topk", {}), ("topk", {"noise": 0.0, "schedule": "cosine"}), ("random", {})],
)
@pytest.mark.parametrize("steps", [1, 7])
def test_mdm_decoder_contract(name, settings, steps):
    decoder = get_decoder(name, steps=steps, **settings)
    spy = Spy(get_objective("mdm").predictor(make_model(causal=False)))
    result = decoder(spy, PROMPTS, seq_len=SEQ_LEN, generator=torch.Generator().manual_seed(0))
    assert isinstance(result, DecodeResult)
    assert result.nfe == len(spy.inputs) == steps
    first = spy.inputs[0]
    for row, prompt in enumerate(PROMPTS):
        for x in spy.inputs:  # the prompt is never changed
            assert x[row, : len(prompt)].tolist() == prompt
        assert torch.all(first[row, len(prompt) :] == MASK_ID)  # everything starts masked
        generated = result.generated[row]
        assert len(generated) == SEQ_LEN - len(prompt) and MASK_ID not in generated
        cut = generated.index(EOS_ID) if EOS_ID in generated else len(generated)
        assert result.answers[row] == generated[:cut]


@pytest.mark.parametrize("schedule", ["linear", "cosine"])
def test_topk_remasks_exactly_k_even_on_ties(schedule):
    steps = 6
    spy = Spy(uniform_logits)
    get_decoder("topk", steps=steps, schedule=schedule, noise=0.0)(spy, PROMPTS, seq_len=SEQ_LEN)
    for row, prompt in enumerate(PROMPTS):
        m = SEQ_LEN - len(prompt)
        seen = [int((x[row] == MASK_ID).sum()) for x in spy.inputs]
        expected = [m] + [remask_count(m, t, steps, schedule) for t in range(steps - 1, 0, -1)]
        assert seen == expected
    assert remask_count(10, 3, 4, "cosine") == math.floor(10 * math.cos(math.pi / 8))
    assert remask_count(81, 7, 20, "linear") == 28


def test_topk_keeps_the_most_confident_predictions():
    # Confidence grows with position: deterministic top-k reveals right to left.
    def predict(x_BxL):
        B, L = x_BxL.shape
        logits = torch.zeros(B, L, TOK.vocab_size)
        logits[:, :, 10] = torch.arange(L, dtype=torch.float)
        return logits

    spy = Spy(predict)
    get_decoder("topk", steps=4, noise=0.0)(spy, [PROMPTS[0]], seq_len=SEQ_LEN)
    second = spy.inputs[1][0, len(PROMPTS[0]) :]
    k = int((second == MASK_ID).sum())
    assert torch.all(second[:k] == MASK_ID) and torch.all(second[k:] == 10)


def test_random_decoder_keeps_revealed_tokens():
    spy = Spy(get_objective("mdm").predictor(make_model(causal=False)))
    get_decoder("random", steps=8)(
        spy, PROMPTS, seq_len=SEQ_LEN, generator=torch.Generator().manual_seed(1)
    )
    for before, after in zip(spy.inputs, spy.inputs[1:]):
        revealed = before != MASK_ID
        assert torch.equal(after[revealed], before[revealed])
        assert (after == MASK_ID).sum() <= (before == MASK_ID).sum()


@pytest.mark.parametrize("name", ["topk", "random"])
def test_mdm_decoding_is_reproducible_per_seed(name):
    predict = get_objective("mdm").predictor(make_model(causal=False))
    decode = get_decoder(name, steps=5)

    def run(seed):
        return decode(predict, PROMPTS, seq_len=SEQ_LEN, generator=torch.Generator().manual_seed(seed))

    assert run(3) == run(3)


def test_topk_deterministic_batched_equals_one_at_a_time():
    predict = get_objective("mdm").predictor(make_model(causal=False, seed=2))
    decoder = get_decoder("topk", steps=5, noise=0.0)
    batched = decoder(predict, PROMPTS, seq_len=SEQ_LEN)
    singles = [decoder(predict, [p], seq_len=SEQ_LEN) for p in PROMPTS]
    assert batched.generated == [s.generated[0] for s in singles]
    assert len({tuple(g) for g in batched.generated}) > 1  # not a degenerate model


def reference_greedy(model, prompt, limit):
    """Greedy decoding by full recomputation, no cache."""
    ids = list(prompt)
    while len(ids) - len(prompt) < limit:
        nxt = int(model(torch.tensor([ids]))[0, -1].argmax())
        ids.append(nxt)
        if nxt == EOS_ID:
            break
    return ids[len(prompt) :]


def test_greedy_equals_recomputation_and_counts_calls():
    model = make_model(causal=True, seed=4)
    spy = Spy(get_objective("ar").predictor(model))
    result = get_decoder("greedy")(spy, PROMPTS, seq_len=SEQ_LEN, max_new_tokens=6)
    assert result.nfe == len(spy.inputs)
    for row, prompt in enumerate(PROMPTS):
        expected = reference_greedy(model, prompt, min(6, SEQ_LEN - len(prompt)))
        assert result.generated[row] == expected
        assert result.answers[row] == [t for t in expected if t != EOS_ID]
    # Groups by prompt length: lengths 4, 5, 2, 4, 5 -> three groups; each group makes
    # 1 prefill call + 1 call per further token of its longest member.
    groups = {}
    for prompt, generated in zip(PROMPTS, result.generated):
        groups[len(prompt)] = max(groups.get(len(prompt), 0), len(generated))
    assert result.nfe == sum(groups.values())
    assert len({tuple(g) for g in result.generated}) > 1


def test_greedy_stops_at_eos_and_batches_exactly():
    def eos_after_three(ids, logits_at=None, kv_cache=None, start_pos=0):
        # Fake cached model: emits "1", "2", then EOS, by absolute position.
        B, L = ids.shape
        logits = torch.zeros(B, L, TOK.vocab_size)
        for i in range(L):
            done = start_pos + i - (PROMPT_LEN - 1)
            logits[:, i, [6, 7, EOS_ID, 8][min(max(done, 0), 3)]] = 1.0
        kv_cache.keys = [torch.zeros(B, 1, start_pos + L, 1)]
        return logits[logits_at]

    PROMPT_LEN = 4
    prompts = [PROMPTS[0], PROMPTS[3]]
    spy = Spy(eos_after_three)
    result = get_decoder("greedy")(spy, prompts, seq_len=SEQ_LEN, max_new_tokens=10)
    assert [TOK.decode_answer(a) for a in result.answers] == ["12", "12"]
    assert result.generated[0] == TOK.encode("12") + [EOS_ID]
    assert result.nfe == 3
    model = make_model(causal=True, seed=4)
    greedy = get_decoder("greedy")
    batched = greedy(model, PROMPTS, seq_len=SEQ_LEN)
    assert batched.generated == [greedy(model, [p], seq_len=SEQ_LEN).generated[0] for p in PROMPTS]


def test_prompt_too_long_for_mdm_is_an_error():
    with pytest.raises(ValueError):
        get_decoder("topk")(uniform_logits, [list(range(SEQ_LEN))], seq_len=SEQ_LEN)


@pytest.mark.parametrize("name", ["topk", "random"])
def test_mdm_decoders_never_leave_mask_even_if_the_model_prefers_it(name):
    def mask_loving(x_BxL):
        logits = torch.zeros(*x_BxL.shape, TOK.vocab_size)
        logits[..., MASK_ID] = 10.0
        logits[..., 12] = 1.0
        return logits

    result = get_decoder(name, steps=3)(mask_loving, PROMPTS, seq_len=SEQ_LEN)
    assert all(row == [12] * (SEQ_LEN - len(p)) for row, p in zip(result.generated, PROMPTS))


def visible_liar(x_BxL):
    """Confident `7` at masked positions, a confident `9` wherever the token is visible:
    the output a model trained without the logit shift may give at unmasked positions."""
    seven, nine = TOK.encode("7")[0], TOK.encode("9")[0]
    logits = torch.full((*x_BxL.shape, TOK.vocab_size), -10.0)
    logits[..., seven] = torch.where(x_BxL == MASK_ID, 10.0, -10.0)
    logits[..., nine] = torch.where(x_BxL == MASK_ID, -10.0, 10.0)
    return logits


@pytest.mark.parametrize("noise", [0.0, 0.5])
def test_topk_keeps_decoded_tokens_unless_asked_to_repredict(noise):
    prompt = TOK.encode_prompt("5,1")
    kept = get_decoder("topk", steps=4, noise=noise)(
        visible_liar, [prompt], seq_len=SEQ_LEN, generator=torch.Generator().manual_seed(0))
    assert TOK.decode(kept.generated[0]) == "7" * (SEQ_LEN - len(prompt))
    literal = get_decoder("topk", steps=4, noise=noise, repredict=True)(
        visible_liar, [prompt], seq_len=SEQ_LEN, generator=torch.Generator().manual_seed(0))
    assert "9" in TOK.decode(literal.generated[0])  # the reference re-predicts visible tokens
