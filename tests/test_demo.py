"""`dvar demo`: the pipeline at a tiny budget (fast), and the finding itself (slow)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from dvar.cli import main
from dvar.demo import DemoSettings, format_table, run_demo, shows_finding


def test_demo_writes_data_runs_report_and_plot(tmp_path, capsys):
    out = tmp_path / "demo"
    # A tiny budget: the pipeline end to end, not the finding (that is the slow test).
    assert main(["demo", "--out", str(out), "--seed", "3", "--steps", "20", "--train-size", "300",
                 "--test-size", "40", "--model", "micro"]) == 0
    printed = capsys.readouterr().out
    assert str(out) in printed and "| planning distance |" in printed
    # 20 steps teach nothing: the verdict says so, and which side fell short.
    assert "Finding NOT shown" in printed and "the MDM is below 90% at pd=" in printed

    train = [json.loads(line) for line in (out / "data" / "train.jsonl").read_text().splitlines()]
    test = [json.loads(line) for line in (out / "data" / "test.jsonl").read_text().splitlines()]
    assert len(train) == 300 and len(test) == 40
    # Held out: no test graph occurs in training, even with its edges listed in another order.
    canon = lambda row: (tuple(sorted(row["input"].split("-")[0].split("/"))), row["input"].split("-")[1])
    assert not {canon(r) for r in train} & {canon(r) for r in test}

    for objective in ("mdm", "ar"):
        run = out / "runs" / objective
        assert (run / "config.yaml").is_file() and (run / "model.safetensors").stat().st_size > 0
        assert f"objective: {objective}" in (run / "config.yaml").read_text()
        metrics = json.loads((out / "eval" / objective / "metrics.json").read_text())
        assert metrics["n"] == 40 and metrics["objective"] == objective

    pds = sorted({row["pd"] for row in test})
    results = (out / "results.md").read_text()
    for pd in pds:
        assert f"\n| {pd} | " in results
    assert "\n| all | 40 |" in results
    png = (out / "accuracy_by_pd.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 1000


def test_side_by_side_training_equals_one_after_another(tmp_path):
    # The demo trains MDM and AR in two 1-thread processes on a 2-core machine; the models
    # must be exactly those of training them one after the other with 1 thread.
    from safetensors.torch import load_file

    threads = torch.get_num_threads()
    try:
        tiny = dict(seed=5, steps=15, train_size=200, test_size=30)
        together = run_demo(DemoSettings(**tiny, threads=2, parallel=True), tmp_path / "a", log=lambda _: None)
        apart = run_demo(DemoSettings(**tiny, threads=1, parallel=False), tmp_path / "b", log=lambda _: None)
    finally:
        torch.set_num_threads(threads)
    for objective in ("mdm", "ar"):
        a = load_file(tmp_path / "a" / "runs" / objective / "model.safetensors")
        b = load_file(tmp_path / "b" / "runs" / objective / "model.safetensors")
        assert a.keys() == b.keys()
        for name in a:
            assert torch.equal(a[name], b[name]), (objective, name)
    assert together.accuracy == apart.accuracy


def test_finding_needs_mdm_everywhere_and_ar_near_chance_from_pd_2():
    good = {"mdm": {"pd=0": 1.0, "pd=1": 0.95, "pd=2": 0.92, "pd=3": 0.9, "all": 0.94},
            "ar": {"pd=0": 1.0, "pd=1": 0.9, "pd=2": 0.5, "pd=3": 0.55, "all": 0.7}}
    assert shows_finding(good)
    assert not shows_finding({**good, "mdm": {**good["mdm"], "pd=3": 0.89}})
    assert not shows_finding({**good, "ar": {**good["ar"], "pd=2": 0.8}})
    table = format_table(good, {"pd=0": 1, "pd=1": 2, "pd=2": 3, "pd=3": 4})
    assert table.splitlines()[2] == "| 0 | 1 | 100.0% | 100.0% |"
    assert table.splitlines()[-1] == "| all | 10 | 94.0% | 70.0% |"


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2, pytest.param(3, marks=pytest.mark.xfail(
    reason="the AR model learns the one-node look-ahead on this seed (README, Results)", strict=False))])
def test_demo_shows_the_finding(tmp_path, seed):
    # The default recipe, as `dvar demo` runs it: about 3 minutes per seed on 2 CPU cores
    # (README, Results, has the table of every seed measured: shown on 4 of 5).
    result = run_demo(DemoSettings(seed=seed), tmp_path / "demo")
    assert shows_finding(result.accuracy), result.accuracy
