"""Order use cases (issue 8): place, change and cancel orders; match arriving studies; reconcile
unmatched ones; priors; status messages back to the placer; the modality worklist export.

Rules are in :mod:`hub.domain.orders`; this module loads, asks the domain, persists and audits,
in the caller's transaction (it never commits). Edges translate: the HL7 edge maps the domain
errors raised here to AE with an ERR segment (``lis_bridge/acks.py``), the API to 4xx.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from hub import audit
from hub.clock import as_utc
from hub.db.lab_models import LabOutbound
from hub.db.models import Patient, PatientIdentifier, WorklistItem
from hub.db.order_models import (
    ImagingOrder,
    OrderPrior,
    OrderStatusUpdate,
    StudyReconciliation,
)
from hub.domain.errors import Conflict, InvalidInput, InvalidTransition, NotFound
from hub.domain.orders import (
    BadOrder,
    DuplicateOrder,
    Match,
    MatchKind,
    OrderControl,
    OrderEvent,
    OrderFacts,
    OrderKind,
    OrderStatus,
    StudyFacts,
    UnknownOrder,
    accession_for,
    check_accession,
    event_for_control,
    match_study,
    next_order_state,
)
from hub.domain.priority import PRIORITY_RANK, Priority
from hub.domain.worklist import ReadingState
from hub.services.patients import PatientRef, resolve_patient

logger = logging.getLogger(__name__)

#: Fields an XO (change) may replace.
CHANGEABLE = ("procedure_code", "procedure_name", "modality", "body_part", "scheduled_at",
              "scheduled_station_aet", "priority", "ordering_clinician", "reason")


@dataclass(frozen=True)
class OrderIn:
    """One order as an edge (HL7 ORM/OMI/OMG, or the API) saw it; plain values, enums."""

    control: OrderControl
    kind: OrderKind
    placer_order_number: str
    modality: str
    priority: Priority = Priority.ROUTINE
    filler_order_number: str = ""
    accession_number: str = ""
    requested_procedure_id: str = ""
    sps_id: str = ""
    study_instance_uid: str = ""
    procedure_code: str = ""
    procedure_name: str = ""
    body_part: str | None = None
    scheduled_at: datetime | None = None
    scheduled_station_aet: str = ""
    ordering_clinician: str = ""
    reason: str = ""
    #: The patient's name in DICOM PN form (``family^given``, as PID-5 carries it): the
    #: modality worklist hands it to the modality, which writes it into the images.
    patient_name: str = ""


def _lock(session: Session, order: ImagingOrder) -> None:
    """Hold the order's row (and first its item's, the order every writer takes them in) and
    re-read it: its status is checked, then written, and its history rewritten whole.

    A cancel from the HIS and a report becoming final at the same moment must not both pass
    their checks on stale copies (a cancelled order with a final report).
    """
    if order.worklist_item_id is not None:
        session.get(WorklistItem, order.worklist_item_id, with_for_update=True,
                    populate_existing=True)
    session.refresh(order, with_for_update=True)


def _history(order: ImagingOrder, now: datetime, event: str, before: str | None, by: str,
             **detail: Any) -> None:
    order.history = [*(order.history or []),
                     {"at": as_utc(now).isoformat(), "event": event, "from": before,
                      "to": order.status, "by": by, **detail}]


def _new_uid() -> str:
    # PS3.5 B.2: a UID derived from a UUID under the 2.25 root needs no registered org root.
    return f"2.25.{uuid.uuid4().int}"


def _has_identifier(patient: PatientRef) -> bool:
    return bool(patient.local_id or patient.national_id or patient.insurance_no)


# --------------------------------------------------------------------------- orders in


def place_order(session: Session, actor: audit.Actor, institution: str, sending_facility: str,
                patient: PatientRef, new: OrderIn, now: datetime,
                raw_message_id: int | None = None) -> ImagingOrder:
    """Create an order (NW) and link the patient's recognised priors of the same region.

    Raises:
        InvalidInput: the patient has no identifier at all, or the accession is not DICOM SH.
        Conflict: the institution already has this placer order number, or the accession
            number is taken.
    """
    if not _has_identifier(patient):
        raise BadOrder("unknown patient without identifiers", "patient_identifier")
    if not new.placer_order_number:
        raise BadOrder("placer order number is required", "placer_order_number")
    if session.scalar(select(ImagingOrder.id).where(
            ImagingOrder.institution_code == institution,
            ImagingOrder.placer_order_number == new.placer_order_number)) is not None:
        raise DuplicateOrder(f"placer order number {new.placer_order_number!r} already exists",
                             "placer_order_number")
    accession = check_accession(new.accession_number) if new.accession_number else ""
    if accession and session.scalar(select(ImagingOrder.id).where(
            ImagingOrder.accession_number == accession)) is not None:
        raise DuplicateOrder(f"accession number {accession!r} already exists",
                             "accession_number")
    resolved = resolve_patient(session, institution, patient)
    order = ImagingOrder(
        kind=new.kind.value, status=OrderStatus.SCHEDULED.value, institution_code=institution,
        sending_facility=sending_facility[:200],
        placer_order_number=new.placer_order_number[:200],
        filler_order_number=new.filler_order_number[:200],
        # A placeholder keeps the NOT NULL/unique column happy until the id is known.
        accession_number=accession or f"~{uuid.uuid4().hex[:15]}",
        requested_procedure_id=new.requested_procedure_id[:16],
        sps_id=new.sps_id[:16],
        study_instance_uid=new.study_instance_uid or _new_uid(),
        procedure_code=new.procedure_code[:64], procedure_name=new.procedure_name[:200],
        modality=new.modality.upper()[:16], body_part=new.body_part,
        scheduled_at=new.scheduled_at, scheduled_station_aet=new.scheduled_station_aet[:16],
        priority=Priority(new.priority).value,
        ordering_clinician=new.ordering_clinician[:200], reason=new.reason,
        patient_id=resolved.id if resolved else None, patient_local_id=patient.local_id,
        patient_name=(new.patient_name or patient.name)[:200],
        patient_birth_date=patient.birth_date.strftime("%Y%m%d") if patient.birth_date else "",
        patient_sex=(patient.sex or "")[:1], raw_message_id=raw_message_id,
        created_by=actor.username, created_at=now, updated_at=now, history=[],
    )
    session.add(order)
    session.flush()
    if not accession:
        order.accession_number = accession_for(order.id)
    order.requested_procedure_id = order.requested_procedure_id or order.accession_number
    order.sps_id = order.sps_id or order.accession_number
    if not order.filler_order_number:
        order.filler_order_number = order.accession_number
    _history(order, now, "placed", None, actor.username)
    audit.record(session, actor, "order.place", f"order:{order.id}",
                 {"placer": order.placer_order_number, "accession": order.accession_number,
                  "institution": institution, "modality": order.modality})
    link_priors(session, order, now)
    logger.info("order %s placed: accession %s, modality %s", order.id,
                order.accession_number, order.modality)
    return order


def find_order(session: Session, institution: str, placer: str) -> ImagingOrder:
    """The order an institution knows by ``placer``.

    Raises:
        NotFound: no such order.
    """
    order = session.scalar(select(ImagingOrder).where(
        ImagingOrder.institution_code == institution,
        ImagingOrder.placer_order_number == placer))
    if order is None:
        raise UnknownOrder(f"no order with placer order number {placer!r}",
                           "placer_order_number")
    return order


def change_order(session: Session, actor: audit.Actor, order: ImagingOrder,
                 control: OrderControl, now: datetime, new: OrderIn | None = None,
                 note: str = "") -> ImagingOrder:
    """Apply CA, DC or XO to an order.

    Raises:
        InvalidTransition: the order was already read (or is already cancelled).
    """
    _lock(session, order)
    event = event_for_control(control)
    before = order.status
    order.status = next_order_state(OrderStatus(order.status), event).value
    changed: dict[str, Any] = {}
    if event == OrderEvent.CHANGE and new is not None:
        for attr in CHANGEABLE:
            value = getattr(new, attr)
            if attr == "priority":
                value = Priority(value).value
            elif attr == "modality":
                value = value.upper()
            if value not in (None, "") and getattr(order, attr) != value:
                changed[attr] = str(value)
                setattr(order, attr, value)
    order.updated_at = now
    _history(order, now, event.value, before, actor.username, changed=changed, note=note)
    if order.status in (OrderStatus.CANCELLED, OrderStatus.DISCONTINUED) and \
            order.worklist_item_id is not None:
        item = session.get(WorklistItem, order.worklist_item_id, with_for_update=True,
                           populate_existing=True)
        if item is not None:
            flag = f"order {order.status}"
            if flag not in (item.flags or []):
                item.flags = [*(item.flags or []), flag]
    audit.record(session, actor, f"order.{event.value}", f"order:{order.id}",
                 {"from": before, "to": order.status, "changed": changed})
    return order


def record_hl7_orders(session: Session, actor: audit.Actor, institution: str,
                      sending_facility: str, patient: PatientRef, orders: Sequence[OrderIn],
                      now: datetime, raw_message_id: int | None) -> list[ImagingOrder]:
    """Every imaging/ECG order group of one HL7 message, in order.

    All or nothing: the caller runs this in a savepoint and rolls it back on any error, so a
    refused message changes nothing.

    Raises:
        InvalidInput, Conflict, NotFound, InvalidTransition: see :func:`place_order` and
            :func:`change_order`.
    """
    out = []
    for new in orders:
        if new.control == OrderControl.NEW:
            out.append(place_order(session, actor, institution, sending_facility, patient, new,
                                   now, raw_message_id))
        else:
            order = find_order(session, institution, new.placer_order_number)
            out.append(change_order(session, actor, order, new.control, now, new))
    return out


# --------------------------------------------------------------------------- priors


def link_priors(session: Session, order: ImagingOrder, now: datetime) -> list[OrderPrior]:
    """Link the patient's recognised results of the order's body region (any institution).

    ECG orders take recognised ECGs. Results already linked are kept; the rows say which
    report or lab result set to open.
    """
    from hub.services.recognition import catalogue, recognised_results

    if order.patient_id is None:
        return []
    regions = {c.code: (c.kind, c.body_part) for c in catalogue(session)}
    existing = {(p.source, p.source_id): p for p in session.scalars(
        select(OrderPrior).where(OrderPrior.order_id == order.id))}
    out = []
    for r in recognised_results(session, order.patient_id, None, now):
        kind, body_part = regions.get(r["item_code"], (None, None))
        if order.kind == OrderKind.ECG:
            if kind != "ecg":
                continue
        elif not order.body_part or body_part != order.body_part:
            continue
        source_id = r["report_id"] if r["source"] == "report" else r["result_set_id"]
        key = (r["source"], source_id)
        if key in existing:
            out.append(existing[key])
            continue
        row = OrderPrior(order_id=order.id, source=r["source"], source_id=source_id,
                         item_id=r["item_id"], item_code=r["item_code"],
                         institution_code=r["institution"], exam_at=r["exam_at"],
                         valid_until=r["valid_until"], found_at=now)
        session.add(row)
        out.append(row)
    session.flush()
    return out


def priors(session: Session, order: ImagingOrder, now: datetime) -> list[dict[str, Any]]:
    """The priors offered for an order, refreshed now; each says whether it is still valid."""
    rows = link_priors(session, order, now)
    return [{"source": p.source, "report_id": p.source_id if p.source == "report" else None,
             "result_set_id": p.source_id if p.source == "lab" else None,
             "item_id": p.item_id, "item_code": p.item_code, "institution": p.institution_code,
             "exam_at": as_utc(p.exam_at), "valid_until": as_utc(p.valid_until),
             "still_valid": as_utc(p.valid_until) > now,
             "pdf_url": f"/api/reports/{p.source_id}/pdf" if p.source == "report" else None}
            for p in sorted(rows, key=lambda p: as_utc(p.exam_at), reverse=True)]


# --------------------------------------------------------------------------- matching


def _facts(order: ImagingOrder) -> OrderFacts:
    return OrderFacts(order.id, order.accession_number, order.institution_code, order.patient_id,
                      order.patient_local_id, order.modality,
                      as_utc(order.scheduled_at).date() if order.scheduled_at else None,
                      OrderStatus(order.status))


def match_arriving_study(session: Session, item: WorklistItem, now: datetime,
                         turnaround: Mapping[str, int], *,
                         reconcile_unmatched: bool = True) -> ImagingOrder | None:
    """Match an item to its order; unmatched imaging items go on the reconciliation list.

    Called by :func:`hub.services.studies.refresh_study` after every refresh (and for ECGs
    that quote an accession number, with ``reconcile_unmatched=False``: carts without a
    worklist send none), so it must be cheap and idempotent: an item already linked is left
    alone.
    """
    linked = session.scalar(select(ImagingOrder).where(
        ImagingOrder.worklist_item_id == item.id))
    if linked is not None:
        return linked
    conditions = []
    if item.accession_number:
        conditions.append(ImagingOrder.accession_number == item.accession_number)
    if item.patient_id is not None:
        conditions.append(ImagingOrder.patient_id == item.patient_id)
    if item.patient_local_id:
        conditions.append((ImagingOrder.institution_code == item.institution_code)
                          & (ImagingOrder.patient_local_id == item.patient_local_id))
    candidates = list(session.scalars(select(ImagingOrder).where(or_(*conditions)))) \
        if conditions else []
    # An order already linked to another study is not a candidate for this one.
    candidates = [o for o in candidates if o.worklist_item_id in (None, item.id)]
    study = StudyFacts(item.accession_number, item.institution_code, item.patient_id,
                       item.patient_local_id, item.modality, item.study_date)
    match: Match = match_study(study, [_facts(o) for o in candidates])
    if match.kind == MatchKind.ACCESSION:
        order = next(o for o in candidates if o.id == match.order_id)
        link_item(session, order, item, audit.SYSTEM, now, "accession", turnaround)
        return order
    if not reconcile_unmatched:
        return None
    reason = ("no accession number" if not item.accession_number
              else f"accession {item.accession_number} matches no order")
    row = session.get(StudyReconciliation, item.id)
    if row is None:
        session.add(StudyReconciliation(worklist_item_id=item.id, status="open", reason=reason,
                                        suggestions=list(match.suggestions), created_at=now,
                                        resolution={}))
        logger.info("worklist item %s has no order: %s", item.id, reason)
    elif row.status == "open":
        row.suggestions = list(match.suggestions)
        row.reason = reason
    return None


def link_item(session: Session, order: ImagingOrder, item: WorklistItem, actor: audit.Actor,
              now: datetime, how: str, turnaround: Mapping[str, int]) -> None:
    """Tie a worklist item to its order: the item inherits priority, reason and orderer, the
    order becomes ``received`` and the placer is told.

    Raises:
        Conflict: the order already has another study.
    """
    session.refresh(order, with_for_update=True)  # the caller holds the item (see _lock)
    if order.worklist_item_id not in (None, item.id):
        raise Conflict(f"order {order.id} already has worklist item {order.worklist_item_id}")
    order.worklist_item_id = item.id
    before = order.status
    order.status = next_order_state(OrderStatus(order.status), OrderEvent.STUDY_RECEIVED).value
    order.updated_at = now
    _history(order, now, "study_received", before, actor.username, item=item.id, how=how)
    wanted = Priority(order.priority)
    if PRIORITY_RANK[wanted] < PRIORITY_RANK[Priority(item.priority)]:
        item.priority = wanted.value
        item.due_at = _due(item, wanted, turnaround)
    item.accession_number = order.accession_number
    if order.body_part and not item.body_part:
        item.body_part = order.body_part
    item.details = {**(item.details or {}), "order": {
        "id": order.id, "placer_order_number": order.placer_order_number,
        "accession_number": order.accession_number, "priority": order.priority,
        "reason": order.reason, "ordering_clinician": order.ordering_clinician,
        "procedure": order.procedure_name or order.procedure_code,
        "priors": [p.id for p in session.scalars(
            select(OrderPrior).where(OrderPrior.order_id == order.id))],
    }}
    item.updated_at = now
    rec = session.get(StudyReconciliation, item.id)
    if rec is not None and rec.status == "open":
        rec.status, rec.resolved_at, rec.resolved_by = "resolved", now, actor.username
        rec.resolution = {"order_id": order.id, "how": how}
    if before != order.status:
        _queue_status(session, order, now)
    audit.record(session, actor, "order.match", f"order:{order.id}",
                 {"item": item.id, "how": how, "accession": order.accession_number})
    logger.info("worklist item %s matched to order %s by %s", item.id, order.id, how)


def _due(item: WorklistItem, priority: Priority, turnaround: Mapping[str, int]) -> datetime:
    from hub.domain.turnaround import due_time

    return due_time(as_utc(item.received_at), priority, item.kind, turnaround)


def on_item_transition(session: Session, item: WorklistItem, before: str, after: str,
                       now: datetime) -> None:
    """Keep the order in step with its item: reading started, report final."""
    if item.kind == "lab" or before == after:
        return
    event = {ReadingState.IN_PROGRESS.value: OrderEvent.READING_STARTED,
             ReadingState.PRELIMINARY.value: OrderEvent.READING_STARTED,
             ReadingState.FINAL.value: OrderEvent.FINALISED}.get(after)
    if event is None:
        return
    # The item is held by whoever moves it (hub.services.worklist.lock_item); then the order.
    order = session.scalar(select(ImagingOrder).where(
        ImagingOrder.worklist_item_id == item.id).with_for_update()
        .execution_options(populate_existing=True))
    if order is None or order.status in (OrderStatus.CANCELLED, OrderStatus.DISCONTINUED):
        return
    previous = order.status
    try:
        order.status = next_order_state(OrderStatus(order.status), event).value
    except InvalidTransition:
        # The reading workflow is the authority; an order out of step must not block it.
        logger.warning("order %s (%s) ignores item %s becoming %s", order.id, previous,
                       item.id, after)
        return
    if order.status == previous:
        return
    order.updated_at = now
    _history(order, now, event.value, previous, "system", item=item.id)
    # "final" reaches the placer as the signed report's ORU^R01 itself (delivery.py).
    if order.status == OrderStatus.IN_READING:
        _queue_status(session, order, now)


# --------------------------------------------------------------------------- status out


def _queue_status(session: Session, order: ImagingOrder, now: datetime) -> None:
    session.add(OrderStatusUpdate(order_id=order.id, status=order.status, state="pending",
                                  created_at=now))


def order_for_item(session: Session, item_id: int) -> ImagingOrder | None:
    """The order a worklist item was matched to, if any."""
    return session.scalar(select(ImagingOrder).where(ImagingOrder.worklist_item_id == item_id))


def patient_key(order: ImagingOrder, item: WorklistItem | None) -> str:
    """The outbound queue key: the same as reports and lab results use, so one patient's
    messages reach the HIS in the order they were made."""
    if item is not None:
        return f"{item.patient_id or 'local:' + (item.patient_local_id or '')}"
    return f"{order.patient_id or 'local:' + (order.patient_local_id or '')}"


def flush_status_updates(session: Session, lis: Any, now: datetime,
                         order_id: int | None = None) -> int:
    """Turn pending status updates into ORM^O01 messages on the LIS bridge's outbound queue.

    Institutions without an HIS endpoint get theirs marked ``skipped``. Returns how many were
    queued. Run before a report's ORU^R01 is queued (so the HIS never sees "in reading" after
    "final") and before each delivery pass.
    """
    from lis_bridge.acks import new_control_id
    from lis_bridge.orders_out import build_status_message

    stmt = select(OrderStatusUpdate).where(OrderStatusUpdate.state == "pending")
    if order_id is not None:
        stmt = stmt.where(OrderStatusUpdate.order_id == order_id)
    queued = 0
    endpoints = (getattr(lis, "his_endpoints", None) or {}) if lis is not None else {}
    for row in session.scalars(stmt.order_by(OrderStatusUpdate.id)).all():
        order = session.get(ImagingOrder, row.order_id)
        if order is None or order.institution_code not in endpoints:
            row.state = "skipped"
            continue
        item = session.get(WorklistItem, order.worklist_item_id) \
            if order.worklist_item_id else None
        control_id = new_control_id(now)
        message = build_status_message(order, OrderStatus(row.status), control_id,
                                       application=lis.application, facility=lis.facility,
                                       now=now)
        session.add(LabOutbound(
            institution_code=order.institution_code, patient_key=patient_key(order, item),
            result_set_id=None, control_id=control_id, message=message, status="pending",
            attempts=0, created_at=now, next_attempt_at=now))
        row.state, row.control_id = "queued", control_id
        queued += 1
    session.flush()
    return queued


# --------------------------------------------------------------------------- worklist export


def worklist_entries(session: Session, institution: str) -> list[dict[str, Any]]:
    """Scheduled procedures of a branch, for its node's modality worklist (UTF-8 names)."""
    rows = session.scalars(select(ImagingOrder).where(
        ImagingOrder.institution_code == institution,
        ImagingOrder.status == OrderStatus.SCHEDULED.value).order_by(ImagingOrder.id))
    return [worklist_entry(o) for o in rows]


