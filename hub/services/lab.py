"""Lab use cases: record an HL7 message and everything it carries, in the caller's transaction.

:func:`record_message` is called by the HL7 edge for every frame. It stores the raw bytes and the
ACK we are about to send, the result sets and observations (keeping the history of corrected
values), the orders, the critical-value alerts, and puts each result on the worklist through
:func:`hub.intake.enqueue`, all in the caller's transaction, so that one commit makes all of it
durable before the ACK leaves. It does not commit.

The typed message objects come from ``lis_bridge.hl7_map`` (the edge); this module only reads
their attributes.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select, tuple_, update
from sqlalchemy.orm import Session

from hub import audit
from hub.db.bulk import (
    insert_new_returning_ids,
    insert_returning_ids,
    insert_rows,
    insert_with_children,
    prefetch_where_any,
    select_where_any,
    select_where_in,
)
from hub.db.lab_models import (
    LabCriticalAlert,
    LabObservation,
    LabObservationHistory,
    LabOrder,
    LabRawMessage,
    LabResultSet,
)
from hub.db.models import Institution
from hub.domain.errors import DomainError, NotFound
from hub.domain.lab_rules import (
    CriticalRange,
    OrderStatus,
    ResultStatus,
    advance_order,
    assess_critical,
)
from hub.domain.priority import PRIORITY_RANK, Priority
from hub.domain.worklist import ItemKind
from hub.intake import Enqueued, IntakeRules, NewItem, enqueue_many, prefetch_enqueue_many
from hub.services.patients import resolve_patient

if TYPE_CHECKING:
    from lis_bridge.hl7_map import LabMessage
    from lis_bridge.hl7_map import LabOrder as ParsedOrder
    from lis_bridge.hl7_map import LabResultSet as ParsedResultSet

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LabRules:
    """What the lab use cases need from configuration."""

    intake: IntakeRules
    critical_ranges: Mapping[str, CriticalRange]


@dataclass(frozen=True)
class ErrorInfo:
    """An HL7-neutral description of why a message was refused (for the raw-message row)."""

    ack_code: str    # AE / AR
    location: str    # e.g. "OBX^2^5"
    code: int        # HL7 table 0357
    text: str


AckBuilder = Callable[[str, ErrorInfo | None], bytes]


@dataclass
class Inbound:
    """One received frame, as the edge understood it before touching the database."""

    raw: bytes
    peer: str
    received_at: datetime
    make_ack: AckBuilder
    sender: str | None = None          # idempotency namespace (MSH-4, else MSH-3)
    control_id: str | None = None      # MSH-10
    sending_application: str | None = None
    message_type: str | None = None
    version: str | None = None
    charset: str | None = None
    facility_codes: list[str] = field(default_factory=list)
    message: LabMessage | None = None  # set when the message is accepted
    error: ErrorInfo | None = None     # set when it is refused (AE/AR)
    #: The edge's mapping of a domain refusal found while storing (e.g. a duplicate placer
    #: number) to an ErrorInfo; None = AE 207 with the error's text.
    refuse: Callable[[Exception], ErrorInfo] | None = None

    @property
    def key(self) -> tuple[str, str] | None:
        """(sender, MSH-10) or None when the frame has no usable MSH."""
        if self.sender and self.control_id:
            return (self.sender, self.control_id)
        return None


@dataclass(frozen=True)
class Recorded:
    """Outcome of :func:`record_message`: the ACK to send once the transaction commits."""

    ack_code: str
    ack: bytes
    raw_message_id: int | None
    is_duplicate: bool = False
    item_ids: tuple[int, ...] = ()


class InstitutionMap:
    """HL7 facility code -> institution code, reloaded at most every ``ttl`` seconds.

    Looked up for every message, so it is cached rather than queried each time; a new branch
    shows up within ``ttl`` seconds.
    """

    def __init__(self, ttl: float = 30.0) -> None:
        self.ttl = ttl
        self._map: dict[str, str] = {}
        self._loaded = -1e9

    def resolve(self, session: Session, candidates: Iterable[str]) -> str | None:
        """The institution code for the first candidate facility code that is known."""
        now = time.monotonic()
        if now - self._loaded > self.ttl:
            mapping: dict[str, str] = {}
            for code, facilities in session.execute(
                select(Institution.code, Institution.hl7_facilities)
            ):
                mapping[code.upper()] = code
                for fac in facilities or []:
                    mapping[str(fac).strip().upper()] = code
            self._map, self._loaded = mapping, now
        for cand in candidates:
            found = self._map.get(cand.strip().upper())
            if found:
                return found
        return None


def find_recorded(
    session: Session, keys: Iterable[tuple[str, str]]
) -> dict[tuple[str, str], Recorded]:
    """Messages already stored under (sender, MSH-10): their stored ACK, for re-sends."""
    rows = select_where_in(
        session, [LabRawMessage.sending_facility, LabRawMessage.control_id, LabRawMessage.ack_code,
                  LabRawMessage.ack, LabRawMessage.id],
        [LabRawMessage.sending_facility, LabRawMessage.control_id], keys)
    return {(s, c): Recorded(code, bytes(ack), rid, is_duplicate=True)
            for s, c, code, ack, rid in rows}


def record_message(
    session: Session,
    inbound: Inbound,
    rules: LabRules,
    institutions: InstitutionMap,
    *,
    now: datetime,
) -> Recorded:
    """Store one inbound frame and what it carries. Does not commit.

    Args:
        session: the caller's session; the caller commits and only then sends the ACK.
        inbound: the frame and what the edge parsed from it.
        rules: intake and critical-value rules.
        institutions: facility-code map.
        now: the time to stamp on rows (UTC).

    Returns:
        The ACK to send. A re-sent (sender, MSH-10) returns the stored ACK and writes nothing.
    """
    return record_batch(session, [inbound], rules, institutions, now=now)[0]


def record_batch(
    session: Session,
    inbounds: list[Inbound],
    rules: LabRules,
    institutions: InstitutionMap,
    *,
    now: datetime,
) -> list[Recorded]:
    """Store several frames in the caller's transaction (group commit). Does not commit.

    Written batch-first: one multi-row INSERT for the raw messages that also detects re-sends,
    :func:`hub.intake.enqueue_many` for the worklist, and one INSERT each for new result sets
    and their observations, whatever the batch size. Corrections, orders and other rarer
    cases take the per-row paths. A frame whose (sender, MSH-10) repeats an earlier one,
    stored or in this batch, gets that ACK and writes nothing.
    """
    out: list[Recorded | None] = [None] * len(inbounds)
    staged: list[tuple[int, Inbound, _Raw]] = []
    in_batch: dict[tuple[str, str], int] = {}
    for n, inbound in enumerate(inbounds):
        key = inbound.key
        if key is not None and key in in_batch:
            continue  # resolved below, after the first copy is stored
        if key is not None:
            in_batch[key] = n
        code = inbound.error.ack_code if inbound.error else "AA"
        staged.append((n, inbound, _Raw(institutions.resolve(session, inbound.facility_codes),
                                        code, inbound.make_ack(code, inbound.error))))
    plans = {n: _plan_results(inbound, inbound.message, raw, rules)
             for n, inbound, raw in staged if _is_result(inbound)}
    # The lookups recording the results will make travel with the INSERT of the raw messages
    # (one round trip on PostgreSQL; re-sends among them are looked up for nothing).
    prefetch_enqueue_many(session, [new for plan in plans.values() for new, _prepared in plan])
    _prefetch_orders(session, [rs for plan in plans.values() for _new, prepared in plan
                               for rs, _findings in prepared])
    ids = insert_new_returning_ids(
        session, LabRawMessage.__table__,
        [_raw_values(inbound, raw) for _n, inbound, raw in staged],
        [LabRawMessage.sending_facility, LabRawMessage.control_id])
    resent = [(n, inbound) for (n, inbound, _raw), raw_id in zip(staged, ids, strict=True)
              if raw_id is None]
    if resent:
        stored = find_recorded(session, [inbound.key for _n, inbound in resent])
        for n, inbound in resent:
            key = inbound.key
            logger.info("MSH-10 %s from %s is a re-send: same ACK %s", key[1], key[0],
                        stored[key].ack_code)
            out[n] = stored[key]
    kept = []
    for (n, inbound, raw), raw_id in zip(staged, ids, strict=True):
        if raw_id is not None:
            raw.id = raw_id
            kept.append((n, inbound, raw))
    staged = kept

    planned: list[tuple[int, NewItem, str, _Raw, list[_Prepared]]] = []
    for n, inbound, raw in staged:
        if n in plans:
            planned += [(n, new, inbound.sender or "", raw, prepared)
                        for new, prepared in plans[n]]
        elif inbound.error is None and inbound.message is not None:
            _record_orders(session, inbound, inbound.message, raw, now)
    items: dict[int, list[int]] = {}
    if planned:
        # Institution codes the facility map resolved are rows of the institutions table.
        resolved = {raw.institution_code for _n, _i, raw in staged if raw.institution_code}
        worklist = enqueue_many(session, [p[1] for p in planned], rules.intake,
                                known_institutions=resolved)
        results = [_PendingResult(item, sender, rs, findings, raw)
                   for (_n, _new, sender, raw, prepared), item in zip(planned, worklist,
                                                                      strict=True)
                   for rs, findings in prepared]
        for (n, *_rest), item in zip(planned, worklist, strict=True):
            items.setdefault(n, []).append(item.id)
        _store_result_sets(session, results, now)

    for n, _inbound, raw in staged:
        out[n] = Recorded(raw.ack_code, raw.ack, raw.id, item_ids=tuple(items.get(n, ())))
    for n, inbound in enumerate(inbounds):
        if out[n] is None:  # a second copy of a key first seen in this batch
            first = out[in_batch[inbound.key]]  # type: ignore[index]
            assert first is not None
            out[n] = Recorded(first.ack_code, first.ack, first.raw_message_id, is_duplicate=True)
    return [r for r in out if r is not None]


def _is_result(inbound: Inbound) -> bool:
    return (inbound.error is None and inbound.message is not None
            and inbound.message.kind != "order")


@dataclass
class _Raw:
    """The stored frame's row as the rest of the batch needs it."""

    institution_code: str | None
    ack_code: str
    ack: bytes
    id: int = 0


