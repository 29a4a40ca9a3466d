"""The run configuration: files merged in order, `base:`, the recipes and dvar's overlays."""

from __future__ import annotations

import dataclasses
import json
import subprocess
from pathlib import Path
from typing import ClassVar

import pytest
import yaml

import dvar.trainer
from dvar import decoders, objectives
from dvar.cli import main
from dvar.config import (CONFIGS_DIR, Config, ConfigError, key_help, load_config, recipe_config,
                         recipe_files, save_config, to_dict)
from dvar.decoders import decode_steps
from dvar.decoders.greedy import Greedy
from dvar.evaluate import Run, build_objective, load_run, make_decoder
from dvar.model import SIZES, model_config
from dvar.objectives.ar import Autoregressive
from dvar.tasks import get_task
from dvar.tokenizer import CharTokenizer

ROOT = Path(__file__).resolve().parents[1]
# The commit whose configs/dvar/ still held dvar's 16 recipes as full copies.
COPIES = "bc15d57"


def _git(*args: str) -> str:
    try:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip(f"needs git and commit {COPIES} (the old copies of configs/dvar/)")


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_overlays_give_exactly_the_configs_the_old_copies_gave(tmp_path):
    names = [Path(p).stem for p in _git("ls-tree", "--name-only", f"{COPIES}:configs/dvar").split()]
    assert len(names) == 16
    for name in names:
        old = write(tmp_path / f"{name}.yaml", _git("show", f"{COPIES}:configs/dvar/{name}.yaml"))
        assert recipe_config(name, "dvar") == load_config(old), name
        # The same through plain files, as `dvar train A.yaml B.yaml` merges them.
        files = recipe_files(name, "dvar")
        assert load_config(files, [f"out_dir=runs/dvar-{name}"]) == load_config(old), name
        assert recipe_config(name) == load_config(CONFIGS_DIR / f"{name}.yaml")


def test_recipe_config_overrides_win_and_pick_the_overlay_of_their_objective():
    cfg = recipe_config("sudoku-mdm", "dvar", ["objective=ar", "decode.decoder=greedy", "decode.settings={}",
                                                "out_dir=runs/x", "train.lr=0.5"])
    assert recipe_files("sudoku-mdm", "dvar", "ar")[-1] == CONFIGS_DIR / "dvar" / "ar.yaml"
    assert (cfg.objective, cfg.out_dir, cfg.train.lr, cfg.arch.dropout) == ("ar", "runs/x", 0.5, 0.0)
    assert cfg.diffusion.shift is True  # the ar overlay leaves the recipe's shift alone
    with pytest.raises(ConfigError, match="no such recipe.*sudoku-mdm"):
        recipe_config("sudoku-mmd")
    with pytest.raises(ConfigError, match="family 'mine' unknown"):
        recipe_config("sudoku-mdm", "mine")


def test_files_merge_in_order_later_keys_winning(tmp_path):
    a = write(tmp_path / "a.yaml", "task: sudoku\ntrain: {lr: 0.1, epochs: 3}\n")
    b = write(tmp_path / "b.yaml", "train: {lr: 0.2}\n")
    cfg = load_config([a, b], ["seed=4"])
    assert (cfg.task, cfg.train.lr, cfg.train.epochs, cfg.seed) == ("sudoku", 0.2, 3.0, 4)
    assert load_config([b, a]).train.lr == 0.1
    assert load_config(str(a)) == load_config([a]) and load_config(None) == Config()


def test_base_is_merged_before_the_files_own_keys_relative_to_the_file(tmp_path):
    write(tmp_path / "recipes" / "common.yaml", "task: path\nseed: 1\ntrain: {lr: 0.1}\n")
    write(tmp_path / "recipes" / "small.yaml", "model: micro\nseed: 2\n")
    top = write(tmp_path / "recipes" / "sub" / "top.yaml",
                "base: [../common.yaml, ../small.yaml]\nseed: 3\n")
    cfg = load_config(top)
    assert (cfg.task, cfg.model, cfg.seed, cfg.train.lr) == ("path", "micro", 3, 0.1)
    one = write(tmp_path / "one.yaml", "base: recipes/small.yaml\n")
    assert load_config(one).model == "micro"


def test_base_errors_name_the_file(tmp_path):
    loop = write(tmp_path / "loop.yaml", "base: loop2.yaml\n")
    write(tmp_path / "loop2.yaml", "base: loop.yaml\n")
    with pytest.raises(ConfigError, match="loops back"):
        load_config(loop)
    missing = write(tmp_path / "m.yaml", "base: nowhere.yaml\n")
    with pytest.raises(ConfigError, match=r"nowhere.yaml: no such config file \(named by .*m.yaml"):
        load_config(missing)
    with pytest.raises(ConfigError, match=r"nothere.yaml: no such config file"):
        load_config(tmp_path / "nothere.yaml")


