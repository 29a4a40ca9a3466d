"""The contract every registered task must meet (docs/adding-a-task.md). The task list
comes from the registry, so a new file in dvar/tasks/ is checked with no edit here; the
`check_*` helpers take a task, and the last tests run them on a task registered in this
file and on the template, docs/task_template.py."""

from __future__ import annotations

import dataclasses
import importlib.util
import random
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings, strategies as st

import dvar.tasks
from dvar.evaluate import from_order
from dvar.generation import generate
from dvar.metrics import format_group, group_sort_key, parse_group
from dvar.tasks import Task, get_task, register, task_names
from dvar.tasks.base import ANSWER_ORDERS

TASKS = task_names()
TEMPLATE = Path(__file__).resolve().parent.parent / "docs" / "task_template.py"
NASTY = ["", " ", "\n", "\x00", "=", ",", "/", "-", "0", "-1", "1e9", "9" * 5000, "é", "💥", "1,,2", "a" * 300,
         "None", "[]", "{}", "__import__('os')"]


# ---------------------------------------------------------------------- the contract
def _rows(task: Task, n: int, seed: int) -> list[dict[str, Any]]:
    return generate(task, n, seed=seed, options=task.make_options())


def check_example(task: Task) -> None:
    """`example` is a data line: it round-trips, verifies, and equals the first sample."""
    problem = task.parse_input(task.example["input"])
    assert task.format_input(problem) == task.example["input"]
    assert task.judge(problem, task.example["output"])["correct"]
    assert isinstance(task.summary, str) and task.summary


def check_breakdown(task: Task) -> None:
    """`breakdown` is a mapping of ints and strings that formats and parses back; so is
    every extra breakdown's value."""
    for row in _rows(task, 8, seed=1) + [task.example]:
        problem = task.parse_input(row["input"])
        breakdown = task.breakdown(problem)
        assert breakdown and all(type(v) in (int, str) for v in breakdown.values()), breakdown
        assert task.group(problem) == format_group(breakdown)
        assert parse_group(task.group(problem)) == breakdown  # ints stay ints
        for name, field in task.extra_breakdowns.items():
            assert parse_group(format_group({name: field(problem)})) == {name: field(problem)}


def check_generation(task: Task) -> None:
    """Seeded, independent of the worker count, prefix-stable; gold answers verify and
    the solver finds a correct answer; sample uses only its rng."""
    one = _rows(task, 8, seed=11)
    assert len(one) == 8 and one == generate(task, 8, seed=11, options=task.make_options(), workers=2)
    assert one != _rows(task, 8, seed=12)
    assert _rows(task, 5, seed=11) == one[:5]
    random.seed(0)
    first = task.sample(random.Random(5), task.make_options())
    random.seed(1)
    assert task.sample(random.Random(5), task.make_options()) == first
    for row in _rows(task, 12, seed=3):
        problem = task.parse_input(row["input"])
        assert task.format_input(problem) == row["input"]
        assert task.verify(problem, row["output"]), row
        solved = task.solve(problem)
        assert solved is not None and task.verify(problem, solved), row


def check_reference_lengths(task: Task) -> None:
    cutoff, max_new = task.reference_lengths(task.make_options())
    for row in _rows(task, 50, seed=5):
        assert len(row["input"]) + len(row["output"]) + 2 <= cutoff
        assert len(row["output"]) + 1 <= max_new


def check_exclusion(task: Task) -> None:
    first = _rows(task, 10, seed=21)
    keys = {task.canonical(task.parse_input(r["input"])) for r in first}
    again = generate(task, 10, seed=21, options=task.make_options(), exclude=keys)
    assert not keys & {task.canonical(task.parse_input(r["input"])) for r in again}


def check_options(task: Task) -> None:
    with pytest.raises(ValueError, match="unknown option"):
        task.make_options(no_such_knob=1)
    assert dataclasses.is_dataclass(task.make_options())


def check_untrusted_text(task: Task, texts: list[str]) -> None:
    """parse_input raises ValueError only; judge, well_formed and from_order never raise
    (from_order: ValueError at most); whatever verifies is well-formed."""
    problem = task.parse_input(task.example["input"])
    for text in texts:
        try:
            task.parse_input(text)
        except ValueError:
            pass
        verdict = task.judge(problem, text)
        assert isinstance(verdict["correct"], bool) and all(isinstance(v, bool) for v in verdict.values())
        assert isinstance(task.well_formed(problem, text), bool)
        if verdict["correct"]:
            assert task.well_formed(problem, text)
        partial = task.partial_credit(problem, text)
        assert partial is None or 0.0 <= partial <= 1.0
        for order in task.answer_orders:
            assert isinstance(from_order(task, problem, text, order), str)