def _raw_values(inbound: Inbound, raw: _Raw) -> dict[str, Any]:
    key, error = inbound.key, inbound.error
    return {
        "received_at": inbound.received_at, "peer": inbound.peer[:64],
        "sending_facility": key[0] if key else None,
        "sending_application": inbound.sending_application or None,
        "control_id": key[1] if key else None, "message_type": inbound.message_type,
        "version": inbound.version, "charset": inbound.charset,
        "institution_code": raw.institution_code, "raw": inbound.raw, "size": len(inbound.raw),
        "ack_code": raw.ack_code, "ack": raw.ack,
        "error_location": error.location if error else None,
        "error_code": error.code if error else None,
        "error_text": error.text if error else None, "replayed_at": None,
    }


def record_unkeyed(session: Session, inbound: Inbound, ack_code: str, ack: bytes,
                   reason: str) -> int:
    """Store a frame outside the idempotency key (broken frame, internal error) for inspection.

    The key columns stay NULL, so a later re-send of the same MSH-10 is processed afresh.
    ``ack_code`` is "--" when nothing was answered.
    """
    row = LabRawMessage(
        received_at=inbound.received_at, peer=inbound.peer[:64],
        sending_facility=None, control_id=None,
        sending_application=inbound.sending_application,
        message_type=inbound.message_type, version=inbound.version, charset=inbound.charset,
        raw=inbound.raw, size=len(inbound.raw), ack_code=ack_code, ack=ack,
        error_code=207 if ack_code != "--" else None,
        error_text=f"{reason} (sender {inbound.sender!r}, MSH-10 {inbound.control_id!r})",
    )
    session.add(row)
    session.flush()
    return row.id


