"""Report use cases: draft, submit, preliminary, verify (sign → final), addendum/amendment.

Each use case loads, asks :mod:`hub.domain.signoff` for a decision, and only then changes
anything, so a refusal leaves the database exactly as it was (the caller's transaction also rolls
back on any exception). Signing renders the PDF, PAdES-signs it with the signer's certificate,
stores a detached signature over the canonical JSON, and hands the version to
:mod:`hub.services.delivery`. Times are recorded to the minute from the server clock.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from hub import audit
from hub.clock import as_utc, utcnow
from hub.config import Settings
from hub.db.models import Institution, Patient, User, WorklistItem
from hub.db.report_models import Report, ReportSignature, ReportVersion, SigningCertificate
from hub.domain import signoff
from hub.domain.age import age_in_years
from hub.domain.errors import NotFound
from hub.domain.signoff import (
    Action,
    ReportStatus,
    Signer,
    SignerRole,
    SignoffRules,
    VersionKind,
    ensure,
    to_minute,
)
from hub.domain.worklist import Event, ReadingState
from hub.reports import ca
from hub.reports.pdf import AddendumBlock, KeyImage, ReportDocument, SignerLine, render_pdf
from hub.reports.signing import canonical_json, sha256_hex, sign_detached, sign_pdf
from hub.reports.templates import get_template, suggest_template, validate_fields
from hub.services.worklist import apply_event, claim_item

logger = logging.getLogger(__name__)

ROLE_LABELS = {SignerRole.WRITER: "书写医师", SignerRole.VERIFIER: "审核医师",
               SignerRole.AMENDER: "补充/更正医师"}
SEX_LABELS = {"M": "男", "F": "女", "O": "其他"}


def signoff_rules(settings: Settings) -> SignoffRules:
    """The sign-off rules the settings configure (verifying ranks, single sign-off exams)."""
    return SignoffRules(verify_ranks=frozenset(settings.report_verify_ranks),
                        single_signoff=frozenset(settings.report_single_signoff))


@dataclass(frozen=True)
class ReportContext:
    """What the report use cases need from configuration and the outside world."""

    rules: SignoffRules
    passphrase: bytes
    public_url: str
    font_path: str | None = None
    orthanc: Any = None            # hub.orthanc.client.OrthancClient, for key images and DICOM
    lis: Any = None                # lis_bridge.config.LisSettings, for HL7 delivery
    fetch_images: bool = True
    claim_minutes: int = 30

    @classmethod
    def from_settings(cls, settings: Settings, orthanc: Any = None, lis: Any = None,
                      ) -> ReportContext:
        """Build from hub settings (read once at the entry point)."""
        return cls(
            rules=signoff_rules(settings),
            passphrase=ca.key_passphrase(settings.resolved_secret_key()),
            public_url=settings.report_public_url.rstrip("/"),
            font_path=settings.report_font or None,
            orthanc=orthanc, lis=lis, claim_minutes=settings.claim_minutes,
        )

    def verify_url(self, code: str) -> str:
        return f"{self.public_url}/verify/{code}"


# --------------------------------------------------------------------------- loading


def get_item(session: Session, item_id: int) -> WorklistItem:
    """The worklist item, or NotFound."""
    item = session.get(WorklistItem, item_id)
    if item is None:
        raise NotFound(f"worklist item {item_id}")
    return item


def report_for_item(session: Session, item_id: int) -> Report | None:
    """The item's report, or None before anyone wrote one."""
    return session.scalar(select(Report).where(Report.worklist_item_id == item_id))


def versions(session: Session, report_id: int) -> list[ReportVersion]:
    """Signed versions, oldest first."""
    return list(session.scalars(select(ReportVersion).where(ReportVersion.report_id == report_id)
                                .order_by(ReportVersion.number)))


def latest_certificate(session: Session, user_id: int) -> SigningCertificate | None:
    """The user's newest certificate, revoked or not (so a refusal can say "revoked")."""
    return session.scalar(select(SigningCertificate).where(SigningCertificate.user_id == user_id)
                          .order_by(SigningCertificate.id.desc()).limit(1))


