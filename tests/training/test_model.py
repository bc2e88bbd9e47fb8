"""Publishing a converted checkpoint: atomic, and safe when several processes convert at once."""

import threading

import pytest

from grpozoo.training.model import publish_checkpoint


def _writer(marker: str, started: threading.Barrier):
    def write(folder):
        started.wait()  # every writer has its folder before any renames: the race a parallel arena meets
        (folder / "config.json").write_text(marker)

    return write


def test_writers_started_together_leave_one_whole_checkpoint(tmp_path):
    target = tmp_path / "model"
    started = threading.Barrier(3)
    threads = [threading.Thread(target=publish_checkpoint, args=(_writer(str(i), started), target)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert (target / "config.json").read_text() in {"0", "1", "2"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # no partial folder left behind


def test_an_interrupted_write_leaves_no_checkpoint(tmp_path):
    target = tmp_path / "model"

    def fail(folder):
        (folder / "config.json").write_text("{}")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        publish_checkpoint(fail, target)
    assert list(tmp_path.iterdir()) == []
