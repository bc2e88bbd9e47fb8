"""Optimisers by name (``train.optimizer``): the update rules of Lion, stochastic sign SGD and
constrained Lion on small tensors, the errors at start-up, and exact checkpoint/resume."""

from __future__ import annotations

import pytest
import torch
from training.test_trainer import make_trainer

from grpozoo import registry
from grpozoo.errors import ConfigError
from grpozoo.registry import UnknownNameError
from grpozoo.training.optimizers import AdamW, Lion, LionConstrained, StochasticSignSGD, build_optimizer

# dyadic numbers: θ ± lr and the sign arithmetic are exact in float64
LR = 2.0**-6


def parameter(values) -> torch.nn.Parameter:
    return torch.nn.Parameter(torch.as_tensor(values, dtype=torch.float64).clone())


def step_with(optimizer: torch.optim.Optimizer, p: torch.nn.Parameter, grad: torch.Tensor) -> torch.Tensor:
    """One step with gradient ``grad``; returns the change of ``p``."""
    before = p.detach().clone()
    p.grad = grad.clone()
    optimizer.step()
    return p.detach() - before


# ----------------------------------------------------------------------------- Lion


def test_a_lion_step_moves_every_coordinate_by_lr_against_the_sign_of_the_interpolated_momentum():
    torch.manual_seed(0)
    beta1, beta2 = 0.9, 0.99
    p = parameter(torch.randint(-64, 64, (4, 5)) / 64)
    optimizer = Lion([p], lr=LR, betas=(beta1, beta2))
    m = torch.zeros_like(p)
    for _ in range(4):  # the first step from m = 0, then with the momentum of the steps before
        g = torch.randn(4, 5, dtype=torch.float64)
        c = beta1 * m + (1 - beta1) * g
        assert bool((c != 0).all())
        change = step_with(optimizer, p, g)
        assert torch.equal(change.abs(), torch.full_like(change, LR))
        assert torch.equal(torch.sign(change), -torch.sign(c))
        m = beta2 * m + (1 - beta2) * g
        torch.testing.assert_close(optimizer.state[p]["exp_avg"], m, rtol=1e-12, atol=0.0)


def test_lion_weight_decay_is_decoupled_and_scaled_by_lr():
    p = parameter([[0.5, -0.25, 1.0]])
    decay = 0.5
    optimizer = Lion([p], lr=LR, weight_decay=decay)
    g = torch.tensor([[1.0, 1.0, -1.0]], dtype=torch.float64)
    before = p.detach().clone()
    change = step_with(optimizer, p, g)
    torch.testing.assert_close(change, -LR * (torch.sign(g) + decay * before), rtol=0.0, atol=1e-15)


def test_lion_keeps_its_momentum_in_the_state_dict():
    torch.manual_seed(1)
    p, q = parameter(torch.randn(3)), parameter(torch.randn(3))
    first, second = Lion([p], lr=LR), Lion([q], lr=LR)
    q.data.copy_(p.data)
    grads = [torch.randn(3, dtype=torch.float64) for _ in range(4)]
    for g in grads[:2]:
        step_with(first, p, g)
    second.load_state_dict(first.state_dict())
    q.data.copy_(p.data)
    for g in grads[2:]:
        step_with(first, p, g)
        step_with(second, q, g)
    assert torch.equal(p, q)
    assert torch.equal(first.state[p]["exp_avg"], second.state[q]["exp_avg"])


# ----------------------------------------------------------------------------- stochastic sign SGD


def test_stochastic_signs_average_to_the_gradient_over_its_bound():
    g = torch.tensor([0.5, -0.25, 0.0, 1.0, -1.0, 0.75], dtype=torch.float64)
    rows = 20_000
    for bound, scale in [(None, 1.0), (4.0, 4.0), (0.5, 1.0)]:  # B = max(bound, max|g|)
        p = parameter(torch.zeros(rows, g.numel()))
        optimizer = StochasticSignSGD([p], lr=LR, bound=bound, seed=3)
        change = step_with(optimizer, p, g.expand(rows, -1))
        assert torch.equal(change.abs(), torch.full_like(change, LR)), "every coordinate moves by exactly lr"
        signs = -change / LR
        # the standard error of each mean is at most 1/√20000 ≈ 0.007
        torch.testing.assert_close(signs.mean(0), g / scale, rtol=0.0, atol=0.03)


