"""Kernel isolation for the code sandbox: the bubblewrap command line and its seccomp filter.

Part of the ``code_tests`` reward's machinery (infrastructure, not a method from a paper). Each
program runs under bubblewrap (``bwrap``, the unprivileged sandboxing tool of Flatpak) in new
mount, PID, network, IPC and UTS namespaces, in an empty root file system that holds only:

- the interpreter, its standard library and the directories of the shared libraries that it and
  its extension modules link (found with ``ldd``), all read-only; no other program, nothing else of
  ``/usr`` or of the interpreter's prefix;
- a fresh ``/proc`` (the run's own processes only), a minimal ``/dev``, and private, size-capped
  ``/tmp`` and ``/dev/shm`` (tmpfs, gone with the run);
- the run's own directory (its scratch directory and job), bound at the same path.

Nothing else of the host is there: no ``/etc``, no home, no other run's files, no host ``/tmp``
or ``/dev/shm``, no unix socket of the host, no network interface. The sandbox's bootstrap is the
PID namespace's init (``--as-pid-1``): when it ends, the kernel ends every other process of the run,
and ``--die-with-parent`` ends it with the trainer; ``--new-session`` detaches it from any terminal.

A seccomp filter (built with libseccomp) makes the system calls a test program never needs fail
with ``EPERM``: creating devices or namespaces, mounting, tracing or signalling through pidfds,
setting the clock, kernel keys, BPF, perf events, loading modules, ``io_uring`` and the like.
Where a program may not start processes (the trainer's own user, without root), the bootstrap
loads a second filter (``no_new_processes_filter``) in the program's process before it runs:
``fork``, ``vfork`` and ``clone`` of anything but a thread fail with ``EPERM``.

As root, bubblewrap runs without a user namespace so that the run can drop to a dedicated host
uid (where ``RLIMIT_NPROC`` applies); it keeps only ``CAP_SETUID``/``CAP_SETGID`` for the
bootstrap to make that switch, and loses them with it. Without root it runs in a user namespace
as the trainer's own user.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import shutil
import subprocess
import sys
import tempfile
from functools import cache
from pathlib import Path

from grpozoo.errors import MachineSetupError

TMPFS_BYTES = 64 << 20  # /tmp and /dev/shm inside a run (GUESS: ample for test programs)

# system calls a test program never needs; each fails with EPERM
DENIED_SYSCALLS = (
    "mknod", "mknodat", "mount", "umount", "umount2", "pivot_root", "chroot", "move_mount", "open_tree",
    "fsopen", "fsconfig", "fsmount", "fspick", "mount_setattr", "ptrace", "process_vm_readv",
    "process_vm_writev", "process_madvise", "pidfd_send_signal", "pidfd_getfd", "clock_settime",
    "clock_adjtime", "settimeofday", "adjtimex", "stime", "keyctl", "add_key", "request_key", "bpf",
    "perf_event_open", "unshare", "setns", "kexec_load", "kexec_file_load", "init_module",
    "finit_module", "delete_module", "swapon", "swapoff", "reboot", "acct", "quotactl",
    "quotactl_fd", "userfaultfd", "io_uring_setup", "io_uring_enter", "io_uring_register",
    "open_by_handle_at", "name_to_handle_at", "lookup_dcookie", "syslog", "vhangup", "personality",
    "sethostname", "setdomainname", "iopl", "ioperm", "fanotify_init", "nfsservctl",
)  # fmt: skip
# clone() flags that would create namespaces (CLONE_NEWTIME, NEWNS, NEWCGROUP, NEWUTS, NEWIPC,
# NEWUSER, NEWPID, NEWNET); clone3() hides its flags in memory, so it reports ENOSYS and the C
# library falls back to clone()
_CLONE_NAMESPACE_FLAGS = (
    0x80, 0x20000, 0x02000000, 0x04000000, 0x08000000, 0x10000000, 0x20000000, 0x40000000,
)  # fmt: skip
_CLONE_THREAD = 0x10000
_EPERM, _ENOSYS = 1, 38
_SCMP_ACT_ALLOW = 0x7FFF0000
_SCMP_CMP_MASKED_EQ = 7


def _scmp_errno(code: int) -> int:
    return 0x00050000 | (code & 0xFFFF)


class _ArgCmp(ctypes.Structure):
    _fields_ = [
        ("arg", ctypes.c_uint),
        ("op", ctypes.c_int),
        ("datum_a", ctypes.c_uint64),
        ("datum_b", ctypes.c_uint64),
    ]


_Rule = tuple[str, int, tuple[_ArgCmp, ...]]  # system call, libseccomp action, argument conditions


@cache
def seccomp_filter() -> bytes:
    """The seccomp BPF program (as bwrap's ``--seccomp`` reads it) that denies ``DENIED_SYSCALLS``
    and namespace-creating ``clone`` calls, built with libseccomp for this machine's architecture
    (system calls of other architectures kill the process). Raises ``MachineSetupError`` without
    libseccomp."""
    rules: list[_Rule] = [(name, _scmp_errno(_EPERM), ()) for name in DENIED_SYSCALLS]
    rules += [
        ("clone", _scmp_errno(_EPERM), (_ArgCmp(0, _SCMP_CMP_MASKED_EQ, flag, flag),))
        for flag in _CLONE_NAMESPACE_FLAGS
    ]
    return _compile([*rules, ("clone3", _scmp_errno(_ENOSYS), ())])


@cache
def no_new_processes_filter() -> bytes:
    """The seccomp BPF program (``struct sock_filter`` array, 8 bytes per instruction) that the
    bootstrap loads before a program that may not start processes: ``fork``, ``vfork`` and
    ``clone`` without ``CLONE_THREAD`` fail with ``EPERM`` (threads still start), ``clone3`` with
    ``ENOSYS`` (the C library then falls back to ``clone``)."""
    no_thread = _ArgCmp(0, _SCMP_CMP_MASKED_EQ, _CLONE_THREAD, 0)
    return _compile([
        ("fork", _scmp_errno(_EPERM), ()), ("vfork", _scmp_errno(_EPERM), ()),
        ("clone", _scmp_errno(_EPERM), (no_thread,)), ("clone3", _scmp_errno(_ENOSYS), ()),
    ])  # fmt: skip


def _compile(rules: list[_Rule]) -> bytes:
    """A seccomp BPF program allowing every system call but those of ``rules``, for this machine's
    architecture; rules for system calls it lacks are skipped. Raises ``MachineSetupError`` without
    libseccomp."""
    try:
        lib = ctypes.CDLL(ctypes.util.find_library("seccomp") or "libseccomp.so.2", use_errno=True)
    except OSError as error:
        raise MachineSetupError(
            f"code sandbox: libseccomp cannot be loaded ({error}); "
            "install it (Debian: apt-get install libseccomp2)"
        ) from error
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_rule_add_array.argtypes = [
        ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint, ctypes.POINTER(_ArgCmp),
    ]  # fmt: skip
    lib.seccomp_export_bpf.argtypes = [ctypes.c_void_p, ctypes.c_int]
    lib.seccomp_release.argtypes = [ctypes.c_void_p]
    ctx = lib.seccomp_init(_SCMP_ACT_ALLOW)
    if not ctx:
        raise RuntimeError("code sandbox: libseccomp could not start a filter (seccomp_init failed)")
    try:
        for name, action, conditions in rules:
            number = lib.seccomp_syscall_resolve_name(name.encode())
            if number == -1:  # not a system call on this architecture
                continue
            array = (_ArgCmp * len(conditions))(*conditions) if conditions else None
            code = lib.seccomp_rule_add_array(ctx, action, number, len(conditions), array)
            if code != 0:
                raise RuntimeError(f"code sandbox: libseccomp refused the rule for {name} (error {code})")
        fd = os.memfd_create("grpozoo-seccomp")
        try:
            if lib.seccomp_export_bpf(ctx, fd) != 0:
                raise RuntimeError("code sandbox: libseccomp could not export the filter")
            os.lseek(fd, 0, os.SEEK_SET)
            return _read_all(fd)
        finally:
            os.close(fd)
    finally:
        lib.seccomp_release(ctx)


def _read_all(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 1 << 16):
        chunks.append(chunk)
    return b"".join(chunks)


def filter_fd() -> int:
    """A fresh descriptor holding the seccomp filter, at its start, for one bwrap to read."""
    fd = os.memfd_create("grpozoo-seccomp")
    os.write(fd, seccomp_filter())
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


@cache
def runtime_paths(interpreter: str) -> tuple[str, ...]:
    """What the interpreter needs inside the sandbox, read-only: its executable, its standard
    library (``PREFIX/lib/python3.N``) and the directories of the shared libraries that it and its
    extension modules link, as ``ldd`` lists them (whole directories: one mount each is far quicker
    than one per library, and libraries hold nothing secret); nothing else of its prefix or ``/usr``."""
    real = os.path.realpath(interpreter)
    prefix = sys.base_prefix if real.startswith(sys.base_prefix + "/") else str(Path(real).parent.parent)
    ldd = shutil.which("ldd")
    if ldd is None:
        raise MachineSetupError(
            "code sandbox: 'ldd' is needed to find the interpreter's libraries (Debian: libc-bin)"
        )
    stdlib = sorted(map(str, Path(prefix).glob("lib/python3.*")))
    binaries = [real, *(str(so) for directory in stdlib for so in Path(directory).glob("lib-dynload/*.so"))]
    listing = subprocess.run([ldd, *binaries], capture_output=True, text=True, timeout=60, env={}).stdout
    libraries = set()
    for line in listing.splitlines():
        words = line.split()
        if line.endswith(":"):  # "FILE:", the header of each file's list
            continue
        candidate = words[2] if len(words) > 2 and words[1] == "=>" else words[0] if words else ""
        if candidate.startswith("/") and not any(candidate.startswith(d + "/") for d in stdlib):
            libraries.add(os.path.dirname(candidate))
    paths = sorted({*stdlib, *libraries})
    # a directory inside another one listed comes with it
    nested = {p for p in paths if any(p.startswith(other + "/") for other in paths)}
    return (real, *(p for p in paths if p not in nested))


def bwrap_command(
    interpreter: str, run_dir: str, workdir: str, workdir_bytes: int, seccomp_fd: int, as_root: bool
) -> list[str]:
    """The ``bwrap`` arguments (up to the interpreter) for one run whose files live in ``run_dir``
    (bound at the same path) and which starts in ``workdir``, a fresh tmpfs of ``workdir_bytes``
    there (the program's scratch: writable, size-capped, gone with the run). ``as_root``: no user
    namespace, so the bootstrap can switch to a dedicated host uid (keeping only the two
    capabilities that switch needs); otherwise a user namespace as the trainer's user."""
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        raise MachineSetupError(missing_bwrap_message("'bwrap' is not installed"))
    if as_root:
        namespaces = ["--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts"]
        namespaces += ["--unshare-cgroup-try"]
        namespaces += ["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]  # dropped with the uid
    else:
        namespaces = ["--unshare-all"]
    mounts = []
    for path in runtime_paths(interpreter):
        mounts += [*_passable_parents(path), "--ro-bind", path, path]
    return [
        bwrap, *namespaces, "--die-with-parent", "--new-session", "--as-pid-1", *mounts,
        "--proc", "/proc", "--dev", "/dev",
        *_private_tmpfs("/tmp", TMPFS_BYTES), *_private_tmpfs("/dev/shm", TMPFS_BYTES),
        *_passable_parents(run_dir), "--bind", run_dir, run_dir,
        *_private_tmpfs(workdir, workdir_bytes), "--chdir", workdir,
        "--seccomp", str(seccomp_fd), "--",
    ]  # fmt: skip


def _private_tmpfs(path: str, size: int) -> list[str]:
    """bwrap arguments mounting a tmpfs of ``size`` bytes at ``path`` that every user of the run may
    write to (with the sticky bit, like the host's ``/tmp``)."""
    return ["--perms", "1777", "--size", str(size), "--tmpfs", path]


def _passable_parents(path: str) -> list[str]:
    """bwrap arguments creating ``path``'s parent directories in the sandbox's root as ``0755``
    (bwrap's own are ``0700`` as root, which a dedicated uid could not pass through)."""
    parents = [str(p) for p in reversed(Path(path).parents) if str(p) not in ("/", "/tmp")]
    return [arg for parent in parents for arg in ("--perms", "0755", "--dir", parent)]


def missing_bwrap_message(reason: str) -> str:
    return (
        f"code sandbox: bubblewrap cannot run here ({reason}). Code rewards run model-written programs "
        "under bubblewrap: install it (Debian: apt-get install bubblewrap) and, when not running as root, "
        "allow unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1 or "
        "user.max_user_namespaces > 0); or, knowing the program then runs with only a Python audit hook "
        "between it and the machine, set the sandbox mode to 'unsafe_audit_only'"
    )


@cache
def check_bwrap(interpreter: str, as_root: bool) -> None:
    """Runs an empty program under the full isolation once, raising ``MachineSetupError`` with the fix
    when bubblewrap is missing or cannot create its namespaces here."""
    fd, run_dir = filter_fd(), tempfile.mkdtemp(prefix="grpozoo-sandbox-check-")
    try:
        command = [*bwrap_command(interpreter, run_dir, run_dir, TMPFS_BYTES, fd, as_root), os.path.realpath(interpreter)]
        done = subprocess.run(
            [*command, "-I", "-S", "-c", "pass"],
            capture_output=True, text=True, timeout=60, env={}, pass_fds=(fd,),
        )  # fmt: skip
    finally:
        os.close(fd)
        os.rmdir(run_dir)
    if done.returncode != 0:
        raise MachineSetupError(missing_bwrap_message(done.stderr.strip() or f"exit status {done.returncode}"))
