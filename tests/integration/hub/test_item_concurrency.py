"""Two writers on one worklist item: neither may undo the other's change or skip its check.

The change feed refreshes a study (``hub.intake.enqueue``) while a person reconciles it (which
adds the order link to the item's details): both rewrite the whole ``details`` JSON, and the
order link must survive whichever commits last. Two readers claim the same study at once: one
gets it, the other is told it is taken (not both). A clinician acknowledges a critical result
while the escalation pass runs: the acknowledgement stands. The HIS cancels an order while its
study is being claimed for reading: the cancel is refused (an order already in reading cannot
be cancelled), not applied on a stale copy. A reader renews a claim while the beat releases
expired ones: the reader keeps it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import timedelta

import pytest
from sqlalchemy.orm import Session

from hub import audit
from hub.clock import utcnow
from hub.db.models import User, WorklistItem
from hub.db.order_models import ImagingOrder
from hub.db.session import get_sessionmaker, session_scope
from hub.domain.access import Scope
from hub.domain.errors import Conflict, InvalidTransition
from hub.domain.orders import OrderControl, OrderKind
from hub.domain.worklist import Event
from hub.intake import IntakeRules, NewItem, enqueue
from hub.services import critical, orders
from hub.services.patients import PatientRef
from hub.services.worklist import apply_event, claim_item, lock_item, release_expired_claims
from tests.conftest import seed_demo

RULES = IntakeRules({"stat": 30, "urgent": 120, "routine": 1440}, {"CT": "radiology"})


def study(**details: object) -> NewItem:
    return NewItem(kind="imaging", natural_key="1.2.3.4", institution_code=None,
                   patient=PatientRef("P1", "王芳"), modality="CT", details=dict(details))


def while_uncommitted(db_url: str, first: Callable[[Session], None],
                      second: Callable[[Session], None]) -> list[BaseException]:
    """Run ``first`` and keep its transaction open while ``second`` starts in another thread.

    ``second`` must still be waiting after a second (it has had ample time to read the item);
    then ``first`` commits. Returns what ``second`` raised.
    """
    done = threading.Event()
    raised: list[BaseException] = []

    def run_second() -> None:
        try:
            with session_scope(db_url) as s:
                second(s)
        except BaseException as exc:  # noqa: BLE001 - returned to the test
            raised.append(exc)
        done.set()

    session = get_sessionmaker(db_url)()
    try:
        first(session)
        session.flush()
        worker = threading.Thread(target=run_second)
        worker.start()
        time.sleep(1.0)
        assert not done.is_set(), "the second writer did not wait for the first"
        session.commit()
    finally:
        session.close()
    worker.join(timeout=30)
    assert done.is_set()
    return raised


def test_a_refresh_waits_for_an_uncommitted_order_link_and_keeps_it(db_url: str) -> None:
    with session_scope(db_url) as s:
        item_id = enqueue(s, study(series=1), RULES).id

    def link(s: Session) -> None:
        item = s.get(WorklistItem, item_id)
        item.details = {**item.details, "order": {"id": 7}}

    raised = while_uncommitted(db_url, link,
                               lambda s: enqueue(s, study(series=2), RULES))
    assert not raised, raised
    with session_scope(db_url) as s:
        details = s.get(WorklistItem, item_id).details
    assert details["order"] == {"id": 7}
    assert details["series"] == 2


def study_and_two_readers(db_url: str) -> tuple[int, int, int]:
    """A study ready for reading and two radiologists: their ids."""
    with session_scope(db_url) as s:
        item = enqueue(s, NewItem(kind="imaging", natural_key="1.2.3.5", institution_code=None,
                                  patient=PatientRef("P2", "李雷"), modality="CT", ready=True),
                       RULES)
        users = [User(username=name, password_hash="-", role="radiologist",
                      institution_code="HUB", created_at=utcnow()) for name in ("wang", "li")]
        s.add_all(users)
        s.flush()
        return item.id, users[0].id, users[1].id


def test_two_readers_claiming_one_study_at_once_do_not_both_get_it(db_url: str) -> None:
    item_id, first_id, second_id = study_and_two_readers(db_url)
    ttl = timedelta(minutes=30)

    def claim_as(user_id: int) -> Callable[[Session], None]:
        def run(s: Session) -> None:
            claim_item(s, s.get(WorklistItem, item_id), user_id,
                       audit.Actor(str(user_id), "radiologist", "HUB"), ttl)
        return run

    raised = while_uncommitted(db_url, claim_as(first_id), claim_as(second_id))
    assert len(raised) == 1 and isinstance(raised[0], Conflict), raised
    with session_scope(db_url) as s:
        assert s.get(WorklistItem, item_id).claimed_by == first_id


def test_a_claim_is_decided_on_the_row_not_on_a_copy_read_earlier(db_url: str) -> None:
    """A claim decided on a copy read before another reader's claim committed is refused."""
    item_id, first_id, second_id = study_and_two_readers(db_url)
    late = get_sessionmaker(db_url)()
    try:
        stale = late.get(WorklistItem, item_id)  # read while the item is still free
        assert stale.claimed_by is None
        late.commit()  # SQLite: let the other writer in; the copy stays in this session
        with session_scope(db_url) as s:
            claim_item(s, s.get(WorklistItem, item_id), first_id, audit.SYSTEM,
                       timedelta(minutes=30))
        with pytest.raises(Conflict):
            claim_item(late, stale, second_id, audit.SYSTEM, timedelta(minutes=30))
    finally:
        late.rollback()
        late.close()


