"""The code sandbox's kernel isolation (bubblewrap, the default mode): one hostile program per class
of escape that a Python audit hook cannot stop. Each program tries its attack and passes its test
only if the attack worked, so every one must score 0; the host is checked directly as well: nothing
appears outside the scratch directory, nothing survives the run, the trainer is unharmed.

Also: the modes (an error naming the fix where bubblewrap cannot run, a warning on every unsafe
run), and concurrent runs (they overlap, and none sees another's files).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import pytest

from grpozoo.config import RewardConfig
from grpozoo.errors import MachineSetupError
from grpozoo.rewards import RewardModel, isolation
from grpozoo.rewards.code import code_tests_reward
from grpozoo.rewards.sandbox import Limits, Sandbox

LIMITS = Limits(wall_s=5.0, cpu_s=2, memory_mb=256, max_processes=8, file_size_mb=1, output_bytes=64 << 10)
ESCAPED = ["assert outcome == 'escaped'"]  # passes only if the attack worked


@pytest.fixture(scope="module")
def sandbox() -> Sandbox:
    root = Path(tempfile.mkdtemp(prefix="grpozoo-isolation-test-"))
    root.chmod(0o711)
    yield Sandbox(LIMITS, workers=4, scratch_root=str(root))
    root.rmdir()


def _attack(sandbox: Sandbox, attempt: str) -> int:
    """Runs ``attempt`` (code that sets ``outcome = 'escaped'`` when it got through) inside a
    try block; returns how many tests passed (1: the attack worked)."""
    body = "".join("    " + line + "\n" for line in attempt.strip().splitlines())
    program = f"outcome = 'blocked'\ntry:\n{body}except Exception as error:\n    outcome = repr(error)\n"
    return sandbox.run(program, ESCAPED).passed


# --------------------------------------------------------------------------------- hostile programs
def test_host_proc_is_not_visible(sandbox, unharmed):
    attempt = f"if b'pytest' in open('/proc/{os.getpid()}/cmdline', 'rb').read():\n    outcome = 'escaped'"
    assert _attack(sandbox, attempt) == 0
    # a fresh /proc: the run's own few processes, none of the host's many
    assert _attack(sandbox, "if len([p for p in __import__('os').listdir('/proc') if p.isdigit()]) > 5:\n"
                   "    outcome = 'escaped'") == 0  # fmt: skip


def test_host_unix_socket_cannot_be_reached(sandbox, unharmed, shared_dir):
    path = shared_dir / "listener.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
        listener.bind(str(path))
        path.chmod(0o777)
        listener.listen()
        attempt = (
            "import socket\ns = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)\n"
            f"s.connect({str(path)!r})\ns.sendall(b'hello')\noutcome = 'escaped'"
        )
        assert _attack(sandbox, attempt) == 0
        listener.setblocking(False)
        with pytest.raises(BlockingIOError):
            listener.accept()


def test_posix_shared_memory_does_not_persist_on_the_host(sandbox, unharmed):
    name = f"grpozoo-isolation-{uuid.uuid4().hex}"
    attempt = (
        "import os, _posixshmem\n"
        f"fd = _posixshmem.shm_open('/{name}', os.O_CREAT | os.O_RDWR, 0o644)\n"
        "os.write(fd, b'left behind')\noutcome = 'escaped'"
    )
    try:
        _attack(sandbox, attempt)  # may work inside: a private /dev/shm
        assert not Path("/dev/shm", name).exists()
    finally:
        Path("/dev/shm", name).unlink(missing_ok=True)


def test_fifos_and_device_nodes_leave_nothing_on_the_host(sandbox, unharmed, shared_dir):
    fifo, node = shared_dir / "fifo", Path(tempfile.gettempdir()) / f"grpozoo-node-{uuid.uuid4().hex}"
    attempt = f"import os\nos.mkfifo({str(fifo)!r})\nos.mknod({str(node)!r})\noutcome = 'escaped'"
    try:
        assert _attack(sandbox, attempt) == 0
        assert not fifo.exists() and not node.exists()
    finally:
        node.unlink(missing_ok=True)


def test_seccomp_refuses_mknod_even_in_scratch(sandbox, unharmed):
    # an ordinary file made by mknod needs no privilege; the seccomp filter refuses the call itself
    attempt = "import os\nos.mknod('node')\noutcome = 'escaped'"
    result = sandbox.run(
        "outcome = 'blocked'\ntry:\n    import os\n    os.mknod('node')\n    outcome = 'escaped'\n"
        "except OSError as error:\n    outcome = error.errno\n",
        ["assert outcome == 1"],  # EPERM
    )
    assert result.passed == 1 and _attack(sandbox, attempt) == 0


def test_a_setsid_survivor_does_not_outlive_the_run(sandbox, unharmed):
    attempt = "import os, time\nif os.fork() == 0:\n    os.setsid()\n    time.sleep(3600)"
    assert _attack(sandbox, attempt) == 0  # `unharmed` checks that no process is left


def test_etc_shadow_cannot_be_read(sandbox, unharmed):
    assert _attack(sandbox, "open('/etc/shadow').read()\noutcome = 'escaped'") == 0
    assert _attack(sandbox, "import os\nif os.listdir('/etc'):\n    outcome = 'escaped'") == 0


def test_a_process_outside_cannot_be_killed(sandbox, unharmed):
    victim = subprocess.Popen(["sleep", "30"])
    try:
        attempt = f"import os, signal\nos.kill({victim.pid}, signal.SIGKILL)\noutcome = 'escaped'"
        assert _attack(sandbox, attempt) == 0
        assert victim.poll() is None
    finally:
        victim.send_signal(signal.SIGKILL)
        victim.wait()


def test_switching_the_audit_hook_off_still_cannot_write_to_the_host(sandbox, unharmed, shared_dir):
    victim, written = shared_dir / "keep.txt", shared_dir / "pwned.txt"
    victim.write_text("keep")
    victim.chmod(0o666)
    attempt = (
        "import os, sys\n"
        "frame = sys._getframe(1)\n"
        "while frame is not None:\n"  # empty every set and dict the hook may consult
        "    for value in list(frame.f_locals.values()):\n"
        "        if isinstance(value, (set, dict)) and value is not globals():\n"
        "            value.clear()\n"
        "    frame = frame.f_back\n"
        "os.path.realpath = lambda path, **kw: os.getcwd()\n"  # every path looks inside scratch
        f"open({str(written)!r}, 'w').write('pwned')\n"
        f"os.remove({str(victim)!r})\n"
        "outcome = 'escaped'"
    )
    assert _attack(sandbox, attempt) == 0
    assert not written.exists() and victim.read_text() == "keep"


# --------------------------------------------------------------------------------- concurrent runs
def test_parallel_runs_overlap(sandbox, unharmed):
    start = time.monotonic()
    results = sandbox.run_many(["import time\ntime.sleep(1)\nok = True\n"] * 4, [["assert ok"]] * 4)
    elapsed = time.monotonic() - start
    assert [r.passed for r in results] == [1] * 4
    assert elapsed < 3.0, f"4 one-second runs with 4 workers took {elapsed:.1f} s: they did not overlap"


def test_concurrent_runs_cannot_see_each_other(sandbox, unharmed):
    secret = "secret-" + uuid.uuid4().hex
    writer = (
        "import os, time, _posixshmem\n"
        f"open('secret.txt', 'w').write({secret!r})\n"
        f"fd = _posixshmem.shm_open('/{secret}', os.O_CREAT | os.O_RDWR, 0o644)\n"
        f"os.write(fd, {secret.encode()!r})\n"
        "time.sleep(2)\nok = True\n"
    )
    reader = (
        "import os, time\ntime.sleep(0.5)\nseen = False\n"
        "for top in ('/dev/shm', os.path.dirname(os.path.dirname(os.getcwd())), '/tmp', '/proc'):\n"
        "    for where, _, names in os.walk(top):\n"
        "        if seen or where.startswith('/proc/') and where.count('/') > 2:\n"
        "            continue\n"
        "        for name in names:\n"
        "            try:\n"
        "                with open(os.path.join(where, name), 'rb') as f:\n"
        f"                    seen = seen or {secret.encode()!r} in f.read(1 << 16)\n"
        "            except OSError:\n"
        "                pass\n"
    )
    try:
        results = sandbox.run_many([writer, reader], [["assert ok"], ["assert seen"]])
    finally:
        Path("/dev/shm", secret).unlink(missing_ok=True)
    assert [r.passed for r in results] == [1, 0], results[1].stderr_tail


def test_a_runs_scratch_is_its_own_and_private(sandbox, unharmed):
    # the scratch directory is a fresh tmpfs in the run's own mount namespace (no other run, nor the
    # host, can see into it), capped in size; the run's directory above it is closed to its uid
    program = (
        "import os\nfresh = os.listdir('.') == []\ninfo = os.statvfs('.')\n"
        "size = info.f_blocks * info.f_frsize\n"
        "try:\n    os.listdir('..')\n    parent = 'listable'\n"
        "except PermissionError:\n    parent = 'closed'\n"
    )
    tests = ["assert fresh", f"assert size <= {LIMITS.scratch_mb << 20}", "assert size > 0"]
    tests += ["assert parent == 'closed'"] * sandbox.dedicated
    assert sandbox.run(program, tests).passed == len(tests)


def test_the_program_holds_no_capability_and_as_root_not_root(sandbox, unharmed):
    program = (
        "import os\n"
        "status = dict(line.split(':', 1) for line in open('/proc/self/status').read().splitlines())\n"
        "caps = [int(status[key], 16) for key in ('CapEff', 'CapPrm', 'CapAmb')]\n"
        "uid = os.getuid()\n"
    )
    tests = ["assert caps == [0, 0, 0]", *(["assert uid != 0"] * sandbox.dedicated)]
    result = sandbox.run(program, tests)
    assert result.passed == len(tests), result.stderr_tail


# --------------------------------------------------------------------------------- modes
def test_the_unsafe_mode_warns_on_every_run():
    unsafe = Sandbox(LIMITS, mode="unsafe_audit_only")
    with pytest.warns(UserWarning, match="unsafe_audit_only") as caught:
        unsafe.run("x = 1", ["assert x == 1"])
        unsafe.run("x = 1", ["assert x == 1"])
    assert len([w for w in caught if "unsafe_audit_only" in str(w.message)]) == 2


def test_the_code_reward_passes_its_sandbox_mode_on():
    with pytest.raises(ValueError, match="sandbox mode='audit'"):
        code_tests_reward(["x = 1"], ["p"], tests=[["assert x == 1"]], sandbox="audit")
    with pytest.warns(UserWarning, match="unsafe_audit_only"):
        assert code_tests_reward(
            ["x = 1"], ["p"], tests=[["assert x == 1"]], sandbox="unsafe_audit_only"
        ) == [1.0]


def test_without_bubblewrap_the_default_mode_refuses_to_start(monkeypatch):
    monkeypatch.setattr(isolation.shutil, "which", lambda name: None)
    isolation.check_bwrap.cache_clear()
    try:
        with pytest.raises(MachineSetupError, match="apt-get install bubblewrap.*unsafe_audit_only"):
            Sandbox(LIMITS)
    finally:
        isolation.check_bwrap.cache_clear()


def test_root_drops_to_a_host_uid_and_others_use_a_user_namespace():
    # as root no user namespace (so the dedicated uid is a real one, under RLIMIT_NPROC), keeping
    # only the capabilities to switch to it; otherwise a user namespace and no capability
    as_root = isolation.bwrap_command("/usr/bin/python3", "/tmp/run", "/tmp/run/scratch", 1 << 20, 3, as_root=True)
    other = isolation.bwrap_command("/usr/bin/python3", "/tmp/run", "/tmp/run/scratch", 1 << 20, 3, as_root=False)
    assert "--unshare-all" not in as_root and "--unshare-user" not in as_root
    assert [as_root[i + 1] for i, arg in enumerate(as_root) if arg == "--cap-add"] == [
        "CAP_SETUID",
        "CAP_SETGID",
    ]
    assert "--unshare-all" in other and "--cap-add" not in other
    assert "--unshare-net" in as_root and "--unshare-pid" in as_root
    for command in (as_root, other):
        assert {"--die-with-parent", "--new-session", "--seccomp"} <= set(command)


def _orphaned_zombies() -> set[int]:
    """Ended processes left to the machine's init, which in some containers never reaps them."""
    found = set()
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] == "Z" and fields[1] == "1":
            found.add(int(entry))
    return found


