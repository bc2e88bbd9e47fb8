"""The code sandbox: hostile programs score 0 (or missing, for a timeout) and leave the trainer,
its files and the machine as they were; correct programs pass and partial ones get their fraction.

Every hostile program runs under both modes: ``bwrap`` (the default: bubblewrap's namespaces, an
empty root file system and a seccomp filter; here, as root, with a dedicated uid) and
``unsafe_audit_only`` (``unshare`` where it works and the audit hook), so the old mechanism stays
tested. Hostile programs that only the kernel isolation stops are in ``test_isolation.py``.
"""

from __future__ import annotations

import os
import socket
import stat
import tempfile
import uuid
from pathlib import Path

import pytest
from rewards.sandbox_checks import leftovers

from grpozoo.rewards import sandbox_process
from grpozoo.rewards.sandbox import Limits, Sandbox
from grpozoo.rewards.test_cases import TestCase, parse_tests, same_output

LIMITS = Limits(wall_s=2.0, cpu_s=1, memory_mb=128, max_processes=8, file_size_mb=1, output_bytes=64 << 10)
SECRET_NAME = "GRPOZOO_SANDBOX_TEST_SECRET"
SECRET = "s3cret-" + uuid.uuid4().hex
MODES = ("bwrap", "unsafe_audit_only")
pytestmark = pytest.mark.filterwarnings("ignore:code sandbox mode 'unsafe_audit_only'")


@pytest.fixture(scope="module", params=MODES)
def sandbox(request) -> Sandbox:
    # its own scratch root, so the checks below can tell this sandbox's processes and directories;
    # under /tmp, because a dedicated uid must be able to pass through every parent directory
    root = Path(tempfile.mkdtemp(prefix=f"grpozoo-sandbox-test-{request.param}-"))
    root.chmod(0o711)
    yield Sandbox(LIMITS, workers=2, scratch_root=str(root), mode=request.param)
    root.rmdir()


# --------------------------------------------------------------------------------- correct programs
def test_correct_program_passes_every_assert_test(sandbox, unharmed):
    result = sandbox.run(
        "def add(a, b):\n    return a + b\n", ["assert add(1, 2) == 3", "assert add(-1, 1) == 0"]
    )
    assert (result.passed, result.total, result.status, result.fraction) == (2, 2, "ok", 1.0)


def test_partially_correct_program_gets_its_fraction(sandbox, unharmed):
    # right for non-negative numbers only: 2 of the 3 tests pass
    program = "def absolute(x):\n    return x\n"
    tests = ["assert absolute(3) == 3", "assert absolute(0) == 0", "assert absolute(-2) == 2"]
    result = sandbox.run(program, tests)
    assert (result.passed, result.total, result.status) == (2, 3, "ok")
    assert result.fraction == pytest.approx(2 / 3)
    assert "AssertionError" in result.stderr_tail


def test_stdin_stdout_tests_compare_output_line_by_line(sandbox, unharmed):
    program = "a, b = map(int, input().split())\nprint(a + b)\nprint('done')   \n"
    tests = {"inputs": ["1 2\n", "5 5\n", "0 0\n"], "outputs": ["3\ndone\n", "10\ndone", "1\ndone\n"]}
    result = sandbox.run(program, tests)
    assert (result.passed, result.total, result.status) == (2, 3, "ok")


def test_a_script_may_end_itself_after_printing_its_answer(sandbox, unharmed):
    program = "import sys\nprint(int(input()) * 2)\nsys.stdout.flush()\nsys.exit(0)\n"
    result = sandbox.run(program, [{"input": "21", "output": "42"}])
    assert (result.passed, result.status) == (1, "ok")


def test_program_uses_the_standard_library_and_its_scratch_directory(sandbox, unharmed):
    program = (
        "import collections, fractions, json, os, tempfile\n"
        "with open('notes.txt', 'w') as f:\n    f.write(json.dumps({'a': 1}))\n"
        "with tempfile.NamedTemporaryFile('w', delete=False) as f:\n    f.write('x')\n"
        "os.remove('notes.txt')\n"
        "def half(x):\n    return fractions.Fraction(x, 2)\n"
    )
    result = sandbox.run(
        program, ["assert str(half(3)) == '3/2'", "here = os.getcwd() == os.environ['HOME']\nassert here"]
    )
    assert (result.passed, result.status) == (2, "ok"), result.stderr_tail


def test_many_programs_in_parallel_keep_their_order(sandbox, unharmed):
    programs = [f"def f():\n    return {i}\n" for i in range(6)]
    results = sandbox.run_many(programs, [[f"assert f() == {i}"] for i in (0, 1, 9, 3, 9, 5)])
    assert [r.passed for r in results] == [1, 1, 0, 1, 0, 1]