# --------------------------------------------------------------------------- results


def natural_key(sender: str, filler: str) -> str:
    """Worklist key of a lab result: sending facility + filler order number.

    The worklist column holds 200 characters; a longer key (long HD names) keeps its readable
    start and a digest of the whole, so it stays unique and deterministic.
    """
    key = f"{sender}|{filler}"
    if len(key) <= 200:
        return key
    return key[:150] + "#" + hashlib.sha256(key.encode("utf-8")).hexdigest()[:40]



@dataclass
class _PendingResult:
    """A parsed result set waiting to be stored, with its worklist item and critical findings."""

    item: Enqueued
    sender: str
    parsed: ParsedResultSet
    findings: list[tuple[Any, str | None]]
    raw: _Raw


def _raw_code(inbound: Inbound) -> str | None:
    # Unknown facility: pass its own code (first HD component) on; enqueue flags it.
    codes = inbound.facility_codes
    return codes[1][:32] if len(codes) > 1 else None


_Prepared = tuple[Any, list[tuple[Any, str | None]]]  # (parsed result set, OBX findings)


def _plan_results(inbound: Inbound, msg: LabMessage, raw: _Raw,
                  rules: LabRules) -> list[tuple[NewItem, list[_Prepared]]]:
    """One worklist item per filler order number, with each result set's critical findings."""
    sender = inbound.sender or ""
    inst_code = raw.institution_code or _raw_code(inbound)
    by_filler: dict[str, list[ParsedResultSet]] = {}
    for rs in msg.result_sets:
        by_filler.setdefault(rs.filler_order_number, []).append(rs)
    planned: list[tuple[NewItem, list[_Prepared]]] = []
    for filler, sets in by_filler.items():
        findings: list[str] = []
        prepared: list[_Prepared] = []
        for rs in sets:
            obs_findings: list[tuple[Any, str | None]] = []
            for obs in rs.observations:
                finding = assess_critical(obs.code, obs.numeric_value, obs.abnormal_flags,
                                          rules.critical_ranges)
                obs_findings.append((obs, finding.reason if finding else None))
                if finding:
                    findings.append(finding.reason)
            prepared.append((rs, obs_findings))
        priority = min((rs.priority for rs in sets), key=lambda p: PRIORITY_RANK[Priority(p)])
        statuses = sorted({rs.result_status.value for rs in sets})
        flags = ["corrected result"] if ResultStatus.CORRECTED.value in statuses else []
        planned.append((NewItem(
            kind=ItemKind.LAB,
            natural_key=natural_key(sender, filler),
            institution_code=inst_code,
            patient=msg.patient,
            priority=priority,
            ready=True,
            description=", ".join(rs.service_name or rs.service_code for rs in sets)[:200],
            accession_number=(sets[0].placer_order_number[:64] or None),
            is_critical=bool(findings),
            critical_reason="; ".join(findings)[:2000] or None,
            flags=flags + list(msg.warnings),
            details={
                "filler_order_number": filler,
                "placer_order_number": sets[0].placer_order_number,
                "services": [rs.service_code for rs in sets],
                "result_status": statuses,
                "control_id": inbound.control_id,
            },
            received_at=inbound.received_at,
        ), prepared))
    return planned