def test_dvar_train_merges_several_files_before_the_overrides(tmp_path, monkeypatch, capsys):
    seen = []
    monkeypatch.setattr(dvar.trainer, "train", seen.append)
    a = write(tmp_path / "a.yaml", "task: sudoku\nseed: 1\n")
    b = write(tmp_path / "b.yaml", "seed: 2\nmodel: micro\n")
    assert main(["train", str(a), str(b), "seed=3", "train.lr=0.5"]) == 0
    (cfg,) = seen
    assert (cfg.task, cfg.model, cfg.seed, cfg.train.lr) == ("sudoku", "micro", 3, 0.5)
    assert main(["train", str(a), "seed=3", str(b)]) == 2
    assert "after key=value" in capsys.readouterr().err


# ---------------------------------------------------------------------- decoder settings
def test_decoder_settings_are_a_mapping_checked_and_typed_by_the_decoder(tmp_path):
    recipe = write(tmp_path / "r.yaml", "decode: {decoder: topk, settings: {noise: 1, repredict: true}}\n")
    cfg = load_config(recipe)
    assert cfg.decode.settings == {"noise": 1.0, "repredict": True}
    assert isinstance(cfg.decode.settings["noise"], float)
    bad = {
        "decode: {decoder: topp}": r"r.yaml: unknown decoder 'topp'; known decoders: .*topk",
        "decode: {settings: {nois: 0.5}}": r"decode.settings.nois: decoder 'topk' has no such setting; "
                                            r"valid: known_length, noise, remask, repredict, schedule",
        "decode: {settings: {noise: high}}": r"decode.settings.noise='high' is not a valid float",
        "decode: {settings: {steps: 5}}": r"decode.settings.steps: set decode.steps instead",
        "objective: ar\ndecode: {decoder: topk}": r"'topk' decodes mdm models.*valid: greedy, sample",
        "decode: {settings: [noise=0.5]}": r"\(decode\): settings=\['noise=0.5'\] is not a valid mapping",
    }
    for text, message in bad.items():
        with pytest.raises(ConfigError, match=message):
            load_config(write(tmp_path / "r.yaml", text + "\n"))
    with pytest.raises(ConfigError, match="command line: decode.settings.tau: decoder 'topk'"):
        load_config(None, ["decode.settings.tau=0.5"])


def test_settings_overrides_set_one_entry_or_the_whole_mapping():
    one = load_config(CONFIGS_DIR / "sudoku-mdm.yaml", ["decode.settings.noise=0.25"])
    assert one.decode.settings == {"noise": 0.25, "repredict": True}
    whole = load_config(CONFIGS_DIR / "sudoku-mdm.yaml", ["decode.settings={noise: 0.25}"])
    assert whole.decode.settings == {"noise": 0.25}
    cleared = load_config(CONFIGS_DIR / "sudoku-mdm.yaml", ["decode.settings={}"])
    assert cleared.decode.settings == {}


def test_old_runs_decode_args_load_as_settings_and_are_written_back_as_settings(tmp_path):
    committed = ROOT / "docs/studies/2026-12-02-reproduce/runs/countdown/seed0/runs/mdm-reference/config.yaml"
    assert "  args: []" in committed.read_text()  # a run directory written before decode.settings
    assert load_config(committed).decode.settings == {}
    old = write(tmp_path / "old.yaml",
                committed.read_text().replace("  args: []", "  args: [noise=0.5, repredict=true]"))
    cfg = load_config(old)
    assert cfg.decode.settings == {"noise": 0.5, "repredict": True}
    save_config(cfg, tmp_path / "config.yaml")
    written = yaml.safe_load((tmp_path / "config.yaml").read_text())
    assert written["decode"]["settings"] == {"noise": 0.5, "repredict": True}
    assert "args" not in written["decode"]
    assert load_config(tmp_path / "config.yaml") == cfg
    assert load_config(None, ["decode.args=[noise=0.5,repredict=true]"]).decode.settings == cfg.decode.settings
    with pytest.raises(ConfigError, match=r"decode.args 'noise': expected KEY=VALUE"):
        load_config(None, ["decode.args=[noise]"])


def test_decoding_steps_come_from_one_place():
    cfg = load_config(None, ["diffusion.steps=12"])
    assert decode_steps(cfg) == 12
    cfg = load_config(None, ["diffusion.steps=12", "decode.steps=7"])
    assert decode_steps(cfg) == 7 and decode_steps(cfg, 3) == 3
    run = Run(cfg, get_task("sudoku"), CharTokenizer(), None, build_objective(cfg))
    assert make_decoder(run)[1].steps == 7  # the run's own decoding
    assert make_decoder(run, "random")[1].steps == 7  # another decoder: the same T
    assert make_decoder(run, "topk", steps=3)[1].steps == 3


# ---------------------------------------------------------------------- registries
class ToyObjective(Autoregressive):
    """A new objective as a user adds one: a class registered by name (here AR's loss)."""


