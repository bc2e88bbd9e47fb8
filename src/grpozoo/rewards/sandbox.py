"""Run model-written Python against test cases in a separate, limited process.

The machinery of the ``code_tests`` reward (infrastructure, not a method from a paper).
Every test case runs in its own fresh process, so one test's crash or leftover state cannot reach
another; the tests of one program run one after another (stopping at the first timeout, since the
program's score is then missing anyway), and many programs run in parallel on a bounded pool.

The boundary is the kernel's: in the default mode (``bwrap``) each process runs under bubblewrap
in new mount, PID, network, IPC and UTS namespaces, in an empty root file system holding only its
own directory, the interpreter and its libraries, with a seccomp filter (``grpozoo.rewards.
isolation``). The ``unsafe_audit_only`` mode (``unshare`` where it works, and the audit hook) is
what is left where bubblewrap cannot run; it must be chosen explicitly and warns on every run.
What each run gets (``Limits`` holds the numbers):

- **Time**: a wall-clock limit (the parent kills the whole process group with ``SIGKILL``) and a
  CPU-time limit (``RLIMIT_CPU``, ``SIGXCPU`` then ``SIGKILL`` one second later). Either is a
  *timeout*.
- **Memory**: ``RLIMIT_AS`` per process; an allocation beyond it raises ``MemoryError``.
- **Processes**: ``RLIMIT_NPROC`` (threads count too) stops fork bombs. Linux does not apply this
  limit to root, so when the trainer runs as root each run is given a **dedicated user id** of its
  own (``grpozoo.rewards.sandbox_users``). Without root the program runs as the trainer's user,
  where ``RLIMIT_NPROC`` would count the trainer's own processes, so starting processes is refused
  instead: a seccomp filter, loaded in the program's process before it runs, makes ``fork``,
  ``vfork`` and ``clone`` of anything but a thread fail with ``EPERM`` (threads still start;
  ``processes="refused"`` applies it as root too).
- **Clean-up**: every process of a run is killed after it: its process group, its PID namespace
  under bubblewrap (and ``unshare``), and without one every process of its dedicated uid
  (``grpozoo.rewards.sandbox_process``, ``grpozoo.rewards.sandbox_users``).
- **Files**: ``RLIMIT_FSIZE`` per file; a fresh scratch directory (in a per-run directory no other
  run can list) is the working directory, ``HOME`` and ``TMPDIR``, deleted afterwards. Under
  bubblewrap it is a tmpfs of ``scratch_mb`` in the run's own mount namespace (no other run, nor the
  host, sees into it), and nothing else of the host's file system exists for the program (``/tmp``
  and ``/dev/shm`` are its own size-capped tmpfs); in the unsafe mode it is a host directory
  (``0700``, owned by the run's uid). Writing, deleting, renaming or changing
  files outside it is refused by an audit hook in the child (``sys.addaudithook``: ``open`` for
  writing, ``os.remove``, ``os.rename``, ``os.mkdir``, ``os.chmod``, ``shutil.rmtree``, …; hard
  links are refused). With a dedicated uid the kernel's permissions apply as well: the program can
  write only to its scratch directory and to world-writable places such as ``/tmp``, which the hook
  covers.
- **Programs**: starting other programs (``os.system``, ``subprocess``, ``os.exec*``,
  ``os.posix_spawn``) and ``ctypes`` are refused by the hook, so the hook cannot be stepped around
  by running another binary or calling libc directly.
- **Network**: bubblewrap (or ``unshare --net``) gives the child an empty network namespace (no
  interface up, no route, not even the trainer's loopback). In the unsafe mode where ``unshare`` is
  missing or not permitted, the hook refuses every ``socket.*`` event instead.
  ``SandboxResult.isolation`` says which was used.
- **Environment**: the child starts from an empty environment (only ``HOME``, ``TMPDIR``, ``PATH``
  and ``LANG`` are set), so the trainer's variables — API keys, tokens — never reach it. Another
  process's ``/proc/<pid>/environ`` is closed to it (the kernel refuses it to a dedicated uid; the
  hook refuses it to the same user).
- **Verdicts**: computed in the trainer, from data the child sends, never in the program's
  process, and the expected values never reach it: a stdin/stdout test's stdout is compared with
  the expected output here; an assert test is split into probes (``test_cases``) whose expressions
  the child evaluates after the program, sending each value as a line of plain data after a
  per-run marker on stdout, compared here with the test's literal. The program may write such
  lines too, patch the interpreter or exit early, but without the expected values it can pass
  only by computing them: exactly one readable value per probe is required.
- **Output**: stdout is capped (``output_bytes``; beyond it the run is killed) and only the tail of
  stderr is kept.

Honest limits. The audit hook is defence in depth, not a security boundary: it lives in the
program's own interpreter, and CPython documents that audit hooks cannot stop code that is
determined to get around them; in the unsafe mode it is all there is between the program and the
host's files, ``/proc``, ``/dev/shm`` and unix sockets. ``os.open`` with ``dir_fd`` is not checked
(its audit event does not carry ``dir_fd``). In the unsafe mode a program may read any file its user
may read (with a dedicated uid: the world-readable ones), including the task's data. Memory is
capped per process, so a program may use up to ``max_processes × memory_mb``, and disk up to files ×
``file_size_mb`` within the time limit; point ``scratch_root`` at a size-limited file system to cap
the disk. For code you have reason to distrust beyond a model's mistakes, run the trainer in a
container or VM.

A result per program: ``passed`` / ``total`` tests, a ``status`` (``ok``: every test ran to the
end, passed or failed; otherwise the worst of ``timeout`` > ``memory`` > ``killed`` > ``error``),
and the tail of stderr. ``fraction`` is ``None`` after a timeout: a slow machine is not a wrong
program, so the caller scores it as missing, never 0 or 1.

The test cases and their accepted forms live in ``grpozoo.rewards.test_cases``; the bootstrap that
runs inside the child process, in ``grpozoo.rewards.sandbox_child``; starting, reading and killing
that process, in ``grpozoo.rewards.sandbox_process``; dedicated uids, in
``grpozoo.rewards.sandbox_users``.
"""

