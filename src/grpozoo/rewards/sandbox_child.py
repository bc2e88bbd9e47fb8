"""The bootstrap that runs inside the code sandbox's child process (see ``grpozoo.rewards.sandbox``).

``Sandbox`` passes this file's source text to ``python -I -S -B -X utf8 -c SOURCE job.json`` (inside
bubblewrap, or ``unshare`` in the unsafe mode); it is never imported in the child, which runs
without site-packages. It reads its job (then deletes it, so the program cannot read the tests) and
forks: the fork sets the limits, drops to the dedicated uid or, where the program may not start
processes, loads the seccomp filter that refuses them (``isolation.no_new_processes_filter``, sent
in the job as hex; the run fails rather than go on without it), installs the audit hook and runs
the program and the test; the bootstrap itself only waits for it and reports how it ended in its exit
status (128 + signal when killed by a signal; the program's own exit codes are kept below 128, so a
program cannot pass itself off as timed out). For an assert test the fork then runs the test's setup
statements and evaluates each probe's expression, writing its value to stdout as a line ``MARKER
VALUE`` (encoded by ``_encode``); the expected values never come here, the trainer compares them
(``grpozoo.rewards.test_cases``). In a PID namespace, when the bootstrap exits the namespace ends
and the kernel kills every process left in it. The run's state lives in a function so the
program's ``import __main__`` sees none of it (only stateless helpers: replacing them can garble
what is sent, never supply the expected values). Only the standard library, imported inside the
functions, and nothing that would leave ``subprocess`` or ``ctypes`` imported for the program to
use (``ctypes``, needed to load the filter, is removed from ``sys.modules`` before it runs).
"""

# ruff: noqa: UP031  (the %-formatting is kept as it was when this ran from a string)


def _sandbox_main():
    import json
    import os
    import sys
    path = sys.argv[1]
    with open(path, "rb") as f:
        job = json.loads(f.read())
    os.remove(path)
    pid = os.fork()
    if pid == 0:
        try:
            _run_program(job)
        finally:
            os._exit(job["exit_codes"][1])
    del job
    while True:
        try:
            _, status = os.waitpid(pid, 0)
            break
        except InterruptedError:
            continue
    if os.WIFSIGNALED(status):
        os._exit(128 + os.WTERMSIG(status))
    os._exit(min(os.WEXITSTATUS(status), 127))


