"""Every common Hugging Face architecture as a `model=hf:PATH` backbone: tiny random
models (2 layers, width 64, built here from transformers' config classes, no download) with
a character-level tokenizer, each as AR and MDM, fully fine-tuned and with LoRA.

Checked for every architecture the installed transformers offers (fast):
- attention: AR is exactly causal, MDM bidirectional (change a later token: the earlier
  logits stay / all change);
- logits: dvar's, also gathered with `logits_at`, equal the model's own forward in plain
  transformers, its logit post-processing included (Gemma2's softcapping, Cohere's and
  Granite's scaling: for those the head's raw output is shown to differ).
Checked per architecture x objective x fine-tuning (a fast subset by default, the whole
matrix with `-m slow`): 8 steps on 4x4 Sudoku through `dvar.trainer.train`, `dvar eval`,
and the run's `hf/` reloaded with plain transformers (+ peft) reproduces `dvar eval`'s
answers (AR: transformers' own greedy `generate`; MDM: dvar's decoder on the plain model).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch

transformers = pytest.importorskip("transformers")
peft = pytest.importorskip("peft")

from safetensors.torch import load_file  # noqa: E402
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers  # noqa: E402

from dvar.cli import main  # noqa: E402
from dvar.config import load_config  # noqa: E402
from dvar.data import read_examples  # noqa: E402
from dvar.evaluate import decode_samples, load_run  # noqa: E402
from dvar.hf import RUN_SUBDIR, BackboneInfo, HFBackbone, HFTokenizer, build_backbone  # noqa: E402
from dvar.trainer import train  # noqa: E402

CHARS = "0123456789+-*/=,abcdefghij"
WIDTH, LAYERS, HEADS = 64, 2, 4
COMMON = dict(hidden_size=WIDTH, intermediate_size=128, num_hidden_layers=LAYERS,
              num_attention_heads=HEADS, max_position_embeddings=128, initializer_range=0.2)
ROPE = dict(COMMON, num_key_value_heads=2, head_dim=WIDTH // HEADS)
# arch -> (transformers config class, its settings); token ids are set by `build`.
CONFIGS = {
    "llama": ("LlamaConfig", ROPE),
    "qwen2": ("Qwen2Config", ROPE),
    "qwen3": ("Qwen3Config", ROPE),
    "mistral": ("MistralConfig", ROPE),
    "gpt2": ("GPT2Config", dict(n_embd=WIDTH, n_layer=LAYERS, n_head=HEADS, n_positions=128,
                                resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                                initializer_range=0.2)),
    "gpt_neox": ("GPTNeoXConfig", dict(COMMON, hidden_dropout=0.0, attention_dropout=0.0)),
    "phi3": ("Phi3Config", dict(ROPE, resid_pdrop=0.0, embd_pdrop=0.0, attention_dropout=0.0)),
    "gemma": ("GemmaConfig", ROPE),
    # Gemma2's logits are 30 * tanh(x / 30) of the head's; its sliding window of 16 is
    # shorter than a 4x4 Sudoku row, so the windowed layers are exercised too.
    "gemma2": ("Gemma2Config", dict(ROPE, final_logit_softcapping=30.0, query_pre_attn_scalar=16,
                                    sliding_window=16)),
    "gemma3_text": ("Gemma3TextConfig", dict(ROPE, final_logit_softcapping=30.0,
                                             query_pre_attn_scalar=16, sliding_window=16)),
    "opt": ("OPTConfig", dict(hidden_size=WIDTH, ffn_dim=128, num_hidden_layers=LAYERS,
                              num_attention_heads=HEADS, max_position_embeddings=128,
                              word_embed_proj_dim=WIDTH, dropout=0.0, attention_dropout=0.0,
                              init_std=0.2)),
    "falcon": ("FalconConfig", dict(hidden_size=WIDTH, num_hidden_layers=LAYERS,
                                    num_attention_heads=HEADS, hidden_dropout=0.0,
                                    attention_dropout=0.0, initializer_range=0.2)),
    "falcon-alibi": ("FalconConfig", dict(hidden_size=WIDTH, num_hidden_layers=LAYERS,
                                          num_attention_heads=HEADS, hidden_dropout=0.0,
                                          attention_dropout=0.0, initializer_range=0.2, alibi=True)),
    "bloom": ("BloomConfig", dict(hidden_size=WIDTH, n_layer=LAYERS, n_head=HEADS,
                                  hidden_dropout=0.0, attention_dropout=0.0, initializer_range=0.2)),
    "cohere": ("CohereConfig", dict(ROPE, logit_scale=0.5)),  # logits = head * 0.5
    "granite": ("GraniteConfig", dict(ROPE, logits_scaling=4.0)),  # logits = head / 4
}
ARCHS = [arch for arch, (name, _) in CONFIGS.items() if hasattr(transformers, name)]
POSTPROCESSED = {"gemma2", "gemma3_text", "cohere", "granite"}
# The default suite trains one case of each kind of architecture and each fix; the whole
# matrix runs with -m slow.
FAST = {("llama", "mdm", 4), ("gemma2", "ar", 0), ("gemma2", "mdm", 4), ("opt", "mdm", 0),
        ("bloom", "mdm", 4), ("phi3", "ar", 4)}
CASES = [pytest.param(arch, objective, lora, id=f"{arch}-{objective}-{'lora' if lora else 'full'}",
                      marks=() if (arch, objective, lora) in FAST else pytest.mark.slow)
         for arch in ARCHS for objective in ("ar", "mdm") for lora in (0, 4)]

pytestmark = pytest.mark.usefixtures("one_thread")


def build(arch: str, directory: Path) -> Path:
    """A random `arch` model and a character-level tokenizer saved in `directory`: `<unk>`,
    BOS `<s>`, EOS `</s>`, no PAD or MASK (GPT-2: `<|endoftext|>` for all, as the real one)."""
    specials = ["<|endoftext|>"] if arch == "gpt2" else ["<unk>", "<s>", "</s>"]
    vocab = {token: i for i, token in enumerate(specials + list(CHARS))}
    core = Tokenizer(models.WordLevel(vocab, unk_token=specials[0]))
    core.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")  # characters
    core.decoder = decoders.Fuse()  # joined without spaces
    bos, eos = (0, 0) if arch == "gpt2" else (1, 2)
    tokenizer = transformers.PreTrainedTokenizerFast(
        tokenizer_object=core, unk_token=specials[0], bos_token=specials[bos], eos_token=specials[eos])
    name, settings = CONFIGS[arch]
    config = getattr(transformers, name)(vocab_size=len(vocab), bos_token_id=bos, eos_token_id=eos,
                                         pad_token_id=0, **settings)
    torch.manual_seed(0)
    transformers.AutoModelForCausalLM.from_config(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    """`pretrained(arch)`: the model's directory, built once per module."""
    root, built = tmp_path_factory.mktemp("pretrained"), {}

    def get(arch: str) -> Path:
        if arch not in built:
            built[arch] = build(arch, root / arch)
        return built[arch]

    return get


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("sudoku4")
    train_file, test_file = root / "train.jsonl", root / "test.jsonl"
    common = ["generate", "sudoku", "--size", "4", "--givens", "10:12", "--workers", "1"]
    assert main([*common, "--n", "64", "--seed", "0", "--out", str(train_file)]) == 0
    assert main([*common, "--n", "6", "--seed", "1", "--out", str(test_file)]) == 0
    return train_file, test_file