def test_an_acknowledgement_during_the_escalation_pass_is_not_overwritten(db_url: str) -> None:
    raised_at = utcnow() - timedelta(minutes=30)
    item_id, _first, _second = study_and_two_readers(db_url)
    with session_scope(db_url) as s:
        alert = critical.raise_report_critical(s, s.get(WorklistItem, item_id), None,
                                               "大量心包积液", "ward 3", audit.SYSTEM, raised_at)
        alert_id = f"report:{alert.id}"

    def acknowledge(s: Session) -> None:
        critical.acknowledge(s, alert_id, "dr.zhou", audit.SYSTEM, utcnow())

    escalated: list[list[critical.AlertView]] = []
    raised = while_uncommitted(
        db_url, acknowledge,
        lambda s: escalated.append(critical.escalate_due(s, utcnow(), 10, 3)))
    assert not raised, raised
    assert escalated == [[]]  # it waited, then saw the alert acknowledged
    with session_scope(db_url) as s:
        (view,) = critical.list_alerts(s, Scope(None, None))
    assert (view.status, view.acknowledged_by) == ("acknowledged", "dr.zhou")


def test_a_cancel_from_the_his_while_reading_starts_is_refused(db_url: str) -> None:
    seed_demo(db_url)
    patient = PatientRef("BR01-000777", "周^八")
    with session_scope(db_url) as s:
        order = orders.place_order(
            s, audit.SYSTEM, "BR01", "BR01HIS", patient,
            orders.OrderIn(OrderControl.NEW, OrderKind.IMAGING, "P777", "CT"), utcnow())
        item = enqueue(s, NewItem(kind="imaging", natural_key="2.25.777",
                                  institution_code="BR01", patient=patient, ready=True,
                                  modality="CT", accession_number=order.accession_number), RULES)
        assert orders.match_arriving_study(s, item, utcnow(), RULES.turnaround_minutes) is order
        item_id, order_id = item.id, order.id

    def start_reading(s: Session) -> None:
        apply_event(s, lock_item(s, s.get(WorklistItem, item_id)), Event.CLAIM, audit.SYSTEM)

    def cancel(s: Session) -> None:
        orders.change_order(s, audit.SYSTEM, s.get(ImagingOrder, order_id), OrderControl.CANCEL,
                            utcnow())

    raised = while_uncommitted(db_url, start_reading, cancel)
    assert len(raised) == 1 and isinstance(raised[0], InvalidTransition), raised
    with session_scope(db_url) as s:
        assert s.get(ImagingOrder, order_id).status == "in_reading"


def test_a_claim_renewed_while_expired_claims_are_released_is_kept(db_url: str) -> None:
    item_id, reader_id, _other = study_and_two_readers(db_url)
    with session_scope(db_url) as s:
        claim_item(s, s.get(WorklistItem, item_id), reader_id, audit.SYSTEM, timedelta(minutes=30))
        s.get(WorklistItem, item_id).claim_expires_at = utcnow() - timedelta(minutes=1)

    def renew(s: Session) -> None:
        claim_item(s, s.get(WorklistItem, item_id), reader_id, audit.SYSTEM,
                   timedelta(minutes=30))

    released: list[int] = []
    raised = while_uncommitted(db_url, renew,
                               lambda s: released.append(release_expired_claims(s)))
    assert not raised, raised
    assert released == [0]
    with session_scope(db_url) as s:
        item = s.get(WorklistItem, item_id)
        assert (item.status, item.claimed_by) == ("in_progress", reader_id)
