"""Dedicated user ids for sandboxed runs when the trainer runs as root (the machinery under
``grpozoo.rewards.sandbox``).

Linux does not apply ``RLIMIT_NPROC`` to root, so a root trainer gives each run a user id of its
own (``uid_base`` + slot), allocated with lock files so that parallel runs and parallel trainers
never share one. Without a PID namespace, a dedicated uid is cleaned with ``kill(-1, SIGKILL)`` run
as that uid until none of its processes is left.
"""

from __future__ import annotations

import fcntl
import os
import secrets
import shutil
import stat
import subprocess
import tempfile
import threading
from functools import cache
from pathlib import Path

UID_BASE = 1_900_000_000  # far above ordinary and container (subuid) ranges
UID_SLOTS = 1024


def check_reachable(root: Path) -> None:
    """A dedicated uid reaches its scratch directory (its HOME) only if it may pass through every
    directory above it."""
    for directory in (root.resolve(), *root.resolve().parents):
        if not directory.stat().st_mode & stat.S_IXOTH:
            raise ValueError(
                f"sandbox scratch_root {str(root)!r}: the sandbox's uid cannot reach it because {str(directory)!r} "
                "is not searchable by other users; use a directory every user can pass through, such as /tmp"
            )


@cache
def _kill_binary() -> str | None:
    return shutil.which("kill")


class UidSlots:
    """Dedicated uids handed out one run at a time, held by an ``flock`` on a lock file so that
    parallel runs, and other trainers on the machine, never share one."""

    def __init__(self, base: int, slots: int):
        self.base, self.slots = base, slots
        self.dir = Path(tempfile.gettempdir()) / "grpozoo-sandbox-uids"
        self.next = secrets.randbelow(slots)
        self.lock = threading.Lock()

    def acquire(self) -> tuple[int, int]:
        self.dir.mkdir(mode=0o700, exist_ok=True)
        for _ in range(3 * self.slots):
            with self.lock:
                slot, self.next = self.next, (self.next + 1) % self.slots
            fd = os.open(
                self.dir / f"uid-{self.base + slot}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600
            )
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return self.base + slot, fd
            except BlockingIOError:
                os.close(fd)
        raise RuntimeError(
            f"sandbox: all {self.slots} dedicated uids from {self.base} are in use; raise uid_slots"
        )

    @staticmethod
    def release(fd: int) -> None:
        os.close(fd)  # closing drops the flock


def kill_uid(uid: int) -> None:
    """Kill every process of ``uid`` (needed only without a PID namespace, where a process that
    left the process group with ``setsid()`` would survive the group kill): ``kill -KILL -1`` run
    as that uid signals all of them at once, itself excepted, until none is left."""
    kill = _kill_binary()
    if kill is None:
        raise RuntimeError("sandbox: the 'kill' program is needed to clean up after a dedicated uid")
    for _ in range(20):
        if not processes_of(uid):
            return
        subprocess.run(
            [kill, "-KILL", "--", "-1"], user=uid, group=uid, extra_groups=[], env={},
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
    raise RuntimeError(f"sandbox: processes of uid {uid} survived 20 rounds of kill -KILL -1")


def processes_of(uid: int) -> list[int]:
    """The ids of the live (not zombie) processes whose real uid is ``uid``, from /proc."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            status = Path(f"/proc/{entry}/status").read_text()
        except OSError:
            continue
        fields_ = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        if int(fields_.get("Uid", "-1 0").split()[0]) == uid and not fields_.get(
            "State", ""
        ).strip().startswith("Z"):
            found.append(int(entry))
    return found