def _run_program(job):
    import os
    import resource
    import sys
    limits, scratch, uid = job["limits"], os.path.realpath(job["scratch"]), job["uid"]
    marker, program, value_bytes = job["marker"].encode(), job["program"], job["value_bytes"]
    steps = job["steps"]
    stdio = steps is None
    same_user, audit_network = job["same_user"], job["audit_network"]
    no_new_processes = job["no_new_processes"]
    exit_assertion, exit_error, exit_memory = job["exit_codes"]
    job.clear()

    def cap(kind, value):
        resource.setrlimit(kind, (value, value))

    resource.setrlimit(resource.RLIMIT_CPU, (limits["cpu_s"], limits["cpu_s"] + 1))
    cap(resource.RLIMIT_CORE, 0)
    cap(resource.RLIMIT_FSIZE, limits["file_size"])
    cap(resource.RLIMIT_NOFILE, limits["open_files"])
    if uid is not None:
        cap(resource.RLIMIT_NPROC, limits["max_processes"])
        # The standard library may sit below a directory the dedicated uid cannot enter (such as
        # /root); directory descriptors opened now keep it importable through /proc/self/fd, for
        # new imports (sys.path) and for the submodules of packages already imported (__path__).
        moved = {}
        for entry in sys.path:
            if entry and os.path.isdir(entry):
                moved[entry] = "/proc/self/fd/%d" % os.open(entry, os.O_RDONLY | os.O_DIRECTORY)
        sys.path[:] = list(moved.values())
        for module in list(sys.modules.values()):
            search = getattr(module, "__path__", None)
            if isinstance(search, list):
                for i, location in enumerate(search):
                    for old, new in moved.items():
                        if location == old or location.startswith(old + "/"):
                            search[i] = new + location[len(old):]
        sys.path_importer_cache.clear()
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)

    write_flags = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
    own_pid = os.getpid()
    # event: (indices of the paths it writes, indices of its dir_fd arguments)
    writes = {
        "os.remove": ((0,), (1,)), "os.rmdir": ((0,), (1,)), "os.mkdir": ((0,), (2,)),
        "os.rename": ((0, 1), (2, 3)), "os.chmod": ((0,), (2,)), "os.chown": ((0,), (3,)),
        "os.utime": ((0,), (3,)), "os.symlink": ((1,), (2,)), "os.truncate": ((0,), ()),
        "shutil.rmtree": ((0,), (1,)), "sqlite3.connect": ((0,), ()), "os.chflags": ((0,), ()),
        "os.lchflags": ((0,), ()), "os.setxattr": ((0,), ()), "os.removexattr": ((0,), ()),
    }
    refused = {
        "os.system", "os.exec", "os.posix_spawn", "subprocess.Popen", "os.link",
        "resource.setrlimit", "resource.prlimit",
    }
    if no_new_processes is not None:
        refused |= {"os.fork", "os.forkpty"}

    def inside(path):
        if isinstance(path, int):
            return False
        try:
            real = os.path.realpath(os.fsdecode(path))
        except Exception:
            return False
        return real == scratch or real.startswith(scratch + "/") or real == "/dev/null"

    def other_process(path):
        parts = os.path.realpath(os.fsdecode(path)).split("/")
        return len(parts) > 2 and parts[1] == "proc" and parts[2].isdigit() and int(parts[2]) != own_pid

    def refuse(what):
        raise PermissionError("sandbox: " + what + " is refused")

    def hook(event, args):
        if event == "open":
            path, mode, flags = args
            if isinstance(path, int):
                return
            writing = bool(flags & write_flags) if isinstance(flags, int) else any(c in (mode or "") for c in "wax+")
            if writing and not inside(path):
                refuse("writing outside the scratch directory (%s)" % (path,))
            if same_user and other_process(path):
                refuse("reading another process's /proc entry (%s)" % (path,))
        elif event in writes:
            paths, dir_fds = writes[event]
            if any(args[i] not in (None, -1) for i in dir_fds if i < len(args)):
                refuse(event + " relative to a directory descriptor")
            for i in paths:
                if not (event == "os.truncate" and isinstance(args[i], int)) and not inside(args[i]):
                    refuse("%s outside the scratch directory (%s)" % (event, args[i]))
        elif event in refused or event.startswith("ctypes."):
            refuse(event)
        elif event == "import" and args[0] in ("_posixsubprocess", "_ctypes"):
            raise ImportError("sandbox: importing " + args[0] + " is refused")
        elif audit_network and event.startswith("socket."):
            refuse("network access (" + event + ")")
        elif same_user and event in ("os.kill", "os.killpg") and args[0] != own_pid:
            refuse("signalling another process")

    cap(resource.RLIMIT_AS, limits["memory"])
    if no_new_processes is not None:
        try:
            _load_seccomp(bytes.fromhex(no_new_processes))
        except BaseException as error:
            os.write(2, b"\nsandbox: the seccomp filter refusing new processes could not be loaded (%r); "
                     b"the program was not run\n" % (error,))
            os._exit(exit_error)
        import gc
        gc.collect()  # frees what is left of ctypes (its classes sit in reference cycles)
    sys.addaudithook(hook)
    namespace = {"__name__": "__main__" if stdio else "__program__", "__builtins__": __builtins__}
    in_test = False  # an exception in the test's setup or probes fails the test, not the run
    try:
        exec(compile(program, "<program>", "exec"), namespace)
        in_test = True
        for kind, source in steps or ():
            if kind == "setup":
                exec(compile(source, "<test>", "exec"), namespace)
                continue
            value = eval(compile(source, "<test>", "eval"), namespace)
            line = b"\n" + marker + b" " + _encode_line(value, value_bytes) + b"\n"
            while line:
                line = line[os.write(1, line):]
    except SystemExit as error:
        if not (stdio and error.code in (None, 0)):
            os.write(2, b"\nsandbox: the program exited (%r) before the test finished\n" % (error.code,))
            os._exit(exit_error)
    except MemoryError:
        os.write(2, b"\nMemoryError\n")
        os._exit(exit_memory)
    except BaseException as error:
        _print_exception()
        os._exit(exit_assertion if in_test or isinstance(error, AssertionError) else exit_error)
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except BaseException:
        os._exit(exit_error)
    os._exit(0)


