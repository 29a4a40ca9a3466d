"""Tests for the `path` (minimal planning) task: format, generator, solver, verifier."""

from __future__ import annotations

import argparse
import collections
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dvar.tasks import get_task
from dvar.tasks.path import planning_distance

TASK = get_task("path")
ANSWER_CHARS = "0123456789abj,/-"


def _options(nodes: int = 6, paths: int = 2, id_count: int = 0):
    return TASK.make_options(nodes=nodes, paths=paths, id_count=id_count)


def _edges(text: str) -> list[tuple[int, int]]:
    return [tuple(int(x) for x in part.split(",")) for part in text.split("/")]  # type: ignore[misc]


def _edge_text(edges) -> str:
    return "/".join(f"{a},{b}" for a, b in edges)


def _reversed_answer(output: str) -> str:
    return _edge_text((b, a) for a, b in reversed(_edges(output)))


# Small generated problems: (record, options) from a seed and small sizes.
generated = st.builds(
    lambda seed, nodes, paths: (TASK.sample(random.Random(seed), _options(nodes, paths)), (nodes, paths)),
    st.integers(0, 2**32 - 1),
    st.integers(2, 8),
    st.integers(1, 4),
)


def _all_simple_paths(edges, start: int, goal: int) -> list[list[int]]:
    """Independent brute force: every simple start->goal path, by exhaustive DFS."""
    found: list[list[int]] = []

    def extend(path: list[int]) -> None:
        if path[-1] == goal:
            found.append(list(path))
            return
        for a, b in sorted(set(edges)):
            if a == path[-1] and b not in path:
                path.append(b)
                extend(path)
                path.pop()

    extend([start])
    return found


# ---------------------------------------------------------------- format


def test_example_round_trip_solve_and_group():
    problem = TASK.parse_input(TASK.example["input"])
    assert TASK.format_input(problem) == TASK.example["input"]
    assert (problem.start, problem.goal) == (5, 1)
    assert len(problem.edges) == 10
    assert TASK.solve(problem) == TASK.example["output"]
    assert TASK.group(problem) == "pd=5"
    assert TASK.verify(problem, TASK.example["output"])


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "1,2/2,3",  # no -start,goal
        "-1,3",  # no edges
        "1,2/2,3-1",  # goal missing
        "1,2/2,3-1,3,4",
        "1,2/2,3-1,3-4",
        "1,2//2,3-1,3",  # empty edge
        "1,2/2,3/-1,3",
        "1,x/2,3-1,3",
        "1,2/2,-3-1,3",
        "1.0,2/2,3-1,3",
        "1,2/2 ,3-1,3",
        "+1,2/2,3-1,3",
        "01,2/2,3-1,3",  # leading zero would not round-trip
        "1,2/2,3-\u0661,3",  # non-ASCII digit
        "1,2/2,3-3,3",  # start == goal
        "1;2/2,3-1,3",
    ],
)
def test_malformed_input_raises_value_error(text):
    with pytest.raises(ValueError):
        TASK.parse_input(text)


@settings(deadline=None, max_examples=150)
@given(st.one_of(st.text(), st.text(alphabet="0123456789,/- ")))
def test_parse_input_raises_only_value_error(text):
    try:
        problem = TASK.parse_input(text)
    except ValueError:
        return
    # Whatever parses must render back to the same (stripped) text.
    assert TASK.format_input(problem) == text.strip()


def test_huge_ids_are_a_value_error_not_a_crash():
    with pytest.raises(ValueError):
        TASK.parse_input("1,2/2," + "9" * 5000 + "-1,2")


@settings(deadline=None, max_examples=30)
@given(generated, st.randoms(use_true_random=False))
def test_canonical_ignores_edge_order_only(case, shuffler):
    record, _ = case
    problem = TASK.parse_input(record["input"])
    edges = list(problem.edges)
    shuffler.shuffle(edges)
    shuffled = TASK.parse_input(f"{_edge_text(edges + edges[:1])}-{problem.start},{problem.goal}")
    assert TASK.canonical(shuffled) == TASK.canonical(problem)
    other_goal = max(x for edge in edges for x in edge) + 1
    moved = TASK.parse_input(f"{_edge_text(edges)}-{problem.start},{other_goal}")
    assert TASK.canonical(moved) != TASK.canonical(problem)


