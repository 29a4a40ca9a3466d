"""Every data set of the paper at its sizes: `dvar generate paper --out DIR`.

Writes DIR/NAME/{train,test}.jsonl (countdown also test_ood.jsonl) and DIR/manifest.json
with sizes, options, seeds, breakdown distributions and generation times. Test sets are
drawn first, without repeats; training sets never contain a test problem (compared by
`Task.canonical`, so a reordered countdown input still counts as the same problem).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from dvar.config import ConfigError
from dvar.data import write_jsonl
from dvar.generation import generate, group_counts
from dvar.tasks import get_task

TEST_SIZE = 1000


@dataclass(frozen=True)
class PaperDataset:
    name: str
    task: str
    train_size: int
    options: dict[str, Any] = field(default_factory=dict)
    # test file stem -> option overrides on top of `options`
    tests: dict[str, dict[str, Any]] = field(default_factory=lambda: {"test": {}})


def _countdown(n: int) -> PaperDataset:
    return PaperDataset(
        f"cd{n}", "countdown", 500_000, {"numbers": n, "split": "train"},
        {"test": {}, "test_ood": {"split": "ood"}},
    )


DATASETS = (
    PaperDataset("path", "path", 50_000),
    _countdown(3),
    _countdown(4),
    _countdown(5),
    PaperDataset("sudoku", "sudoku", 100_000),
    PaperDataset("sat5", "sat", 50_000, {"vars": 5}),
    PaperDataset("sat7", "sat", 50_000, {"vars": 7}),
    PaperDataset("sat9", "sat", 50_000, {"vars": 9}),
)


def dataset_names() -> list[str]:
    return [d.name for d in DATASETS]


def generate_paper(
    out_dir: str | Path, seed: int = 0, scale: float = 1.0, workers: int = 1, only: list[str] = ()
) -> dict[str, Any]:
    """Generate the paper's data sets; returns (and writes) the manifest."""
    unknown = sorted(set(only) - set(dataset_names()))
    if unknown:
        raise ConfigError(f"unknown data set(s) {unknown}; known: {dataset_names()}")
    out_dir = Path(out_dir)
    manifest: dict[str, Any] = {"seed": seed, "scale": scale, "datasets": {}}
    total_start = time.perf_counter()
    for dataset in DATASETS:
        if only and dataset.name not in only:
            continue
        task = get_task(dataset.task)
        entry: dict[str, Any] = {"task": task.name, "files": {}}
        test_keys: set[str] = set()
        # Seeds: tests use 2*seed+1, training 2*seed, so no two files share a stream.
        jobs = [(stem, dataset.options | extra, max(1, round(TEST_SIZE * scale)), 2 * seed + 1)
                for stem, extra in dataset.tests.items()]
        jobs.append(("train", dataset.options, max(1, round(dataset.train_size * scale)), 2 * seed))
        for stem, option_dict, size, file_seed in jobs:
            options = task.make_options(**option_dict)
            is_test = stem != "train"
            start = time.perf_counter()
            with tqdm(total=size, desc=f"{dataset.name}/{stem}", unit="ex", leave=False) as bar:
                rows = generate(
                    task, size, file_seed, options,
                    exclude=() if is_test else test_keys, unique=is_test, workers=workers,
                    on_progress=lambda done: bar.update(done - bar.n),
                )
            if is_test:
                test_keys.update(task.canonical(task.parse_input(r["input"])) for r in rows)
            path = out_dir / dataset.name / f"{stem}.jsonl"
            write_jsonl(path, rows)
            seconds = time.perf_counter() - start
            entry["files"][stem] = {
                "path": str(path.relative_to(out_dir)),
                "n": len(rows),
                "seed": file_seed,
                "options": asdict(options),
                "seconds": round(seconds, 2),
                "groups": group_counts(task, rows),
            }
            print(f"{dataset.name}/{stem}: {len(rows)} problems in {seconds:.1f} s")
        manifest["datasets"][dataset.name] = entry
    manifest["seconds"] = round(time.perf_counter() - total_start, 2)
    manifest["workers"] = workers
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    print(f"wrote {out_dir}/ in {manifest['seconds']:.1f} s with {workers} worker(s)")
    return manifest
