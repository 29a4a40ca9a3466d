"""Tests for the `sat` task: format, planted unique generation, DPLL and the verifier.

Every check of a formula's models here is an independent brute force over
`itertools.product`, not the bitmask code the generator uses.
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from dvar.tasks import get_task
from dvar.tasks.sat import AUTO_CLAUSES, SatProblem, SatTask, dpll

TASK = get_task("sat")
SATLIB = Path("/work/shared/testsets/sat3_satlib_uf20-91.jsonl")
ALPHABET = "0123456789abcdefghij,/"
CUTOFFS = {5: 258, 7: 285, 9: 325}


def brute_models(problem: SatProblem) -> list[tuple[bool, ...]]:
    """Every satisfying assignment (x1..xn), by enumeration."""
    return [
        values
        for values in itertools.product((False, True), repeat=problem.num_vars)
        if all(any(values[abs(lit) - 1] == (lit > 0) for lit in clause) for clause in problem.clauses)
    ]


def answer_text(values: tuple[bool, ...]) -> str:
    # Written independently of the module: "k" for true, the k-th letter (a = 0) for false.
    return ",".join(str(k) if v else "abcdefghij"[k] for k, v in enumerate(values, 1))


def sample(seed: int, **options) -> dict[str, str]:
    return TASK.sample(random.Random(seed), TASK.make_options(**options))


formulas = st.integers(3, 6).flatmap(
    lambda n: st.lists(
        st.lists(st.integers(1, n).flatmap(lambda k: st.sampled_from([k, -k])), min_size=3, max_size=3),
        min_size=1,
        max_size=30,
    ).map(lambda clauses: SatProblem(max(abs(l) for c in clauses for l in c), tuple(map(tuple, clauses))))
)


# ---------------------------------------------------------------------- format
def test_example_is_a_real_generated_example():
    assert TASK.sample(random.Random(0), TASK.make_options()) == SatTask.example


def test_documented_literal_convention():
    problem = TASK.parse_input("1,c,4/b,3,e")
    assert problem == SatProblem(4, ((1, -2, 4), (-1, 3, -4)))
    assert TASK.parse_input("9,j,b").clauses == ((9, -9, -1),)
    assert TASK.parse_input("9,j,b").num_vars == 9


@pytest.mark.parametrize(
    "text",
    ["", " ", "1,2", "1,2,3/", "/1,2,3", "1,2,3,4", "a,1,2", "0,1,2", "k,1,2", "1,2,33",
     "1,2,3//1,2,3", "1;2;3", "1, 2,3", "1,2,-3", "1,2,B", "1,2,3\n/4,5,6", "１,2,3"],
)
def test_malformed_input_raises_value_error(text):
    with pytest.raises(ValueError):
        TASK.parse_input(text)


@settings(max_examples=60, deadline=None)
@given(formulas)
def test_format_round_trips(problem):
    text = TASK.format_input(problem)
    assert TASK.parse_input(text) == problem
    assert TASK.format_input(TASK.parse_input(text)) == text


@settings(max_examples=40, deadline=None)
@given(formulas, st.randoms(use_true_random=False))
def test_canonical_ignores_clause_and_literal_order(problem, rnd):
    clauses = [list(c) for c in problem.clauses]
    for clause in clauses:
        rnd.shuffle(clause)
    rnd.shuffle(clauses)
    shuffled = SatProblem(problem.num_vars, tuple(map(tuple, clauses)))
    assert TASK.canonical(shuffled) == TASK.canonical(problem)
    assert TASK.parse_input(TASK.canonical(problem)).num_vars == problem.num_vars


def test_canonical_tells_different_formulas_apart():
    assert TASK.canonical(TASK.parse_input("1,2,3")) != TASK.canonical(TASK.parse_input("1,2,d"))


def test_group_is_the_number_of_variables():
    assert TASK.group(TASK.parse_input(SatTask.example["input"])) == "vars=5"
    assert TASK.group(TASK.parse_input("1,2,3/b,c,h")) == "vars=7"


# ---------------------------------------------------------------------- records
def test_record_with_input_is_taken_as_is():
    assert TASK.input_from_record({"input": "1,2,3", "clauses": [[9, 9, 9]]}) == "1,2,3"


def test_satlib_layout_small_formula_converts():
    record = {"num_vars": 4, "clauses": [[1, -2, 4], [-1, 3, -4]], "satisfiable": True}
    assert TASK.input_from_record(record) == "1,c,4/b,3,e"


@pytest.mark.parametrize(
    "record",
    [
        {"num_vars": 4, "clauses": [[1, -2, 5]]},
        {"num_vars": 4, "clauses": [[1, 0, 2]]},
        {"num_vars": 4, "clauses": [[1, 2]]},
        {"num_vars": 4, "clauses": []},
        {"num_vars": "4", "clauses": [[1, 2, 3]]},
        {"num_vars": 4, "clauses": [[1, 2, 3.0]]},
    ],
)
def test_bad_satlib_records_raise(record):
    with pytest.raises(ValueError):
        TASK.input_from_record(record)


def test_satlib_uf20_is_refused_with_the_character_limit_explained():
    if not SATLIB.exists():
        pytest.skip("public test set not present")
    record = json.loads(SATLIB.read_text().splitlines()[0])
    with pytest.raises(ValueError, match="one character"):
        TASK.input_from_record(record)


# ---------------------------------------------------------------------- judge
def test_gold_passes_with_surrounding_whitespace():
    problem = TASK.parse_input(SatTask.example["input"])
    assert TASK.judge(problem, SatTask.example["output"]) == {"correct": True}
    assert TASK.judge(problem, " \n" + SatTask.example["output"] + "\t ")["correct"]


@settings(max_examples=12, deadline=None)
@given(seed=st.integers(0, 10**6), n=st.sampled_from([5, 7, 9]))
def test_every_single_character_substitution_of_the_gold_fails(seed, n):
    row = sample(seed, vars=n)
    problem = TASK.parse_input(row["input"])
    gold = row["output"]
    assert TASK.judge(problem, gold)["correct"]
    for index, original in enumerate(gold):
        for char in ALPHABET:
            if char != original:
                corrupted = gold[:index] + char + gold[index + 1 :]
                assert not TASK.judge(problem, corrupted)["correct"], corrupted


@pytest.mark.parametrize(
    "answer",
    ["", "1,2,d,4", "1,2,d,4,f,6", "1,2,d,f,4", "1,2,d,4,e", "1,2,d,4,f,", "1,2,d,4,f/", "1,2,d,4, f",
     "1,2,d,4,5 f", "1,2,d,4,ff"],
)
def test_wrong_shapes_fail(answer):
    problem = TASK.parse_input("1,2,3/b,c,d/3,4,5")  # satisfiable, e.g. by 1,2,d,4,f
    assert TASK.judge(problem, "1,2,d,4,f")["correct"]
    assert not TASK.judge(problem, answer)["correct"]


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=60) | st.text(alphabet=ALPHABET + " ", max_size=30))
def test_judge_never_raises(answer):
    problem = TASK.parse_input("1,2,3/b,c,d/3,4,5")
    verdict = TASK.judge(problem, answer)
    assert isinstance(verdict["correct"], bool)


@pytest.mark.parametrize(
    "text",
    [
        "1,2,3/b,c,d/3,4,5",  # many models
        "1,2,3",  # x4.. absent: n = 3, 7 models
        "1,2,4/b,c,d",  # x3 mentioned only negatively; n = 4
        "1,1,1/2,3,c",  # repeated literal and a tautology
        "1,c,4/b,3,e/2,d,5/b,c,e",
    ],
)
def test_every_model_passes_and_every_non_model_fails(text):
    problem = TASK.parse_input(text)
    models = set(brute_models(problem))
    assert len(models) > 1
    for values in itertools.product((False, True), repeat=problem.num_vars):
        assert TASK.judge(problem, answer_text(values))["correct"] == (values in models)


@settings(max_examples=40, deadline=None)
@given(formulas)
def test_judge_agrees_with_brute_force_on_random_formulas(problem):
    models = set(brute_models(problem))
    for values in itertools.product((False, True), repeat=problem.num_vars):
        assert TASK.judge(problem, answer_text(values))["correct"] == (values in models)


# ---------------------------------------------------------------------- solver
@settings(max_examples=150, deadline=None)
@given(formulas)
def test_dpll_agrees_with_brute_force(problem):
    models = brute_models(problem)
    answer = TASK.solve(problem)
    if models:
        assert answer is not None and TASK.judge(problem, answer)["correct"]
    else:
        assert answer is None
        assert dpll(problem.num_vars, problem.clauses) is None


def test_dpll_finds_unsat_and_needs_branching():
    # All 8 sign patterns over x1..x3: unsatisfiable.
    every = "/".join(",".join("123"[i] if s else "bcd"[i] for i, s in enumerate(signs))
                     for signs in itertools.product((True, False), repeat=3))
    assert TASK.solve(TASK.parse_input(every)) is None
    # Without the clause 1,2,3 the only model is all-false; no unit clause, so DPLL branches.
    seven = "/".join(every.split("/")[1:])
    assert TASK.solve(TASK.parse_input(seven)) == "b,c,d"


# ---------------------------------------------------------------------- generation
@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10**6), n=st.sampled_from([5, 7, 9]))
def test_generated_instances_are_planted_unique_and_fit(seed, n):
    row = sample(seed, vars=n)
    problem = TASK.parse_input(row["input"])
    assert TASK.format_input(problem) == row["input"]
    assert problem.num_vars == n
    assert {abs(lit) for clause in problem.clauses for lit in clause} == set(range(1, n + 1))
    models = brute_models(problem)
    assert len(models) == 1 and answer_text(models[0]) == row["output"]
    assert TASK.solve(problem) == row["output"]
    low, high = AUTO_CLAUSES[n]
    assert low <= len(problem.clauses) <= high
    assert len({frozenset(clause) for clause in problem.clauses}) == len(problem.clauses)
    assert all(len({abs(lit) for lit in clause}) == 3 for clause in problem.clauses)
    assert all(list(map(abs, c)) == sorted(map(abs, c)) for c in problem.clauses)
    assert len(row["input"]) + 1 + len(row["output"]) + 1 <= CUTOFFS[n]
    assert TASK.group(problem) == f"vars={n}"


@pytest.mark.parametrize("n", [3, 4, 6, 8])
def test_other_sizes_are_unique_and_fit_their_computed_bound(n):
    options = TASK.make_options(vars=n)
    cutoff, max_new = TASK.reference_lengths(options)
    for seed in range(5):
        row = sample(seed, vars=n)
        assert len(brute_models(TASK.parse_input(row["input"]))) == 1
        assert len(row["input"]) + len(row["output"]) + 2 <= cutoff
        assert len(row["output"]) + 1 == max_new


def test_generation_is_deterministic_per_seed():
    assert [sample(s, vars=7) for s in range(5)] == [sample(s, vars=7) for s in range(5)]
    assert sample(1, vars=7) != sample(2, vars=7)
    random.seed(0)
    first = sample(3)
    random.seed(1)
    assert sample(3) == first  # the global random module is not used


def test_explicit_clause_range_is_respected():
    for seed in range(5):
        problem = TASK.parse_input(sample(seed, vars=5, clauses=(28, 30))["input"])
        assert 28 <= len(problem.clauses) <= 30
        assert len(brute_models(problem)) == 1


def test_hopeless_clause_range_fails_clearly():
    with pytest.raises(ValueError, match="unique solution"):
        sample(0, vars=9, clauses=(8, 9))


# ---------------------------------------------------------------------- options
def test_reference_lengths():
    assert TASK.reference_lengths(TASK.make_options(vars=5)) == (258, 10)
    assert TASK.reference_lengths(TASK.make_options(vars=7)) == (285, 14)
    assert TASK.reference_lengths(TASK.make_options(vars=9)) == (325, 18)
    # 60 clauses do not fit 258: the bound takes over.
    assert TASK.reference_lengths(TASK.make_options(vars=5, clauses=(50, 60))) == (370, 10)


@pytest.mark.parametrize(
    "options", [{"vars": 2}, {"vars": 10}, {"vars": 5, "clauses": (0, 30)},
                {"vars": 5, "clauses": (40, 71)}, {"vars": 5, "clauses": (3, 7)}]
)
def test_prepare_rejects_bad_options(options):
    with pytest.raises(ValueError):
        TASK.prepare(TASK.make_options(**options))


def test_command_line_flags():
    parser = argparse.ArgumentParser()
    SatTask.add_arguments(parser)
    options = SatTask.options_from_args(parser.parse_args(["--vars", "7", "--clauses", "30:40"]))
    assert options == SatTask.Options(vars=7, clauses=(30, 40))
    assert SatTask.options_from_args(parser.parse_args([])) == SatTask.Options()


@pytest.mark.slow
def test_many_generated_instances_are_unique_and_fit():
    for n in (5, 7, 9):
        rng = random.Random(n)
        options = TASK.make_options(vars=n)
        for _ in range(300):
            row = TASK.sample(rng, options)
            problem = TASK.parse_input(row["input"])
            assert [answer_text(m) for m in brute_models(problem)] == [row["output"]]
            assert len(row["input"]) + len(row["output"]) + 2 <= CUTOFFS[n]
