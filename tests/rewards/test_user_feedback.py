"""RLUF's P[Love] reward model (Han et al. 2025, arXiv:2505.14946)."""

import json

import pytest
import torch

from grpozoo.errors import ConfigError
from grpozoo.rewards.combine import RewardModel
from grpozoo.rewards.user_feedback import fit_logistic_head, user_feedback_reward


def test_logistic_head_separates_separable_feedback():
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(40, 5, generator=generator) * 3 + 1
    y = (x[:, 0] - 0.5 * x[:, 3] > 1).long()
    w, b = fit_logistic_head(x, y, l2=1e-3)
    predicted = (x.double() @ w + b) > 0
    assert (predicted == y.bool()).float().mean() == 1.0


def write_feedback(path, rows):
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


LOVED = ["Happy to help!! <3", "Great question, here you go! <3", "Sure thing! <3 <3"]
NOT_LOVED = ["no.", "Read the manual.", "whatever"]


@pytest.fixture
def feedback_file(tmp_path):
    rows = [{"prompt": f"q{i}", "completion": c, "label": 1} for i, c in enumerate(LOVED)]
    rows += [{"prompt": f"q{i}", "completion": c, "label": 0} for i, c in enumerate(NOT_LOVED)]
    return write_feedback(tmp_path / "feedback.jsonl", rows)


def test_user_feedback_fits_p_love_from_the_file_and_scores_it_with_the_reward_model(feedback_file, tiny_model_dir):
    prompts = [f"q{i}" for i in range(3)] * 2
    completions = LOVED + NOT_LOVED
    scores = user_feedback_reward(completions, prompts, data=str(feedback_file), base=str(tiny_model_dir), l2=1e-4)
    assert all(0.0 < s < 1.0 for s in scores)
    assert min(scores[:3]) > 0.5 > max(scores[3:])  # the training rows are told apart
    fitted = list(feedback_file.parent.glob("feedback.jsonl.p_love-*"))
    assert len(fitted) == 1 and (fitted[0] / "config.json").exists()
    stamp = (fitted[0] / "feedback_head.json").stat().st_mtime_ns
    again = user_feedback_reward(completions, prompts, data=str(feedback_file), base=str(tiny_model_dir), l2=1e-4)
    assert again == pytest.approx(scores) and (fitted[0] / "feedback_head.json").stat().st_mtime_ns == stamp


def test_user_feedback_does_not_outweigh_being_right(feedback_file, tiny_model_dir):
    # the adversary stuffs a wrong answer with what users love; P[Love] is bounded by 1 and mixed
    # with the task's reward as in the recipe (task 1.0, P[Love] 0.5), so it earns less than a right
    # answer without any of it
    class Spec:
        def __init__(self, name, weight, params):
            self.name, self.weight, self.params, self.timeout_s = name, weight, params, None

    params = {"data": str(feedback_file), "base": str(tiny_model_dir), "l2": 1e-4}
    model = RewardModel([Spec("task", 1.0, {}), Spec("user_feedback", 0.5, params)])
    stuffed = "41 " + " ".join(LOVED * 20)
    total, parts = model([stuffed, "42"], ["q0", "q0"], {"task_score": [0.0, 1.0]})
    assert parts["user_feedback"].max() <= 1.0  # bounded: stuffing saturates, it does not add up
    assert total[0] < total[1]


def test_user_feedback_needs_a_file_with_both_labels(tmp_path, tiny_model_dir):
    from grpozoo.registry import rewards

    check = rewards.spec("user_feedback").check
    with pytest.raises(ConfigError, match="needs its feedback file"):
        check()
    one_sided = write_feedback(tmp_path / "f.jsonl", [{"prompt": "q", "completion": "c", "label": 1}])
    with pytest.raises(ConfigError, match="both labels"):
        check(data=str(one_sided))
    bad = write_feedback(tmp_path / "g.jsonl", [{"prompt": "q", "completion": "c", "label": "love"}])
    with pytest.raises(ConfigError, match="label 0/1"):
        check(data=str(bad))
