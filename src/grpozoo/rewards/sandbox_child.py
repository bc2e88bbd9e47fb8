"""The bootstrap that runs inside the code sandbox's child process (see ``grpozoo.rewards.sandbox``).

``Sandbox`` passes this file's source text to ``python -I -S -B -X utf8 -c SOURCE job.json`` (inside
``unshare`` when available); it is never imported in the child, which runs without site-packages.
It reads its job (then deletes it, so the program cannot read the tests) and forks: the fork sets
the limits, drops to the dedicated uid, installs the audit hook and runs the program and the test;
the bootstrap itself only waits for it and reports how it ended in its exit status (128 + signal
when killed by a signal; the program's own exit codes are kept below 128, so a program cannot pass
itself off as timed out). In a PID namespace the bootstrap is its init, and when it exits the
kernel kills every process left in the namespace. Everything lives in a function so the program's
``import __main__`` sees none of it. Only the standard library, imported inside the functions, and
nothing that would leave ``subprocess`` or ``ctypes`` imported for the program to use.
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
    marker, program, test, stdio = job["marker"].encode(), job["program"], job["test"], job["stdio"]
    same_user, audit_network = job["same_user"], job["audit_network"]
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
    if same_user:
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
    sys.addaudithook(hook)
    namespace = {"__name__": "__main__" if stdio else "__program__", "__builtins__": __builtins__}
    try:
        exec(compile(program, "<program>", "exec"), namespace)
        if test is not None:
            exec(compile(test, "<test>", "exec"), namespace)
    except SystemExit as error:
        if not (stdio and error.code in (None, 0)):
            os.write(2, b"\nsandbox: the program exited (%r) before the test finished\n" % (error.code,))
            os._exit(exit_error)
    except MemoryError:
        os.write(2, b"\nMemoryError\n")
        os._exit(exit_memory)
    except AssertionError:
        _print_exception()
        os._exit(exit_assertion)
    except BaseException:
        _print_exception()
        os._exit(exit_error)
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except BaseException:
        os._exit(exit_error)
    os.write(1, marker)
    os._exit(0)


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
