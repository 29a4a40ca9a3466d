"""The study engine: study files, plans, a study run end to end at a tiny scale (through
the `dvar reproduce` and `dvar demo` aliases too), resuming, summaries, verdicts."""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from dvar import study as engine
from dvar.cli import main
from dvar.config import ConfigError, load_config, to_dict
from dvar.study.spec import STUDIES
from dvar.study.verdicts import bars, compare
from dvar.tasks import get_task

TINY = ["--steps", "12", "--train-size", "160", "--test-size", "12"]
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def miniature(tmp_path_factory, one_thread):
    """One family of the miniature (4x4 Sudoku: it has every kind of model, controls incl.
    the solver order), one seed, a few steps, through the `dvar reproduce` alias."""
    out = tmp_path_factory.mktemp("reproduce")
    public = tmp_path_factory.mktemp("testsets")  # a public set in the family's format
    (public / "sudoku_dream_4x4.csv").write_text(
        "puzzle,solution\n1000000240030000,1234341241232341\n0020010003000010,3421213413424213\n")
    (public / "sudoku_d1_4x4.csv").write_text("puzzle,solution\n1000000240030000,1234341241232341\n")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DVAR_TESTSETS", str(public))
        assert main(["reproduce", "--scale", "cpu", "--tasks", "sudoku", "--seeds", "0", "--controls",
                     "--reference", "--out", str(out), *TINY, "--workers", "2"]) == 0
        yield out


def test_every_shipped_study_plans(capsys):
    shipped = sorted(p.stem for p in STUDIES.glob("*.yaml"))
    assert {"demo", "miniature", "answer-orders", "paper-gpu", "paper-cpu", "controls"} <= set(shipped)
    for name in shipped:
        study = engine.load_study(name)
        roles = sorted({m.role for f in study.families for m in f.models})
        jobs = engine.plan(study, "unused", roles=roles)
        expected = sum(len(f.models) * len(f.budgets) for f in study.families) * len(study.seeds)
        assert len(jobs) == expected, name
        capsys.readouterr()
        assert main(["study", "plan", name, "--roles", ",".join(roles)]) == 0
        printed = capsys.readouterr().out
        assert all(f"| {job.name} |" in printed for job in jobs), name
        assert f"{len(jobs)} job(s)" in printed


def _study_file(tmp_path: Path, edit) -> Path:
    raw = yaml.safe_load((STUDIES / "demo.yaml").read_text())
    edit(raw)
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.mark.parametrize("edit, message", [
    (lambda r: r.update(seed=[1]), "unknown key 'seed' at top level"),
    (lambda r: r["families"]["path"]["models"].update(gpt={}), "unknown model 'gpt' in models"),
    (lambda r: r["decodings"].update(x={"decoder": "beam"}), "unknown decoder 'beam'"),
    (lambda r: r["decodings"].update(x={"decoder": "topk", "settings": {"temp": 1}}),
     "decode.settings.temp: decoder 'topk' has no such setting"),
    (lambda r: r["families"]["path"].update(public=["nope.csv"]), "unknown public test set 'nope.csv'"),
    (lambda r: r["run"].update(train={"lrr": 1}), "unknown key 'train.lrr'"),
    (lambda r: r["models"]["mdm"].update(objective="gan"), "objective 'gan' is not one of"),
    (lambda r: r["families"]["path"].update(task="chess"), "task 'chess' is not one of"),
    (lambda r: r["verdicts"].append({"kind": "vibes"}), "kind 'vibes' is not one of"),
    (lambda r: r["verdicts"].append({"name": "g", "kind": "gap", "a": "mdm/topk", "b": "ar/greedy"}),
     "a gap verdict needs 'others'"),
    (lambda r: r["verdicts"].append({"name": "g", "kind": "gap", "a": "mdm/topk", "b": "ar/greedy",
                                     "others": ["bert/greedy"]}), "unknown model 'bert'"),
    (lambda r: r["verdicts"].append({"name": "d", "kind": "data", "models": ["mdm/topk"], "families": ["chess"]}),
     "unknown family 'chess'"),
    (lambda r: r["families"]["path"].update(test_of="chess"), "test_of: 'chess' is not another family"),
    (lambda r: (r["families"].update(few={**r["families"]["path"], "train_size": 10}),
                r["families"]["path"].update(test_of="few")), "few trains on fewer problems"),
    (lambda r: (r["families"].update(other={**r["families"]["path"], "options": {"nodes": 7}}),
                r["families"]["path"].update(test_of="other")), "other generates other problems"),
])
def test_a_broken_study_file_is_an_error_naming_file_and_key(tmp_path, edit, message):
    path = _study_file(tmp_path, edit)
    with pytest.raises(ConfigError) as err:
        engine.load_study(path)
    assert str(path) in str(err.value) and message in str(err.value)


def test_demo_plans_the_configs_the_old_demo_trained():
    """`dvar demo` of before the engine trained these configs (dvar.demo.demo_config at
    bc15d57, its defaults); the same config, data and seed train the same weights."""
    old = {"task": "path", "model": "micro", "seed": 0, "data": {"valid_size": 128},
           "train": {"max_steps": 6000, "batch_size": 32, "lr": 3e-3, "warmup_steps": 100, "log_every": 50,
                     "eval_size": 0},
           "arch": {"positions": "learned+rope"}, "diffusion": {"time_weighting": "none"}}
    default = to_dict(load_config())
    jobs = engine.plan(engine.load_study("demo"), "D", roles=["main", "control"])
    for job in jobs:
        want = json.loads(json.dumps(default))
        for key, value in old.items():
            want[key] = {**want[key], **value} if isinstance(value, dict) else value
        want["objective"], want["out_dir"] = job.model.objective, f"D/path/seed0/runs/{job.model.name}"
        want["data"]["train"] = "D/path/seed0/data/train.jsonl"
        want["data"]["answer_order"] = job.model.order
        have = to_dict(job.config)
        assert have["train"].pop("save_every") == 1500  # checkpoints: resumable, same weights
        want["train"].pop("save_every")
        assert have["train"].pop("precision") == "fp32"  # what the old `auto` meant on every CPU
        want["train"].pop("precision")
        assert have == want, job.name


