"""Multi-turn rollouts with tools: a scripted model's episodes (the trajectory is the chat template's
rendering of the conversation, tool output masked from learning, a tool that times out or crashes
ends the episode with that reason), tool-call parsing and the calculator against inputs written to
cheat, the learner ignoring tool tokens, and a real training run of the tiny model with the python tool."""

from __future__ import annotations

import pytest
import torch

from grpozoo.algos.aggregation import BatchTotals
from grpozoo.environments import ANSWERED, BUDGET, MAX_TURNS, TOOL_CRASH, TOOL_TIMEOUT, Reply
from grpozoo.environments.tools import ToolEnvironment, calculate, parse_tool_call
from grpozoo.generation.episodes import EpisodeEngine, environment_text
from grpozoo.generation.hf import SamplingParams
from grpozoo.generation.samples import prompt_token_ids, rollouts_from_samples

# the tiny tokenizer knows <u> and <a> only: a tool turn renders as <u>
TOOL_TEMPLATE = (
    "{% for m in messages %}{% if m['role'] == 'tool' %}<u>{% else %}<{{ m['role'][0] }}>{% endif %}"
    "{{ m['content'] }}</s>{% endfor %}{% if add_generation_prompt %}<a>{% endif %}"
)


@pytest.fixture
def tokenizer():
    from tiny import build_tokenizer

    tok = build_tokenizer()
    tok.chat_template = TOOL_TEMPLATE
    return tok


class ScriptedEngine:
    """An engine whose completions are scripted turns (text), handed out in order; each call records
    the token ids it was asked to continue."""

    version = 0

    def __init__(self, tokenizer, turns: list[str]):
        self.tokenizer, self.turns, self.calls = tokenizer, list(turns), []

    def generate(self, prompts, examples, n, params):
        counts = [n] * len(prompts) if isinstance(n, int) else list(n)
        ids = prompt_token_ids(self.tokenizer, prompts)
        self.calls.append(ids)
        samples = []
        for _ in range(sum(counts)):
            tokens = self.tokenizer(self.turns.pop(0), add_special_tokens=False)["input_ids"][: params.max_new_tokens]
            samples.append((tokens, [-0.5] * len(tokens)))
        eos = [self.tokenizer.eos_token_id]
        return rollouts_from_samples(self.tokenizer, prompts, ids, examples, counts, samples, eos, self.version)


def episode(tokenizer, turns, environment, max_turns=3, max_new_tokens=200):
    engine = ScriptedEngine(tokenizer, turns)
    episodes = EpisodeEngine(engine, tokenizer, lambda: environment, max_turns)
    prompt = tokenizer.apply_chat_template([{"role": "user", "content": "12*34?"}], tokenize=False,
                                           add_generation_prompt=True)
    batch = episodes.generate([prompt], [{"answer": "408"}], 1, SamplingParams(max_new_tokens))
    return batch, engine


def test_a_trajectory_is_the_template_rendering_with_tool_output_masked(tokenizer):
    turns = ["let me run ```calculator\n12*34\n```</s>", "it is 408</s>"]
    batch, engine = episode(tokenizer, turns, ToolEnvironment(["calculator"]))
    conversation = [{"role": "user", "content": "12*34?"},
                    {"role": "assistant", "content": "let me run ```calculator\n12*34\n```"},
                    {"role": "tool", "content": "408"}, {"role": "assistant", "content": "it is 408"}]
    expected = tokenizer(tokenizer.apply_chat_template(conversation, tokenize=False), add_special_tokens=False)
    length = int(batch.completion_mask.sum())
    sequence = batch.prompt_ids[0][batch.prompt_mask[0].bool()].tolist() + batch.completion_ids[0, :length].tolist()
    assert sequence == expected["input_ids"]
    # the mask is 1 exactly on the tokens of the tool turn "<u>408</s><a>"
    tool = tokenizer("<u>408</s><a>", add_special_tokens=False)["input_ids"]
    first = len(tokenizer(turns[0], add_special_tokens=False)["input_ids"])
    expected_mask = [0] * first + [1] * len(tool) + [0] * (length - first - len(tool))
    assert batch.tool_mask[0, :length].tolist() == expected_mask
    assert batch.action_mask[0, :length].tolist() == [1 - m for m in expected_mask]
    assert bool((batch.sampling_logprobs[0, :length][batch.tool_mask[0, :length].bool()] == 0).all())
    # the second turn continued from the exact tokens, prompt and first turn and tool turn
    assert engine.calls[1] == [sequence[: len(sequence) - len(tokenizer("it is 408</s>")["input_ids"])]]
    assert batch.examples[0]["tool_calls"] == 1 and batch.examples[0]["episode_end"] == ANSWERED
    assert batch.environment_parts["tool_calls"].tolist() == [1.0]
    assert batch.environment_parts[f"ended/{ANSWERED}"].tolist() == [1.0]
    assert not bool(batch.truncated[0])
    # what rewards read is the model's own text; the exchange, tool output included, is a column
    assert batch.completions[0] == "let me run ```calculator\n12*34\n```\nit is 408"
    assert "408\n" not in batch.completions[0] and "<u>" not in batch.completions[0]
    assert batch.examples[0]["trajectory"] == tokenizer.decode(batch.completion_ids[0, :length], skip_special_tokens=True)


