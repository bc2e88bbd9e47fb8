"""Environments a multi-turn rollout talks to: after each model turn the environment answers (a
tool's output, as a chat message) or ends the episode.

The contract (:class:`Environment`): ``reset(row)`` starts an episode for a task row; ``step(turn)``
takes the model's last turn (text) and returns a :class:`Reply`: the message to append, or None
when the episode ends, with the reason it ended and reward parts (numbers the reward stage logs
beside its own parts). :class:`~grpozoo.environments.tools.ToolEnvironment` runs the built-in
tools (``python`` in the code sandbox, ``calculator``); any object with these two methods can
stand in for it from Python.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

# why an episode ended, as its rollouts report it (the ``episode_end`` column)
ANSWERED = "answered"  # a turn without a tool call: the model's answer
MAX_TURNS = "max_turns"  # rollout.max_turns model turns were taken
BUDGET = "budget"  # rollout.max_new_tokens ran out (the whole trajectory's budget)
TOOL_TIMEOUT = "tool_timeout"  # a tool ran past its time limit
TOOL_CRASH = "tool_crash"  # a tool died (memory, killed): no output to give back


@dataclass
class Reply:
    """The environment's answer to a model turn: ``message`` (role and content) to append, or None
    when the episode ends, then with ``ended`` saying why; ``parts`` are reward parts of this turn
    (added up over the episode)."""

    message: dict[str, str] | None
    ended: str | None = None
    parts: dict[str, float] = field(default_factory=dict)


class Environment(Protocol):
    def reset(self, row: dict[str, Any]) -> None:
        """Start an episode for the task ``row``."""
        ...

    def step(self, turn: str) -> Reply:
        """Answer the model's last ``turn``."""
        ...
