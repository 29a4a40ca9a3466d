"""Countdown (CD3/4/5, Game of 24): combine the numbers with + - * / to reach the target.

Rules (Stream of Search, Gandhi et al. 2024): integer arithmetic only, every input number
used exactly once, two values combined per step, so n numbers take n-1 equations; division
must be exact and no result may be negative. The input is the n numbers then the target,
comma-separated; the output is the equations joined by `,`, the last one ending at the target:

    input:  86,28,13,31,96          (numbers 86, 28, 13, 31; target 96)
    output: 86+28=114,31-13=18,114-18=96

Generation follows Stream of Search's `countdown.py`/`countdown_generate.py` (repository
kanishkg/stream-of-search): the targets min..max (10..100) are shuffled with a fixed seed and
10% are held out for the out-of-distribution split; a sample draws a target uniformly from
its split, then draws n numbers uniformly from 1..max_number (SoS: 1..max_target-1 = 1..99)
until a depth-first search finds a solution; the gold output is the FIRST solution of that
search, in SoS's order (pairs i<j in index order, operations + * - /, the larger operand
first for - and /, the new value appended at the end). `solve` runs the same search, so
`solve(problem)` reproduces the gold of a generated problem, and it also reproduces
all 3,000 of the reference's CD3/4/5 test solutions (see the tests). The held-out targets are
SoS's `val_target` targets for `random.seed(heldout_seed)`; the reference's CD3/4/5 test sets
(HKUNLP/Dream eval/data/cd{3,4,5}_test.jsonl) use exactly those of seeds 3/4/5, i.e. they are
out-of-distribution targets. So by default (`heldout_seed=-1`) the seed is the number count,
as in SoS: CD N training data never holds a target of the reference's CD N test set, and
`group` labels those test sets `target=ood`. Samples longer than the reference's sequence are redrawn (see `reference_lengths`;
this drops about 3% of CD4 golds, those over 31 characters).

Options (each is a `dvar generate countdown` flag): `--numbers N` (n >= 2), `--split
train|ood|all`, `--target T` (0 = random target; a fixed target ignores the split),
`--min-target`, `--max-target`, `--max-number`, `--heldout-fraction`, `--heldout-seed`.
The Game of 24 is `--target 24 --numbers 4 --max-number 13`.

Judging reports two accuracies: `correct` (this module's strict rule: each equation is
`a op b = c` in canonical integers, arithmetically right under the integer rules, its operands
taken from the values still available; exactly n-1 equations; ends at the target) and
`reference` (the reference system's looser rule, mirrored from its checker, see
`reference_judge`: only each equation's arithmetic and the final value are checked).

Answer orders (SPEC §9): `reverse` writes the equations last to first
(`114-18=96,31-13=18,86+28=114`: the target's equation first), mapped back before judging.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math
import random
import re
from collections import Counter
from typing import Any, ClassVar

from dvar.tasks import register
from dvar.tasks.base import Task, reverse_units

SPLITS = ("train", "ood", "all")

# The reference's (cutoff_len, AR max_new_tokens) for CD3/4/5 (SPEC §1); they are valid for
# numbers up to 99 and targets up to 100, the reference's ranges.
_REFERENCE_LENGTHS = {3: (37, 24), 4: (64, 32), 5: (74, 54)}

# A sample redraws its numbers at most this often before giving up on the settings.
_MAX_DRAWS = 20_000

# ASCII digits without leading zeros: `int()` alone would also accept " 5", "+5", "5_0" and
# non-ASCII digits, and a model writing "05" has not written the canonical number.
_NUM = r"(?:0|[1-9][0-9]*)"
_EQUATION_RE = re.compile(rf"({_NUM})([-+*/])({_NUM})=({_NUM})")
_INPUT_RE = re.compile(rf"{_NUM}(?:,{_NUM})+")


@dataclasses.dataclass(frozen=True)
class CountdownProblem:
    """The input numbers (in the order written) and the target."""

    numbers: tuple[int, ...]
    target: int


# ---------------------------------------------------------------------------- held-out targets
def heldout_targets(options: Any) -> frozenset[int]:
    """The targets reserved for the out-of-distribution split.

    A function of (min_target, max_target, heldout_fraction, heldout_seed) only (and of the
    number count when heldout_seed is -1, SoS's convention), never of the generation seed,
    so train and ood files made with different seeds agree. Like SoS: shuffle
    min..max with `random.Random(heldout_seed)` and hold out the first floor(fraction * count).
    """
    seed = options.heldout_seed if options.heldout_seed >= 0 else options.numbers
    return _heldout(options.min_target, options.max_target, options.heldout_fraction, seed)


@functools.lru_cache(maxsize=64)
def _heldout(min_target: int, max_target: int, fraction: float, seed: int) -> frozenset[int]:
    targets = list(range(min_target, max_target + 1))
    random.Random(seed).shuffle(targets)
    # The epsilon keeps 91 * 0.1 = 9.100000000000001 and friends from flipping the floor.
    count = math.floor(len(targets) * fraction + 1e-9)
    return frozenset(targets[:count])


@functools.lru_cache(maxsize=64)
def _allowed_targets(options: Any) -> tuple[int, ...]:
    """The targets a sample may draw from, in ascending order."""
    if options.target:
        return (options.target,)
    held = heldout_targets(options)
    span = range(options.min_target, options.max_target + 1)
    if options.split == "train":
        return tuple(t for t in span if t not in held)
    if options.split == "ood":
        return tuple(t for t in span if t in held)
    return tuple(span)


# ---------------------------------------------------------------------------- search
Step = tuple[int, str, int, int]  # (left, op, right, result): `left op right = result`


def _moves(a: int, b: int) -> list[Step]:
    """Every legal combination of a and b, in SoS's `combine_nums` order."""
    big, small = (b, a) if a <= b else (a, b)
    moves = [(a, "+", b, a + b), (a, "*", b, a * b), (big, "-", small, big - small)]
    if small != 0 and big % small == 0:
        moves.append((big, "/", small, big // small))
    return moves


def _last_step(a: int, b: int, target: int) -> Step | None:
    """The first of `_moves(a, b)` that makes `target` (the search's hot path, inlined)."""
    if a + b == target:
        return (a, "+", b, target)
    if a * b == target:
        return (a, "*", b, target)
    big, small = (b, a) if a <= b else (a, b)
    if big - small == target:
        return (big, "-", small, target)
    if small != 0 and big == target * small:
        return (big, "/", small, target)
    return None


def _search(values: list[int], target: int, dead: set[tuple[int, ...]]) -> list[Step] | None:
    """Steps reducing `values` to `target` (the first found in SoS's DFS order), or None.

    `dead` remembers multisets already shown unsolvable: solvability does not depend on
    the order of the values, so pruning them never changes which solution is found first.
    """
    if len(values) == 2:
        step = _last_step(values[0], values[1], target)
        return None if step is None else [step]
    if len(values) == 3:
        # Unrolled: three pairs, each leaving (the other value, the new one).
        x, y, z = values
        for a, b, other in ((x, y, z), (x, z, y), (y, z, x)):
            for step in _moves(a, b):
                last = _last_step(other, step[3], target)
                if last is not None:
                    return [step, last]
        return None
    key = tuple(sorted(values))
    if key in dead:
        return None
    count = len(values)
    for i in range(count - 1):
        for j in range(i + 1, count):
            rest = values[:i] + values[i + 1:j] + values[j + 1:]
            for step in _moves(values[i], values[j]):
                rest.append(step[3])
                found = _search(rest, target, dead)
                rest.pop()
                if found is not None:
                    return [step, *found]
    dead.add(key)
    return None


def _results(a: int, b: int) -> tuple[int, ...]:
    """The values a legal step on a and b can produce."""
    big, small = (b, a) if a <= b else (a, b)
    if small != 0 and big % small == 0:
        return (a + b, a * b, big - small, big // small)
    return (a + b, a * b, big - small)


def _partners(a: int, target: int) -> tuple[int, ...]:
    """Every b >= 0 for which some legal step on a and b gives `target`; with a = target = 0
    any b works (0 * b), which the caller cannot enumerate, so `-1` stands for "any"."""
    if target == 0:
        return (-1,) if a == 0 else (a, 0)  # 0 * b; a - a or a * 0
    found = [target - a, a - target, a + target]  # a + b, |a - b|
    if a != 0 and target % a == 0:
        found.append(target // a)  # a * b
    if a != 0:
        found.append(a * target)  # b / a
    if a % target == 0:
        found.append(a // target)  # a / b (b = 0 excluded below)
    return tuple(b for b in found if b > 0 or (b == 0 and target - a == 0))


class _Reachability:
    """Answers "can these numbers make v?" by splitting them in two groups.

    A cheap pre-check for generation: most random draws are unsolvable, and a failing DFS
    explores the whole tree, while this only builds the value sets of groups of <= 3
    numbers (memoised) and asks, for each value a of one group, whether the other group can
    make one of the few partners b with `a op b = v`.
    """

    def __init__(self) -> None:
        self._memo: dict[tuple[int, ...], frozenset[int]] = {}

    def values(self, group: tuple[int, ...]) -> frozenset[int]:
        """All values that use every number of a group of 1..3 numbers."""
        key = tuple(sorted(group))
        known = self._memo.get(key)
        if known is not None:
            return known
        if len(key) == 1:
            made = frozenset(key)
        elif len(key) == 2:
            made = frozenset(_results(*key))
        else:
            x, y, z = key
            made = frozenset(r for a, b, c in ((x, y, z), (x, z, y), (y, z, x))
                             for v in self.values((a, b)) for r in _results(v, c))
        self._memo[key] = made
        return made

    def can_make(self, numbers: tuple[int, ...], target: int) -> bool:
        """Whether `numbers` (at most 7: larger sets would need splits into two groups of 4
        or more, which `values` does not build) can make `target`."""
        if len(numbers) > 7:
            raise ValueError("the reachability check handles at most 7 numbers")
        if len(numbers) <= 3:
            return target in self.values(numbers)
        count = len(numbers)
        # A step's results do not depend on the order of its operands, so each split into
        # (group, rest) is tried once: the smaller side as `group`, halves only with index 0.
        for size in range(1, min(3, count // 2) + 1):
            for chosen in itertools.combinations(range(count), size):
                if 2 * size == count and chosen[0] != 0:
                    continue
                group = self.values(tuple(numbers[i] for i in chosen))
                rest = tuple(numbers[i] for i in range(count) if i not in chosen)
                if len(rest) <= 3:
                    made = self.values(rest)
                    small, large = (group, made) if len(group) <= len(made) else (made, group)
                    for a in small:
                        for b in _partners(a, target):
                            if b == -1 or b in large:
                                return True
                    continue
                for a in group:
                    for b in _partners(a, target):
                        if b == -1 or self.can_make(rest, b):
                            return True
        return False


def _format_steps(steps: list[Step]) -> str:
    return ",".join(f"{a}{op}{b}={c}" for a, op, b, c in steps)


def solve_numbers(numbers: list[int] | tuple[int, ...], target: int) -> str | None:
    """A solution as equations joined by `,` (SoS's first DFS solution), or None."""
    values = list(numbers)
    if len(values) < 2:
        return None
    steps = _search(values, target, set())
    return None if steps is None else _format_steps(steps)


# ---------------------------------------------------------------------------- strict judge
def _apply(a: int, op: str, b: int) -> int | None:
    """a op b under the integer rules, or None when the step is not allowed."""
    if op == "+":
        return a + b
    if op == "*":
        return a * b
    if op == "-":
        return a - b if a >= b else None
    if b != 0 and a % b == 0:  # op == "/"
        return a // b
    return None


def _equations(problem: CountdownProblem, answer: str) -> list[re.Match] | None:
    """The n-1 comma-separated `a op b = c` equations of an answer (their regex matches),
    or None if it is not written so; the arithmetic is not checked."""
    equations = answer.strip().split(",")
    if len(equations) != len(problem.numbers) - 1:
        return None
    matches = [_EQUATION_RE.fullmatch(equation) for equation in equations]
    return None if None in matches else matches


def strict_judge(problem: CountdownProblem, answer: str) -> bool:
    """This module's rule: n-1 valid integer steps over the available values, ending at target."""
    matches = _equations(problem, answer)
    if matches is None:
        return False
    available = Counter(problem.numbers)
    result = None
    for match in matches:
        try:
            a, b, result = int(match.group(1)), int(match.group(3)), int(match.group(4))
        except ValueError:  # more digits than Python's int() conversion limit
            return False
        if _apply(a, match.group(2), b) != result:
            return False
        # Consume one at a time: `5+5` needs two 5s.
        for operand in (a, b):
            if available[operand] == 0:
                return False
            available[operand] -= 1
        available[result] += 1
    return result == problem.target


# ---------------------------------------------------------------------------- reference judge
# The reference (HKUNLP/diffusion-vs-ar, src/llmtuner/tuner/core/metric.py, `compute_acc` and
# `check_eq`; read in the fork seunghyukoh/diffusion-vs-ar @ ecbe93c) scores countdown as:
#     for subeq in pred.split(","):
#         left, right = subeq.split("=")          # anything but one "=" -> wrong
#         re.match(r"(\d+)([+\-*/])(\d+)", left)  # prefix check, else wrong
#         eval(left) == float(right)              # any exception -> wrong
#     and pred.split("=")[-1] == label.split("=")[-1]   (the gold's last value, i.e. target)
# We mirror this without `eval`: `left` is evaluated by the small parser below, which accepts
# the Python expressions an output over the reference's vocabulary can spell (Python numeric
# literals such as `12`, `00`, `1e5`, `2j`, `0b101`; + - * / // % **, unary + -, parentheses,
# spaces) and computes them with Python's own int/float/complex operators, so the value, and
# an exception, are the ones `eval` would give. Differences only for text `eval` would read
# otherwise: names/keywords (`True`, `1 if 1 else 2`) are wrong here, and `int ** int` with a
# result over 100,000 bits is wrong here instead of taking `eval` minutes.
_REFERENCE_PREFIX_RE = re.compile(r"(\d+)([+\-*/])(\d+)")

_DIGITS = r"[0-9](?:_?[0-9])*"
_POINT_FLOAT = rf"(?:(?:{_DIGITS})?\.{_DIGITS}|{_DIGITS}\.)"
_EXPONENT_FLOAT = rf"(?:(?:{_POINT_FLOAT}|{_DIGITS})[eE][-+]?{_DIGITS})"
_PY_TOKEN_RE = re.compile(
    r"[ \t\f]*(?:"
    rf"(?P<imag>(?:{_EXPONENT_FLOAT}|{_POINT_FLOAT}|{_DIGITS})[jJ])"
    rf"|(?P<float>{_EXPONENT_FLOAT}|{_POINT_FLOAT})"
    r"|(?P<based>0[xX](?:_?[0-9a-fA-F])+|0[oO](?:_?[0-7])+|0[bB](?:_?[01])+)"
    r"|(?P<int>[1-9](?:_?[0-9])*|0+(?:_?0)*)"
    r"|(?P<op>\*\*|//|[-+*/%()])"
    r")"
)
# Python rejects a number glued to a following letter, digit, `_` or `.` (`01`, `1e`, `0b12`).
_GLUED_RE = re.compile(r"[0-9A-Za-z_.]")
_MAX_POWER_BITS = 100_000
_MAX_DEPTH = 200  # Python's parser refuses deeper nesting too ("too many nested parentheses")


class _NotEvaluable(Exception):
    """The text is not an expression the mirror evaluates (the reference scores it wrong)."""


def _python_tokens(text: str) -> list[tuple[str, Any]]:
    tokens: list[tuple[str, Any]] = []
    pos = 0
    while pos < len(text):
        match = _PY_TOKEN_RE.match(text, pos)
        if match is None or match.end() == pos:
            if text[pos:].strip(" \t\f") == "":
                break
            raise _NotEvaluable(text)
        pos = match.end()
        kind = match.lastgroup
        word = match.group(kind)
        if kind == "op":
            tokens.append(("op", word))
            continue
        if pos < len(text) and _GLUED_RE.match(text, pos):
            raise _NotEvaluable(text)
        # int() refuses over 4300 digits (ValueError), as Python's compiler refuses the literal.
        if kind == "int":
            value: Any = int(word)
        elif kind == "based":
            value = int(word, 0)
        elif kind == "float":
            value = float(word)
        else:
            value = complex(word)
        tokens.append(("num", value))
    return tokens


class _PythonArithmetic:
    """Recursive descent over Python's precedence: + - < * / // % < unary + - < **."""

    def __init__(self, tokens: list[tuple[str, Any]]) -> None:
        self.tokens = tokens
        self.pos = 0
        self.depth = 0

    def _peek(self) -> Any:
        if self.pos < len(self.tokens) and self.tokens[self.pos][0] == "op":
            return self.tokens[self.pos][1]
        return None

    def evaluate(self) -> Any:
        value = self._sum()
        if self.pos != len(self.tokens):
            raise _NotEvaluable("trailing tokens")
        return value

    def _sum(self) -> Any:
        value = self._product()
        while self._peek() in ("+", "-"):
            op = self.tokens[self.pos][1]
            self.pos += 1
            right = self._product()
            value = value + right if op == "+" else value - right
        return value

    def _product(self) -> Any:
        value = self._unary()
        while self._peek() in ("*", "/", "//", "%"):
            op = self.tokens[self.pos][1]
            self.pos += 1
            right = self._unary()
            if op == "*":
                value = value * right
            elif op == "/":
                value = value / right
            elif op == "//":
                value = value // right
            else:
                value = value % right
        return value

    def _unary(self) -> Any:
        self.depth += 1
        if self.depth > _MAX_DEPTH:
            raise _NotEvaluable("too deep")
        op = self._peek()
        if op in ("+", "-"):
            self.pos += 1
            value = self._unary()
            value = +value if op == "+" else -value
        else:
            value = self._power()
        self.depth -= 1
        return value

    def _power(self) -> Any:
        base = self._atom()
        if self._peek() != "**":
            return base
        self.pos += 1
        exponent = self._unary()  # right-associative, and `2**-1` is legal
        if (isinstance(base, int) and isinstance(exponent, int) and exponent > 0
                and abs(base) > 1 and (abs(base).bit_length() - 1) * exponent > _MAX_POWER_BITS):
            raise _NotEvaluable("power too large")
        return base**exponent

    def _atom(self) -> Any:
        if self.pos >= len(self.tokens):
            raise _NotEvaluable("unexpected end")
        kind, value = self.tokens[self.pos]
        self.pos += 1
        if kind == "num":
            return value
        if value == "(":
            self.depth += 1
            if self.depth > _MAX_DEPTH:
                raise _NotEvaluable("too deep")
            inner = self._sum()
            if self._peek() != ")":
                raise _NotEvaluable("unclosed parenthesis")
            self.pos += 1
            self.depth -= 1
            return inner
        raise _NotEvaluable(f"unexpected {value!r}")


def _reference_check_eq(left: str, right: str) -> bool:
    """The reference's `check_eq(left, right)`: `eval(left) == float(right)` behind a prefix test."""
    if _REFERENCE_PREFIX_RE.match(left) is None:
        return False
    try:
        return bool(_PythonArithmetic(_python_tokens(left)).evaluate() == float(right))
    except (_NotEvaluable, ArithmeticError, ValueError, TypeError):
        return False


def reference_judge(target: int, answer: str) -> bool:
    """The reference's countdown accuracy: each `,`-separated equation's arithmetic holds
    and the text after the last `=` is the target; which numbers were used is not checked."""
    prediction = answer.strip()
    for equation in prediction.split(","):
        sides = equation.split("=")
        if len(sides) != 2 or not _reference_check_eq(sides[0], sides[1]):
            return False
    return prediction.split("=")[-1] == str(target)


# ---------------------------------------------------------------------------- lengths
def _length_bound(numbers: int, max_number: int, max_target: int) -> tuple[int, int]:
    """(sequence length, output length + EOS) that no legal answer can exceed.

    A value built from k input numbers is at most M**k with M = max(max_number, 2) (sums never
    beat products once values are >= 2), so it has at most digits(M**k) characters; the
    worst merge tree is found by a small dynamic programme over subtree sizes.
    """
    base = max(max_number, 2)

    def digits(k: int) -> int:
        return len(str(base**k))

    # cost[k] = the longest equations text (without commas) building one value from k numbers.
    cost = [0, 0]
    for k in range(2, numbers):
        cost.append(max(cost[i] + cost[k - i] + digits(i) + digits(k - i) + 2 + digits(k)
                        for i in range(1, k // 2 + 1)))
    final = max(cost[i] + cost[numbers - i] + digits(i) + digits(numbers - i) + 2
                + len(str(max_target)) for i in range(1, numbers // 2 + 1))
    output = final + (numbers - 2)  # commas
    input_length = numbers * (len(str(max_number)) + 1) + len(str(max_target))
    return input_length + 1 + output + 1, output + 1


# ---------------------------------------------------------------------------- the task
@register
class CountdownTask(Task):
    name: ClassVar[str] = "countdown"
    summary: ClassVar[str] = (
        "Countdown: reach the target with + - * / using each number once (integer steps)"
    )
    example: ClassVar[dict[str, str]] = {
        "input": "86,28,13,31,96",
        "output": "86+28=114,31-13=18,114-18=96",
    }

    @dataclasses.dataclass(frozen=True)
    class Options:
        numbers: int = dataclasses.field(
            default=4, metadata={"help": "how many numbers (CD3/CD4/CD5: 3/4/5; any n >= 2)"})
        split: str = dataclasses.field(
            default="train",
            metadata={"help": "targets: train = never a held-out target, ood = only held-out "
                              "targets, all = no restriction (ignored with --target)"})
        target: int = dataclasses.field(
            default=0,
            metadata={"help": "fixed target, e.g. 24 for the Game of 24 (with --numbers 4 "
                              "--max-number 13); 0 = random target from the split"})
        min_target: int = dataclasses.field(default=10, metadata={"help": "smallest target"})
        max_target: int = dataclasses.field(default=100, metadata={"help": "largest target"})
        max_number: int = dataclasses.field(
            default=99, metadata={"help": "input numbers are drawn from 1..max_number"})
        heldout_fraction: float = dataclasses.field(
            default=0.1, metadata={"help": "fraction of min..max targets held out for ood"})
        heldout_seed: int = dataclasses.field(
            default=-1,
            metadata={"help": "seed choosing the held-out targets; -1 = the number count, "
                              "SoS's convention, whose CD N targets are those of the "
                              "reference's CD N test set"})

    # ------------------------------------------------------------------ generation
    def prepare(self, options: Options) -> None:
        if options.numbers < 2:
            raise ValueError("countdown: --numbers must be at least 2")
        if options.max_number < 1:
            raise ValueError("countdown: --max-number must be at least 1")
        if options.target < 0:
            raise ValueError("countdown: --target must be >= 0 (0 = random)")
        if options.split not in SPLITS:
            raise ValueError(f"countdown: --split must be one of {', '.join(SPLITS)}, "
                             f"got {options.split!r}")
        if not 0 <= options.min_target <= options.max_target:
            raise ValueError("countdown: need 0 <= --min-target <= --max-target")
        if not 0.0 <= options.heldout_fraction < 1.0:
            raise ValueError("countdown: --heldout-fraction must be in [0, 1)")
        if not _allowed_targets(options):
            raise ValueError(f"countdown: split {options.split!r} has no targets in "
                             f"{options.min_target}..{options.max_target} with "
                             f"--heldout-fraction {options.heldout_fraction}")

    def sample(self, rng: random.Random, options: Options) -> dict[str, Any]:
        self.prepare(options)
        targets = _allowed_targets(options)
        # Like SoS: the target first (uniform over the split), then numbers until solvable.
        target = targets[0] if len(targets) == 1 else rng.choice(targets)
        cutoff, max_new = self.reference_lengths(options)
        reach = _Reachability()
        for _ in range(_MAX_DRAWS):
            numbers = [rng.randint(1, options.max_number) for _ in range(options.numbers)]
            # Most draws are unsolvable (85% for CD4): reject them without a full DFS (for
            # three numbers the DFS is as cheap as the check; over 7 only the DFS is exact).
            if 3 < options.numbers <= 7 and not reach.can_make(tuple(numbers), target):
                continue
            steps = _search(numbers, target, set())
            if steps is None:  # cannot happen (the two searches agree); kept as a guard
                continue
            text_in = ",".join(map(str, numbers)) + f",{target}"
            text_out = _format_steps(steps)
            # Redraw what would not fit the reference's sequence (input SEP output EOS).
            if len(text_in) + len(text_out) + 2 <= cutoff and len(text_out) + 1 <= max_new:
                return {"input": text_in, "output": text_out}
        raise ValueError(f"countdown: no solvable {options.numbers}-number puzzle for target "
                         f"{target} in {_MAX_DRAWS} draws from 1..{options.max_number}")

    # ------------------------------------------------------------------ format
    def parse_input(self, text: str) -> CountdownProblem:
        if not isinstance(text, str) or _INPUT_RE.fullmatch(text) is None:
            raise ValueError("countdown input must be 2+ numbers then the target, "
                             f"comma-separated non-negative integers, got {text!r}")
        try:
            values = [int(part) for part in text.split(",")]
        except ValueError:  # over Python's int() digit limit
            raise ValueError(f"countdown input has an absurdly long number: {text[:40]!r}...")
        return CountdownProblem(numbers=tuple(values[:-1]), target=values[-1])

    def format_input(self, problem: CountdownProblem) -> str:
        return ",".join(str(v) for v in (*problem.numbers, problem.target))

    def input_from_record(self, record: dict[str, Any]) -> str:
        """`{"input": "86,28,13,31,96"}`, or the public test sets' `{"numbers": [...],
        "target": int}`."""
        if isinstance(record.get("input"), str):
            return record["input"]
        numbers, target = record.get("numbers"), record.get("target")
        if isinstance(numbers, list) and len(numbers) >= 2 and all(
                type(v) is int and v >= 0 for v in (*numbers, target)):
            return ",".join(str(v) for v in (*numbers, target))
        raise ValueError('expected a string field "input", or "numbers" (a list of 2+ '
                         'non-negative integers) and "target" (an integer)')

    def canonical(self, problem: CountdownProblem) -> str:
        # The order of the numbers does not change the puzzle.
        return ",".join(str(v) for v in (*sorted(problem.numbers), problem.target))

    # ------------------------------------------------------------------ solving / judging
    def solve(self, problem: CountdownProblem) -> str | None:
        return solve_numbers(problem.numbers, problem.target)

    def judge(self, problem: CountdownProblem, answer: str) -> dict[str, bool]:
        if not isinstance(answer, str):
            return {"correct": False, "reference": False}
        return {
            "correct": strict_judge(problem, answer),
            "reference": reference_judge(problem.target, answer),
        }

    def well_formed(self, problem: CountdownProblem, answer: str) -> bool:
        """n-1 comma-separated equations `a op b = c`, whatever their arithmetic."""
        return isinstance(answer, str) and _equations(problem, answer) is not None

    # ------------------------------------------------------------------ answer orders
    def _write_order(self, problem: CountdownProblem, answer: str, order: str, rng: Any) -> str:
        return reverse_units(answer, ",")  # reverse, the only order besides forward

    def _read_order(self, problem: CountdownProblem, text: str, order: str) -> str:
        return reverse_units(text.strip(), ",")

    def part_separator(self, problem: CountdownProblem) -> str:
        """Equations, `,`."""
        return ","

    def breakdown(self, problem: CountdownProblem) -> dict[str, int | str]:
        held = heldout_targets(self.make_options(numbers=len(problem.numbers)))
        return {"numbers": len(problem.numbers), "target": "ood" if problem.target in held else "in"}

    def reference_lengths(self, options: Options) -> tuple[int, int]:
        """(cutoff, AR max_new_tokens), one token per character, sequence = input SEP output
        EOS: the reference's (37,24), (64,32), (74,54) for 3/4/5 numbers within its ranges
        (numbers <= 99, targets <= 100); otherwise a bound no legal answer exceeds."""
        top_target = options.target or options.max_target
        if options.numbers in _REFERENCE_LENGTHS and options.max_number <= 99 and top_target <= 100:
            return _REFERENCE_LENGTHS[options.numbers]
        return _length_bound(options.numbers, options.max_number, top_target)
