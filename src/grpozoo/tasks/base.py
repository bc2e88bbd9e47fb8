"""The task contract: train and held-out rows, the chat messages of a row, and its verifier."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from grpozoo.rewards.extraction import extract_answer


class Task(ABC):
    """Rows are dicts with ``prompt`` (text) or ``messages`` (chat), ``answer``, and any other
    columns, which reach reward functions as keyword arguments."""

    name: str
    train_rows: list[dict[str, Any]]
    eval_rows: list[dict[str, Any]]

    def __init__(self, cfg):
        self.cfg = cfg

    def messages(self, row: dict[str, Any]) -> list[dict[str, str]]:
        """The chat messages for a row: optional system prompt, then the question, with
        ``task.instruction`` appended to the last user message."""
        if "messages" in row and row["messages"]:
            messages = [dict(m) for m in row["messages"]]
        else:
            messages = [{"role": "user", "content": row["prompt"]}]
        if self.cfg.instruction:
            last_user = max(i for i, m in enumerate(messages) if m["role"] == "user")
            messages[last_user]["content"] += f" {self.cfg.instruction}"
        if self.cfg.system_prompt and messages[0]["role"] != "system":
            messages.insert(0, {"role": "system", "content": self.cfg.system_prompt})
        return messages

    def extract(self, completion: str) -> str | None:
        return extract_answer(completion, self.cfg.answer_format)

    @abstractmethod
    def score(self, completion: str, row: dict[str, Any]) -> float:
        """The task's verifier: 1.0 for a right answer, 0.0 for a wrong or missing one."""


def render_prompt(tokenizer, messages: list[dict[str, str]]) -> str:
    """Messages as the model sees them: its chat template, or plain text if it has none."""
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return "\n".join(m["content"] for m in messages) + "\n"


def split_disjoint(rows: list[dict[str, Any]], eval_size: int, key: str = "prompt") -> tuple[list, list]:
    """Held-out rows first, then train rows whose ``key`` never occurs among the held-out ones."""
    eval_rows = rows[:eval_size]
    held_out = {str(r.get(key) or r.get("messages")) for r in eval_rows}
    train_rows = [r for r in rows[eval_size:] if str(r.get(key) or r.get("messages")) not in held_out]
    return train_rows, eval_rows
