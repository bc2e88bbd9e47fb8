"""NGRPO: a virtual maximum-reward sample in the group statistics, asymmetric clip."""

from grpozoo.recipes import Recipe, register_recipe

NGRPO = register_recipe(
    Recipe(
        name="ngrpo",
        citation='Nan et al. 2025, "NGRPO: Negative-enhanced Group Relative Policy Optimization"'
        " (arXiv:2509.18851)",
        changes="group mean/std computed with one virtual reward of 1 added, so all-wrong groups get a"
        " negative advantage; clip 0.16 below, 0.24 above; no KL",
        config={
            "algorithm": {
                "advantage": {"name": "ngrpo", "params": {"r_max": 1.0}},
                "loss": {"name": "ppo_clip", "params": {"eps_low": 0.16, "eps_high": 0.24}},
                "aggregation": "token_mean",
                "kl": {"coef": 0.0},
            }
        },
    )
)