def _store_result_sets(session: Session, pending: list[_PendingResult], now: datetime) -> None:
    """Store the batch's result sets: new ones in bulk, the rest (corrections...) row by row."""
    # A result set is stored together with its worklist item (keyed by sender and filler
    # number): where the item was only just created, no result set for it can exist yet.
    keys = {(p.sender, p.parsed.filler_order_number, p.parsed.service_code) for p in pending
            if not p.item.created}
    key_columns = [LabResultSet.sending_facility, LabResultSet.filler_order_number,
                   LabResultSet.service_code]
    stored = {tuple(k) for k in select_where_in(session, key_columns, key_columns, keys)}
    fresh: list[_PendingResult] = []
    later: list[_PendingResult] = []
    for p in pending:
        key = (p.sender, p.parsed.filler_order_number, p.parsed.service_code)
        codes = [(obs.code, obs.sub_id) for obs in p.parsed.observations]
        # A key seen before (stored, or earlier in this batch) is an update; an OBR that
        # repeats an observation key corrects itself: both need the row-by-row rules.
        if key in stored or len(set(codes)) != len(codes):
            later.append(p)
        else:
            stored.add(key)
            fresh.append(p)
    if fresh:
        _insert_result_sets(session, fresh, now)
    if later:
        _merge_result_sets(session, later, now)