def test_the_isolation_used_is_named(sandbox):
    if sandbox.mode == "bwrap":
        assert sandbox.isolation.startswith("bubblewrap: PID, network, IPC and mount namespaces")
    else:
        assert sandbox.isolation.startswith("UNSAFE audit hook only")
    assert ("dedicated uid" in sandbox.isolation) == sandbox.dedicated == (os.geteuid() == 0)


# --------------------------------------------------------------------------------- hostile programs
def _hostile(sandbox, program: str, tests=("assert True",)):
    return sandbox.run(program, list(tests))


def test_infinite_loop_times_out_and_scores_missing(sandbox, unharmed):
    result = _hostile(sandbox, "while True:\n    pass\n")
    assert result.status == "timeout" and result.fraction is None


def test_sleeping_forever_is_stopped_by_the_wall_clock(sandbox, unharmed):
    result = _hostile(sandbox, "import time\ntime.sleep(3600)\n")
    assert result.status == "timeout" and result.fraction is None


def test_timeout_stops_the_remaining_tests(sandbox, unharmed):
    result = sandbox.run(
        "import time\ndef f():\n    time.sleep(3600)\n", ["assert True", "assert f() is None", "assert True"]
    )
    assert (result.passed, result.total, result.status, result.fraction) == (1, 3, "timeout", None)


def test_fork_bomb_is_capped(sandbox, unharmed):
    result = _hostile(sandbox, "import os\nwhile True:\n    os.fork()\n")
    assert result.fraction == 0.0 and result.status == "error"
    expected = "Resource temporarily unavailable" if sandbox.dedicated else "os.fork is refused"
    assert expected in result.stderr_tail


def test_fork_bomb_that_ignores_errors_ends_by_timeout(sandbox, unharmed):
    program = "import os\nwhile True:\n    try:\n        os.fork()\n    except Exception:\n        pass\n"
    assert _hostile(sandbox, program).status == "timeout"


def test_daemon_that_leaves_the_process_group_is_killed(sandbox, unharmed):
    program = "import os, time\nif os.fork() == 0:\n    os.setsid()\n    time.sleep(3600)\n"
    assert _hostile(sandbox, program, ["assert False"]).fraction == 0.0  # `unharmed` checks it is gone


def test_thread_bomb_is_capped(sandbox, unharmed):
    program = (
        "import threading, time\nwhile True:\n    threading.Thread(target=time.sleep, args=(3600,)).start()\n"
    )
    result = _hostile(sandbox, program)
    assert result.fraction == 0.0 and result.status in ("error", "memory")


@pytest.mark.parametrize(
    "program",
    ["x = bytearray(1 << 34)\n", "chunks = []\nwhile True:\n    chunks.append(bytearray(1 << 24))\n"],
    ids=["at-once", "gradual"],
)
def test_memory_bomb_hits_the_memory_cap(sandbox, unharmed, program):
    result = _hostile(sandbox, program)
    assert result.status == "memory" and result.fraction == 0.0


def test_no_internet(sandbox, unharmed):
    program = "import socket\nsocket.create_connection(('1.1.1.1', 53), timeout=1).close()\n"
    result = _hostile(sandbox, program)
    assert result.fraction == 0.0 and result.status == "error"


def test_no_connection_to_a_local_listening_socket(sandbox, unharmed):
    with socket.socket() as listener, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        udp.bind(("127.0.0.1", 0))
        tcp_port, udp_port = listener.getsockname()[1], udp.getsockname()[1]
        program = (
            "import socket\n"
            f"socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b'hello', ('127.0.0.1', {udp_port}))\n"
            f"socket.create_connection(('127.0.0.1', {tcp_port}), timeout=1).sendall(b'hello')\n"
        )
        result = _hostile(sandbox, program)
        listener.setblocking(False)
        udp.setblocking(False)
        with pytest.raises(BlockingIOError):
            listener.accept()
        with pytest.raises(BlockingIOError):
            udp.recv(16)
    assert result.fraction == 0.0 and result.status == "error"


def test_no_write_outside_the_scratch_directory(sandbox, unharmed, tmp_path, shared_dir):
    targets = [tmp_path / "pwned.txt", shared_dir / "pwned.txt", shared_dir / "via-os-open.txt"]
    program = (
        "import os\n"
        f"for path in {[str(t) for t in targets[:2]]!r}:\n"
        "    try:\n        open(path, 'w').write('pwned')\n    except OSError:\n        pass\n"
        f"os.close(os.open({str(targets[2])!r}, os.O_WRONLY | os.O_CREAT))\n"
    )
    result = _hostile(sandbox, program)
    assert result.fraction == 0.0 and "writing outside the scratch directory" in result.stderr_tail
    assert not any(t.exists() for t in targets)