def test_runs_leave_no_unreaped_process_behind(sandbox, unharmed):
    before = _orphaned_zombies()
    for program in ("x = 1\n", "import time\ntime.sleep(60)\n", "while True:\n    print('x' * 4096)\n"):
        sandbox.run(program, ["assert x == 1"])
    assert _orphaned_zombies() - before == set()


def test_code_rewards_check_the_sandbox_when_the_rewards_are_built_not_at_the_first_step(monkeypatch):
    monkeypatch.setattr(isolation.shutil, "which", lambda name: None)
    isolation.check_bwrap.cache_clear()
    try:
        with pytest.raises(MachineSetupError, match="apt-get install bubblewrap"):
            RewardModel([RewardConfig(name="code_tests")])
        with pytest.raises(ValueError, match="sandbox.*'bwarp'.*Did you mean 'bwrap'"):
            RewardModel([RewardConfig(name="code_tests", params={"sandbox": "bwarp"})])
        RewardModel([RewardConfig(name="code_tests", params={"sandbox": "unsafe_audit_only"})])  # asked for
    finally:
        isolation.check_bwrap.cache_clear()


# --------------------------------------------------------------------------------- no new processes
# Clears every set and dict the audit hook consults (so it no longer refuses os.fork or
# os.posix_spawn), then tries to start processes and a thread; records the errno of each refusal.
_START_PROCESSES = """
import os, sys, threading
frame = sys._getframe(0)
while frame is not None:
    for value in list(frame.f_locals.values()):
        if isinstance(value, (set, dict)) and value is not globals():
            value.clear()
    frame = frame.f_back
try:
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    forked = 'forked'
except OSError as error:
    forked = error.errno
try:
    os.waitpid(os.posix_spawn(sys.executable, [sys.executable, '-I', '-S', '-c', 'pass'], {}), 0)
    spawned = 'spawned'
except OSError as error:
    spawned = error.errno
ran = []
thread = threading.Thread(target=ran.append, args=('thread',))
thread.start()
thread.join()
"""


