"""glibc's allocator is told to keep freed blocks, where there is a glibc."""

import ctypes
import sys

import pytest

from grpozoo.training import allocator


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="mallopt is glibc's (Linux only)")
def test_the_settings_reach_mallopt(monkeypatch):
    calls = []

    class FakeLibc:
        def mallopt(self, param, value):
            calls.append((param, value))
            return 1

    monkeypatch.setattr(ctypes, "CDLL", lambda name: FakeLibc())
    assert allocator.keep_freed_memory()
    assert dict(calls) == allocator.SETTINGS
    assert dict(calls)[allocator.M_MMAP_THRESHOLD] >= 1 << 28  # activation-sized blocks stay in the heap


def test_a_refused_setting_is_reported(monkeypatch):
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.setattr(ctypes, "CDLL", lambda name: type("Libc", (), {"mallopt": lambda self, p, v: 0})())
    assert not allocator.keep_freed_memory()


def test_no_glibc_changes_nothing(monkeypatch):
    monkeypatch.setattr(sys, "platform", "darwin")
    assert not allocator.keep_freed_memory()
