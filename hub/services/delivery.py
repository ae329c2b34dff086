"""Delivery of a signed report back to the requesting institution.

* HL7 ORU^R01 (v2.5.1) with the report text (OBX TX) and the signed PDF (OBX ED, Base64), put on
  the LIS bridge's outbound queue (``lab_outbound``, sent by ``lis_bridge.outbound.deliver_due``
  in order per patient with retries). :func:`sync_acks` turns acknowledged rows into
  ``delivered`` worklist items.
* DICOM Encapsulated PDF stored into the study in Orthanc, so any PACS viewer shows the report.
  The change follower skips this SOP class, so it does not create a new worklist item.
* FHIR R4 DiagnosticReport + Binary, built on request (:func:`fhir_diagnostic_report`).
"""

from __future__ import annotations

import base64
import hashlib
import logging
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from hub import audit
from hub.clock import as_utc, utcnow
from hub.db.lab_models import LabOutbound
from hub.db.models import Institution, Patient, User, WorklistItem
from hub.db.report_models import Report, ReportDelivery, ReportVersion
from hub.domain.signoff import VersionKind
from hub.domain.worklist import Event, ReadingState
from hub.reports.templates import get_template
from hub.services.worklist import apply_event

logger = logging.getLogger(__name__)

ENCAPSULATED_PDF_STORAGE = "1.2.840.10008.5.1.4.1.1.104.1"

#: OBR-25 / OBX-11 result status per version kind (HL7 table 0123 / 0085).
_HL7_STATUS = {VersionKind.PRELIMINARY: "P", VersionKind.FINAL: "F",
               VersionKind.ADDENDUM: "C", VersionKind.AMENDMENT: "C"}


def _esc(text: str) -> str:
    from lis_bridge.acks import escape

    return escape(text or "")


def _tx(text: str) -> str:
    """Multi-line text as repetitions of a TX field (each line escaped)."""
    return "~".join(_esc(line) for line in (text or "").splitlines() or [""])


def _ts(t: datetime | None) -> str:
    return as_utc(t).strftime("%Y%m%d%H%M%S+0000") if t else ""


