"""dvar.rundir: a run directory's state, its evaluation names, its compute record, and
save/load of dvar's own backbone through one interface."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch

from dvar.config import ConfigError, load_config, save_config
from dvar.model import Transformer, model_config
from dvar.rundir import RunDir, compute_record, load_model, save_model
from dvar.tokenizer import CharTokenizer
from dvar.trainer import train


def run_config(out: Path, *extra: str):
    return load_config(None, ["task=sudoku", "model=micro", "data.train=train.jsonl",
                              "train.max_steps=10", f"out_dir={out}", *extra])


def micro_model() -> tuple[CharTokenizer, Transformer]:
    tokenizer = CharTokenizer()
    torch.manual_seed(0)
    return tokenizer, Transformer(model_config("micro", tokenizer.vocab_size, 34, causal=False))


def test_states_of_a_run_directory(tmp_path):
    run = RunDir(tmp_path / "run")
    assert run.state() == "fresh" and run.config() is None and not run.finished
    # Killed before its first checkpoint: cleared, reported fresh.
    run.path.mkdir()
    save_config(run_config(run.path), run.path / "config.yaml")
    (run.path / "train_log.jsonl").write_text('{"step": 1}\n')
    assert run.peek() == "fresh" and run.path.exists()  # peek reads, touches nothing
    assert run.state() == "fresh" and not (run.path / "config.yaml").exists()
    assert not [p for p in run.path.iterdir() if p.name != ".claim"]
    # Killed after a checkpoint: resumable.
    step = run.path / "checkpoints" / "step-00000005"
    step.mkdir(parents=True)
    (step / "state.json").write_text("{}")
    save_config(run_config(run.path), run.path / "config.yaml")
    assert run.peek() == run.state() == "resumable" and run.checkpoints() == [step]
    assert run.config().train.max_steps == 10
    tokenizer, model = micro_model()
    save_model(run.path, model, tokenizer)
    assert run.finished and run.peek() == run.state() == "finished"


def test_a_run_directory_has_one_owner(tmp_path, claimed_elsewhere):
    run = RunDir(tmp_path / "run")
    with claimed_elsewhere(run.path) as pid:
        save_config(run_config(run.path), run.path / "config.yaml")  # its training, before a checkpoint
        assert run.owner() == str(pid)
        in_use = re.escape(f"{run.path} is in use by another process (pid {pid})")
        with pytest.raises(ConfigError, match=in_use):
            with run.claim():
                pass
        with pytest.raises(ConfigError, match=in_use):
            run.state()  # would clear what the owner writes
        with pytest.raises(ConfigError, match=in_use):
            train(run_config(run.path))
        assert (run.path / "config.yaml").is_file()
    # The claim ended with its process, however it died; nested claims in one process are one.
    assert run.owner() is None
    with run.claim():
        assert run.state() == "fresh" and not (run.path / "config.yaml").exists()
    with run.claim():
        pass


def test_a_directory_that_holds_no_run_is_never_cleared(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="holds no run"):
        RunDir(tmp_path).state()
    assert (tmp_path / "notes.txt").exists()


@pytest.mark.parametrize("override, message", [
    ("train.max_steps=20", "train.max_steps=10, this run wants 20"),
    ("seed=1", "seed=0"),
    ("diffusion.gamma=2.0", "diffusion.gamma=1.0"),
    ("arch.positions=rope", "arch.positions=learned"),
    ("objective=ar", "objective=mdm"),
])
def test_a_run_trained_with_other_settings_is_an_error(tmp_path, override, message):
    run = RunDir(tmp_path)
    save_config(run_config(tmp_path), tmp_path / "config.yaml")
    with pytest.raises(ConfigError, match=message):
        run.state(run_config(tmp_path, override))
    assert (tmp_path / "config.yaml").exists()  # not cleared


def test_settings_that_do_not_define_a_run_may_differ(tmp_path):
    run = RunDir(tmp_path)
    save_config(run_config(tmp_path, "diffusion.shift=false"), tmp_path / "config.yaml")
    # Logging, checkpointing and an unresolved shift (None) are not the run's identity.
    wanted = run_config(tmp_path, "train.log_every=1", "train.save_every=5", "resume=true")
    assert wanted.diffusion.shift is None
    assert run.state(wanted) == "fresh"


def test_eval_dir_naming_rule(tmp_path):
    run = RunDir(tmp_path / "run")
    assert run.eval_dir("data/sudoku/test.jsonl", "topk-s20") == tmp_path / "run" / "eval" / "test-topk-s20"
    assert run.eval_dir(Path("x/valid.jsonl"), "greedy") == tmp_path / "run" / "eval" / "valid-greedy"


def test_compute_record_counts_tokens_and_flops(tmp_path):
    tokenizer, model = micro_model()
    record = compute_record(model, steps=10, batch_size=8, cutoff=34, train_seconds=2.0)
    counts = model.num_parameters()
    tokens = 10 * 8 * 34
    assert record["tokens"] == tokens and record["tokens_per_s"] == tokens / 2.0
    assert record["parameters"] == counts.total == record["trained_parameters"]
    # micro: 2 layers of width 64.
    assert record["flops"] == tokens * (6 * counts.non_embedding + 12 * 2 * 64 * 34)
    run = RunDir(tmp_path)
    assert run.compute() is None
    run.write_compute(record)
    assert run.compute() == json.loads(json.dumps(record))
    assert not list(tmp_path.glob(".*tmp"))


def test_save_and_load_model_round_trip(tmp_path):
    tokenizer, model = micro_model()
    save_model(tmp_path, model, tokenizer)
    assert {p.name for p in tmp_path.iterdir()} == {"vocab.json", "model.json", "model.safetensors"}
    loaded_tokenizer, loaded = load_model(tmp_path, run_config(tmp_path))
    assert loaded_tokenizer.to_dict() == tokenizer.to_dict() and not loaded.training
    ids = torch.tensor([tokenizer.encode_prompt("1000201002000103")])
    model.eval()
    assert torch.equal(model(ids), loaded(ids))
    (tmp_path / "model.json").unlink()
    with pytest.raises(FileNotFoundError, match="model.json is missing"):
        load_model(tmp_path, run_config(tmp_path))


def test_compute_record_of_a_pretrained_backbone_reads_its_config():
    transformers = pytest.importorskip("transformers")
    from dvar.hf import BackboneInfo, HFBackbone

    config = transformers.GPT2Config(vocab_size=40, n_embd=32, n_layer=3, n_head=4, n_positions=64)
    model = HFBackbone(transformers.GPT2LMHeadModel(config), BackboneInfo("tiny", True, False))
    assert model.dimensions == (3, 32)
    record = compute_record(model, steps=2, batch_size=4, cutoff=16, train_seconds=1.0)
    counts = model.num_parameters()
    assert record["attention_flops"] and record["tokens"] == 2 * 4 * 16
    assert record["flops"] == record["tokens"] * (6 * counts.non_embedding + 12 * 3 * 32 * 16)