def _signer(user: User) -> Signer:
    return Signer(user.id, user.role, user.rank)


def _status(report: Report | None) -> ReportStatus | None:
    return ReportStatus(report.status) if report else None


def _has_content(findings: str, impression: str) -> bool:
    return bool((findings or "").strip() and (impression or "").strip())


# --------------------------------------------------------------------------- drafting


def save_draft(session: Session, ctx: ReportContext, item: WorklistItem, user: User,
               actor: audit.Actor, *, template: str | None, findings: str, impression: str,
               fields: Mapping[str, Any]) -> Report:
    """Create or update the draft; the first writer becomes the report's writer (书写医师).

    Claims the item for the writer if it is ``ready``.

    Raises:
        NotPermitted: not a reader of the item's specialty, or not the writer.
        Conflict: the report is final (use an addendum).
        InvalidInput: unknown template or bad structured fields.
        InvalidTransition: the item is not in a state that can be reported.
    """
    report = report_for_item(session, item.id)
    ensure(signoff.can_write(_signer(user), item.specialty, _status(report),
                             report.writer_id if report else None, ctx.rules))
    tpl = get_template(template) if template else (
        get_template(report.template) if report else
        suggest_template(item.kind, item.modality, item.body_part))
    clean = validate_fields(tpl, fields, require=False)
    now = to_minute(utcnow())
    if item.status == ReadingState.READY:
        claim_item(session, item, user.id, actor, timedelta(minutes=ctx.claim_minutes))
    elif item.status not in (ReadingState.IN_PROGRESS, ReadingState.PRELIMINARY):
        from hub.domain.errors import InvalidTransition

        raise InvalidTransition(f"cannot write a report for an item that is {item.status}")
    if report is None:
        report = Report(worklist_item_id=item.id, template=tpl.code,
                        status=ReportStatus.DRAFT.value, writer_id=user.id,
                        exam_at=to_minute(as_utc(item.received_at)), written_at=now,
                        verify_code=secrets.token_urlsafe(12), current_version=0,
                        created_at=now, updated_at=now, fields={})
        session.add(report)
    report.template, report.findings, report.impression = tpl.code, findings, impression
    report.fields = clean
    report.written_at = now
    report.updated_at = now
    report.status = signoff.next_status(_status(report) if report.id else None,
                                        Action.WRITE).value
    session.flush()
    audit.record(session, actor, "report.draft", f"report:{report.id}",
                 {"item": item.id, "template": tpl.code})
    return report


def submit(session: Session, ctx: ReportContext, item: WorklistItem, user: User,
           actor: audit.Actor) -> Report:
    """The writer hands the draft to verification (待审核).

    Raises:
        NotFound: no report yet. NotPermitted: not the writer. Conflict: wrong status.
        InvalidInput: empty text or a required field missing.
    """
    report = report_for_item(session, item.id)
    if report is None:
        raise NotFound("no report draft for this item")
    ensure(signoff.can_submit(_signer(user), _status(report), report.writer_id,
                              _has_content(report.findings, report.impression)))
    validate_fields(get_template(report.template), report.fields or {}, require=True)
    now = to_minute(utcnow())
    report.status = signoff.next_status(_status(report), Action.SUBMIT).value
    report.submitted_at = now
    report.written_at = now
    report.updated_at = now
    audit.record(session, actor, "report.submit", f"report:{report.id}", {"item": item.id})
    return report


# --------------------------------------------------------------------------- signing


def _exam_name(item: WorklistItem, template_code: str) -> str:
    tpl = get_template(template_code)
    return item.description or tpl.name


def _age(birth: date | None, at: datetime | None) -> str:
    years = age_in_years(birth, at.date() if at is not None else None)
    return "" if years is None else f"{years}岁"


def _iso(t: datetime | None) -> str | None:
    return as_utc(t).isoformat() if t else None