def _insert_result_sets(session: Session, fresh: list[_PendingResult], now: datetime) -> None:
    """New result sets, their observations and critical alerts: one INSERT per table."""
    orders = _orders_for(session, fresh)
    set_rows = []
    for p in fresh:
        row = _result_set_values(p, now)
        order = _matching_order(orders, p.parsed.filler_order_number,
                                p.parsed.placer_order_number, p.parsed.service_code)
        if order is not None:
            _order_resulted(order, p.parsed.filler_order_number, now)
            row["order_id"] = order.id
        set_rows.append(row)
    plain: list[dict[str, Any]] = []
    critical: list[tuple[_PendingResult, int, dict[str, Any], str]] = []
    for n, p in enumerate(fresh):
        for obs, reason in p.findings:
            # result_set_id: the index of its result set until that one is stored.
            row = _observation_values(n, obs, reason, p.raw, now)
            if reason:
                critical.append((p, n, row, reason))
            else:
                plain.append(row)
    set_ids = insert_with_children(session, LabResultSet.__table__, set_rows,
                                   LabObservation.__table__, plain, "result_set_id")
    critical = [(p, set_ids[n], {**row, "result_set_id": set_ids[n]}, reason)
                for p, n, row, reason in critical]
    obs_ids = insert_returning_ids(session, LabObservation.__table__, [c[2] for c in critical])
    insert_rows(session, LabCriticalAlert.__table__, [
        _alert_values(p.item.id, set_id, p.item.institution_code, p.item.patient_id, obs_id,
                      row["code"], row["value"], row["units"], reason, now)
        for (p, set_id, row, reason), obs_id in zip(critical, obs_ids, strict=True)])


def _result_set_values(p: _PendingResult, now: datetime) -> dict[str, Any]:
    rs, item = p.parsed, p.item
    return {
        "sending_facility": p.sender, "institution_code": item.institution_code,
        "worklist_item_id": item.id, "order_id": None, "patient_id": item.patient_id,
        "patient_local_id": item.patient_local_id,
        "placer_order_number": rs.placer_order_number,
        "filler_order_number": rs.filler_order_number, "service_code": rs.service_code,
        "service_name": rs.service_name, "result_status": rs.result_status.value,
        "priority": rs.priority.value, "specimen_barcode": rs.specimen_barcode or None,
        "observed_at": rs.observed_at, "reported_at": rs.reported_at,
        "is_critical": any(reason for _, reason in p.findings), "notes": list(rs.notes),
        "verified_at": None, "verified_by": None, "raw_message_id": p.raw.id,
        "created_at": now, "updated_at": now,
    }


def _observation_values(set_id: int, obs: Any, reason: str | None, raw: _Raw,
                        now: datetime) -> dict[str, Any]:
    return {
        "result_set_id": set_id, "set_id": obs.set_id, "value_type": obs.value_type,
        "code": obs.code, "name": obs.name, "coding_system": obs.coding_system,
        "sub_id": obs.sub_id, "value": obs.value, "numeric_value": obs.numeric_value,
        "comparator": obs.comparator, "units": obs.units,
        "reference_range": obs.reference_range, "abnormal_flags": list(obs.abnormal_flags),
        "result_status": obs.result_status.value, "observed_at": obs.observed_at,
        "is_critical": reason is not None, "version": 1, "raw_message_id": raw.id,
        "updated_at": now,
    }


