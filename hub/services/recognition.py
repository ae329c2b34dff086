"""Mutual recognition (互认) use cases: catalogue, QC status, look-ups, repeat orders, statistics.

The rules are in :mod:`hub.domain.recognition`; this module loads the catalogue, the QC periods
and candidate results (final reports and verified lab result sets of the patient, from any
institution) and asks the domain.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from hub import audit
from hub.clock import as_utc
from hub.db.lab_models import LabResultSet
from hub.db.models import Institution, Patient, WorklistItem
from hub.db.report_models import (
    InstitutionQc,
    RecognitionItem,
    RecognitionLookup,
    RepeatOrder,
    Report,
    ReportVersion,
)
from hub.domain.errors import InvalidInput, NotFound
from hub.domain.recognition import (
    CatalogueItem,
    QcPeriod,
    Recognition,
    RepeatReason,
    ResultRef,
    assess,
    match_item,
    repeats_avoided,
)

logger = logging.getLogger(__name__)


def catalogue(session: Session, *, active_only: bool = False) -> list[CatalogueItem]:
    """The recognition catalogue as domain objects."""
    stmt = select(RecognitionItem).order_by(RecognitionItem.code)
    if active_only:
        stmt = stmt.where(RecognitionItem.active.is_(True))
    return [CatalogueItem(r.code, r.name, r.scope, r.validity_days, r.kind, r.modality,
                          r.body_part, r.service_code, r.active) for r in session.scalars(stmt)]


def upsert_catalogue_item(session: Session, actor: audit.Actor, item: CatalogueItem,
                          now: datetime) -> RecognitionItem:
    """Create or change a catalogue entry (admin)."""
    row = session.get(RecognitionItem, item.code)
    if row is None:
        row = RecognitionItem(code=item.code)
        session.add(row)
    row.name, row.scope, row.validity_days, row.kind = (item.name, item.scope,
                                                        item.validity_days, item.kind)
    row.modality, row.body_part, row.service_code = item.modality, item.body_part, \
        item.service_code
    row.active, row.updated_at = item.active, now
    audit.record(session, actor, "recognition.catalogue", f"catalogue:{item.code}",
                 {"validity_days": item.validity_days, "active": item.active})
    return row


def qc_periods(session: Session) -> list[QcPeriod]:
    """Every QC period on record."""
    return [QcPeriod(r.institution_code, as_utc(r.valid_from), as_utc(r.valid_until))
            for r in session.scalars(select(InstitutionQc))]


def set_qc(session: Session, actor: audit.Actor, institution: str, valid_from: datetime,
           valid_until: datetime, note: str, now: datetime) -> InstitutionQc:
    """Record a QC accreditation period of an institution.

    Raises:
        NotFound: unknown institution. InvalidInput: empty or inverted period.
    """
    if session.scalar(select(Institution.id).where(Institution.code == institution)) is None:
        raise NotFound(f"institution {institution}")
    if valid_until <= valid_from:
        raise InvalidInput("QC valid_until must be after valid_from")
    row = InstitutionQc(institution_code=institution, valid_from=valid_from,
                        valid_until=valid_until, note=note, created_at=now)
    session.add(row)
    audit.record(session, actor, "recognition.qc", f"institution:{institution}",
                 {"from": valid_from.isoformat(), "until": valid_until.isoformat()})
    return row


def _report_ref(item: WorklistItem, report: Report) -> ResultRef:
    return ResultRef(institution=item.institution_code, kind=item.kind,
                     exam_at=as_utc(report.exam_at or item.received_at),
                     modality=item.modality, body_part=item.body_part,
                     is_final=report.status == "final")


def assess_report(session: Session, item: WorklistItem, report: Report,
                  at: datetime) -> Recognition:
    """Recognition of a report being signed now (for the 互认 mark on its PDF)."""
    ref = _report_ref(item, report)
    ref = ResultRef(ref.institution, ref.kind, ref.exam_at, ref.modality, ref.body_part, True)
    return assess(ref, match_item(ref, catalogue(session)), qc_periods(session), at)


def recognised_results(session: Session, patient_id: int, item_code: str | None,
                       at: datetime) -> list[dict[str, Any]]:
    """Recognised results of a patient at ``at`` from any institution (all items if no code)."""
    if session.get(Patient, patient_id) is None:
        raise NotFound(f"patient {patient_id}")
    cat = catalogue(session)
    if item_code and not any(c.code == item_code for c in cat):
        raise InvalidInput(f"{item_code!r} is not in the recognition catalogue")
    qc = qc_periods(session)
    names = dict(session.execute(select(Institution.code, Institution.name)).all())
    out = []
    rows = session.execute(
        select(Report, WorklistItem).join(WorklistItem, WorklistItem.id == Report.worklist_item_id)
        .where(WorklistItem.patient_id == patient_id, Report.status == "final"))
    for report, item in rows:
        ref = _report_ref(item, report)
        rec = assess(ref, match_item(ref, cat), qc, at)
        if not rec.recognised or rec.item is None or (item_code and rec.item.code != item_code):
            continue
        out.append({"item_code": rec.item.code, "item_name": rec.item.name, "source": "report",
                    "report_id": report.id, "result_set_id": None, "item_id": item.id,
                    "institution": item.institution_code,
                    "institution_name": names.get(item.institution_code),
                    "exam_at": ref.exam_at, "verified_at": as_utc(report.verified_at),
                    "valid_until": rec.valid_until, "scope": rec.item.scope,
                    "pdf_url": f"/api/reports/{report.id}/pdf"})
    lab_rows = session.scalars(select(LabResultSet).where(
        LabResultSet.patient_id == patient_id, LabResultSet.verified_at.is_not(None)))
    for rs in lab_rows:
        ref = ResultRef(rs.institution_code, "lab", as_utc(rs.observed_at or rs.verified_at),
                        service_code=rs.service_code, is_final=True)
        rec = assess(ref, match_item(ref, cat), qc, at)
        if not rec.recognised or rec.item is None or (item_code and rec.item.code != item_code):
            continue
        out.append({"item_code": rec.item.code, "item_name": rec.item.name, "source": "lab",
                    "report_id": None, "result_set_id": rs.id, "item_id": rs.worklist_item_id,
                    "institution": rs.institution_code,
                    "institution_name": names.get(rs.institution_code), "exam_at": ref.exam_at,
                    "verified_at": as_utc(rs.verified_at), "valid_until": rec.valid_until,
                    "scope": rec.item.scope, "pdf_url": None})
    return sorted(out, key=lambda r: r["exam_at"], reverse=True)


def lookup(session: Session, actor: audit.Actor, patient_id: int, item_code: str | None,
           at: datetime) -> list[dict[str, Any]]:
    """A clinician's look-up before ordering: results, logged for statistics and audited."""
    results = recognised_results(session, patient_id, item_code, at)
    session.add(RecognitionLookup(patient_id=patient_id, item_code=item_code or "*",
                                  institution_code=actor.institution_code,
                                  username=actor.username, found=len(results), at=at))
    audit.record(session, actor, "recognition.lookup", f"patient:{patient_id}",
                 {"item": item_code, "found": len(results)})
    return results