def build_report_oru(session: Session, item: WorklistItem, report: Report,
                     version: ReportVersion, *, application: str, facility: str,
                     control_id: str, now: datetime) -> str:
    """The ORU^R01 carrying one signed report version; returns ER7 text (segments ``\\r``).

    OBX-1 findings and OBX-2 impression as TX, OBX-3 the signed PDF as ED
    (``^AP^PDF^Base64^<data>``: HL7 2.5.1 ED = source^type^subtype^encoding^data). Base64 uses
    no HL7 delimiter, so the data needs no escaping.
    """
    patient = session.get(Patient, item.patient_id) if item.patient_id else None
    verifier = session.get(User, report.verifier_id) if report.verifier_id else None
    writer = session.get(User, report.writer_id)
    tpl = get_template(version.template)
    status = _HL7_STATUS[VersionKind(version.kind)]
    name = (patient.name if patient else item.patient_name) or ""
    pid = ["PID", "1", "", f"{_esc(item.patient_local_id or '')}^^^{_esc(item.institution_code)}"
           "^MR", "", "^".join(_esc(p) for p in name.split("^")),
           "", patient.birth_date.strftime("%Y%m%d") if patient and patient.birth_date else "",
           (patient.sex or "") if patient else ""]
    accession = _esc(item.accession_number or "")
    filler = f"R{report.id}"
    # With an order (issue 8) the report quotes the placer order number in ORC-2/OBR-2 and the
    # accession in OBR-18, as IHE SWF's RAD-28 expects, so the HIS files it against its order.
    from hub.services.orders import order_for_item

    order = order_for_item(session, item.id)
    placer = accession
    if order is not None:
        placer = "^".join(_esc(p) for p in order.placer_order_number.split("^", 1))
        filler = _esc(order.filler_order_number or order.accession_number)
    service = f"{_esc(tpl.code.upper())}^{_esc(item.description or tpl.name)}^L"
    interpreter = _esc(verifier.username if verifier else writer.username if writer else "")
    segs = [
        "|".join(["MSH", "^~\\&", _esc(application), _esc(facility), "HIS",
                  _esc(item.institution_code), now.strftime("%Y%m%d%H%M%S"), "",
                  "ORU^R01^ORU_R01", control_id, "P", "2.5.1", "", "", "", "", "", "",
                  "UNICODE UTF-8"]),
        "|".join(pid),
        "|".join(["ORC", "RE", placer, filler, "", "CM" if status != "P" else "IP"]),
        "|".join(["OBR", "1", placer, filler, service, "", "", _ts(report.exam_at), "", "",
                  "", "", "", "", "", "", "", "", accession, "", "", "", _ts(version.signed_at),
                  "", item.modality or "", status, "", "", "", "", "", "", interpreter]),
        "|".join(["OBX", "1", "TX", f"FINDINGS^{_esc(tpl.findings_label)}^L", "",
                  _tx(version.findings), "", "", "", "", "", status]),
        "|".join(["OBX", "2", "TX", f"IMPRESSION^{_esc(tpl.impression_label)}^L", "",
                  _tx(version.impression), "", "", "", "", "", status]),
    ]
    n = 3
    if version.text:
        segs.append("|".join(["OBX", str(n), "TX", "ADDENDUM^补充报告^L", "", _tx(version.text),
                              "", "", "", "", "", status]))
        n += 1
    pdf_b64 = base64.b64encode(version.pdf).decode("ascii")
    segs.append("|".join(["OBX", str(n), "ED", "PDF^报告PDF^L", "",
                          f"^AP^PDF^Base64^{pdf_b64}", "", "", "", "", "", status]))
    return "\r".join(segs) + "\r"


def _patient_key(item: WorklistItem) -> str:
    # Same keying as lis_bridge.outbound.queue_result so reports and lab results to one patient
    # stay in order in one queue.
    return f"{item.patient_id or 'local:' + (item.patient_local_id or '')}"


def queue_delivery(session: Session, ctx: Any, item: WorklistItem, report: Report,
                   version: ReportVersion, now: datetime) -> list[ReportDelivery]:
    """Queue HL7 and DICOM delivery of a signed version, in the signing transaction.

    HL7 goes on ``lab_outbound`` when the institution has an HIS endpoint; otherwise it is
    recorded as ``skipped`` (and the item stays ``final``). DICOM is attempted right away when
    an Orthanc client is at hand (imaging and ECG items), and left ``pending`` for
    :func:`retry_dicom` if Orthanc does not answer.
    """
    out = []
    lis = ctx.lis
    if lis is not None and item.institution_code in (lis.his_endpoints or {}):
        from hub.services.orders import flush_status_updates, order_for_item
        from lis_bridge.acks import new_control_id

        order = order_for_item(session, item.id)
        if order is not None:
            # Status updates still owed go first: the HIS must not see "in reading" after final.
            flush_status_updates(session, lis, now, order_id=order.id)

        control_id = new_control_id(now)
        message = build_report_oru(session, item, report, version,
                                   application=lis.application, facility=lis.facility,
                                   control_id=control_id, now=now)
        session.add(LabOutbound(
            institution_code=item.institution_code, patient_key=_patient_key(item),
            result_set_id=None, control_id=control_id, message=message, status="pending",
            attempts=0, created_at=now, next_attempt_at=now))
        row = ReportDelivery(report_id=report.id, version_number=version.number, channel="hl7",
                             status="pending", outbound_control_id=control_id,
                             detail=f"queued for {item.institution_code}", created_at=now,
                             updated_at=now)
    else:
        row = ReportDelivery(report_id=report.id, version_number=version.number, channel="hl7",
                             status="skipped", detail=f"no HIS endpoint for "
                             f"{item.institution_code}", created_at=now, updated_at=now)
    session.add(row)
    out.append(row)
    if item.kind in ("imaging", "ecg"):
        drow = ReportDelivery(report_id=report.id, version_number=version.number,
                              channel="dicom", status="pending", detail="", created_at=now,
                              updated_at=now)
        session.add(drow)
        session.flush()
        if ctx.orthanc is not None:
            store_dicom(session, ctx.orthanc, drow, now)
        out.append(drow)
    session.flush()
    return out