@pytest.mark.parametrize("mode", ["bwrap", "unsafe_audit_only"])
@pytest.mark.filterwarnings("ignore:code sandbox mode 'unsafe_audit_only'")
def test_refused_processes_fail_in_the_kernel_without_the_audit_hook_but_threads_start(
    sandbox, unharmed, mode
):
    refused = Sandbox(LIMITS, mode=mode, scratch_root=sandbox.scratch_root, processes="refused")
    tests = ["assert forked == 1", "assert spawned == 1", "assert ran == ['thread']"]  # 1: EPERM
    result = refused.run(_START_PROCESSES, tests)
    assert result.passed == 3, result.stderr_tail
    # the same program does start processes where they are allowed: the hook alone did not stop them
    if sandbox.processes == "dedicated_uid":
        allowed = sandbox.run(_START_PROCESSES, ["assert forked == 'forked'", "assert spawned == 'spawned'"])
        assert allowed.passed == 2, allowed.stderr_tail


def test_refused_processes_leave_ctypes_unimportable(sandbox, unharmed):
    refused = Sandbox(LIMITS, scratch_root=sandbox.scratch_root, processes="refused")
    program = "import sys\nloaded = sorted(n for n in sys.modules if 'ctypes' in n)\n"
    attack = "import ctypes\nctypes.CDLL(None)\noutcome = 'escaped'"
    assert refused.run(program, ["assert loaded == []"]).passed == 1
    assert _attack(refused, attack) == 0


