"""The reading worklist's transition table, one class per state (as pynetdicom's test_fsm)."""

from datetime import UTC, datetime, timedelta

import pytest

from hub.domain.errors import Conflict, InvalidTransition
from hub.domain.worklist import (
    TRANSITIONS,
    Claim,
    Event,
    ReadingState,
    claim,
    is_overdue,
    next_state,
)

NOW = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)
ALL = [(s, e) for s in ReadingState for e in Event]


@pytest.mark.parametrize(("state", "event"), [k for k in ALL if k in TRANSITIONS])
def test_allowed_transition_follows_table(state, event):
    assert next_state(state, event) == TRANSITIONS[(state, event)]


@pytest.mark.parametrize(("state", "event"), [k for k in ALL if k not in TRANSITIONS])
def test_every_other_transition_is_refused(state, event):
    with pytest.raises(InvalidTransition):
        next_state(state, event)


class TestReceiving:
    def test_complete_makes_ready(self):
        assert next_state(ReadingState.RECEIVING, Event.COMPLETE) == ReadingState.READY

    def test_cannot_be_claimed_before_complete(self):
        with pytest.raises(InvalidTransition):
            next_state(ReadingState.RECEIVING, Event.CLAIM)


class TestReady:
    def test_late_instance_reopens(self):
        assert next_state(ReadingState.READY, Event.REOPEN) == ReadingState.RECEIVING

    def test_cannot_be_finalised_unread(self):
        with pytest.raises(InvalidTransition):
            next_state(ReadingState.READY, Event.FINALISE)


class TestFinal:
    def test_final_is_delivered_on_ack(self):
        assert next_state(ReadingState.FINAL, Event.DELIVER) == ReadingState.DELIVERED

    def test_final_cannot_go_back_to_reading(self):
        for event in (Event.CLAIM, Event.RELEASE, Event.PRELIMINARY, Event.REOPEN):
            with pytest.raises(InvalidTransition):
                next_state(ReadingState.FINAL, event)

    def test_amended_is_finalised_again(self):
        assert next_state(ReadingState.AMENDED, Event.FINALISE) == ReadingState.FINAL


class TestClaims:
    def test_claim_held_by_other_is_conflict(self):
        held = Claim(1, NOW + timedelta(minutes=5))
        with pytest.raises(Conflict):
            claim(held, 2, NOW, timedelta(minutes=30))

    def test_expired_claim_can_be_taken(self):
        held = Claim(1, NOW - timedelta(seconds=1))
        assert claim(held, 2, NOW, timedelta(minutes=30)).user_id == 2

    def test_own_claim_is_renewed(self):
        held = Claim(1, NOW + timedelta(minutes=1))
        assert claim(held, 1, NOW, timedelta(minutes=30)).expires_at == NOW + timedelta(minutes=30)


@pytest.mark.parametrize(("state", "overdue"), [
    (ReadingState.READY, True), (ReadingState.IN_PROGRESS, True),
    (ReadingState.FINAL, False), (ReadingState.DELIVERED, False),
])
def test_only_unreported_items_are_overdue(state, overdue):
    assert is_overdue(state, NOW - timedelta(minutes=1), NOW) is overdue
