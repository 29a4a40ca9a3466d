"""The task interface: every problem family is one `Task` subclass in one file.

A task owns everything about its problems and nothing about models:
- its text format (`parse_input`, the gold `output` written by `sample`/`solve`),
- a seeded generator (`sample`, driven by `dvar.tasks.generate`),
- a classical solver (`solve`),
- a verifier that judges any answer text by the problem's rules (`judge`),
- a breakdown of its problems computed from the input alone (`breakdown`: a mapping such
  as `{"pd": 3}`; `group` is its output form `"pd=3"`, see `dvar.metrics.format_group`),
- the orders its answer can be written in (`answer_orders`, `to_order`, `from_order`;
  SPEC §9): `forward` is the task's own format, the others serialise the same answer's
  units (path nodes or edges, Sudoku cells, Countdown equations, SAT literals) in
  another order, and map back to the task's format before the verifier judges them;
- what analysis needs to know about an answer's layout (`part_separator`, `answer_grid`,
  `given_cells`, `direction_units`) and further named breakdowns (`extra_breakdowns`),
  all optional, so that `dvar analyze` and the studies name no task.

Generator knobs are a dataclass (`Task.Options`); each field becomes a `dvar generate`
flag (`--field-name`), with the paper's settings as defaults. Field metadata may carry
`help`, `flag` (another flag name) and `parse` (a str -> value converter).

Adding a task means adding one module under `dvar/tasks/` that defines a subclass
decorated with `@register`; the CLI and the shared tests pick it up. The contract, member
by member, is docs/adding-a-task.md; docs/task_template.py is a complete small task.
"""

from __future__ import annotations

import abc
import argparse
import dataclasses
import random
from typing import Any, Callable, ClassVar

from dvar.config import ConfigError

# SPEC §9. forward: the task's own format; reverse: its units last to first; solver: each
# unit (with its position) in the order the task's classical solver fixes it; random: each
# unit with its position in a seeded random order per example (any-order AR).
ANSWER_ORDERS = ("forward", "reverse", "solver", "random")


