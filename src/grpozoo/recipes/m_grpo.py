"""M-GRPO: hierarchical group-relative advantages for the main agent's part of a multi-turn tool
rollout and for its sub-agent trajectories (its tool-calling turns), aligned to a fixed count."""

from grpozoo.environments.tools import INSTRUCTIONS
from grpozoo.recipes import Recipe, register_recipe

M_GRPO = register_recipe(
    Recipe(
        name="m_grpo",
        citation='Hong et al. 2025, "Multi-Agent Deep Research: Training Multi-Agent Systems with M-GRPO" '
        '(arXiv:2511.13288)',
        changes="multi-turn python-tool rollouts; the final turn gets the GRPO advantage, tool-calling turns "
        "(aligned to D=2 per rollout) their own group-relative advantage",
        config={
            "algorithm": {
                "advantage": {"name": "m_grpo", "params": {"d": 2}},
                "loss": {"name": "ppo_clip", "params": {"eps_low": 0.2, "eps_high": 0.2}},
                "aggregation": "token_mean",
            },
            "rollout": {"tools": ["python"], "max_turns": 3, "max_new_tokens": 96},
            "task": {"system_prompt": INSTRUCTIONS["python"] + " End with just the final number."},
        },
    )
)
