"""Reading and writing data and prediction files.

Data files are JSON Lines, one problem per line: `{"input": str, "output": str, ...}`
(SPEC §1). Sudoku may also come as the Kaggle CSV (`quizzes,solutions`, or
`puzzle,solution` as in the public test sets). Any malformed line is a `DataError` that
names the file and line; nothing is skipped silently.
"""

from __future__ import annotations

import csv
import json
import os
import random
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from dvar.errors import DvarError
from dvar.tasks import Task

# CSV column names accepted for inputs and gold outputs.
_CSV_INPUT = ("input", "quizzes", "puzzle", "quiz")
_CSV_OUTPUT = ("output", "solutions", "solution")


class DataError(DvarError, ValueError):
    """A malformed data or prediction file; the message names the file and line."""

    def __init__(self, path: str | os.PathLike, line: int | None, message: str):
        where = f"{path}:{line}" if line is not None else str(path)
        super().__init__(f"{where}: {message}")
        self.path = str(path)
        self.line = line
        self.message = message

    def __reduce__(self):  # picklable: a study worker's error reaches the parent intact
        return type(self), (self.path, self.line, self.message)


@dataclass
class Example:
    """One problem of a data file, with where it came from."""

    line: int
    input: str
    output: str | None
    problem: Any
    record: dict[str, Any]


def read_records(path: str | os.PathLike) -> list[tuple[int, dict[str, Any]]]:
    """(line number, object) pairs of a JSONL or CSV file; blank JSONL lines are skipped."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, None, "no such file")
    if path.suffix.lower() == ".csv":
        return _read_csv(path)
    records = []
    with path.open(encoding="utf-8") as handle:
        for number, text in enumerate(handle, start=1):
            if not text.strip():
                continue
            try:
                obj = json.loads(text)
            except json.JSONDecodeError as err:
                raise DataError(path, number, f"not valid JSON ({err.msg})") from None
            if not isinstance(obj, dict):
                raise DataError(path, number, "expected a JSON object")
            records.append((number, obj))
    return records


def _read_csv(path: Path) -> list[tuple[int, dict[str, Any]]]:
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        header = [name.strip().lower() for name in (reader.fieldnames or [])]
        in_col = next((n for n in _CSV_INPUT if n in header), None)
        out_col = next((n for n in _CSV_OUTPUT if n in header), None)
        if in_col is None:
            raise DataError(path, 1, f"CSV header needs one of {_CSV_INPUT}, got {header}")
        records = []
        for number, row in enumerate(reader, start=2):
            row = {k.strip().lower(): (v or "").strip() for k, v in row.items() if k}
            record: dict[str, Any] = {"input": row[in_col]}
            if out_col is not None and row.get(out_col):
                record["output"] = row[out_col]
            records.append((number, record))
        return records


def read_examples(path: str | os.PathLike, task: Task, need_output: bool = False) -> list[Example]:
    """Parse every problem of a data file with `task`; errors name file and line."""
    examples = []
    for number, record in read_records(path):
        try:
            text = task.input_from_record(record)
            problem = task.parse_input(text)
        except ValueError as err:
            raise DataError(path, number, f"bad {task.name} input: {err}") from None
        output = record.get("output")
        if output is not None and not isinstance(output, str):
            raise DataError(path, number, 'field "output" must be a string')
        if need_output and output is None:
            raise DataError(path, number, 'missing gold "output"')
        examples.append(Example(number, text, output, problem, record))
    if not examples:
        raise DataError(path, None, "no examples")
    return examples


def written_answers(task: Task, examples: list[Example], order: str, seed: int, source: str) -> list[str]:
    """Each gold output written in `order` (SPEC §9); `random` draws one order per example
    from (seed, line), so the orders depend on the seed only. A gold that the task cannot
    write in that order is an error naming its file and line."""
    answers = []
    for ex in examples:
        # Seeding a Random from a string costs ~8 us: only the random order draws from it.
        rng = random.Random(f"answer-order:{seed}:{ex.line}") if order == "random" else None
        try:
            answers.append(task.to_order(ex.problem, ex.output, order, rng))
        except ValueError as err:
            raise DataError(source, ex.line, f"cannot write the gold answer in {order} order: {err}") from None
    return answers


def read_predictions(path: str | os.PathLike) -> list[str]:
    """The `predict` strings of a predictions file, in order.

    A line that is not a JSON object with a string `predict` field is an error (the files
    would be misaligned); the text inside `predict` is untrusted and only ever parsed by a
    task's verifier, where malformed text is simply a wrong answer.
    """
    predictions = []
    for number, record in read_records(path):
        value = record.get("predict")
        if not isinstance(value, str):
            raise DataError(path, number, 'expected a string field "predict"')
        predictions.append(value)
    return predictions


def write_jsonl(path: str | os.PathLike, rows: Iterable[dict[str, Any]]) -> int:
    """Write rows atomically (temporary file, then rename); returns the row count."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            for row in rows:
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")
                count += 1
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return count
