"""A missing optional package (transformers, peft, tensorboard, wandb) is one line naming
the setting that needs it and the install command, exit status 2, no traceback. Absence
is simulated: `sys.modules[name] = None` makes `import name` fail."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from dvar.cli import main
from dvar.config import Config, save_config
from dvar.optional import MissingDependency, require


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("data") / "train.jsonl"
    assert main(["generate", "sudoku", "--size", "4", "--n", "24", "--seed", "0", "--out", str(path),
                 "--workers", "1"]) == 0
    return path


def train_args(data: Path, out: Path, *extra: str) -> list[str]:
    return ["train", "task=sudoku", "model=micro", f"data.train={data}", f"out_dir={out}",
            "data.valid_size=4", "train.batch_size=4", "train.max_steps=1", "train.eval_size=0",
            *extra]


def one_line_error(capsys, argv: list[str]) -> str:
    """Run the command line in-process; it must fail with status 2 and one stderr line."""
    capsys.readouterr()
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err.strip()


@pytest.mark.parametrize("package, setting, extra", [
    ("tensorboard", "train.report_to=tensorboard", "tracking"),
    ("wandb", "train.report_to=[wandb]", "tracking"),
])
def test_a_missing_tracker_package(tmp_path, data, capsys, monkeypatch, package, setting, extra):
    monkeypatch.setitem(sys.modules, package, None)
    err = one_line_error(capsys, train_args(data, tmp_path / "run", setting))
    name = setting.split("=")[1].strip("[]")
    assert err == (f"dvar train: error: train.report_to={name} needs {package}, which is not "
                   f"installed: pip install 'dvar[{extra}]'")
    assert not (tmp_path / "run").exists()  # checked before anything was written


def test_missing_transformers_for_a_pretrained_backbone(tmp_path, data, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "transformers", None)
    err = one_line_error(capsys, train_args(data, tmp_path / "run", f"model=hf:{tmp_path}/llama"))
    assert err == (f"dvar train: error: model=hf:{tmp_path}/llama needs transformers, which is not "
                   "installed: pip install 'dvar[hf]'")


def test_missing_peft_for_lora(tmp_path, data, capsys, monkeypatch):
    pytest.importorskip("transformers")
    monkeypatch.setitem(sys.modules, "peft", None)
    err = one_line_error(capsys, train_args(data, tmp_path / "run", f"model=hf:{tmp_path}", "lora.r=16"))
    assert err == "dvar train: error: lora.r=16 needs peft, which is not installed: pip install 'dvar[hf]'"


def test_eval_of_a_run_whose_packages_are_missing(tmp_path, data, capsys, monkeypatch):
    # A pretrained-backbone LoRA run: eval needs transformers, then peft.
    hf_run = tmp_path / "hf-run"
    (hf_run / "hf").mkdir(parents=True)
    cfg = Config(task="sudoku", objective="ar", model="hf:/models/llama", out_dir=str(hf_run))
    cfg.lora.r = 8
    save_config(cfg, hf_run / "config.yaml")
    with monkeypatch.context() as patch:
        patch.setitem(sys.modules, "transformers", None)
        err = one_line_error(capsys, ["eval", str(hf_run), "--data", str(data)])
    assert err == ("dvar eval: error: model=hf:/models/llama needs transformers, which is not "
                   "installed: pip install 'dvar[hf]'")
    pytest.importorskip("transformers")
    monkeypatch.setitem(sys.modules, "peft", None)
    err = one_line_error(capsys, ["eval", str(hf_run), "--data", str(data)])
    assert err == "dvar eval: error: lora.r=8 needs peft, which is not installed: pip install 'dvar[hf]'"


def test_eval_of_a_tracked_run_without_its_tracker(tmp_path, data, capsys, monkeypatch):
    pytest.importorskip("tensorboard")
    run = tmp_path / "run"
    assert main(train_args(data, run, "train.report_to=tensorboard")) == 0
    monkeypatch.setitem(sys.modules, "tensorboard", None)
    err = one_line_error(capsys, ["eval", str(run), "--data", str(data)])
    assert err == ("dvar eval: error: the run's train.report_to=tensorboard needs tensorboard, which "
                   "is not installed: pip install 'dvar[tracking]'")
    assert main(["eval", str(run), "--data", str(data), "--report-to", "none"]) == 0


def test_require_names_a_package_that_is_there_but_broken(tmp_path, monkeypatch):
    (tmp_path / "dvar_broken_pkg").mkdir()
    (tmp_path / "dvar_broken_pkg" / "__init__.py").write_text("import dvar_no_such_module\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(MissingDependency) as error:
        require("dvar_broken_pkg", "some.setting=1")
    assert str(error.value) == ("some.setting=1 needs dvar_broken_pkg, which cannot be imported (No "
                                "module named 'dvar_no_such_module'): pip install dvar_broken_pkg")
    assert require("json", "x").dumps([1]) == "[1]"


def test_a_tokenizer_that_needs_a_missing_package(tmp_path, monkeypatch):
    transformers = pytest.importorskip("transformers")
    from dvar.hf import HFTokenizer

    def needs_sentencepiece(*args, **kwargs):  # what transformers raises, two lines
        raise ImportError("LlamaTokenizer requires the SentencePiece library but it was not found "
                          "in your environment.\nCheck out the instructions on the installation page.")

    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", needs_sentencepiece)
    with pytest.raises(MissingDependency) as error:
        HFTokenizer.from_pretrained(tmp_path, mask=False)
    assert str(error.value) == (
        f"model=hf:{tmp_path}: its tokenizer cannot be loaded: LlamaTokenizer requires the "
        "SentencePiece library but it was not found in your environment. (pip install 'dvar[hf]' "
        "installs sentencepiece and protobuf)")