def canonical_document(item: WorklistItem, report: Report, version: ReportVersion,
                       patient: Patient | None, writer: User, signer: User, signer_role: str,
                       previous_sha256: str | None) -> dict[str, Any]:
    """The JSON that the detached signature covers; reproducible from the database."""
    return {
        "schema": "yigong-report/1",
        "report_id": report.id,
        "version": version.number,
        "kind": version.kind,
        "template": version.template,
        "exam_name": _exam_name(item, version.template),
        "item": {"id": item.id, "kind": item.kind, "natural_key": item.natural_key,
                 "accession_number": item.accession_number, "modality": item.modality,
                 "body_part": item.body_part, "institution": item.institution_code},
        "patient": {"id": patient.id if patient else None, "local_id": item.patient_local_id,
                    "name": patient.name if patient else item.patient_name},
        "findings": version.findings, "impression": version.impression,
        "fields": version.fields or {}, "text": version.text, "reason": version.reason,
        "exam_at": _iso(report.exam_at), "written_at": _iso(report.written_at),
        "writer": writer.username, "signed_at": _iso(version.signed_at),
        "signer": signer.username, "signer_role": signer_role,
        "recognition": report.recognition_code if version.recognised else None,
        "verify_code": report.verify_code,
        "previous_sha256": previous_sha256,
    }


