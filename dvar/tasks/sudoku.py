"""Sudoku: fill the grid so that every row, column and box holds each digit once.

Format (the reference's, one character per cell, row by row, `0` = blank):

    input : 000000039053090000100200400020310097016072000900008120000600304231040900640107000
    output: 862451739453796281197283465528314697316972548974568123785629314231845976649137852

An 81-character string is a 9x9 sudoku (3x3 boxes); a 16-character string is a 4x4
sudoku (2x2 boxes, digits 1-4). `.` is read as a blank too (Norvig's files use it).
The breakdown key is the number of givens, `givens=33` for this example.

Generation (`dvar generate sudoku`):
- `--preset default`: 31..36 givens and solvable by naked + hidden singles alone, like
  the public "1 million Sudoku games" collection the reference trains on. Singles-
  solvability implies a unique solution.
- `--preset hard`: 17..26 givens, a unique solution, and NOT solvable by singles alone
  (needs search). Random clue removal rarely gets below ~23 givens, so the achieved
  givens are mostly 23..26 (measured: see `generate_puzzle`).
- `--givens MIN:MAX` replaces the preset: that range, uniqueness as the only condition.
- `--size 4` makes 4x4 puzzles (`default`: 4..12 givens, singles-solvable; every unique
  4x4 puzzle we generated was singles-solvable, so there is no 4x4 `hard`).

The verifier (`judge`) checks the rules, never a stored solution: a complete grid of
the right length whose rows, columns and boxes are permutations of 1..N and which
agrees with every given.

Answer orders (SPEC §9): `reverse` writes the grid's cells last to first (the 81 digits
reversed). `solver` and `random` write only the blank cells, each as three digits
`rcv` (row and column counted from 1, then the value: `159` = row 1, column 5 is 9), no
separator: `solver` in the order this module's solver fixes them (naked and hidden
singles to a fixpoint, then MRV search; the trail of the branch that succeeds), `random`
in a seeded random order per example (any-order AR). All map back to the grid, givens
filled in from the puzzle; a cell written twice, a given overwritten or a blank left out
does not parse (a wrong answer).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import random
from collections.abc import Sequence
from typing import Any

from dvar.tasks import register
from dvar.tasks.base import Task, parse_range

# Cell value 0 is a blank. Candidate sets are bitmasks: digit d is bit (d - 1).
_DIGIT_OF_BIT = {1 << (d - 1): d for d in range(1, 10)}


# ---------------------------------------------------------------------- geometry
class _Geometry:
    """Precomputed cell -> unit/peer tables for an N x N grid (N = box * box)."""

    def __init__(self, size: int) -> None:
        box = math.isqrt(size)
        self.size = size
        self.box = box
        self.cells = size * size
        self.full = (1 << size) - 1
        rows = [tuple(r * size + c for c in range(size)) for r in range(size)]
        cols = [tuple(r * size + c for r in range(size)) for c in range(size)]
        boxes = [
            tuple(
                (br * box + r) * size + bc * box + c for r in range(box) for c in range(box)
            )
            for br in range(box)
            for bc in range(box)
        ]
        self.units: tuple[tuple[int, ...], ...] = tuple(rows + cols + boxes)
        self.row_of = tuple(i // size for i in range(self.cells))
        self.col_of = tuple(i % size for i in range(self.cells))
        self.box_of = tuple(
            (i // size) // box * box + (i % size) // box for i in range(self.cells)
        )
        self.rows, self.cols, self.boxes = tuple(rows), tuple(cols), tuple(boxes)
        # The 20 (9x9) or 7 (4x4) cells sharing a row, column or box with each cell.
        self.peers: tuple[tuple[int, ...], ...] = tuple(
            tuple(sorted(set(rows[r] + cols[c] + boxes[b]) - {i}))
            for i, (r, c, b) in enumerate(zip(self.row_of, self.col_of, self.box_of))
        )


@functools.lru_cache(maxsize=None)
def _geometry(size: int) -> _Geometry:
    return _Geometry(size)


_SIZES = {16: 4, 81: 9}  # string length -> N (N <= 9 so that one cell is one digit)


def _geometry_for(cells: int) -> _Geometry:
    if cells not in _SIZES:
        raise ValueError(f"expected 16 (4x4) or 81 (9x9) cells, got {cells}")
    return _geometry(_SIZES[cells])


# ---------------------------------------------------------------------- propagation
def _propagate(
    geo: _Geometry, cand: list[int], queue: list[int], goal: int = -1, fixed: list[int] | None = None,
    hidden: bool = True,
) -> bool:
    """Naked + hidden singles (naked alone with hidden=False) to a fixpoint, in place.
    False on a contradiction.

    `queue` holds cells whose (single) candidate has not yet been removed from their peers.
    With a `goal` cell, stop (True) as soon as that cell is fixed: clue removal only needs
    to know whether the removed cell can be deduced again. `fixed`, if given, gets each
    cell appended when propagation fixes it (the solver order of `solver_order`).
    """
    peers, units, full = geo.peers, geo.units, geo.full
    while True:
        while queue:
            cell = queue.pop()
            bit = cand[cell]
            for peer in peers[cell]:
                mask = cand[peer]
                if mask & bit:
                    mask ^= bit
                    if not mask:
                        return False
                    cand[peer] = mask
                    if not mask & (mask - 1):
                        if peer == goal:
                            return True
                        queue.append(peer)
                        if fixed is not None:
                            fixed.append(peer)
        if not hidden:
            return True
        # Hidden singles: digits with exactly one possible cell in a unit. `once` collects
        # digits seen at least once, `twice` those seen at least twice.
        for unit in units:
            once = twice = 0
            for cell in unit:
                mask = cand[cell]
                twice |= once & mask
                once |= mask
            if once != full:
                return False  # some digit has no place left in this unit
            lonely = once & ~twice
            if lonely:
                for cell in unit:
                    mask = cand[cell]
                    hit = mask & lonely
                    if hit and mask != hit:
                        if hit & (hit - 1):
                            return False  # one cell would need two digits
                        cand[cell] = hit
                        if cell == goal:
                            return True
                        queue.append(cell)
                        if fixed is not None:
                            fixed.append(cell)
        if not queue:
            return True


def _initial(geo: _Geometry, grid: Sequence[int]) -> tuple[list[int], list[int]]:
    cand = [geo.full] * geo.cells
    queue = []
    for cell, value in enumerate(grid):
        if value:
            cand[cell] = 1 << (value - 1)
            queue.append(cell)
    return cand, queue


def _most_constrained(cand: list[int]) -> int:
    """The unfilled cell with the fewest candidates (MRV), or -1 when all are filled."""
    best, best_count = -1, 99
    for cell, mask in enumerate(cand):
        if mask & (mask - 1):
            count = mask.bit_count()
            if count < best_count:
                best, best_count = cell, count
                if count == 2:
                    break
    return best


def _search(geo: _Geometry, cand: list[int], found: list[list[int]], limit: int) -> bool:
    """Depth-first search on the most constrained cell (MRV). True once `limit` found."""
    best = _most_constrained(cand)
    if best < 0:
        found.append(cand)
        return len(found) >= limit
    mask = cand[best]
    while mask:
        bit = mask & -mask
        mask ^= bit
        child = cand[:]
        child[best] = bit
        if _propagate(geo, child, [best]) and _search(geo, child, found, limit):
            return True
    return False


def _solutions(grid: Sequence[int], limit: int) -> list[list[int]]:
    geo = _geometry_for(len(grid))
    if any(not 0 <= v <= geo.size for v in grid):
        raise ValueError(f"cell values must be 0..{geo.size}")
    cand, queue = _initial(geo, grid)
    found: list[list[int]] = []
    if limit > 0 and _propagate(geo, cand, queue):
        _search(geo, cand, found, limit)
    return found


def count_solutions(grid: Sequence[int], limit: int = 2) -> int:
    """Number of solutions of `grid` (cell values row by row, 0 = blank), capped at `limit`."""
    return len(_solutions(grid, limit))


def solve_grid(grid: Sequence[int]) -> tuple[int, ...] | None:
    """One solution of `grid` by propagation + MRV search, or None if it has none."""
    found = _solutions(grid, 1)
    return tuple(_DIGIT_OF_BIT[m] for m in found[0]) if found else None


@functools.lru_cache(maxsize=4096)
def _cached_solution(grid: tuple[int, ...]) -> tuple[int, ...] | None:
    return solve_grid(grid)


def solver_order(grid: Sequence[int]) -> list[int] | None:
    """The blank cells in the order the solver fixes them: singles to a fixpoint, then MRV
    search, each guess followed by its propagation; the trail of the first branch that
    reaches a solution (failed branches leave no trace). None if there is no solution."""
    geo = _geometry_for(len(grid))
    cand, queue = _initial(geo, grid)
    order: list[int] = []
    if not _propagate(geo, cand, queue, fixed=order):
        return None
    return _search_order(geo, cand, order)


def _search_order(geo: _Geometry, cand: list[int], order: list[int]) -> list[int] | None:
    best = _most_constrained(cand)
    if best < 0:
        return order
    mask = cand[best]
    while mask:
        bit = mask & -mask
        mask ^= bit
        child, child_order = cand[:], [*order, best]
        child[best] = bit
        if _propagate(geo, child, [best], fixed=child_order):
            found = _search_order(geo, child, child_order)
            if found is not None:
                return found
    return None


def singles_solvable(grid: Sequence[int], hidden: bool = True) -> bool:
    """True if naked + hidden singles (naked alone with hidden=False) fill the whole grid
    (no guessing)."""
    geo = _geometry_for(len(grid))
    cand, queue = _initial(geo, grid)
    return _propagate(geo, cand, queue, hidden=hidden) and all(not m & (m - 1) for m in cand)


@functools.lru_cache(maxsize=4096)
def deduction_rule(grid: tuple[int, ...]) -> str:
    """The least a solver needs to fill `grid`: "naked" (naked singles alone), "hidden"
    (naked and hidden singles to a fixpoint), "search" (a guess somewhere)."""
    if singles_solvable(grid, hidden=False):
        return "naked"
    return "hidden" if singles_solvable(grid) else "search"


# ---------------------------------------------------------------------- generation
def _random_solution(geo: _Geometry, rng: random.Random) -> list[int]:
    """A random complete grid: each diagonal box gets a random permutation (they share
    no row or column, so any choice is consistent), then a randomized MRV search with
    propagation fills the rest. Not uniform over all grids, but every grid is reachable."""
    while True:
        cand = [geo.full] * geo.cells
        queue = []
        for b in range(geo.box):
            digits = list(range(geo.size))
            rng.shuffle(digits)
            for cell, d in zip(geo.boxes[b * geo.box + b], digits):
                cand[cell] = 1 << d
                queue.append(cell)
        if _propagate(geo, cand, queue) and _random_fill(geo, cand, rng):
            return [_DIGIT_OF_BIT[m] for m in cand]


def _random_fill(geo: _Geometry, cand: list[int], rng: random.Random) -> bool:
    """Complete `cand` in place by MRV search, trying digits in random order."""
    best = _most_constrained(cand)
    if best < 0:
        return True
    mask = cand[best]
    bits = []
    while mask:
        bit = mask & -mask
        bits.append(bit)
        mask ^= bit
    rng.shuffle(bits)
    for bit in bits:
        child = cand[:]
        child[best] = bit
        if _propagate(geo, child, [best]) and _random_fill(geo, child, rng):
            cand[:] = child
            return True
    return False


class _Clues:
    """The givens during clue removal, with per-row/column/box digit masks so that
    "is the removed cell deducible in one step?" costs a few lookups."""

    def __init__(self, geo: _Geometry, solution: list[int]) -> None:
        self.geo = geo
        self.grid = list(solution)
        self.count = geo.cells
        self.row_has = [geo.full] * geo.size
        self.col_has = [geo.full] * geo.size
        self.box_has = [geo.full] * geo.size

    def remove(self, cell: int) -> int:
        geo, value = self.geo, self.grid[cell]
        bit = 1 << (value - 1)
        self.grid[cell] = 0
        self.count -= 1
        self.row_has[geo.row_of[cell]] ^= bit
        self.col_has[geo.col_of[cell]] ^= bit
        self.box_has[geo.box_of[cell]] ^= bit
        return value

    def restore(self, cell: int, value: int) -> None:
        geo, bit = self.geo, 1 << (value - 1)
        self.grid[cell] = value
        self.count += 1
        self.row_has[geo.row_of[cell]] |= bit
        self.col_has[geo.col_of[cell]] |= bit
        self.box_has[geo.box_of[cell]] |= bit

    def directly_deducible(self, cell: int, value: int) -> bool:
        """Is blank `cell` a naked or hidden single of the givens alone? Then removing it
        cannot change what singles propagation (or any solver) concludes."""
        geo, grid, bit = self.geo, self.grid, 1 << (value - 1)
        row_has, col_has, box_has = self.row_has, self.col_has, self.box_has
        row_of, col_of, box_of = geo.row_of, geo.col_of, geo.box_of
        seen = row_has[row_of[cell]] | col_has[col_of[cell]] | box_has[box_of[cell]]
        if seen | bit == geo.full:
            return True
        for unit in (geo.rows[row_of[cell]], geo.cols[col_of[cell]], geo.boxes[box_of[cell]]):
            for other in unit:
                if other == cell or grid[other]:
                    continue
                near = row_has[row_of[other]] | col_has[col_of[other]] | box_has[box_of[other]]
                if not near & bit:
                    break  # `other` could also hold the digit
            else:
                return True
        return False


def _unique_without(geo: _Geometry, grid: list[int], cell: int, value: int) -> bool:
    """With `cell` blank, is `value` its only possible digit in any solution? The puzzle
    had a unique solution before, so this is exactly "still unique"."""
    cand, queue = _initial(geo, grid)
    cand[cell] = geo.full & ~(1 << (value - 1))
    if not _propagate(geo, cand, queue):
        return True
    return not _search(geo, cand, [], 1)


def _remove_clues(
    geo: _Geometry, rng: random.Random, solution: list[int], target: int, rule: str
) -> _Clues:
    """Blank cells in random order while the puzzle keeps its property (`rule`), until
    `target` givens remain or no cell can go. Each cell is tried once: both properties
    are monotone (a superset of givens keeps them), so a cell that cannot go now never can."""
    clues = _Clues(geo, solution)
    order = list(range(geo.cells))
    rng.shuffle(order)
    for cell in order:
        if clues.count <= target:
            break
        value = clues.remove(cell)
        if clues.directly_deducible(cell, value):
            continue
        if rule == "singles":
            # The puzzle was singles-solvable with `cell` given, so it still is exactly
            # when propagation from the smaller set of givens fixes `cell` again.
            cand, queue = _initial(geo, clues.grid)
            keep = _propagate(geo, cand, queue, goal=cell) and not cand[cell] & (cand[cell] - 1)
        else:
            keep = _unique_without(geo, clues.grid, cell, value)
        if not keep:
            clues.restore(cell, value)
    return clues


# Per size: the presets' givens ranges, and the fewest givens a unique puzzle can have.
_PRESET_GIVENS = {
    9: {"default": (31, 36), "hard": (17, 26)},
    # 4x4: the spread of the public Dream 4x4 sets. Every unique 4x4 puzzle we generated
    # was singles-solvable, so there is no 4x4 `hard` preset.
    4: {"default": (4, 12)},
}
_MIN_UNIQUE_GIVENS = {9: 17, 4: 4}
_PRESET_RULE = {"default": "singles", "hard": "search"}
_MAX_ATTEMPTS = 2000  # restarts before giving up on an unreachable givens range


def _plan(options: Any) -> tuple[int, int, int, str]:
    """(size, min givens, max givens, rule) for `options`; ValueError on a bad setting.

    rule: "singles" (solvable by singles), "search" (unique, not solvable by singles),
    "unique" (unique solution only: an explicit --givens range).
    """
    size = options.size
    if size not in _PRESET_GIVENS:
        raise ValueError(f"sudoku: --size must be 4 or 9, got {size}")
    if options.preset not in _PRESET_RULE:
        raise ValueError(f"sudoku: unknown --preset {options.preset!r}; known: default, hard")
    if options.givens is None:
        presets = _PRESET_GIVENS[size]
        if options.preset not in presets:
            raise ValueError(f"sudoku: no {options.preset!r} preset for {size}x{size} grids")
        low, high = presets[options.preset]
        return size, low, high, _PRESET_RULE[options.preset]
    if options.preset != "default":
        raise ValueError(
            "sudoku: --givens replaces the preset (its only condition is a unique solution); "
            f"drop --preset {options.preset}"
        )
    low, high = options.givens
    cells = size * size
    if not _MIN_UNIQUE_GIVENS[size] <= low <= high <= cells:
        raise ValueError(
            f"sudoku: --givens must satisfy {_MIN_UNIQUE_GIVENS[size]} <= MIN <= MAX <= {cells} "
            f"for {size}x{size} (no unique puzzle has fewer than {_MIN_UNIQUE_GIVENS[size]}), "
            f"got {low}:{high}"
        )
    return size, low, high, "unique"


def generate_puzzle(
    rng: random.Random, size: int, low: int, high: int, rule: str
) -> tuple[list[int], list[int]]:
    """(puzzle, solution) with low..high givens obeying `rule` (see `_plan`).

    A random solution grid, a target givens count drawn uniformly in low..high, then clue
    removal in random order. If removal gets stuck above `high`, or a "search" puzzle is
    still singles-solvable, start again with a new grid and a new target.

    Removal rarely gets far below ~24 givens, so low targets mostly end where it gets
    stuck. Measured givens, 500 `hard` puzzles: 21: 1, 22: 10, 23: 52, 24: 170, 25: 173,
    26: 94 (26 is rarer because such puzzles are often still singles-solvable). The
    `default` preset reaches every target: 31..36 come out uniform.
    """
    geo = _geometry(size)
    removal_rule = "singles" if rule == "singles" else "unique"
    for _ in range(_MAX_ATTEMPTS):
        solution = _random_solution(geo, rng)
        target = rng.randint(low, high)
        clues = _remove_clues(geo, rng, solution, target, removal_rule)
        if clues.count > high:
            continue
        if rule == "search" and singles_solvable(clues.grid):
            continue
        return clues.grid, solution
    raise RuntimeError(
        f"sudoku: no {size}x{size} puzzle with {low}..{high} givens ({rule}) after "
        f"{_MAX_ATTEMPTS} attempts; widen the givens range"
    )


# ---------------------------------------------------------------------- the task
@dataclasses.dataclass(frozen=True)
class SudokuPuzzle:
    """A parsed puzzle: N x N cell values row by row, 0 = blank."""

    size: int
    grid: tuple[int, ...]

    @property
    def givens(self) -> int:
        return sum(1 for v in self.grid if v)


_CELL_VALUE = {str(d): d for d in range(10)} | {".": 0}


def _grid_values(puzzle: SudokuPuzzle, answer: str) -> list[int] | None:
    """The answer's cell values if it is a full grid of digits 1..N, else None."""
    if not isinstance(answer, str):
        return None
    text = answer.strip()
    geo = _geometry(puzzle.size)
    if len(text) != geo.cells:
        return None
    values = []
    for char in text:
        value = _CELL_VALUE.get(char, 0)  # blanks and foreign characters alike are wrong
        if not 1 <= value <= geo.size:
            return None
        values.append(value)
    return values