def bidirectional(lm):
    """What docs/hf.md tells a user to do to an MDM run's model in plain transformers."""
    lm.config.is_causal = False
    for module in lm.modules():
        if hasattr(module, "is_causal"):
            module.is_causal = False
    return lm


def plain(directory: Path, causal: bool):
    lm = transformers.AutoModelForCausalLM.from_pretrained(directory).eval()
    return lm if causal else bidirectional(lm)


def ids_2x12(vocab: int) -> torch.Tensor:
    return torch.randint(3, vocab, (2, 12), generator=torch.Generator().manual_seed(0))


def assert_attention(model: HFBackbone, tokenizer: HFTokenizer, ids_BxL: torch.Tensor,
                     causal: bool) -> torch.Tensor:
    """Change the tokens from position 8 on: with causal attention no earlier logit moves,
    with bidirectional attention every one does (and position 8's moves either way).
    Returns the logits of `ids_BxL`."""
    later = ids_BxL.clone()
    one, two = tokenizer.encode("12")
    later[:, 8:] = torch.where(later[:, 8:] == one, two, one)  # other tokens
    with torch.no_grad():
        logits, changed = model(ids_BxL), model(later)
    earlier_change = (logits[:, :8] - changed[:, :8]).abs().amax(dim=-1)  # B x 8
    if causal:
        assert float(earlier_change.max()) < 1e-6, earlier_change
    else:
        assert bool((earlier_change > 1e-6).all()), earlier_change
    assert bool(((logits[:, 8] - changed[:, 8]).abs().amax(dim=-1) > 1e-6).all())
    return logits


