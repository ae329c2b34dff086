"""Report routes (issue 6): templates, the report of an item, sign-off, PDFs, public
verification, mutual recognition, turnaround, critical results and FHIR read access.

The contract is docs/api-reports.md. Domain refusals are raised as domain errors and become
4xx in hub/api/errors.py; nothing here builds an HTTPException for them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from hub import audit
from hub.api.deps import AdminUser, CurrentUser, CurrentUserInfo, SessionDep, SettingsDep
from hub.clock import as_utc, utcnow
from hub.db.models import Institution, Patient, User, WorklistItem
from hub.db.report_models import (
    Report,
    ReportDelivery,
    ReportSignature,
    ReportVersion,
    SigningCertificate,
)
from hub.domain.access import READER_SPECIALTY, Capability, can_see, has_capability
from hub.domain.errors import InvalidInput, NotFound
from hub.domain.priority import Specialty
from hub.domain.recognition import REPEAT_REASON_LABELS, CatalogueItem
from hub.domain.signoff import VersionKind
from hub.reports import ca
from hub.reports.templates import get_template, list_templates
from hub.services import critical as critical_svc
from hub.services import delivery as delivery_svc
from hub.services import recognition as recognition_svc
from hub.services import reports as svc
from hub.services.worklist import get_item as scoped_item
from hub.services.worklist import lock_item

router = APIRouter(tags=["reports"])


# --------------------------------------------------------------------------- bodies


class DraftIn(BaseModel):
    template: str | None = Field(None, description="Template code; default suits the item")
    findings: str = ""
    impression: str = ""
    fields: dict[str, Any] = Field(default_factory=dict)


class VerifyIn(BaseModel):
    findings: str | None = None
    impression: str | None = None
    fields: dict[str, Any] | None = None


class AddendumIn(BaseModel):
    kind: VersionKind = VersionKind.ADDENDUM
    text: str = ""
    reason: str = ""
    findings: str | None = None
    impression: str | None = None
    fields: dict[str, Any] | None = None


class CriticalIn(BaseModel):
    finding: str
    notify: str = ""


class AckIn(BaseModel):
    note: str = ""


class RepeatIn(BaseModel):
    patient_id: int
    item_code: str
    reason: str
    note: str = ""
    recognised_report_id: int | None = None


class CatalogueIn(BaseModel):
    name: str
    scope: str = "医共体HR"
    validity_days: int = Field(gt=0)
    kind: str
    modality: str | None = None
    body_part: str | None = None
    service_code: str | None = None
    active: bool = True


class QcIn(BaseModel):
    valid_from: datetime
    valid_until: datetime
    note: str = ""


# --------------------------------------------------------------------------- helpers


def _ctx(request: Request, settings: SettingsDep) -> svc.ReportContext:
    lis = getattr(request.app.state, "lis_settings", None)
    if lis is None:
        from lis_bridge.config import LisSettings

        lis = LisSettings()
        request.app.state.lis_settings = lis
    return svc.ReportContext.from_settings(settings, orthanc=request.app.state.orthanc, lis=lis)


CtxDep = Annotated[svc.ReportContext, Depends(_ctx)]


def _item_for_write(session: Session, item_id: int, current: CurrentUserInfo) -> WorklistItem:
    # Readers get the sign-off rules' reason (e.g. "a cardiologist may not report a radiology
    # exam", 403); everyone else gets the worklist's 404 for items outside their scope.
    # Locked: sign-off decisions are taken on the item's and report's current state.
    if current.viewer.role in READER_SPECIALTY:
        return lock_item(session, svc.get_item(session, item_id))
    return lock_item(session, scoped_item(session, item_id, current.scope))


def _user_brief(u: User | None) -> dict[str, Any] | None:
    return {"username": u.username, "name": u.display_name or u.username} if u else None


def _t(t: datetime | None) -> str | None:
    return as_utc(t).isoformat() if t else None


def report_out(session: Session, ctx: svc.ReportContext, report: Report) -> dict[str, Any]:
    """The report as the API shows it (docs/api-reports.md)."""
    vs = svc.versions(session, report.id)
    user_ids = {report.writer_id, report.verifier_id or 0} | {v.author_id for v in vs}
    users = {u.id: u for u in session.scalars(select(User).where(User.id.in_(user_ids)))}
    sigs = session.execute(
        select(ReportSignature, ReportVersion.number, SigningCertificate)
        .join(ReportVersion, ReportVersion.id == ReportSignature.version_id)
        .join(SigningCertificate, SigningCertificate.id == ReportSignature.certificate_id)
        .where(ReportVersion.report_id == report.id).order_by(ReportSignature.id)).all()
    deliveries = session.scalars(select(ReportDelivery).where(
        ReportDelivery.report_id == report.id).order_by(ReportDelivery.id))
    crit = [a.as_dict() for a in critical_svc.list_alerts(
        session, _all_scope(), item_id=report.worklist_item_id)]
    recognition = None
    if report.recognition_code:
        from hub.db.report_models import RecognitionItem

        cat = session.get(RecognitionItem, report.recognition_code)
        if cat is not None:
            from datetime import timedelta

            recognition = {"item_code": cat.code, "scope": cat.scope,
                           "valid_until": _t(as_utc(report.exam_at)
                                             + timedelta(days=cat.validity_days))}
    return {
        "id": report.id, "item_id": report.worklist_item_id, "status": report.status,
        "template": report.template, "findings": report.findings,
        "impression": report.impression, "fields": report.fields or {},
        "writer": _user_brief(users.get(report.writer_id)),
        "verifier": _user_brief(users.get(report.verifier_id or 0)),
        "exam_at": _t(report.exam_at), "written_at": _t(report.written_at),
        "submitted_at": _t(report.submitted_at), "preliminary_at": _t(report.preliminary_at),
        "verified_at": _t(report.verified_at), "current_version": report.current_version,
        "recognised": recognition is not None, "recognition": recognition,
        "verify_code": report.verify_code, "verify_url": ctx.verify_url(report.verify_code),
        "pdf_url": f"/api/reports/{report.id}/pdf" if vs else None,
        "versions": [{
            "number": v.number, "kind": v.kind, "template": v.template, "findings": v.findings,
            "impression": v.impression, "fields": v.fields or {}, "text": v.text,
            "reason": v.reason, "author": users[v.author_id].username if v.author_id in users
            else None, "created_at": _t(v.created_at), "signed_at": _t(v.signed_at),
            "sha256": v.sha256, "pdf_sha256": v.pdf_sha256, "recognised": v.recognised,
            "pdf_url": f"/api/reports/{report.id}/pdf?version={v.number}"} for v in vs],
        "signatures": [{
            "version": number, "role": s.role, "username": users[s.user_id].username
            if s.user_id in users else None,
            "name": (users[s.user_id].display_name if s.user_id in users else None),
            "signed_at": _t(s.signed_at), "algorithm": s.algorithm,
            "certificate_serial": cert.serial, "certificate_subject": cert.subject}
            for s, number, cert in sigs],
        "delivery": [{"channel": d.channel, "status": d.status, "version": d.version_number,
                      "detail": d.detail, "at": _t(d.updated_at)} for d in deliveries],
        "critical": crit,
    }


def _all_scope():
    from hub.domain.access import Scope

    return Scope(None, None)


def _readable_report(session: Session, report_id: int, current: CurrentUserInfo) -> Report:
    """A report the user may read: its item is in their scope, or it is a recognised result
    (any clinician of the community may read those; the read is audited by the caller)."""
    report = session.get(Report, report_id)
    if report is None:
        raise NotFound(f"report {report_id}")
    item = session.get(WorklistItem, report.worklist_item_id)
    visible = item is not None and can_see(current.viewer, item.institution_code,
                                           Specialty(item.specialty))
    if not visible and not (report.status == "final" and report.recognition_code):
        raise NotFound(f"report {report_id}")
    return report


# --------------------------------------------------------------------------- templates


@router.get("/api/report-templates", summary="Report templates by exam kind and modality")
def templates(_current: CurrentUser, kind: str | None = None,
              modality: str | None = None) -> list[dict[str, Any]]:
    return [t.as_dict() for t in list_templates(kind, modality)]


@router.get("/api/report-templates/{code}", summary="One report template")
def template(code: str, _current: CurrentUser) -> dict[str, Any]:
    try:
        return get_template(code).as_dict()
    except InvalidInput:
        raise NotFound(f"template {code}") from None


# --------------------------------------------------------------------------- the report


@router.get("/api/worklist/{item_id}/report", summary="The item's report, versions, signatures")
def get_report(item_id: int, session: SessionDep, current: CurrentUser,
               ctx: CtxDep) -> dict[str, Any]:
    item = scoped_item(session, item_id, current.scope)
    report = svc.report_for_item(session, item.id)
    if report is None:
        raise NotFound("no report for this item yet")
    audit.record_read(session, current.actor, "report.view", f"report:{report.id}",
                 {"item": item.id, "patient_id": item.patient_id})
    return report_out(session, ctx, report)


@router.put("/api/worklist/{item_id}/report/draft", summary="Create or update the draft")
def put_draft(item_id: int, body: DraftIn, session: SessionDep, current: CurrentUser,
              ctx: CtxDep) -> dict[str, Any]:
    item = _item_for_write(session, item_id, current)
    report = svc.save_draft(session, ctx, item, current.user, current.actor,
                            template=body.template, findings=body.findings,
                            impression=body.impression, fields=body.fields)
    return report_out(session, ctx, report)


@router.post("/api/worklist/{item_id}/report/submit", summary="Writer done: await verification")
def post_submit(item_id: int, session: SessionDep, current: CurrentUser,
                ctx: CtxDep) -> dict[str, Any]:
    item = _item_for_write(session, item_id, current)
    return report_out(session, ctx, svc.submit(session, ctx, item, current.user, current.actor))


@router.post("/api/worklist/{item_id}/report/preliminary",
             summary="Issue the signed emergency (preliminary) report")
def post_preliminary(item_id: int, session: SessionDep, current: CurrentUser,
                     ctx: CtxDep) -> dict[str, Any]:
    item = _item_for_write(session, item_id, current)
    return report_out(session, ctx, svc.issue_preliminary(session, ctx, item, current.user,
                                                          current.actor))


@router.post("/api/worklist/{item_id}/report/verify",
             summary="Verify and sign: the report becomes final and is delivered")
def post_verify(item_id: int, session: SessionDep, current: CurrentUser, ctx: CtxDep,
                body: Annotated[VerifyIn | None, Body()] = None) -> dict[str, Any]:
    item = _item_for_write(session, item_id, current)
    edits = body.model_dump(exclude_none=True) if body else {}
    return report_out(session, ctx, svc.verify(session, ctx, item, current.user, current.actor,
                                               edits))


@router.post("/api/worklist/{item_id}/report/addendum",
             summary="Signed addendum or amendment to a final report (reason required)")
def post_addendum(item_id: int, body: AddendumIn, session: SessionDep, current: CurrentUser,
                  ctx: CtxDep) -> dict[str, Any]:
    item = _item_for_write(session, item_id, current)
    edits = body.model_dump(include={"findings", "impression", "fields"}, exclude_none=True)
    return report_out(session, ctx, svc.add_version(
        session, ctx, item, current.user, current.actor, kind=body.kind, text=body.text,
        reason=body.reason, edits=edits))


@router.post("/api/worklist/{item_id}/report/critical",
             summary="Raise a critical result (危急值) for an imaging/ECG report")
def post_critical(item_id: int, body: CriticalIn, session: SessionDep,
                  current: CurrentUser) -> dict[str, Any]:
    item = _item_for_write(session, item_id, current)
    if not has_capability(current.viewer.role, Capability.REPORT_CRITICAL):
        from hub.domain.errors import NotPermitted

        raise NotPermitted("only readers raise critical results")
    report = svc.report_for_item(session, item.id)
    row = critical_svc.raise_report_critical(session, item, report.id if report else None,
                                             body.finding, body.notify, current.actor, utcnow())
    return critical_svc._view(row).as_dict()


@router.get("/api/reports/{report_id}/pdf", summary="The signed PDF (latest or ?version=N)",
            response_class=Response,
            responses={200: {"content": {"application/pdf": {}}}})
def get_pdf(report_id: int, session: SessionDep, current: CurrentUser,
            version: int | None = None) -> Response:
    report = _readable_report(session, report_id, current)
    number = version or report.current_version
    row = session.scalar(select(ReportVersion).where(ReportVersion.report_id == report.id,
                                                     ReportVersion.number == number))
    if row is None:
        raise NotFound("no signed version")
    audit.record(session, current.actor, "report.pdf", f"report:{report.id}",
                 {"version": number})
    return Response(row.pdf, media_type="application/pdf", headers={
        "Content-Disposition": f'inline; filename="report-{report.id}-v{number}.pdf"',
        "Cache-Control": "no-store"})


# --------------------------------------------------------------------------- public verify


def _mask(name: str) -> str:
    """王小东 → 王*东: the code holder sees enough to match the paper, not the full name."""
    name = (name or "").split("=")[-1].replace("^", "")
    if len(name) <= 1:
        return name
    if len(name) == 2:
        return name[0] + "*"
    return name[0] + "*" * (len(name) - 2) + name[-1]


def _public(session: Session, report: Report) -> dict[str, Any]:
    item = session.get(WorklistItem, report.worklist_item_id)
    patient = session.get(Patient, item.patient_id) if item and item.patient_id else None
    lead = session.scalar(select(Institution).where(Institution.is_lead.is_(True)))
    source = session.scalar(select(Institution).where(
        Institution.code == item.institution_code)) if item else None
    revoked = ca.revoked_serials(session)
    out_versions = []
    for v in svc.versions(session, report.id):
        signers = []
        for s, cert, u in session.execute(
                select(ReportSignature, SigningCertificate, User)
                .join(SigningCertificate, SigningCertificate.id == ReportSignature.certificate_id)
                .join(User, User.id == ReportSignature.user_id)
                .where(ReportSignature.version_id == v.id)):
            from cryptography import x509

            from hub.reports.signing import verify_detached

            ok = verify_detached(x509.load_pem_x509_certificate(cert.cert_pem.encode()),
                                 s.algorithm, s.signature, v.canonical.encode("utf-8"))
            rev = revoked.get(cert.serial)
            signers.append({"name": u.display_name or u.username, "role": s.role,
                            "signed_at": _t(s.signed_at), "certificate_serial": cert.serial,
                            "signature_valid": ok,
                            "revoked": rev is not None and rev <= as_utc(s.signed_at)})
        out_versions.append({"number": v.number, "kind": v.kind, "sha256": v.sha256,
                             "pdf_sha256": v.pdf_sha256, "signed_at": _t(v.signed_at),
                             "recognised": v.recognised, "signers": signers})
    valid = bool(out_versions) and all(s["signature_valid"] and not s["revoked"]
                                       for v in out_versions for s in v["signers"])
    return {
        "valid": valid, "report_id": report.id, "status": report.status,
        "institution": lead.name if lead else None,
        "source_institution": source.name if source else None,
        "exam": item.description if item else None,
        "exam_date": item.study_date.isoformat() if item and item.study_date else None,
        "patient": _mask(patient.name if patient else (item.patient_name if item else "")),
        "recognition": report.recognition_code, "versions": out_versions,
    }


@router.get("/verify/ca.pem", summary="Community CA certificates (public)",
            response_class=Response)
def ca_pem(session: SessionDep) -> Response:
    from cryptography.hazmat.primitives import serialization

    pem = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in ca.trust_roots(session))
    return Response(pem, media_type="application/x-pem-file")


@router.get("/verify/crl.pem", summary="Current CRL of the community CA (public)",
            response_class=Response)
def crl_pem(session: SessionDep, ctx: CtxDep) -> Response:
    crl = ca.build_crl(session, ctx.passphrase, utcnow())
    if crl is None:
        raise NotFound("no community CA")
    return Response(crl, media_type="application/pkix-crl")


@router.get("/verify/{code}", summary="Public verification of a report by its QR code")
def verify_code(code: str, request: Request, session: SessionDep) -> Any:
    report = session.scalar(select(Report).where(Report.verify_code == code))
    if report is None or report.current_version == 0:
        raise NotFound("unknown verification code")
    data = _public(session, report)
    audit.record(session, audit.Actor("public", "public", "-", request.client.host
                                      if request.client else ""),
                 "report.verify_public", f"report:{report.id}", {})
    if "text/html" in request.headers.get("accept", ""):
        return HTMLResponse(_html(data))
    return data


@router.post("/verify/{code}/pdf", summary="Check a PDF against the report of this code (public)")
async def verify_code_pdf(code: str, request: Request, session: SessionDep) -> dict[str, Any]:
    from starlette.concurrency import run_in_threadpool

    body = await request.body()
    if len(body) > 20 * 1024 * 1024:
        raise InvalidInput("PDF larger than 20 MB")
    # pyHanko's validator runs its own event loop: keep it (and the DB work) off this one.
    return await run_in_threadpool(_check_pdf, session, code, body)


def _check_pdf(session: Session, code: str, body: bytes) -> dict[str, Any]:
    from hub.reports.verify import validate_pdf

    report = session.scalar(select(Report).where(Report.verify_code == code))
    if report is None or report.current_version == 0:
        raise NotFound("unknown verification code")
    check = validate_pdf(body, ca.trust_roots(session), ca.revoked_serials(session))
    match = session.scalar(select(ReportVersion.number).where(
        ReportVersion.report_id == report.id, ReportVersion.pdf_sha256 == check.sha256))
    data = _public(session, report)
    data["pdf"] = {"intact": check.ok and match is not None, "signature_valid": check.ok,
                   "matches_version": match, "error": check.error,
                   "signatures": [{"signer": s.signer, "summary": s.summary,
                                   "signing_time": _t(s.signing_time)} for s in check.signatures]}
    return data


def _html(d: dict[str, Any]) -> str:
    from html import escape

    rows = "".join(
        f"<tr><td>v{v['number']} {escape(v['kind'])}</td><td>{escape(s['name'])}</td>"
        f"<td>{escape(s['role'])}</td><td>{escape(s['signed_at'] or '')}</td>"
        f"<td>{'有效' if s['signature_valid'] and not s['revoked'] else '无效'}</td></tr>"
        for v in d["versions"] for s in v["signers"])
    verdict = "签名有效 Valid" if d["valid"] else "签名无效 INVALID"
    return (f"<!doctype html><html lang='zh-CN'><meta charset='utf-8'><title>报告验证</title>"
            f"<h1>{verdict}</h1><p>{escape(d['institution'] or '')} · 报告 {d['report_id']} · "
            f"{escape(d['exam'] or '')} · 患者 {escape(d['patient'])} · 状态 "
            f"{escape(d['status'])}</p><table border=1><tr><th>版本</th><th>签名人</th>"
            f"<th>角色</th><th>时间(UTC)</th><th>签名</th></tr>{rows}</table></html>")


# --------------------------------------------------------------------------- recognition


@router.get("/api/patients/{patient_id}/recognised",
            summary="Results recognised now for this patient from any institution (互认)")
def recognised(patient_id: int, session: SessionDep, current: CurrentUser,
               item: str | None = None, at: datetime | None = None) -> list[dict[str, Any]]:
    when = as_utc(at) if at else utcnow()
    rows = recognition_svc.lookup(session, current.actor, patient_id, item, when)
    return [{**r, "exam_at": _t(r["exam_at"]), "verified_at": _t(r["verified_at"]),
             "valid_until": _t(r["valid_until"])} for r in rows]


@router.get("/api/recognition/catalogue", summary="Recognisable items (互认项目目录)")
def get_catalogue(session: SessionDep, _current: CurrentUser) -> list[dict[str, Any]]:
    return [c.__dict__ for c in recognition_svc.catalogue(session)]


@router.put("/api/recognition/catalogue/{code}", summary="Create or change a catalogue item")
def put_catalogue(code: str, body: CatalogueIn, session: SessionDep,
                  current: AdminUser) -> dict[str, Any]:
    if body.kind not in ("imaging", "ecg", "lab"):
        raise InvalidInput("kind must be imaging, ecg or lab")
    item = CatalogueItem(code, body.name, body.scope, body.validity_days, body.kind,
                         body.modality, body.body_part, body.service_code, body.active)
    recognition_svc.upsert_catalogue_item(session, current.actor, item, utcnow())
    return item.__dict__


@router.put("/api/recognition/qc/{institution}", summary="Record an institution's QC period")
def put_qc(institution: str, body: QcIn, session: SessionDep,
           current: AdminUser) -> dict[str, Any]:
    row = recognition_svc.set_qc(session, current.actor, institution, as_utc(body.valid_from),
                                 as_utc(body.valid_until), body.note, utcnow())
    return {"institution": row.institution_code, "valid_from": _t(row.valid_from),
            "valid_until": _t(row.valid_until), "note": row.note}


@router.get("/api/recognition/repeat-reasons", summary="Coded reasons for a repeat exam")
def repeat_reasons(_current: CurrentUser) -> list[dict[str, str]]:
    return [{"code": r.value, "label": label} for r, label in REPEAT_REASON_LABELS.items()]


@router.post("/api/orders/repeat-reason", status_code=201,
             summary="Record why a recognised exam is ordered again")
def post_repeat(body: RepeatIn, session: SessionDep, current: CurrentUser) -> dict[str, Any]:
    row = recognition_svc.record_repeat(session, current.actor, body.patient_id, body.item_code,
                                        body.reason, body.note, body.recognised_report_id,
                                        utcnow())
    return {"id": row.id, "patient_id": row.patient_id, "item_code": row.item_code,
            "reason": row.reason, "note": row.note, "created_at": _t(row.created_at)}


@router.get("/api/stats/recognition", summary="Recognised results and repeats avoided")
def stats_recognition(session: SessionDep, _current: CurrentUser,
                      month: str | None = Query(None, pattern=r"^\d{4}-\d{2}$"),
                      ) -> list[dict[str, Any]]:
    return recognition_svc.stats(session, month)


@router.get("/api/stats/turnaround", summary="On-time rates per institution and specialty")
def stats_turnaround(session: SessionDep, settings: SettingsDep, _current: CurrentUser,
                     date_from: datetime | None = None,
                     date_to: datetime | None = None) -> list[dict[str, Any]]:
    return svc.turnaround_stats(session, settings.turnaround_minutes, utcnow(),
                                as_utc(date_from) if date_from else None,
                                as_utc(date_to) if date_to else None)


# --------------------------------------------------------------------------- critical


@router.get("/api/critical-alerts", summary="Critical results (危急值), lab and report")
def critical_alerts(session: SessionDep, current: CurrentUser, status: str | None = None,
                    source: str | None = None) -> list[dict[str, Any]]:
    return [a.as_dict() for a in critical_svc.list_alerts(session, current.scope, status,
                                                          source)]


@router.post("/api/critical-alerts/{alert_id}/ack", summary="Acknowledge a critical result")
def ack_alert(alert_id: str, session: SessionDep, current: CurrentUser,
              body: Annotated[AckIn | None, Body()] = None) -> dict[str, Any]:
    visible = {a.id for a in critical_svc.list_alerts(session, current.scope, limit=10_000)}
    if alert_id not in visible:
        raise NotFound(f"critical alert {alert_id}")
    view = critical_svc.acknowledge(session, alert_id, current.user.username, current.actor,
                                    utcnow())
    return view.as_dict()


# --------------------------------------------------------------------------- FHIR


@router.get("/api/fhir/DiagnosticReport/{report_id}", summary="FHIR R4 DiagnosticReport")
def fhir_report(report_id: int, request: Request, session: SessionDep,
                current: CurrentUser) -> JSONResponse:
    report = _readable_report(session, report_id, current)
    try:
        body = delivery_svc.fhir_diagnostic_report(session, report,
                                                   str(request.base_url).rstrip("/"))
    except LookupError:
        raise NotFound("report has no signed version yet") from None
    audit.record_read(session, current.actor, "report.fhir", f"report:{report.id}", {})
    return JSONResponse(body, media_type="application/fhir+json")


@router.get("/api/fhir/Binary/{binary_id}", summary="FHIR R4 Binary (the signed PDF)")
def fhir_binary(binary_id: int, request: Request, session: SessionDep,
                current: CurrentUser) -> Response:
    version = session.get(ReportVersion, binary_id)
    if version is None:
        raise NotFound(f"Binary {binary_id}")
    _readable_report(session, version.report_id, current)
    audit.record_read(session, current.actor, "report.fhir_binary", f"report:{version.report_id}",
                 {"version": version.number})
    if "application/pdf" in request.headers.get("accept", ""):
        return Response(version.pdf, media_type="application/pdf")
    return JSONResponse(delivery_svc.fhir_binary(version), media_type="application/fhir+json")


