"""The in-process ``vllm`` engine: vLLM's engine inside the training process. vLLM lives in its own
environment (see ``test_vllm_server.py``), so grpozoo runs there from this source tree, in a child
process (``vllm_in_process_run.py``); skipped, with the reason, where that environment is missing."""

from __future__ import annotations

import json
import math
import os
import subprocess
from pathlib import Path

import pytest
from integration.test_vllm_server import SAME_WEIGHTS, VLLM_PYTHON, unavailable

pytestmark = pytest.mark.integration
SOURCE = Path(__file__).parents[2] / "src"


@pytest.mark.parametrize("mode", ["lora", "full"])
def test_two_steps_with_vllm_in_the_training_process(mode):
    reason = unavailable()
    if reason:
        pytest.skip(reason)
    env = {**os.environ, "PYTHONPATH": str(SOURCE), "HF_HUB_OFFLINE": "1", "VLLM_CPU_KVCACHE_SPACE": "2"}
    run = subprocess.run([VLLM_PYTHON, str(Path(__file__).parent / "vllm_in_process_run.py"), mode],
                         env=env, capture_output=True, text=True, timeout=900)
    lines = [line for line in run.stdout.splitlines() if line.startswith("RESULT ")]
    assert run.returncode == 0 and lines, f"{run.stdout[-2000:]}\n{run.stderr[-4000:]}"
    result = json.loads(lines[-1].removeprefix("RESULT "))
    assert result["versions"] == [0, 1]
    assert all(math.isfinite(x) for x in result["losses"])
    assert all(g < SAME_WEIGHTS for g in result["step_gaps"]), result
    assert result["batch_versions"] == [2] * 4
    assert result["shapes"][0] == result["shapes"][1] and result["shapes"][0][1] <= 16
    # the engine samples with the learner's weights after a sync, and not before
    assert result["synced"] < SAME_WEIGHTS and result["stale"] > 1e-2 and result["resynced"] < SAME_WEIGHTS
