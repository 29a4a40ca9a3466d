"""`dvar demo`: the pipeline at a tiny budget (fast), and the finding itself (slow)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dvar.cli import main
from dvar.demo import DemoSettings, format_table, run_demo, shows_finding


def test_demo_writes_data_runs_report_and_plot(tmp_path, capsys):
    out = tmp_path / "demo"
    # A tiny budget: the pipeline end to end, not the finding (that is the slow test).
    assert main(["demo", "--out", str(out), "--seed", "3", "--steps", "20", "--train-size", "300",
                 "--test-size", "40", "--model", "micro"]) == 0
    printed = capsys.readouterr().out
    assert str(out) in printed and "| planning distance |" in printed

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


def test_finding_needs_mdm_everywhere_and_ar_near_chance_from_pd_2():
    good = {"mdm": {"pd=0": 1.0, "pd=1": 0.95, "pd=2": 0.92, "pd=3": 0.9, "all": 0.94},
            "ar": {"pd=0": 1.0, "pd=1": 0.9, "pd=2": 0.5, "pd=3": 0.55, "all": 0.7}}
    assert shows_finding(good)
    assert not shows_finding({**good, "mdm": {**good["mdm"], "pd=3": 0.89}})
    assert not shows_finding({**good, "ar": {**good["ar"], "pd=2": 0.8}})
    table = format_table(good, {"pd=0": 1, "pd=1": 2, "pd=2": 3, "pd=3": 4})
    assert table.splitlines()[2] == "| 0 | 1 | 100.0% | 100.0% |"
    assert table.splitlines()[-1] == "| all | 10 | 94.0% | 70.0% |"


# Measured (README, Results): seed 0 shows it; on seeds 1 and 2 the MDM learns the lookup
# late or not at all within the budget (40.0% and 88.0%). Not yet a reliable recipe.
_NOT_YET = pytest.mark.xfail(reason="the MDM has not learned the lookup on this seed at the "
                             "default budget (README, Results)", strict=False)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, pytest.param(1, marks=_NOT_YET), pytest.param(2, marks=_NOT_YET)])
def test_demo_shows_the_finding(tmp_path, seed):
    # The default recipe, as `dvar demo` runs it: about 4 minutes per seed on 2 CPU cores.
    result = run_demo(DemoSettings(seed=seed), tmp_path / "demo")
    assert shows_finding(result.accuracy), result.accuracy
