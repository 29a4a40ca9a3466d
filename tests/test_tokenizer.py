import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dvar.tokenizer import DEFAULT_CHARS, CharTokenizer, SequenceTooLong

TOK = CharTokenizer()
answer_text = st.text(alphabet=DEFAULT_CHARS, max_size=30)


def test_vocabulary_matches_reference_layout():
    assert (TOK.pad_id, TOK.sep_id, TOK.mask_id, TOK.eos_id, TOK.unk_id) == (0, 1, 2, 3, 4)
    assert TOK.vocab_size == 31
    assert TOK.encode(DEFAULT_CHARS) == list(range(5, 31))


def test_example_layout():
    ids = TOK.encode_example("5,1", "5,6", cutoff=10)
    assert ids == TOK.encode("5,1") + [TOK.sep_id] + TOK.encode("5,6") + [TOK.eos_id, 0, 0]
    assert TOK.encode_prompt("5,1") == TOK.encode("5,1") + [TOK.sep_id]


@settings(deadline=None, max_examples=60)
@given(answer_text, answer_text, st.integers(0, 10))
def test_round_trip(source, target, slack):
    cutoff = len(source) + len(target) + 2 + slack
    ids = TOK.encode_example(source, target, cutoff)
    assert len(ids) == cutoff
    start = len(source) + 1
    assert TOK.decode_answer(ids[start:]) == target
    assert TOK.decode_answer(TOK.encode(target) + [TOK.eos_id] + TOK.encode("123")) == target


def test_too_long_is_an_error_naming_the_example():
    with pytest.raises(SequenceTooLong) as caught:
        TOK.encode_example("123456", "789", cutoff=10, name="train.jsonl:17")
    message = str(caught.value)
    assert "train.jsonl:17" in message
    assert "11 tokens" in message and "cutoff length is 10" in message
    assert "input 6" in message and "output 3" in message
    assert isinstance(caught.value, ValueError)
    # Exactly fitting is fine, never cut.
    assert len(TOK.encode_example("123456", "78", cutoff=10)) == 10


def test_unknown_character_is_named():
    with pytest.raises(ValueError, match="'x'"):
        TOK.encode("12x")
    with pytest.raises(ValueError, match="dev.jsonl:3"):
        TOK.encode_example("1 2", "3", cutoff=20, name="dev.jsonl:3")


@settings(deadline=None, max_examples=100)
@given(st.lists(st.integers(-5, 100)))
def test_decode_answer_never_raises_and_drops_specials(ids):
    text = TOK.decode_answer(ids)
    assert set(text) <= set(DEFAULT_CHARS)
    assert TOK.decode_answer([0, 1, 2, 4, 5, 99, 6, 3, 7]) == "01"


def test_save_load_and_extension(tmp_path):
    extended = TOK.with_chars(["1;2", "x"])
    assert extended.chars == DEFAULT_CHARS + ";x"
    assert extended.encode("09a") == TOK.encode("09a")  # old ids keep their meaning
    assert TOK.with_chars(["12"]) is TOK
    path = tmp_path / "tokenizer.json"
    extended.save(path)
    data = json.loads(path.read_text())
    assert data["type"] == "char" and data["chars"] == extended.chars
    assert CharTokenizer.load(path) == extended
    path.write_text(json.dumps({"type": "bpe"}))
    with pytest.raises(ValueError):
        CharTokenizer.load(path)


def test_rejects_repeated_characters():
    with pytest.raises(ValueError, match="repeated"):
        CharTokenizer("0120")


def test_answer_span_marks_output_and_eos():
    tok = CharTokenizer()
    row = tok.encode_example("5,1", "5,6", cutoff=10)
    start, end = tok.answer_span("5,1", "5,6")
    assert row[start - 1] == tok.sep_id and row[end - 1] == tok.eos_id
    assert tok.decode_answer(row[start:end]) == "5,6"
