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


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_full_fine_tuning_of_half_precision_weights_is_refused_before_loading(tiny_overrides, dtype):
    from training.test_trainer import make_trainer

    from grpozoo.errors import ConfigError

    with pytest.raises(ConfigError, match=rf"model\.dtype={dtype} with model\.lora\.enabled=false.*float32"):
        make_trainer(tiny_overrides, f"model.dtype={dtype}", "model.lora.enabled=false")


def test_lora_over_a_bfloat16_base_trains_float32_adapters(tiny_overrides):
    import torch
    from training.test_trainer import make_trainer

    trainer = make_trainer(tiny_overrides, "model.dtype=bfloat16")
    trained = {p.dtype for p in trainer.model.parameters() if p.requires_grad}
    frozen = {p.dtype for p in trainer.model.parameters() if not p.requires_grad}
    assert trained == {torch.float32} and frozen == {torch.bfloat16}


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="checks a machine without CUDA")
def test_a_checkpoint_with_cuda_random_states_resumes_on_a_machine_without_cuda():
    import torch

    from grpozoo.training import checkpoint as ckpt

    state = ckpt.rng_state()
    assert "cuda" not in state
    first = torch.rand(3)
    ckpt.set_rng_state({**state, "cuda": [torch.zeros(16, dtype=torch.uint8)]})  # saved on a GPU machine
    torch.testing.assert_close(torch.rand(3), first)
