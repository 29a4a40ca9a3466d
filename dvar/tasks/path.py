"""Minimal planning (`path`): find the path from a start node to a goal node.

The graph is a few directed paths of equal length that share single nodes with the first
("gold") path. The input lists every edge `a,b` (meaning a -> b) joined by `/`, in shuffled
order, then `-start,goal`; the output is the gold path's edges in order:

    input:  5,9/11,7/2,1/9,3/3,8/7,2/8,4/6,11/5,6/4,0-5,1
    output: 5,6/6,11/11,7/7,2/2,1

Here the gold path is 5 6 11 7 2 1 and the second path 5 9 3 8 4 0 shares its first node,
so the model must choose between 6 and 9 right at the start, five edges before the goal:
the planning distance (PD) is 5.

Generation (paper defaults: 2 paths of 6 nodes, ids drawn from 0..11): the gold path is
`nodes` distinct ids; start and goal are its first and last nodes. Each further path has
`nodes` nodes, shares exactly one node with the gold path at the same position p (drawn
uniformly from 0..nodes-1, independently per path) and is otherwise made of fresh ids.

Planning distance = number of edges from the branching node (a node of the start->goal path
with two or more outgoing edges) to the goal; with several branching nodes (more than two
paths) the one farthest from the goal counts, since that is the first decision that must
look ahead. No branching node (every further path joins at the goal) gives PD 0. With two
paths PD = nodes - 1 - p, so the defaults give PD 0..5 uniformly.

A reversed answer (edges from the goal back to the start, each written reversed, e.g.
`1,2/2,7/7,11/11,6/6,5`) is accepted as correct, as in the reference.

Answer orders (SPEC §9): `reverse` writes exactly that reversed answer (compact: the nodes
from the goal to the start, `6407` -> `7046`); it is mapped back to the start-first
answer before judging. Writing goal-first does not remove the look-ahead on these graphs,
it mirrors it: the node a second path shares has two successors forwards and two
predecessors backwards, so a model writing from the goal must choose at that node
`reverse_planning_distance` = n - 1 - PD edges before reaching the start (PD 0, a second
path ending at the goal, is the hardest case backwards).

`compact=True` writes one character per node (0-9, then a-j for ids 10-19, so the paper's
12 ids fit) and no separator that carries no information: each edge is its two id
characters, and the answer is the path's nodes:

    input:  40/34/64/21/42/07-67        output: 6407

Every node of the answer but the start is then a lookup ("the successor of the node before
it", or for a model that plans backwards "the predecessor of the node after it"), instead
of one token in six; a small model learns that lookup much sooner. A compact problem (no
comma in its input) is answered and judged in the compact form, with the same rules: the
nodes, in order, must walk over graph edges from start to goal without repeating a node,
and the path read backwards (`7046`) is accepted too.

`table=True` (compact, at most 2 paths) gives the same graph as two adjacency tables
instead of an edge list: for every node id 0..K-1 in order, two slots with its successors
(ascending, `=` for an empty slot), then `/`, then the same for its predecessors:

    input:  7===1=4=02==4===/4=2=4===36====0=-67        output: 6407

(node 0 -> 7, node 4 -> 0 and 2, ...; 7 <- 0, ...). Finding a node's successor or
predecessor is then a lookup at a position fixed by the node's id, rather than a search
for the edge that mentions it; a 2-layer model learns both within a few thousand steps
on a CPU, so the planning difference between AR and MDM shows (README: `dvar demo`).
The answer and its judging are the compact ones; the predecessor table must be the
successor table transposed (anything else is a malformed input).
"""

from __future__ import annotations

import dataclasses
import random
import re
from collections import deque
from typing import Any, Callable, ClassVar

from dvar.tasks import register
from dvar.tasks.base import Task, reverse_units, unit_spans

Edge = tuple[int, int]