def worklist_entry(o: ImagingOrder) -> dict[str, Any]:
    """One scheduled procedure step as the node stores and serves it."""
    return {
        "order_id": o.id, "accession_number": o.accession_number,
        "placer_order_number": o.placer_order_number.split("^")[0],
        "patient_name": o.patient_name, "patient_id": o.patient_local_id or "",
        "patient_birth_date": o.patient_birth_date, "patient_sex": o.patient_sex,
        "study_instance_uid": o.study_instance_uid,
        "requested_procedure_id": o.requested_procedure_id,
        "requested_procedure_description": o.procedure_name or o.procedure_code,
        "procedure_code": o.procedure_code,
        "priority": o.priority, "reason": o.reason,
        "referring_physician": _physician_pn(o.ordering_clinician),
        "modality": o.modality, "body_part": o.body_part or "",
        "scheduled_at": as_utc(o.scheduled_at).isoformat() if o.scheduled_at else None,
        "scheduled_station_aet": o.scheduled_station_aet, "sps_id": o.sps_id,
        "kind": o.kind,
    }


def _physician_pn(xcn: str) -> str:
    """ORC-12 XCN ``id^family^given`` -> DICOM PN ``family^given`` (the id stays out)."""
    parts = xcn.split("^")
    if len(parts) >= 2:
        return "^".join(p for p in parts[1:3] if p)
    return xcn