# ---------------------------------------------------------------- verifier


@settings(deadline=None, max_examples=60)
@given(generated)
def test_gold_and_reversed_pass_and_whitespace_is_stripped(case):
    record, _ = case
    problem = TASK.parse_input(record["input"])
    assert TASK.format_input(problem) == record["input"]
    assert TASK.judge(problem, record["output"]) == {"correct": True}
    assert TASK.judge(problem, _reversed_answer(record["output"]))["correct"]
    assert TASK.judge(problem, f" \n{record['output']}\t ")["correct"]


@settings(deadline=None, max_examples=40)
@given(generated)
def test_every_single_character_substitution_fails(case):
    record, _ = case
    problem = TASK.parse_input(record["input"])
    gold = record["output"]
    for index, original in enumerate(gold):
        for replacement in ANSWER_CHARS:
            if replacement != original:
                corrupted = gold[:index] + replacement + gold[index + 1 :]
                assert not TASK.judge(problem, corrupted)["correct"], corrupted


@settings(deadline=None, max_examples=40)
@given(generated)
def test_deleting_any_edge_fails(case):
    record, _ = case
    problem = TASK.parse_input(record["input"])
    gold_edges = _edges(record["output"])
    for index in range(len(gold_edges)):
        # ... from the answer,
        shortened = _edge_text(gold_edges[:index] + gold_edges[index + 1 :])
        assert not TASK.judge(problem, shortened)["correct"]
        assert not TASK.judge(problem, _reversed_answer(shortened) if shortened else "")["correct"]
        # ... or from the graph: the gold answer no longer walks on real edges.
        graph = [e for e in problem.edges if e != gold_edges[index]]
        if graph:
            smaller = TASK.parse_input(f"{_edge_text(graph)}-{problem.start},{problem.goal}")
            assert not TASK.judge(smaller, record["output"])["correct"]
            assert not TASK.judge(smaller, _reversed_answer(record["output"]))["correct"]


def test_judge_rejects_non_paths_on_the_example():
    problem = TASK.parse_input(TASK.example["input"])
    wrong = [
        "",
        "5,9/9,3/3,8/8,4/4,0",  # the other path: ends at the wrong node
        "5,6/6,11/11,7/7,2",  # stops short of the goal
        "6,11/11,7/7,2/2,1",  # does not start at the start
        "5,6/11,7/7,2/2,1",  # edges not chained
        "5,6/6,11/11,7/7,2/2,1/",
        "5,6/6,11/11,7/7,2/2,1-5,1",
        "5,6/6,11/11,7/7,2/2,1/1,2/2,1",  # repeats nodes (also 1,2 is not an edge)
        "6,5/11,6/7,11/2,7/1,2",  # edges reversed but not their order
        "2,1/7,2/11,7/6,11/5,6",  # order reversed but not the edges
        "5,6 / 6,11/11,7/7,2/2,1",
        "5,6/6,11/11,7/7,2/2,01",
        "five,six",
    ]
    for answer in wrong:
        assert TASK.judge(problem, answer) == {"correct": False}, answer


def test_judge_rejects_repeated_node_even_over_real_edges():
    problem = TASK.parse_input("0,1/1,2/2,1/2,3-0,3")
    assert TASK.judge(problem, "0,1/1,2/2,3")["correct"]
    assert not TASK.judge(problem, "0,1/1,2/2,1/1,2/2,3")["correct"]


@settings(deadline=None, max_examples=200)
@given(st.one_of(st.text(), st.text(alphabet=ANSWER_CHARS + " ")))
def test_judge_never_raises(answer):
    problem = TASK.parse_input(TASK.example["input"])
    verdict = TASK.judge(problem, answer)
    assert set(verdict) == {"correct"} and isinstance(verdict["correct"], bool)