def test_demo_alias_runs_the_pipeline_and_judges_itself(tmp_path, capsys, one_thread):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--seed", "3", "--steps", "20", "--train-size", "300",
                 "--test-size", "40", "--controls"]) == 0
    printed = capsys.readouterr().out
    assert "| MDM | own | 20 × 32 |" in printed and "By pd" in printed
    assert "the paper's finding: not shown on every seed: shown on 0 of 1 seeds" in printed
    seed = out / "path" / "seed3"
    train = [json.loads(line) for line in (seed / "data" / "train.jsonl").read_text().splitlines()]
    test = [json.loads(line) for line in (seed / "data" / "test.jsonl").read_text().splitlines()]
    assert len(train) == 300 and len(test) == 40
    canon = lambda row: (tuple(sorted(row["input"].split("-")[0].split("/"))), row["input"].split("-")[1])
    assert not {canon(r) for r in train} & {canon(r) for r in test}  # held out
    summary = json.loads((out / "study.json").read_text())
    reverse = summary["families"]["path"]["models"]["ar-reverse"]["decodings"]["own"]["test"]
    assert any(key.startswith("rpd=") for key in reverse["seeds"]["3"]["by"])  # goal-side PD
    assert (out / "path.png").read_bytes().startswith(b"\x89PNG")


def test_miniature_writes_runs_evals_report_and_plot(miniature):
    runs = miniature / "sudoku" / "seed0" / "runs"
    names = {"mdm", "ar", "ar-paper-ratio", "ar-reverse", "ar-solver", "mdm-reference"}
    assert {p.name for p in runs.iterdir() if p.is_dir()} == names
    for name in names:
        assert (runs / name / "config.yaml").is_file() and (runs / name / "model.safetensors").is_file()
        evals = list((runs / name / "eval").glob("*/metrics.json"))
        assert evals and all((e.parent / "predictions.jsonl").is_file() for e in evals)
    assert {p.parent.name for p in (runs / "mdm" / "eval").glob("test-*/metrics.json")} == {
        "test-topk", "test-topk-paper", "test-margin"}
    assert load_config(runs / "ar-paper-ratio" / "config.yaml").train.max_steps == 4
    assert load_config(runs / "ar-solver" / "config.yaml").data.answer_order == "solver"
    reference = load_config(runs / "mdm-reference" / "config.yaml")
    assert (reference.diffusion.shift, reference.arch.dropout) == (True, 0.1)
    assert (miniature / "results.md").is_file() and (miniature / "sudoku.png").stat().st_size > 1000
    for name in ("mdm", "ar"):  # the main models also on the public sets training excluded
        assert len(list((runs / name / "eval").glob("sudoku_dream_4x4-*/metrics.json"))) == 1
    train = (miniature / "sudoku" / "seed0" / "data" / "train.jsonl").read_text()
    assert "1000000240030000" not in train and "0020010003000010" not in train


def test_summary_agrees_with_the_metrics_files(miniature):
    summary = json.loads((miniature / "study.json").read_text())
    family = summary["families"]["sudoku"]
    checked = 0
    for model in family["models"].values():
        for tests in model["decodings"].values():
            for slot in tests.values():
                for row in slot["seeds"].values():
                    metrics = json.loads(Path(row["metrics"]).read_text())
                    assert row["accuracy"] == metrics["accuracy"]
                    by = {k: v["accuracy"] for k, v in metrics["by"].items()}
                    # Sudoku's extra breakdown (rule=...), counted from the predictions.
                    rows = [json.loads(line) for line in
                            (Path(row["metrics"]).parent / "predictions.jsonl").read_text().splitlines()]
                    task = get_task("sudoku")
                    by_rule: dict[str, list[bool]] = {}
                    for r in rows:
                        rule = task.extra_breakdowns["rule"](task.parse_input(r["input"]))
                        by_rule.setdefault(f"rule={rule}", []).append(r["correct"])
                    by.update({key: sum(oks) / len(oks) for key, oks in by_rule.items()})
                    assert row["by"] == pytest.approx(by)
                    checked += 1
                assert slot["accuracy"]["mean"] == pytest.approx(
                    sum(r["accuracy"] for r in slot["seeds"].values()) / len(slot["seeds"]))
        assert all(c["parameters"] > 0 for c in model["compute"].values())  # never null
    assert checked >= 11
    text = (miniature / "results.md").read_text()
    mdm = family["models"]["mdm"]["decodings"]["topk"]["test"]["seeds"]["0"]["accuracy"]
    assert f"| MDM | topk | 12 × 32 | {100 * mdm:.1f}% |" in text
    for verdict in family["verdicts"].values():
        assert verdict["verdict"] in text
    assert "Published at the paper's scale" in text and "20.7%" in text
    assert summary["stages"]["jobs"] and summary["wall_seconds"] > 0