def test_stochastic_signs_are_seeded_fresh_at_every_step_and_resume_exactly():
    g = torch.full((200,), 0.1, dtype=torch.float64)
    g[0] = 1.0

    def run(steps, seed=0, resume_from=None):
        p = parameter(torch.zeros(200))
        optimizer = StochasticSignSGD([p], lr=LR, seed=seed)
        if resume_from is not None:
            optimizer.load_state_dict(resume_from)
        return [step_with(optimizer, p, g) for _ in range(steps)], optimizer

    changes, optimizer = run(3)
    assert not torch.equal(changes[1], changes[2]), "each step draws new signs"
    again, _ = run(3)
    assert all(torch.equal(a, b) for a, b in zip(changes, again, strict=True))
    other_seed, _ = run(1, seed=1)
    assert not torch.equal(changes[0], other_seed[0])
    _, after_two = run(2)
    resumed, _ = run(1, resume_from=after_two.state_dict())
    assert torch.equal(resumed[0], changes[2]), "a resumed optimiser draws the signs of the step it is at"
    assert int(optimizer.state[optimizer.param_groups[0]["params"][0]]["step"]) == 3


def test_a_zero_gradient_does_not_move_a_stochastic_sign_parameter():
    p = parameter(torch.ones(5))
    change = step_with(StochasticSignSGD([p], lr=LR), p, torch.zeros(5, dtype=torch.float64))
    assert torch.equal(change, torch.zeros(5, dtype=torch.float64))


# ----------------------------------------------------------------------------- constrained Lion


@pytest.mark.parametrize("gradients", ["random", "outward"])
def test_constrained_lion_drives_the_iterates_into_the_box_and_keeps_them_there(gradients):
    torch.manual_seed(2)
    decay, lr = 2.0, 0.01
    box = 1 / decay
    p = parameter(torch.tensor([5.0, -5.0, 5.0, -5.0, 0.0, 0.3]) / decay)
    optimizer = LionConstrained([p], lr=lr, weight_decay=decay)
    slack = 1e-12  # float64 rounding
    assert not bool((p.detach().abs() <= box + lr).all())  # it starts far outside
    inside_since = None
    for step in range(1000):
        if gradients == "random":  # bounded, of either sign
            g = 3.0 * (2 * torch.rand(6, dtype=torch.float64) - 1)
        else:  # always pushing every coordinate away from 0, the box's worst case
            g = -torch.sign(p.detach()) - (p.detach() == 0).double()
        was_inside = (p.detach().abs() <= box + lr + slack).all()
        outside_before = (p.detach().abs() - box).clamp(min=0)
        step_with(optimizer, p, g)
        outside_after = (p.detach().abs() - box).clamp(min=0)
        assert bool((outside_after <= outside_before * (1 - lr * decay) + slack).all()), step
        inside = bool((p.detach().abs() <= box + lr + slack).all())
        if was_inside:
            assert inside, f"left the box at step {step}"
        if inside and inside_since is None:
            inside_since = step
    assert inside_since is not None
    assert bool((p.detach().abs() <= box + lr + slack).all())


@pytest.mark.parametrize("decay", [0.0, -0.1])
def test_constrained_lion_refuses_a_weight_decay_that_is_not_positive(decay):
    with pytest.raises(ValueError, match="weight_decay"):
        LionConstrained([parameter([1.0])], lr=LR, weight_decay=decay)
    with pytest.raises(ConfigError, match=r"lion_constrained.*train\.weight_decay"):
        build_optimizer("lion_constrained", {}, [parameter([1.0])], LR, decay)


# ----------------------------------------------------------------------------- by name, in a run


def test_every_optimiser_is_registered_by_name():
    assert registry.optimizers.get("adamw") is AdamW
    assert registry.optimizers.get("lion") is Lion
    assert registry.optimizers.get("lion_constrained") is LionConstrained
    assert registry.optimizers.get("stosignsgd") is StochasticSignSGD