def test_judge_survives_huge_numbers():
    problem = TASK.parse_input(TASK.example["input"])
    assert not TASK.judge(problem, "5," + "6" * 5000)["correct"]


# ---------------------------------------------------------------- generator


def test_same_seed_same_examples_different_seed_different():
    def draw(seed: int) -> list[dict]:
        rng = random.Random(seed)
        return [TASK.sample(rng, _options()) for _ in range(20)]

    assert draw(7) == draw(7)
    assert draw(7) != draw(8)


@settings(deadline=None, max_examples=60)
@given(generated)
def test_generated_structure(case):
    record, (nodes, paths) = case
    problem = TASK.parse_input(record["input"])
    gold = _edges(record["output"])
    assert len(problem.edges) == paths * (nodes - 1)
    assert len(set(problem.edges)) == len(problem.edges)
    assert len(gold) == nodes - 1
    assert (gold[0][0], gold[-1][1]) == (problem.start, problem.goal)
    ids = {x for edge in problem.edges for x in edge}
    assert len(ids) == nodes + (paths - 1) * (nodes - 1)  # one shared node per further path
    assert ids <= set(range(nodes * paths))


def test_option_flags_and_validation():
    parser = argparse.ArgumentParser()
    TASK.add_arguments(parser)
    args = parser.parse_args(["--nodes", "5", "--paths", "3", "--id-count", "40"])
    assert TASK.options_from_args(args) == _options(5, 3, 40)
    assert TASK.make_options() == _options(6, 2, 0)
    for bad in (_options(nodes=1), _options(paths=0), _options(id_count=10), _options(id_count=-1)):
        with pytest.raises(ValueError):
            TASK.prepare(bad)
    with pytest.raises(ValueError):
        TASK.make_options(node=5)


def test_id_pool_option():
    rng = random.Random(3)
    for _ in range(50):
        record = TASK.sample(rng, _options(id_count=100))
        problem = TASK.parse_input(record["input"])
        assert all(0 <= x < 100 for edge in problem.edges for x in edge)
    seen = set()
    for _ in range(50):
        problem = TASK.parse_input(TASK.sample(rng, _options(id_count=100))["input"])
        seen |= {x for edge in problem.edges for x in edge}
    assert max(seen) >= 12  # the larger pool is actually used


# ---------------------------------------------------------------- planning distance


def test_planning_distance_hand_built():
    gold = [(0, 1), (1, 2), (2, 3), (3, 4), (4, 5)]
    # Branch at the start: the example and a plain rebuild of it.
    example = TASK.parse_input(TASK.example["input"])
    assert planning_distance(example.edges, 5, 1) == 5
    assert planning_distance(gold + [(0, 6), (6, 7), (7, 8), (8, 9), (9, 10)], 0, 5) == 5
    # Shared goal: the other path only merges in, no choice to make.
    assert planning_distance(gold + [(6, 7), (7, 8), (8, 9), (9, 10), (10, 5)], 0, 5) == 0
    # Branch in the middle (position 2): 3 edges from node 2 to the goal.
    assert planning_distance(gold + [(6, 7), (7, 2), (2, 8), (8, 9), (9, 10)], 0, 5) == 3
    # Branch one edge before the goal.
    assert planning_distance(gold + [(6, 7), (7, 8), (8, 9), (9, 4), (4, 10)], 0, 5) == 1
    # Two branching nodes (three paths): the one farthest from the goal counts.
    three = gold + [(6, 7), (7, 8), (8, 3), (3, 9), (9, 10)] + [(11, 1), (1, 12), (12, 13), (13, 14), (14, 15)]
    assert planning_distance(three, 0, 5) == 4
    # A single path has no branching node.
    assert planning_distance(gold, 0, 5) == 0
    with pytest.raises(ValueError):
        planning_distance(gold, 5, 0)


