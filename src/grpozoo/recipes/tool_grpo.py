"""Tool-integrated GRPO: the model may run Python while it reasons, over several turns, and learns
from the verifier's score of its final answer; the tool's output is in the trajectory but never
learned (its tokens are masked)."""

from grpozoo.environments.tools import INSTRUCTIONS
from grpozoo.recipes import Recipe, register_recipe

TOOL_GRPO = register_recipe(
    Recipe(
        name="tool_grpo",
        citation='Li, Zou & Liu 2025, "ToRL: Scaling Tool-Integrated RL" (arXiv:2503.23383)',
        changes="multi-turn rollouts with a python tool run in the sandbox (rollout.tools=[python], 3 turns); "
        "tool output masked from the loss",
        config={
            "algorithm": {
                "advantage": {"name": "grpo", "params": {"scale": "group"}},
                "loss": {"name": "ppo_clip", "params": {"eps_low": 0.2, "eps_high": 0.2}},
                "aggregation": "token_mean",
            },
            "rollout": {"tools": ["python"], "max_turns": 3, "max_new_tokens": 96},
            "task": {"system_prompt": INSTRUCTIONS["python"] + " End with just the final number."},
        },
    )
)