def test_no_write_through_a_symlink_or_another_program(sandbox, unharmed, shared_dir):
    target = shared_dir / "pwned.txt"
    program = (
        "import os\n"
        f"os.symlink({str(target)!r}, 'link')\n"
        "try:\n    open('link', 'w').write('pwned')\nexcept OSError:\n    pass\n"
        f"os.system('echo pwned > {target}')\n"
    )
    result = _hostile(sandbox, program)
    assert result.fraction == 0.0 and "os.system is refused" in result.stderr_tail
    assert not target.exists()


def test_no_delete_rename_or_chmod_outside(sandbox, unharmed, shared_dir):
    victims = [shared_dir / name for name in ("a.txt", "b.txt", "c.txt")]
    for victim in victims:
        victim.write_text("keep")
        victim.chmod(0o666)
    program = (
        "import os, shutil\n"
        "attempts = [\n"
        f"    lambda: os.remove({str(victims[0])!r}),\n"
        f"    lambda: os.rename({str(victims[1])!r}, 'stolen.txt'),\n"
        f"    lambda: os.chmod({str(victims[2])!r}, 0o777),\n"
        f"    lambda: shutil.rmtree({str(shared_dir)!r}),\n"
        "]\n"
        "refused = 0\n"
        "for attempt in attempts:\n"
        "    try:\n        attempt()\n    except OSError:\n        refused += 1\n"
    )
    result = _hostile(sandbox, program, ["assert refused == 0"])
    assert result.fraction == 0.0 and result.status == "ok"  # all four refused, so the test fails
    assert [v.read_text() for v in victims] == ["keep"] * 3
    assert stat.S_IMODE(victims[2].stat().st_mode) == 0o666


def test_a_file_cannot_grow_past_the_file_size_limit(sandbox, unharmed):
    result = _hostile(sandbox, "with open('big', 'wb') as f:\n    f.write(b'x' * (4 << 20))\n")
    assert result.fraction == 0.0 and "File too large" in result.stderr_tail


def test_the_trainers_environment_does_not_reach_the_program(sandbox, unharmed, monkeypatch):
    monkeypatch.setenv(SECRET_NAME, SECRET)
    program = "import os, sys\nprint(dict(os.environ))\nprint(dict(os.environ), file=sys.stderr)\n"
    result = _hostile(sandbox, program, [f"assert os.environ.get({SECRET_NAME!r}) is not None"])
    assert result.fraction == 0.0 and result.status == "ok"
    assert SECRET not in result.stderr_tail and "HOME" in result.stderr_tail


def test_another_process_environment_cannot_be_read(sandbox, unharmed):
    program = f"data = open('/proc/{os.getpid()}/environ', 'rb').read()\n"
    result = _hostile(sandbox, program, ["assert b'PATH=' in data"])
    assert result.fraction == 0.0 and result.status == "error"
    # not visible from a PID namespace with its own /proc; closed to another uid or by the hook
    expected = "FileNotFoundError" if sandbox.mode == "bwrap" else "PermissionError"
    assert expected in result.stderr_tail


def test_the_trainer_and_the_sandbox_supervisor_cannot_be_killed(sandbox, unharmed):
    # in a PID namespace the trainer is not even visible (ProcessLookupError); the supervisor (the
    # program's parent) belongs to another uid or is protected by the hook (PermissionError)
    program = (
        "import os, signal\nerrors = []\n"
        f"for pid in ({os.getpid()}, os.getppid()):\n"
        "    try:\n        os.kill(pid, signal.SIGKILL)\n    except OSError as error:\n"
        "        errors.append(type(error).__name__)\n"
    )
    result = _hostile(sandbox, program, ["assert errors == [], errors"])
    assert result.fraction == 0.0 and result.status == "ok"
    trainer_error = "ProcessLookupError" if sandbox.namespaces else "PermissionError"
    assert f"['{trainer_error}', 'PermissionError']" in result.stderr_tail


@pytest.mark.parametrize(
    "program",
    ["import sys\nsys.exit(0)\n", "import os\nos._exit(0)\n", "raise SystemExit\n"],
    ids=["sys.exit", "os._exit", "SystemExit"],
)
def test_exiting_early_does_not_pass_the_tests(sandbox, unharmed, program):
    result = _hostile(sandbox, program)
    assert result.fraction == 0.0 and result.status == "error"


