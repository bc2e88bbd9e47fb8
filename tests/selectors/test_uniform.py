"""The uniform selector: every train row once per epoch, reshuffled each epoch, resumable."""

from grpozoo.registry import selectors


def test_uniform_visits_every_row_once_per_epoch_in_a_new_order():
    selector = selectors.get("uniform")(num_rows=10, seed=3)
    first, second = selector.next(10), selector.next(10)
    assert sorted(first) == list(range(10)) and sorted(second) == list(range(10))
    assert first != second


def test_uniform_state_restores_the_data_position():
    a = selectors.get("uniform")(num_rows=7, seed=0)
    a.next(5)
    b = selectors.get("uniform")(num_rows=7, seed=0)
    b.load_state_dict(a.state_dict())
    assert a.next(9) == b.next(9)
