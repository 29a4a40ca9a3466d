"""Answer orders (SPEC §9): every task's answer written forward, reverse, in the solver's
order or in a random order, mapped back before the verifier judges it."""

from __future__ import annotations

import json
import random

import pytest
import torch
from hypothesis import given, settings, strategies as st

from dvar.analyze import decode_direction
from dvar.cli import main
from dvar.data import read_examples, written_answers
from dvar.evaluate import from_order
from dvar.generation import generate
from dvar.tasks import get_task, task_names
from dvar.tasks.base import ANSWER_ORDERS
from dvar.tasks.sudoku import solver_order

# (task, generator options) covering every answer form: path edge list / compact / table,
# Countdown 3 and 4, Sudoku 9x9 (default and hard, which needs search) and 4x4, SAT 5 and 9.
SETTINGS = [
    ("path", {}), ("path", {"nodes": 4, "compact": True}), ("path", {"nodes": 3, "id_count": 10, "table": True}),
    ("countdown", {"numbers": 3}), ("countdown", {"numbers": 4}),
    ("sudoku", {}), ("sudoku", {"preset": "hard"}), ("sudoku", {"size": 4, "givens": (4, 8)}),
    ("sat", {"vars": 5}), ("sat", {"vars": 9}),
]
ORDERS = {"path": ("forward", "reverse"), "countdown": ("forward", "reverse"),
          "sudoku": ANSWER_ORDERS, "sat": ANSWER_ORDERS}


def problems(name: str, options: dict, seed: int, n: int = 3) -> list[tuple[object, str]]:
    task = get_task(name)
    rows = generate(task, n, seed, task.make_options(**options))
    return [(task.parse_input(row["input"]), row["output"]) for row in rows]


def test_every_task_declares_its_orders():
    # Every registered task (a new file needs no edit here; tests/test_tasks_common.py
    # round-trips each order it declares), and the paper's four exactly these.
    for name in task_names():
        orders = get_task(name).answer_orders
        assert orders[0] == "forward" and set(orders) <= set(ANSWER_ORDERS), (name, orders)
    for name, orders in ORDERS.items():
        assert get_task(name).answer_orders == orders


@settings(max_examples=12, deadline=None)
@given(setting=st.sampled_from(SETTINGS), seed=st.integers(0, 10**6), order_seed=st.integers(0, 10**6))
def test_round_trip_is_the_identity_and_the_verifier_accepts_the_mapped_back_gold(setting, seed, order_seed):
    name, options = setting
    task = get_task(name)
    for problem, gold in problems(name, options, seed, n=2):
        for order in task.answer_orders:
            written = task.to_order(problem, gold, order, random.Random(order_seed))
            back = task.from_order(problem, written, order)
            assert back == gold, (order, written)
            assert task.verify(problem, back)