def test_group_from_input_alone():
    assert TASK.group(TASK.parse_input("0,1/1,2/6,2/2,3-0,3")) == "pd=0"
    assert TASK.group(TASK.parse_input("0,1/1,2/1,6/2,3-0,3")) == "pd=2"
    assert TASK.group(TASK.parse_input("0,1/2,3-0,3")) == "pd=none"


@settings(deadline=None, max_examples=80)
@given(generated)
def test_generated_planning_distance_matches_branch_position(case):
    record, (nodes, paths) = case
    problem = TASK.parse_input(record["input"])
    # record["pd"] is computed by the generator from the branch positions it drew.
    assert 0 <= record["pd"] <= nodes - 1
    assert planning_distance(problem.edges, problem.start, problem.goal) == record["pd"]
    assert TASK.group(problem) == f"pd={record['pd']}"
    if paths == 1:
        assert record["pd"] == 0


def test_two_path_planning_distance_is_position_based():
    # Independent of the generator's own bookkeeping: with two paths the shared node is the
    # one id that appears on both paths, and PD = nodes - 1 - its position on the gold path.
    rng = random.Random(11)
    for _ in range(200):
        record = TASK.sample(rng, _options())
        problem = TASK.parse_input(record["input"])
        gold_nodes = [a for a, _ in _edges(record["output"])] + [problem.goal]
        gold_edges = set(_edges(record["output"]))
        other = [e for e in problem.edges if e not in gold_edges]
        shared = {x for e in other for x in e} & set(gold_nodes)
        assert len(shared) == 1
        position = gold_nodes.index(shared.pop())
        assert TASK.group(problem) == f"pd={5 - position}"


def test_all_planning_distances_occur_roughly_uniformly():
    rng = random.Random(2024)
    counts = collections.Counter(
        TASK.group(TASK.parse_input(TASK.sample(rng, _options())["input"])) for _ in range(600)
    )
    assert set(counts) == {f"pd={k}" for k in range(6)}
    # Expected 100 each; a fixed seed keeps this deterministic.
    assert all(60 <= c <= 140 for c in counts.values()), counts


# ---------------------------------------------------------------- solver


@settings(deadline=None, max_examples=60)
@given(st.integers(0, 2**32 - 1), st.integers(3, 6), st.integers(2, 3))
def test_solver_matches_brute_force_on_generated(seed, nodes, paths):
    record = TASK.sample(random.Random(seed), _options(nodes, paths))
    problem = TASK.parse_input(record["input"])
    simple_paths = _all_simple_paths(problem.edges, problem.start, problem.goal)
    # The construction leaves exactly one way to the goal: the gold path.
    assert [_edge_text(zip(p, p[1:])) for p in simple_paths] == [record["output"]]
    assert TASK.solve(problem) == record["output"]


def test_solver_returns_a_shortest_path():
    # Two routes to 3; a depth-first search that expands node 2 first would take the long one.
    problem = TASK.parse_input("0,1/0,2/2,4/4,3/1,3-0,3")
    assert TASK.solve(problem) == "0,1/1,3"
    assert TASK.judge(problem, "0,2/2,4/4,3")["correct"]  # any real path is correct
    assert TASK.solve(TASK.parse_input("0,1/2,3-0,3")) is None


small_graphs = st.lists(st.tuples(st.integers(0, 6), st.integers(0, 6)), min_size=1, max_size=14)


@settings(deadline=None, max_examples=150)
@given(small_graphs, st.integers(0, 6), st.integers(0, 6))
def test_solver_matches_brute_force_on_arbitrary_graphs(edges, start, goal):
    if start == goal:
        return
    problem = TASK.parse_input(f"{_edge_text(edges)}-{start},{goal}")
    simple_paths = _all_simple_paths(problem.edges, start, goal)
    answer = TASK.solve(problem)
    if not simple_paths:
        assert answer is None
        assert TASK.group(problem) == "pd=none"
        return
    assert answer is not None and TASK.judge(problem, answer)["correct"]
    as_text = {_edge_text(zip(p, p[1:])) for p in simple_paths}
    assert answer in as_text
    assert len(_edges(answer)) == min(len(p) - 1 for p in simple_paths)  # BFS: shortest
    # Everything the brute force finds, the verifier accepts, forwards and reversed.
    for text in as_text:
        assert TASK.judge(problem, text)["correct"]
        assert TASK.judge(problem, _reversed_answer(text))["correct"]


