import functools
import math

import pytest
import torch

from dvar.decoders import DecodeResult, decoder_class, decoder_names, get_decoder
from dvar.decoders.topk import remask_count
from dvar.model import Transformer, model_config
from dvar.objectives import get_objective, objective_names
from dvar.tokenizer import EOS_ID, MASK_ID, PAD_ID, CharTokenizer

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
    assert decoder_names("ar") == ["greedy", "sample"]
    for name in decoder_names():
        assert decoder_class(name).family in families
    assert get_decoder("topk").steps == 20 and get_decoder("topk").noise == 0.0  # the paper's: 0.5
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


# ---------------------------------------------------------------- margin, entropy, threshold
@pytest.mark.parametrize(
    "name,settings",
    [("margin", {"steps": 5}), ("entropy", {"steps": 5}), ("topk", {"steps": 5, "remask": False}),
     ("margin", {"steps": 1, "noise": 0.0, "remask": False}), ("threshold", {}),
     ("threshold", {"tau": 0.0}), ("threshold", {"tau": 2.0}), ("threshold", {"max_steps": 2})],
)
def test_new_mdm_decoders_keep_the_prompt_and_fill_every_mask(name, settings):
    spy = Spy(get_objective("mdm").predictor(make_model(causal=False)))
    result = get_decoder(name, **settings)(
        spy, PROMPTS, seq_len=SEQ_LEN, generator=torch.Generator().manual_seed(0))
    assert result.nfe == len(spy.inputs)
    assert len(result.row_nfe) == len(PROMPTS) and max(result.row_nfe) == result.nfe
    first = spy.inputs[0]
    for row, prompt in enumerate(PROMPTS):
        assert torch.all(first[row, len(prompt) :] == MASK_ID)
        generated = result.generated[row]
        assert len(generated) == SEQ_LEN - len(prompt) and MASK_ID not in generated
        cut = generated.index(EOS_ID) if EOS_ID in generated else len(generated)
        assert result.answers[row] == generated[:cut]
    if name != "threshold":  # threshold leaves finished rows out; checked below
        assert result.nfe == settings["steps"] and result.row_nfe == [settings["steps"]] * len(PROMPTS)
        for x in spy.inputs:
            for row, prompt in enumerate(PROMPTS):
                assert x[row, : len(prompt)].tolist() == prompt


def fixed_logits(seed: int = 0):
    """A predictor whose logits ignore the input: random per position, MASK impossible
    (so the decoder's distribution is exactly softmax of these logits)."""
    g = torch.Generator().manual_seed(seed)
    table_LxV = 3 * torch.randn(SEQ_LEN, TOK.vocab_size, generator=g)
    table_LxV[:, MASK_ID] = float("-inf")

    def predict(x_BxL):
        return table_LxV.expand(x_BxL.size(0), -1, -1).clone()

    return predict, table_LxV


def reveal_order(spy, row, prompt_len):
    """Positions in the order they first appear unmasked across the spied inputs (+ final)."""
    order = []
    for x in spy.inputs[1:]:
        for pos in range(prompt_len, SEQ_LEN):
            if x[row, pos] != MASK_ID and pos not in order:
                order.append(pos)
    return order


def test_margin_and_entropy_rank_positions_by_their_score():
    predict, table_LxV = fixed_logits()
    p_LxV = torch.softmax(table_LxV, dim=-1)
    top2_Lx2 = p_LxV.topk(2, dim=-1).values
    expected_scores = {
        "topk": p_LxV.max(dim=-1).values.log(),
        "margin": top2_Lx2[:, 0] - top2_Lx2[:, 1],
        "entropy": torch.where(p_LxV > 0, p_LxV * p_LxV.log(), torch.zeros(())).sum(-1),
    }
    prompt = PROMPTS[2]
    m = SEQ_LEN - len(prompt)
    orders = {}
    for name, score_L in expected_scores.items():
        decoder = get_decoder(name, steps=m, noise=0.0)  # one position revealed per step
        logp_1xLxV = torch.log_softmax(table_LxV, dim=-1)[None]
        assert torch.allclose(decoder.confidence(logp_1xLxV)[0], score_L, atol=1e-5)
        spy = Spy(predict)
        decoder(spy, [prompt], seq_len=SEQ_LEN)
        positions = list(range(len(prompt), SEQ_LEN))
        expected = sorted(positions, key=lambda pos: -float(score_L[pos]))
        orders[name] = reveal_order(spy, 0, len(prompt))
        assert orders[name] == expected[: m - 1], name  # the last one comes with the final call
    assert len({tuple(o) for o in orders.values()}) == 3  # the scores really differ


@pytest.mark.parametrize("name", ["topk", "margin", "entropy"])
def test_without_remask_a_revealed_token_is_never_masked_again(name):
    predict = get_objective("mdm").predictor(make_model(causal=False))

    def remasked(spy):
        # Count (step, position) pairs where a visible token becomes MASK or changes.
        count = 0
        for before, after in zip(spy.inputs, spy.inputs[1:]):
            visible = before != MASK_ID
            count += int((after[visible] != before[visible]).sum())
        return count

    frozen, free = Spy(predict), Spy(predict)
    for spy, remask in ((frozen, False), (free, True)):
        get_decoder(name, steps=8, noise=5.0, remask=remask)(
            spy, PROMPTS, seq_len=SEQ_LEN, generator=torch.Generator().manual_seed(0))
    assert remasked(frozen) == 0
    assert remasked(free) > 0  # with heavy noise the default does re-mask
    for before, after in zip(frozen.inputs, frozen.inputs[1:]):  # and the schedule still holds
        assert int((after == MASK_ID).sum()) < int((before == MASK_ID).sum())
    with pytest.raises(ValueError, match="repredict"):
        get_decoder(name, repredict=True, remask=False)