def record_repeat(session: Session, actor: audit.Actor, patient_id: int, item_code: str,
                  reason: str, note: str, report_id: int | None, now: datetime) -> RepeatOrder:
    """A recognised exam ordered again anyway, with its coded reason.

    Raises:
        InvalidInput: unknown reason code or item, or ``other`` without a note.
        NotFound: unknown patient.
    """
    try:
        code = RepeatReason(reason)
    except ValueError:
        raise InvalidInput(f"unknown repeat reason {reason!r}; one of "
                           f"{', '.join(r.value for r in RepeatReason)}") from None
    if code == RepeatReason.OTHER and not note.strip():
        raise InvalidInput("reason 'other' needs a note")
    if session.get(Patient, patient_id) is None:
        raise NotFound(f"patient {patient_id}")
    if session.get(RecognitionItem, item_code) is None:
        raise InvalidInput(f"{item_code!r} is not in the recognition catalogue")
    if report_id is not None and session.get(Report, report_id) is None:
        raise NotFound(f"report {report_id}")
    row = RepeatOrder(patient_id=patient_id, item_code=item_code, reason=code.value,
                      note=note.strip(), recognised_report_id=report_id,
                      username=actor.username, institution_code=actor.institution_code,
                      created_at=now)
    session.add(row)
    session.flush()
    audit.record(session, actor, "recognition.repeat", f"patient:{patient_id}",
                 {"item": item_code, "reason": code.value})
    logger.info("repeat order %s recorded (%s, %s)", row.id, item_code, code.value)
    return row


def _month(t: datetime) -> str:
    return as_utc(t).astimezone(UTC).strftime("%Y-%m")


def stats(session: Session, month: str | None = None) -> list[dict[str, Any]]:
    """Per institution and month: results recognised (signed with the mark, by issuing
    institution), look-ups that found results and repeat orders (by asking institution), and
    repeat exams avoided (look-ups with results minus repeats)."""
    rows: dict[tuple[str, str], dict[str, Any]] = defaultdict(lambda: {
        "recognised_results": 0, "lookups_with_results": 0, "repeat_orders": 0,
        "by_reason": defaultdict(int)})
    versions = session.execute(
        select(ReportVersion.signed_at, WorklistItem.institution_code)
        .join(Report, Report.id == ReportVersion.report_id)
        .join(WorklistItem, WorklistItem.id == Report.worklist_item_id)
        .where(ReportVersion.recognised.is_(True), ReportVersion.kind == "final"))
    for signed_at, inst in versions:
        rows[(inst, _month(signed_at))]["recognised_results"] += 1
    for at, inst in session.execute(select(RecognitionLookup.at, RecognitionLookup.institution_code)
                                    .where(RecognitionLookup.found > 0)):
        rows[(inst, _month(at))]["lookups_with_results"] += 1
    for at, inst, reason in session.execute(select(RepeatOrder.created_at,
                                                   RepeatOrder.institution_code,
                                                   RepeatOrder.reason)):
        r = rows[(inst, _month(at))]
        r["repeat_orders"] += 1
        r["by_reason"][reason] += 1
    out = []
    for (inst, m), r in sorted(rows.items()):
        if month and m != month:
            continue
        out.append({"institution": inst, "month": m, **r, "by_reason": dict(r["by_reason"]),
                    "repeats_avoided": repeats_avoided(r["lookups_with_results"],
                                                       r["repeat_orders"])})
    return out
