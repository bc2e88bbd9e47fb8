"""Validated run configuration, in layers: defaults < recipe < config file < command line.

A layer that names a component (or the task) starts that component's ``params`` afresh, so one
component's parameters never reach the one that replaces it (see :func:`merge_layers`). Every
section forbids unknown keys, and the error names the key, its section, a close match and the
valid keys, so a typo fails at start-up rather than after an hour of rollouts.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from grpozoo.errors import ConfigError
from grpozoo.registry import did_you_mean


class _Yaml12Loader(yaml.SafeLoader):
    """PyYAML reads YAML 1.1, where ``1e-3`` is a string; YAML 1.2 (and every user) says float."""


_Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:\d[\d_]*)?(?:\.\d*)?(?:[eE][-+]?\d+)?$|^[-+]?\.(?:inf|Inf)$|^\.(?:nan|NaN)$"),
    list("-+0123456789."),
)


def parse_yaml(text: str) -> Any:
    return yaml.load(text, Loader=_Yaml12Loader)  # noqa: S506 (a SafeLoader subclass)


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class LoraConfig(Section):
    enabled: bool = True
    r: int = Field(16, gt=0)
    alpha: int = Field(32, gt=0)
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    target_modules: str | list[str] = "all-linear"


class ModelConfig(Section):
    name: str = "smollm2-135m"
    # the weights' dtype; LoRA trains float32 adapters over it, full fine-tuning needs float32
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    lora: LoraConfig = LoraConfig()
    gradient_checkpointing: bool = False


# The default task, and its parameters: they belong to it, so another task never carries them.
DEFAULT_TASK = "chain_sum"
DEFAULT_TASK_PARAMS = {"min_terms": 2, "max_terms": 2, "min_digits": 1, "max_digits": 1}


class TaskConfig(Section):
    # a reasoning-gym task name, a .jsonl/.json/.parquet/.csv file, a directory written by
    # datasets' save_to_disk, or a Hugging Face Hub dataset id ("org/name") in the local datasets cache
    name: str = DEFAULT_TASK
    params: dict[str, Any] = Field(default_factory=dict)  # the task's own (reasoning-gym) parameters
    train_size: int = Field(1000, gt=0)
    eval_size: int = Field(50, gt=0)
    seed: int = 0
    system_prompt: str | None = "Answer with just the final number."
    # how the answer is read from a completion (from the dataset's reference answer: reference_format)
    answer_format: Literal["last_number", "boxed", "answer_tag", "full"] = "last_number"
    instruction: str = ""  # appended to every question, e.g. "Put the answer in \\boxed{}."
    # datasets (files, save_to_disk directories, hub ids) only:
    # grpozoo column -> the dataset's column, e.g. {prompt: question, answer: final}
    columns: dict[str, str] = Field(default_factory=dict)
    split: str = "train"  # the split trained on (save_to_disk DatasetDict or hub id)
    subset: str | None = None  # a hub dataset's configuration (subset), e.g. "main" for openai/gsm8k
    # how the reference answer is written: auto (as is), gsm8k ("… #### 42"), boxed (last \boxed{…}),
    # last_line; the final answer becomes `answer`, the worked text before it `solution`
    reference_format: Literal["auto", "gsm8k", "boxed", "last_line"] = "auto"

    @field_validator("columns")
    @classmethod
    def _known_columns(cls, value: dict[str, str]) -> dict[str, str]:
        known = ["prompt", "messages", "answer", "hints", "solution"]
        for key, column in value.items():
            if key not in known:
                raise ValueError(
                    f"task.columns maps grpozoo's own columns ({', '.join(known)}) to the dataset's; "
                    f"{key!r} is not one of them.{did_you_mean(key, known)}"
                )
            if not isinstance(column, str) or not column.strip():
                raise ValueError(f"task.columns.{key} must name a column of the dataset, not {column!r}")
        return value

    @model_validator(mode="before")
    @classmethod
    def _default_task_params(cls, data: Any) -> Any:
        """The default task without ``params`` gets its default parameters; any other task none."""
        if isinstance(data, dict) and data.get("name", DEFAULT_TASK) == DEFAULT_TASK and "params" not in data:
            return {**data, "params": dict(DEFAULT_TASK_PARAMS)}
        return data


class RewardConfig(Section):
    name: str  # a registered reward, or "module:function" / "path/to/file.py:function"
    weight: float = 1.0
    params: dict[str, Any] = Field(default_factory=dict)
    # seconds a batch may take; past it the reward is missing (NaN) for the batch and counted in
    # reward/<name>/timeouts. None: no limit
    timeout_s: float | None = Field(None, gt=0.0)


class RethinkConfig(Section):
    """Forced rethinking (VL-Rethinker): a share ``fraction`` of the completions that ended by
    themselves get ``trigger`` in place of their end-of-turn token and are continued; off at 0. The
    trigger's tokens are never learned unless ``learn_trigger``."""

    fraction: float = Field(0.0, ge=0.0, le=1.0)
    trigger: str = "\nWait, let me double-check that.\n"
    learn_trigger: bool = False

    @field_validator("trigger")
    @classmethod
    def _trigger_not_empty(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("rollout.rethink.trigger is empty: give the text that starts the rethinking")
        return value


class SoftThinkingConfig(Section):
    """SofT-GRPO's soft-thinking rollouts (Zheng and Lee 2025, arXiv:2511.06411): the first ``tokens``
    completion positions of every row are soft steps, each reading the mixture ``Σ_k y_k·e_k``,
    ``y = softmax((ℓ + g)/tau)`` over the ``top_k`` most likely tokens with Gumbel noise ``g``; off at 0.

    GUESS: a fixed number of soft steps at the start of the completion stands for the thinking part
    (the paper thinks softly until its end-of-thinking tag); ``tau = 0.1`` and ``top_k = 15``."""

    tokens: int = Field(0, ge=0)
    tau: float = Field(0.1, gt=0.0)
    top_k: int = Field(15, gt=0)


class RolloutConfig(Section):
    prompts_per_step: int = Field(8, gt=0)
    group_size: int = Field(4, gt=0)
    max_new_tokens: int = Field(24, gt=0)
    temperature: float = Field(1.0, gt=0.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    top_k: int = Field(0, ge=0)  # 0: off
    min_new_tokens: int = Field(0, ge=0)  # EOS suppressed before this many tokens (0: off)
    # extra generation rounds of fresh prompts a refilling group filter (dynamic sampling) may ask for
    # in one step when fewer than prompts_per_step groups survive it; past them the step learns from
    # what it has, or stops with an error when no group survived
    max_refill_rounds: int = Field(3, ge=0)
    # multi-turn rollouts with tools (grpozoo.environments.tools): the model may call these ("python",
    # "calculator") and read their output, for up to max_turns turns; max_new_tokens bounds the whole
    # trajectory, tool output included (which never gets loss)
    tools: list[str] = Field(default_factory=list)
    max_turns: int = Field(1, ge=1)
    tool_timeout_s: float = Field(5.0, gt=0.0)  # one python call's wall and CPU time
    rethink: RethinkConfig = RethinkConfig()  # forced rethinking of finished completions (off by default)
    soft_thinking: SoftThinkingConfig = SoftThinkingConfig()  # SofT-GRPO's soft steps (off by default)

    @model_validator(mode="after")
    def _tools_need_turns(self):
        from grpozoo.environments.tools import TOOLS

        unknown = [t for t in self.tools if t not in TOOLS]
        if unknown:
            raise ValueError(f"rollout.tools: unknown tool(s) {unknown}; choose among {', '.join(TOOLS)}")
        if self.tools and self.max_turns < 2:
            raise ValueError(f"rollout.tools={self.tools} with rollout.max_turns={self.max_turns}: a tool's output "
                             f"would never be read; set rollout.max_turns to 2 or more")
        if self.soft_thinking.tokens and (self.tools or self.rethink.fraction > 0):
            raise ValueError("rollout.soft_thinking.tokens > 0 with rollout.tools or rollout.rethink: a continued "
                             "row would start with soft steps again; use soft thinking on its own")
        if self.max_turns > 1 and not self.tools:
            raise ValueError(f"rollout.max_turns={self.max_turns} without rollout.tools: nothing answers the model "
                             f"between turns; name the tools (e.g. rollout.tools=[python])")
        return self


class GenerationConfig(Section):
    """Which engine samples the rollouts. ``hf``: grpozoo's own sampler, in the training process (the
    CPU default). ``vllm``: vLLM's engine in the training process (``pip install 'grpozoo[vllm]'``).
    ``vllm_server``: a vLLM server started separately (``vllm serve …``) at ``url``; the trainer
    pushes its weights to it after every update (README, "Scaling out")."""

    engine: Literal["hf", "vllm", "vllm_server"] = "hf"
    url: str | None = None  # vllm_server: e.g. http://127.0.0.1:8000
    timeout_s: float = Field(300.0, gt=0.0)  # vllm_server: one request's limit
    retries: int = Field(3, ge=0)  # vllm_server: attempts after a refused or failed request
    concurrency: int = Field(8, gt=0)  # vllm_server: requests in flight at once
    # vllm_server: where weights are written for the server to load; it must read the same path
    # (a shared or local disk). None: <run directory>/engine_weights
    weights_dir: str | None = None
    # vllm: the engine's share of the GPU's memory (on a CPU, of the machine's), weights and cache
    gpu_memory_utilization: float = Field(0.3, gt=0.0, le=1.0)

    @model_validator(mode="after")
    def _server_needs_url(self) -> GenerationConfig:
        if self.engine == "vllm_server" and not self.url:
            raise ValueError(
                "generation.engine=vllm_server needs generation.url, the server's address, e.g. "
                "--set generation.url=http://127.0.0.1:8000 (README, 'Scaling out', says how to start one)"
            )
        if self.engine != "vllm_server" and self.url:
            raise ValueError(
                f"generation.url={self.url!r} is read only by generation.engine=vllm_server, but the engine is "
                f"{self.engine!r}: set generation.engine=vllm_server, or drop generation.url"
            )
        return self


class ComponentConfig(Section):
    name: str
    params: dict[str, Any] = Field(default_factory=dict)


class KLConfig(Section):
    """KL(π‖π_ref) regulariser; off while ``coef`` is 0 (then no reference forward runs)."""

    coef: float = Field(0.0, ge=0.0)
    estimator: str = "k3"  # k1 | k2 | k3 | abs
    mode: Literal["loss", "reward"] = "loss"  # a loss term, or folded into the reward (REINFORCE++)
    straight_through: bool = False  # the estimator's value with k2's gradient (unbiased KL gradient)
    target: float | None = Field(None, gt=0.0)  # adaptive coefficient steering the KL to this value
    horizon: int = Field(10, gt=0)  # steps over which the adaptive coefficient reacts
    # a coefficient on a schedule (GRPO-D): from coef_start at the first step to coef at the last (or at
    # the end of the first schedule_fraction of the run), linear or cosine; constant: coef throughout
    schedule: Literal["constant", "linear", "cosine"] = "constant"
    coef_start: float = Field(0.0, ge=0.0)
    schedule_fraction: float = Field(1.0, gt=0.0, le=1.0)

    @model_validator(mode="after")
    def _one_controller(self) -> KLConfig:
        if self.schedule != "constant" and self.target is not None:
            raise ValueError(
                f"algorithm.kl.schedule={self.schedule!r} and algorithm.kl.target={self.target} both set the KL "
                f"coefficient: keep one (schedule=constant for the adaptive coefficient, or drop target)"
            )
        return self


class EntropyConfig(Section):
    """Entropy bonus ``−coef·H`` on the learner's own token entropies; off while ``coef`` is 0.

    With ``target`` the coefficient adapts each step: up while the entropy is below the target,
    down (never below 0) while above.
    """

    coef: float = Field(0.0, ge=0.0)
    target: float | None = Field(None, gt=0.0)
    adapt_rate: float = Field(1e-3, gt=0.0)


class GuidanceConfig(Section):
    """Guided rollouts for all-fail groups (Scaf-GRPO, GHPO, Guide-GRPO); off while
    ``mode`` is "off". A group whose every rollout failed is sampled again with a hint from the task
    column ``column`` appended to its prompt, level by level (the tiers of a list, or growing prefixes
    of a solution) until a hinted rollout succeeds; hinted rollouts then replace failed ones."""

    mode: Literal["off", "tiered_hints", "solution_prefix"] = "off"
    column: str = "hints"  # a list of hints from abstract to concrete, or a solution text
    prefix_fractions: list[float] = Field(default_factory=lambda: [0.25, 0.5, 0.75])  # solution_prefix ω levels
    template: str = "\n\nHint: {hint}"  # appended to the last user message
    learn_with: Literal["hinted", "unhinted"] = "hinted"  # unhinted: Guide's off-policy ratio
    replace: Literal["successes", "all"] = "successes"  # what replaces failed rollouts
    max_replaced: int | None = Field(1, gt=0)  # per group (None: as many as there are)
    samples_per_level: int | None = Field(None, gt=0)  # hinted rollouts per stuck prompt (None: group_size)
    success_on: Literal["task_score", "reward"] = "task_score"
    success_threshold: float = 1.0  # a rollout succeeds when its score reaches this
    start_fraction: float = Field(0.0, ge=0.0, le=1.0)  # the first steps (a fraction of the run) unguided

    @model_validator(mode="after")
    def _check(self) -> GuidanceConfig:
        if "{hint}" not in self.template:
            raise ValueError(f"guidance.template={self.template!r} must contain {{hint}}, where the hint goes")
        if not self.prefix_fractions or any(not 0.0 < f <= 1.0 for f in self.prefix_fractions):
            raise ValueError(
                f"guidance.prefix_fractions={self.prefix_fractions}: give one or more fractions in (0, 1], "
                f"e.g. [0.25, 0.5, 0.75]"
            )
        return self


class AlgorithmConfig(Section):
    advantage: ComponentConfig = ComponentConfig(name="grpo")
    group_filters: list[ComponentConfig] = Field(default_factory=list)  # which rows learn (dynamic sampling, …)
    guidance: GuidanceConfig = GuidanceConfig()  # hinted rollouts for all-fail groups
    token_weights: list[ComponentConfig] = Field(default_factory=list)  # multiplied into the token loss
    loss: ComponentConfig = ComponentConfig(name="ppo_clip")
    aggregation: str = "token_mean"
    kl: KLConfig = KLConfig()
    entropy: EntropyConfig = EntropyConfig()
    selector: ComponentConfig = ComponentConfig(name="uniform")
    num_iterations: int = Field(1, ge=1)


class TrainConfig(Section):
    steps: int = Field(20, gt=0)
    learning_rate: float = Field(2e-4, gt=0.0)
    weight_decay: float = Field(0.0, ge=0.0)
    # by name (docs/zoo.md, "Optimizers"): adamw (torch's fused AdamW), lion, lion_constrained, stosignsgd;
    # its learning rate and weight decay are the two keys above, params its own (betas, …)
    optimizer: ComponentConfig = ComponentConfig(name="adamw")
    max_grad_norm: float = Field(1.0, gt=0.0)
    lr_scheduler: Literal["constant", "constant_with_warmup", "linear", "cosine"] = "constant"
    warmup_steps: int = Field(0, ge=0)
    micro_batch_tokens: int = Field(4096, gt=0)
    # the learner's forwards: float32, or bfloat16 under autocast with float32 weights, gradients and
    # AdamW state (load with model.dtype=float32; log-probs stay float32, from a float32 output layer
    # where the learner runs it itself). The sampler is unchanged, computing with the float32 weights,
    # so sampler/logprob_diff_mean then shows the bf16/fp32 gap
    compute_dtype: Literal["float32", "bfloat16"] = "float32"
    shared_prefix: bool = True  # run each group's prompt once in the learning forward (same result)
    seed: int = 0
    checkpoint_every: int = Field(8, gt=0)
    keep_checkpoints: int = Field(2, gt=0)
    device: str = "cpu"
    # with several learner processes: ddp (each holds the whole model, gradients averaged) or fsdp
    # (FSDP2: parameters, gradients and optimiser state sharded over the processes)
    distributed: Literal["ddp", "fsdp"] = "ddp"
    threads: int | None = None  # torch intra-op threads; None keeps torch's default
    keep_freed_memory: bool = True  # glibc keeps freed blocks for reuse: faster CPU steps, larger RSS


class EvalConfig(Section):
    at_start: bool = True  # measure held-out accuracy before the first step …
    at_end: bool = True  # … and after the last, into eval.jsonl
    samples: int = Field(4, gt=0)  # completions per held-out prompt
    temperature: float = Field(1.0, ge=0.0)
    seed: int = 1234


class LogConfig(Section):
    """Where metrics go besides ``metrics.jsonl`` (always written). All off by default."""

    tensorboard: bool = False  # TensorBoard event files in RUN/tensorboard (pip install 'grpozoo[tensorboard]')
    trackio: bool = False  # a local trackio project "grpozoo", one run per run directory ('grpozoo[trackio]')
    # a Weights & Biases run per run directory (resumed runs continue it), its files in RUN/wandb;
    # project $WANDB_PROJECT or "grpozoo", WANDB_MODE=offline without an account ('grpozoo[wandb]')
    wandb: bool = False
    completions_every: int = Field(0, ge=0)  # a table of prompts, completions, rewards and advantages every
    #   N steps into the enabled loggers (0: never; samples.jsonl holds every completion regardless)

    @model_validator(mode="after")
    def _completions_need_a_logger(self) -> LogConfig:
        if self.completions_every and not (self.tensorboard or self.trackio or self.wandb):
            raise ValueError(
                f"log.completions_every={self.completions_every} logs a completion table to TensorBoard, "
                f"trackio or wandb, but all are off: set log.tensorboard=true, log.trackio=true or "
                f"log.wandb=true (samples.jsonl already holds every completion)"
            )
        return self


class RunConfig(Section):
    recipe: str = "grpo"
    model: ModelConfig = ModelConfig()
    task: TaskConfig = TaskConfig()
    rewards: list[RewardConfig] = Field(default_factory=lambda: [RewardConfig(name="task")])
    rollout: RolloutConfig = RolloutConfig()
    generation: GenerationConfig = GenerationConfig()
    algorithm: AlgorithmConfig = AlgorithmConfig()
    train: TrainConfig = TrainConfig()
    eval: EvalConfig = EvalConfig()
    log: LogConfig = LogConfig()
    output_dir: str | None = None  # default: runs/<recipe>-<task>-<time>

    @field_validator("rewards")
    @classmethod
    def _at_least_one_reward(cls, value: list[RewardConfig]) -> list[RewardConfig]:
        if not value:
            raise ValueError("at least one reward is needed, e.g. rewards: [{name: task}]")
        return value


def deep_merge(base: dict[str, Any], override: dict[str, Any], *, new_layer: bool = False) -> dict[str, Any]:
    """A copy of ``base`` with ``override`` merged in; nested dicts merge, everything else replaces.

    With ``new_layer`` (``override`` is a later layer of configuration, see :func:`merge_layers`) a
    mapping of ``override`` that sets ``name`` starts its ``params`` afresh.
    """
    out = copy.deepcopy(base)
    if new_layer and "name" in override:
        out.pop("params", None)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value, new_layer=new_layer)
        else:
            out[key] = copy.deepcopy(value)
    return out


def merge_layers(*layers: dict[str, Any]) -> dict[str, Any]:
    """Layers of partial configuration merged, each over the ones before (recipe < config file <
    command line). A layer that sets a component's ``name`` (advantage, loss, selector, …, or the
    task's) starts that component's ``params`` afresh: only parameters given in the same layer or a
    later one apply, so ``--recipe grpo --set algorithm.loss.name=cispo`` runs CISPO with its own
    defaults, not GRPO's clip range."""
    out: dict[str, Any] = {}
    for layer in layers:
        out = deep_merge(out, layer, new_layer=True)
    return out


def command_line_layer(overrides: list[str] | None = None, **shortcuts: Any) -> dict[str, Any]:
    """One layer from ``--set`` ``overrides`` and the ``--recipe/--model/--task/--steps/--output``
    ``shortcuts`` (None: not given), the shortcuts winning: ``--task basic_arithmetic --set
    task.params.max_digits=2`` keeps the parameter."""
    layer: dict[str, Any] = {}
    for text in overrides or []:
        layer = deep_merge(layer, parse_override(text))
    paths = {"recipe": "recipe", "model": "model.name", "task": "task.name", "steps": "train.steps",
             "output_dir": "output_dir"}
    for key, value in shortcuts.items():
        if value is not None:
            layer = deep_merge(layer, _nested(paths[key], value))
    return layer


def parse_override(text: str) -> dict[str, Any]:
    """``"train.steps=10"`` -> ``{"train": {"steps": 10}}``; the value is parsed as YAML."""
    if "=" not in text:
        raise ConfigError(f"--set {text!r}: expected dotted.key=value, e.g. --set train.steps=10")
    key, raw = text.split("=", 1)
    if not all(key.strip().split(".")):
        raise ConfigError(f"--set {text!r}: empty key segment in {key!r}")
    return _nested(key.strip(), parse_yaml(raw) if raw.strip() else "")


def load_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"config file {str(path)!r} does not exist")
    data = parse_yaml(path.read_text()) or {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {str(path)!r} must hold a mapping at the top level, not {type(data).__name__}")
    return data


def _model_at(location: tuple[Any, ...]) -> type[BaseModel] | None:
    """The section model that owns the key at ``location`` (for listing its valid keys)."""
    model: Any = RunConfig
    for part in location[:-1]:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part) if isinstance(model, type) and issubclass(model, BaseModel) else None
        if field is None:
            return None
        annotation = field.annotation
        args = getattr(annotation, "__args__", ())
        candidates = [annotation, *args]
        model = next((c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None)
        if model is None:
            return None
    return model


def _explain(error: ValidationError) -> str:
    lines = []
    for item in error.errors():
        location = tuple(item["loc"])
        dotted = ".".join(str(p) for p in location)
        if item["type"] == "extra_forbidden":
            owner = _model_at(location)
            valid = list(owner.model_fields) if owner else []
            lines.append(
                f"unknown config key {dotted!r}.{did_you_mean(str(location[-1]), valid)} "
                f"Valid keys here: {', '.join(valid)}"
            )
        else:
            lines.append(f"config key {dotted!r} = {item.get('input')!r}: {item['msg']}")
    return "\n".join(lines)


def validate(data: dict[str, Any]) -> RunConfig:
    try:
        return RunConfig.model_validate(data)
    except ValidationError as error:
        raise ConfigError(_explain(error)) from None


def resolve_config(
    config_file: str | Path | None = None,
    overrides: list[str] | None = None,
    **shortcuts: Any,
) -> RunConfig:
    """Build the run configuration from its layers (see :func:`merge_layers`): defaults < recipe <
    config file < command line (``overrides`` and ``shortcuts``, see :func:`command_line_layer`).
    """
    from grpozoo.recipes import get_recipe

    file: dict[str, Any] = load_yaml(config_file) if config_file else {}
    command_line = command_line_layer(overrides, **shortcuts)
    recipe = get_recipe(str(command_line.get("recipe", file.get("recipe", "grpo"))))
    return validate(merge_layers(recipe.config, file, command_line))


def load_run_config(run_dir: str | Path, overrides: list[str] | None = None) -> RunConfig:
    """The resolved configuration a run directory was trained with, with ``overrides`` applied."""
    saved = Path(run_dir) / "config.yaml"
    if not saved.exists():
        raise ConfigError(f"{str(run_dir)!r} has no config.yaml: it is not a grpozoo run directory")
    return validate(merge_layers(load_yaml(saved), command_line_layer(overrides)))


def _nested(dotted: str, value: Any) -> dict[str, Any]:
    out: Any = value
    for part in reversed(dotted.split(".")):
        out = {part: out}
    return out


def save_config(cfg: RunConfig, path: Path) -> None:
    path.write_text(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))
