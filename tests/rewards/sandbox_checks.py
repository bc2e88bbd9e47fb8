"""What the sandbox tests check after every run: which processes of a sandbox are still alive."""

from __future__ import annotations

import os
from pathlib import Path

from grpozoo.rewards.sandbox_users import UID_BASE, UID_SLOTS


def leftovers(scratch_root: str) -> list[int]:
    """Processes that belong to a sandbox run: a dedicated uid, or a working directory or HOME in
    the sandbox's scratch root (zombies, which hold no memory, are left out)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            status = Path(f"/proc/{entry}/status").read_text()
            uid = int(next(line for line in status.splitlines() if line.startswith("Uid:")).split()[1])
            state = next(line for line in status.splitlines() if line.startswith("State:"))
            cwd = os.readlink(f"/proc/{entry}/cwd")
            environ = Path(f"/proc/{entry}/environ").read_bytes()
        except (OSError, StopIteration):
            continue
        if "Z" in state.split()[1]:
            continue
        if (
            UID_BASE <= uid < UID_BASE + UID_SLOTS
            or cwd.startswith(scratch_root)
            or scratch_root.encode() in environ
        ):
            found.append(int(entry))
    return found


def available_memory_mb() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) // 1024
    return 0
