"""Fixtures shared by several test modules."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch


@pytest.fixture(scope="module")
def one_thread():
    """Torch on one thread for a module of tiny (width-32) models: as fast, and it does
    not fight other jobs for the cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# A process that owns a run directory (`RunDir.claim`) until it is killed.
_HOLDER = """
import sys, time
from dvar.rundir import RunDir
with RunDir(sys.argv[1]).claim():
    print("held", flush=True)
    time.sleep(120)
"""


@pytest.fixture
def claimed_elsewhere():
    """`with claimed_elsewhere(path) as pid:` another process owns the run directory
    `path` for the block; killed at its end."""

    @contextlib.contextmanager
    def hold(path: Path) -> Iterator[int]:
        holder = subprocess.Popen([sys.executable, "-c", _HOLDER, str(path)], stdout=subprocess.PIPE,
                                  text=True)
        try:
            assert holder.stdout.readline().strip() == "held"
            yield holder.pid
        finally:
            holder.kill()
            holder.wait()

    return hold