def encapsulated_pdf(study_tags: dict[str, Any], patient_tags: dict[str, Any],
                     version: ReportVersion, title: str, now: datetime) -> bytes:
    """A DICOM Encapsulated PDF instance (PS3.3 A.45.1) in the given study; returns Part 10 bytes.

    Patient and study attributes are copied from the study so the PACS files it in the right
    place; a new series (Modality DOC) holds the report.
    """
    from io import BytesIO

    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = ENCAPSULATED_PDF_STORAGE
    sop = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = sop
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SpecificCharacterSet = "ISO_IR 192"  # Orthanc hands names over as UTF-8
    ds.SOPClassUID, ds.SOPInstanceUID = ENCAPSULATED_PDF_STORAGE, sop
    ds.PatientName = patient_tags.get("PatientName", "")
    ds.PatientID = patient_tags.get("PatientID", "")
    ds.PatientBirthDate = patient_tags.get("PatientBirthDate", "")
    ds.PatientSex = patient_tags.get("PatientSex", "")
    ds.StudyInstanceUID = study_tags["StudyInstanceUID"]
    ds.StudyDate = study_tags.get("StudyDate", "")
    ds.StudyTime = study_tags.get("StudyTime", "")
    ds.AccessionNumber = study_tags.get("AccessionNumber", "")
    ds.ReferringPhysicianName = study_tags.get("ReferringPhysicianName", "")
    ds.StudyID = study_tags.get("StudyID", "")
    ds.SeriesInstanceUID = generate_uid()
    ds.Modality = "DOC"
    ds.SeriesNumber = 9000 + version.number
    ds.SeriesDescription = f"{title} v{version.number}"
    ds.Manufacturer = "Yigong Hub"
    ds.ConversionType = "WSD"
    ds.InstanceNumber = 1
    local = as_utc(now)
    ds.ContentDate, ds.ContentTime = local.strftime("%Y%m%d"), local.strftime("%H%M%S")
    ds.AcquisitionDateTime = local.strftime("%Y%m%d%H%M%S")
    ds.BurnedInAnnotation = "YES"
    ds.DocumentTitle = f"{title} v{version.number}"
    ds.ConceptNameCodeSequence = []
    ds.MIMETypeOfEncapsulatedDocument = "application/pdf"
    pdf = version.pdf
    # OB values must have even length; PS3.3 allows one trailing pad byte after %%EOF.
    ds.EncapsulatedDocument = pdf + (b"\x00" if len(pdf) % 2 else b"")
    ds.EncapsulatedDocumentLength = len(pdf)
    buf = BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def _study_id(orthanc: Any, item: WorklistItem) -> str | None:
    if item.kind == "imaging":
        return item.orthanc_id
    if item.kind == "ecg" and item.orthanc_id:
        return orthanc.get_json(f"/instances/{item.orthanc_id}/study").get("ID")
    return None


