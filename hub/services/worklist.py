"""Worklist use cases: state changes, claims, queries. Every state change is audited here."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import Row, Select, and_, not_, select
from sqlalchemy.orm import Session

from hub import audit
from hub.clock import as_utc, utcnow
from hub.db.models import Institution, Patient, WorklistItem
from hub.domain.access import Scope
from hub.domain.errors import NotFound, NotPermitted
from hub.domain.worklist import OPEN_STATES, Claim, Event, ReadingState, claim, next_state


def apply_event(session: Session, item: WorklistItem, event: Event, actor: audit.Actor,
                detail: dict | None = None) -> None:
    """Move ``item`` through the transition table and append the change to the audit trail."""
    before = item.status
    item.status = next_state(ReadingState(item.status), event).value
    item.updated_at = utcnow()
    if item.status not in (ReadingState.IN_PROGRESS, ReadingState.PRELIMINARY):
        item.claimed_by = None
        item.claim_expires_at = None
    audit.record(session, actor, "worklist.transition", f"worklist_item:{item.id}",
                 {"event": event.value, "from": before, "to": item.status, **(detail or {})})
    # The order behind the item follows it (reading started, final) and tells its placer.
    from hub.services.orders import on_item_transition

    on_item_transition(session, item, before, item.status, item.updated_at)


def lock_item(session: Session, item: WorklistItem) -> WorklistItem:
    """Re-read ``item`` and hold its row until the transaction ends (FOR UPDATE).

    For every decision made on an item's current state and then written back (a claim, a
    sign-off, a delivery): a second request on the same item waits, then decides on what the
    first one wrote, instead of both passing the check and the later write winning.
    """
    session.refresh(item, with_for_update=True)
    return item


def claim_item(session: Session, item: WorklistItem, user_id: int, actor: audit.Actor,
               ttl: timedelta) -> None:
    """Claim (or renew) an item for reading; raises Conflict while another reader holds it."""
    lock_item(session, item)
    now = utcnow()
    current = Claim(item.claimed_by, as_utc(item.claim_expires_at))
    new = claim(current, user_id, now, ttl)
    apply_event(session, item, Event.CLAIM, actor)
    item.claimed_by, item.claim_expires_at = new.user_id, new.expires_at


def release_item(session: Session, item: WorklistItem, user_id: int, actor: audit.Actor) -> None:
    """Give an item back; only its reader may, unless the claim has already expired."""
    lock_item(session, item)
    if Claim(item.claimed_by, as_utc(item.claim_expires_at)).is_held_by_other(user_id, utcnow()):
        raise NotPermitted("item is claimed by another reader")
    apply_event(session, item, Event.RELEASE, actor)


def release_expired_claims(session: Session, actor: audit.Actor = audit.SYSTEM) -> int:
    """Return items whose claim expired to ``ready``; run by beat."""
    now = utcnow()
    # Locked: a reader renewing a claim right now is waited for, and PostgreSQL then re-checks
    # the expiry on the renewed row, so a claim in use is never released under its reader.
    items = session.scalars(
        select(WorklistItem).where(
            WorklistItem.status == ReadingState.IN_PROGRESS.value,
            WorklistItem.claim_expires_at < now,
        ).with_for_update().execution_options(populate_existing=True)
    ).all()
    for item in items:
        apply_event(session, item, Event.RELEASE, actor, {"reason": "claim expired"})
    return len(items)


@dataclass(frozen=True)
class WorklistQuery:
    kind: str | None = None
    status: str | None = None
    priority: str | None = None
    institution: str | None = None
    specialty: str | None = None
    patient_id: int | None = None
    date_from: date | None = None
    date_to: date | None = None
    limit: int = 100
    offset: int = 0


def _scoped(stmt: Select, scope: Scope) -> Select:
    if scope.institution is not None:
        stmt = stmt.where(WorklistItem.institution_code == scope.institution)
    if scope.specialty is not None:
        stmt = stmt.where(WorklistItem.specialty == scope.specialty.value)
    return stmt


#: Columns a worklist row shows; ``details`` (measurements, manifests) stays out of the list.
LIST_COLUMNS = [c for c in WorklistItem.__table__.c if c.key not in ("details",)]


def worklist_statements(q: WorklistQuery, scope: Scope, now: datetime
                        ) -> tuple[Select | None, Select]:
    """The two index-ordered queries behind :func:`list_items`: overdue items (None when the
    status filter rules them out) and the rest, each limited to the page."""
    open_states = [s.value for s in OPEN_STATES]
    overdue = and_(WorklistItem.status.in_(open_states), WorklistItem.due_at < now)
    stmt = select(*LIST_COLUMNS, Institution.name.label("institution_name")).outerjoin(
        Institution, Institution.code == WorklistItem.institution_code
    )
    stmt = _scoped(stmt, scope)
    filters = {
        WorklistItem.kind: q.kind, WorklistItem.status: q.status,
        WorklistItem.priority: q.priority, WorklistItem.institution_code: q.institution,
        WorklistItem.specialty: q.specialty, WorklistItem.patient_id: q.patient_id,
    }
    for column, value in filters.items():
        if value is not None:
            stmt = stmt.where(column == value)
    if q.date_from:
        stmt = stmt.where(WorklistItem.received_at >= datetime.combine(
            q.date_from, datetime.min.time(), tzinfo=UTC))
    if q.date_to:
        stmt = stmt.where(WorklistItem.received_at < datetime.combine(
            q.date_to + timedelta(days=1), datetime.min.time(), tzinfo=UTC))
    order = (WorklistItem.priority_rank, WorklistItem.due_at, WorklistItem.id)
    wanted = q.offset + q.limit
    first = None
    if q.status is None or q.status in open_states:
        first = stmt.where(overdue).order_by(*order).limit(wanted)
    return first, stmt.where(not_(overdue)).order_by(*order).limit(wanted)


def list_items(session: Session, q: WorklistQuery, scope: Scope,
               now: datetime) -> list[tuple[Row, str | None]]:
    """Items visible in ``scope`` matching ``q``: overdue first, then priority, then due time.

    Run as two index-ordered queries, overdue and the rest, each walking (priority_rank,
    due_at, id) and stopping at the page; one sort over computed keys would read every row.
    Rows are plain column tuples (attribute access as on the model), not ORM objects: the list
    is the hub's hottest read.
    """
    overdue, rest = worklist_statements(q, scope, now)
    wanted = q.offset + q.limit
    rows: list = list(session.execute(overdue)) if overdue is not None else []
    if len(rows) < wanted:
        rows += list(session.execute(rest.limit(wanted - len(rows))))
    return [(row, row.institution_name) for row in rows[q.offset:wanted]]


def get_item(session: Session, item_id: int, scope: Scope) -> WorklistItem:
    """One item, or NotFound when it does not exist *or* is outside the user's scope.

    Out-of-scope items answer 404 rather than 403 so a branch cannot probe other branches' IDs.
    """
    stmt = _scoped(select(WorklistItem).where(WorklistItem.id == item_id), scope)
    item = session.scalar(stmt)
    if item is None:
        raise NotFound(f"worklist item {item_id} not found")
    return item


def patient_history(session: Session, patient_id: int) -> list[WorklistItem]:
    """Every item of a patient, from every institution, newest first."""
    if session.get(Patient, patient_id) is None:
        raise NotFound(f"patient {patient_id} not found")
    return list(session.scalars(
        select(WorklistItem).where(WorklistItem.patient_id == patient_id)
        .order_by(WorklistItem.received_at.desc())
    ))