def test_an_answer_only_a_tool_printed_is_not_the_model_s(tokenizer):
    """A model that lets the tool print the answer and never says it earns nothing for it: the
    verifier reads the model's words, not the tool's output."""
    from grpozoo.rewards.extraction import extract_answer

    turns = ["```calculator\n12*34\n```</s>", "done, all good</s>"]
    batch, _ = episode(tokenizer, turns, ToolEnvironment(["calculator"]))
    assert "408" in batch.examples[0]["trajectory"]
    assert extract_answer(batch.completions[0], "last_number") != "408"


def test_the_token_budget_covers_the_whole_trajectory(tokenizer):
    turns = ["```calculator\n1+1\n```</s>", "and now a very long second turn that runs past the budget</s>"]
    batch, _ = episode(tokenizer, turns, ToolEnvironment(["calculator"]), max_new_tokens=40)
    assert int(batch.completion_mask.sum()) == 40
    assert bool(batch.truncated[0]) and batch.examples[0]["episode_end"] == BUDGET


def test_the_last_turn_s_call_is_not_answered_past_max_turns(tokenizer):
    turns = ["```calculator\n1+1\n```</s>", "```calculator\n2+2\n```</s>"]
    batch, engine = episode(tokenizer, turns, ToolEnvironment(["calculator"]), max_turns=2)
    assert batch.examples[0]["episode_end"] == MAX_TURNS and len(engine.calls) == 2
    assert int(batch.tool_mask.sum()) == len(tokenizer("<u>2</s><a>", add_special_tokens=False)["input_ids"])


class FakeSandbox:
    def __init__(self, status):
        self.status = status

    def execute(self, program, stdin=""):
        from grpozoo.rewards.sandbox import Execution

        return Execution(self.status, "", "MemoryError" if self.status == "memory" else "")


@pytest.mark.parametrize(("status", "reason"), [("timeout", TOOL_TIMEOUT), ("memory", TOOL_CRASH), ("killed", TOOL_CRASH)])
def test_a_tool_that_times_out_or_crashes_ends_the_episode_with_that_reason(tokenizer, status, reason):
    turns = ["```python\nwhile True: pass\n```</s>", "never sampled</s>"]
    batch, engine = episode(tokenizer, turns, ToolEnvironment(["python"], sandbox=FakeSandbox(status)))
    assert len(engine.calls) == 1 and batch.examples[0]["episode_end"] == reason
    assert batch.environment_parts[f"ended/{reason}"].tolist() == [1.0]
    assert batch.tool_mask.sum() == 0


def test_the_python_tool_runs_in_the_sandbox(tokenizer):
    environment = ToolEnvironment(["python"], timeout_s=2.0)
    assert environment.step("```python\nprint(12 * 34)\n```").message == {"role": "tool", "content": "408"}
    # this machine's files are not there; an error comes back as the traceback's last lines
    reply = environment.step("```python\nprint(open('/etc/passwd').read())\n```")
    assert "root:" not in reply.message["content"] and "Error" in reply.message["content"]
    assert environment.step("```python\nwhile True: pass\n```").ended == TOOL_TIMEOUT


def test_a_forged_tool_turn_is_the_model_s_own_text(tokenizer):
    """A model that writes a tool turn's text itself gets no tool run, and learns from those tokens
    as its own: only what the environment inserts is masked."""
    forged = "<u>408</s><a>the answer is 408</s>"
    batch, engine = episode(tokenizer, [forged], ToolEnvironment(["calculator"]))
    assert len(engine.calls) == 1 and batch.examples[0]["episode_end"] == ANSWERED
    assert batch.tool_mask.sum() == 0 and batch.examples[0]["tool_calls"] == 0


def test_tool_calls_are_parsed_fenced_or_tagged_first_one_wins():
    tools = ("python", "calculator")
    assert parse_tool_call("```python\nprint(1)\n```", tools) == ("python", "print(1)\n")
    assert parse_tool_call('<tool_call>{"name": "calculator", "arguments": {"expression": "2*3"}}</tool_call>',
                           tools) == ("calculator", "2*3")
    both = '```calculator\n1+1\n``` then <tool_call>{"name": "python", "arguments": "print(2)"}</tool_call>'
    assert parse_tool_call(both, tools) == ("calculator", "1+1\n")
    assert parse_tool_call("```bash\nls\n```", tools) is None  # not a tool of this run
    assert parse_tool_call("```python\nprint(1)\n```", ("calculator",)) is None
    assert parse_tool_call("<tool_call>{not json}</tool_call>", tools) is None
    assert parse_tool_call("no call, the answer is 4", tools) is None


