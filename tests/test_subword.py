"""Real subword tokenizers for `model=hf:PATH`, built here from generated task text (no
download):

- `llama-sp`: a SentencePiece BPE model trained with the `sentencepiece` package the way
  LLaMA's was (leading "▁" on every text, digits split, byte fallback), read through
  transformers' SentencePiece backend (the "slow" tokenizer: `LlamaTokenizer` before
  transformers 5, `SentencePieceBackend` from 5 on; dvar's AutoTokenizer reads such a
  directory as the fast tokenizer under transformers 4, as this backend under 5);
- `llama-fast`: the same model converted to transformers' fast LLaMA tokenizer
  (`tokenizer.json`, as LLaMA checkpoints ship it);
- `gpt2-bpe`: a byte-level BPE trained with `tokenizers` and read as a GPT-2 tokenizer
  (vocab.json + merges.txt; digits merged into multi-digit tokens).

The SentencePiece model never sees SAT text, so every SAT letter goes through byte
fallback (`<0x62>` for "b"). Each tokenizer sits beside a tiny random LLaMA or GPT-2.
Checked: every task's gold answers survive encode -> answer span -> decode_answer and are
judged correct; cutoffs are counted in these tokens (too long: an error naming the line);
AR and MDM, full and LoRA, train and decode through `dvar eval`.
"""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import pytest
import torch

transformers = pytest.importorskip("transformers")
pytest.importorskip("peft")
spm = pytest.importorskip("sentencepiece")

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers  # noqa: E402

from dvar.cli import main  # noqa: E402
from dvar.config import load_config  # noqa: E402
from dvar.data import read_examples  # noqa: E402
from dvar.generation import generate  # noqa: E402
from dvar.hf import HFTokenizer  # noqa: E402
from dvar.tasks import get_task  # noqa: E402
from dvar.tokenizer import SequenceTooLong  # noqa: E402
from dvar.trainer import resolve, train  # noqa: E402

TOKENIZERS = ("llama-sp", "llama-fast", "gpt2-bpe")
TRANSFORMERS_5 = int(transformers.__version__.split(".")[0]) >= 5
# Task -> generator options of the round-trip sets: the paper's defaults and the other
# forms dvar writes (path as a compact edge list and as tables, 4x4 sudoku, 9-variable SAT).
ROUND_TRIP = {
    "path": [{}, {"compact": True, "nodes": 4, "id_count": 10}, {"table": True, "nodes": 3, "id_count": 10}],
    "countdown": [{}, {"numbers": 3}, {"numbers": 5}],
    "sudoku": [{"preset": "default"}, {"size": 4, "givens": (8, 12)}],
    "sat": [{}, {"vars": 9}],
}


def task_rows(name: str, options: dict, n: int, seed: int) -> list[dict]:
    task = get_task(name)
    return generate(task, n, seed=seed, options=task.make_options(**options))


def corpus(tasks: tuple[str, ...]) -> list[str]:
    """Inputs and outputs of generated problems: what the tokenizers are trained on
    (seed 100: other problems than the round-trip sets)."""
    texts = []
    for name in tasks:
        for options in ROUND_TRIP[name]:
            for row in task_rows(name, options, 40, seed=100):
                texts += [row["input"], row["output"]]
    return texts


def save_model(directory: Path, tokenizer, arch: str) -> Path:
    """A random 2-layer, width-32 causal LM sized to `tokenizer`, saved beside it."""
    size = len(tokenizer)
    if arch == "llama":
        config = transformers.LlamaConfig(
            vocab_size=size, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
            bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
            pad_token_id=None, initializer_range=0.2)
    else:
        config = transformers.GPT2Config(
            vocab_size=size, n_embd=32, n_layer=2, n_head=4, n_positions=512,
            bos_token_id=tokenizer.eos_token_id, eos_token_id=tokenizer.eos_token_id,
            resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, initializer_range=0.2)
    torch.manual_seed(0)
    transformers.AutoModelForCausalLM.from_config(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def sentencepiece_model(directory: Path) -> Path:
    """LLaMA's SentencePiece settings: BPE, dummy prefix "▁", digits split, byte fallback,
    no normalization; ids 0, 1, 2 = <unk>, <s>, </s>. Trained without SAT text."""
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(corpus(("path", "countdown", "sudoku"))), model_writer=model,
        model_type="bpe", vocab_size=320, hard_vocab_limit=False, character_coverage=1.0,
        byte_fallback=True, split_digits=True, add_dummy_prefix=True,
        normalization_rule_name="identity", remove_extra_whitespaces=False,
        allow_whitespace_only_pieces=True, unk_id=0, bos_id=1, eos_id=2, pad_id=-1,
        num_threads=1, minloglevel=2)
    path = directory / "tokenizer.model"
    path.write_bytes(model.getvalue())
    return path


