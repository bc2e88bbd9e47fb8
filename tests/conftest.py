import os
import sys
from pathlib import Path

import pytest
from hypothesis import settings

# CI draws the same examples on every run (a red CI then reproduces); elsewhere they are random,
# so local runs keep exploring new cases
settings.register_profile("ci", derandomize=True)
if os.environ.get("CI"):
    settings.load_profile("ci")

sys.path.insert(0, str(Path(__file__).parent))

from tiny import build_tiny_model  # noqa: E402


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny-model"))


def tiny_run_overrides(model_dir: Path, run_dir: Path) -> list[str]:
    """``--set`` overrides for a fast run of the tiny model at ``model_dir`` on an easy reasoning-gym
    task, into ``run_dir``."""
    return [
        f"model.name={model_dir}",
        "model.lora.r=4",
        "model.lora.alpha=8",
        "task.train_size=40",
        "task.eval_size=6",
        "rollout.prompts_per_step=2",
        "rollout.group_size=3",
        "rollout.max_new_tokens=8",
        "eval.samples=2",
        "train.micro_batch_tokens=64",
        f"output_dir={run_dir}",
        # the task's verifier plus a reward a random model can earn, so advantages are not all 0
        f"rewards=[{{name: task}}, {{name: '{Path(__file__).parent / 'tiny.py'}:digit_share'}}]",
    ]


@pytest.fixture
def tiny_overrides(tiny_model_dir, tmp_path) -> list[str]:
    """``--set`` overrides for a fast run of the tiny model on an easy reasoning-gym task."""
    return tiny_run_overrides(tiny_model_dir, tmp_path / "run")