def test_threshold_above_one_reveals_one_position_per_call():
    spy = Spy(get_objective("mdm").predictor(make_model(causal=False)))
    result = get_decoder("threshold", tau=1.5)(spy, PROMPTS, seq_len=SEQ_LEN)
    m_B = [SEQ_LEN - len(p) for p in PROMPTS]
    assert result.row_nfe == m_B and result.nfe == max(m_B) == len(spy.inputs)
    # A batched call holds exactly the rows that still have masks, one fewer each call.
    for call, x in enumerate(spy.inputs):
        assert x.size(0) == sum(m > call for m in m_B)
        active = [m for m in m_B if m > call]
        assert [int(n) for n in (x == MASK_ID).sum(dim=1)] == [m - call for m in active]
    one = Spy(uniform_logits)
    assert get_decoder("threshold", tau=1.5)(one, [PROMPTS[0]], seq_len=SEQ_LEN).nfe == m_B[0]


def test_threshold_zero_finishes_in_one_call_and_reveals_every_confident_position():
    spy = Spy(uniform_logits)
    result = get_decoder("threshold", tau=0.0)(spy, PROMPTS, seq_len=SEQ_LEN)
    assert result.nfe == 1 and result.row_nfe == [1] * len(PROMPTS)
    # Confidence 0.9 at even positions, about 0.05 elsewhere: first call reveals the even
    # masked positions, then one position (the leftmost of the ties) per call.
    def half_confident(x_BxL):
        logits = torch.zeros(*x_BxL.shape, TOK.vocab_size)
        logits[..., MASK_ID] = float("-inf")
        logits[:, 0::2, 12] = 10.0
        return logits

    prompt = PROMPTS[0]  # 4 ids: masked positions 4..15, 6 of them even
    spy = Spy(half_confident)
    result = get_decoder("threshold", tau=0.9)(spy, [prompt], seq_len=SEQ_LEN)
    after_first = spy.inputs[1][0]
    assert [int(after_first[p] != MASK_ID) for p in range(4, SEQ_LEN)] == [1, 0] * 6
    assert result.nfe == 1 + 6 and result.generated[0][0::2] == [12] * 6
    capped = get_decoder("threshold", tau=0.9, max_steps=3)(half_confident, [prompt], seq_len=SEQ_LEN)
    assert capped.nfe == 3 and MASK_ID not in capped.generated[0]


def eos_loving(x_BxL):
    """A model that would end every answer at once: EOS (then PAD) most likely everywhere."""
    logits = torch.zeros(*x_BxL.shape, TOK.vocab_size)
    logits[..., EOS_ID] = 10.0
    logits[..., PAD_ID] = 9.0
    logits[..., 12] = 1.0
    return logits


@pytest.mark.parametrize("name, settings", [("topk", {"steps": 3}), ("topk", {"steps": 4, "repredict": True}),
                                            ("margin", {"steps": 3}), ("random", {"steps": 3}),
                                            ("threshold", {"tau": 0.5})])
def test_known_length_mdm_answers_have_exactly_the_given_length(name, settings):
    lengths = [3, 1, 5, 2, 4]
    free = get_decoder(name, **settings)(eos_loving, PROMPTS, seq_len=SEQ_LEN)
    assert all(answer == [] for answer in free.answers)  # without it the model ends at once
    result = get_decoder(name, known_length=True, **settings)(
        eos_loving, PROMPTS, seq_len=SEQ_LEN, answer_lengths=lengths)
    assert result.answers == [[12] * n for n in lengths]
    for row, prompt, n in zip(result.generated, PROMPTS, lengths):
        assert row[n] == EOS_ID and all(token == PAD_ID for token in row[n + 1:])
    assert result.nfe == free.nfe or name == "threshold"


def test_known_length_up_to_the_cutoff_needs_no_eos_and_an_overlong_answer_is_an_error():
    prompt = PROMPTS[0]
    room = SEQ_LEN - len(prompt)
    result = get_decoder("topk", steps=2, known_length=True)(eos_loving, [prompt], seq_len=SEQ_LEN,
                                                              answer_lengths=[room])
    assert result.answers == [[12] * room]
    with pytest.raises(ValueError, match="does not fit"):
        get_decoder("topk", known_length=True)(eos_loving, [prompt], seq_len=SEQ_LEN, answer_lengths=[room + 1])
    with pytest.raises(ValueError, match="needs answer_lengths"):
        get_decoder("topk", known_length=True)(eos_loving, [prompt], seq_len=SEQ_LEN)


@pytest.mark.parametrize("name", ["greedy", "sample"])
def test_known_length_ar_writes_the_given_length_then_stops(name):
    def eos_first(ids, logits_at=None, kv_cache=None, start_pos=0):
        B, L = ids.shape
        logits = torch.zeros(B, L, TOK.vocab_size)
        logits[..., EOS_ID] = 10.0
        logits[..., PAD_ID] = 9.0
        logits[..., 12] = 8.0
        kv_cache.keys = [torch.zeros(B, 1, start_pos + L, 1)]
        return logits[logits_at]

    lengths = [3, 1, 5, 2, 4]
    settings = {"temperature": 0.0} if name == "sample" else {}
    free = get_decoder(name, **settings)(eos_first, PROMPTS, seq_len=SEQ_LEN)
    assert all(answer == [] for answer in free.answers)
    result = get_decoder(name, known_length=True, **settings)(eos_first, PROMPTS, seq_len=SEQ_LEN,
                                                               answer_lengths=lengths)
    assert result.answers == [[12] * n for n in lengths]
    assert [row[-1] for row in result.generated] == [EOS_ID] * len(PROMPTS)