# ASCII digits only, no leading zeros: `int()` alone would also take " 5", "+5", "5_0" and
# non-ASCII digits, and leading zeros would break the exact `format_input` round trip.
_ID = r"(?:0|[1-9][0-9]*)"
_EDGE_RE = re.compile(rf"({_ID}),({_ID})")
# Compact and table forms write a node id as one character: 0-9, then a-j for 10-19 (the
# tokenizer's default characters), so that the paper's 12 ids (2 paths of 6 nodes) fit.
_ID_CHARS = "0123456789abcdefghij"
_COMPACT_EDGE_RE = re.compile(r"([0-9a-j])([0-9a-j])")
_COMPACT_PATH_RE = re.compile(r"[0-9a-j]{2,}")


def _char(node: int) -> str:
    return _ID_CHARS[node]


def _node(char: str) -> int:
    return _ID_CHARS.index(char)


@dataclasses.dataclass(frozen=True)
class PathProblem:
    """A directed graph given as an edge list (order kept as written) plus start and goal."""

    edges: tuple[Edge, ...]
    start: int
    goal: int
    compact: bool = False  # edges written `ab` (one character per id), answers as node strings
    table: int = 0  # > 0: written as successor/predecessor tables over ids 0..table-1


def _parse_edge(text: str, compact: bool = False) -> Edge:
    match = (_COMPACT_EDGE_RE if compact else _EDGE_RE).fullmatch(text)
    if match is None:
        form = "two id characters 'ab' (0-9, a-j)" if compact else "'a,b' with non-negative integer ids"
        raise ValueError(f"expected an edge {form}, got {text!r}")
    if compact:
        return _node(match.group(1)), _node(match.group(2))
    # int() itself may raise ValueError for absurdly long digit strings (str->int limit).
    return int(match.group(1)), int(match.group(2))


def _parse_edges(text: str, compact: bool = False) -> list[Edge]:
    if not text:
        raise ValueError("empty edge list")
    return [_parse_edge(part, compact) for part in text.split("/")]


def _flip_edge(text: str) -> str:
    """`a,b` -> `b,a`; ValueError unless `text` is two comma-separated parts."""
    parts = text.split(",")
    if len(parts) != 2:
        raise ValueError(f"expected an edge 'a,b', got {text!r}")
    return f"{parts[1]},{parts[0]}"


def _format_edges(edges: list[Edge] | tuple[Edge, ...], compact: bool = False) -> str:
    return "/".join(_char(a) + _char(b) if compact else f"{a},{b}" for a, b in edges)


def _format_answer(path: list[int], compact: bool) -> str:
    """A path's answer: its edges `a,b/b,c`, or compact, its nodes `abc`."""
    if compact:
        return "".join(map(_char, path))
    return _format_edges(list(zip(path, path[1:])))


def _parse_answer(text: str, compact: bool) -> list[Edge]:
    if not compact:
        return _parse_edges(text)
    if _COMPACT_PATH_RE.fullmatch(text) is None:
        raise ValueError(f"expected a compact path of at least two id characters, got {text!r}")
    return [(_node(a), _node(b)) for a, b in zip(text, text[1:])]


_EMPTY_SLOT = "="


def _format_tables(edges: tuple[Edge, ...] | list[Edge], count: int) -> str:
    """Successor table `/` predecessor table, two slots per node id 0..count-1."""
    successors: dict[int, set[int]] = {}
    predecessors: dict[int, set[int]] = {}
    for a, b in edges:
        successors.setdefault(a, set()).add(b)
        predecessors.setdefault(b, set()).add(a)

    def row(neighbours: dict[int, set[int]]) -> str:
        slots = []
        for node in range(count):
            ids = sorted(neighbours.get(node, ()))
            if len(ids) > 2:
                raise ValueError(f"node {node} has {len(ids)} neighbours; a table has 2 slots per node")
            slots.append("".join(map(_char, ids)).ljust(2, _EMPTY_SLOT))
        return "".join(slots)

    return f"{row(successors)}/{row(predecessors)}"


