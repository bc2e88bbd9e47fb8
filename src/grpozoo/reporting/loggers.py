"""TensorBoard, trackio and Weights & Biases, beside ``metrics.jsonl`` (which is always written).

Configured by the run's ``log`` section: ``tensorboard`` writes event files into
``RUN/tensorboard`` (``tensorboard --logdir RUN/tensorboard``); ``trackio`` logs into the local
trackio project ``grpozoo`` (``trackio show --project grpozoo``; trackio keeps its data under
``$TRACKIO_DIR``, default ``~/.cache/huggingface/trackio``); ``wandb`` logs to a Weights & Biases
run in the project ``$WANDB_PROJECT`` (default ``grpozoo``), one run per run directory (a resumed
run continues it), its local files under ``RUN/wandb``; wandb's own settings (``WANDB_MODE``,
``WANDB_ENTITY``, …) apply, and ``WANDB_MODE=offline`` needs no account (``wandb sync`` uploads
later). With ``completions_every = N > 0`` a table of prompts, completions, rewards and advantages
goes to each every N steps. With all off (the default) nothing is imported and nothing is written.
"""

from __future__ import annotations

import hashlib
import inspect
import math
import os
import re
from pathlib import Path
from typing import Any

from grpozoo.config import RunConfig
from grpozoo.errors import MachineSetupError
from grpozoo.rollouts import Rollouts

TRACKIO_PROJECT = "grpozoo"
WANDB_PROJECT = "grpozoo"  # unless $WANDB_PROJECT names another
MAX_TABLE_ROWS = 64
COMPLETION_COLUMNS = ["step", "prompt", "completion", "reward", "advantage"]


class RunLoggers:
    """The optional metric sinks of one run of configuration ``cfg`` (its ``log`` section; trackio
    and wandb also record the whole configuration), writing under ``run_dir``. ``start_step`` is the
    step the run resumes after (0 for a new run); TensorBoard drops its events past that step, as
    ``metrics.jsonl`` does. The trainer owns one; ``close`` ends every sink (a second call does
    nothing)."""

    def __init__(self, cfg: RunConfig, run_dir: Path, start_step: int = 0):
        self.cfg = cfg
        self.every = cfg.log.completions_every
        self.tensorboard = None
        self.trackio = None
        self.wandb: Any = None
        if cfg.log.tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError as error:
                raise ImportError(
                    f"log.tensorboard=true needs the tensorboard package ({error}): "
                    f"pip install 'grpozoo[tensorboard]', or set log.tensorboard=false"
                ) from None
            self.tensorboard = SummaryWriter(
                str(run_dir / "tensorboard"), purge_step=start_step + 1 if start_step else None
            )
        if cfg.log.trackio:
            try:
                import trackio
            except ImportError as error:
                raise ImportError(
                    f"log.trackio=true needs the trackio package ({error}): "
                    f"pip install 'grpozoo[trackio]', or set log.trackio=false"
                ) from None
            self.trackio_module = trackio
            self.trackio = trackio.init(
                project=TRACKIO_PROJECT,
                name=trackio_run_name(run_dir),
                config=cfg.model_dump(mode="json"),
                resume="allow",
            )
        if cfg.log.wandb:
            self.wandb_module = import_wandb()
            self.wandb = start_wandb_run(self.wandb_module, cfg, run_dir)

    @property
    def active(self) -> bool:
        return self.tensorboard is not None or self.trackio is not None or self.wandb is not None

    def log_step(self, metrics: dict[str, Any], batch: Rollouts | None = None) -> None:
        """A training step's metrics, and every ``completions_every`` steps its completion table."""
        if not self.active:
            return
        step = int(metrics["step"])
        scalars = numeric(metrics)
        if self.tensorboard is not None:
            for key, value in scalars.items():
                self.tensorboard.add_scalar(key, value, step)
        table = None
        if batch is not None and self.every and step % self.every == 0:
            table = completion_rows(step, batch)
            if self.tensorboard is not None:
                self.tensorboard.add_text("completions", markdown_table(table), step)
        if self.trackio is not None:
            record: dict[str, Any] = dict(scalars)
            if table is not None:
                record["completions"] = self.trackio_module.Table(columns=COMPLETION_COLUMNS, data=table)
            self.trackio.log(record, step=step)
        if self.wandb is not None:
            record = dict(scalars)
            if table is not None:
                record["completions"] = self.wandb_module.Table(columns=COMPLETION_COLUMNS, data=table)
            self.wandb.log(record, step=step)
        if self.tensorboard is not None:
            self.tensorboard.flush()

    def log_eval(self, record: dict[str, Any]) -> None:
        """A held-out evaluation (its scalar metrics under ``eval/``), at its step."""
        if not self.active:
            return
        step = int(record["step"])
        scalars = {f"eval/{k}": v for k, v in numeric(record).items()}
        if self.tensorboard is not None:
            for key, value in scalars.items():
                self.tensorboard.add_scalar(key, value, step)
            self.tensorboard.flush()
        if self.trackio is not None:
            self.trackio.log(scalars, step=step)
        if self.wandb is not None:
            self.wandb.log(scalars, step=step)

    def close(self) -> None:
        if self.tensorboard is not None:
            self.tensorboard.close()
            self.tensorboard = None
        if self.trackio is not None:
            self.trackio.finish()
            self.trackio = None
        if self.wandb is not None:
            self.wandb.finish()
            self.wandb = None