def check_wrong_answer_in_the_right_form(task: Task) -> None:
    """Gold answers are well-formed; some one-character change of one is well-formed yet
    wrong (format is not accuracy), and the gold with junk appended is not well-formed."""
    row = _rows(task, 1, seed=5)[0]
    problem = task.parse_input(row["input"])
    gold = row["output"]
    assert task.well_formed(problem, gold)
    candidates = (gold[:i] + c + gold[i + 1:] for i in range(len(gold)) for c in sorted(set(gold + "0123456789")))
    assert any(task.well_formed(problem, a) and not task.verify(problem, a) for a in candidates), gold
    assert not task.well_formed(problem, gold + ",,")


def check_answer_orders(task: Task) -> None:
    """forward first, known orders only; every order round-trips the gold and the
    verifier accepts it mapped back; an order the task lacks is a clear error."""
    assert task.answer_orders[0] == "forward" and set(task.answer_orders) <= set(ANSWER_ORDERS)
    for row in _rows(task, 4, seed=7):
        problem = task.parse_input(row["input"])
        for order in task.answer_orders:
            written = task.to_order(problem, row["output"], order, random.Random(3))
            assert task.from_order(problem, written, order) == row["output"], (order, written)
    missing = [order for order in ANSWER_ORDERS if order not in task.answer_orders]
    for order in missing:
        with pytest.raises(ValueError, match=f"task {task.name} has no answer order"):
            task.check_order(order)


def check_analysis_layout(task: Task) -> None:
    """The optional analysis hooks answer in their types."""
    row = _rows(task, 1, seed=9)[0]
    problem = task.parse_input(row["input"])
    separator = task.part_separator(problem)
    assert separator is None or (isinstance(separator, str) and separator)
    grid = task.answer_grid(problem)
    if grid is not None:
        assert grid[0] * grid[1] == len(row["output"])
    given = task.given_cells(problem)
    assert given is None or (len(given) == len(row["output"]) and all(isinstance(g, bool) for g in given))
    units = task.direction_units(problem, row["output"])
    assert units is None or all(0 <= a < b <= len(row["output"]) for a, b in units)


CHECKS = [check_example, check_breakdown, check_generation, check_reference_lengths, check_exclusion,
          check_options, check_wrong_answer_in_the_right_form, check_answer_orders, check_analysis_layout]


def check_contract(task: Task) -> None:
    for check in CHECKS:
        check(task)
    check_untrusted_text(task, NASTY + [task.example["output"], task.example["input"]])


# ---------------------------------------------------------------------- every registered task
def test_the_four_paper_tasks_are_registered():
    assert {"path", "countdown", "sudoku", "sat"} <= set(TASKS)


def test_unknown_task_lists_known_ones():
    with pytest.raises(KeyError, match="known tasks: .*countdown.*path"):
        get_task("chess")


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("name", TASKS)
def test_contract(name, check):
    check(get_task(name))


@pytest.mark.parametrize("name", TASKS)
@settings(max_examples=60, deadline=None)
@given(text=st.text(max_size=120))
def test_untrusted_text_never_crashes(name, text):
    check_untrusted_text(get_task(name), [text])


@pytest.mark.parametrize("name", TASKS)
@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 50))
def test_generated_gold_is_well_formed_and_correct(name, seed):
    task = get_task(name)
    row = generate(task, 1, seed=seed, options=task.make_options())[0]
    problem = task.parse_input(row["input"])
    assert task.well_formed(problem, row["output"]) and task.verify(problem, row["output"])
    assert task.partial_credit(problem, row["output"]) in (None, 1.0)  # a gold answer gets full credit


# ---------------------------------------------------------------------- breakdown keys
@pytest.mark.parametrize("breakdown,key", [
    ({"pd": 3}, "pd=3"), ({"pd": "none"}, "pd=none"), ({"pd": -1}, "pd=-1"),
    ({"numbers": 4, "target": "ood"}, "numbers=4,target=ood"), ({"givens": 33}, "givens=33"),
    ({"id": "007"}, "id=007"),
])
def test_breakdown_keys_format_and_parse_back(breakdown, key):
    assert format_group(breakdown) == key
    assert parse_group(key) == breakdown