def _is_solution(puzzle: SudokuPuzzle, answer: str) -> bool:
    values = _grid_values(puzzle, answer)
    if values is None:
        return False
    geo = _geometry(puzzle.size)
    if any(given and given != value for given, value in zip(puzzle.grid, values)):
        return False
    # All values are in 1..N, so N distinct values in a unit is a permutation of 1..N.
    return all(len({values[cell] for cell in unit}) == geo.size for unit in geo.units)


@register
class SudokuTask(Task):
    name = "sudoku"
    summary = "Sudoku 9x9 (or 4x4): 81 digits with 0 for blanks -> the 81-digit solution"
    # sample(random.Random(0), make_options()) with the generator as written.
    example = {
        "input": "000000039053090000100200400020310097016072000900008120000600304231040900640107000",
        "output": "862451739453796281197283465528314697316972548974568123785629314231845976649137852",
    }

    @dataclasses.dataclass(frozen=True)
    class Options:
        preset: str = dataclasses.field(
            default="default",
            metadata={
                "help": "default: 31-36 givens, solvable by singles alone (the "
                "1M-sudoku collection); hard: 17-26 givens, needs search"
            },
        )
        givens: tuple[int, int] | None = dataclasses.field(
            default=None,
            metadata={
                "parse": parse_range,
                "help": "MIN:MAX givens instead of the preset; a unique solution is "
                "then the only condition",
            },
        )
        size: int = dataclasses.field(default=9, metadata={"help": "grid side, 9 or 4"})

    def prepare(self, options: Any) -> None:
        _plan(options)

    def sample(self, rng: random.Random, options: Any) -> dict[str, Any]:
        puzzle, solution = generate_puzzle(rng, *_plan(options))
        return {"input": "".join(map(str, puzzle)), "output": "".join(map(str, solution))}

    def parse_input(self, text: str) -> SudokuPuzzle:
        text = text.strip()
        geo = _geometry_for(len(text))
        grid = []
        for position, char in enumerate(text):
            value = _CELL_VALUE.get(char)
            if value is None or value > geo.size:
                raise ValueError(
                    f"sudoku: cell {position} is {char!r}; expected 0 or . (blank) or 1..{geo.size}"
                )
            grid.append(value)
        return SudokuPuzzle(geo.size, tuple(grid))

    def input_from_record(self, record: dict[str, Any]) -> str:
        # Our data files say "input"; the Kaggle CSV layout says "quizzes", the public
        # test sets in shared/testsets say "puzzle".
        for key in ("input", "quizzes", "puzzle"):
            value = record.get(key)
            if isinstance(value, str):
                return value
        raise ValueError('expected a string field "input" (or "quizzes" / "puzzle")')

    def format_input(self, problem: SudokuPuzzle) -> str:
        return "".join(map(str, problem.grid))

    def solve(self, problem: SudokuPuzzle) -> str | None:
        solution = solve_grid(problem.grid)
        return None if solution is None else "".join(map(str, solution))

    def judge(self, problem: SudokuPuzzle, answer: str) -> dict[str, bool]:
        return {"correct": _is_solution(problem, answer)}

    def well_formed(self, problem: SudokuPuzzle, answer: str) -> bool:
        """A full grid of digits 1..N, valid or not."""
        return _grid_values(problem, answer) is not None

    def breakdown(self, problem: SudokuPuzzle) -> dict[str, int | str]:
        return {"givens": problem.givens}

    @property
    def extra_breakdowns(self) -> dict[str, Any]:
        """`rule`: the least deduction that solves the puzzle (`deduction_rule`: naked
        singles, hidden singles too, or search), how far beyond "one candidate left" a
        model must reason."""
        return {"rule": lambda problem: deduction_rule(problem.grid)}

    partial_credit_label = "blank cells right"

    def partial_credit(self, problem: SudokuPuzzle, answer: str) -> float | None:
        """The share of the puzzle's blank cells whose character in `answer` is the
        solution's digit (a short or malformed answer scores its missing cells wrong);
        None for a puzzle without blanks or without a solution. The solution is the
        solver's: the only one for generated and public puzzles, which are unique."""
        blanks = [cell for cell, value in enumerate(problem.grid) if not value]
        solution = _cached_solution(problem.grid)
        if not blanks or solution is None:
            return None
        text = answer.strip() if isinstance(answer, str) else ""
        right = sum(cell < len(text) and text[cell] == str(solution[cell]) for cell in blanks)
        return right / len(blanks)

    # ------------------------------------------------------------------ analysis
    def answer_length(self, problem: SudokuPuzzle) -> int:
        return len(problem.grid)

    def answer_grid(self, problem: SudokuPuzzle) -> tuple[int, int]:
        return problem.size, problem.size

    def given_cells(self, problem: SudokuPuzzle) -> list[bool]:
        return [bool(value) for value in problem.grid]

    # ------------------------------------------------------------------ answer orders
    answer_orders = ("forward", "reverse", "solver", "random")

    def _write_order(self, problem: SudokuPuzzle, answer: str, order: str, rng: Any) -> str:
        if not _is_solution(problem, answer):
            raise ValueError("sudoku: the answer is not a solution of the puzzle")
        if order == "reverse":
            return answer.strip()[::-1]
        if order == "solver":
            cells = solver_order(problem.grid)
            if cells is None:
                raise ValueError("sudoku: the puzzle has no solution; no solver order")
        else:  # random
            cells = [cell for cell, value in enumerate(problem.grid) if not value]
            rng.shuffle(cells)
        size = problem.size
        return "".join(f"{cell // size + 1}{cell % size + 1}{answer[cell]}" for cell in cells)

    def _read_order(self, problem: SudokuPuzzle, text: str, order: str) -> str:
        text = text.strip()
        if order == "reverse":
            return text[::-1]
        size = problem.size
        if len(text) % 3 or not text.isascii() or not text.isdigit():
            raise ValueError("sudoku: expected cells as three digits 'rcv' each")
        grid = list(problem.grid)
        for index in range(0, len(text), 3):
            row, col, value = (int(ch) for ch in text[index : index + 3])
            if not (1 <= row <= size and 1 <= col <= size and 1 <= value <= size):
                raise ValueError(f"sudoku: cell {text[index : index + 3]!r} is out of range")
            cell = (row - 1) * size + col - 1
            if grid[cell]:
                raise ValueError(f"sudoku: cell {text[index : index + 3]!r} is a given or written twice")
            grid[cell] = value
        if not all(grid):
            raise ValueError("sudoku: some blank cells were not written")
        return "".join(map(str, grid))

    def reference_lengths(self, options: Any) -> tuple[int, int]:
        # One token per cell: input SEP output EOS, and output EOS for AR decoding.
        cells = options.size * options.size
        return 2 * cells + 2, cells + 1
