"""Verdicts the program cannot forge: an assert test's expected values never enter the program's
process, and the comparison happens in the trainer. A wrong ``add`` combined with each way of
faking a pass from inside the process (patching the interpreter, reading frames, tracing, printing
markers or value lines, exiting early) scores 0; the right ``add`` scores 1.

Every program runs under both sandbox modes: the verdict does not depend on the isolation.
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import pytest

from grpozoo.rewards import sandbox_child
from grpozoo.rewards.sandbox import Limits, Sandbox
from grpozoo.rewards.test_cases import Probe, Unreadable, decode_value, parse_tests

LIMITS = Limits(wall_s=2.0, cpu_s=1, memory_mb=128, max_processes=8, file_size_mb=1, output_bytes=64 << 10)
pytestmark = pytest.mark.filterwarnings("ignore:code sandbox mode 'unsafe_audit_only'")

# two asserts with different expected values, so that no constant passes them both
ADD_TESTS = ["assert add(1, 2) == 3", "assert add(2, 5) == 7"]
RIGHT = "def add(a, b):\n    return a + b\n"
WRONG = "def add(a, b):\n    return 0\n"

# each: a wrong program plus a way to fake a pass from inside its own process
FORGERIES = {
    "builtins.exec patched": WRONG + "import builtins\nbuiltins.exec = lambda *a, **k: None\n",
    "builtins.compile patched": WRONG
    + "import builtins\n_compile = builtins.compile\n"
    + "builtins.compile = lambda s, n, m, *a, **k: _compile('None' if m == 'eval' else 'pass', n, m)\n",
    "expected value read from the caller's frames": (
        "import re, sys\n"
        "def add(a, b):\n"
        "    frame = sys._getframe(1)\n"
        "    while frame is not None:\n"
        "        for value in [*frame.f_locals.values(), *frame.f_code.co_consts]:\n"
        "            found = re.search(r'== *(-?\\d+)', str(value))\n"
        "            if found:\n"
        "                return int(found.group(1))\n"
        "        frame = frame.f_back\n"
        "    return 0\n"
    ),
    "completion marker read from a frame and printed": (
        "import os, sys\n"
        "frame = sys._getframe()\n"
        "while frame is not None:\n"
        "    marker = frame.f_locals.get('marker')\n"
        "    if isinstance(marker, (bytes, str)):\n"
        "        marker = marker if isinstance(marker, bytes) else marker.encode()\n"
        "        os.write(1, marker + b' true\\n' + marker + b' true\\n' + marker)\n"
        "        os._exit(0)\n"
        "    frame = frame.f_back\n"
    ),
    "settrace reads the expected value from the test's code": WRONG.replace("return 0", "return max(SEEN)")
    + "import sys\nSEEN = [0]\n"
    + "def tracer(frame, event, arg):\n"
    + "    if frame.f_code.co_filename == '<test>':\n"
    + "        SEEN[:] = [c for c in frame.f_code.co_consts if isinstance(c, int)] or [0]\n"
    + "    return None\n"
    + "sys.settrace(tracer)\n",
    "setprofile prints the marker when the test starts": (
        WRONG + "import os, sys\n"
        "def profiler(frame, event, arg):\n"
        "    if frame.f_code.co_filename == '<test>':\n"
        "        os.write(1, frame.f_back.f_locals['marker'])\n"
        "        os._exit(0)\n"
        "sys.setprofile(profiler)\n"
    ),
    "encoder and json patched through gc.get_objects()": (
        WRONG + "import gc, json\n"
        "json.dumps = lambda *a, **k: 'true'\n"
        "for obj in gc.get_objects():\n"
        "    if callable(obj) and getattr(obj, '__name__', '') in ('_encode', '_encode_line'):\n"
        "        obj.__code__ = (lambda *a: b'true').__code__\n"
    ),
    "an object whose __eq__ is always true": (
        "class Anything:\n    def __eq__(self, other):\n        return True\n"
        "def add(a, b):\n    return Anything()\n"
    ),
    "an int subclass whose __eq__ is always true": (
        "class Int(int):\n    def __eq__(self, other):\n        return True\n    __hash__ = int.__hash__\n"
        "def add(a, b):\n    return Int(0)\n"
    ),
    "fake value lines printed": WRONG + "for line in ('0' * 32 + ' true', 'true', 'ok'):\n    print(line)\n",
    "os._exit(0) before the test": WRONG + "import os\nos._exit(0)\n",
    "os._exit(0) inside the function under test": "import os\ndef add(a, b):\n    os._exit(0)\n",
    "sys.exit(0) before the test": WRONG + "import sys\nsys.exit(0)\n",
    "atexit prints a marker": WRONG + "import atexit, sys\natexit.register(print, 'ok')\nsys.exit(0)\n",
}


@pytest.fixture(scope="module", params=("bwrap", "unsafe_audit_only"))
def sandbox(request) -> Sandbox:
    root = Path(tempfile.mkdtemp(prefix=f"grpozoo-forged-test-{request.param}-"))
    root.chmod(0o711)
    yield Sandbox(LIMITS, workers=2, scratch_root=str(root), mode=request.param)
    root.rmdir()


def test_the_right_program_passes_and_the_wrong_one_fails(sandbox):
    assert sandbox.run(RIGHT, ADD_TESTS).fraction == 1.0
    assert sandbox.run(WRONG, ADD_TESTS).fraction == 0.0


@pytest.mark.parametrize("program", list(FORGERIES.values()), ids=list(FORGERIES))
def test_a_forged_verdict_scores_zero(sandbox, program):
    for tests in (ADD_TESTS, ["\n".join(ADD_TESTS)]):  # one assert per test, then both in one test
        result = sandbox.run(program, tests)
        assert result.fraction == 0.0, (result.status, result.stderr_tail)


def test_the_expected_value_is_nowhere_in_the_programs_process(sandbox):
    # a program that searches every object, frame and file it can reach for the expected value,
    # under an assert test and under a stdin/stdout test
    program = (
        "import gc, os, re, sys\n"
        "PATTERN = re.compile(r'forge-me-[0-9]+')\n"
        "def texts():\n"
        "    for obj in gc.get_objects():\n"
        "        yield repr(obj)[:100000]\n"
        "    frame = sys._getframe()\n"
        "    while frame is not None:\n"
        "        yield repr(frame.f_locals) + repr(frame.f_code.co_consts)\n"
        "        frame = frame.f_back\n"
        "    yield repr(sys.argv)\n"
        "    for name in os.listdir('.'):\n"
        "        if os.path.isfile(name):\n"
        "            yield open(name, errors='replace').read()\n"
        "def secret():\n"
        "    for text in texts():\n"
        "        found = PATTERN.search(text)\n"
        "        if found:\n"
        "            return found.group()\n"
        "    return 'not found'\n"
        "if __name__ == '__main__':\n"
        "    print(secret())\n"
    )
    result = sandbox.run(program, ["assert secret() == 'forge-me-31415'"])
    assert result.fraction == 0.0 and "is 'not found'" in result.stderr_tail
    assert sandbox.run(program, [{"input": "", "output": "forge-me-31415"}]).fraction == 0.0


def test_setup_statements_and_every_assert_form(sandbox):
    tests = [
        "x = add(2, 3)\nassert x == 5\ny = x * 2\nassert y == 10",
        "assert add(-1, -1) == -2",
        "assert -2 == add(-1, -1)",
        "assert add(1, 1) != 3",
        "assert add(1, 1) < 3",
        "assert add(1, 1) <= 2",
        "assert add(1, 1) > 1",
        "assert 3 >= add(1, 1)",
        "assert add(1, 1) in (1, 2)",
        "assert add(1, 1) not in {3, 4}",
        "assert 'ab' in add('xab', 'y')",
        "assert add([1], [None]) == [1, None]",
        "assert add((1,), (2.5,)) == (1, 2.5)",
        "assert add(0.1, 0.2) != 0.3",  # floats compare exactly, as in Python
        "assert add(True, False) == 1",
        "assert add(b'a', b'b') == b'ab'",
        "assert add(1j, 1) == 1 + 1j",
        "assert print() is None",
        "assert add(1, 1) is not None",
        "assert add(1, 1)",
        "assert not add(0, 0)",
        "assert not (add(1, 1) == 3)",
        "assert dict(a=add(1, 1)) == {'a': 2}",
        "assert set(map(add, [1, 2], [1, 2])) == {2, 4}",
        "assert math.isclose(add(0.1, 0.2), 0.3), 'a message is never evaluated'",
        "assert isclose(1.0, add(0.5, 0.5), rel_tol=1e-9, abs_tol=0.0)",
        "assert add(1, 1) == 2 and add(2, 3) == 5 and not add(0, 0)",
    ]
    result = sandbox.run(RIGHT, tests)
    assert (result.passed, result.total, result.status) == (len(tests), len(tests), "ok"), result.stderr_tail
    # each of these comparisons can tell add from sub
    sub = "def add(a, b):\n    return a - b\n"
    wrong = sandbox.run(sub, [tests[i] for i in (0, 1, 2, 6, 8, 16, 22, 23, 24, 25, 26)])
    assert (wrong.passed, wrong.status) == (0, "ok"), wrong.stderr_tail


@pytest.mark.parametrize(
    ("program", "test"),
    [
        (WRONG + "import math\nmath.isclose = lambda *a, **k: True\n", "assert math.isclose(add(1, 2), 3)"),
        (FORGERIES["an object whose __eq__ is always true"], "assert add(1, 2) == 3 and add(2, 5) == 7"),
    ],
    ids=["math.isclose patched", "__eq__ under and"],
)
def test_isclose_and_conjunctions_are_checked_in_the_trainer(sandbox, program, test):
    assert sandbox.run(program, [test]).fraction == 0.0


def test_an_exception_in_a_probe_fails_that_test_only(sandbox):
    program = "def add(a, b):\n    if a < 0:\n        raise ValueError('negative')\n    return a + b\n"
    result = sandbox.run(program, ["assert add(-1, 1) == 0", "assert add(1, 1) == 2"])
    assert (result.passed, result.total, result.status) == (1, 2, "ok")
    assert "ValueError: negative" in result.stderr_tail


def test_a_value_the_sandbox_cannot_read_back_fails_and_says_why(sandbox):
    result = sandbox.run("def add(a, b):\n    return object()\n", ["assert add(1, 2) is not None"])
    assert result.fraction == 0.0 and "which the sandbox does not read back" in result.stderr_tail
    result = sandbox.run("def add(a, b):\n    return 'x' * 10 ** 6\n", ["assert add(1, 2) != 'y'"])
    assert result.fraction == 0.0 and "bytes encoded" in result.stderr_tail


def test_the_failure_names_the_assert_and_the_programs_value(sandbox):
    result = sandbox.run(WRONG, ["assert add(1, 2) == 3"])
    assert "AssertionError: assert add(1, 2) == 3 (the value of add(1, 2) is 0)" in result.stderr_tail


# --------------------------------------------------------------------------------- in the trainer
@pytest.mark.parametrize(
    ("test", "message"),
    [
        ("for i in range(3):\n    assert add(i, 0) == i", "assert inside a block"),
        ("def check(candidate):\n    assert candidate(1, 2) == 3\ncheck(add)", "assert inside a block"),
        ("assert add(2, 1) == add(1, 2)", "no literal side"),
        ("assert 0 < add(1, 1) < 3", "chains comparisons"),
        ("add(1, 2)", "no top-level assert"),
        ("assert add(1, 2) is 3", "use == or !="),
        ("assert add(1, 2) ==", "not valid Python"),
        ("assert all(add(i, 0) == i for i in range(3))", "compares inside an expression"),
    ],
)
def test_an_unsupported_assert_test_is_refused_when_read(test, message):
    with pytest.raises(ValueError, match=message) as error:
        parse_tests([test])
    assert repr(" ".join(test.split()))[:40] in str(error.value)  # names the test


def test_the_expected_literal_stays_in_the_trainer():
    (case,) = parse_tests(["import math\nassert add(1, 2) == 31415\nassert 'k' in add('x', 'y')"])
    assert case.steps == (
        "import math",
        Probe("assert add(1, 2) == 31415", "add(1, 2)", "==", 31415),
        Probe("assert 'k' in add('x', 'y')", "add('x', 'y')", "in", "k", literal_left=True),
    )
    assert [p.expression for p in case.probes] == ["add(1, 2)", "add('x', 'y')"]


VALUES = [
    None, True, False, 0, -(2**70), 1.5, -0.0, math.inf, "é\n\"", b"\x00\xff", 1 - 2j, [1, [2]], (1, (2,)),
    (),
    {1, "a"}, frozenset({(1, 2)}), {"a": (1,), 2: None, (3,): [4]},
]  # fmt: skip


@pytest.mark.parametrize("value", VALUES, ids=repr)
def test_plain_values_round_trip_exactly_with_their_types(value):
    decoded = decode_value(sandbox_child._encode_line(value, 1 << 16).decode())
    assert decoded == value and type(decoded) is type(value)
    if isinstance(value, float):
        assert math.copysign(1, decoded) == math.copysign(1, value)


def test_nan_round_trips_and_fails_equality_as_in_python():
    decoded = decode_value(sandbox_child._encode_line(math.nan, 1 << 16).decode())
    assert math.isnan(decoded)
    assert Probe("assert f() == nan", "f()", "==", math.nan).failure(decoded) is not None


class _Int(int):
    pass


@pytest.mark.parametrize(
    "value",
    [object(), _Int(3), {"a": object()}, [1, {2: b"", 3: set}], 2 ** 20000],
    ids=["object", "int subclass", "nested object", "a class", "huge int"],
)
def test_anything_but_plain_data_is_unreadable(value):
    assert isinstance(decode_value(sandbox_child._encode_line(value, 1 << 16).decode()), Unreadable)


def test_unreadable_deep_nesting_oversize_and_garbage():
    deep: list = []
    deep.append(deep)
    assert isinstance(decode_value(sandbox_child._encode_line(deep, 1 << 16).decode()), Unreadable)
    assert isinstance(decode_value(sandbox_child._encode_line("x" * 100, 50).decode()), Unreadable)
    for garbage in ("", "{", '{"float": "zz"}', '{"a": 1, "b": 2}', '{"object": 1}', '{"set": [[1]]}'):
        assert isinstance(decode_value(garbage), Unreadable), garbage


def test_a_probe_compares_like_python_and_a_type_error_fails():
    assert Probe("assert f() == 1", "f()", "==", 1).failure(1.0) is None
    assert Probe("assert f() < 3", "f()", "<", 3).failure("a").startswith("TypeError")
    assert Probe("assert not f()", "f()", negated=True).failure([]) is None
    assert Probe("assert not f()", "f()", negated=True).failure([0]) is not None
    assert Probe("assert f() is None", "f()", "is", None).failure(0) is not None