class ToyDecoder(Greedy):
    """A new decoder as a user adds one: a class registered by name (here greedy's choice)."""

    calls: ClassVar[list[int]] = []

    def choose(self, logits_BxV, generator):
        ToyDecoder.calls.append(logits_BxV.size(0))
        return super().choose(logits_BxV, generator)


@pytest.fixture
def toys(monkeypatch):
    """`toy` registered in both registries for one test (copies of the registries, restored after)."""
    monkeypatch.setattr(objectives._OBJECTIVES, "_classes", objectives._OBJECTIVES.classes())
    monkeypatch.setattr(decoders._DECODERS, "_classes", decoders._DECODERS.classes())
    objectives.register_objective("toy")(dataclasses.dataclass(ToyObjective))
    decoders.register_decoder("toy")(dataclasses.dataclass(ToyDecoder))
    ToyDecoder.calls.clear()


def test_a_registered_objective_and_decoder_are_usable_from_a_run_config(toys, tmp_path, capsys):
    data = tmp_path / "d.jsonl"
    assert main(["generate", "sudoku", "--size", "4", "--givens", "8:12", "--n", "24", "--out", str(data),
                 "--workers", "1"]) == 0
    run_dir = tmp_path / "run"
    assert main(["train", "task=sudoku", "objective=toy", "model=micro", f"data.train={data}",
                 f"out_dir={run_dir}", "train.max_steps=2", "train.batch_size=8", "data.valid_size=8",
                 "train.eval_size=4", "decode.decoder=toy"]) == 0
    rows = [json.loads(line) for line in (run_dir / "eval_log.jsonl").read_text().splitlines()]
    assert rows[-1]["decoder"] == "toy" and ToyDecoder.calls  # validation decoded with it
    metrics = {}
    for name in ("toy", "greedy"):
        out = tmp_path / name
        assert main(["eval", str(run_dir), "--data", str(data), "--decoder", name, "--out", str(out),
                     "--device", "cpu"]) == 0
        metrics[name] = json.loads((out / "metrics.json").read_text())
        assert (metrics[name]["objective"], metrics[name]["decoder"]) == ("toy", name)
    assert metrics["toy"]["accuracy"] == metrics["greedy"]["accuracy"]  # the same choice as greedy
    with pytest.raises(ConfigError, match="unknown objective 'toys'; known objectives: ar, mdm, toy"):
        load_config(None, ["objective=toys"])


# ---------------------------------------------------------------------- model shape
def test_arch_shape_keys_reshape_a_named_size_and_model_json_records_it(tmp_path):
    assert model_config("micro", 20, 16, n_layer=0, n_embd=0, n_head=0) == model_config("micro", 20, 16)
    wider = model_config("micro", 20, 16, n_embd=96, n_head=0)
    assert (wider.n_layer, wider.n_embd, wider.n_head) == (SIZES["micro"]["n_layer"], 96, SIZES["micro"]["n_head"])
    data = tmp_path / "d.jsonl"
    assert main(["generate", "sudoku", "--size", "4", "--givens", "8:12", "--n", "20", "--out", str(data),
                 "--workers", "1"]) == 0
    run_dir = tmp_path / "run"
    assert main(["train", "task=sudoku", "objective=ar", "model=micro", f"data.train={data}",
                 f"out_dir={run_dir}", "train.max_steps=1", "train.batch_size=4", "data.valid_size=4",
                 "train.eval_size=0", "arch.n_layer=3", "arch.n_embd=48", "arch.n_head=3"]) == 0
    shape = json.loads((run_dir / "model.json").read_text())
    assert (shape["n_layer"], shape["n_embd"], shape["n_head"]) == (3, 48, 3)
    assert load_run(run_dir).model.config.n_layer == 3
    with pytest.raises(ConfigError, match="reshape dvar's own sizes, not a pretrained hf:x"):
        load_config(None, ["model=hf:x", "arch.n_layer=2"])


# ---------------------------------------------------------------------- help
def _leaf_keys(node: dict, prefix: str = "") -> list[str]:
    keys = []
    for name, value in node.items():
        if isinstance(value, dict) and name != "settings":
            keys += _leaf_keys(value, f"{prefix}{name}.")
        else:
            keys.append(f"{prefix}{name}")
    return keys


def test_every_key_has_a_meaning_from_the_configs_comments_and_train_help_shows_it(capsys):
    meanings = key_help()
    assert sorted(meanings) == sorted(_leaf_keys(to_dict(Config())))
    assert not [key for key, text in meanings.items() if not text]
    # The comment block above a field, then the one on its line.
    assert meanings["train.time_limit"].startswith("Stop after this many seconds")
    assert meanings["train.lr"].startswith("peak learning rate")
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for key, meaning in meanings.items():
        assert f"{key}=" in text and " ".join(meaning.split()[:4]) in text, key
