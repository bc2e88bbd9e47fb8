"""Programs per second through the code sandbox, for trivial passing programs.

    python benchmarks/sandbox.py [--programs 64] [--modes bwrap unsafe_audit_only]

Each program is ``def add(a, b): return a + b`` with one assert test (one child process per
program), run with ``Sandbox.run_many`` at 1, 2 and 4 parallel runs; one warm-up batch first. The
figure is the whole sandbox's cost per program: starting the isolation (bubblewrap, or ``unshare``
in the unsafe mode), the interpreter, the bootstrap and the verdict.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
import warnings

from grpozoo.rewards.sandbox import MODES, Sandbox

PROGRAM = "def add(a, b):\n    return a + b\n"
TESTS = ["assert add(1, 2) == 3"]


def programs_per_second(sandbox: Sandbox, count: int) -> float:
    """Programs run per second by ``sandbox`` over ``count`` identical passing programs."""
    start = time.perf_counter()
    results = sandbox.run_many([PROGRAM] * count, [TESTS] * count)
    elapsed = time.perf_counter() - start
    if any(r.passed != 1 for r in results):
        raise RuntimeError(f"sandbox benchmark: a correct program failed: {results[0].stderr_tail}")
    return count / elapsed


def processor() -> str:
    """The processor's model name (from /proc/cpuinfo), or the machine type."""
    try:
        for line in open("/proc/cpuinfo", encoding="utf-8"):
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                return value.strip()
    except OSError:
        pass
    return platform.machine()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--programs", type=int, default=64)
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    args = parser.parse_args()
    # the unsafe mode warns on every run; here it is measured on purpose
    warnings.filterwarnings("ignore", message="code sandbox mode 'unsafe_audit_only'")
    user = "root" if os.geteuid() == 0 else "not root"
    print(f"processor: {processor()}, {os.cpu_count()} cores; {user}; {args.programs} programs a figure")
    for mode in args.modes:
        for workers in (1, 2, 4):
            sandbox = Sandbox(workers=workers, mode=mode)
            programs_per_second(sandbox, workers)  # warm-up
            rate = programs_per_second(sandbox, args.programs)
            print(f"{mode:>18}  workers={workers}  {rate:7.1f} programs/s  ({sandbox.isolation})")


if __name__ == "__main__":
    main()