def _load_seccomp(program):
    """Loads the seccomp BPF ``program`` (``struct sock_filter`` array) into this process for good,
    through ``prctl``, then removes ``ctypes`` from ``sys.modules`` so the program cannot reach it
    (the audit hook refuses importing it again)."""
    import ctypes
    import sys
    try:
        class SockFprog(ctypes.Structure):
            _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

        instructions = ctypes.create_string_buffer(program, len(program))
        fprog = SockFprog(len(program) // 8, ctypes.addressof(instructions))
        prctl = ctypes.CDLL(None, use_errno=True).prctl
        ulong = ctypes.c_ulong
        # PR_SET_NO_NEW_PRIVS = 38, then PR_SET_SECCOMP = 22 with SECCOMP_MODE_FILTER = 2
        for args in ((ulong(38), ulong(1)), (ulong(22), ulong(2), ctypes.byref(fprog))):
            if prctl(*args, *[ulong(0)] * (5 - len(args))) != 0:
                raise OSError(ctypes.get_errno(), "prctl(%d) failed" % args[0].value)
    finally:
        for name in [n for n in sys.modules if n in ("ctypes", "_ctypes") or n.startswith("ctypes.")]:
            del sys.modules[name]


def _encode_line(value, cap):
    """A probe's value as one line of JSON (``test_cases.decode_value`` reads it): plain data only,
    checked by exact type so that no method of the program's runs; anything else, or a line over
    ``cap`` bytes, is sent as ``{"unencodable": why}``."""
    import json
    try:
        text = json.dumps(_encode(value, 0)).encode()
    except RecursionError:
        text = b'{"unencodable": "is nested too deeply"}'
    except (TypeError, ValueError) as error:
        text = json.dumps({"unencodable": str(error)}).encode()
    if len(text) > cap:
        return b'{"unencodable": "is over %d bytes encoded"}' % cap
    return text


def _encode(value, depth):
    """``value`` as JSON-ready data, floats, complex numbers, bytes and containers other than
    lists as one-key tagged objects; raises TypeError for anything else."""
    kind = type(value)
    if value is None or kind is bool or kind is str:
        return value
    if kind is int:
        if value.bit_length() > 10000:
            raise ValueError("is an int over 10000 bits")
        return value
    if kind is float:
        return {"float": float.hex(value)}
    if kind is complex:
        return {"complex": [float.hex(value.real), float.hex(value.imag)]}
    if kind is bytes:
        return {"bytes": bytes.hex(value)}
    if depth > 100:
        raise RecursionError
    if kind is list:
        return [_encode(item, depth + 1) for item in value]
    if kind in (tuple, set, frozenset):
        return {kind.__name__: [_encode(item, depth + 1) for item in value]}
    if kind is dict:
        return {"dict": [[_encode(k, depth + 1), _encode(v, depth + 1)] for k, v in value.items()]}
    raise TypeError(
        "is a %s, which the sandbox does not read back (only None, bool, int, float, complex, str, bytes, "
        "list, tuple, set, frozenset and dict)" % type.__repr__(kind)
    )


def _print_exception():
    try:
        import traceback
        traceback.print_exc()
    except BaseException:
        import os
        import sys
        os.write(2, repr(sys.exc_info()[1]).encode("utf-8", "replace")[-2000:])


if __name__ == "__main__":
    _sandbox_main()