def test_the_processes_setting_defaults_from_root_and_is_validated(sandbox):
    assert sandbox.processes == ("dedicated_uid" if os.geteuid() == 0 else "refused")
    with pytest.raises(ValueError, match="sandbox processes='forbidden'.*'refused'"):
        Sandbox(LIMITS, processes="forbidden")
    if os.geteuid() != 0:
        with pytest.raises(ValueError, match="needs root"):
            Sandbox(LIMITS, processes="dedicated_uid")


def test_a_run_whose_process_filter_cannot_load_fails_without_running_the_program(
    sandbox, unharmed, monkeypatch
):
    refused = Sandbox(LIMITS, scratch_root=sandbox.scratch_root, processes="refused")
    monkeypatch.setattr(isolation, "no_new_processes_filter", lambda: b"\0" * 8)  # a rejected program
    result = refused.run("print('ran')", [{"input": "", "output": "ran\n"}])
    assert result.status == "error" and result.passed == 0
    assert "seccomp filter refusing new processes could not be loaded" in result.stderr_tail


def test_a_runs_scratch_is_capped_in_all_not_only_per_file(tmp_path):
    root = tmp_path / "runs"
    root.mkdir()
    root.chmod(0o711)
    tmp_path.chmod(0o711)
    small = Sandbox(Limits(wall_s=5.0, cpu_s=2, file_size_mb=1, scratch_mb=2), workers=1, scratch_root=str(root))
    # each file within the per-file limit; together they pass the run's 2 MB of scratch
    attempt = "for i in range(4):\n    open(f'part{i}', 'wb').write(b'x' * 900_000)\noutcome = 'escaped'"
    assert _attack(small, attempt) == 0
    assert _attack(small, "open('part', 'wb').write(b'x' * 900_000)\noutcome = 'escaped'") == 1  # one fits