def trackio_run_name(run_dir: Path) -> str:
    """The run directory's name plus a short digest of its absolute path: unique per directory
    (arena runs share names like ``grpo-seed0``), and the same when a run resumes."""
    return f"{Path(run_dir).name}-{path_digest(run_dir)}"


def wandb_run_id(run_dir: Path) -> str:
    """:func:`trackio_run_name` as a wandb run id: characters other than letters, digits, ``.``,
    ``_`` and ``-`` become ``-`` and the name is cut so the id stays within 64 characters. The same
    directory gives the same id, so a resumed run continues its wandb run."""
    name = re.sub(r"[^A-Za-z0-9._-]", "-", Path(run_dir).name)[:57]
    return f"{name}-{path_digest(run_dir)}"


def path_digest(run_dir: Path) -> str:
    return hashlib.sha1(str(Path(run_dir).resolve()).encode()).hexdigest()[:6]


def import_wandb() -> Any:
    """The ``wandb`` package, 0.30 or newer (the first whose ``login`` can decline to prompt)."""
    try:
        import wandb
    except ImportError as error:
        raise ImportError(
            f"log.wandb=true needs the wandb package ({error}): "
            f"pip install 'grpozoo[wandb]', or set log.wandb=false"
        ) from None
    if "prompt" not in inspect.signature(wandb.login).parameters:
        raise ImportError(
            f"log.wandb=true needs wandb 0.30 or newer (this is {wandb.__version__}): "
            f"pip install -U 'grpozoo[wandb]', or set log.wandb=false"
        )
    return wandb


def start_wandb_run(wandb: Any, cfg: RunConfig, run_dir: Path) -> Any:
    """Start (or, for a resumed run, continue) the run directory's wandb run, its local files in
    ``run_dir/wandb``. Without credentials outside offline and disabled modes this stops with one
    line instead of asking for an API key."""
    mode = wandb.setup().settings.mode  # WANDB_MODE, or `wandb offline` / `wandb online`
    if mode not in ("offline", "dryrun", "disabled") and not wandb.login(prompt=False, verify=False):
        if wandb.run is None:  # stop the service wandb.setup started, unless a run of the caller's uses it
            wandb.teardown()
        raise MachineSetupError(
            "log.wandb=true: not logged in to Weights & Biases: run `wandb login` (or set WANDB_API_KEY), "
            "or set WANDB_MODE=offline to log locally and `wandb sync` later, or set log.wandb=false"
        )
    return wandb.init(
        project=os.environ.get("WANDB_PROJECT") or WANDB_PROJECT,
        id=wandb_run_id(run_dir),
        name=Path(run_dir).name,
        dir=str(run_dir),
        config=cfg.model_dump(mode="json"),
        resume="allow",
    )


def numeric(record: dict[str, Any]) -> dict[str, float]:
    """The finite numbers of a metrics record, without its step."""
    return {
        k: float(v)
        for k, v in record.items()
        if k != "step" and isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
    }


def question_of(example: dict[str, Any], rendered: str) -> str:
    """The question as a person wrote it (the row's prompt or last user message), not the
    chat-templated text."""
    if example.get("prompt"):
        return str(example["prompt"])
    messages = example.get("messages") or []
    users = [m["content"] for m in messages if m.get("role") == "user"]
    return users[-1] if users else rendered


def completion_rows(step: int, batch: Rollouts) -> list[list[Any]]:
    """``[step, prompt, completion, reward, advantage]`` for the batch's first rows."""
    rows = []
    for i in range(min(batch.batch_size, MAX_TABLE_ROWS)):
        advantage = None
        if batch.advantages is not None:
            advantage = round(float(batch.advantages[i].float().mean()), 4)
        reward = round(float(batch.rewards[i]), 4) if batch.rewards is not None else None
        rows.append(
            [step, question_of(batch.examples[i], batch.prompts[i]), batch.completions[i], reward, advantage]
        )
    return rows


def markdown_table(rows: list[list[Any]]) -> str:
    def cell(value: Any) -> str:
        return str(value).replace("|", "\\|").replace("\n", " ⏎ ")

    lines = ["| " + " | ".join(COMPLETION_COLUMNS) + " |", "|" + "---|" * len(COMPLETION_COLUMNS)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)