def store_dicom(session: Session, orthanc: Any, row: ReportDelivery, now: datetime) -> None:
    """Store the version's PDF into its study in Orthanc; the row records the outcome."""
    report = session.get(Report, row.report_id)
    item = session.get(WorklistItem, report.worklist_item_id) if report else None
    version = session.scalar(select(ReportVersion).where(
        ReportVersion.report_id == row.report_id, ReportVersion.number == row.version_number))
    if report is None or item is None or version is None:
        row.status, row.detail = "failed", "report or item vanished"
        return
    try:
        study_id = _study_id(orthanc, item)
        if not study_id:
            row.status, row.detail = "skipped", "item has no study in Orthanc"
            return
        study = orthanc.get_json(f"/studies/{study_id}")
        data = encapsulated_pdf(study.get("MainDicomTags") or {},
                                study.get("PatientMainDicomTags") or {}, version,
                                get_template(version.template).title, now)
        answer = orthanc.upload(data)
        row.orthanc_instance_id = answer.get("ID")
        row.status, row.detail = "sent", f"stored in study {answer.get('ParentStudy')}"
        logger.info("report %s v%s stored as DICOM PDF %s", report.id, version.number,
                    row.orthanc_instance_id)
    except Exception as exc:  # noqa: BLE001 - Orthanc down: keep pending, retried by beat
        row.status, row.detail = "pending", f"{type(exc).__name__}: {exc}"[:2000]
        logger.warning("report %s v%s: DICOM store failed: %s", row.report_id,
                       row.version_number, exc)
    row.updated_at = now


def retry_dicom(session: Session, orthanc: Any, now: datetime | None = None) -> int:
    """Retry pending DICOM deliveries; returns how many are now stored."""
    now = now or utcnow()
    rows = session.scalars(select(ReportDelivery).where(ReportDelivery.channel == "dicom",
                                                        ReportDelivery.status == "pending"))
    done = 0
    for row in rows:
        store_dicom(session, orthanc, row, now)
        done += row.status == "sent"
    return done


def sync_acks(session: Session, actor: audit.Actor = audit.SYSTEM,
              now: datetime | None = None) -> int:
    """Mark HL7 deliveries acknowledged by the HIS; their items become ``delivered``.

    Idempotent; run after each ``deliver_due`` pass (beat). Returns items delivered now.
    Acknowledgement by the HIS also counts as receipt of open critical results of the item
    (HL7 ACK channel of issue 6 §6).
    """
    from hub.services.critical import acknowledge_item_by_hl7

    now = now or utcnow()
    rows = session.execute(
        select(ReportDelivery, LabOutbound).join(
            LabOutbound, LabOutbound.control_id == ReportDelivery.outbound_control_id)
        .where(ReportDelivery.channel == "hl7", ReportDelivery.status == "pending",
               LabOutbound.status.in_(("acked", "dead")))).all()
    delivered = 0
    for row, outbound in rows:
        row.updated_at = now
        if outbound.status == "dead":
            row.status, row.detail = "failed", outbound.last_error or "dead-lettered"
            continue
        row.status = "acked"
        row.detail = f"ACK {outbound.ack_code} at {as_utc(outbound.acked_at).isoformat()}"
        report = session.get(Report, row.report_id)
        # Item locked, then the report re-read: an addendum signed meanwhile (it holds the
        # item) must be seen, or the item would be "delivered" with its newest version unsent.
        item = session.get(WorklistItem, report.worklist_item_id, with_for_update=True,
                           populate_existing=True) if report else None
        if item is None or report is None:
            continue
        session.refresh(report)
        # Only the newest version's ACK delivers; an older version acked late does not.
        if row.version_number == report.current_version and item.status == ReadingState.FINAL:
            apply_event(session, item, Event.DELIVER, actor,
                        {"report": report.id, "version": row.version_number,
                         "control_id": row.outbound_control_id, "ack": outbound.ack_code})
            delivered += 1
        acknowledge_item_by_hl7(session, item, f"HIS:{item.institution_code}", actor, now)
    return delivered


def deliver_and_sync(database_url: str, lis: Any, now: datetime | None = None) -> int:
    """One delivery pass of the outbound queue, then :func:`sync_acks`; for beat and tests."""
    from hub.db.session import session_scope
    from hub.services.orders import flush_status_updates
    from lis_bridge.outbound import deliver_due

    with session_scope(database_url) as session:
        flush_status_updates(session, lis, now or utcnow())
    deliver_due(database_url, lis, now=now)
    with session_scope(database_url) as session:
        return sync_acks(session, now=now)


