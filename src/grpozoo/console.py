"""The terminal: the command line's rich console, quieter libraries, and printing to an optional
console. The command line, the arena and the training loop all print through here, so none of them
imports another for its output."""

from __future__ import annotations

from rich.console import Console

console = Console()


def quiet_libraries() -> None:
    """Keep the terminal for grpozoo's own progress bar: no per-load bars or deprecation chatter."""
    import warnings

    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    warnings.filterwarnings("ignore", category=FutureWarning)


def say(out: Console | None, text: str) -> None:
    """Print ``text`` (rich markup) on ``out``; nothing without a console (a quiet run)."""
    if out is not None:
        out.print(text)