@pytest.mark.parametrize("bad", ["", "pd", "pd=", "=3", "pd=3,", "pd=3=4", "PD=3", "pd=3,pd=4", "all"])
def test_a_malformed_breakdown_key_is_an_error_naming_it(bad):
    with pytest.raises(ValueError, match="breakdown key"):
        parse_group(bad)


@pytest.mark.parametrize("bad", [{}, {"pd": "a,b"}, {"pd": "a=b"}, {"Pd": 1}, {"pd": True}, {"pd": 1.5}, {"pd": ""}])
def test_a_breakdown_that_would_not_read_back_is_refused(bad):
    with pytest.raises(ValueError, match="breakdown"):
        format_group(bad)


def test_breakdown_keys_sort_by_number():
    keys = ["pd=10", "pd=2", "pd=none", "pd=9", "pd=0"]
    assert sorted(keys, key=group_sort_key) == ["pd=0", "pd=2", "pd=9", "pd=10", "pd=none"]


# ---------------------------------------------------------------------- a new task
@dataclasses.dataclass(frozen=True)
class Bits:
    bits: str


class ParityTask(Task):
    """The smallest task that meets the contract: the parity of a bit string."""

    name = "parity_test"
    summary = "parity: 1 if the bit string holds an odd number of ones, else 0"
    example = {"input": "1101", "output": "1"}
    answer_orders = ("forward",)

    @dataclasses.dataclass(frozen=True)
    class Options:
        length: int = dataclasses.field(default=12, metadata={"help": "bits per problem"})

    def sample(self, rng: random.Random, options: Any) -> dict[str, Any]:
        bits = "".join(rng.choice("01") for _ in range(options.length))
        return {"input": bits, "output": self.solve(Bits(bits))}

    def parse_input(self, text: str) -> Bits:
        if not text or set(text) - {"0", "1"}:
            raise ValueError(f"parity: expected a string of 0 and 1, got {text[:40]!r}")
        return Bits(text)

    def format_input(self, problem: Bits) -> str:
        return problem.bits

    def solve(self, problem: Bits) -> str:
        return str(problem.bits.count("1") % 2)

    def judge(self, problem: Bits, answer: str) -> dict[str, bool]:
        return {"correct": isinstance(answer, str) and answer.strip() == self.solve(problem)}

    def well_formed(self, problem: Bits, answer: str) -> bool:
        return isinstance(answer, str) and answer.strip() in ("0", "1")

    def breakdown(self, problem: Bits) -> dict[str, int | str]:
        return {"ones": problem.bits.count("1")}

    def reference_lengths(self, options: Any) -> tuple[int, int]:
        return options.length + 3, 2


@pytest.fixture
def registry(monkeypatch):
    """The task registry, restored after the test (what a test registers stays in it)."""
    task_names()  # import every task module first
    monkeypatch.setattr(dvar.tasks._TASKS, "_classes", dict(dvar.tasks._TASKS._classes))
    return dvar.tasks._TASKS


def test_a_task_registered_here_is_found_and_meets_the_contract(registry):
    register(ParityTask)
    assert "parity_test" in task_names() and isinstance(get_task("parity_test"), ParityTask)
    check_contract(get_task("parity_test"))


def test_a_task_that_breaks_the_contract_fails_it(registry):
    class Lenient(ParityTask):
        name = "lenient_test"

        def judge(self, problem: Bits, answer: str) -> dict[str, bool]:
            return {"correct": True}  # accepts anything, so no wrong answer exists

    register(Lenient)
    with pytest.raises(AssertionError):
        check_wrong_answer_in_the_right_form(get_task("lenient_test"))


def test_the_template_meets_the_contract_once_registered(registry, monkeypatch):
    spec = importlib.util.spec_from_file_location("task_template", TEMPLATE)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "task_template", module)
    spec.loader.exec_module(module)  # its @register adds it
    task = get_task("sorting")
    check_contract(task)
    assert {k: v for k, v in task.sample(random.Random(0), task.make_options()).items()} == task.example
    assert task.group(task.parse_input(task.example["input"])) == "numbers=6"