@pytest.mark.parametrize("objective", ["ar", "mdm"])
@pytest.mark.parametrize("arch", ARCHS)
def test_attention_and_logits_are_the_models_own(pretrained, arch, objective):
    directory, causal = pretrained(arch), objective == "ar"
    tokenizer = HFTokenizer.from_pretrained(directory, mask=not causal)
    lora = load_config(None, ["lora.r=0"]).lora
    model = build_backbone(str(directory), tokenizer, causal, lora).eval()
    ids = ids_2x12(len(CHARS))
    logits = assert_attention(model, tokenizer, ids, causal)

    own = plain(directory, causal)
    if tokenizer.vocab_size > own.get_input_embeddings().weight.size(0):
        # Rows dvar added (a MASK; Qwen2's tokenizer class adds a PAD): copied from dvar's.
        own.resize_token_embeddings(tokenizer.vocab_size, mean_resizing=False)
        with torch.no_grad():
            own.get_input_embeddings().weight.copy_(model._pretrained().get_input_embeddings().weight)
            own.get_output_embeddings().weight.copy_(model._pretrained().get_output_embeddings().weight)
    at = torch.rand(ids.shape, generator=torch.Generator().manual_seed(1)) < 0.5
    with torch.no_grad():
        reference = own(input_ids=ids).logits
        torch.testing.assert_close(logits, reference, rtol=0, atol=1e-5)
        torch.testing.assert_close(model(ids, logits_at=at), reference[at], rtol=0, atol=1e-5)
        raw = own.get_output_embeddings()(getattr(own, own.base_model_prefix)(input_ids=ids).last_hidden_state)
    if arch in POSTPROCESSED:  # the post-processing matters, so the equality above tests it
        assert float((raw - reference).abs().max()) > 1e-2


def settings(backbone: Path, data_file: Path, out: Path, objective: str, lora: int):
    return load_config(None, [
        "task=sudoku", f"objective={objective}", f"model=hf:{backbone}", f"data.train={data_file}",
        f"out_dir={out}", "data.valid_size=4", "train.max_steps=8", "train.batch_size=8",
        "train.lr=3e-2", "train.warmup_steps=0", "train.log_every=1", "train.eval_size=2",
        "train.eval_every=0", "train.save_every=8", "decode.batch_size=8", "diffusion.steps=4",
        f"lora.r={lora}", "lora.alpha=16", "lora.dropout=0.0",
    ])


def reloaded(run: Path, base: Path, causal: bool, lora: bool):
    """The run's hf/ directory read with transformers (and peft) alone."""
    saved = run / RUN_SUBDIR
    if not lora:
        return plain(saved, causal)
    lm = plain(base, causal)
    size = len(transformers.AutoTokenizer.from_pretrained(saved))
    old = lm.get_input_embeddings().weight.size(0)
    if size > old:  # the added MASK, grown as dvar grows it: rows = mean of the old ones
        lm.resize_token_embeddings(size, mean_resizing=False)
        with torch.no_grad():
            for w in {id(w): w for w in (lm.get_input_embeddings().weight,
                                         lm.get_output_embeddings().weight)}.values():
                w[old:] = w[:old].mean(dim=0)
    return peft.PeftModel.from_pretrained(lm, saved).eval()


def test_the_mdm_lora_adapter_saves_the_trained_rows_only(tmp_path, pretrained, data, capsys):
    run = train(settings(pretrained("llama"), data[0], tmp_path / "run", "mdm", 4))
    saved = run / RUN_SUBDIR
    tensors = load_file(str(saved / "adapter_model.safetensors"))
    assert any("trainable_tokens" in k for k in tensors) and any("lora_A" in k for k in tensors)
    # No whole embedding or head: nothing with the vocabulary's rows but the MASK's delta.
    vocabulary = HFTokenizer.from_pretrained(saved, mask=True).vocab_size
    assert all(vocabulary not in t.shape for t in tensors.values()), {k: t.shape for k, t in tensors.items()}
    assert "saved the LoRA adapter in" in capsys.readouterr().out


