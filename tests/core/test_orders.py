import pytest

from cex.core.errors import InvalidTransition
from cex.core.events import OrderStatus as S
from cex.core.orders import TERMINAL, TRANSITIONS, Trigger, transition


def test_happy_paths() -> None:
    assert transition(S.PENDING, Trigger.OPEN) is S.NEW
    assert transition(S.NEW, Trigger.PARTIAL_FILL) is S.PARTIALLY_FILLED
    assert transition(S.PARTIALLY_FILLED, Trigger.FILL) is S.FILLED
    assert transition(S.PENDING, Trigger.EXPIRE) is S.EXPIRED  # stale PENDING / IOC
    assert transition(S.NEW, Trigger.MODIFY) is S.NEW
    assert transition(S.PARTIALLY_FILLED, Trigger.CANCEL) is S.CANCELED


@pytest.mark.parametrize("state", sorted(TERMINAL))
@pytest.mark.parametrize("trigger", list(Trigger))
def test_terminal_states_accept_nothing(state: S, trigger: Trigger) -> None:
    with pytest.raises(InvalidTransition):
        transition(state, trigger)


@pytest.mark.parametrize(
    ("state", "trigger"),
    [
        (S.PENDING, Trigger.CANCEL),
        (S.PENDING, Trigger.MODIFY),
        (S.NEW, Trigger.OPEN),
        (S.NEW, Trigger.REJECT),
        (S.PARTIALLY_FILLED, Trigger.OPEN),
    ],
)
def test_impossible_transitions_raise(state: S, trigger: Trigger) -> None:
    with pytest.raises(InvalidTransition, match=f"from {state}"):
        transition(state, trigger)


def test_no_transition_leaves_a_terminal_state_or_enters_pending() -> None:
    for (state, _), target in TRANSITIONS.items():
        assert state not in TERMINAL
        assert target is not S.PENDING