def _merge_result_sets(session: Session, pending: list[_PendingResult], now: datetime) -> None:
    """Insert or update result sets one by one, keeping the history of changed values."""
    keys = {(p.sender, p.parsed.filler_order_number, p.parsed.service_code) for p in pending}
    existing: dict[tuple[str, str, str], LabResultSet] = {
        (r.sending_facility, r.filler_order_number, r.service_code): r
        for r in session.scalars(select(LabResultSet).where(tuple_(
            LabResultSet.sending_facility, LabResultSet.filler_order_number,
            LabResultSet.service_code).in_(list(keys))))
    }
    # Observations per result set, keyed by the result set object (new ones have no id yet).
    obs_of: dict[int, dict[tuple[str, str], LabObservation]] = {}
    if existing:
        by_id = {r.id: r for r in existing.values()}
        for o in session.scalars(select(LabObservation).where(
                LabObservation.result_set_id.in_(list(by_id)))):
            obs_of.setdefault(id(by_id[o.result_set_id]), {})[(o.code, o.sub_id)] = o
    orders = _orders_for(session, pending)
    alerts: list[tuple[Any, LabResultSet, LabObservation, str]] = []
    for p in pending:
        key = (p.sender, p.parsed.filler_order_number, p.parsed.service_code)
        result_set = existing.get(key)
        if result_set is None:
            result_set = _new_result_set(p, now)
            session.add(result_set)
            existing[key] = result_set
        else:
            _update_result_set(result_set, p, now)
        stored_obs = obs_of.setdefault(id(result_set), {})
        for obs, reason in p.findings:
            stored = stored_obs.get((obs.code, obs.sub_id))
            if stored is None:
                stored = _new_observation(result_set, obs, reason, p.raw, now)
                session.add(stored)
                stored_obs[(obs.code, obs.sub_id)] = stored
            elif not _same_value(stored, obs):
                _correct(session, stored, obs, reason, p.raw, now)
            else:
                continue
            if reason:
                alerts.append((p.item, result_set, stored, reason))
        _match_order(orders, result_set, now)
    if alerts:
        session.flush()  # observation ids for the alerts
        for item, result_set, stored, reason in alerts:
            _raise_alert(session, item, result_set, stored, reason, now)


def _new_result_set(p: _PendingResult, now: datetime) -> LabResultSet:
    values = _result_set_values(p, now)
    del values["order_id"]
    return LabResultSet(**values)


def _update_result_set(result_set: LabResultSet, p: _PendingResult, now: datetime) -> None:
    rs = p.parsed
    result_set.result_status = rs.result_status.value
    result_set.observed_at = rs.observed_at or result_set.observed_at
    result_set.reported_at = rs.reported_at or result_set.reported_at
    result_set.is_critical = result_set.is_critical or any(r for _, r in p.findings)
    notes = list(result_set.notes or [])
    result_set.notes = notes + [n for n in rs.notes if n not in notes]
    result_set.raw_message_id = p.raw.id
    result_set.updated_at = now


def _new_observation(result_set: LabResultSet, obs: Any, reason: str | None, raw: _Raw,
                     now: datetime) -> LabObservation:
    values = _observation_values(0, obs, reason, raw, now)
    del values["result_set_id"]
    return LabObservation(result_set=result_set, **values)


def _correct(session: Session, stored: LabObservation, obs: Any, reason: str | None,
             raw: _Raw, now: datetime) -> None:
    """A correction (OBX-11 C) or a changed re-send: keep what was there, then replace it."""
    session.add(LabObservationHistory(
        observation=stored, version=stored.version, value=stored.value,
        numeric_value=stored.numeric_value, units=stored.units,
        reference_range=stored.reference_range, abnormal_flags=list(stored.abnormal_flags),
        result_status=stored.result_status, observed_at=stored.observed_at,
        raw_message_id=stored.raw_message_id, replaced_at=now,
        replaced_by_message_id=raw.id,
    ))
    stored.value, stored.numeric_value = obs.value, obs.numeric_value
    stored.comparator, stored.units = obs.comparator, obs.units
    stored.reference_range = obs.reference_range
    stored.abnormal_flags = list(obs.abnormal_flags)
    stored.result_status = obs.result_status.value
    stored.observed_at = obs.observed_at or stored.observed_at
    stored.value_type, stored.name = obs.value_type, obs.name or stored.name
    stored.is_critical = reason is not None
    stored.version += 1
    stored.raw_message_id = raw.id
    stored.updated_at = now
    logger.info("observation %s corrected to version %s", stored.id, stored.version)


