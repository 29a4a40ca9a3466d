"""`dvar reproduce`: the miniature's pipeline, its report, resuming, and the GPU plan run
end to end at a tiny scale on the CPU."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from dvar import reproduce
from dvar.cli import main
from dvar.config import load_config

TINY = ["--steps", "12", "--train-size", "160", "--test-size", "12"]


@pytest.fixture(scope="module")
def miniature(tmp_path_factory, one_thread):
    """One task (4x4 Sudoku, it has every kind of model: controls incl. solver order), one
    seed, a few steps, the controls and the reference MDM too."""
    out = tmp_path_factory.mktemp("reproduce")
    public = tmp_path_factory.mktemp("testsets")  # a public set in the miniature's format
    (public / "sudoku_dream_4x4.csv").write_text(
        "puzzle,solution\n1000000240030000,1234341241232341\n0020010003000010,3421213413424213\n")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DVAR_TESTSETS", str(public))
        # two worker processes, as by default on 2 cores
        assert main(["reproduce", "--scale", "cpu", "--tasks", "sudoku", "--seeds", "0", "--controls",
                     "--reference", "--out", str(out), *TINY, "--workers", "2"]) == 0
        yield out


def test_miniature_writes_runs_evals_report_and_plot(miniature):
    runs = miniature / "sudoku" / "seed0" / "runs"
    names = {spec.name for spec in reproduce.MINIATURES["sudoku"].specs()}
    assert names == {"mdm", "ar", "ar-paper-ratio", "ar-reverse", "ar-solver", "mdm-reference"}
    for name in names:  # ordinary run directories, each with its evaluations
        assert (runs / name / "config.yaml").is_file() and (runs / name / "model.safetensors").is_file()
        evals = list((runs / name / "eval").glob("*/metrics.json"))
        assert evals and all((e.parent / "predictions.jsonl").is_file() for e in evals)
    # the MDM is evaluated with each decoder measured; the paper-ratio AR has a third of the steps
    assert {p.parent.name for p in (runs / "mdm" / "eval").glob("test-*/metrics.json")} == {
        "test-topk", "test-topk-paper", "test-margin"}
    assert load_config(runs / "ar-paper-ratio" / "config.yaml").train.max_steps == 4
    assert load_config(runs / "ar-solver" / "config.yaml").data.answer_order == "solver"
    reference = load_config(runs / "mdm-reference" / "config.yaml")
    assert (reference.diffusion.shift, reference.arch.dropout) == (True, 0.1)
    assert (miniature / "results.md").is_file() and (miniature / "sudoku.png").stat().st_size > 1000
    # the main models also on the public set, which training excluded
    for name in ("mdm", "ar"):
        assert len(list((runs / name / "eval").glob("sudoku_dream_4x4-*/metrics.json"))) == 1
    train = (miniature / "sudoku" / "seed0" / "data" / "train.jsonl").read_text()
    assert "1000000240030000" not in train and "0020010003000010" not in train


def test_report_agrees_with_the_metrics_files(miniature):
    summary = json.loads((miniature / "reproduce.json").read_text())
    family = summary["families"]["sudoku"]
    checked = 0
    for model in family["models"].values():
        for tests in model["decodings"].values():
            for slot in tests.values():
                for seed, row in slot["seeds"].items():
                    metrics = json.loads(Path(row["metrics"]).read_text())
                    assert row["accuracy"] == metrics["accuracy"]
                    assert row["by"] == {k: v["accuracy"] for k, v in metrics["by"].items()}
                    checked += 1
                assert slot["accuracy"]["mean"] == pytest.approx(
                    sum(r["accuracy"] for r in slot["seeds"].values()) / len(slot["seeds"]))
    assert checked >= 9
    text = (miniature / "results.md").read_text()
    mdm = family["models"]["mdm"]["decodings"]["topk"]["test"]["seeds"]["0"]["accuracy"]
    assert f"| MDM | topk | 12 × 32 | {100 * mdm:.1f}% |" in text
    for verdict in family["verdicts"].values():  # every verdict is in the report, as computed
        assert verdict["verdict"] in text
    assert "Published at the paper's scale" in text and "20.7%" in text
    assert summary["stages"]["jobs"] and summary["wall_seconds"] > 0
    assert summary["families"]["sudoku"]["setting"]["options"]["size"] == 4


def test_a_second_call_reuses_finished_work_and_resumes_a_killed_run(miniature, capsys):
    from dvar.trainer import train

    runs = miniature / "sudoku" / "seed0" / "runs"
    kept = {name: (runs / name / "model.safetensors").stat().st_mtime_ns for name in ("mdm", "ar")}
    # Kill the AR reverse run after 6 of its 12 steps (a checkpoint every 3 steps) and
    # drop one evaluation of the MDM.
    killed = runs / "ar-reverse"
    jobs, _ = reproduce.plan_cpu(["sudoku"], [0], miniature, False, 160, 12, 12, reproduce.ROLES)
    job = next(j for j in jobs if j.spec.name == "ar-reverse")
    import shutil

    shutil.rmtree(killed)
    train(reproduce.job_config(reproduce.MINIATURES["sudoku"], job), stop_after=6)
    assert not (killed / "model.safetensors").exists()
    (runs / "mdm" / "eval" / "test-margin" / "metrics.json").unlink()
    capsys.readouterr()
    assert main(["reproduce", "--scale", "cpu", "--tasks", "sudoku", "--seeds", "0", "--controls",
                 "--reference", "--out", str(miniature), *TINY, "--workers", "1"]) == 0
    printed = capsys.readouterr().out
    assert f"resuming {killed}" in printed
    assert "sudoku seed 0 mdm (reused" in printed and "sudoku seed 0 ar-reverse (trained" in printed
    assert {n: (runs / n / "model.safetensors").stat().st_mtime_ns for n in kept} == kept
    assert (runs / "mdm" / "eval" / "test-margin" / "metrics.json").is_file()
    steps = [json.loads(line)["step"] for line in (killed / "train_log.jsonl").read_text().splitlines()]
    assert steps == sorted(set(steps)) and steps[-1] == 12  # no step logged twice


def test_compare_and_path_finding_verdicts():
    a = {"0": {"accuracy": 0.9}, "1": {"accuracy": 0.8}, "2": {"accuracy": 0.95}}
    b = {"0": {"accuracy": 0.5}, "1": {"accuracy": 0.79}, "2": {"accuracy": 0.5}}
    assert reproduce.compare(a, b, "MDM", "AR")["verdict"].startswith("not shown")  # seed 1: a tie
    b["1"]["accuracy"] = 0.5
    assert reproduce.compare(a, b, "MDM", "AR")["verdict"].startswith("MDM ahead on every seed")
    assert reproduce.compare(b, a, "MDM", "AR")["verdict"].startswith("AR ahead on every seed")
    mdm = {"0": {"by": {"pd=0": 1.0, "pd=2": 0.95}}, "1": {"by": {"pd=0": 0.85, "pd=2": 1.0}}}
    ar = {"0": {"by": {"pd=0": 1.0, "pd=2": 0.5}}, "1": {"by": {"pd=0": 1.0, "pd=2": 0.5}}}
    finding = reproduce.path_finding(mdm, ar)
    assert finding["per_seed"]["0"]["shown"] and not finding["per_seed"]["1"]["shown"]
    assert finding["verdict"].startswith("not shown on every seed: shown on 1 of 2 seeds")


def test_dry_run_names_all_16_recipes_of_both_families(capsys):
    for recipes in ("reference", "dvar"):
        assert main(["reproduce", "--scale", "gpu", "--dry-run", "--recipes", recipes, "--out", "unused"]) == 0
        printed = capsys.readouterr().out
        for name in reproduce.PAPER_RECIPES:
            assert f"| {name} |" in printed
        assert "16 run(s)" in printed and "GPU-hours" in printed
    assert main(["reproduce", "--scale", "gpu", "--dry-run", "--tokens-per-s", "1e6", "--only",
                 "cd4-mdm", "--out", "unused"]) == 0
    assert "Total ≈" in capsys.readouterr().out


def test_gpu_scale_runs_end_to_end_at_a_tiny_scale_on_cpu(tmp_path, monkeypatch, one_thread, capsys):
    """The GPU path exercised on the CPU: the paper's data scaled down, two recipes, a few
    steps of a micro model, evaluated on the test set and a public set in its format."""
    public = tmp_path / "testsets"
    public.mkdir()
    (public / "sudoku_kaggle1m_tky135_test.csv").write_text(
        "puzzle,solution\n"
        "004300209005009001070060043006002087190007400050083000600000105003508690042910300,"
        "864371259325849761971265843436192587198657432257483916689734125713528694542916378\n")
    monkeypatch.setenv("DVAR_TESTSETS", str(public))
    out = tmp_path / "paper"
    args = ["reproduce", "--scale", "gpu", "--tasks", "sudoku", "--data-scale", "0.002", "--max-steps", "2",
            "--model", "micro", "--out", str(out), "--set", "train.batch_size=8", "--set", "data.valid_size=8",
            "--set", "train.eval_size=4", "--set", "train.eval_every=0", "--set", "train.save_every=0"]
    assert main(args) == 0
    for recipe in ("sudoku-mdm", "sudoku-ar"):
        run = out / "runs" / recipe
        assert (run / "model.safetensors").is_file()
        assert load_config(run / "config.yaml").train.max_steps == 2
        for stem in ("test", "sudoku_kaggle1m_tky135_test"):
            assert (run / "eval" / f"{stem}-default" / "metrics.json").is_file()
    assert load_config(out / "runs" / "sudoku-mdm" / "config.yaml").diffusion.shift is True
    summary = json.loads((out / "reproduce.json").read_text())
    assert set(summary["runs"]) == {"sudoku-mdm", "sudoku-ar"}
    metrics = json.loads((out / "runs" / "sudoku-mdm" / "eval" / "test-default" / "metrics.json").read_text())
    assert metrics["decoder_settings"]["noise"] == 0.5 and metrics["decoder_settings"]["repredict"] is True
    assert summary["runs"]["sudoku-mdm"]["tests"]["test"]["accuracy"] == metrics["accuracy"]
    assert "sudoku-mdm" in (out / "results.md").read_text() and (out / "sudoku.png").is_file()
    capsys.readouterr()
    assert main(args) == 0  # everything reused: nothing trained again
    assert "train sudoku" not in capsys.readouterr().out


def test_decode_args_are_the_runs_own_decoding(tmp_path, one_thread):
    """decode.settings sets the decoder of `dvar eval` without --decoder (and of validation)."""
    from dvar.evaluate import load_run, make_decoder

    data = tmp_path / "d.jsonl"
    assert main(["generate", "sudoku", "--size", "4", "--givens", "8:12", "--n", "40", "--out", str(data),
                 "--workers", "1"]) == 0
    run_dir = tmp_path / "run"
    assert main(["train", "task=sudoku", "objective=mdm", "model=micro", f"data.train={data}",
                 f"out_dir={run_dir}", "train.max_steps=2", "train.batch_size=8", "data.valid_size=8",
                 "train.eval_size=4", "decode.settings={noise: 0.5, repredict: true}"]) == 0
    run = load_run(run_dir)
    name, decoder = make_decoder(run)
    assert (name, decoder.noise, decoder.repredict) == ("topk", 0.5, True)
    name, decoder = make_decoder(run, "topk")  # a named decoder: its own defaults
    assert (decoder.noise, decoder.repredict) == (0.0, False)
    rows = [json.loads(line) for line in (run_dir / "eval_log.jsonl").read_text().splitlines()]
    assert rows[-1]["decoder"] == "topk"
    assert yaml.safe_load((run_dir / "config.yaml").read_text())["decode"]["settings"] == {
        "noise": 0.5, "repredict": True}


def test_models_and_overrides_select_and_change_what_is_trained(miniature, capsys):
    jobs, _ = reproduce.plan_cpu(["sudoku"], [0], miniature, False, 160, 12, 12, reproduce.ROLES,
                                 models=["mdm"], overrides=("diffusion.time_weighting=elbo",))
    assert [job.spec.name for job in jobs] == ["mdm"]
    cfg = reproduce.job_config(reproduce.MINIATURES["sudoku"], jobs[0])
    assert cfg.diffusion.time_weighting == "elbo"
    # The same directory holds that model trained with time_weighting=none: refused, not reused.
    capsys.readouterr()
    assert main(["reproduce", "--scale", "cpu", "--tasks", "sudoku", "--seeds", "0", "--models", "mdm",
                 "--set", "diffusion.time_weighting=elbo", "--out", str(miniature), *TINY,
                 "--workers", "1"]) == 2
    assert "time_weighting=none, this plan wants elbo" in capsys.readouterr().err