def _corrupt(name: str, problem, order: str, written: str, rng: random.Random) -> str:
    """One change that makes the answer wrong: another value for one unit."""
    if name == "sat":  # flip one literal: the planted solution is the only model
        units = written.split(",")
        i = rng.randrange(len(units))
        char = units[i]
        units[i] = chr(ord("a") + int(char)) if char.isdigit() else str(ord(char) - ord("a"))
        return ",".join(units)
    if name == "sudoku":  # another value for one written cell
        positioned = order in ("solver", "random")  # `rcv` triples: change a value
        index = rng.randrange(len(written) // 3) * 3 + 2 if positioned else rng.randrange(len(written))
        new = str(int(written[index]) % problem.size + 1)
        return written[:index] + new + written[index + 1 :]
    if name == "countdown":  # the target's equation gives another result
        units = written.split(",")
        last = 0 if order == "reverse" else len(units) - 1
        units[last] = units[last] + "1"
        return ",".join(units)
    # path: one node replaced by an id the graph does not use between these two nodes
    digits = [i for i, ch in enumerate(written) if ch.isdigit()]
    i = rng.choice(digits)
    return written[:i] + ("9" if written[i] != "9" else "8") + written[i + 1 :]


@settings(max_examples=15, deadline=None)
@given(setting=st.sampled_from(SETTINGS), seed=st.integers(0, 10**6))
def test_a_corrupted_ordered_answer_is_judged_wrong(setting, seed):
    name, options = setting
    task = get_task(name)
    rng = random.Random(seed)
    for problem, gold in problems(name, options, seed, n=2):
        for order in task.answer_orders:
            written = task.to_order(problem, gold, order, random.Random(seed))
            bad = _corrupt(name, problem, order, written, rng)
            assume_changed = bad != written
            assert assume_changed
            assert not task.verify(problem, from_order(task, problem, bad, order)), (order, written, bad)


@settings(max_examples=60, deadline=None)
@given(setting=st.sampled_from(SETTINGS), text=st.text(alphabet="0123456789abcdefj,=/+-*.x ", max_size=300))
def test_any_text_maps_back_or_is_a_wrong_answer_never_a_crash(setting, text):
    name, options = setting
    task = get_task(name)
    problem, _ = problems(name, options, 0, n=1)[0]
    for order in task.answer_orders:
        try:
            back = task.from_order(problem, text, order)
        except ValueError:
            back = None
        mapped = from_order(task, problem, text, order)
        assert mapped == ("" if back is None else back)
        assert task.judge(problem, mapped)["correct"] in (True, False)


def test_random_orders_depend_on_the_seed_only(tmp_path):
    task = get_task("sudoku")
    path = tmp_path / "train.jsonl"
    rows = generate(task, 20, 0, task.make_options(size=4, givens=(6, 8)))
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    examples = read_examples(path, task, need_output=True)
    first = written_answers(task, examples, "random", seed=3, source=str(path))
    assert first == written_answers(task, examples, "random", seed=3, source=str(path))
    assert first != written_answers(task, examples, "random", seed=4, source=str(path))
    # A fresh order per example: not one permutation for all.
    orders = {tuple(text[i : i + 2] for i in range(0, len(text), 3)) for text in first}
    assert len(orders) > 10


def test_solver_order_follows_propagation_then_search():
    task = get_task("sudoku")
    hard = generate(task, 2, 7, task.make_options(preset="hard"))
    for row in hard:
        problem = task.parse_input(row["input"])
        cells = solver_order(problem.grid)
        blanks = [c for c, v in enumerate(problem.grid) if not v]
        assert sorted(cells) == blanks  # every blank exactly once
    # A puzzle solved by singles: the first cell fixed is a naked or hidden single.
    easy = task.parse_input(task.example["input"])
    first = solver_order(easy.grid)[0]
    written = task.to_order(easy, task.example["output"], "solver")
    assert written[:3] == f"{first // 9 + 1}{first % 9 + 1}{task.example['output'][first]}"


def test_sat_solver_order_is_the_dpll_trail():
    task = get_task("sat")
    problem = task.parse_input(task.example["input"])
    written = task.to_order(problem, task.example["output"], "solver")
    assert sorted(written.split(",")) == sorted(task.example["output"].split(","))
    assert task.from_order(problem, written, "solver") == task.example["output"]


@pytest.mark.parametrize("name,order", [("countdown", "solver"), ("path", "random"), ("path", "sideways")])
def test_an_order_the_task_does_not_have_is_a_clear_error(tmp_path, capsys, name, order):
    task = get_task(name)
    data = tmp_path / "train.jsonl"
    data.write_text(json.dumps(task.example) + "\n")
    code = main(["train", f"task={name}", "objective=ar", "model=micro", f"data.train={data}",
                 f"out_dir={tmp_path / 'run'}", f"data.answer_order={order}", "data.valid_size=0"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert f"task {name} has no answer order '{order}'" in err
    assert ", ".join(task.answer_orders) in err
    assert not (tmp_path / "run").exists()


def test_a_gold_answer_that_cannot_be_ordered_names_file_and_line(tmp_path, capsys):
    task = get_task("sudoku")
    data = tmp_path / "train.jsonl"
    bad = dict(task.example, output="1" * 81)
    data.write_text(json.dumps(task.example) + "\n" + json.dumps(bad) + "\n")
    code = main(["train", "task=sudoku", "objective=ar", "model=micro", f"data.train={data}",
                 f"out_dir={tmp_path / 'run'}", "data.answer_order=solver", "data.valid_size=0"])
    err = capsys.readouterr().err
    assert code == 2 and f"{data}:2" in err and "solver order" in err


def test_a_sequence_that_grows_past_the_cutoff_is_an_error(tmp_path, capsys):
    task = get_task("sudoku")
    rows = generate(task, 4, 0, task.make_options(size=4, givens=(4, 5)))
    data = tmp_path / "train.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in rows))
    # 16 + SEP + 16 + EOS = 34 fits forward; the solver order writes 3 characters per blank.
    assert main(["train", "task=sudoku", "objective=ar", "model=micro", f"data.train={data}",
                 f"out_dir={tmp_path / 'fwd'}", "data.cutoff=34", "data.valid_size=0",
                 "train.max_steps=1"]) == 0
    code = main(["train", "task=sudoku", "objective=ar", "model=micro", f"data.train={data}",
                 f"out_dir={tmp_path / 'solver'}", "data.cutoff=34", "data.valid_size=0",
                 "data.answer_order=solver", "train.max_steps=1"])
    err = capsys.readouterr().err
    assert code == 2 and f"{data}:1" in err


def test_ordered_run_evaluates_in_the_tasks_own_format(tmp_path, capsys):
    task = get_task("sudoku")
    options = task.make_options(size=4, givens=(6, 8))
    train, test = tmp_path / "train.jsonl", tmp_path / "test.jsonl"
    train.write_text("".join(json.dumps(r) + "\n" for r in generate(task, 300, 0, options)))
    test.write_text("".join(json.dumps(r) + "\n" for r in generate(task, 24, 1, options)))
    run = tmp_path / "ar-solver"
    assert main(["train", "task=sudoku", "objective=ar", "model=micro", f"data.train={train}",
                 f"out_dir={run}", "data.answer_order=solver", "data.valid_size=16",
                 "train.max_steps=30", "train.batch_size=16", "train.eval_size=8"]) == 0
    assert "answer_order: solver" in (run / "config.yaml").read_text()
    out = run / "eval" / "test"
    assert main(["eval", str(run), "--data", str(test), "--out", str(out)]) == 0
    rows = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    for row in rows:
        problem = task.parse_input(row["input"])
        assert row["predict"] == from_order(task, problem, row["raw"], "solver")
        assert row["correct"] == task.verify(problem, row["predict"])
        assert row["predict"] == "" or len(row["predict"]) == 16  # the grid, never the ordered text
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["answer_order"] == "solver"
    # A model that writes the gold in solver order is judged correct after mapping back.
    examples = read_examples(test, task, need_output=True)
    golds = written_answers(task, examples, "solver", 0, str(test))
    assert all(task.verify(ex.problem, from_order(task, ex.problem, g, "solver")) for ex, g in zip(examples, golds))
    report = tmp_path / "report"
    assert main(["report", str(run), "--out", str(report)]) == 0
    assert "micro ar solver greedy" in (report / "results.md").read_text()


def test_decode_direction_reads_which_end_of_the_path_was_fixed_first():
    task = get_task("path")
    problem = task.parse_input("40/34/64/21/42/07-67")  # compact: answer 6407
    nan = float("nan")
    # Steps at which each answer position was revealed (4 nodes and EOS).
    backward = torch.tensor([[5.0, 3.0, 2.0, 1.0, 4.0]])  # node 0 (goal side) before node 4
    forward = torch.tensor([[1.0, 2.0, 3.0, 4.0, 5.0]])
    short = task.parse_input("7===1=4=02==4===/4=2=4===36====0=-67")
    units = [task.direction_units(p, text) for p, text in [(problem, "6407"), (problem, "6407"), (short, "647")]]
    assert units[0] == [(1, 2), (2, 3)]  # the interior nodes; start and goal are copies
    out = decode_direction(units, torch.cat([backward, forward, torch.tensor([[1.0, 2.0, 3.0, 4.0, nan]])]),
                           ["pd=3", "pd=3", "pd=2"])
    assert out["pd=3"] == {"n": 2, "undefined": 0, "backward": 0.5, "forward": 0.5, "tie": 0.0}
    # One interior node: no start side and goal side to compare.
    assert out["pd=2"] == {"n": 1, "undefined": 1, "backward": None, "forward": None, "tie": None}
    assert out["all"]["n"] == 3 and out["all"]["undefined"] == 1


def test_decode_direction_of_an_edge_list_path_reads_its_edges():
    task = get_task("path")
    problem = task.parse_input(task.example["input"])
    answer = task.example["output"]  # 5,6/6,11/11,7/7,2/2,1
    units = task.direction_units(problem, answer)
    assert [answer[a:b] for a, b in units] == ["5,6", "6,11", "11,7", "7,2", "2,1"]
    steps = torch.tensor([[float(len(answer) - i) for i in range(len(answer) + 1)]])  # last char first
    out = decode_direction([units, None], torch.cat([steps, steps]), ["pd=5", "pd=5"])
    assert out["pd=5"] == {"n": 2, "undefined": 1, "backward": 1.0, "forward": 0.0, "tie": 0.0}


def test_demo_controls_add_ar_reverse(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--seed", "1", "--steps", "15", "--train-size", "200",
                 "--test-size", "30", "--controls"]) == 0
    printed = capsys.readouterr().out
    assert "| AR reverse | own | 15 × 32 |" in printed
    assert "control, AR reverse where writing goal-first needs no look-ahead" in printed
    run = out / "path" / "seed1" / "runs" / "ar-reverse"
    rows = [json.loads(line) for line in (run / "eval" / "test-own" / "predictions.jsonl").read_text().splitlines()]
    assert all("raw" in row for row in rows)
    assert "answer_order: reverse" in (run / "config.yaml").read_text()
    results = (out / "results.md").read_text()
    assert "AR reverse" in results and "rpd=0" in results  # by goal-side planning distance


@settings(max_examples=20, deadline=None)
@given(nodes=st.integers(2, 6), seed=st.integers(0, 10**6))
def test_writing_goal_first_mirrors_the_planning_distance(nodes, seed):
    from dvar.tasks.path import planning_distance, reverse_planning_distance

    task = get_task("path")
    for row in generate(task, 5, seed, task.make_options(nodes=nodes, paths=2)):
        p = task.parse_input(row["input"])
        pd = planning_distance(p.edges, p.start, p.goal)
        assert reverse_planning_distance(p.edges, p.start, p.goal) == nodes - 1 - pd


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ar_reverse_on_the_demo_path_task_mirrors_ar_forward(tmp_path, seed):
    # The demo's recipe with --controls, 7-9 minutes per seed on 2 CPU cores. Writing
    # the path goal-first needs no look-ahead where the goal side reaches the branch within
    # one node (goal-side planning distance <= 1): >= 90% there on every seed measured
    # (README, Results). It is NOT >= 90% at every planning distance, as issue 11 expected:
    # on these graphs the shared node also has two predecessors, so at PD 0 (goal-side PD 2)
    # the reverse model must guess (58-61% measured), the mirror image of AR forward at PD 2.
    from dvar import study as engine

    summary = engine.run_study(engine.load_study("demo"), tmp_path / "demo", seeds=[seed],
                               roles=["main", "control"], log=lambda _: None)
    reverse = summary["families"]["path"]["models"]["ar-reverse"]["decodings"]["own"]["test"]["by"]
    near = {key: acc["mean"] for key, acc in reverse.items() if key.startswith("rpd=") and int(key[4:]) <= 1}
    assert near and all(acc >= 0.9 for acc in near.values()), reverse


def test_the_solver_order_figure_is_compared_with_solver_order_runs_only():
    from dvar.report import Result, published_table

    def result(order: str) -> Result:
        by = {"givens=24": {"n": 10, "correct": 5, "accuracy": 0.5}}
        return Result(task="sudoku", data="hard.jsonl", model="tiny", objective="ar", decoder="greedy",
                      steps=None, n=10, correct=5, accuracy=0.5, nfe_per_example=None, examples_per_s=None,
                      by=by, run="", path="m.json", answer_order=order)

    rows = published_table([result("forward"), result("solver")])[1:]
    assert [row[3] for row in rows] == ["tiny ar solver greedy"]
    assert rows[0][5] == "AR, solver-order training"


def test_the_control_verdicts_read_ar_reverse_by_goal_side_planning_distance():
    """The demo study's verdicts on AR reverse: it needs no look-ahead up to goal-side
    planning distance 1, and mirrors AR forward's look-ahead from 2 on."""
    from dvar import study as engine
    from dvar.study.verdicts import family_verdicts

    def model(label, role, **by):
        seeds = {"0": {"accuracy": 0.0, "by": {k.replace("_", "="): v for k, v in by.items()}}}
        return {"label": label, "role": role, "decodings": {"own": {"test": {"seeds": seeds}}}}

    fam = {"models": {"mdm": model("MDM", "main", pd_0=1.0, pd_1=1.0, pd_2=1.0),
                      "ar": model("AR", "main", pd_0=1.0, pd_1=1.0, pd_2=0.45),
                      "ar-reverse": model("AR reverse", "control", pd_0=0.58, pd_1=1.0, pd_2=1.0,
                                          rpd_0=1.0, rpd_1=1.0, rpd_2=0.58)}}
    verdicts = family_verdicts(engine.load_study("demo"), "path", fam)
    assert verdicts["finding"]["per_seed"]["0"]["shown"]
    assert verdicts["reverse_lookups"]["per_seed"]["0"]["shown"]  # rpd 0-1 >= 90%
    assert verdicts["reverse_mirror"]["per_seed"]["0"]["shown"]  # rpd 2 < 75%: the mirror
    assert "mirrors the look-ahead" in verdicts["reverse_mirror"]["verdict"]
    fam["models"]["ar-reverse"]["decodings"]["own"]["test"]["seeds"]["0"]["by"]["rpd=1"] = 0.4
    lookups = family_verdicts(engine.load_study("demo"), "path", fam)["reverse_lookups"]
    assert lookups["per_seed"]["0"]["reasons"] == ["AR reverse below 90% at rpd=1"]