def test_the_default_optimiser_is_torchs_fused_adamw(tiny_overrides):
    optimizer = make_trainer(tiny_overrides).learner.optimizer
    assert isinstance(optimizer, torch.optim.AdamW)
    group = optimizer.param_groups[0]
    assert group["fused"] and group["betas"] == (0.9, 0.999) and group["eps"] == 1e-8


def test_a_run_builds_the_named_optimiser_with_its_parameters(tiny_overrides):
    trainer = make_trainer(tiny_overrides, "train.optimizer.name=lion", "train.optimizer.params.betas=[0.8,0.95]",
                           "train.learning_rate=1e-3", "train.weight_decay=0.1")
    optimizer = trainer.learner.optimizer
    assert isinstance(optimizer, Lion)
    group = optimizer.param_groups[0]
    assert group["betas"] == (0.8, 0.95) and group["lr"] == 1e-3 and group["weight_decay"] == 0.1


def test_an_unknown_optimiser_or_parameter_fails_at_start_up_with_a_close_match(tiny_overrides):
    with pytest.raises(UnknownNameError, match="unknown optimizer 'loin'. Did you mean 'lion'?"):
        make_trainer(tiny_overrides, "train.optimizer.name=loin")
    with pytest.raises(ConfigError, match="optimizer 'lion' has no parameter 'beta'. Did you mean 'betas'?"):
        make_trainer(tiny_overrides, "train.optimizer.name=lion", "train.optimizer.params.beta=[0.9,0.99]")
    with pytest.raises(ConfigError, match="parameter betas: expected tuple"):
        make_trainer(tiny_overrides, "train.optimizer.name=lion", "train.optimizer.params.betas=0.9")
    with pytest.raises(ConfigError, match=r"params\.lr: .*train\.learning_rate"):
        make_trainer(tiny_overrides, "train.optimizer.name=lion", "train.optimizer.params.lr=0.1")
    with pytest.raises(ConfigError, match=r"lion_constrained.*weight_decay"):
        make_trainer(tiny_overrides, "train.optimizer.name=lion_constrained")


RESUME_RUN = ["train.optimizer.name=lion", "train.steps=3", "train.checkpoint_every=10",
              "algorithm.num_iterations=2", "rollout.max_new_tokens=6"]
UNTIMED = ("time/", "tokens_per_s")


def untimed(metrics):
    return {k: v for k, v in metrics.items() if not k.startswith(UNTIMED)}


def trainable_weights(trainer):
    return {n: p.detach().clone() for n, p in trainer.model.named_parameters() if p.requires_grad}


def test_a_lion_run_resumed_from_a_checkpoint_continues_exactly(tiny_overrides, tmp_path):
    straight = make_trainer(tiny_overrides, *RESUME_RUN, f"output_dir={tmp_path / 'straight'}")
    expected = [untimed(straight.train_step()) for _ in range(3)]

    run = tmp_path / "stopped"
    stopped = make_trainer(tiny_overrides, *RESUME_RUN, f"output_dir={run}")
    before = [untimed(stopped.train_step()) for _ in range(2)]
    assert before == expected[:2]
    stopped.save()
    assert "exp_avg" in next(iter(stopped.learner.optimizer.state_dict()["state"].values()))
    del stopped

    resumed = make_trainer(tiny_overrides, *RESUME_RUN, f"output_dir={run}", run_dir=run, resume=True)
    assert resumed.step == 2 and isinstance(resumed.learner.optimizer, Lion)
    assert untimed(resumed.train_step()) == expected[2]
    # the weights after the third update, which read the momentum of the first two steps
    weights = trainable_weights(resumed)
    assert all(torch.equal(weights[n], w) for n, w in trainable_weights(straight).items())

    # without its momentum the third update differs: the check above reads the restored state
    forgetful = make_trainer(tiny_overrides, *RESUME_RUN, f"output_dir={run}", run_dir=run, resume=True)
    forgetful.learner.optimizer.state.clear()
    forgetful.train_step()
    assert any(not torch.equal(w, trainable_weights(forgetful)[n]) for n, w in weights.items())
