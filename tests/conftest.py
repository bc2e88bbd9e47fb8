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

from tiny import build_tiny_model, tiny_run_overrides  # noqa: E402


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny-model"))


@pytest.fixture
def tiny_overrides(tiny_model_dir, tmp_path) -> list[str]:
    """``--set`` overrides for a fast run of the tiny model on an easy reasoning-gym task."""
    return tiny_run_overrides(tiny_model_dir, tmp_path / "run")