from __future__ import annotations

import json
import math
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, fields, replace
from importlib import resources
from pathlib import Path
from typing import Any

from grpozoo.rewards import isolation, sandbox_process
from grpozoo.rewards.sandbox_users import UID_BASE, UID_SLOTS, UidSlots, check_reachable, kill_uid
from grpozoo.rewards.test_cases import Probe, TestCase, decode_value, parse_tests, same_output

MODES = ("bwrap", "unsafe_audit_only")
PROCESSES = ("dedicated_uid", "refused")
_SEVERITY = {"timeout": 4, "memory": 3, "killed": 2, "error": 1, "ok": 0}

# exit codes of the child's bootstrap (a program could imitate them; they only name the status)
_EXIT_ASSERTION, _EXIT_ERROR, _EXIT_MEMORY = 101, 102, 103


@dataclass(frozen=True)
class Limits:
    """Per-run limits. GUESS: the defaults (10 s wall and CPU, 512 MB, 16 processes, 16 MB files,
    64 MB of scratch in all (under bubblewrap), 64 open files, 1 MB of stdout, 2,000 characters of
    stderr kept) suit short competitive-style programs; raise them for heavier tests."""

    wall_s: float = 10.0
    cpu_s: int = 10
    memory_mb: int = 512
    max_processes: int = 16
    file_size_mb: int = 16
    scratch_mb: int = 64
    open_files: int = 64
    output_bytes: int = 1 << 20
    stderr_chars: int = 2000

    def __post_init__(self):
        for field in fields(self):
            value = getattr(self, field.name)
            if not isinstance(value, int | float) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"sandbox limit {field.name}={value!r}: must be a positive number")
        if self.open_files < 16:
            raise ValueError(f"sandbox limit open_files={self.open_files}: Python needs at least 16")


@dataclass(frozen=True)
class SandboxResult:
    passed: int
    total: int
    status: str
    stderr_tail: str
    isolation: str

    @property
    def fraction(self) -> float | None:
        """Passed / total, or None when a test timed out (the score is missing, not 0)."""
        return None if self.status == "timeout" else self.passed / self.total


# --------------------------------------------------------------------------------- the child
# The child's bootstrap (``sandbox_child``), run as ``python -I -S -B -X utf8 -c _CHILD job.json``:
# its source text, since the child runs without site-packages and cannot import grpozoo.
_CHILD = resources.files("grpozoo.rewards").joinpath("sandbox_child.py").read_text(encoding="utf-8")


# --------------------------------------------------------------------------------- the sandbox
@dataclass(frozen=True)
class _Run:
    """One test case's process: how it ended."""

    status: str  # passed | failed | timeout | memory | killed | error
    stderr: str
    stdout: str = ""