# --------------------------------------------------------------------------- reconciliation


def reconciliation_list(session: Session, institution: str | None) -> list[dict[str, Any]]:
    """Studies waiting for a person to pick their order or patient (open rows)."""
    stmt = select(StudyReconciliation, WorklistItem).join(
        WorklistItem, WorklistItem.id == StudyReconciliation.worklist_item_id).where(
        StudyReconciliation.status == "open")
    if institution is not None:
        stmt = stmt.where(WorklistItem.institution_code == institution)
    out = []
    for rec, item in session.execute(stmt.order_by(StudyReconciliation.created_at)):
        suggestions = [session.get(ImagingOrder, oid) for oid in rec.suggestions or []]
        out.append({
            "item_id": item.id, "reason": rec.reason, "created_at": as_utc(rec.created_at),
            "institution": item.institution_code, "study_instance_uid": item.natural_key,
            "accession_number": item.accession_number, "modality": item.modality,
            "study_date": item.study_date, "patient_id": item.patient_id,
            "patient_local_id": item.patient_local_id, "patient_name": item.patient_name,
            "status": item.status,
            "suggestions": [{"order_id": o.id, "accession_number": o.accession_number,
                             "placer_order_number": o.placer_order_number,
                             "patient_name": o.patient_name, "modality": o.modality,
                             "scheduled_at": as_utc(o.scheduled_at) if o.scheduled_at else None}
                            for o in suggestions if o is not None],
        })
    return out


