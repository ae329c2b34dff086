"""Critical results (危急值): raise, list, acknowledge, escalate.

Lab critical values are raised by the LIS bridge into ``lab_critical_alerts`` (owned by the lab
part); critical findings of imaging and ECG reports go into ``report_critical_results``. This
module treats both alike: one list, one acknowledgement, one escalation pass. Alert ids on the
API are ``lab:<id>`` and ``report:<id>``.

Escalation takes ``now`` as an argument (beat passes the clock, tests pass a time), so a test
does not wait ten minutes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from hub import audit
from hub.clock import as_utc, utcnow
from hub.db.lab_models import LabCriticalAlert
from hub.db.models import WorklistItem
from hub.db.report_models import ReportCriticalResult
from hub.domain.access import Scope
from hub.domain.errors import Conflict, InvalidInput, NotFound
from hub.domain.turnaround import escalation_level

logger = logging.getLogger(__name__)

OPEN_STATES = ("open", "notified", "escalated")
Alert = LabCriticalAlert | ReportCriticalResult


@dataclass(frozen=True)
class AlertView:
    """One alert, whichever table it lives in."""

    id: str
    source: str
    item_id: int
    institution: str
    patient_id: int | None
    what: str
    reason: str
    status: str
    reported_by: str
    raised_at: datetime
    notified_to: str | None
    acknowledged_by: str | None
    acknowledged_at: datetime | None
    escalated_at: datetime | None
    escalation_level: int

    def as_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


def _view(a: Alert) -> AlertView:
    if isinstance(a, LabCriticalAlert):
        return AlertView(f"lab:{a.id}", "lab", a.worklist_item_id, a.institution_code,
                         a.patient_id, f"{a.test_code} {a.value} {a.units}".strip(), a.reason,
                         a.status, "LIS", as_utc(a.raised_at), a.notified_to,
                         a.acknowledged_by, as_utc(a.acknowledged_at), as_utc(a.escalated_at),
                         a.escalation_level)
    return AlertView(f"report:{a.id}", "report", a.worklist_item_id, a.institution_code,
                     a.patient_id, a.finding, a.finding, a.status, a.reported_by,
                     as_utc(a.raised_at), a.notify_to or None, a.acknowledged_by,
                     as_utc(a.acknowledged_at), as_utc(a.escalated_at), a.escalation_level)


def _load(session: Session, alert_id: str) -> Alert:
    source, _, raw = alert_id.partition(":")
    if not raw.isdigit() or source not in ("lab", "report"):
        raise InvalidInput(f"alert id must be lab:<n> or report:<n>, not {alert_id!r}")
    model = LabCriticalAlert if source == "lab" else ReportCriticalResult
    # Locked and re-read: an acknowledgement is decided on the alert's current status (two
    # clinicians at once: one gets 409), and the escalation pass waits for it (see there).
    row = session.get(model, int(raw), with_for_update=True, populate_existing=True)
    if row is None:
        raise NotFound(f"critical alert {alert_id}")
    return row


def raise_report_critical(session: Session, item: WorklistItem, report_id: int | None,
                          finding: str, notify_to: str, actor: audit.Actor,
                          now: datetime) -> ReportCriticalResult:
    """Record a critical finding of an imaging/ECG report; flags the item critical.

    Raises:
        InvalidInput: empty finding.
    """
    if not finding.strip():
        raise InvalidInput("a critical result needs the finding")
    row = ReportCriticalResult(
        worklist_item_id=item.id, report_id=report_id, institution_code=item.institution_code,
        patient_id=item.patient_id, finding=finding.strip(), reported_by=actor.username,
        notify_to=notify_to.strip(), status="notified" if notify_to.strip() else "open",
        raised_at=now, notified_at=now if notify_to.strip() else None, escalation_level=0)
    session.add(row)
    item.is_critical = True
    item.critical_reason = finding.strip()[:500]
    session.flush()
    audit.record(session, actor, "critical.raise", f"critical:report:{row.id}",
                 {"item": item.id, "notify_to": notify_to})
    logger.warning("critical result raised: worklist item %s (report alert %s)", item.id, row.id)
    return row


def list_alerts(session: Session, scope: Scope, status: str | None = None,
                source: str | None = None, limit: int = 200,
                item_id: int | None = None) -> list[AlertView]:
    """Alerts visible in ``scope`` (optionally of one item), newest first."""
    out: list[AlertView] = []
    for model, name in ((LabCriticalAlert, "lab"), (ReportCriticalResult, "report")):
        if source and source != name:
            continue
        stmt = select(model).join(WorklistItem, WorklistItem.id == model.worklist_item_id)
        if scope.institution is not None:
            stmt = stmt.where(WorklistItem.institution_code == scope.institution)
        if scope.specialty is not None:
            stmt = stmt.where(WorklistItem.specialty == scope.specialty.value)
        if status:
            stmt = stmt.where(model.status == status)
        if item_id is not None:
            stmt = stmt.where(model.worklist_item_id == item_id)
        out += [_view(a) for a in session.scalars(stmt.order_by(model.id.desc()).limit(limit))]
    return sorted(out, key=lambda v: v.raised_at, reverse=True)[:limit]


def acknowledge(session: Session, alert_id: str, username: str, actor: audit.Actor,
                now: datetime, channel: str = "app") -> AlertView:
    """The receiving clinician acknowledges (签收) a critical result.

    Raises:
        NotFound: unknown alert. Conflict: already acknowledged. InvalidInput: bad id.
    """
    row = _load(session, alert_id)
    if row.status == "acknowledged":
        raise Conflict(f"critical alert {alert_id} was already acknowledged by "
                       f"{row.acknowledged_by}")
    row.status = "acknowledged"
    row.acknowledged_at = now
    row.acknowledged_by = username
    if isinstance(row, ReportCriticalResult):
        row.ack_channel = channel
    audit.record(session, actor, "critical.acknowledge", f"critical:{alert_id}",
                 {"channel": channel})
    return _view(row)


def acknowledge_item_by_hl7(session: Session, item: WorklistItem, receiver: str,
                            actor: audit.Actor, now: datetime) -> int:
    """The HIS acknowledged a message about ``item``: open critical results count as received."""
    n = 0
    for model in (LabCriticalAlert, ReportCriticalResult):
        for row in session.scalars(select(model).where(model.worklist_item_id == item.id,
                                                       model.status.in_(OPEN_STATES))
                                   .with_for_update()):
            acknowledge(session, f"{'lab' if model is LabCriticalAlert else 'report'}:{row.id}",
                        receiver, actor, now, channel="hl7")
            n += 1
    return n


def escalate_due(session: Session, now: datetime, every_minutes: int, max_level: int,
                 actor: audit.Actor = audit.SYSTEM) -> list[AlertView]:
    """Escalate every unacknowledged alert whose level by ``now`` is above its current one.

    Returns the alerts escalated in this pass (each is logged at WARNING and audited).
    """
    escalated = []
    for model in (LabCriticalAlert, ReportCriticalResult):
        # Locked: an alert being acknowledged right now is waited for, and PostgreSQL then
        # re-checks the status, so an acknowledgement is never overwritten by "escalated".
        rows = session.scalars(select(model).where(model.status.in_(OPEN_STATES))
                               .with_for_update()
                               .execution_options(populate_existing=True))
        for row in rows:
            level = escalation_level(as_utc(row.raised_at), now, every_minutes, max_level)
            if level <= row.escalation_level:
                continue
            row.escalation_level = level
            row.escalated_at = now
            row.status = "escalated"
            view = _view(row)
            audit.record(session, actor, "critical.escalate", f"critical:{view.id}",
                         {"level": level})
            logger.warning("critical alert %s unacknowledged, escalated to level %d",
                           view.id, level)
            escalated.append(view)
    return escalated


def escalate_now(session: Session, every_minutes: int, max_level: int) -> list[AlertView]:
    """:func:`escalate_due` with the server clock (for beat)."""
    return escalate_due(session, utcnow(), every_minutes, max_level)