# --------------------------------------------------------------------------- FHIR R4


_FHIR_STATUS = {VersionKind.PRELIMINARY: "preliminary", VersionKind.FINAL: "final",
                VersionKind.ADDENDUM: "appended", VersionKind.AMENDMENT: "amended"}
_CATEGORY = {"imaging": ("RAD", "Radiology"), "ecg": ("EC", "Electrocardiac"),
             "lab": ("LAB", "Laboratory")}


def fhir_diagnostic_report(session: Session, report: Report, base: str = "") -> dict[str, Any]:
    """FHIR R4 DiagnosticReport for the report's newest signed version.

    Raises:
        LookupError: no signed version yet.
    """
    version = session.scalar(select(ReportVersion).where(
        ReportVersion.report_id == report.id, ReportVersion.number == report.current_version))
    if version is None:
        raise LookupError("no signed version")
    item = session.get(WorklistItem, report.worklist_item_id)
    tpl = get_template(version.template)
    writer = session.get(User, report.writer_id)
    verifier = session.get(User, report.verifier_id) if report.verifier_id else None
    lead = session.scalar(select(Institution).where(Institution.is_lead.is_(True)))
    code, display = _CATEGORY.get(item.kind, ("OTH", "Other"))

    def practitioner(u: User | None) -> list[dict[str, Any]]:
        if u is None:
            return []
        return [{"identifier": {"system": "urn:yigong:user", "value": u.username},
                 "display": u.display_name or u.username}]

    conclusion = version.impression
    if version.text:
        conclusion += "\n补充：" + version.text
    return {
        "resourceType": "DiagnosticReport",
        "id": str(report.id),
        "meta": {"versionId": str(version.number),
                 "lastUpdated": as_utc(version.signed_at).isoformat()},
        "identifier": [{"system": "urn:yigong:report", "value": str(report.id)},
                       {"system": "urn:yigong:verify", "value": report.verify_code}],
        "status": _FHIR_STATUS[VersionKind(version.kind)],
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0074",
                                  "code": code, "display": display}]}],
        "code": {"coding": [{"system": "urn:yigong:report-template", "code": tpl.code,
                             "display": tpl.name}],
                 "text": item.description or tpl.name},
        "subject": {"reference": f"Patient/{item.patient_id}" if item.patient_id else None,
                    "identifier": {"system": f"urn:yigong:mrn:{item.institution_code}",
                                   "value": item.patient_local_id or ""},
                    "display": item.patient_name},
        "effectiveDateTime": as_utc(report.exam_at).isoformat() if report.exam_at else None,
        "issued": as_utc(version.signed_at).isoformat(),
        "performer": ([{"display": lead.name}] if lead else []) + practitioner(writer),
        "resultsInterpreter": practitioner(verifier or writer),
        "conclusion": conclusion,
        "extension": [{"url": "urn:yigong:findings", "valueString": version.findings},
                      {"url": "urn:yigong:mutual-recognition",
                       "valueString": report.recognition_code or ""}],
        "presentedForm": [{"contentType": "application/pdf", "language": "zh-CN",
                           "url": f"{base}/api/fhir/Binary/{version.id}",
                           # R4 Attachment.hash is SHA-1 by definition.
                           "hash": base64.b64encode(hashlib.sha1(version.pdf).digest()
                                                    ).decode("ascii"),
                           "title": f"{tpl.title} v{version.number}",
                           "creation": as_utc(version.signed_at).isoformat()}],
    }


def fhir_binary(version: ReportVersion) -> dict[str, Any]:
    """FHIR R4 Binary with the signed PDF."""
    return {"resourceType": "Binary", "id": str(version.id), "contentType": "application/pdf",
            "data": base64.b64encode(version.pdf).decode("ascii")}
