"""Sorting (`sorting`): write the input's numbers in ascending order. A TEMPLATE for a new
task (docs/adding-a-task.md): copy it to `dvar/tasks/NAME.py`, rename the class, `name`
and the format, and keep every method. It is not registered until it lies in dvar/tasks/.

The input is 2+ comma-separated non-negative integers; the output is the same numbers,
ascending:

    input:  52,7,31,7        output: 7,7,31,52

The breakdown key is the count of numbers, `numbers=4` here. The verifier checks the
rules (the answer is a permutation of the input's numbers and never decreases), not a
stored answer, so any correct answer passes.

Answer orders (SPEC §9): `reverse` writes the numbers largest first (`52,31,7,7`) and is
mapped back before judging.
"""

from __future__ import annotations

import dataclasses
import random
import re
from typing import Any, ClassVar

from dvar.tasks import register
from dvar.tasks.base import Task, reverse_units

_NUMBERS = re.compile(r"(?:0|[1-9][0-9]*)(?:,(?:0|[1-9][0-9]*))+")  # no signs, spaces, leading zeros


@dataclasses.dataclass(frozen=True)
class SortingProblem:
    numbers: tuple[int, ...]


def _numbers(text: str) -> list[int] | None:
    """The numbers of `text` if it is 2+ comma-separated non-negative integers, else None."""
    if not isinstance(text, str) or _NUMBERS.fullmatch(text.strip()) is None:
        return None
    try:
        return [int(part) for part in text.strip().split(",")]
    except ValueError:  # over Python's int() digit limit
        return None


@register
class SortingTask(Task):
    """Sort a few numbers (a template for new tasks)."""

    name: ClassVar[str] = "sorting"
    summary: ClassVar[str] = "sorting: write the input's numbers in ascending order"
    # sample(random.Random(0), make_options()): tests/test_tasks_common.py checks it.
    example: ClassVar[dict[str, str]] = {"input": "97,53,5,33,65,62", "output": "5,33,53,62,65,97"}
    answer_orders: ClassVar[tuple[str, ...]] = ("forward", "reverse")

    @dataclasses.dataclass(frozen=True)
    class Options:  # each field is a `dvar generate sorting --flag`
        min_count: int = dataclasses.field(default=3, metadata={"help": "fewest numbers"})
        max_count: int = dataclasses.field(default=8, metadata={"help": "most numbers"})
        max_value: int = dataclasses.field(default=99, metadata={"help": "numbers are drawn from 0..max_value"})

    # ------------------------------------------------------------------ generation
    def prepare(self, options: Options) -> None:
        if not 2 <= options.min_count <= options.max_count:
            raise ValueError("sorting: need 2 <= --min-count <= --max-count")
        if options.max_value < 0:
            raise ValueError("sorting: --max-value must be >= 0")

    def sample(self, rng: random.Random, options: Options) -> dict[str, Any]:
        self.prepare(options)
        count = rng.randint(options.min_count, options.max_count)
        problem = SortingProblem(tuple(rng.randint(0, options.max_value) for _ in range(count)))
        return {"input": self.format_input(problem), "output": self.solve(problem)}

    # ------------------------------------------------------------------ format
    def parse_input(self, text: str) -> SortingProblem:
        numbers = _numbers(text)
        if numbers is None:
            raise ValueError(f"sorting: expected 2+ comma-separated non-negative integers, got {text[:80]!r}")
        return SortingProblem(tuple(numbers))

    def format_input(self, problem: SortingProblem) -> str:
        return ",".join(map(str, problem.numbers))

    def canonical(self, problem: SortingProblem) -> str:
        # The same numbers in another order pose the same problem (decontamination).
        return ",".join(map(str, sorted(problem.numbers)))

    # ------------------------------------------------------------------ solving / judging
    def solve(self, problem: SortingProblem) -> str | None:
        return ",".join(map(str, sorted(problem.numbers)))

    def judge(self, problem: SortingProblem, answer: str) -> dict[str, bool]:
        numbers = _numbers(answer)
        correct = numbers is not None and numbers == sorted(problem.numbers)
        return {"correct": correct}

    def well_formed(self, problem: SortingProblem, answer: str) -> bool:
        """As many numbers as the input has, sorted or not."""
        numbers = _numbers(answer)
        return numbers is not None and len(numbers) == len(problem.numbers)

    def breakdown(self, problem: SortingProblem) -> dict[str, int | str]:
        return {"numbers": len(problem.numbers)}

    def reference_lengths(self, options: Options) -> tuple[int, int]:
        # One token per character; a sequence is input SEP output EOS.
        longest = options.max_count * (len(str(options.max_value)) + 1) - 1
        return 2 * longest + 2, longest + 1

    # ------------------------------------------------------------------ answer orders
    def _write_order(self, problem: SortingProblem, answer: str, order: str, rng: Any) -> str:
        if not self.verify(problem, answer):
            raise ValueError("sorting: the answer is not the input sorted")
        return reverse_units(answer.strip(), ",")  # reverse, the only order besides forward

    def _read_order(self, problem: SortingProblem, text: str, order: str) -> str:
        return reverse_units(text.strip(), ",")

    # ------------------------------------------------------------------ analysis
    def part_separator(self, problem: SortingProblem) -> str:
        return ","  # `dvar analyze` reports loss and accuracy per number
