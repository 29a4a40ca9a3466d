"""Seeded, parallel data generation on top of a task's `sample`.

Problems are drawn in fixed-size shards; shard k uses its own `random.Random` seeded
from (task, seed, k), and shards are merged in order. The result therefore depends only
on (task, options, n, seed, exclusions), never on the number of worker processes.
"""

from __future__ import annotations

import multiprocessing
import os
import random
from collections import Counter
from typing import Any, Callable, Iterable

from dvar.metrics import group_sort_key
from dvar.tasks import Task

SHARD_SIZE = 1000


def _draw_shard(job: tuple[Task, Any, int, int, int]) -> list[tuple[str, dict[str, Any]]]:
    task, options, seed, shard, size = job
    rng = random.Random(f"{task.name}:{seed}:{shard}")
    rows = []
    for _ in range(size):
        row = task.sample(rng, options)
        rows.append((task.canonical(task.parse_input(row["input"])), row))
    return rows


def default_workers() -> int:
    """The CPU cores this process may use."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def generate(
    task: Task,
    n: int,
    seed: int,
    options: Any = None,
    *,
    exclude: Iterable[str] = (),
    unique: bool = False,
    workers: int = 1,
    on_progress: Callable[[int], None] | None = None,
) -> list[dict[str, Any]]:
    """Draw `n` problems with gold answers.

    exclude: canonical keys (`task.canonical`) that must not appear (decontamination).
    unique: also drop repeats within the result (test sets).
    """
    if n < 0:
        raise ValueError("n must be >= 0")
    options = task.make_options() if options is None else options
    task.prepare(options)
    excluded = set(exclude)
    seen: set[str] = set()
    rows: list[dict[str, Any]] = []
    # Small requests draw small shards; since a shard is one random stream, the first
    # n problems of a file are the same whatever n is (when nothing is excluded).
    shard_size = min(SHARD_SIZE, max(n, 1))
    shard = 0
    dry_shards = 0
    pool = multiprocessing.get_context("fork").Pool(workers) if workers > 1 else None
    try:
        while len(rows) < n:
            missing = n - len(rows)
            wanted = -(-missing // shard_size) + (1 if excluded or unique else 0)
            batch = max(1, min(wanted, 4 * workers))
            jobs = [(task, options, seed, shard + i, shard_size) for i in range(batch)]
            shard += batch
            results = pool.imap(_draw_shard, jobs) if pool else map(_draw_shard, jobs)
            for drawn in results:
                kept_before = len(rows)
                for key, row in drawn:
                    if len(rows) == n:
                        break
                    if key in excluded or (unique and key in seen):
                        continue
                    seen.add(key)
                    rows.append(row)
                dry_shards = dry_shards + 1 if len(rows) == kept_before else 0
                if on_progress:
                    on_progress(len(rows))
                if len(rows) == n:
                    break
            if dry_shards >= 20 and len(rows) < n:
                raise RuntimeError(
                    f"{task.name}: only {len(rows)} of {n} problems after exclusions; "
                    "the problem space is too small for this size"
                )
    finally:
        if pool:
            pool.terminate()
    return rows


def group_counts(task: Task, rows: Iterable[dict[str, Any]]) -> dict[str, int]:
    """How many problems fall in each breakdown group, sorted by key."""
    counts = Counter(task.group(task.parse_input(row["input"])) for row in rows)
    return dict(sorted(counts.items(), key=lambda kv: group_sort_key(kv[0])))