@dataclass(frozen=True)
class PatientTags:
    """DICOM patient attributes a corrected study gets in the archive."""

    patient_id: str
    patient_name: str
    birth_date: str
    sex: str


def reconcile(session: Session, orthanc: Any, actor: audit.Actor, item: WorklistItem,
              now: datetime, turnaround: Mapping[str, int], *, order_id: int | None = None,
              patient_id: int | None = None) -> WorklistItem:
    """Fix an unmatched study: link it to ``order_id`` (and its patient) or move it to
    ``patient_id``; the study is rewritten in Orthanc under that patient.

    The item is updated in place (its natural key, the Study Instance UID, is kept, so the
    change feed's later view of the rewritten study lands on the same item). The before/after
    patient goes to the audit trail.

    Raises:
        InvalidInput: neither or both of order and patient given, or a non-imaging item.
        NotFound: unknown order or patient. Conflict: the order already has another study,
            or is cancelled.
    """
    if (order_id is None) == (patient_id is None):
        raise InvalidInput("give exactly one of order_id and patient_id")
    if item.kind != "imaging":
        raise InvalidInput("only imaging studies are reconciled")
    # The change feed may be refreshing this study right now (the Orthanc rewrite below makes
    # it do so): work on the current row, locked, or one writer's details/flags undo the other's.
    session.refresh(item, with_for_update=True)
    order = None
    if order_id is not None:
        order = session.get(ImagingOrder, order_id)
        if order is None:
            raise NotFound(f"order {order_id}")
        if order.status in (OrderStatus.CANCELLED, OrderStatus.DISCONTINUED):
            raise Conflict(f"order {order_id} is {order.status}")
        if order.worklist_item_id not in (None, item.id):
            raise Conflict(f"order {order.id} already has worklist item "
                           f"{order.worklist_item_id}")
        target_patient = session.get(Patient, order.patient_id) if order.patient_id else None
        tags = PatientTags(order.patient_local_id or "", order.patient_name,
                           order.patient_birth_date, order.patient_sex)
        new_patient_id, new_local = order.patient_id, order.patient_local_id
    else:
        target_patient = session.get(Patient, patient_id)
        if target_patient is None:
            raise NotFound(f"patient {patient_id}")
        local = session.scalar(select(PatientIdentifier.local_id).where(
            PatientIdentifier.patient_id == patient_id,
            PatientIdentifier.institution_code == item.institution_code)) or session.scalar(
            select(PatientIdentifier.local_id).where(PatientIdentifier.patient_id == patient_id))
        tags = PatientTags(local or f"YG{patient_id}", target_patient.name,
                           target_patient.birth_date.strftime("%Y%m%d")
                           if target_patient.birth_date else "", target_patient.sex or "")
        new_patient_id, new_local = patient_id, local
    before = {"patient_id": item.patient_id, "patient_local_id": item.patient_local_id,
              "patient_name": item.patient_name, "accession_number": item.accession_number,
              "orthanc_id": item.orthanc_id}
    accession = order.accession_number if order else item.accession_number
    new_orthanc_id = None
    if item.orthanc_id:
        new_orthanc_id = move_study_in_orthanc(orthanc, item.orthanc_id, tags, accession)
    item.patient_id = new_patient_id
    item.patient_local_id = new_local
    item.patient_name = (target_patient.name if target_patient else None) or tags.patient_name
    item.flags = [f for f in (item.flags or []) if f != "missing patient ID"]
    if new_orthanc_id:
        item.orthanc_id = new_orthanc_id
    item.updated_at = now
    if order is not None:
        link_item(session, order, item, actor, now, "reconciled", turnaround)
    rec = session.get(StudyReconciliation, item.id)
    if rec is None:
        rec = StudyReconciliation(worklist_item_id=item.id, reason="corrected by a person",
                                  suggestions=[], created_at=now, resolution={})
        session.add(rec)
    rec.status, rec.resolved_at, rec.resolved_by = "resolved", now, actor.username
    rec.resolution = {"order_id": order.id if order else None, "patient_id": new_patient_id}
    audit.record(session, actor, "study.reconcile", f"worklist_item:{item.id}",
                 {"before": before,
                  "after": {"patient_id": new_patient_id, "patient_local_id": new_local,
                            "accession_number": accession, "orthanc_id": item.orthanc_id,
                            "order_id": order.id if order else None}})
    return item