class Task(abc.ABC):
    """One problem family. Instances are stateless; create them with `get_task(name)`."""

    name: ClassVar[str]
    summary: ClassVar[str]
    # One real example, as it appears in a data file (docs and tests use it).
    example: ClassVar[dict[str, str]]

    # The answer orders this task can write (SPEC §9); `forward` always comes first.
    answer_orders: ClassVar[tuple[str, ...]] = ("forward", "reverse")

    @dataclasses.dataclass(frozen=True)
    class Options:
        """Generator knobs; subclasses replace this with their own dataclass."""

    # ------------------------------------------------------------------ generation
    @abc.abstractmethod
    def sample(self, rng: random.Random, options: Any) -> dict[str, Any]:
        """Draw one problem with its gold answer: `{"input": str, "output": str, ...}`.

        Must use only `rng` for randomness so that generation is reproducible.
        Extra keys are allowed (kept in the data file, never required by readers).
        """

    def prepare(self, options: Any) -> None:
        """Check options before generation starts; raise ValueError on a bad setting."""

    # ------------------------------------------------------------------ format
    @abc.abstractmethod
    def parse_input(self, text: str) -> Any:
        """Parse an input string into a problem object; ValueError if malformed."""

    def input_from_record(self, record: dict[str, Any]) -> str:
        """The input string of a data record. Tasks may accept other public layouts."""
        value = record.get("input")
        if not isinstance(value, str):
            raise ValueError('expected a string field "input"')
        return value

    def canonical(self, problem: Any) -> str:
        """A key equal for two inputs that pose the same problem (for decontamination)."""
        return self.format_input(problem)

    @abc.abstractmethod
    def format_input(self, problem: Any) -> str:
        """Render a problem back to its input string."""

    # ------------------------------------------------------------------ solving
    @abc.abstractmethod
    def solve(self, problem: Any) -> str | None:
        """A correct answer string by classical search, or None if there is none."""

    # ------------------------------------------------------------------ judging
    @abc.abstractmethod
    def judge(self, problem: Any, answer: str) -> dict[str, bool]:
        """Score untrusted answer text against the problem's rules.

        Returns `{"correct": bool, ...}`; extra keys are further accuracies reported
        beside the main one (e.g. countdown's `"reference"`). Must never raise, whatever
        the text, and never execute any of it.
        """

    def verify(self, problem: Any, answer: str) -> bool:
        return self.judge(problem, answer)["correct"]

    @abc.abstractmethod
    def well_formed(self, problem: Any, answer: str) -> bool:
        """Whether untrusted answer text has the answer's form for this problem, right or
        wrong (the model learned the format); never raises."""

    @abc.abstractmethod
    def breakdown(self, problem: Any) -> dict[str, int | str]:
        """What accuracy is broken down by, from the input alone (e.g. `{"pd": 3}`): field
        names lower_snake_case, values ints or strings without `=` and `,`."""

    # What `partial_credit` measures, as a report's label ("" where the task has none).
    partial_credit_label = ""

    def partial_credit(self, problem: Any, answer: str) -> float | None:
        """The share of the answer's units that are right, in [0, 1], for untrusted text:
        how far a model that solves none of the problems has got (Sudoku: the blank cells
        filled with the solution's digit). None where the task has no such measure (the
        default). Must never raise."""
        return None

    def answer_length(self, problem: Any) -> int | None:
        """The length in characters of every answer to `problem` in the task's own format,
        where the input fixes it (sudoku: one character per cell), else None (the
        default). Decoders set `known_length` use it: no answer ends early or runs on."""
        return None

    def chance(self, problem: Any) -> float | None:
        """The probability that a uniformly random answer of the answer's form is correct
        (a baseline reports state beside accuracy), or None where the task does not say."""
        return None

    def group(self, problem: Any) -> str:
        """The breakdown as metrics.json and predictions.jsonl write it (`"pd=3"`)."""
        from dvar.metrics import format_group

        return format_group(self.breakdown(problem))

    @property
    def extra_breakdowns(self) -> dict[str, Callable[[Any], int | str]]:
        """Further breakdowns a study may group predictions by, beside `breakdown`: name ->
        a function of the problem giving an int or a string (path: `rpd`, the goal-side
        planning distance). Default: none."""
        return {}

    # ------------------------------------------------------------------ analysis
    # How an answer is laid out, for `dvar analyze`. The defaults say "characters only":
    # no parts, no grid, no given cells, no direction.
    def part_separator(self, problem: Any) -> str | None:
        """The text between the parts of an answer to `problem`, in every order the task
        writes (path's edges `/`, countdown's equations `,`): analysis reports loss,
        accuracy and decoding step per part. None: the parts are the characters, which the
        per-position analysis already covers."""
        return None

    def answer_grid(self, problem: Any) -> tuple[int, int] | None:
        """(rows, columns) when the answer in the task's own format is a grid, one
        character per cell row by row (sudoku: (9, 9)), for plotting; None otherwise."""
        return None

    def given_cells(self, problem: Any) -> list[bool] | None:
        """Per character of the answer in the task's own format, whether the input already
        fixes it (sudoku: the givens), so analysis can look at the rest alone; None: no
        such split."""
        return None

    def direction_units(self, problem: Any, answer: str) -> list[tuple[int, int]] | None:
        """Character spans of the units of `answer` (untrusted text in the task's own
        format) that the input does not give away, from the start side to the goal side:
        analysis asks whether a model fixed the goal-side half first. None: no direction."""
        return None

    # ------------------------------------------------------------------ answer orders
    def check_order(self, order: str) -> None:
        """ValueError naming the task and its orders unless it can write `order`."""
        if order not in self.answer_orders:
            known = "" if order in ANSWER_ORDERS else f" (orders: {', '.join(ANSWER_ORDERS)})"
            raise ConfigError(f"task {self.name} has no answer order {order!r}{known}; "
                             f"{self.name} has: {', '.join(self.answer_orders)}")

    def to_order(self, problem: Any, answer: str, order: str, rng: random.Random | None = None) -> str:
        """The answer `answer` (the task's own format) written in `order`.

        `random` draws its order from `rng` (required: seed it per example). ValueError
        if `answer` is not a well-formed answer to `problem` or the order is unknown.
        """
        self.check_order(order)
        if order == "forward":
            return answer
        if order == "random" and rng is None:
            raise ValueError("the random answer order needs a seeded rng")
        return self._write_order(problem, answer, order, rng)

    def from_order(self, problem: Any, text: str, order: str) -> str:
        """Untrusted `text` written in `order` mapped back to the task's own format.

        ValueError if it does not parse as an answer in that order (a wrong answer to the
        caller, never a crash); the verifier then judges what comes back.
        """
        self.check_order(order)
        if order == "forward":
            return text
        return self._read_order(problem, text, order)

    def _write_order(self, problem: Any, answer: str, order: str, rng: random.Random | None) -> str:
        raise NotImplementedError(f"{self.name}: {order} order")

    def _read_order(self, problem: Any, text: str, order: str) -> str:
        raise NotImplementedError(f"{self.name}: {order} order")

    def reference_lengths(self, options: Any) -> tuple[int, int]:
        """The reference's (cutoff_len, AR max_new_tokens) for data made with `options`."""
        raise NotImplementedError(f"{self.name}: no reference lengths")

    # ------------------------------------------------------------------ options / CLI
    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        """Add one `--flag` per `Options` field to a `dvar generate TASK` parser."""
        for field in dataclasses.fields(cls.Options):
            meta = field.metadata
            flag = meta.get("flag", "--" + field.name.replace("_", "-"))
            kind = meta.get("parse") or _scalar_type(field.default)
            parser.add_argument(
                flag,
                dest=field.name,
                type=kind,
                default=None,
                help=f"{meta.get('help', field.name)} (default: {_show(field.default)})",
            )

    @classmethod
    def options_from_args(cls, args: argparse.Namespace) -> Any:
        given = {
            f.name: getattr(args, f.name)
            for f in dataclasses.fields(cls.Options)
            if getattr(args, f.name, None) is not None
        }
        return cls.make_options(**given)

    @classmethod
    def make_options(cls, **overrides: Any) -> Any:
        """Options with the paper's defaults, then `overrides`; unknown names are an error."""
        known = {f.name for f in dataclasses.fields(cls.Options)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ValueError(f"{cls.name}: unknown option(s) {unknown}; known: {sorted(known)}")
        return cls.Options(**overrides)


def reverse_units(text: str, separator: str, flip=None) -> str:
    """`text`'s units (split by `separator`; characters if it is empty) last to first,
    each passed through `flip` if given. Its own inverse when `flip` is."""
    units = text.split(separator) if separator else list(text)
    if flip is not None:
        units = [flip(unit) for unit in units]
    return separator.join(reversed(units))


def unit_spans(text: str, separator: str) -> list[tuple[int, int]]:
    """Character spans of the units of `text` split by `separator`:
    `5,6/6,11` with `/` -> [(0, 3), (4, 8)]."""
    spans, start = [], 0
    for piece in text.split(separator):
        spans.append((start, start + len(piece)))
        start += len(piece) + len(separator)
    return spans


def _scalar_type(default: Any):
    if isinstance(default, bool):
        return _parse_bool
    if isinstance(default, (int, float, str)):
        return type(default)
    return str


def _parse_bool(text: str) -> bool:
    lowered = text.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true/false, got {text!r}")


def _show(value: Any) -> str:
    if isinstance(value, tuple):
        return ":".join(str(v) for v in value)
    return str(value)


def parse_range(text: str) -> tuple[int, int]:
    """`"31:36"` -> (31, 36); `"34"` -> (34, 34). Used for MIN:MAX flags."""
    parts = text.split(":")
    try:
        if len(parts) == 1:
            low = high = int(parts[0])
        elif len(parts) == 2:
            low, high = int(parts[0]), int(parts[1])
        else:
            raise ValueError
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected MIN:MAX, got {text!r}") from None
    if low > high:
        raise argparse.ArgumentTypeError(f"empty range {text!r}")
    return low, high