def _same_value(stored: LabObservation, obs: Any) -> bool:
    return (stored.value == obs.value and stored.units == obs.units
            and stored.reference_range == obs.reference_range
            and list(stored.abnormal_flags or []) == list(obs.abnormal_flags)
            and stored.result_status == obs.result_status.value)


def _raise_alert(session: Session, item: Any, result_set: LabResultSet, obs: LabObservation,
                 reason: str, now: datetime) -> None:
    # One open alert per observation value: a re-sent or unchanged result does not page twice.
    exists = session.scalar(
        select(LabCriticalAlert.id).where(LabCriticalAlert.observation_id == obs.id,
                                          LabCriticalAlert.value == obs.value)
    )
    if exists is not None:
        return
    session.add(LabCriticalAlert(**_alert_values(
        item.id, result_set.id, result_set.institution_code, result_set.patient_id, obs.id,
        obs.code, obs.value, obs.units, reason, now)))


def _alert_values(item_id: int, result_set_id: int, institution_code: str,
                  patient_id: int | None, observation_id: int, test_code: str, value: str,
                  units: str, reason: str, now: datetime) -> dict[str, Any]:
    """A new open critical-value alert (logged: someone must be told)."""
    logger.warning("critical value: worklist item %s, observation %s (%s)", item_id,
                   observation_id, test_code)
    return {
        "observation_id": observation_id, "result_set_id": result_set_id,
        "worklist_item_id": item_id, "institution_code": institution_code,
        "patient_id": patient_id, "test_code": test_code, "value": value, "units": units,
        "reason": reason, "status": "open", "raised_at": now, "notified_at": None,
        "notified_to": None, "acknowledged_at": None, "acknowledged_by": None,
        "escalated_at": None, "escalation_level": 0,
    }


def _orders_for(session: Session, pending: list[_PendingResult]) -> list[LabOrder]:
    """Orders any result of the batch may belong to (by placer or filler number)."""
    # Most results have no order here (branch analysers): find ids first, objects only if any.
    ids = {i for (i,) in select_where_any(session, [LabOrder.id],
                                          _order_numbers([p.parsed for p in pending]))}
    if not ids:
        return []
    # Locked (in id order, as every batch takes them): a result moving an order to resulted
    # and an order message from the HIS must not decide on stale statuses.
    return list(session.scalars(select(LabOrder).where(LabOrder.id.in_(ids))
                                .order_by(LabOrder.id).with_for_update()
                                .execution_options(populate_existing=True)))


def _prefetch_orders(session: Session, result_sets: list[ParsedResultSet]) -> None:
    prefetch_where_any(session, [LabOrder.id], _order_numbers(result_sets))


def _order_numbers(result_sets: list[ParsedResultSet]) -> list[tuple[Any, list[str]]]:
    return [(LabOrder.filler_order_number, [rs.filler_order_number for rs in result_sets]),
            (LabOrder.placer_order_number, [rs.placer_order_number for rs in result_sets
                                            if rs.placer_order_number])]


def _match_order(orders: list[LabOrder], result_set: LabResultSet, now: datetime) -> None:
    """Link a result to its order by placer or filler number and move the order to resulted."""
    order = _matching_order(orders, result_set.filler_order_number,
                            result_set.placer_order_number, result_set.service_code)
    if order is not None:
        result_set.order_id = order.id
        _order_resulted(order, result_set.filler_order_number, now)


def _matching_order(orders: list[LabOrder], filler: str, placer: str,
                    service_code: str) -> LabOrder | None:
    matches = [o for o in orders if o.filler_order_number == filler
               or (placer and o.placer_order_number == placer)]
    if not matches:
        return None
    return next((o for o in matches if o.service_code == service_code), matches[0])


def _order_resulted(order: LabOrder, filler: str, now: datetime) -> None:
    new_status = advance_order(OrderStatus(order.status), OrderStatus.RESULTED)
    if new_status != order.status:
        order.status = new_status.value
        order.resulted_at = now
    if not order.filler_order_number:
        order.filler_order_number = filler
    order.updated_at = now


# --------------------------------------------------------------------------- orders