def move_study_in_orthanc(orthanc: Any, study_id: str, tags: PatientTags,
                          accession: str | None) -> str:
    """Rewrite a study under another patient in Orthanc, keeping its UIDs; returns the new id.

    Orthanc (1.10) refuses to change the PatientID of a whole study, so each instance is
    modified on its own (``/instances/{id}/modify``, UIDs kept with ``Keep`` + ``Force``) and
    stored again; only when every copy is stored is the original study deleted, so a failure
    half way leaves it intact under the old patient. UIDs are kept because the worklist item,
    the node's manifest and any report already refer to them.

    Raises:
        OrthancError: Orthanc refused or did not answer (nothing deleted then).
    """
    replace = {"PatientID": tags.patient_id, "PatientName": tags.patient_name,
               "PatientBirthDate": tags.birth_date, "PatientSex": tags.sex}
    if accession:
        replace["AccessionNumber"] = accession
    body = {"Replace": replace, "Keep": ["StudyInstanceUID", "SeriesInstanceUID",
                                         "SOPInstanceUID"], "Force": True}
    new_id = None
    for inst in orthanc.study_instances(study_id):
        data = orthanc.modify_instance(inst["ID"], body)
        new_id = str(orthanc.upload(data)["ParentStudy"])
    if new_id is None:
        return study_id
    if new_id != study_id:
        orthanc.delete(f"/studies/{study_id}")
    logger.info("study %s moved to another patient (new Orthanc id %s)", study_id, new_id)
    return new_id