# ---------------------------------------------------------------- lengths


def test_reference_lengths_defaults_and_fit():
    cutoff, max_new = TASK.reference_lengths(_options())
    assert (cutoff, max_new) == (75, 24)
    assert TASK.reference_lengths(_options(id_count=12)) == (75, 24)
    rng = random.Random(5)
    for _ in range(2000):
        record = TASK.sample(rng, _options())
        assert len(record["input"]) + len(record["output"]) + 2 <= cutoff
        assert len(record["output"]) + 1 <= max_new


@settings(deadline=None, max_examples=25)
@given(st.integers(2, 9), st.integers(1, 4), st.sampled_from([0, 40, 150, 1200]), st.integers(0, 2**32 - 1))
def test_reference_lengths_bound_other_sizes(nodes, paths, id_count, seed):
    options = _options(nodes, paths, id_count)
    if id_count and id_count < nodes + (paths - 1) * (nodes - 1):
        return
    cutoff, max_new = TASK.reference_lengths(options)
    rng = random.Random(seed)
    for _ in range(30):
        record = TASK.sample(rng, options)
        assert len(record["input"]) + len(record["output"]) + 2 <= cutoff
        assert len(record["output"]) + 1 <= max_new


def test_reference_lengths_are_tight_for_small_sizes():
    # The bound is reached: a looser formula would waste sequence length.
    options = _options(4, 3)
    cutoff, max_new = TASK.reference_lengths(options)
    rng = random.Random(0)
    longest = max_out = 0
    for _ in range(5000):
        record = TASK.sample(rng, options)
        longest = max(longest, len(record["input"]) + len(record["output"]) + 2)
        max_out = max(max_out, len(record["output"]) + 1)
    assert (longest, max_out) == (cutoff, max_new)


# ---------------------------------------------------------------------- compact form
compact_generated = st.builds(
    lambda seed, nodes: TASK.sample(random.Random(seed), TASK.make_options(nodes=nodes, compact=True)),
    st.integers(0, 2**32 - 1),
    st.integers(2, 6),  # 2 paths of up to 6 nodes: ids 0..11, 10 and 11 written a and b
)


def test_compact_is_the_same_problem_one_character_per_node():
    plain = TASK.sample(random.Random(7), _options(4))
    compact = TASK.sample(random.Random(7), TASK.make_options(nodes=4, compact=True))
    assert compact["input"] == plain["input"].replace(",", "") and compact["pd"] == plain["pd"]
    # The answer is the path's nodes: a,b/b,c/c,d -> abcd.
    nodes = [edge.split(",")[0] for edge in plain["output"].split("/")] + [plain["output"][-1]]
    assert compact["output"] == "".join(nodes)
    problem = TASK.parse_input(compact["input"])
    assert problem.compact and problem.edges == TASK.parse_input(plain["input"]).edges
    assert TASK.solve(problem) == compact["output"]
    # Answered in the problem's own form: the edge form of the same path is not accepted.
    assert not TASK.judge(problem, plain["output"])["correct"]
    assert TASK.group(problem) == f"pd={compact['pd']}"


@settings(deadline=None, max_examples=40)
@given(compact_generated)
def test_compact_gold_and_reversed_pass_and_every_substitution_fails(record):
    problem = TASK.parse_input(record["input"])
    assert TASK.format_input(problem) == record["input"] and "," not in record["input"]
    gold = record["output"]
    assert TASK.judge(problem, gold)["correct"]
    assert TASK.judge(problem, gold[::-1])["correct"]
    for cut in range(len(gold)):  # a node left out
        assert not TASK.judge(problem, gold[:cut] + gold[cut + 1 :])["correct"]
    for index, original in enumerate(gold):
        for replacement in ANSWER_CHARS:
            if replacement != original:
                corrupted = gold[:index] + replacement + gold[index + 1 :]
                assert not TASK.judge(problem, corrupted)["correct"], corrupted