def _parse_tables(text: str) -> tuple[tuple[Edge, ...], int]:
    """Edges and node count of `succ/pred` tables; the round trip must be exact."""
    succ, _, pred = text.partition("/")
    if len(succ) != len(pred) or len(succ) % 2 or not re.fullmatch(r"[0-9a-j=]+", succ):
        raise ValueError(f"expected two tables of 2 slots per node, got {text[:80]!r}")
    count = len(succ) // 2
    edges = tuple(
        (node, _node(char)) for node in range(count) for char in succ[2 * node : 2 * node + 2]
        if char != _EMPTY_SLOT
    )
    if any(b >= count for _, b in edges) or _format_tables(edges, count) != text:
        raise ValueError(f"the predecessor table is not the successor table transposed: {text[:80]!r}")
    return edges, count


def _adjacency(edges: tuple[Edge, ...] | list[Edge]) -> dict[int, list[int]]:
    successors: dict[int, list[int]] = {}
    for a, b in edges:
        targets = successors.setdefault(a, [])
        if b not in targets:
            targets.append(b)
    return successors


def find_path(edges: tuple[Edge, ...] | list[Edge], start: int, goal: int) -> list[int] | None:
    """Nodes of a shortest directed path start -> goal (breadth-first search), or None."""
    successors = _adjacency(edges)
    parent: dict[int, int | None] = {start: None}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        if node == goal:
            path = [node]
            while parent[path[-1]] is not None:
                path.append(parent[path[-1]])  # type: ignore[arg-type]
            return path[::-1]
        for nxt in successors.get(node, ()):
            if nxt not in parent:
                parent[nxt] = node
                queue.append(nxt)
    return None


def planning_distance(edges: tuple[Edge, ...] | list[Edge], start: int, goal: int) -> int:
    """Edges from the branching node farthest from the goal to the goal, on the path start->goal.

    A branching node is a node of the path (goal excluded) with two or more distinct
    successors; none gives 0. ValueError if the goal cannot be reached.
    """
    path = find_path(edges, start, goal)
    if path is None:
        raise ValueError(f"no path from {start} to {goal}")
    successors = _adjacency(edges)
    for index, node in enumerate(path[:-1]):
        if len(successors.get(node, ())) >= 2:
            return len(path) - 1 - index
    return 0


def reverse_planning_distance(edges: tuple[Edge, ...] | list[Edge], start: int, goal: int) -> int:
    """The planning distance of writing the path from the goal back to the start: edges
    from the merging node (two or more predecessors) farthest from the start, to the start.

    The graphs here are symmetric: the node a second path shares is a branching node
    forwards and a merging node backwards, so with two paths of n nodes it is
    n - 1 - PD. Writing goal-first moves the look-ahead, it does not remove it.
    """
    return planning_distance([(b, a) for a, b in edges], goal, start)


def _goal_side_planning_distance(problem: PathProblem) -> int | str:
    try:
        return reverse_planning_distance(problem.edges, problem.start, problem.goal)
    except ValueError:  # the goal cannot be reached
        return "none"


def _is_path(problem: PathProblem, answer_edges: list[Edge], edge_set: set[Edge]) -> bool:
    """Whether the edges, in order, walk from start to goal over graph edges, no node twice."""
    if not answer_edges or answer_edges[0][0] != problem.start or answer_edges[-1][1] != problem.goal:
        return False
    visited = [answer_edges[0][0]]
    for index, (a, b) in enumerate(answer_edges):
        if (a, b) not in edge_set:
            return False
        if index > 0 and a != answer_edges[index - 1][1]:
            return False
        visited.append(b)
    return len(set(visited)) == len(visited)


def _max_weighted_sum(lengths_desc: list[int], top_sums: list[int]) -> int:
    """Upper bound of sum(length(id) * occurrences(id)) over every way of assigning ids.

    Abel summation: sum_r m_(r) l_(r) = sum_k (l_k - l_(k+1)) * S_k, with S_k the sum of
    the k largest occurrence counts; replacing each S_k by its maximum over all graph shapes
    gives a bound that is exact when one shape maximises every S_k (true for the defaults).
    """
    total = 0
    for k in range(1, len(top_sums) + 1):
        following = lengths_desc[k] if k < len(top_sums) else 0
        total += (lengths_desc[k - 1] - following) * top_sums[k - 1]
    return total