@dataclass(frozen=True)
class Execution:
    """One program run once (:meth:`Sandbox.execute`): how it ended (``ok``, ``error``, ``timeout``,
    ``memory`` or ``killed``), its stdout (at most ``Limits.output_bytes``) and the tail of its stderr."""

    status: str
    stdout: str
    stderr: str


class Sandbox:
    """Runs programs against their test cases under ``limits``.

    ``mode``: ``"bwrap"`` (the default; ``grpozoo.rewards.isolation``: kernel namespaces, an empty
    root file system and a seccomp filter; raises ``RuntimeError`` naming the fix where bubblewrap
    cannot run) or ``"unsafe_audit_only"`` (``unshare`` where it works and the audit hook, which a
    determined program can get around; it warns on every run). Either way a root trainer runs each
    program under a dedicated uid, never as root. ``workers`` bounds the programs run at once
    (default: the number of cores). ``python`` runs the programs (default: this interpreter, with
    ``-I -S``: the standard library only). ``processes``: ``"dedicated_uid"`` (the default as
    root; up to ``max_processes`` each) or ``"refused"`` (the default, and the only choice, without
    root: a seccomp filter loaded before the program makes ``fork`` and ``clone`` of anything but a
    thread fail with ``EPERM``).
    """

    _uid_slots: dict[tuple[int, int], UidSlots] = {}
    _uid_slots_lock = threading.Lock()

    def __init__(
        self,
        limits: Limits | None = None,
        *,
        workers: int | None = None,
        mode: str = "bwrap",
        python: str | None = None,
        scratch_root: str | None = None,
        uid_base: int = UID_BASE,
        uid_slots: int = UID_SLOTS,
        processes: str | None = None,
    ):
        self.limits = limits or Limits()
        self.workers = workers or os.cpu_count() or 1
        if self.workers < 1:
            raise ValueError(f"sandbox workers={workers}: must be at least 1")
        if mode not in MODES:
            raise ValueError(f"sandbox mode={mode!r}: use 'bwrap' (the default) or 'unsafe_audit_only'")
        self.mode = mode
        self.python = python or sys.executable
        # as root, always a dedicated uid: RLIMIT_NPROC does not apply to root, and root may do anything
        self.dedicated = os.geteuid() == 0
        self.processes = processes or ("dedicated_uid" if self.dedicated else "refused")
        if self.processes not in PROCESSES or (self.processes == "dedicated_uid" and not self.dedicated):
            raise ValueError(
                f"sandbox processes={processes!r}: use 'refused' (seccomp refuses new processes), or "
                "'dedicated_uid' (up to max_processes under a uid of the run's own; needs root)"
            )
        if mode == "bwrap":
            isolation.check_bwrap(self.python, self.dedicated)
        self.unshare = sandbox_process.unshare_args() if mode == "unsafe_audit_only" else None
        # network and PID namespaces: every process of a run ends with it, and no network at all
        self.namespaces = mode == "bwrap" or self.unshare is not None
        if self.dedicated:
            with Sandbox._uid_slots_lock:
                key = (uid_base, uid_slots)
                self.uids = Sandbox._uid_slots.setdefault(key, UidSlots(uid_base, uid_slots))
        self.scratch_root = scratch_root
        if self.dedicated and mode == "unsafe_audit_only":
            check_reachable(Path(scratch_root or tempfile.gettempdir()))
        user_part = "dedicated uid" if self.dedicated else "same user"
        if self.processes == "refused":
            user_part += ", no new processes (seccomp)"
        if mode == "bwrap":
            self.isolation = (
                "bubblewrap: PID, network, IPC and mount namespaces, read-only runtime, seccomp filter; "
                f"{user_part}; audit hook as defence in depth"
            )
        else:
            network_part = "network and PID namespaces (unshare)" if self.unshare else "no network (audit hook)"
            self.isolation = f"UNSAFE audit hook only: {network_part}; {user_part}; writes outside scratch refused"

    # ---------------------------------------------------------------------------- public
    def run(self, program: str, tests: Any) -> SandboxResult:
        """Runs ``program`` against every test (see ``parse_tests`` for the accepted forms)."""
        cases = parse_tests(tests)
        if not cases:
            raise ValueError("sandbox: a program needs at least one test case")
        if self.mode == "unsafe_audit_only":
            warnings.warn(
                "code sandbox mode 'unsafe_audit_only': a model-written program runs with only a Python "
                "audit hook between it and this machine; install bubblewrap and use the default mode",
                stacklevel=2,
            )
        passed, worst, stderr = 0, "ok", None
        for case in cases:
            run = self._run_case(program, case)
            passed += run.status == "passed"
            status = "ok" if run.status in ("passed", "failed") else run.status
            # the stderr of the first test that did not pass, or of the first one that went worse
            if run.status != "passed" and (stderr is None or _SEVERITY[status] > _SEVERITY[worst]):
                stderr = run.stderr
            worst = max(worst, status, key=_SEVERITY.__getitem__)
            if status == "timeout":
                break  # the score is missing whatever the other tests say
        return SandboxResult(passed, len(cases), worst, stderr or "", self.isolation)

    def execute(self, program: str, stdin: str = "") -> Execution:
        """Runs ``program`` once with ``stdin``, under the same isolation and limits, for what it
        prints (a tool call's result) rather than against tests."""
        run = self._run_case(program, TestCase(stdin=stdin, expected=""))
        status = "ok" if run.status in ("passed", "failed") else run.status
        return Execution(status, run.stdout, run.stderr)

    def run_many(self, programs: Sequence[str], tests: Sequence[Any]) -> list[SandboxResult]:
        """``run`` for every (program, tests) pair, ``workers`` at a time, in input order."""
        if len(programs) != len(tests):
            raise ValueError(f"sandbox: {len(programs)} programs but {len(tests)} test lists")
        if len(programs) <= 1 or self.workers == 1:
            return [self.run(p, t) for p, t in zip(programs, tests, strict=True)]
        with ThreadPoolExecutor(max_workers=min(self.workers, len(programs))) as pool:
            return list(pool.map(self.run, programs, tests))

    # ---------------------------------------------------------------------------- one process
    def _run_case(self, program: str, case: TestCase) -> _Run:
        uid, lock = self.uids.acquire() if self.dedicated else (None, None)
        run = None
        private = Path(tempfile.mkdtemp(prefix="grpozoo-sandbox-", dir=self.scratch_root))
        try:
            os.chmod(private, 0o711)  # the dedicated uid may pass through to scratch/, not list it
            scratch = private / "scratch"
            scratch.mkdir(mode=0o700)
            if uid is not None:
                os.chown(scratch, uid, uid)
            marker = secrets.token_hex(16)
            job_path = private / "job.json"
            job = {
                "program": program,
                # an assert test's setup and probe expressions, never its expected values
                "steps": None if case.code is None else [_child_step(step) for step in case.steps],
                "value_bytes": self.limits.output_bytes // 2,
                "scratch": str(scratch),
                "uid": uid,
                "marker": marker,
                "same_user": not self.dedicated,
                "no_new_processes": (
                    isolation.no_new_processes_filter().hex() if self.processes == "refused" else None
                ),
                "audit_network": not self.namespaces,
                "limits": self._child_limits(),
                "exit_codes": [_EXIT_ASSERTION, _EXIT_ERROR, _EXIT_MEMORY],
            }
            fd = os.open(job_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(job, f)
            stdin_path = private / "stdin"
            with os.fdopen(os.open(stdin_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as f:
                f.write((case.stdin or "").encode())
            run = self._execute(job_path, scratch, stdin_path, marker, case)
            return run
        finally:
            if uid is not None and lock is not None:  # acquired together
                # When the bootstrap ends by itself in a PID namespace, the kernel has killed and
                # reaped the namespace before it returns; otherwise make sure no process of the
                # uid is left before it is handed to the next run.
                if not self.namespaces or run is None or run.status in ("timeout", "killed"):
                    kill_uid(uid)
                self.uids.release(lock)
            shutil.rmtree(private, ignore_errors=True)

    def _child_limits(self) -> dict[str, int]:
        limits = self.limits
        return {
            "cpu_s": max(1, math.ceil(limits.cpu_s)),
            "memory": limits.memory_mb << 20,
            "max_processes": limits.max_processes,
            "file_size": limits.file_size_mb << 20,
            "open_files": limits.open_files,
        }

    def _command(self, job_path: Path, scratch: Path, seccomp: int | None) -> list[str]:
        """The child's command line: the bootstrap, under bubblewrap (reading the seccomp filter from
        descriptor ``seccomp``) or, in the unsafe mode, under ``unshare`` where it works."""
        bootstrap = ["-I", "-S", "-B", "-X", "utf8", "-c", _CHILD, str(job_path)]
        if seccomp is not None:
            wrapper = isolation.bwrap_command(
                self.python, str(job_path.parent), str(scratch), self.limits.scratch_mb << 20, seccomp,
                as_root=self.dedicated,
            )
            return [*wrapper, os.path.realpath(self.python), *bootstrap]
        if self.unshare:
            return [*self.unshare, "--", self.python, *bootstrap]
        return [self.python, *bootstrap]

    def _execute(self, job_path: Path, scratch: Path, stdin_path: Path, marker: str, case: TestCase) -> _Run:
        limits = self.limits
        seccomp = isolation.filter_fd() if self.mode == "bwrap" else None
        command = self._command(job_path, scratch, seccomp)
        env = {
            "HOME": str(scratch),
            "TMPDIR": str(scratch),
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "LANG": "C.UTF-8",
        }
        with open(stdin_path, "rb") as stdin:
            try:
                process = subprocess.Popen(
                    command, stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=scratch, env=env,
                    start_new_session=True, close_fds=True, pass_fds=() if seccomp is None else (seccomp,),
                )  # fmt: skip
            finally:
                if seccomp is not None:
                    os.close(seccomp)  # bwrap holds its own copy
        try:
            out, err, timed_out, overflow = sandbox_process.collect(
                process, time.monotonic() + limits.wall_s, limits.output_bytes
            )
        finally:
            sandbox_process.kill_group(process.pid)
            returncode = process.wait()
            for pipe in (process.stdout, process.stderr):
                if pipe is not None:
                    pipe.close()
        ending = _ending(returncode, timed_out, overflow, err.decode("utf-8", "replace")[-limits.stderr_chars :],
                         out, marker, case, limits)
        return replace(ending, stdout=out.decode("utf-8", "replace"))


def _ending(returncode: int, timed_out: bool, overflow: bool, stderr: str, out: bytes, marker: str, case: TestCase,
            limits: Limits) -> _Run:
    """How a test case's process ended, from its exit status and output."""
    # the bootstrap reports a program killed by signal s as 128 + s; a negative code is a
    # signal to the bootstrap itself (the group kill)
    died_of = -returncode if returncode < 0 else returncode - 128 if returncode > 128 else None
    if timed_out or died_of == signal.SIGXCPU:
        return _Run("timeout", stderr)
    if overflow:
        return _Run("killed", stderr + f"\nsandbox: stdout passed {limits.output_bytes} bytes; killed")
    if returncode == _EXIT_MEMORY or (returncode != 0 and "MemoryError" in stderr):
        return _Run("memory", stderr)
    if died_of is not None:
        return _Run("killed", stderr + f"\nsandbox: killed by {sandbox_process.signal_name(died_of)}")
    if returncode == 0 and case.expected is not None:  # a script may end itself; its output counts
        text = out.decode("utf-8", "replace")
        return _Run("passed" if same_output(text, case.expected) else "failed", stderr)
    if returncode == 0:
        return _verdict(case.probes, _probe_values(out, marker), stderr)
    if returncode == _EXIT_ASSERTION:
        return _Run("failed", stderr)
    return _Run("error", stderr)


def _child_step(step: str | Probe) -> list[str]:
    """One step of an assert test as the child receives it: setup source or a probe's expression."""
    return ["setup", step] if isinstance(step, str) else ["probe", step.expression]


def _probe_values(out: bytes, marker: str) -> list[Any]:
    """The probe values on the child's stdout: the lines that start with this run's marker."""
    prefix = marker.encode() + b" "
    lines = [line[len(prefix) :] for line in out.split(b"\n") if line.startswith(prefix)]
    return [decode_value(line.decode("utf-8", "replace")) for line in lines]


def _verdict(probes: list[Probe], values: list[Any], stderr: str) -> _Run:
    """An assert test's verdict, computed here from the values the child sent: one per probe, in
    order; a missing one means the process ended before the test finished, an extra one fails."""
    if len(values) < len(probes):
        return _Run("error", stderr + "\nsandbox: the program ended the process before the test finished")
    if len(values) > len(probes):
        return _Run("failed", stderr + f"\nsandbox: {len(values)} values for {len(probes)} asserts")
    failures = [f for f in (p.failure(v) for p, v in zip(probes, values, strict=True)) if f is not None]
    return _Run("failed", stderr + "\n" + failures[0]) if failures else _Run("passed", stderr)