def _key_images(ctx: ReportContext, item: WorklistItem) -> tuple[KeyImage, ...]:
    """One key image (middle instance preview) or the ECG page; best effort, never fails."""
    if not (ctx.fetch_images and ctx.orthanc is not None and item.orthanc_id):
        return ()
    try:
        if item.kind == "ecg":
            from ecg_ingest.dicom_writer import read_dicom_bytes
            from ecg_ingest.render import render_png

            record = read_dicom_bytes(ctx.orthanc.get_bytes(f"/instances/{item.orthanc_id}/file"))
            return (KeyImage(render_png(record), "十二导联心电图"),)
        if item.kind == "imaging":
            instances = ctx.orthanc.get_json(f"/studies/{item.orthanc_id}/instances")
            if not instances:
                return ()
            ordered = sorted(instances, key=lambda i: int(
                (i.get("MainDicomTags") or {}).get("InstanceNumber") or 0))
            mid = ordered[len(ordered) // 2]["ID"]
            return (KeyImage(ctx.orthanc.get_bytes(f"/instances/{mid}/preview"), "关键图像"),)
    except Exception as exc:  # noqa: BLE001 - a report is signed even without its picture
        logger.warning("item %s: key image unavailable: %s", item.id, exc)
    return ()


def build_document(session: Session, ctx: ReportContext, item: WorklistItem, report: Report,
                   version: ReportVersion, all_versions: list[ReportVersion],
                   images: tuple[KeyImage, ...] = ()) -> ReportDocument:
    """What :func:`hub.reports.pdf.render_pdf` prints for ``version``."""
    tpl = get_template(version.template)
    patient = session.get(Patient, item.patient_id) if item.patient_id else None
    users = {u.id: u for u in session.scalars(select(User).where(User.id.in_(
        {report.writer_id, report.verifier_id or 0} | {v.author_id for v in all_versions})))}
    lead = session.scalar(select(Institution).where(Institution.is_lead.is_(True)))
    source = session.scalar(select(Institution).where(
        Institution.code == item.institution_code))
    writer = users.get(report.writer_id)
    signers = [SignerLine(ROLE_LABELS[SignerRole.WRITER],
                          writer.display_name or writer.username if writer else "",
                          as_utc(report.submitted_at or report.written_at))]
    if version.kind != VersionKind.PRELIMINARY and report.verifier_id:
        v = users.get(report.verifier_id)
        signers.append(SignerLine(ROLE_LABELS[SignerRole.VERIFIER],
                                  v.display_name or v.username if v else "",
                                  as_utc(report.verified_at)))
    addenda = []
    for v in all_versions:
        if v.number > version.number or v.kind not in (VersionKind.ADDENDUM,
                                                       VersionKind.AMENDMENT):
            continue
        author = users.get(v.author_id)
        title = "补充报告" if v.kind == VersionKind.ADDENDUM else "更正报告"
        text = v.text or ("诊断意见更正为：" + v.impression)
        addenda.append(AddendumBlock(title, text, v.reason or "",
                                     author.display_name if author else "", as_utc(v.signed_at)))
    field_lines = tuple(
        (f.label, f"{version.fields[f.key]} {f.unit}" if f.unit else
         ("是" if version.fields[f.key] is True else "否" if version.fields[f.key] is False
          else str(version.fields[f.key])))
        for f in tpl.fields if f.key in (version.fields or {}))
    recognition = None
    if version.recognised and report.recognition_code:
        recognition = f"医共体HR · {report.recognition_code}"
    return ReportDocument(
        report_id=report.id, version=version.number, title=tpl.title,
        reporting_institution=lead.name if lead else "",
        source_institution=source.name if source else item.institution_code,
        patient_name=(patient.name if patient and patient.name else item.patient_name) or "",
        patient_sex=SEX_LABELS.get((patient.sex or "") if patient else "", ""),
        patient_age=_age(patient.birth_date if patient else None, as_utc(report.exam_at)),
        patient_local_id=item.patient_local_id or "", exam_name=_exam_name(item, tpl.code),
        modality=item.modality or item.kind, accession=item.accession_number or "",
        exam_at=as_utc(report.exam_at), findings_label=tpl.findings_label,
        findings=version.findings, impression_label=tpl.impression_label,
        impression=version.impression, verify_url=ctx.verify_url(report.verify_code),
        verify_code=report.verify_code, fields=field_lines, images=images,
        signers=tuple(signers), addenda=tuple(addenda), recognition=recognition,
        preliminary=version.kind == VersionKind.PRELIMINARY,
        critical_note=item.critical_reason if item.is_critical else None,
    )


def _sign_version(session: Session, ctx: ReportContext, item: WorklistItem, report: Report,
                  kind: VersionKind, signer: User, signer_role: SignerRole,
                  cert_row: SigningCertificate, now: datetime, *, text: str | None = None,
                  reason: str | None = None) -> ReportVersion:
    """Freeze the report's current content as a new signed version (PDF + detached JSON sig)."""
    from hub.services.recognition import assess_report

    previous = versions(session, report.id)
    number = (previous[-1].number if previous else 0) + 1
    recognition = assess_report(session, item, report, now) if kind != \
        VersionKind.PRELIMINARY else None
    report.recognition_code = recognition.item.code if recognition and \
        recognition.recognised and recognition.item else None
    version = ReportVersion(
        report_id=report.id, number=number, kind=kind.value, template=report.template,
        findings=report.findings, impression=report.impression, fields=dict(report.fields or {}),
        text=text, reason=reason, author_id=signer.id, created_at=now, signed_at=now,
        canonical="", sha256="", pdf=b"", pdf_sha256="",
        recognised=bool(report.recognition_code),
    )
    writer = session.get(User, report.writer_id)
    patient = session.get(Patient, item.patient_id) if item.patient_id else None
    document = canonical_document(item, report, version, patient, writer or signer, signer,
                                  signer_role.value, previous[-1].sha256 if previous else None)
    canonical = canonical_json(document)
    loaded = ca.load_signing_key(session, cert_row, ctx.passphrase)
    version.canonical = canonical.decode("utf-8")
    version.sha256 = sha256_hex(canonical)
    doc = build_document(session, ctx, item, report, version, previous + [version],
                         _key_images(ctx, item))
    pdf = render_pdf(doc, font_path=ctx.font_path)
    lead = session.scalar(select(Institution.name).where(Institution.is_lead.is_(True)))
    version.pdf = sign_pdf(pdf, loaded.signing_key,
                           reason=f"{ROLE_LABELS[signer_role]}签名 {kind.value}",
                           location=lead or "Yigong Hub",
                           signer_name=signer.display_name or signer.username)
    version.pdf_sha256 = sha256_hex(version.pdf)
    session.add(version)
    session.flush()
    session.add(ReportSignature(
        version_id=version.id, user_id=signer.id, role=signer_role.value,
        certificate_id=cert_row.id, algorithm=cert_row.algorithm,
        signature=sign_detached(loaded.signing_key, canonical), signed_at=now))
    report.current_version = number
    return version


def issue_preliminary(session: Session, ctx: ReportContext, item: WorklistItem, user: User,
                      actor: audit.Actor) -> Report:
    """Sign and issue the emergency report (急诊报告), watermarked until final.

    Raises:
        NotFound: no draft. NotPermitted: rules or certificate refuse. Conflict: wrong status.
        InvalidTransition: the item cannot become preliminary.
    """
    report = report_for_item(session, item.id)
    if report is None:
        raise NotFound("no report draft for this item")
    now = to_minute(utcnow())
    cert_row = latest_certificate(session, user.id)
    ensure(signoff.can_issue_preliminary(
        _signer(user), item.specialty, _status(report), report.writer_id,
        _has_content(report.findings, report.impression), ctx.rules,
        ca.certificate_state(cert_row), utcnow()))
    assert cert_row is not None
    if item.status != ReadingState.PRELIMINARY:
        apply_event(session, item, Event.PRELIMINARY, actor, {"report": report.id})
    report.status = signoff.next_status(_status(report), Action.PRELIMINARY).value
    report.preliminary_at = now
    report.updated_at = now
    version = _sign_version(session, ctx, item, report, VersionKind.PRELIMINARY, user,
                            SignerRole.WRITER, cert_row, now)
    audit.record(session, actor, "report.preliminary", f"report:{report.id}",
                 {"item": item.id, "version": version.number, "sha256": version.sha256})
    return report


def verify(session: Session, ctx: ReportContext, item: WorklistItem, user: User,
           actor: audit.Actor, edits: Mapping[str, Any] | None = None) -> Report:
    """The verifier (审核医师) checks, optionally edits, and signs: the report becomes final.

    The item moves to ``final``; delivery (HL7 to the HIS, DICOM PDF into the study) is queued
    in the same transaction.

    Raises:
        NotFound: no report. NotPermitted: rank, specialty, same writer, certificate.
        Conflict: already final (second verify) or not submitted. InvalidInput: bad fields.
    """
    report = report_for_item(session, item.id)
    if report is None:
        raise NotFound("no report for this item")
    edits = edits or {}
    findings = edits.get("findings", report.findings)
    impression = edits.get("impression", report.impression)
    cert_row = latest_certificate(session, user.id)
    ensure(signoff.can_verify(
        _signer(user), item.specialty, report.template, _status(report), report.writer_id,
        _has_content(findings, impression), ctx.rules, ca.certificate_state(cert_row),
        utcnow()))
    assert cert_row is not None
    fields = validate_fields(get_template(report.template),
                             edits.get("fields", report.fields) or {}, require=True)
    now = to_minute(utcnow())
    if item.status == ReadingState.READY:
        apply_event(session, item, Event.CLAIM, actor, {"by": "report verify"})
    apply_event(session, item, Event.FINALISE, actor, {"report": report.id})
    report.findings, report.impression, report.fields = findings, impression, fields
    report.status = signoff.next_status(_status(report), Action.VERIFY).value
    report.verifier_id = user.id
    report.verified_at = now
    report.submitted_at = report.submitted_at or now
    report.updated_at = now
    version = _sign_version(session, ctx, item, report, VersionKind.FINAL, user,
                            SignerRole.VERIFIER, cert_row, now)
    audit.record(session, actor, "report.verify", f"report:{report.id}",
                 {"item": item.id, "version": version.number, "sha256": version.sha256,
                  "certificate": cert_row.serial})
    from hub.services.delivery import queue_delivery

    queue_delivery(session, ctx, item, report, version, now)
    return report


def add_version(session: Session, ctx: ReportContext, item: WorklistItem, user: User,
                actor: audit.Actor, *, kind: VersionKind, text: str, reason: str,
                edits: Mapping[str, Any] | None = None) -> Report:
    """An addendum (补充) or amendment (更正) to a final report, itself signed.

    The earlier versions stay as they were. The item goes ``final|delivered → amended → final``
    and is delivered again.

    Raises:
        NotFound: no report. InvalidInput: no reason, empty addendum, bad fields.
        Conflict: report not final. NotPermitted: rank, specialty, certificate.
    """
    report = report_for_item(session, item.id)
    if report is None:
        raise NotFound("no report for this item")
    cert_row = latest_certificate(session, user.id)
    ensure(signoff.can_amend(_signer(user), item.specialty, _status(report), kind, reason or "",
                             text or "", ctx.rules, ca.certificate_state(cert_row), utcnow()))
    assert cert_row is not None
    edits = edits or {}
    if kind == VersionKind.AMENDMENT:
        findings = edits.get("findings", report.findings)
        impression = edits.get("impression", report.impression)
        fields = validate_fields(get_template(report.template),
                                 edits.get("fields", report.fields) or {}, require=True)
        if not _has_content(findings, impression):
            ensure(signoff.Decision(False, "findings and impression are empty",
                                    signoff.Refusal.BAD_INPUT))
    now = to_minute(utcnow())
    apply_event(session, item, Event.AMEND, actor, {"report": report.id, "kind": kind.value})
    if kind == VersionKind.AMENDMENT:
        report.findings, report.impression, report.fields = findings, impression, fields
    report.status = signoff.next_status(
        _status(report), Action.ADDENDUM if kind == VersionKind.ADDENDUM else Action.AMEND).value
    report.updated_at = now
    version = _sign_version(session, ctx, item, report, kind, user, SignerRole.AMENDER,
                            cert_row, now, text=text or None, reason=reason)
    apply_event(session, item, Event.FINALISE, actor, {"report": report.id,
                                                       "version": version.number})
    audit.record(session, actor, f"report.{kind.value}", f"report:{report.id}",
                 {"item": item.id, "version": version.number, "reason": reason,
                  "sha256": version.sha256})
    from hub.services.delivery import queue_delivery

    queue_delivery(session, ctx, item, report, version, now)
    return report


# --------------------------------------------------------------------------- turnaround


def turnaround_stats(session: Session, targets: Mapping[str, int], now: datetime,
                     date_from: datetime | None = None, date_to: datetime | None = None,
                     ) -> list[dict[str, Any]]:
    """On-time rates per institution and specialty.

    An item counts as reported at its first signed report (preliminary or final), or, for lab
    items without a report, when its result set was verified.
    """
    from hub.db.lab_models import LabResultSet
    from hub.domain.turnaround import TurnaroundRecord, summarise

    stmt = (select(WorklistItem.institution_code, WorklistItem.specialty, WorklistItem.kind,
                   WorklistItem.priority, WorklistItem.received_at, Report.preliminary_at,
                   Report.verified_at, WorklistItem.id)
            .outerjoin(Report, Report.worklist_item_id == WorklistItem.id)
            .where(WorklistItem.status != ReadingState.RECEIVING.value))
    if date_from is not None:
        stmt = stmt.where(WorklistItem.received_at >= date_from)
    if date_to is not None:
        stmt = stmt.where(WorklistItem.received_at < date_to)
    rows = session.execute(stmt).all()
    lab_ids = [r[7] for r in rows if r[2] == "lab" and r[5] is None and r[6] is None]
    lab_verified: dict[int, datetime] = {}
    if lab_ids:
        for item_id, verified in session.execute(
                select(LabResultSet.worklist_item_id, LabResultSet.verified_at)
                .where(LabResultSet.worklist_item_id.in_(lab_ids),
                       LabResultSet.verified_at.is_not(None))):
            lab_verified[item_id] = as_utc(verified)
    records = []
    for inst, spec, kind, prio, received, prelim, verified, item_id in rows:
        done = [as_utc(t) for t in (prelim, verified) if t is not None]
        reported = min(done) if done else lab_verified.get(item_id)
        records.append(TurnaroundRecord(inst, spec, kind, prio, as_utc(received), reported))
    out = []
    for s in summarise(records, targets, now):
        out.append({"institution": s.institution, "specialty": s.specialty, "total": s.total,
                    "on_time": s.on_time, "late": s.late, "open_overdue": s.open_overdue,
                    "open_in_time": s.open_in_time, "on_time_rate": s.on_time_rate})
    return out