@register
class PathTask(Task):
    """Minimal planning on a graph of paths that branch off the gold path (SPEC §1)."""

    name: ClassVar[str] = "path"
    summary: ClassVar[str] = "minimal planning: find the start->goal path among branching paths"
    example: ClassVar[dict[str, str]] = {
        "input": "5,9/11,7/2,1/9,3/3,8/7,2/8,4/6,11/5,6/4,0-5,1",
        "output": "5,6/6,11/11,7/7,2/2,1",
    }

    @dataclasses.dataclass(frozen=True)
    class Options:
        nodes: int = dataclasses.field(default=6, metadata={"help": "nodes per path"})
        paths: int = dataclasses.field(default=2, metadata={"help": "number of paths"})
        id_count: int = dataclasses.field(
            default=0, metadata={"help": "node ids are drawn from 0..id_count-1; 0 means nodes*paths"}
        )
        compact: bool = dataclasses.field(
            default=False,
            metadata={"help": "write edges as 'ab' (one character per node, no comma): ids 0-9, "
                      "then a-j for 10-19"},
        )
        table: bool = dataclasses.field(
            default=False,
            metadata={"help": "write the graph as successor/predecessor tables (implies compact; "
                      "at most 2 paths)"},
        )

    # ------------------------------------------------------------------ generation
    @staticmethod
    def _pool_size(options: Options) -> int:
        return options.id_count or options.nodes * options.paths

    @staticmethod
    def _ids_needed(options: Options) -> int:
        return options.nodes + (options.paths - 1) * (options.nodes - 1)

    def prepare(self, options: Options) -> None:
        if options.nodes < 2:
            raise ValueError(f"path: nodes must be >= 2, got {options.nodes}")
        if options.paths < 1:
            raise ValueError(f"path: paths must be >= 1, got {options.paths}")
        if options.id_count < 0:
            raise ValueError(f"path: id_count must be >= 0, got {options.id_count}")
        needed = self._ids_needed(options)
        if options.table and options.paths > 2:
            raise ValueError(f"path: table has 2 slots per node, so at most 2 paths, got {options.paths}")
        if (options.compact or options.table) and self._pool_size(options) > len(_ID_CHARS):
            raise ValueError(
                f"path: compact writes each id as one character (0-9, a-j: at most "
                f"{len(_ID_CHARS)} ids), but ids come from 0..{self._pool_size(options) - 1}"
            )
        if self._pool_size(options) < needed:
            raise ValueError(
                f"path: {options.paths} paths of {options.nodes} nodes need {needed} distinct ids, "
                f"but id_count is {options.id_count}"
            )

    def sample(self, rng: random.Random, options: Options) -> dict[str, Any]:
        self.prepare(options)
        n = options.nodes
        ids = rng.sample(range(self._pool_size(options)), self._ids_needed(options))
        gold, fresh = ids[:n], ids[n:]
        all_paths = [gold]
        positions = []
        for index in range(options.paths - 1):
            position = rng.randrange(n)
            own = fresh[index * (n - 1) : (index + 1) * (n - 1)]
            all_paths.append(own[:position] + [gold[position]] + own[position:])
            positions.append(position)
        edges = [(path[i], path[i + 1]) for path in all_paths for i in range(n - 1)]
        rng.shuffle(edges)
        compact = options.compact or options.table
        table = self._pool_size(options) if options.table else 0
        if table:
            edges.sort()  # a table lists them in id order anyway
        problem = PathProblem(tuple(edges), gold[0], gold[-1], compact, table)
        # The branching node is gold[p] unless p is the goal itself; the earliest one counts.
        branching = [p for p in positions if p < n - 1]
        pd = n - 1 - min(branching) if branching else 0
        output = _format_answer(gold, compact)
        return {"input": self.format_input(problem), "output": output, "pd": pd}

    # ------------------------------------------------------------------ format
    def parse_input(self, text: str) -> PathProblem:
        body = text.strip()
        edge_text, dash, endpoints = body.partition("-")
        if not dash:
            raise ValueError(f"missing '-start,goal' in {text[:80]!r}")
        # The form declares itself: a compact problem has no comma anywhere.
        compact = "," not in body
        start, goal = _parse_edge(endpoints, compact)
        if start == goal:
            raise ValueError(f"start and goal are the same node ({start})")
        # Tables: empty slots, or two equal segments longer than an edge `ab`.
        parts = edge_text.split("/")
        if compact and (_EMPTY_SLOT in edge_text or (len(parts) == 2 and len(parts[0]) == len(parts[1]) > 2)):
            edges, count = _parse_tables(edge_text)
            return PathProblem(edges, start, goal, True, count)
        return PathProblem(tuple(_parse_edges(edge_text, compact)), start, goal, compact)

    def format_input(self, problem: PathProblem) -> str:
        endpoints = _format_edges([(problem.start, problem.goal)], problem.compact)
        if problem.table:
            return f"{_format_tables(problem.edges, problem.table)}-{endpoints}"
        return f"{_format_edges(problem.edges, problem.compact)}-{endpoints}"

    def canonical(self, problem: PathProblem) -> str:
        # The same graph listed in another order (or with a repeated edge) is the same problem.
        if problem.table:
            return self.format_input(problem)
        endpoints = _format_edges([(problem.start, problem.goal)], problem.compact)
        return f"{_format_edges(sorted(set(problem.edges)), problem.compact)}-{endpoints}"

    # ------------------------------------------------------------------ solving
    def solve(self, problem: PathProblem) -> str | None:
        path = find_path(problem.edges, problem.start, problem.goal)
        if path is None:
            return None
        return _format_answer(path, problem.compact)

    # ------------------------------------------------------------------ judging
    def judge(self, problem: PathProblem, answer: str) -> dict[str, bool]:
        try:
            answer_edges = _parse_answer(answer.strip(), problem.compact)
        except ValueError:
            return {"correct": False}
        edge_set = set(problem.edges)
        # Reversed form: goal back to start, each edge written b,a; undo both reversals.
        undone = [(b, a) for a, b in reversed(answer_edges)]
        correct = _is_path(problem, answer_edges, edge_set) or _is_path(problem, undone, edge_set)
        return {"correct": correct}

    partial_credit_label = "steps on graph edges"

    def partial_credit(self, problem: PathProblem, answer: str) -> float | None:
        """The share of the answer's steps that are edges of the graph (read forward, or
        as the goal-first form: whichever scores more); 0 for a malformed answer. Every
        correct answer scores 1; a wrong one loses each step the graph does not have
        (a wrong lookup, or the jump a wrong branch needs to end at the goal)."""
        try:
            answer_edges = _parse_answer(answer.strip(), problem.compact)
        except (ValueError, AttributeError):
            return 0.0
        edge_set = set(problem.edges)
        forward = sum(edge in edge_set for edge in answer_edges)
        backward = sum((b, a) in edge_set for a, b in answer_edges)
        return max(forward, backward) / len(answer_edges)

    def well_formed(self, problem: PathProblem, answer: str) -> bool:
        """A path written in the problem's form (edges, or compact nodes)."""
        try:
            return isinstance(answer, str) and bool(_parse_answer(answer.strip(), problem.compact))
        except ValueError:
            return False

    # ------------------------------------------------------------------ answer orders
    def _write_order(self, problem: PathProblem, answer: str, order: str, rng: Any) -> str:
        return self._reverse(problem, answer)  # the only order besides forward

    def _read_order(self, problem: PathProblem, text: str, order: str) -> str:
        return self._reverse(problem, text.strip())

    @staticmethod
    def _reverse(problem: PathProblem, text: str) -> str:
        """Goal-first <-> start-first: nodes reversed (compact), or edges reversed and each
        written backwards (`5,6/6,11` <-> `11,6/6,5`)."""
        if problem.compact:
            return reverse_units(text, "")
        return reverse_units(text, "/", flip=_flip_edge)

    def breakdown(self, problem: PathProblem) -> dict[str, int | str]:
        try:
            return {"pd": planning_distance(problem.edges, problem.start, problem.goal)}
        except ValueError:  # the goal cannot be reached
            return {"pd": "none"}

    @property
    def extra_breakdowns(self) -> dict[str, Callable[[PathProblem], int | str]]:
        """`rpd`: the goal-side planning distance (`reverse_planning_distance`), where a
        model writing goal-first must look ahead."""
        return {"rpd": _goal_side_planning_distance}

    # ------------------------------------------------------------------ analysis
    def part_separator(self, problem: PathProblem) -> str | None:
        """Edges, `/`; a compact answer's parts are its nodes, one character each."""
        return None if problem.compact else "/"

    def direction_units(self, problem: PathProblem, answer: str) -> list[tuple[int, int]]:
        """The edges; compact, the interior nodes (start and goal are copies of the input)."""
        if problem.compact:
            return [(k, k + 1) for k in range(1, len(answer) - 1)]
        return unit_spans(answer, "/")

    def reference_lengths(self, options: Options) -> tuple[int, int]:
        """(cutoff, AR max_new_tokens): the reference's (75, 24) for the defaults, else a bound.

        One token per character; a sequence is input SEP output EOS. The bound is the
        longest possible input plus the longest possible output plus 2, and the longest
        output plus EOS. (For the defaults that bound is (74, 24); the reference used 75.)
        """
        self.prepare(options)
        n, pool = options.nodes, self._pool_size(options)
        if (n, options.paths, pool) == (6, 2, 12) and not (options.compact or options.table):
            return 75, 24
        if options.table:  # two tables of 2 slots per id, '/', '-', start, goal; n nodes out
            return 4 * pool + 4 + n + 2, n + 1
        ids_used = self._ids_needed(options)
        width = (lambda i: 1) if options.compact else (lambda i: len(str(i)))  # characters per id
        lengths_desc = sorted((width(i) for i in range(pool)), reverse=True)[:ids_used]

        # Output: interior nodes of the gold path are written twice, its endpoints once.
        gold_counts = sorted([2] * (n - 2) + [1, 1], reverse=True)
        gold_top = [sum(gold_counts[:k]) for k in range(1, n + 1)]
        commas = 0 if options.compact else 1  # per edge
        if options.compact:  # the path's nodes, one character each
            longest_output = n
        else:
            longest_output = _max_weighted_sum(lengths_desc[:n], gold_top) + (n - 1) + (n - 2)

        # Input: each node is written once per incident edge, start and goal once more.
        # For a given number a of paths joining at an interior node (b = rest at an
        # endpoint), putting all a on one node and all b on one endpoint maximises every
        # top-k sum of occurrence counts, so only a needs enumerating.
        edge_count = options.paths * (n - 1)
        best_top = [0] * ids_used
        for interior in range(options.paths if n >= 3 else 1):
            at_end = options.paths - 1 - interior
            counts = [2] * n  # gold nodes: endpoints 1 edge + 1 in "-start,goal"
            if interior:
                counts[1] += 2 * interior
            counts[0] += at_end
            counts += interior * ([2] * (n - 3) + [1, 1]) + at_end * ([2] * (n - 2) + [1])
            counts.sort(reverse=True)
            running = 0
            for k, count in enumerate(counts):
                running += count
                best_top[k] = max(best_top[k], running)
        # Separators: a comma per edge (and in "-start,goal") unless compact, a slash
        # between edges, the dash.
        separators = edge_count + (edge_count + 1) * commas
        longest_input = _max_weighted_sum(lengths_desc, best_top) + separators
        return longest_input + longest_output + 2, longest_output + 1