@pytest.mark.parametrize("arch,objective,lora", CASES)
def test_trains_evaluates_and_reloads_in_plain_transformers(tmp_path, pretrained, data, arch,
                                                           objective, lora, capsys):
    train_file, test_file = data
    causal = objective == "ar"
    run = train(settings(pretrained(arch), train_file, tmp_path / "run", objective, lora))
    log = capsys.readouterr().out
    if lora and arch == "phi3":  # peft has no default targets for Phi-3
        assert "peft has no default for phi3; using all-linear" in log
    loss = [json.loads(line)["loss"] for line in (run / "train_log.jsonl").read_text().splitlines()]
    assert len(loss) == 8 and all(torch.isfinite(torch.tensor(loss)))

    out = tmp_path / "eval"
    assert main(["eval", str(run), "--data", str(test_file), "--steps", "4", "--out", str(out)]) == 0
    rows = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    answers = [row["predict"] for row in rows]
    assert len(answers) == 6

    lm = reloaded(run, pretrained(arch), causal, bool(lora))
    loaded = load_run(run)
    examples = read_examples(test_file, loaded.task)
    rows_BxL = torch.tensor([loaded.tokenizer.encode_example(ex.input, ex.output, loaded.cutoff)
                             for ex in examples[:2]])
    assert_attention(loaded.model, loaded.tokenizer, rows_BxL, causal)
    if causal:  # transformers' own greedy decoding
        tokenizer = transformers.AutoTokenizer.from_pretrained(run / RUN_SUBDIR)
        for example, answer in zip(examples, answers):
            prompt = loaded.tokenizer.encode_prompt(example.input)
            with torch.no_grad():
                generated = lm.generate(torch.tensor([prompt]), do_sample=False,
                                        max_new_tokens=loaded.max_new_tokens,
                                        eos_token_id=tokenizer.eos_token_id,
                                        pad_token_id=tokenizer.eos_token_id)
            assert loaded.tokenizer.decode_answer(generated[0, len(prompt):]) == answer
    else:  # dvar's decoder on the plain model
        copy = HFBackbone(lm, BackboneInfo(str(pretrained(arch)), False, bool(lora))).eval()
        decoded = decode_samples(dataclasses.replace(loaded, model=copy), [ex.input for ex in examples],
                                 [str(i) for i in range(len(examples))], steps=4)
        assert [s[0] for s in decoded.samples] == answers


def test_an_architecture_that_stays_causal_is_a_one_line_error_at_start(tmp_path, pretrained, data,
                                                                        monkeypatch, capsys):
    """An attention kernel that ignores `is_causal=False` (here: SDPA forced causal, as an
    architecture with the causal mask built into its code would behave): `objective=mdm`
    stops before training with an error naming the architecture."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward
    from transformers.modeling_utils import AttentionInterface

    def always_causal(module, query, key, value, attention_mask, **kwargs):
        kwargs.pop("is_causal", None)
        return sdpa_attention_forward(module, query, key, value, None, is_causal=True, **kwargs)

    monkeypatch.setitem(AttentionInterface._global_mapping, "sdpa", always_causal)
    out = tmp_path / "run"
    code = main(["train", "task=sudoku", "objective=mdm", f"model=hf:{pretrained('llama')}",
                 f"data.train={data[0]}", f"out_dir={out}", "data.valid_size=4", "train.max_steps=1"])
    err = capsys.readouterr().err
    dvar_lines = [line for line in err.splitlines() if line.startswith("dvar")]
    assert code == 2 and len(dvar_lines) == 1 and "Traceback" not in err, err
    assert "(llama) stays causal" in err and "cannot be a bidirectional MDM" in err
    assert not (out / "train_log.jsonl").exists()


@pytest.mark.parametrize("objective", ["ar", "mdm"])
def test_attention_reaches_the_kernel_without_a_dense_mask(pretrained, monkeypatch, objective):
    """Unpadded rows reach SDPA with no mask at all, only its `is_causal` flag (what lets
    flash-attention kernels run on a GPU): True for AR, False for MDM."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward
    from transformers.modeling_utils import AttentionInterface

    seen = []

    def spy(module, query, key, value, attention_mask, **kwargs):
        seen.append((attention_mask, kwargs.get("is_causal", module.is_causal)))
        return sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)

    monkeypatch.setitem(AttentionInterface._global_mapping, "sdpa", spy)
    directory, causal = pretrained("llama"), objective == "ar"
    model = build_backbone(str(directory), HFTokenizer.from_pretrained(directory, mask=not causal),
                           causal, load_config(None, ["lora.r=0"]).lora).eval()
    seen.clear()
    with torch.no_grad():
        model(ids_2x12(len(CHARS)))
    assert len(seen) == LAYERS and all(mask is None and flag == causal for mask, flag in seen), seen
