"""Starting, reading and ending a sandboxed child process (the machinery under
``grpozoo.rewards.sandbox``).

A run starts in a session and process group of its own, killed as a whole (``os.killpg``,
``SIGKILL``) after every run. Under bubblewrap (and, in the unsafe mode, ``unshare`` where it
works) the run also has a PID namespace that ends with the bootstrap: the kernel then kills every
process left in it, even one that left the process group with ``setsid()``. Its stdout is read up
to a cap and only the tail of its stderr is kept, so a program that prints forever cannot fill the
trainer's memory.
"""

from __future__ import annotations

import os
import selectors
import shutil
import signal
import subprocess
import time
from functools import cache
from pathlib import Path


@cache
def unshare_args() -> tuple[str, ...] | None:
    """The ``unshare`` arguments that give a child an empty network namespace and a PID namespace
    of its own here (as root, or through a user namespace), or None when neither works."""
    unshare = shutil.which("unshare")
    if unshare is None:
        return None
    namespaces = ("--net", "--pid", "--fork", "--kill-child")
    for args in ((unshare, *namespaces), (unshare, "--user", *namespaces)):
        try:
            done = subprocess.run([*args, "true"], capture_output=True, timeout=10, env={})
        except (OSError, subprocess.TimeoutExpired):
            continue
        if done.returncode == 0:
            return args
    return None


def signal_name(number: int) -> str:
    """The name of signal ``number`` (``SIGKILL``), or ``signal <number>`` for one Python does not know."""
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def collect(process: subprocess.Popen, deadline: float, cap: int) -> tuple[bytes, bytes, bool, bool]:
    """Reads stdout (up to ``cap`` bytes) and stderr (its tail) until the process has ended and its
    pipes are drained, or the deadline passes. Returns (stdout, stderr, timed out, stdout
    overflowed). A grandchild still holding the pipes does not keep this waiting once the process
    itself has ended. The process is not reaped here, so its group id stays valid for the kill."""
    if process.stdout is None or process.stderr is None:
        raise ValueError("sandbox: the child process was started without pipes for stdout and stderr")
    stdout_fd = process.stdout.fileno()
    out, err = bytearray(), bytearray()
    selector = selectors.DefaultSelector()
    for stream in (process.stdout, process.stderr):
        os.set_blocking(stream.fileno(), False)
        selector.register(stream.fileno(), selectors.EVENT_READ)
    try:
        pidfd = os.pidfd_open(process.pid)  # readable once the process ends: an immediate wake-up
        selector.register(pidfd, selectors.EVENT_READ)
    except (AttributeError, OSError):
        pidfd = None
    try:
        while True:
            exited = has_exited(process.pid)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return bytes(out), bytes(err), not exited, False
            wait = 0 if exited else remaining if pidfd is not None else min(remaining, 0.02)
            ready = [key.fd for key, _ in selector.select(wait) if key.fd != pidfd]
            for fd in ready:
                try:
                    chunk = os.read(fd, 1 << 16)
                except BlockingIOError:
                    continue
                if not chunk:
                    selector.unregister(fd)
                elif fd == stdout_fd:
                    out += chunk
                    if len(out) > cap:
                        return bytes(out), bytes(err), False, True
                else:
                    err += chunk
                    del err[: -(1 << 16)]
            if exited and not ready:
                return bytes(out), bytes(err), False, False
    finally:
        selector.close()
        if pidfd is not None:
            os.close(pidfd)


def has_exited(pid: int) -> bool:
    """Whether the child has ended, without reaping it (``WNOWAIT``)."""
    return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None


def kill_group(pgid: int) -> None:
    """Kills the run's process group. Under bubblewrap the leader's children (the PID namespace's
    init: its death ends every process of the namespace) are killed first and the leader, which
    reaps them, is given a second to end: killed at once, it would leave them to the machine's init,
    which in some containers never reaps them."""
    try:
        children = Path(f"/proc/{pgid}/task/{pgid}/children").read_text().split()
    except OSError:
        children = []
    for child in children:
        try:
            os.kill(int(child), signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    deadline = time.monotonic() + 1.0
    while children and not has_exited(pgid) and time.monotonic() < deadline:
        time.sleep(0.005)
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
