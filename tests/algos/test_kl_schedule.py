"""GRPO-D's KL coefficient schedule (Liu et al. 2025, arXiv:2503.16081)."""

import pytest

from grpozoo.algos.controllers import scheduled_coef
from grpozoo.config import KLConfig
from grpozoo.errors import ConfigError


@pytest.mark.parametrize("shape", ["linear", "cosine"])
def test_kl_schedule_is_monotone_from_its_start_to_its_maximum(shape):
    total = 50
    betas = [scheduled_coef(step, total, 0.001, 0.04, shape) for step in range(1, total + 1)]
    assert betas[0] == pytest.approx(0.001)
    assert betas[-1] == pytest.approx(0.04)
    assert all(b <= c for b, c in zip(betas, betas[1:], strict=False))
    assert len(set(betas)) == total  # it does move every step


def test_kl_schedule_reaches_its_maximum_at_the_end_of_its_fraction_and_stays():
    betas = [scheduled_coef(step, 11, 0.0, 1.0, "linear", warmup_fraction=0.5) for step in range(1, 12)]
    assert betas[:6] == pytest.approx([0.0, 0.2, 0.4, 0.6, 0.8, 1.0])
    assert betas[6:] == [1.0] * 5
    assert scheduled_coef(3, 10, 0.0, 0.5, "constant") == 0.5


def test_kl_schedule_and_adaptive_target_are_refused_together():
    with pytest.raises(ValueError, match="both set the KL"):
        KLConfig(coef=0.1, schedule="linear", target=0.05)
    from grpozoo.config import validate

    with pytest.raises(ConfigError, match="both set the KL"):
        validate({"algorithm": {"kl": {"coef": 0.1, "schedule": "cosine", "target": 0.1}}})