def test_compact_writes_one_character_per_id_and_lengths_fit():
    with pytest.raises(ValueError, match="at most 20 ids"):
        TASK.prepare(TASK.make_options(nodes=11, compact=True))  # ids 0..21
    with pytest.raises(ValueError, match="two id characters"):
        TASK.parse_input("123/34-13")
    for nodes in (3, 4, 5, 6):
        options = TASK.make_options(nodes=nodes, compact=True)
        cutoff, max_new = TASK.reference_lengths(options)
        record = TASK.sample(random.Random(nodes), options)
        # One character per id: every problem has exactly the bound's length.
        assert len(record["input"]) + len(record["output"]) + 2 == cutoff
        assert len(record["output"]) + 1 == max_new


# ---------------------------------------------------------------------- table form
table_generated = st.builds(
    lambda seed, nodes: TASK.sample(random.Random(seed), TASK.make_options(nodes=nodes, table=True)),
    st.integers(0, 2**32 - 1),
    st.integers(2, 6),
)


def test_the_papers_size_in_table_form_writes_ids_10_and_11_as_letters():
    """2 paths of 6 nodes over ids 0..11 (the paper's graphs): tables of 12 ids, a = 10, b = 11."""
    plain = TASK.sample(random.Random(3), _options(6))
    table = TASK.sample(random.Random(3), TASK.make_options(nodes=6, table=True))
    problem = TASK.parse_input(table["input"])
    assert problem.table == 12 and table["pd"] == plain["pd"]
    assert sorted(problem.edges) == sorted(TASK.parse_input(plain["input"]).edges)
    letters = {"10": "a", "11": "b"}
    nodes = [edge.split(",")[0] for edge in plain["output"].split("/")] + [plain["output"].split(",")[-1]]
    assert table["output"] == "".join(letters.get(n, n) for n in nodes)
    assert TASK.judge(problem, table["output"])["correct"] and TASK.solve(problem) == table["output"]
    assert len(table["input"]) == 4 * 12 + 4 and set(table["input"]) <= set("0123456789ab=/-")


def test_table_is_the_same_problem_as_adjacency_tables():
    compact = TASK.sample(random.Random(7), TASK.make_options(nodes=4, compact=True))
    table = TASK.sample(random.Random(7), TASK.make_options(nodes=4, table=True))
    assert table["output"] == compact["output"] and table["pd"] == compact["pd"]
    edges = TASK.parse_input(compact["input"]).edges
    problem = TASK.parse_input(table["input"])
    assert problem.table == 8 and problem.compact and sorted(problem.edges) == sorted(edges)
    succ, pred = table["input"].split("-")[0].split("/")
    for a, b in edges:  # b is in a's successor slots and a in b's predecessor slots
        assert str(b) in succ[2 * a : 2 * a + 2] and str(a) in pred[2 * b : 2 * b + 2]
    assert len(succ) == len(pred) == 16 and succ.count("=") == 16 - len(edges)
    assert TASK.solve(problem) == table["output"] and TASK.group(problem) == f"pd={table['pd']}"


@settings(deadline=None, max_examples=40)
@given(table_generated)
def test_table_round_trip_gold_passes_and_substitutions_fail(record):
    problem = TASK.parse_input(record["input"])
    assert TASK.format_input(problem) == record["input"]
    assert TASK.canonical(problem) == record["input"]
    gold = record["output"]
    assert TASK.judge(problem, gold)["correct"] and TASK.judge(problem, gold[::-1])["correct"]
    for index, original in enumerate(gold):
        for replacement in ANSWER_CHARS:
            if replacement != original:
                corrupted = gold[:index] + replacement + gold[index + 1 :]
                assert not TASK.judge(problem, corrupted)["correct"], corrupted
    cutoff, max_new = TASK.reference_lengths(TASK.make_options(nodes=len(gold), table=True))
    assert len(record["input"]) + len(gold) + 2 == cutoff and len(gold) + 1 == max_new