def test_an_evaluation_that_is_not_what_the_plan_says_is_refused(miniature, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(miniature, copy)
    metrics = copy / "sudoku" / "seed0" / "runs" / "mdm" / "eval" / "test-topk-paper" / "metrics.json"
    data = json.loads(metrics.read_text())
    data["decoder_settings"]["noise"] = 0.0  # filed under topk-paper, decoded with noise 0
    metrics.write_text(json.dumps(data))
    with pytest.raises(ConfigError, match="decoder_settings.noise=0.0, the study planned 0.5"):
        engine.summarize(engine.load_study("miniature"), copy, [0], only=["sudoku"], steps=12)


def test_a_second_call_reuses_finished_work_and_resumes_a_killed_run(miniature, capsys):
    from dvar.trainer import _train

    runs = miniature / "sudoku" / "seed0" / "runs"
    kept = {name: (runs / name / "model.safetensors").stat().st_mtime_ns for name in ("mdm", "ar")}
    killed = runs / "ar-reverse"
    jobs = engine.plan(engine.load_study("miniature"), miniature, [0], only=["sudoku"], models=["ar-reverse"],
                       steps=12)
    shutil.rmtree(killed)
    _train(jobs[0].config, stop_after=6)  # killed after 6 of 12 steps (a checkpoint every 3)
    assert not (killed / "model.safetensors").exists()
    (runs / "mdm" / "eval" / "test-margin" / "metrics.json").unlink()
    capsys.readouterr()
    assert main(["reproduce", "--scale", "cpu", "--tasks", "sudoku", "--seeds", "0", "--controls",
                 "--reference", "--out", str(miniature), *TINY, "--workers", "1"]) == 0
    printed = capsys.readouterr().out
    assert f"resuming {killed}" in printed
    assert "sudoku/seed0/mdm (reused" in printed and "sudoku/seed0/ar-reverse (trained" in printed
    assert {n: (runs / n / "model.safetensors").stat().st_mtime_ns for n in kept} == kept
    assert (runs / "mdm" / "eval" / "test-margin" / "metrics.json").is_file()
    steps = [json.loads(line)["step"] for line in (killed / "train_log.jsonl").read_text().splitlines()]
    assert steps == sorted(set(steps)) and steps[-1] == 12


def test_overrides_change_what_is_trained_and_a_different_run_is_refused(miniature, capsys):
    jobs = engine.plan(engine.load_study("miniature"), miniature, [0], only=["sudoku"], models=["mdm"],
                       overrides=["diffusion.time_weighting=elbo"], steps=12)
    assert [job.model.name for job in jobs] == ["mdm"] and jobs[0].config.diffusion.time_weighting == "elbo"
    capsys.readouterr()
    assert main(["study", "run", "miniature", "--only", "sudoku", "--seeds", "0", "--models", "mdm",
                 "--out", str(miniature), "--steps", "12", "--train-size", "160", "--test-size", "12",
                 "diffusion.time_weighting=elbo"]) == 2
    assert "holds a run with diffusion.time_weighting=none, this run wants elbo" in capsys.readouterr().err


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_run_another_process_owns_is_skipped_and_named(miniature, capsys, claimed_elsewhere, workers):
    run = miniature / "sudoku" / "seed0" / "runs" / "mdm"
    with claimed_elsewhere(run) as pid:
        capsys.readouterr()
        assert main(["study", "run", "miniature", "--only", "sudoku", "--seeds", "0", "--models", "mdm,ar",
                     "--out", str(miniature), *TINY, "--workers", workers]) == 2
    printed = capsys.readouterr()
    assert "done: sudoku/seed0/ar (reused" in printed.out  # the other jobs go on
    assert f"skipped: sudoku/seed0/mdm ({run} is in use by another process (pid {pid})" in printed.out
    assert "1 job(s) skipped" in printed.err and f"pid {pid}" in printed.err


def test_a_worker_ends_with_the_study_that_started_it():
    if not Path("/proc/self/stat").exists():
        pytest.skip("reads process states from /proc")
    engine_process = subprocess.Popen([sys.executable, "-c", ABANDONED_POOL], stdout=subprocess.PIPE, text=True)
    worker = int(engine_process.stdout.readline())
    engine_process.wait(timeout=60)
    try:
        deadline = time.monotonic() + 30
        while _alive(worker) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _alive(worker)
    finally:
        if _alive(worker):
            os.kill(worker, signal.SIGKILL)


# A study engine killed while its worker trains: no shutdown of its pool.
ABANDONED_POOL = """
import os, time
from dvar.study.runner import worker_pool
pool = worker_pool(1, 1)
print(pool.submit(os.getpid).result(), flush=True)
pool.submit(time.sleep, 120)
time.sleep(0.5)
os._exit(0)
"""


def _alive(pid: int) -> bool:
    """Running (a zombie that nothing reaps counts as ended)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


def test_compare_and_bar_verdicts():
    seeds = lambda *accs: {str(i): {"accuracy": a} for i, a in enumerate(accs)}
    assert compare(seeds(0.9, 0.8), seeds(0.5, 0.5), "MDM", "AR")["verdict"].startswith("MDM ahead on every seed")
    assert compare(seeds(0.9), seeds(0.5), "MDM", "AR")["verdict"] == (
        "MDM ahead on the one seed run so far (seed 0) (+40.0 points)")  # one seed is not "every seed"
    assert compare(seeds(0.9, 0.51), seeds(0.5, 0.5), "MDM", "AR")["verdict"].startswith("not shown")
    assert compare({}, seeds(0.5), "MDM", "AR")["verdict"] == "not measured"
    by = lambda **groups: {"0": {"by": {k.replace("_", "="): v for k, v in groups.items()}}}
    fam = {"models": {"mdm": {"decodings": {"d": {"test": {"seeds": by(pd_0=1.0, pd_1=0.95, pd_2=0.92)}}}},
                      "ar": {"decodings": {"d": {"test": {"seeds": by(pd_0=1.0, pd_1=0.9, pd_2=0.5)}}}}}}
    spec = {"group": "pd", "bars": [{"model": "mdm/d", "at_least": 0.9}, {"model": "ar/d", "from": 2, "below": 0.75}]}
    assert bars(fam, spec, {})["per_seed"]["0"]["shown"]
    fam["models"]["ar"]["decodings"]["d"]["test"]["seeds"]["0"]["by"]["pd=2"] = 0.8
    result = bars(fam, spec, {"ar": "AR"})
    assert not result["per_seed"]["0"]["shown"] and result["per_seed"]["0"]["reasons"] == [
        "AR at or above 75% at pd=2"]


def _seeds(*accuracies: float) -> dict[str, dict]:
    return {str(i): {"accuracy": a} for i, a in enumerate(accuracies)}


def _family(**models: dict) -> dict:
    """A family summary: model -> {decoding: per-seed test accuracies} (labels = upper-case names)."""
    return {"models": {name: {"label": name.upper(), "decodings": {d: {"test": {"seeds": seeds}}
                                                                   for d, seeds in decodings.items()}}
                       for name, decodings in models.items()}}


def test_gap_verdict_says_how_much_of_the_lead_each_model_reaches():
    from dvar.study.verdicts import gap

    fam = _family(mdm={"topk": _seeds(0.8, 0.9, 0.7)}, ar={"greedy": _seeds(0.4, 0.5, 0.3)},
                  reg={"greedy": _seeds(0.6, 0.7, 0.5)},  # half of the gap on every seed
                  abl={"topk": _seeds(0.8, 0.89, 0.71)})  # all of it
    labels = {n: n.upper() for n in fam["models"]}
    result = gap(fam, {"a": "mdm/topk", "b": "ar/greedy", "others": ["reg/greedy", "abl/topk"]}, labels)
    assert result["seeds"] == ["0", "1", "2"]
    assert result["others"]["reg/greedy"]["shares"] == pytest.approx([0.5, 0.5, 0.5])
    assert result["others"]["reg/greedy"]["says"] == "above AR, below MDM"
    assert result["others"]["abl/topk"]["says"] == "reaches MDM on every seed"
    assert result["least"] == "reg/greedy" and "REG: 50%, 50%, 50% of the gap" in result["verdict"]
    # a seed where the MDM does not lead is left out; with no lead at all there is no gap
    fam["models"]["mdm"]["decodings"]["topk"]["test"]["seeds"]["1"]["accuracy"] = 0.5
    assert gap(fam, {"a": "mdm/topk", "b": "ar/greedy", "others": ["reg/greedy"]}, labels)["seeds"] == ["0", "2"]
    flat = _family(mdm={"topk": _seeds(0.5)}, ar={"greedy": _seeds(0.5)}, reg={"greedy": _seeds(0.6)})
    assert gap(flat, {"a": "mdm/topk", "b": "ar/greedy", "others": ["reg/greedy"]}, labels)["verdict"].startswith(
        "no gap")


def test_saturation_verdict_finds_where_a_curve_stops_gaining():
    from dvar.study.verdicts import saturation

    def curve(*rows):  # each row: one budget's per-seed accuracies
        return [{"steps": 100 * 2 ** i, "seeds": _seeds(*accs)} for i, accs in enumerate(rows)]

    fam = {"setting": {"train_size": 6400, "batch_size": 64},
           "models": {"ar": {"label": "AR", "curve": {"greedy": {"test": curve((0.2, 0.3), (0.6, 0.6), (0.61, 0.6), (0.6, 0.61))}}},
                      "mdm": {"label": "MDM", "curve": {"topk": {"test": curve((0.0, 0.0), (0.1, 0.1), (0.2, 0.3), (0.4, 0.4))}}}}}
    result = saturation(fam, {"models": ["ar/greedy", "mdm/topk"]}, {"ar": "AR", "mdm": "MDM"})
    assert result["models"]["ar/greedy"]["stops_at"] == 200 and result["models"]["mdm/topk"]["stops_at"] is None
    assert result["models"]["ar/greedy"]["epochs"] == [1, 2, 4, 8]
    assert "AR: stops gaining at 2 epochs (200 steps)" in result["verdict"]
    assert "MDM: still gaining at 8 epochs (800 steps) (last budget: +20.0, +10.0 points)" in result["verdict"]


def test_data_verdict_reads_accuracy_and_the_loss_gap_across_families(tmp_path):
    from dvar.study.verdicts import data_axis

    def family(train_size, mdm, ar, gap):
        fam = _family(mdm={"topk": _seeds(*mdm)}, ar={"greedy": _seeds(*ar)})
        fam["setting"] = {"train_size": train_size, "steps": 1000, "batch_size": 64}
        for entry in fam["models"].values():
            entry["compute"] = {s: {"final_loss": 0.5, "final_valid_loss": 0.5 + gap} for s in ("0", "1")}
        return fam

    summary = {"families": {"big": family(64000, (0.5, 0.6), (0.7, 0.8), 0.0),
                            "small": family(4000, (0.45, 0.5), (0.2, 0.3), 0.75)}}
    # the AR's fit.json (measured alike) is preferred to its logs; the MDM has only logs
    for entry in (summary["families"]["small"]["models"]["ar"], summary["families"]["big"]["models"]["ar"]):
        for seed, compute in entry["compute"].items():
            compute["fit"] = {"train_loss": 0.1, "heldout_loss": 0.2 + int(seed) * 0.1,
                              "heldout_minus_train": 0.1 + int(seed) * 0.1, "examples": 500,
                              "distinct_train_problems": 3000 + int(seed)}
    result = data_axis(summary, {"families": ["big", "small"], "models": ["mdm/topk", "ar/greedy"]})
    assert [r["epochs"] for r in result["rows"]["mdm/topk"]] == [1, 16]
    assert result["rows"]["ar/greedy"][1]["heldout_minus_train_loss"] == pytest.approx({"0": 0.1, "1": 0.2})
    assert result["rows"]["mdm/topk"][1]["heldout_minus_train_loss"] == {"0": 0.75, "1": 0.75}
    assert [r["loss_gap_measured"] for r in result["rows"]["ar/greedy"]] == [True, True]
    assert [r["loss_gap_measured"] for r in result["rows"]["mdm/topk"]] == [False, False]
    assert "MDM: 64,000 problems (1 epochs): 55.0% (50.0–60.0), held-out − train loss +0.000" in result["verdict"]
    assert "AR: 64,000 problems (3,000 distinct, 1 epochs): 75.0% (70.0–80.0)" in result["verdict"]
    assert [lead["verdict"].split(" ahead")[0] for lead in result["leads"]] == ["AR", "MDM"]
    # who loses less as the data shrinks, seed by seed
    assert result["losses"][0]["a"] == pytest.approx({"0": -0.05, "1": -0.1})
    assert ("as the data shrinks: from 64,000 to 4,000 problems, MDM -5.0, -10.0 points, AR -50.0, -50.0 points: "
            "MDM loses less on every seed (+45.0, +40.0 points)") in result["verdict"]

    # The report: a table of every seed at each data size, and a plot of it.
    from dvar.study.output import data_axis_markdown, plot_data_axis

    verdict = {"label": "accuracy against unique data", "kind": "data", **result}
    table = data_axis_markdown("data_axis", verdict)
    assert table[0] == "Accuracy against unique data ([data_axis.png](data_axis.png)):"
    assert table[2] == ("| model | training problems | distinct | epochs | seed 0 | seed 1 | mean (min–max) "
                        "| held-out − train loss |")
    assert "| MDM | 4,000 | – | 16 | 45.0% | 50.0% | 47.5% (45.0–50.0) | +0.750 (logged) |" in table
    assert "| AR | 64,000 | 3,000 | 1 | 70.0% | 80.0% | 75.0% (70.0–80.0) | +0.150 |" in table
    assert "(logged): a run without fit.json" in table[-2]
    assert plot_data_axis(verdict, tmp_path / "data_axis.png").stat().st_size > 0
    assert data_axis_markdown("data_axis", {**verdict, "rows": {}}) == []  # not measured: no table


def test_the_committed_miniature_study_summarises_to_its_results(tmp_path):
    """docs/studies/2026-12-02-reproduce (written by `dvar reproduce` before the engine)
    summarised from its metrics files gives its committed tables and verdicts (the
    wall-time line aside; its early evaluations' well-formed share came from
    predictions that were not kept, so those cells may read '–'; Countdown's breakdown
    key has two fields, numbers and target, which the old heading named as one)."""
    if engine.spec.public_dir() is None:
        pytest.skip("../shared/testsets is not beside the checkout (its public rows are part of the table)")
    study_dir = ROOT / "docs" / "studies" / "2026-12-02-reproduce"
    out = tmp_path / "runs"
    shutil.copytree(study_dir / "runs", out)
    assert main(["study", "summary", "miniature", "--out", str(out)]) == 0
    committed = [l for l in (study_dir / "results.md").read_text().splitlines() if not l.startswith("Wall time")]
    rebuilt = [l for l in (out / "results.md").read_text().splitlines() if not l.startswith("Wall time")]
    rebuilt = _without_section(rebuilt, "Other scorings")  # a table added after that report
    committed = [l for i, l in enumerate(committed) if l or (i and committed[i - 1])]  # the dropped line's blank
    assert len(rebuilt) == len(committed)
    for old, new in zip(committed, rebuilt):
        if old != new and old.startswith("By numbers"):  # the key has two fields, old code named one
            assert new == old.replace("By numbers,", "By numbers, target,")
        elif old != new:  # only a well-formed cell the metrics files cannot give
            assert new.endswith("| – |") and old.rsplit("|", 2)[0] == new.rsplit("|", 2)[0], (old, new)
    summary = json.loads((out / "study.json").read_text())
    computes = [c for f in summary["families"].values() for m in f["models"].values() for c in m["compute"].values()]
    assert len(computes) == 66 and all(c["parameters"] for c in computes)


def _without_section(lines: list[str], heading: str) -> list[str]:
    """`lines` less the paragraph starting with `heading`, its table and the blank lines
    before each."""
    out, skipping = [], False
    for line in lines:
        if line.startswith(heading):
            skipping = True
            while out and not out[-1]:
                out.pop()
            continue
        if skipping and (not line or line.startswith("|")):
            continue
        if skipping:
            out.append("")
        skipping = False
        out.append(line)
    return out


def test_gpu_study_runs_end_to_end_at_a_tiny_scale_on_cpu(tmp_path, monkeypatch, one_thread, capsys):
    """The paper-gpu study exercised on the CPU: the paper's data scaled down, one family's
    two recipes, a few steps of a micro model, the test set and a public set."""
    public = tmp_path / "testsets"
    public.mkdir()
    (public / "sudoku_kaggle1m_tky135_test.csv").write_text(
        "puzzle,solution\n"
        "004300209005009001070060043006002087190007400050083000600000105003508690042910300,"
        "864371259325849761971265843436192587198657432257483916689734125713528694542916378\n")
    (public / "sudoku_magictour_top1465.csv").write_text((public / "sudoku_kaggle1m_tky135_test.csv").read_text())
    monkeypatch.setenv("DVAR_TESTSETS", str(public))
    out = tmp_path / "paper"
    args = ["reproduce", "--scale", "gpu", "--tasks", "sudoku", "--data-scale", "0.002", "--max-steps", "2",
            "--model", "micro", "--out", str(out), "--set", "train.batch_size=8", "--set", "data.valid_size=8",
            "--set", "train.eval_size=4", "--set", "train.eval_every=0", "--set", "train.save_every=0"]
    assert main(args) == 0
    for name in ("mdm", "ar"):
        run = out / "sudoku" / "seed0" / "runs" / name
        assert (run / "model.safetensors").is_file()
        assert load_config(run / "config.yaml").train.max_steps == 2
        for stem in ("test", "sudoku_kaggle1m_tky135_test"):
            assert (run / "eval" / f"{stem}-default" / "metrics.json").is_file()
    mdm = out / "sudoku" / "seed0" / "runs" / "mdm"
    assert load_config(mdm / "config.yaml").diffusion.shift is True  # the reference's recipe
    metrics = json.loads((mdm / "eval" / "test-default" / "metrics.json").read_text())
    assert metrics["decoder_settings"]["noise"] == 0.5 and metrics["decoder_settings"]["repredict"] is True
    summary = json.loads((out / "study.json").read_text())
    slot = summary["families"]["sudoku"]["models"]["mdm"]["decodings"]["default"]["test"]
    assert slot["seeds"]["0"]["accuracy"] == metrics["accuracy"]
    capsys.readouterr()
    assert main(args) == 0  # everything reused
    assert "(reused" in capsys.readouterr().out


def test_dry_run_names_all_16_recipes_of_both_families(capsys):
    for recipes in ("reference", "dvar"):
        assert main(["reproduce", "--scale", "gpu", "--dry-run", "--recipes", recipes, "--out", "unused"]) == 0
        printed = capsys.readouterr().out
        assert "16 job(s)" in printed
        for family in ("path", "cd3", "cd4", "cd5", "sudoku", "sat5", "sat7", "sat9"):
            assert f"| {family}/seed0/mdm |" in printed and f"| {family}/seed0/ar |" in printed


def test_a_study_of_your_own_runs_on_any_registered_task(tmp_path, one_thread):
    """A study file outside configs/studies/, on a task no shipped study names together."""
    study = tmp_path / "mine.yaml"
    study.write_text(yaml.safe_dump({
        "name": "mine", "seeds": [0, 1], "roles": ["main"],
        "run": {"model": "micro", "data": {"valid_size": 8}, "train": {"batch_size": 8}},
        "decodings": {"greedy": {"decoder": "greedy"}, "topk": {"decoder": "topk"}},
        "models": {"ar": {"objective": "ar", "decodings": ["greedy"]},
                   "mdm": {"objective": "mdm", "decodings": ["topk"]}},
        "verdicts": [{"name": "v", "kind": "compare", "a": "mdm/topk", "b": "ar/greedy"}],
        "families": {"sat4": {"task": "sat", "options": {"vars": 4}, "train_size": 64, "test_size": 8,
                              "steps": 3, "models": {"ar": {}, "mdm": {}}}}}))
    assert main(["study", "run", str(study), "--out", str(tmp_path / "out"), "--workers", "1"]) == 0
    summary = json.loads((tmp_path / "out" / "study.json").read_text())
    seeds = summary["families"]["sat4"]["models"]["mdm"]["decodings"]["topk"]["test"]["seeds"]
    assert set(seeds) == {"0", "1"}
    assert "seed 0 | seed 1 | mean (min–max)" in (tmp_path / "out" / "results.md").read_text()


def test_a_family_tested_on_a_larger_sibling_s_problems(tmp_path, one_thread):
    """`test_of`: a data-constrained family meets its larger sibling's held-out problems
    (generated with the sibling's data, copied under their own name, so its evaluations
    are named apart); one of them among its training problems is an error."""
    study = tmp_path / "data.yaml"
    study.write_text(yaml.safe_dump({
        "name": "data", "seeds": [0], "roles": ["main"],
        "run": {"model": "micro", "data": {"valid_size": 8}, "train": {"batch_size": 8}},
        "decodings": {"greedy": {"decoder": "greedy"}},
        "models": {"ar": {"objective": "ar", "decodings": ["greedy"]}},
        "families": {"big": {"task": "sat", "options": {"vars": 4}, "train_size": 96, "test_size": 8,
                             "steps": 2, "models": {"ar": {}}},
                     "small": {"task": "sat", "options": {"vars": 4}, "train_size": 24, "test_of": "big",
                               "steps": 2, "models": {"ar": {}}}}}))
    out = tmp_path / "out"
    assert main(["study", "run", str(study), "--only", "small", "--out", str(out), "--workers", "1"]) == 0
    big, small = out / "big" / "seed0" / "data", out / "small" / "seed0" / "data"
    assert (small / "test-big.jsonl").read_text() == (big / "test.jsonl").read_text()
    assert not (out / "big" / "seed0" / "runs").exists()  # its data only
    assert (small / "train.jsonl").read_text().splitlines() == (big / "train.jsonl").read_text().splitlines()[:24]
    runs = out / "small" / "seed0" / "runs" / "ar"
    assert {p.name for p in (runs / "eval").iterdir()} == {"test-big-greedy"}
    assert json.loads((runs / "fit.json").read_text())["heldout"].endswith("test-big.jsonl")
    # the report calls them the family's held-out test, as every family's, and says whose they are
    summary = json.loads((out / "study.json").read_text())
    assert list(summary["families"]["small"]["models"]["ar"]["decodings"]["greedy"]) == ["test"]
    assert "24 training problems per seed, tested on big's held-out test problems" in (out / "results.md").read_text()

    # small's training problems, written before, holding one of big's test problems
    from dvar.study.runner import make_data

    spec = engine.load_study(study)
    (small / "test-big.jsonl").unlink()
    with (small / "train.jsonl").open("a") as file:
        file.write((big / "test.jsonl").read_text().splitlines()[2] + "\n")
    with pytest.raises(ConfigError, match=r"test.jsonl: line 3 \(and 0 more\) is a training problem of small"):
        make_data(spec.family("small"), 0, out)


@pytest.fixture(scope="module")
def paper_cpu(tmp_path_factory, one_thread):
    """The paper-cpu study at a reduced setting: Countdown 3, one seed, 16 steps, its 4
    budgets (2, 4, 8, 16 steps: three branches off one trunk per model)."""
    out = tmp_path_factory.mktemp("paper-cpu")
    public = tmp_path_factory.mktemp("testsets")
    (public / "countdown_dream_cd3.jsonl").write_text(
        '{"numbers": [15, 44, 79], "target": 50, "reference_solution": "44-15=29,79-29=50"}\n'
        '{"numbers": [65, 34, 56], "target": 25, "reference_solution": "65-34=31,56-31=25"}\n')
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DVAR_TESTSETS", str(public))
        assert main(["study", "run", "paper-cpu", "--only", "countdown", "--seeds", "0", "--steps", "16",
                     "--train-size", "200", "--test-size", "12", "--out", str(out), "--workers", "2"]) == 0
        yield out


def test_paper_cpu_trains_a_trunk_and_its_branches(paper_cpu):
    runs = paper_cpu / "countdown" / "seed0" / "runs"
    assert {p.name for p in runs.iterdir()} == {f"{m}{s}" for m in ("mdm", "ar") for s in ("", "-s2", "-s4", "-s8")}
    trunk = load_config(runs / "mdm" / "config.yaml")
    assert (trunk.train.schedule, trunk.train.max_steps, trunk.train.save_at) == ("wsd", 16, [2, 3, 6])
    for steps in (2, 4, 8):
        branch = load_config(runs / f"mdm-s{steps}" / "config.yaml")
        assert branch.train.max_steps == steps and branch.train.branch_from == str(runs / "mdm")
        assert branch.train.warmup_steps == trunk.train.warmup_steps  # the trunk's, not its own budget's
        # held-out test only at the shorter budgets; the public set at the whole budget
        assert {p.name for p in (runs / f"mdm-s{steps}" / "eval").iterdir()} == {
            "test-topk", "test-margin", "test-topk-paper-repredict"}
    assert (runs / "mdm" / "eval" / "countdown_dream_cd3-topk" / "metrics.json").is_file()
    # the whole-budget runs' overfitting signal: loss on the 12 held-out test problems
    # against as many training problems, measured alike; none for the branches
    for name in ("mdm", "ar"):
        fit = json.loads((runs / name / "fit.json").read_text())
        assert fit["examples"] == 12 and fit["heldout"].endswith("test.jsonl")
        assert fit["heldout_minus_train"] == pytest.approx(fit["heldout_loss"] - fit["train_loss"])
    assert not any((runs / f"mdm-s{steps}" / "fit.json").exists() for steps in (2, 4, 8))


def test_the_branches_of_a_trunk_another_process_owns_wait_for_it_too(paper_cpu, capsys, claimed_elsewhere):
    trunk = paper_cpu / "countdown" / "seed0" / "runs" / "mdm"
    with claimed_elsewhere(trunk):
        capsys.readouterr()
        assert main(["study", "run", "paper-cpu", "--only", "countdown", "--seeds", "0", "--steps", "16",
                     "--train-size", "200", "--test-size", "12", "--out", str(paper_cpu), "--workers", "1"]) == 2
    printed = capsys.readouterr()
    assert "done: countdown/seed0/ar@2 (reused" in printed.out
    for steps in (2, 4, 8):
        assert f"skipped: countdown/seed0/mdm@{steps} (its trunk {trunk} was skipped)" in printed.out
    assert "4 job(s) skipped" in printed.err


def test_plan_says_what_an_out_folder_holds_and_what_is_left(paper_cpu, tmp_path, monkeypatch, capsys,
                                                             claimed_elsewhere):
    monkeypatch.setenv("DVAR_TESTSETS", str(paper_cpu.parent))  # no public sets: held-out test only
    args = ["study", "plan", "paper-cpu", "--only", "countdown", "--seeds", "0", "--steps", "16"]
    assert main([*args, "--out", str(paper_cpu)]) == 0
    printed = capsys.readouterr().out
    assert "| countdown/seed0/mdm | mini | 16 × 64 |" in printed and "| trained | 3 of 3 |" in printed
    assert "| countdown/seed0/ar@2 |" in printed and "| trained | 1 of 1 |" in printed
    assert "Left to do: 0 run(s) to train or resume, 0 FLOPs (a branch trains only its decay), 0 evaluation(s)." in printed

    out = tmp_path / "copy"  # a branch not yet trained, an evaluation missing, a run with other settings
    shutil.copytree(paper_cpu, out)
    for config in out.rglob("config.yaml"):  # the copy's runs name the copy's data
        config.write_text(config.read_text().replace(str(paper_cpu), str(out)))
    runs = out / "countdown" / "seed0" / "runs"
    shutil.rmtree(runs / "mdm-s4")
    shutil.rmtree(runs / "mdm" / "eval" / "test-margin")
    (runs / "ar" / "config.yaml").write_text((runs / "ar" / "config.yaml").read_text().replace("lr: 0.002", "lr: 0.001"))
    assert main([*args, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "| countdown/seed0/mdm@4 | mini | 4 × 64 |" in printed and "| to train | 0 of 3 |" in printed
    assert "| trained | 2 of 3 |" in printed
    assert "| other settings | 1 of 1 |" in printed
    left = next(line for line in printed.splitlines() if line.startswith("Left to do"))
    assert left.startswith("Left to do: 1 run(s) to train or resume, ") and "4 evaluation(s)" in left
    assert "countdown ≈ " in left  # timed at the pace of the folder's finished MDM trunk
    assert "Held with other settings (the run would stop; give another --out): countdown/seed0/ar." in printed
    with claimed_elsewhere(runs / "mdm") as pid:  # a study run evaluating it now
        assert main([*args, "--out", str(out)]) == 0
    assert f"| trained, in hand now (pid {pid}) | 2 of 3 |" in capsys.readouterr().out


def test_a_longer_budget_starts_from_the_earlier_study_s_trunks(paper_cpu, tmp_path, monkeypatch, one_thread,
                                                               capsys):
    from dvar.trainer import train

    monkeypatch.setenv("DVAR_TESTSETS", str(tmp_path))  # no public sets: held-out test only
    out = tmp_path / "longer"
    # 19 steps: the warm-up (a tenth of the steps, at most 100) stays the 16-step run's
    assert main(["study", "run", "paper-cpu", "--only", "countdown", "--seeds", "0", "--steps", "19",
                 "--train-size", "200", "--test-size", "12", "--models", "mdm", "--workers", "1",
                 "--out", str(out), "--extend", str(paper_cpu)]) == 0
    earlier, runs = paper_cpu / "countdown" / "seed0" / "runs", out / "countdown" / "seed0" / "runs"
    printed = capsys.readouterr().out
    # The 19-step trunk starts at the 16-step one's decay start (13); its 10-step branch (decay
    # start 8) from the latest checkpoint before 8 of either trunk: the 16-step one's at 6.
    assert f"branching {runs / 'mdm'} from {earlier / 'mdm' / 'checkpoints' / 'step-00000013'}" in printed
    assert f"branching {runs / 'mdm-s10'} from {earlier / 'mdm' / 'checkpoints' / 'step-00000006'}" in printed
    assert load_config(runs / "mdm" / "config.yaml").train.branch_from == str(earlier / "mdm")
    # ... and is the 19-step run trained from scratch, bit for bit.
    cfg = load_config(runs / "mdm" / "config.yaml")
    cfg.train.branch_from, cfg.out_dir = "", str(tmp_path / "scratch")
    scratch = train(cfg)
    a, b = load_file(str(scratch / "model.safetensors")), load_file(str(runs / "mdm" / "model.safetensors"))
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=0, atol=0, msg=name)
    assert json.loads((runs / "mdm" / "compute.json").read_text())["steps"] == 19


def test_paper_cpu_curve_agrees_with_metrics_and_a_hand_count_of_compute(paper_cpu):
    summary = json.loads((paper_cpu / "study.json").read_text())
    family = summary["families"]["countdown"]
    for name, model in family["models"].items():
        for decoding, stems in model["curve"].items():
            points = stems["test"]
            assert [p["steps"] for p in points] == [2, 4, 8, 16]
            for point in points:
                seed = point["seeds"]["0"]
                metrics = json.loads(Path(seed["metrics"]).read_text())
                assert seed["accuracy"] == metrics["accuracy"] == point["accuracy"]["mean"]
                run = Path(seed["metrics"]).parent.parent.parent
                cfg = load_config(run / "config.yaml")
                # 6 N + 12 n_layer n_embd cutoff per token, N counted by hand from the saved
                # weights (the token and position embeddings, and the head tied to them, left out)
                from safetensors.torch import load_file
                weights = load_file(str(run / "model.safetensors"))
                n = sum(w.numel() for k, w in weights.items()
                        if not k.startswith(("wte.", "wpe.", "lm_head.")))
                tokens = point["steps"] * cfg.train.batch_size * cfg.data.cutoff
                assert seed["tokens"] == tokens
                assert seed["flops"] == tokens * (6 * n + 12 * 2 * 128 * cfg.data.cutoff), (name, decoding)
        assert model["decodings"]["topk" if name == "mdm" else "greedy"]["test"]["seeds"]["0"]["accuracy"] == \
            model["curve"]["topk" if name == "mdm" else "greedy"]["test"][-1]["seeds"]["0"]["accuracy"]
    reach = family["verdicts"]["reach"]
    assert set(reach["thresholds"]) == {"0.5", "0.9"} and len(reach["leads"]) == 4
    text = (paper_cpu / "results.md").read_text()
    assert "Accuracy against training compute" in text and reach["verdict"] in text
    assert (paper_cpu / "countdown-curve.png").read_bytes().startswith(b"\x89PNG")


def test_reach_interpolates_in_log_compute():
    from dvar.study.verdicts import reach_flops

    curve = [(1e12, 0.2), (1e13, 0.4), (1e14, 0.8)]
    flops, first = reach_flops(curve, 0.6)
    assert not first and flops == pytest.approx(10 ** 13.5)
    assert reach_flops(curve, 0.1) == (1e12, True)  # at or before the smallest budget
    assert reach_flops(curve, 0.9) == (None, False)


def test_paper_cpu_record_rebuilds_the_same_report(paper_cpu, tmp_path):
    """`dvar study record` copies what is committed; the report rebuilt from the copy alone
    has the same tables and verdicts (the wall-time line aside)."""
    selection = ["--only", "countdown", "--seeds", "0", "--steps", "16"]
    dest = tmp_path / "record"
    assert main(["study", "record", "paper-cpu", "--out", str(paper_cpu), "--to", str(dest), *selection]) == 0
    assert (dest / "countdown" / "seed0" / "runs" / "mdm" / "model.safetensors").is_file()  # the first seed's model
    assert not (dest / "countdown" / "seed0" / "runs" / "mdm-s8" / "model.safetensors").exists()
    assert not (dest / "countdown" / "seed0" / "data" / "train.jsonl").exists()
    assert (dest / "countdown" / "seed0" / "runs" / "mdm" / "fit.json").is_file()
    assert main(["study", "summary", "paper-cpu", "--out", str(dest), *selection]) == 0
    keep = lambda path: [l for l in path.read_text().splitlines() if l and not l.startswith(("Wall", "Paper:"))]
    assert keep(dest / "results.md") == keep(paper_cpu / "results.md")
    # models for one seed only: recording another seed's runs later adds none
    other = tmp_path / "other"
    assert main(["study", "record", "paper-cpu", "--out", str(paper_cpu), "--to", str(other), *selection,
                 "--weights-seed", "1"]) == 0
    assert (other / "countdown" / "seed0" / "runs" / "mdm" / "config.yaml").is_file()
    assert not list(other.rglob("*.safetensors"))


def test_reach_states_a_bound_where_only_one_side_reaches():
    from dvar.study.verdicts import reach

    def point(budget, flops, accuracies):
        return {"budget": budget, "steps": int(8 * budget), "flops": {"mean": flops},
                "accuracy": {"mean": sum(accuracies) / len(accuracies)},
                "seeds": {str(i): {"accuracy": a, "flops": flops} for i, a in enumerate(accuracies)}}

    fam = {"models": {
        "mdm": {"curve": {"topk": {"test": [point(0.5, 1e12, [0.1, 0.1]), point(1, 2e12, [0.3, 0.2])]}}},
        "ar": {"curve": {"greedy": {"test": [point(0.5, 1e12, [0.4, 0.4]), point(1, 2e12, [0.6, 0.7])]}}}}}
    result = reach(fam, {"a": "mdm/topk", "b": "ar/greedy", "thresholds": [0.5]}, {"mdm": "MDM", "ar": "AR"})
    seed0 = result["thresholds"]["0.5"]["seeds"]["0"]
    assert seed0["a"] is None and seed0["b"] == pytest.approx(math.sqrt(2) * 1e12)  # halfway in log FLOPs
    # AR reached 50% at 1.41e12 FLOPs, the MDM not by 2e12: A = log10(C_AR / C_MDM) < log10(1.41e12 / 2e12)
    assert seed0["A_bound"][0] == "<" and seed0["A_bound"][1] == pytest.approx(-0.5 * math.log10(2))
    assert "per seed: < -0.15, < -0.20" in result["verdict"]  # seed 1: 0.4 -> 0.7, a third of the way
    assert [lead["leader"] for lead in result["leads"]] == ["b", "b"]


def test_reach_bounds_A_where_one_side_reaches_at_its_smallest_budget():
    """AR at 60% at its smallest budget (2e12 FLOPs: it needed at most that), the MDM 50% only
    at 8e12: A = log10(C_AR / C_MDM) ≤ log10(2e12 / 8e12), a bound, not a value."""
    from dvar.study.verdicts import reach

    def point(budget, flops, accuracy):
        return {"budget": budget, "steps": int(8 * budget), "flops": {"mean": flops}, "accuracy": {"mean": accuracy},
                "seeds": {"0": {"accuracy": accuracy, "flops": flops}}}

    fam = {"models": {"mdm": {"curve": {"topk": {"test": [point(0.25, 2e12, 0.1), point(1, 8e12, 0.5)]}}},
                      "ar": {"curve": {"greedy": {"test": [point(0.25, 2e12, 0.6), point(1, 8e12, 0.7)]}}}}}
    cell = reach(fam, {"a": "mdm/topk", "b": "ar/greedy", "thresholds": [0.5]}, {})["thresholds"]["0.5"]["seeds"]["0"]
    assert cell["A"] is None and cell["A_bound"][0] == "≤"
    assert cell["A_bound"][1] == pytest.approx(math.log10(2e12 / 8e12))


def test_the_committed_paper_cpu_record_summarises_to_its_results(tmp_path, monkeypatch):
    """docs/studies/2026-12-04-paper-cpu, rebuilt from its own files, gives its committed
    results.md, and every curve point is the accuracy of the metrics file it names."""
    monkeypatch.delenv("DVAR_TESTSETS", raising=False)  # the real public sets (a fixture may point elsewhere)
    if engine.spec.public_dir() is None:
        pytest.skip("../shared/testsets is not beside the checkout (its public rows are part of the table)")
    out = _rebuilt_record(tmp_path, "2026-12-04-paper-cpu", "paper-cpu", "--only", "countdown,sat,sudoku,path,path-table")
    summary = json.loads((out / "study.json").read_text())
    points = 0
    for family in summary["families"].values():
        for model in family["models"].values():
            for stems in model["curve"].values():
                for point in stems["test"]:
                    for seed in point["seeds"].values():
                        assert seed["accuracy"] == json.loads(Path(seed["metrics"]).read_text())["accuracy"]
                        points += 1
    assert points == 5 * 4 * 4 * 3  # 5 families x (3 MDM decodings + AR) x 4 budgets x 3 seeds


def test_the_committed_controls_record_summarises_to_its_results(tmp_path, monkeypatch):
    """docs/studies/2026-12-07-controls (issue 21: 9×9 Sudoku, seeds 0-2; Countdown 3, seed 0
    and AR, MDM, AR + input masking on seeds 1-2; the data axis so far), rebuilt from its
    own files, gives its committed results.md."""
    monkeypatch.delenv("DVAR_TESTSETS", raising=False)
    if engine.spec.public_dir() is None:
        pytest.skip("../shared/testsets is not beside the checkout (its public rows are part of the table)")
    _rebuilt_record(tmp_path, "2026-12-07-controls", "controls", "--only",
                    "sudoku,countdown,countdown-data4,countdown-data16", "--seeds", "0,1,2")


def _rebuilt_record(tmp_path: Path, name: str, study: str, *args: str) -> Path:
    """A copy of docs/studies/NAME (no weights, no plots) summarised by `dvar study summary
    STUDY --out COPY ARGS`; asserts the rebuilt results.md is the committed one."""
    record = ROOT / "docs" / "studies" / name
    out = tmp_path / "record"
    shutil.copytree(record, out, ignore=shutil.ignore_patterns("*.safetensors", "*.png"))
    assert main(["study", "summary", study, "--out", str(out), *args]) == 0
    assert (out / "results.md").read_text() == (record / "results.md").read_text()
    return out


def test_the_controls_ar_and_mdm_are_paper_cpu_s_runs_setting_for_setting():
    """controls.yaml reuses paper-cpu's AR and MDM runs (given its --out): every setting
    RunDir.check_same compares and every budget agree, family by family, and Countdown's
    training data exclude the same public sets (Sudoku's: paper-cpu's also excludes
    royle17, whose 17-given puzzles cannot be among 31-36-given ones)."""
    from dvar.rundir import setting_differences

    controls, paper_cpu = engine.load_study("controls"), engine.load_study("paper-cpu")
    assert controls.family("countdown").public == paper_cpu.family("countdown").public
    for family in ("countdown", "sudoku"):
        ours = {j.name: j for j in engine.plan(controls, "out", [0], only=[family], models=["ar", "mdm"])}
        theirs = {j.name: j for j in engine.plan(paper_cpu, "out", [0], only=[family])}
        assert ours and set(ours) <= set(theirs), family
        for name, job in ours.items():  # both ways: a setting one side leaves unresolved is compared too
            assert setting_differences(job.config, theirs[name].config) == [], name
            assert setting_differences(theirs[name].config, job.config) == [], name