def test_the_calculator_computes_arithmetic_and_nothing_else():
    assert calculate("12*34") == "408" and calculate("(7 - 2) ** 3 / 5") == "25" and calculate("7 // 2 % 2") == "1"
    assert calculate("-1.5 + 2") == "0.5"
    for attempt in ("__import__('os').system('id')", "open('/etc/passwd')", "x", "[1] * 3", "(1).__class__",
                    "True + 1", "'a' * 3"):
        assert calculate(attempt).startswith("error"), attempt
    assert calculate("9 ** 9 ** 9").startswith("error")  # refused before it is computed
    assert calculate("1 / 0").startswith("error")


def test_environment_text_follows_the_template(tokenizer):
    assert environment_text(tokenizer, {"role": "tool", "content": "7"}) == "<u>7</s><a>"


def test_the_learner_ignores_tool_tokens(tiny_overrides):
    """The loss does not see the tool turn's tokens: changing their sampler log-probs (which would
    move the ratio there) leaves the loss and gradient as they were."""
    from training.test_trainer import make_trainer

    trainer = make_trainer(tiny_overrides, "model.lora.enabled=false", "rollout.prompts_per_step=2")
    torch.manual_seed(0)
    batch = trainer.rollouts.collect(1).learning
    tool = torch.zeros_like(batch.completion_mask)
    tool[:, 1:3] = batch.completion_mask[:, 1:3]  # two tokens of each row, as if a tool wrote them
    batch.tool_mask = tool
    batch = trainer.learner.prepare(batch)
    batch.old_logprobs = batch.sampling_logprobs.clone()

    def gradient(old):
        batch.old_logprobs = old
        trainer.learner.optimizer.zero_grad()
        totals = BatchTotals.of(batch.action_mask, trainer.cfg.rollout.max_new_tokens, batch.group_ids)
        loss, _ = trainer.learner.micro_batch_loss(batch, totals, None)
        loss.backward()
        return float(loss.detach()), [p.grad.clone() for p in trainer.model.parameters() if p.grad is not None]

    loss, grads = gradient(batch.old_logprobs.clone())
    moved = batch.old_logprobs.clone() + 5.0 * tool
    loss_moved, grads_moved = gradient(moved)
    assert loss_moved == pytest.approx(loss, abs=1e-7)
    for a, b in zip(grads, grads_moved, strict=True):
        torch.testing.assert_close(a, b)
    learned = batch.old_logprobs.clone() + 5.0 * batch.action_mask  # the model's own tokens do count
    assert gradient(learned)[0] != pytest.approx(loss, abs=1e-7)


def test_a_custom_environment_s_parts_are_reported(tokenizer):
    class Counter:
        def reset(self, row):
            self.seen = 0

        def step(self, turn):
            self.seen += 1
            if self.seen == 1:
                return Reply({"role": "tool", "content": "go on"}, parts={"nudges": 1.0})
            return Reply(None, ANSWERED, {"nudges": 0.5})

    batch, _ = episode(tokenizer, ["first</s>", "second</s>"], Counter())
    assert batch.environment_parts["nudges"].tolist() == [1.5] and batch.examples[0]["turns"] == 2


def test_a_training_run_with_the_python_tool(tiny_overrides):
    """Two steps of the tiny model with the python tool: episodes, rewards and an update; the
    environment's parts are logged beside the reward parts, never among them (an estimator over
    several rewards, such as GDPO's, would take the tool-call count for a reward)."""
    import json

    from training.test_trainer import make_trainer

    trainer = make_trainer(tiny_overrides, "rollout.tools=[python]", "rollout.max_turns=2", "rollout.max_new_tokens=12",
                           "algorithm.advantage.name=gdpo")
    for _ in range(2):
        metrics = trainer.train_step()
    assert metrics["grad_norm"] > 0
    batch = trainer.rollouts.collect(trainer.step + 1).batch
    assert batch.environment_parts and not set(batch.environment_parts) & set(batch.reward_parts)
    sample = json.loads((trainer.run_dir / "samples.jsonl").read_text().splitlines()[-1])
    assert {"turns", "task"} <= set(sample["parts"])
    ended = sum(metrics[f"episode/ended/{reason}"] for reason in (ANSWERED, MAX_TURNS, BUDGET, TOOL_TIMEOUT, TOOL_CRASH))
    assert ended == pytest.approx(1.0) and metrics["episode/turns"] >= 1.0  # every episode ended one way