def build_llama_sentencepiece(directory: Path, sp_model: Path):
    specials = dict(bos_token="<s>", eos_token="</s>", unk_token="<unk>")
    if TRANSFORMERS_5:  # transformers 5 keeps SentencePiece decoding in this backend only
        from transformers.tokenization_utils_sentencepiece import SentencePieceBackend

        return SentencePieceBackend(vocab_file=str(sp_model), legacy=True, **specials)
    return transformers.LlamaTokenizer(vocab_file=str(sp_model), legacy=True, **specials)


def build_llama_fast(directory: Path, sp_model: Path):
    """Converted from tokenizer.model as transformers loads a LLaMA checkpoint that has no
    tokenizer.json yet; saved with its tokenizer.json."""
    source = directory / "source"
    source.mkdir()
    shutil.copy(sp_model, source / "tokenizer.model")
    (source / "tokenizer_config.json").write_text(json.dumps(
        {"tokenizer_class": "LlamaTokenizer", "bos_token": "<s>", "eos_token": "</s>",
         "unk_token": "<unk>", "legacy": True}))
    cls = transformers.LlamaTokenizer if TRANSFORMERS_5 else transformers.LlamaTokenizerFast
    return cls.from_pretrained(str(source))


def build_gpt2_bpe(directory: Path):
    """GPT-2's byte-level BPE (no prefix space, digits in runs), trained on every task."""
    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    core.train_from_iterator(corpus(tuple(ROUND_TRIP)), trainers.BpeTrainer(
        vocab_size=600, special_tokens=["<|endoftext|>"], show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    source = directory / "source"
    source.mkdir()
    core.model.save(str(source))  # vocab.json, merges.txt: GPT-2's own files
    end = "<|endoftext|>"
    cls = transformers.GPT2Tokenizer if TRANSFORMERS_5 else transformers.GPT2TokenizerFast
    return cls.from_pretrained(str(source), bos_token=end, eos_token=end, unk_token=end)


# Tiny models: one thread each (tests/conftest.py).
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def backbones(tmp_path_factory) -> dict[str, Path]:
    """Tokenizer name -> a pretrained directory (model + tokenizer). What dvar reads from
    it is what AutoTokenizer picks; `exact_tokenizer` reads the very class built here."""
    root = tmp_path_factory.mktemp("subword")
    sp_model = sentencepiece_model(root)
    built = {}
    for name in TOKENIZERS:
        directory = root / name
        directory.mkdir()
        if name == "llama-sp":
            tokenizer, arch = build_llama_sentencepiece(directory, sp_model), "llama"
        elif name == "llama-fast":
            tokenizer, arch = build_llama_fast(directory, sp_model), "llama"
        else:
            tokenizer, arch = build_gpt2_bpe(directory), "gpt2"
        built[name] = save_model(directory / "model", tokenizer, arch)
        BUILT_CLASS[name] = type(tokenizer)
    return built


BUILT_CLASS: dict[str, type] = {}  # tokenizer name -> its transformers class (`backbones`)


def exact_tokenizer(backbones: dict[str, Path], name: str, mask: bool) -> HFTokenizer:
    """The tokenizer `name` as built, not as AutoTokenizer chooses: transformers 4 reads a
    directory holding only a SentencePiece LLaMA tokenizer as the converted fast one."""
    return HFTokenizer(BUILT_CLASS[name].from_pretrained(str(backbones[name])), mask=mask)


def pieces(tokenizer: HFTokenizer, ids: list[int]) -> list[str]:
    return tokenizer.tokenizer.convert_ids_to_tokens(ids)


def test_the_tokenizers_are_what_they_claim(backbones):
    llama_sp, llama_fast, gpt2 = (exact_tokenizer(backbones, name, mask=False) for name in TOKENIZERS)
    assert not llama_sp.tokenizer.is_fast and llama_fast.tokenizer.is_fast and gpt2.tokenizer.is_fast
    # What dvar itself reads from the SentencePiece directory: the SentencePiece backend from
    # transformers 5 on (the class saved there); transformers 4 converts it to the fast one.
    loaded = HFTokenizer.from_pretrained(backbones["llama-sp"], mask=False).tokenizer
    assert loaded.is_fast != TRANSFORMERS_5
    for llama in (llama_sp, llama_fast):
        # "▁" starts every text, digits are split, SAT letters fall back to bytes.
        assert pieces(llama, llama.encode("86,28")) == ["▁", "8", "6", ",", "2", "8"]
        assert pieces(llama, llama.encode("b,3")) == ["▁", "<0x62>", ",", "3"]
        assert llama.prefix == [llama.tokenizer.bos_token_id] and llama.pad_id == llama.eos_id
    # The same SentencePiece model: the two LLaMA tokenizers agree on every id.
    text = task_rows("countdown", {}, 1, seed=0)[0]["output"]
    assert llama_sp.encode(text) == llama_fast.encode(text)
    # GPT-2: numbers become multi-digit tokens; no BOS distinct from EOS.
    assert pieces(gpt2, gpt2.encode("86+28=114")) == ["86", "+", "28", "=", "11", "4"]
    assert gpt2.prefix == [] and gpt2.pad_id == gpt2.eos_id


@pytest.mark.parametrize("name", TOKENIZERS)
@pytest.mark.parametrize("task_name", list(ROUND_TRIP))
def test_gold_answers_round_trip_and_are_judged_correct(backbones, name, task_name):
    task = get_task(task_name)
    for mask in (False, True):  # AR and MDM (an added MASK token) use the same layout
        tokenizer = exact_tokenizer(backbones, name, mask=mask)
        for options in ROUND_TRIP[task_name]:
            for row in task_rows(task_name, options, 15, seed=1):
                source, gold = row["input"], row["output"]
                start, end = tokenizer.answer_span(source, gold)
                ids = tokenizer.encode_example(source, gold, cutoff=end + 3)
                assert ids[:start] == tokenizer.encode_prompt(source)
                assert ids[start - 1] == tokenizer.sep_id and ids[end - 1] == tokenizer.eos_id
                assert ids[end:] == [tokenizer.pad_id] * 3
                decoded = tokenizer.decode_answer(ids[start:])
                assert decoded == gold, (name, pieces(tokenizer, ids[start:end]))
                assert task.judge(task.parse_input(source), decoded)["correct"]


@pytest.fixture(scope="module")
def countdown(tmp_path_factory) -> tuple[Path, Path]:
    """Countdown with 3 numbers: multi-digit numbers on both sides of SEP."""
    root = tmp_path_factory.mktemp("cd3")
    train_file, test_file = root / "train.jsonl", root / "test.jsonl"
    common = ["generate", "countdown", "--numbers", "3", "--workers", "1"]
    assert main([*common, "--n", "40", "--seed", "0", "--out", str(train_file)]) == 0
    assert main([*common, "--n", "6", "--seed", "1", "--out", str(test_file)]) == 0
    return train_file, test_file


def settings(backbone: Path, data_file: Path, out: Path, objective: str, lora: int, *extra: str):
    return load_config(None, [
        "task=countdown", f"objective={objective}", f"model=hf:{backbone}",
        f"data.train={data_file}", f"out_dir={out}", "data.valid_size=4", "train.max_steps=4",
        "train.batch_size=8", "train.lr=1e-2", "train.warmup_steps=0", "train.log_every=1",
        "train.eval_size=2", "decode.batch_size=8", "diffusion.steps=4", f"lora.r={lora}",
        "lora.alpha=16", "lora.dropout=0.0", "lora.target_modules=all-linear", *extra,
    ])


@pytest.mark.parametrize("name", TOKENIZERS)
def test_cutoffs_are_counted_in_subword_tokens(tmp_path, backbones, countdown, name):
    train_file, _ = countdown
    cfg, tokenizer, train_data, valid_data = resolve(
        settings(backbones[name], train_file, tmp_path / "run", "ar", 0))
    examples = train_data.examples + valid_data.examples
    lengths = [len(tokenizer.encode_prompt(ex.input)) + len(tokenizer.encode(ex.output)) + 1
               for ex in examples]
    assert cfg.data.cutoff == max(lengths)
    assert cfg.data.max_new_tokens == max(len(tokenizer.encode(ex.output)) + 1 for ex in examples)
    characters = max(len(ex.input) + len(ex.output) + 2 for ex in examples)
    # LLaMA: BOS and a "▁" per text on top of one token per character; GPT-2: merged numbers.
    assert cfg.data.cutoff > characters if name.startswith("llama") else cfg.data.cutoff < characters
    # One token short: an error naming the example, never a cut.
    longest = examples[lengths.index(max(lengths))]
    short = settings(backbones[name], train_file, tmp_path / "run", "ar", 0,
                     f"data.cutoff={max(lengths) - 1}")
    with pytest.raises(SequenceTooLong, match=rf"train\.jsonl:{longest.line}: needs {max(lengths)} tokens"):
        resolve(short)


@pytest.mark.parametrize("name", TOKENIZERS)
@pytest.mark.parametrize("objective,lora", [("ar", 0), ("ar", 4), ("mdm", 0), ("mdm", 4)])
def test_train_and_decode_through_dvar_eval(tmp_path, backbones, countdown, name, objective, lora):
    train_file, test_file = countdown
    run = train(settings(backbones[name], train_file, tmp_path / "run", objective, lora))
    losses = [json.loads(line)["loss"] for line in (run / "train_log.jsonl").read_text().splitlines()]
    assert len(losses) == 4 and all(torch.isfinite(torch.tensor(losses)))
    out = tmp_path / "eval"
    assert main(["eval", str(run), "--data", str(test_file), "--out", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n"] == 6 and metrics["decoder"] == ("greedy" if objective == "ar" else "topk")
    rows = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert all(isinstance(row["predict"], str) for row in rows)
    # The saved tokenizer is the one trained with (same class, same ids).
    saved = HFTokenizer.from_pretrained(run / "hf", mask=objective == "mdm")
    original = HFTokenizer.from_pretrained(backbones[name], mask=objective == "mdm")
    assert type(saved.tokenizer) is type(original.tokenizer)
    example = read_examples(test_file, get_task("countdown"))[0]
    assert saved.encode_example(example.input, example.output, 64) == original.encode_example(
        example.input, example.output, 64)


def test_text_the_tokenizer_cannot_spell_is_an_error_naming_the_example(tmp_path):
    """A SentencePiece model without byte fallback turns "+" (never seen) into <unk>, which
    decoding drops: "86+28=114" would come back as "8628=114", for the gold and for any
    model. dvar refuses such an example instead of training on it."""
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(corpus(("path",))), model_writer=model, model_type="bpe",
        vocab_size=40, hard_vocab_limit=False, byte_fallback=False, split_digits=True,
        unk_id=0, bos_id=1, eos_id=2, pad_id=-1, num_threads=1, minloglevel=2)
    (tmp_path / "tokenizer.model").write_bytes(model.getvalue())
    tokenizer = HFTokenizer(build_llama_sentencepiece(tmp_path, tmp_path / "tokenizer.model"), mask=False)
    assert tokenizer.decode_answer(tokenizer.encode("86+28=114")) == "8628=114"
    tokenizer.encode_example("86,28,13", "86,28", cutoff=32)  # every character known: fine
    with pytest.raises(ValueError, match=r"train\.jsonl:3: the tokenizer cannot spell the output "
                                         r"'86\+28=114': it gives <unk>"):
        tokenizer.encode_example("86,28,13", "86+28=114", cutoff=32, name="train.jsonl:3")


@pytest.mark.parametrize("name,objective,steps", [
    ("gpt2-bpe", "ar", 100), ("gpt2-bpe", "mdm", 100), ("llama-sp", "ar", 100),
    pytest.param("llama-fast", "ar", 100, marks=pytest.mark.slow),
    # Measured: LLaMA's MDM loss is still 0.38 after 150 steps (0% solved), 0.013 after 400.
    pytest.param("llama-sp", "mdm", 400, marks=pytest.mark.slow),
    pytest.param("llama-fast", "mdm", 400, marks=pytest.mark.slow),
])
def test_a_model_that_memorised_its_problems_is_judged_correct(tmp_path, backbones, name, objective, steps):
    """End to end in subword tokens: 8 countdown problems learned by heart, decoded by
    `dvar eval` (greedy / topk), turned back into text and accepted by the verifier."""
    data = tmp_path / "eight.jsonl"
    assert main(["generate", "countdown", "--numbers", "3", "--n", "8", "--seed", "0",
                 "--out", str(data), "--workers", "1"]) == 0
    run = train(settings(backbones[name], data, tmp_path / "run", objective, 0, "data.valid_size=0",
                         f"train.max_steps={steps}", "train.log_every=50", "diffusion.steps=8"))
    out = tmp_path / "eval"
    assert main(["eval", str(run), "--data", str(data), "--out", str(out)]) == 0
    # Measured: 8 of 8 for each (a broken decode path gives 0).
    assert json.loads((out / "metrics.json").read_text())["accuracy"] >= 0.75