@pytest.mark.parametrize("text", [
    "7===1=4=02==4===/4=2=4===36====1=-67",  # predecessor table disagrees
    "7===1=4=02==4===/4=2=4===36===0==-67",  # slots out of canonical order
    "7===1=4=02==4===/4=2=4===36====0-67",   # tables of different lengths
    "9===1=4=02==4===/4=2=4===36====0=-67",  # an id outside the table
    "7===1=4=02==4=a=/4=2=4===36====0=-67",
])
def test_malformed_tables_are_value_errors(text):
    with pytest.raises(ValueError):
        TASK.parse_input(text)
    assert TASK.parse_input("7===1=4=02==4===/4=2=4===36====0=-67").table == 8


def test_table_needs_two_paths_at_most():
    with pytest.raises(ValueError, match="at most 2 paths"):
        TASK.prepare(TASK.make_options(nodes=3, paths=3, table=True))


def test_goal_side_planning_distance_is_an_extra_breakdown():
    from dvar.tasks.path import reverse_planning_distance

    problem = TASK.parse_input(TASK.example["input"])  # 2 paths of 6 nodes, PD 5
    rpd = TASK.extra_breakdowns["rpd"]
    assert rpd(problem) == reverse_planning_distance(problem.edges, problem.start, problem.goal) == 0
    assert rpd(TASK.parse_input("0,1/2,3-0,3")) == "none"  # the goal cannot be reached
    assert set(TASK.extra_breakdowns) == {"rpd"}


def test_analysis_layout_of_a_path_answer():
    problem = TASK.parse_input(TASK.example["input"])
    assert TASK.part_separator(problem) == "/" and TASK.answer_grid(problem) is None
    assert TASK.part_separator(TASK.parse_input("40/34/64/21/42/07-67")) is None  # compact: nodes


@settings(deadline=None, max_examples=40)
@given(generated)
def test_partial_credit_counts_the_steps_on_graph_edges(case):
    record, _ = case
    problem = TASK.parse_input(record["input"])
    gold = _edges(record["output"])
    assert TASK.partial_credit(problem, record["output"]) == 1.0
    assert TASK.partial_credit(problem, _reversed_answer(record["output"])) == 1.0
    assert TASK.partial_credit(problem, "no path") == 0.0
    # A step the graph does not have (a wrong lookup) costs its share of the answer.
    missing = max(node for edge in problem.edges for node in edge) + 1
    broken = [(gold[0][0], missing)] + gold[1:]
    assert not TASK.judge(problem, _edge_text(broken))["correct"]
    assert TASK.partial_credit(problem, _edge_text(broken)) == (len(gold) - 1) / len(gold)


def test_partial_credit_of_real_walks_and_of_made_up_steps():
    problem = TASK.parse_input(TASK.example["input"])  # 5 -> 1 over 5,6/6,11/11,7/7,2/2,1
    other_branch = "5,9/9,3/3,8/8,4/4,0"  # real edges, the wrong goal: a planning error
    assert not TASK.judge(problem, other_branch)["correct"]
    assert TASK.partial_credit(problem, other_branch) == 1.0
    assert TASK.partial_credit(problem, "5,6/6,3/3,7/7,2/2,1") == pytest.approx(3 / 5)  # 6,3 and 3,7 are not edges


@settings(deadline=None, max_examples=30)
@given(table_generated)
def test_table_partial_credit_reads_the_compact_answer(record):
    problem = TASK.parse_input(record["input"])
    assert TASK.partial_credit(problem, record["output"]) == 1.0
    assert TASK.partial_credit(problem, record["output"][::-1]) == 1.0  # goal first
    assert TASK.partial_credit(problem, record["output"] + "=") == 0.0  # malformed
