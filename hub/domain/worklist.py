"""Reading worklist states and the one table of allowed transitions.

Shaped like pynetdicom's ``fsm.TRANSITION_TABLE``: data keyed by (state, event), so the rules are
read in one place and tested row by row.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from hub.domain.errors import Conflict, InvalidTransition


class ItemKind(enum.StrEnum):
    IMAGING = "imaging"
    ECG = "ecg"
    LAB = "lab"


class ReadingState(enum.StrEnum):
    RECEIVING = "receiving"
    READY = "ready"
    IN_PROGRESS = "in_progress"
    PRELIMINARY = "preliminary"
    FINAL = "final"
    DELIVERED = "delivered"
    AMENDED = "amended"


class Event(enum.StrEnum):
    COMPLETE = "complete"          # all data arrived (stable and manifest satisfied)
    REOPEN = "reopen"              # a late instance arrived
    CLAIM = "claim"
    RELEASE = "release"            # unclaim or claim expired
    PRELIMINARY = "preliminary"    # emergency report issued
    FINALISE = "finalise"          # verified and signed
    DELIVER = "deliver"            # HIS acknowledged
    AMEND = "amend"


S, E = ReadingState, Event

TRANSITIONS: dict[tuple[ReadingState, Event], ReadingState] = {
    (S.RECEIVING, E.COMPLETE): S.READY,
    (S.RECEIVING, E.REOPEN): S.RECEIVING,
    (S.READY, E.REOPEN): S.RECEIVING,
    (S.READY, E.CLAIM): S.IN_PROGRESS,
    (S.IN_PROGRESS, E.CLAIM): S.IN_PROGRESS,
    (S.IN_PROGRESS, E.RELEASE): S.READY,
    (S.IN_PROGRESS, E.REOPEN): S.RECEIVING,
    (S.IN_PROGRESS, E.PRELIMINARY): S.PRELIMINARY,
    (S.IN_PROGRESS, E.FINALISE): S.FINAL,
    (S.PRELIMINARY, E.FINALISE): S.FINAL,
    (S.PRELIMINARY, E.CLAIM): S.PRELIMINARY,
    (S.FINAL, E.DELIVER): S.DELIVERED,
    (S.FINAL, E.AMEND): S.AMENDED,
    (S.DELIVERED, E.AMEND): S.AMENDED,
    (S.AMENDED, E.FINALISE): S.FINAL,
    (S.AMENDED, E.DELIVER): S.DELIVERED,
}


def next_state(state: ReadingState, event: Event) -> ReadingState:
    """The state after ``event``; raises :class:`InvalidTransition` if the table forbids it."""
    try:
        return TRANSITIONS[(ReadingState(state), Event(event))]
    except KeyError:
        raise InvalidTransition(f"cannot {event} an item that is {state}") from None


@dataclass(frozen=True)
class Claim:
    """Who reads an item, and until when the claim holds without renewal."""

    user_id: int | None
    expires_at: datetime | None

    def is_held_by_other(self, user_id: int, now: datetime) -> bool:
        return (
            self.user_id is not None
            and self.user_id != user_id
            and self.expires_at is not None
            and self.expires_at > now
        )


def claim(current: Claim, user_id: int, now: datetime, ttl: timedelta) -> Claim:
    """Take or renew a claim. A claim held by someone else that has not expired is a conflict."""
    if current.is_held_by_other(user_id, now):
        raise Conflict("item is being read by another user")
    return replace(current, user_id=user_id, expires_at=now + ttl)


#: States in which an item still waits for its final report (and can become overdue).
OPEN_STATES = (ReadingState.RECEIVING, ReadingState.READY, ReadingState.IN_PROGRESS,
               ReadingState.PRELIMINARY)


def is_overdue(state: ReadingState, due_at: datetime | None, now: datetime) -> bool:
    """Overdue means not yet reported (final or later) by the due time."""
    return state in OPEN_STATES and due_at is not None and due_at < now