def test_flooding_stdout_is_killed(sandbox, unharmed):
    result = _hostile(sandbox, "while True:\n    print('x' * 4096)\n")
    assert result.status == "killed" and result.fraction == 0.0
    assert "stdout passed" in result.stderr_tail


def test_flooding_stderr_keeps_only_its_tail(sandbox, unharmed):
    result = _hostile(sandbox, "import sys\nwhile True:\n    sys.stderr.write('y' * 4096)\n")
    assert result.status == "timeout" and len(result.stderr_tail) <= LIMITS.stderr_chars


@pytest.mark.parametrize(
    "program",
    [
        "import ctypes\n",
        "import subprocess\nsubprocess.run(['true'])\n",
        "import os\nos.execv('/bin/true', ['true'])\n",
        "import resource\nresource.setrlimit(resource.RLIMIT_AS, (-1, -1))\n",
    ],
    ids=["ctypes", "subprocess", "exec", "setrlimit"],
)
def test_escape_hatches_are_refused(sandbox, unharmed, program):
    result = _hostile(sandbox, program)
    assert result.fraction == 0.0 and result.status == "error"
    assert "refused" in result.stderr_tail


def test_syntax_error_scores_zero(sandbox, unharmed):
    result = _hostile(sandbox, "def broken(:\n")
    assert result.fraction == 0.0 and "SyntaxError" in result.stderr_tail


# --------------------------------------------------------------------------------- parsing and errors
def test_parse_tests_reads_every_documented_form():
    assert parse_tests(["assert f(1) == 1"]) == [TestCase(code="assert f(1) == 1")]
    assert parse_tests([{"input": "1\n", "output": "2"}]) == [TestCase(stdin="1\n", expected="2")]
    assert parse_tests({"inputs": ["1", "2"], "outputs": ["2", "4"]}) == [
        TestCase(stdin="1", expected="2"),
        TestCase(stdin="2", expected="4"),
    ]
    assert parse_tests('[{"input": "1", "output": "2"}]') == [TestCase(stdin="1", expected="2")]
    assert parse_tests("assert g() is None") == [TestCase(code="assert g() is None")]
    with pytest.raises(ValueError, match="'output' key"):
        parse_tests([{"input": "1"}])
    with pytest.raises(ValueError, match="2 inputs but 1 outputs"):
        parse_tests({"inputs": ["1", "2"], "outputs": ["2"]})
    with pytest.raises(ValueError, match="cannot read int"):
        parse_tests(7)


def test_same_output_ignores_trailing_whitespace_only():
    assert same_output("1 2  \n3\n\n", "1 2\n3")
    assert same_output("a\r\nb\r\n", "a\nb")
    assert not same_output("1  2\n", "1 2\n")
    assert not same_output("\n1\n", "1\n")


def test_bad_settings_name_the_setting():
    with pytest.raises(ValueError, match="wall_s=0"):
        Limits(wall_s=0)
    with pytest.raises(ValueError, match="mode='internet'"):
        Sandbox(mode="internet")
    with pytest.raises(ValueError, match="at least one test case"):
        Sandbox(LIMITS).run("x = 1", [])


# --------------------------------------------------------------------------------- without namespaces
@pytest.mark.skipif(os.geteuid() != 0, reason="a dedicated uid needs root")
def test_a_dedicated_uid_without_namespaces_still_cleans_up_and_has_no_network(monkeypatch):
    """Where ``unshare`` is unavailable, a root trainer still runs each program under a dedicated
    uid (so RLIMIT_NPROC applies) and kills every process of that uid afterwards, including one
    that left the process group; the network is refused by the audit hook."""
    root = Path(tempfile.mkdtemp(prefix="grpozoo-sandbox-test-uid-"))
    root.chmod(0o711)
    monkeypatch.setattr(sandbox_process, "unshare_args", lambda: None)
    sandbox = Sandbox(LIMITS, scratch_root=str(root), mode="unsafe_audit_only")
    assert sandbox.isolation.startswith("UNSAFE audit hook only: no network (audit hook); dedicated uid")
    daemon = "import os, time\nif os.fork() == 0:\n    os.setsid()\n    time.sleep(3600)\n"
    resilient_bomb = (
        "import os\nwhile True:\n    try:\n        os.fork()\n    except Exception:\n        pass\n"
    )
    network = "import socket\nsocket.create_connection(('127.0.0.1', 9), timeout=1)\n"
    results = [sandbox.run(p, ["assert False"]) for p in (daemon, resilient_bomb, network)]
    assert [r.status for r in results] == ["ok", "timeout", "error"]
    assert "network access (socket." in results[2].stderr_tail
    assert leftovers(str(root)) == [] and os.listdir(root) == []
    root.rmdir()
