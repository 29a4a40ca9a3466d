"""Pretrained Hugging Face backbones (`model=hf:PATH`): tiny random LLaMA and GPT-2 models
built here (no download) are fine-tuned as AR (full, LoRA) and MDM (full, LoRA), evaluated
through `dvar eval`, saved in Hugging Face format and loaded back."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

transformers = pytest.importorskip("transformers")
peft = pytest.importorskip("peft")

from safetensors.torch import load_file  # noqa: E402
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers  # noqa: E402

from dvar.checkpoint import list_checkpoints, load_weights  # noqa: E402
from dvar.cli import main  # noqa: E402
from dvar.config import ConfigError, load_config  # noqa: E402
from dvar.data import read_examples  # noqa: E402
from dvar.decoders import decoder_names, get_decoder  # noqa: E402
from dvar.evaluate import load_run  # noqa: E402
from dvar.hf import RUN_SUBDIR, BackboneInfo, HFBackbone, HFTokenizer, build_backbone  # noqa: E402
from dvar.trainer import _train, train  # noqa: E402

ARCHS = ("llama", "gpt2")
CHARS = "0123456789+-*/=,abcdefghij"


def make_backbone(arch: str, directory: Path) -> Path:
    """A random 2-layer, width-32 causal LM with a character-level tokenizer, saved as a
    pretrained model directory. LLaMA's has BOS `<s>` and EOS `</s>`; GPT-2's has only
    `<|endoftext|>` for both, as the real ones do. Neither has a PAD or MASK token."""
    specials = ["<unk>", "<s>", "</s>"] if arch == "llama" else ["<|endoftext|>"]
    vocab = {token: i for i, token in enumerate(specials + list(CHARS))}
    core = Tokenizer(models.WordLevel(vocab, unk_token=specials[0]))
    core.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")  # characters
    core.decoder = decoders.Fuse()  # joined without spaces
    if arch == "llama":
        tokenizer = transformers.PreTrainedTokenizerFast(
            tokenizer_object=core, unk_token="<unk>", bos_token="<s>", eos_token="</s>")
        config = transformers.LlamaConfig(
            vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
            bos_token_id=1, eos_token_id=2, pad_token_id=None, initializer_range=0.2)
    else:
        end = "<|endoftext|>"
        tokenizer = transformers.PreTrainedTokenizerFast(
            tokenizer_object=core, unk_token=end, bos_token=end, eos_token=end)
        config = transformers.GPT2Config(
            vocab_size=len(vocab), n_embd=32, n_layer=2, n_head=4, n_positions=64,
            bos_token_id=0, eos_token_id=0, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
            initializer_range=0.2)
    torch.manual_seed(0)
    model = transformers.AutoModelForCausalLM.from_config(config)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


# Tiny models: one thread each (tests/conftest.py).
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("sudoku4")
    train_file, test_file = root / "train.jsonl", root / "test.jsonl"
    common = ["generate", "sudoku", "--size", "4", "--givens", "10:12", "--workers", "1"]
    assert main([*common, "--n", "200", "--seed", "0", "--out", str(train_file)]) == 0
    assert main([*common, "--n", "8", "--seed", "1", "--out", str(test_file)]) == 0
    return train_file, test_file


@pytest.fixture(scope="module")
def backbones(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("pretrained")
    return {arch: make_backbone(arch, root / arch) for arch in ARCHS}


def settings(backbone: Path, data_file: Path, out: Path, objective: str, lora: int, *extra: str):
    return load_config(None, [
        "task=sudoku", f"objective={objective}", f"model=hf:{backbone}", f"data.train={data_file}",
        f"out_dir={out}", "data.valid_size=4", "train.max_steps=16", "train.batch_size=8",
        "train.lr=3e-2", "train.warmup_steps=0", "train.log_every=1", "train.eval_size=2",
        "train.save_every=8", "decode.batch_size=8", "diffusion.steps=4", f"lora.r={lora}",
        "lora.alpha=16", "lora.dropout=0.0", "lora.target_modules=all-linear", *extra,
    ])


@pytest.fixture(scope="module")
def trained(tmp_path_factory, data, backbones):
    """`trained(arch, objective, lora_rank)`: a run directory, trained once per module."""
    runs: dict[tuple[str, str, int], Path] = {}

    def get(arch: str, objective: str, lora: int) -> Path:
        key = (arch, objective, lora)
        if key not in runs:
            out = tmp_path_factory.mktemp(f"{arch}-{objective}-{lora}") / "run"
            runs[key] = train(settings(backbones[arch], data[0], out, objective, lora))
        return runs[key]

    return get


def losses(run: Path) -> list[float]:
    return [json.loads(line)["loss"] for line in (run / "train_log.jsonl").read_text().splitlines()]


def prompts_batch(run_obj, examples) -> torch.Tensor:
    rows = [run_obj.tokenizer.encode_example(ex.input, ex.output, run_obj.cutoff) for ex in examples]
    return torch.tensor(rows)


def input_gradient(model: HFBackbone, ids_1xL: torch.Tensor, position: int) -> torch.Tensor:
    """|d logits[position] / d input embedding[j]| for every j (a random projection of the
    logits, so that no direction cancels)."""
    captured = {}

    def hook(module, inputs, output):
        captured["x"] = output.detach().requires_grad_(True)
        return captured["x"]

    embeddings = model._pretrained().get_input_embeddings()
    handle = embeddings.register_forward_hook(hook)
    try:
        logits = model(ids_1xL)
    finally:
        handle.remove()
    torch.manual_seed(0)
    (logits[0, position] * torch.randn_like(logits[0, position])).sum().backward()
    return captured["x"].grad[0].abs().sum(dim=-1)


def pretrained_copy(run: Path, arch_dir: Path, causal: bool, lora: bool) -> HFBackbone:
    """The run's hf/ directory loaded with transformers (and peft) alone."""
    saved = run / RUN_SUBDIR
    if lora:
        base = transformers.AutoModelForCausalLM.from_pretrained(arch_dir)
        tokenizer = transformers.AutoTokenizer.from_pretrained(saved)
        if len(tokenizer) > base.get_input_embeddings().weight.size(0):
            # An added MASK: the base grows as training grew it (rows = mean of the old ones).
            old = base.get_input_embeddings().weight.size(0)
            base.resize_token_embeddings(len(tokenizer), mean_resizing=False)
            with torch.no_grad():
                for w in {id(w): w for w in (base.get_input_embeddings().weight,
                                             base.get_output_embeddings().weight)}.values():
                    w[old:] = w[:old].mean(dim=0)
        lm = peft.PeftModel.from_pretrained(base, saved)
    else:
        lm = transformers.AutoModelForCausalLM.from_pretrained(saved)
    if not causal:  # an MDM: full attention, set as docs/hf.md says
        lm.config.is_causal = False
        for module in lm.modules():
            if hasattr(module, "is_causal"):
                module.is_causal = False
    return HFBackbone(lm, BackboneInfo(str(arch_dir), causal, lora)).eval()


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("objective,lora", [("ar", 0), ("ar", 4), ("mdm", 0), ("mdm", 4)])
def test_fine_tune_evaluate_save_and_reload(tmp_path, data, backbones, trained, arch, objective, lora):
    _, test_file = data
    run = trained(arch, objective, lora)
    loss = losses(run)
    assert len(loss) == 16 and all(torch.isfinite(torch.tensor(loss)))
    # Measured drops over 16 steps: 28-53% (MDM losses are noisy: t is drawn per sequence).
    assert sum(loss[-4:]) < 0.85 * sum(loss[:4]), loss

    saved = run / RUN_SUBDIR
    adapter = (saved / "adapter_config.json").exists()
    assert adapter == bool(lora) and (saved / "tokenizer.json").exists()
    assert not (run / "model.safetensors").exists() and not (run / "vocab.json").exists()

    # dvar eval, the family's default decoder.
    out = tmp_path / "eval"
    assert main(["eval", str(run), "--data", str(test_file), "--steps", "4", "--out", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    rows = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert metrics["n"] == len(rows) == 8 and metrics["decoder"] == ("greedy" if objective == "ar" else "topk")

    # Reloaded three ways, the outputs are identical: dvar's load_run, the last checkpoint
    # applied to a freshly built backbone, and transformers/peft reading hf/ directly.
    loaded = load_run(run)
    ids = prompts_batch(loaded, read_examples(test_file, loaded.task)[:4])
    with torch.no_grad():
        reference = loaded.model(ids)
        fresh = build_backbone(str(backbones[arch]), HFTokenizer.from_pretrained(
            backbones[arch], mask=objective == "mdm"), objective == "ar", loaded.config.lora)
        load_weights(fresh, list_checkpoints(run)[-1] / "model.safetensors")
        assert torch.equal(fresh.eval()(ids), reference)
        copy = pretrained_copy(run, backbones[arch], objective == "ar", bool(lora))
        torch.testing.assert_close(copy(ids), reference, rtol=0, atol=1e-6)
        untrained = build_backbone(str(backbones[arch]), HFTokenizer.from_pretrained(
            backbones[arch], mask=objective == "mdm"), objective == "ar", loaded.config.lora)
        assert not torch.allclose(untrained.eval()(ids), reference)  # training changed it

    # Attention: MDM's output at position i depends on later inputs, AR's does not.
    grad_L = input_gradient(loaded.model, ids[:1], position=5)
    assert bool((grad_L[:6] > 0).all())
    if objective == "mdm":
        assert bool((grad_L[6:] > 0).all()) and loaded.objective.shift
    else:
        assert bool((grad_L[6:] == 0).all())


@pytest.mark.parametrize("arch", ARCHS)
def test_every_decoder_decodes_a_run(tmp_path, data, trained, arch):
    _, test_file = data
    for objective in ("ar", "mdm"):
        run = trained(arch, objective, 4)
        for name in decoder_names(objective):
            out = tmp_path / f"eval-{objective}-{name}"
            assert main(["eval", str(run), "--data", str(test_file), "--decoder", name,
                         "--steps", "3", "--samples", "2", "--out", str(out)]) == 0, name
            metrics = json.loads((out / "metrics.json").read_text())
            assert metrics["n"] == 8 and metrics["decoder"] == name
            assert 0 <= metrics["pass_at_1"] <= metrics["pass_at_k"] <= 1


@pytest.mark.parametrize("arch", ARCHS)
def test_greedy_with_the_hf_cache_equals_recomputation_and_batching(data, trained, arch):
    _, test_file = data
    loaded = load_run(trained(arch, "ar", 0))
    prompts = [loaded.tokenizer.encode_prompt(ex.input)
               for ex in read_examples(test_file, loaded.task)[:6]]
    greedy = get_decoder("greedy")
    kwargs = dict(seq_len=loaded.cutoff, max_new_tokens=loaded.max_new_tokens,
                  eos_id=loaded.tokenizer.eos_id)
    batched = greedy(loaded.model, prompts, **kwargs)
    for prompt, generated in zip(prompts, batched.generated):
        alone = greedy(loaded.model, [prompt], **kwargs)
        assert alone.generated[0] == generated
        ids = list(prompt)  # no cache: the whole sequence recomputed for every token
        with torch.no_grad():
            while len(ids) - len(prompt) < len(generated):
                ids.append(int(loaded.model(torch.tensor([ids]))[0, -1].argmax()))
        assert ids[len(prompt):] == generated


def test_deterministic_topk_batched_equals_one_at_a_time(data, trained):
    _, test_file = data
    loaded = load_run(trained("llama", "mdm", 4))
    prompts = [loaded.tokenizer.encode_prompt(ex.input)
               for ex in read_examples(test_file, loaded.task)[:4]]
    topk = get_decoder("topk", steps=4, noise=0.0)
    predict = loaded.objective.predictor(loaded.model)
    kwargs = dict(seq_len=loaded.cutoff, eos_id=loaded.tokenizer.eos_id,
                  mask_id=loaded.tokenizer.mask_id)
    batched = topk(predict, prompts, **kwargs)
    assert all(loaded.tokenizer.mask_id not in row for row in batched.generated)
    for prompt, generated in zip(prompts, batched.generated):
        assert topk(predict, [prompt], **kwargs).generated[0] == generated


def test_killed_lora_mdm_run_resumes_to_the_same_adapter(tmp_path, data, backbones):
    train_file, _ = data
    extra = ("train.max_steps=6", "train.save_every=3", "train.eval_every=0", "train.eval_size=0")
    straight = train(settings(backbones["llama"], train_file, tmp_path / "a", "mdm", 4, *extra))
    killed = settings(backbones["llama"], train_file, tmp_path / "b", "mdm", 4, *extra)
    _train(killed, stop_after=4)
    assert not (tmp_path / "b" / RUN_SUBDIR).exists()
    resumed = train(settings(backbones["llama"], train_file, tmp_path / "b", "mdm", 4, *extra,
                             "resume=true"))
    a = load_file(str(straight / RUN_SUBDIR / "adapter_model.safetensors"))
    b = load_file(str(resumed / RUN_SUBDIR / "adapter_model.safetensors"))
    assert a.keys() == b.keys() and any("lora_A" in k for k in a)
    assert any("trainable_tokens" in k for k in a)  # the added MASK row is trained and saved
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=0, atol=0, msg=name)
    # A LoRA checkpoint holds only the trained tensors, not the frozen base.
    state = load_file(str(list_checkpoints(resumed)[-1] / "model.safetensors"))
    assert state and all("lora_" in k or "trainable_tokens" in k for k in state)


def test_hf_tokenizer_layout(backbones):
    llama = HFTokenizer.from_pretrained(backbones["llama"], mask=True)
    row = llama.encode_example("12,3", "45", cutoff=12)
    bos, eos = llama.prefix[0], llama.eos_id
    assert row[0] == bos and row[5] == llama.sep_id == eos and row[8] == eos
    assert row[9:] == [llama.pad_id] * 3 == [eos] * 3  # no PAD token: EOS pads
    assert llama.decode_answer(row[6:]) == "45" and llama.mask_id == llama.vocab_size - 1
    gpt2 = HFTokenizer.from_pretrained(backbones["gpt2"], mask=False)
    assert gpt2.prefix == [] and gpt2.mask_id is None  # BOS = EOS: no prefix
    assert gpt2.encode_prompt("12") == gpt2.encode("12") + [gpt2.eos_id]
    with pytest.raises(ValueError, match="cutoff length is 4"):
        gpt2.encode_example("12", "345", cutoff=4)
    for tok in (llama, gpt2):
        row = tok.encode_example("12,3", "45", cutoff=12)
        start, end = tok.answer_span("12,3", "45")
        assert row[start - 1] == tok.sep_id and row[end - 1] == tok.eos_id
        assert tok.decode_answer(row[start:]) == "45"


def test_llama_recipes_load_with_the_papers_lora_settings():
    recipes = sorted(Path(__file__).parents[1].glob("configs/llama-*.yaml"))
    assert len(recipes) >= 4
    for recipe in recipes:
        cfg = load_config(recipe)
        assert cfg.model.startswith("hf:") and cfg.lora.r == 16, recipe
        assert cfg.train.lr == 1e-4 and cfg.train.epochs == 40, recipe


def test_a_cutoff_beyond_the_models_positions_is_an_error(tmp_path, data, backbones):
    cfg = settings(backbones["gpt2"], data[0], tmp_path / "run", "ar", 0, "data.cutoff=65")
    with pytest.raises(ConfigError, match="exceeds the 64 positions"):
        train(cfg)


def test_a_missing_model_directory_is_an_error_not_a_download(tmp_path, data):
    cfg = settings(tmp_path / "no-such-model", data[0], tmp_path / "run", "ar", 4)
    with pytest.raises(FileNotFoundError, match="not a local directory"):
        train(cfg)
