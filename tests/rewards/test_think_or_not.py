"""TON's think-or-not format reward: a think block, empty or not, then an answer."""

from grpozoo.rewards.think_or_not import think_or_not_format_reward


def test_an_empty_think_block_is_as_good_a_format_as_a_full_one():
    completions = [
        "<think>\n\n</think>\n14",  # chose not to think
        " <think>7 * 2 = 14</think> The answer is 14.",  # thought
        "The answer is 14.",  # no block
        "<think>7 * 2</think>",  # no answer
        "<think>a</think> 14 <think>b</think> 15",  # a second block
        "14 <think>late</think> 14",  # the block is not first
    ]
    assert think_or_not_format_reward(completions, [""] * 6) == [1.0, 1.0, 0.0, 0.0, 0.0, 0.0]