def _record_orders(session: Session, inbound: Inbound, msg: LabMessage, row: _Raw,
                   now: datetime) -> None:
    """Lab, imaging and ECG orders of one message, all or nothing.

    A refusal found only against the database (duplicate placer number, cancel of an order
    already read, change of an unknown order) rolls the message's orders back and turns its
    ACK into AE with ERR, so the HIS knows nothing was taken.
    """
    from hub.services.orders import record_hl7_orders

    inst = row.institution_code or _raw_code(inbound) or "UNKNOWN"
    try:
        with session.begin_nested():
            for order in msg.orders:
                _upsert_order(session, inbound.sender or "", row.institution_code
                              or _raw_code(inbound), msg, order, row, now)
            if msg.imaging_orders:
                actor = audit.Actor(f"hl7:{(inbound.sender or '')[:58]}", "system", inst[:32])
                record_hl7_orders(session, actor, inst, inbound.sender or "", msg.patient,
                                  msg.imaging_orders, now, row.id)
    except DomainError as exc:
        info = (inbound.refuse(exc) if inbound.refuse is not None
                else ErrorInfo("AE", "", 207, str(exc)))
        logger.warning("MSH-10 %s from %s refused AE: %s %s", inbound.control_id,
                       inbound.sender, info.location, info.text)
        row.ack_code, row.ack = info.ack_code, inbound.make_ack(info.ack_code, info)
        session.execute(update(LabRawMessage).where(LabRawMessage.id == row.id).values(
            ack_code=row.ack_code, ack=row.ack, error_location=info.location,
            error_code=info.code, error_text=info.text))


def _upsert_order(session: Session, sender: str, inst_code: str | None, msg: LabMessage,
                  order: ParsedOrder, raw: _Raw, now: datetime) -> LabOrder:
    existing = session.scalar(
        select(LabOrder).where(LabOrder.placer_order_number == order.placer_order_number,
                               LabOrder.service_code == order.service_code)
        .with_for_update().execution_options(populate_existing=True)
    )
    if existing is None:
        patient = resolve_patient(session, inst_code or "UNKNOWN", msg.patient)
        row = LabOrder(
            sending_facility=sender, institution_code=inst_code or "UNKNOWN",
            placer_order_number=order.placer_order_number,
            filler_order_number=order.filler_order_number or None,
            service_code=order.service_code, service_name=order.service_name,
            specimen_barcode=order.specimen_barcode or None, status=order.status.value,
            priority=order.priority.value, patient_id=patient.id if patient else None,
            patient_local_id=msg.patient.local_id, ordered_at=order.ordered_at,
            collected_at=order.collected_at, received_at=order.received_at,
            raw_message_id=raw.id, updated_at=now,
        )
        session.add(row)
        session.flush()
        logger.info("lab order %s created (MSH-10 %s)", row.id, msg.header.control_id)
        return row
    existing.status = advance_order(OrderStatus(existing.status), order.status).value
    existing.filler_order_number = order.filler_order_number or existing.filler_order_number
    existing.specimen_barcode = order.specimen_barcode or existing.specimen_barcode
    existing.collected_at = order.collected_at or existing.collected_at
    existing.received_at = order.received_at or existing.received_at
    existing.raw_message_id = raw.id
    existing.updated_at = now
    return existing


def verify_result_set(session: Session, result_set_id: int, username: str,
                      now: datetime) -> LabResultSet:
    """Record that a lab physician verified (审核) a result set; its order becomes verified.

    The caller then queues the result for the institution's HIS (``lis_bridge.outbound``).

    Raises:
        NotFound: no such result set.
    """
    result_set = session.get(LabResultSet, result_set_id)
    if result_set is None:
        raise NotFound(f"lab result set {result_set_id}")
    result_set.verified_at = now
    result_set.verified_by = username
    result_set.updated_at = now
    if result_set.order_id is not None:
        order = session.get(LabOrder, result_set.order_id, with_for_update=True,
                            populate_existing=True)
        if order is not None:
            order.status = advance_order(OrderStatus(order.status), OrderStatus.VERIFIED).value
            order.verified_at = now
            order.updated_at = now
    return result_set
