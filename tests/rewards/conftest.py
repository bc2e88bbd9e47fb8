"""Fixtures shared by the sandbox tests (each test module defines its own ``sandbox``)."""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import pytest
from rewards.sandbox_checks import available_memory_mb, leftovers


@pytest.fixture
def shared_dir() -> Path:
    """A world-writable directory on the host outside any scratch, like /tmp itself: the kernel
    would let any user write here, so only the sandbox keeps a program out."""
    path = Path(tempfile.mkdtemp(prefix="grpozoo-sandbox-shared-"))
    path.chmod(0o777)
    yield path
    for child in path.iterdir():
        child.unlink()
    path.rmdir()


@pytest.fixture
def unharmed(sandbox):
    """After the test: this process is alive, no sandbox process is left (killed processes may
    take a moment to be reaped, so this waits up to 5 s for them), every scratch directory is gone,
    and the machine's available memory did not fall by more than 1 GB (the memory bombs ask for 16 GB)."""
    memory_before = available_memory_mb()
    yield
    os.kill(os.getpid(), 0)
    deadline = time.monotonic() + 5
    while leftovers(sandbox.scratch_root) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert leftovers(sandbox.scratch_root) == []
    assert os.listdir(sandbox.scratch_root) == []
    assert available_memory_mb() > memory_before - 1024
