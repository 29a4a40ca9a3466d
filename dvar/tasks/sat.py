"""3-SAT with 3..9 variables (`sat`): find an assignment that satisfies every clause.

Variables are x1..xn. A literal is one character: the digit `k` means "x_k is true", the
k-th letter of the alphabet counting `a` as 0 means "x_k is false" (`b` = not x1, `c` =
not x2, ..., `j` = not x9; `a` and `0` never occur). The input lists clauses of three
literals, literals joined by `,` and clauses by `/`; the output gives one literal per
variable, in order x1..xn:

    input:  b,4,5/c,e,5/c,3,4/b,d,e/3,4,f/b,2,5/1,4,f/1,c,4/c,d,e/b,c,d/b,4,f/2,d,f/...
    output: b,c,3,4,f

(the full example, 37 clauses, is `SatTask.example`). Here x3 and x4 are true, x1, x2 and
x5 false; the first clause `b,4,5` reads (not x1) or x4 or x5. The number of
variables n is the largest variable index the input mentions.

Generation (planted, unique solution): draw an assignment x uniformly, a clause count m
uniformly from the clause range, and m distinct clauses uniformly among all clauses over
three distinct variables that x satisfies (literals written in variable order, clauses in
random order). The draw is repeated (new m, new clauses; same x) until x is the formula's
ONLY model, checked by brute force over all 2^n assignments at once: a set of assignments
is a 2^n-bit Python int, each clause's falsifying set is precomputed, and x is the only
model iff the union of those sets is everything but x. So the instances are uniform
random planted formulas conditioned on a unique solution; that condition favours the
larger m of the range. A unique model implies that every
variable occurs (an absent variable could be flipped).

Automatic clause ranges (`--clauses` unset), chosen so that every example fits the
reference's cutoff (one token per character; a sequence is input SEP output EOS, i.e.
6m + 2n tokens): the upper end is the most clauses that fit, 41/45/51 for n = 5/7/9
(cutoffs 258/285/325), and the range spans the 10 counts below it, matching the
reference's "roughly 40-50 clauses". Uniqueness needs about 25/40/56 random clauses
(median) for n = 5/7/9, so with n = 9 about 1 draw in 4-5 is kept.

Any satisfying assignment is judged correct, not only the planted one (for generated
instances they coincide). The solver is DPLL (unit propagation, then branching).

Answer orders (SPEC §9). A literal names its own variable, so every order writes the same
n literals, only in another sequence: `reverse` x_n..x1 (`f,4,3,c,b`); `solver` in the
order DPLL fixes the variables (its trail: unit propagations and branch decisions on the
way to the model it finds, then any variable it never needed); `random` a seeded random
permutation per example. All map back to x1..xn before judging; a variable missing or
written twice does not parse (a wrong answer).
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math
import operator
import random
from typing import Any, ClassVar

from dvar.tasks import register
from dvar.tasks.base import Task, parse_range, reverse_units

MIN_VARS, MAX_VARS = 3, 9
# Clause counts drawn when `--clauses` is not given; the top of each range is the most
# clauses whose sequence (6m + 2n tokens) fits the cutoff (reference's for n = 5/7/9,
# interpolated for 6 and 8; n = 3 has only 7 possible clauses and needs all of them).
AUTO_CLAUSES: dict[int, tuple[int, int]] = {
    3: (7, 7),
    4: (18, 28),
    5: (31, 41),
    6: (33, 43),
    7: (35, 45),
    8: (38, 48),
    9: (41, 51),
}
# The reference's (cutoff_len, AR max_new_tokens).
REFERENCE_LENGTHS: dict[int, tuple[int, int]] = {5: (258, 10), 7: (285, 14), 9: (325, 18)}
# Draws of a whole formula before giving up on a clause range that rarely gives uniqueness.
MAX_ATTEMPTS = 20_000

Clause = tuple[int, ...]


@dataclasses.dataclass(frozen=True)
class SatProblem:
    """A CNF formula over x1..x{num_vars}; literals are signed ints (-3 = not x3)."""

    num_vars: int
    clauses: tuple[Clause, ...]


# ---------------------------------------------------------------------- literals
def literal_char(literal: int) -> str:
    """3 -> "3", -3 -> "d"."""
    if literal > 0:
        return str(literal)
    return chr(ord("a") - literal)


_LITERAL_OF_CHAR: dict[str, int] = {
    **{str(k): k for k in range(1, MAX_VARS + 1)},
    **{chr(ord("a") + k): -k for k in range(1, MAX_VARS + 1)},
}


def _parse_literal(char: str) -> int:
    literal = _LITERAL_OF_CHAR.get(char)
    if literal is None:
        raise ValueError(f"expected a literal 1-9 or b-j, got {char!r}")
    return literal


def format_assignment(values: list[bool] | tuple[bool, ...]) -> str:
    """[True, False, True] -> "1,c,3"."""
    return ",".join(literal_char(k if value else -k) for k, value in enumerate(values, 1))


def _format_clauses(clauses: tuple[Clause, ...] | list[Clause]) -> str:
    return "/".join(",".join(literal_char(lit) for lit in clause) for clause in clauses)


# ---------------------------------------------------------------------- brute force
@functools.lru_cache(maxsize=None)
def _false_masks(num_vars: int) -> dict[int, int]:
    """For each literal, the set of assignments (as bits of a 2^n-bit int) making it false.

    Assignment a (0 <= a < 2^n) sets x_k = bit k-1 of a.
    """
    everything = (1 << (1 << num_vars)) - 1
    masks: dict[int, int] = {}
    for k in range(1, num_vars + 1):
        true_set = sum(1 << a for a in range(1 << num_vars) if a >> (k - 1) & 1)
        masks[k] = everything & ~true_set
        masks[-k] = true_set
    return masks


@functools.lru_cache(maxsize=None)
def _all_clauses(num_vars: int) -> tuple[tuple[Clause, int], ...]:
    """Every clause over 3 distinct variables (literals in variable order), with the set of
    assignments that falsify it."""
    masks = _false_masks(num_vars)
    result = []
    for variables in itertools.combinations(range(1, num_vars + 1), 3):
        for signs in itertools.product((1, -1), repeat=3):
            clause = tuple(sign * k for sign, k in zip(signs, variables))
            result.append((clause, masks[clause[0]] & masks[clause[1]] & masks[clause[2]]))
    return tuple(result)


# ---------------------------------------------------------------------- DPLL
def _assign(clauses: list[Clause], literal: int) -> list[Clause] | None:
    """Clauses left once `literal` is true; None if one of them became empty (conflict)."""
    remaining = []
    for clause in clauses:
        if literal in clause:
            continue
        if -literal in clause:
            clause = tuple(lit for lit in clause if lit != -literal)
            if not clause:
                return None
        remaining.append(clause)
    return remaining


def _dpll(clauses: list[Clause], chosen: list[int]) -> list[int] | None:
    """The literals made true by a satisfying branch (extending `chosen`), or None."""
    chosen = list(chosen)
    # Unit propagation: a one-literal clause forces its literal.
    while True:
        unit = next((clause[0] for clause in clauses if len(clause) == 1), None)
        if unit is None:
            break
        reduced = _assign(clauses, unit)
        if reduced is None:
            return None
        clauses = reduced
        chosen.append(unit)
    if not clauses:
        return chosen
    # Branch on a literal of a shortest clause: it is the most constrained one.
    literal = min(clauses, key=len)[0]
    for attempt in (literal, -literal):
        reduced = _assign(clauses, attempt)
        if reduced is not None:
            found = _dpll(reduced, chosen + [attempt])
            if found is not None:
                return found
    return None


def dpll_order(num_vars: int, clauses: tuple[Clause, ...] | list[Clause]) -> list[int] | None:
    """Variables 1..n in the order DPLL fixes them on its way to a model (its trail), then
    those it never needed in index order; None if the formula is unsatisfiable."""
    true_literals = _dpll([tuple(clause) for clause in clauses], [])
    if true_literals is None:
        return None
    trail = list(dict.fromkeys(abs(literal) for literal in true_literals))
    return trail + [k for k in range(1, num_vars + 1) if k not in set(trail)]


def dpll(num_vars: int, clauses: tuple[Clause, ...] | list[Clause]) -> list[bool] | None:
    """A satisfying assignment (x1..xn) by DPLL, or None if the formula is unsatisfiable.

    Variables the search never needed to set are false.
    """
    true_literals = _dpll([tuple(clause) for clause in clauses], [])
    if true_literals is None:
        return None
    values = [False] * num_vars
    for literal in true_literals:
        values[abs(literal) - 1] = literal > 0
    return values


# ---------------------------------------------------------------------- the task
@register
class SatTask(Task):
    """Planted 3-SAT with a unique solution, 3..9 variables (SPEC §1)."""

    name: ClassVar[str] = "sat"
    summary: ClassVar[str] = "3-SAT: assign x1..xn so that every 3-literal clause holds"
    # sample(random.Random(0), SatTask.Options())
    example: ClassVar[dict[str, str]] = {
        "input": "b,4,5/c,e,5/c,3,4/b,d,e/3,4,f/b,2,5/1,4,f/1,c,4/c,d,e/b,c,d/b,4,f/2,d,f/1,c,f/"
        "b,d,f/d,4,5/2,e,f/d,e,f/1,c,e/b,c,5/c,4,f/c,3,e/b,2,d/2,3,e/1,3,4/1,d,f/1,4,5/"
        "2,3,f/1,3,e/3,e,f/b,c,f/c,4,5/b,c,e/2,d,4/c,d,f/1,3,5/b,d,5/2,4,f",
        "output": "b,c,3,4,f",
    }

    @dataclasses.dataclass(frozen=True)
    class Options:
        vars: int = dataclasses.field(
            default=5, metadata={"help": f"number of variables, {MIN_VARS}..{MAX_VARS}"}
        )
        clauses: tuple[int, int] | None = dataclasses.field(
            default=None,
            metadata={
                "help": "clause count range MIN:MAX; unset = a range fitting the reference cutoff",
                "parse": parse_range,
            },
        )

    # ------------------------------------------------------------------ generation
    @staticmethod
    def clause_range(options: Options) -> tuple[int, int]:
        """The (min, max) clause count drawn for `options`; ValueError if impossible."""
        n = options.vars
        if not MIN_VARS <= n <= MAX_VARS:
            raise ValueError(
                f"sat: vars must be in {MIN_VARS}..{MAX_VARS} (one character per literal), got {n}"
            )
        if options.clauses is None:
            return AUTO_CLAUSES[n]
        low, high = options.clauses
        available = 7 * math.comb(n, 3)  # 3 distinct variables, 7 of 8 sign patterns hold
        # Each clause rules out 2^(n-3) of the 2^n - 1 assignments that must go.
        needed = -(-((1 << n) - 1) // (1 << (n - 3)))
        if not 1 <= low <= high:
            raise ValueError(f"sat: bad clause range {low}:{high}")
        if high > available:
            raise ValueError(
                f"sat: only {available} distinct clauses over {n} variables, asked {high}"
            )
        if high < needed:
            raise ValueError(f"sat: a unique solution over {n} variables needs >= {needed} clauses")
        return low, high

    def prepare(self, options: Options) -> None:
        self.clause_range(options)

    def sample(self, rng: random.Random, options: Options) -> dict[str, Any]:
        low, high = self.clause_range(options)
        n = options.vars
        planted = [rng.random() < 0.5 for _ in range(n)]
        planted_bit = 1 << sum(1 << (k - 1) for k in range(1, n + 1) if planted[k - 1])
        # Clauses the planted assignment satisfies: those whose falsifying set misses it.
        pool = [(clause, mask) for clause, mask in _all_clauses(n) if not mask & planted_bit]
        others = ((1 << (1 << n)) - 1) ^ planted_bit
        for _ in range(MAX_ATTEMPTS):
            drawn = rng.sample(pool, rng.randint(low, high))  # distinct, in random order
            if functools.reduce(operator.or_, (mask for _, mask in drawn)) == others:
                problem = SatProblem(n, tuple(clause for clause, _ in drawn))
                return {"input": self.format_input(problem), "output": format_assignment(planted)}
        raise ValueError(
            f"sat: no formula with a unique solution in {MAX_ATTEMPTS} draws of {low}..{high} "
            f"clauses over {n} variables; raise --clauses"
        )

    # ------------------------------------------------------------------ format
    def parse_input(self, text: str) -> SatProblem:
        body = text.strip()
        if not body:
            raise ValueError("empty formula")
        clauses = []
        for clause_text in body.split("/"):
            parts = clause_text.split(",")
            if len(parts) != 3:
                raise ValueError(f"expected 3 literals per clause, got {clause_text[:40]!r}")
            clauses.append(tuple(_parse_literal(part) for part in parts))
        num_vars = max(abs(literal) for clause in clauses for literal in clause)
        return SatProblem(num_vars, tuple(clauses))

    def format_input(self, problem: SatProblem) -> str:
        return _format_clauses(problem.clauses)

    def canonical(self, problem: SatProblem) -> str:
        # Clause and literal order do not change the formula, nor does a repeated clause.
        def key(literal: int) -> tuple[int, int]:
            return abs(literal), literal < 0

        clauses = {tuple(sorted(clause, key=key)) for clause in problem.clauses}
        return _format_clauses(sorted(clauses, key=lambda clause: [key(lit) for lit in clause]))

    def input_from_record(self, record: dict[str, Any]) -> str:
        """`input`, or the SATLIB layout of testsets/sat3_satlib_*.jsonl (num_vars, clauses)."""
        if "input" in record or "clauses" not in record:
            return super().input_from_record(record)
        num_vars, clauses = record.get("num_vars"), record["clauses"]
        if not isinstance(num_vars, int) or isinstance(num_vars, bool) or num_vars < 1:
            raise ValueError(f"expected a positive integer num_vars, got {num_vars!r}")
        if num_vars > MAX_VARS:
            raise ValueError(
                f"sat: {num_vars} variables cannot be written: a literal is one character "
                f"(1-9 / b-j), so at most {MAX_VARS} variables"
            )
        if not isinstance(clauses, list) or not clauses:
            raise ValueError("expected a non-empty list of clauses")
        for clause in clauses:
            if (
                not isinstance(clause, list)
                or len(clause) != 3
                or not all(type(lit) is int and 0 < abs(lit) <= num_vars for lit in clause)
            ):
                raise ValueError(f"expected 3 nonzero literals within +-{num_vars}, got {clause!r}")
        return _format_clauses([tuple(clause) for clause in clauses])

    # ------------------------------------------------------------------ solving
    def solve(self, problem: SatProblem) -> str | None:
        values = dpll(problem.num_vars, problem.clauses)
        return None if values is None else format_assignment(values)

    # ------------------------------------------------------------------ answer orders
    answer_orders: ClassVar[tuple[str, ...]] = ("forward", "reverse", "solver", "random")

    def _write_order(self, problem: SatProblem, answer: str, order: str, rng: Any) -> str:
        literals = self._literals(problem, answer)  # by variable, x1..xn
        if order == "reverse":
            return reverse_units(answer, ",")
        if order == "solver":
            variables = dpll_order(problem.num_vars, problem.clauses)
            if variables is None:
                raise ValueError("sat: the formula is unsatisfiable; no solver order")
        else:  # random
            variables = list(range(1, problem.num_vars + 1))
            rng.shuffle(variables)
        return ",".join(literal_char(literals[k]) for k in variables)

    def _read_order(self, problem: SatProblem, text: str, order: str) -> str:
        if order == "reverse":
            return reverse_units(text.strip(), ",")
        literals = self._literals(problem, text)
        return ",".join(literal_char(literals[k]) for k in range(1, problem.num_vars + 1))

    @staticmethod
    def _literals(problem: SatProblem, text: str) -> dict[int, int]:
        """Variable -> literal of an answer listing each of x1..xn once, in any order."""
        literals: dict[int, int] = {}
        for char in text.strip().split(","):
            literal = _parse_literal(char)
            if abs(literal) > problem.num_vars or abs(literal) in literals:
                raise ValueError(f"sat: literal {char!r} is out of range or its variable repeats")
            literals[abs(literal)] = literal
        if len(literals) != problem.num_vars:
            raise ValueError(f"sat: {len(literals)} of {problem.num_vars} variables assigned")
        return literals

    # ------------------------------------------------------------------ judging
    @staticmethod
    def _assignment(problem: SatProblem, answer: str) -> dict[int, bool] | None:
        """The assignment an answer writes, or None if it is not one literal per variable,
        the k-th about x_k (exactly "k" or the k-th letter)."""
        if not isinstance(answer, str):
            return None
        tokens = answer.strip().split(",")
        if len(tokens) != problem.num_vars:
            return None
        values = {}
        for k, token in enumerate(tokens, 1):
            if token == literal_char(k):
                values[k] = True
            elif token == literal_char(-k):
                values[k] = False
            else:
                return None
        return values

    def well_formed(self, problem: SatProblem, answer: str) -> bool:
        """One literal per variable, the k-th about x_k, satisfying or not."""
        return self._assignment(problem, answer) is not None

    def judge(self, problem: SatProblem, answer: str) -> dict[str, bool]:
        values = self._assignment(problem, answer)
        if values is None:
            return {"correct": False}
        satisfied = all(
            any(values.get(abs(lit)) == (lit > 0) for lit in clause) for clause in problem.clauses
        )
        return {"correct": satisfied}

    def chance(self, problem: SatProblem) -> float:
        """The share of the 2^n assignments that satisfy the formula (1/2^n when the
        solution is unique, as the generator plants it)."""
        n = problem.num_vars
        hits = sum(self.verify(problem, format_assignment([bool(bits >> k & 1) for k in range(n)]))
                   for bits in range(1 << n))
        return hits / (1 << n)

    def breakdown(self, problem: SatProblem) -> dict[str, int | str]:
        return {"vars": problem.num_vars}

    def reference_lengths(self, options: Options) -> tuple[int, int]:
        """(cutoff, AR max_new_tokens): the reference's for n = 5/7/9, else a computed bound.

        A sequence is input (6m - 1 chars for m clauses) SEP output (2n - 1) EOS: 6m + 2n
        tokens, and the AR answer is output + EOS = 2n tokens. With an explicit clause
        range too long for the reference cutoff, the bound replaces it.
        """
        low, high = self.clause_range(options)
        n = options.vars
        bound = (6 * high + 2 * n, 2 * n)
        reference = REFERENCE_LENGTHS.get(n)
        if reference is None:
            return bound
        return max(reference[0], bound[0]), reference[1]
