"""ECG centre use cases: files or Orthanc instances in → measured, archived, queued ECG items.

    upload (route / CLI) ──► ingest_files ──┐
                                            ├─► measure → urgency → archive in Orthanc → enqueue
    Orthanc change feed ──► ingest_from_orthanc_instance ┘

An ECG that did not arrive as DICOM is converted to a DICOM ECG waveform object and stored in
Orthanc, so the archive holds every ECG; pages are re-rendered from that object on demand.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ecg_ingest.dicom_writer import read_dicom_bytes, to_dicom_bytes
from ecg_ingest.errors import EcgError
from ecg_ingest.measure import Measurements, measure, resample_record
from ecg_ingest.readers import ParsedEcg, read_files
from ecg_ingest.record import EcgRecord, PatientInfo, SourceFormat
from ecg_ingest.render import PageInfo, render_png, render_svg
from hub.clock import utcnow
from hub.db.models import Institution, StudyOrigin, WorklistItem
from hub.domain.age import age_in_years
from hub.domain.ecg_urgency import EcgFindings, UrgencyDecision, UrgencyRules, assess
from hub.domain.errors import InvalidInput
from hub.domain.names import display_name
from hub.domain.priority import Priority
from hub.domain.worklist import ItemKind
from hub.intake import IntakeRules, NewItem, enqueue
from hub.orthanc.client import OrthancClient
from hub.services.patients import PatientRef

logger = logging.getLogger(__name__)

#: Longest window the samples endpoint returns at once (a Holter record is hours long).
MAX_SAMPLES_WINDOW_S = 60.0


@dataclass(frozen=True)
class UploadContext:
    """What the uploader says about the ECG; the file's own patient data wins over it."""

    patient_id: str | None = None
    patient_name: str | None = None
    institution: str | None = None


def urgency_rules_from_settings(settings: Any) -> UrgencyRules:
    """``settings.ecg_urgency`` (a dict of :class:`UrgencyRules` fields) or the defaults."""
    overrides = getattr(settings, "ecg_urgency", None) or {}
    return UrgencyRules(**overrides)


def merge_patient(from_file: PatientInfo, ctx: UploadContext) -> PatientInfo:
    """Patient data in the file wins; the uploader's options only fill gaps."""
    return PatientInfo(
        patient_id=from_file.patient_id or (ctx.patient_id or "").strip() or None,
        name=from_file.name or (ctx.patient_name or "").strip() or None,
        birth_date=from_file.birth_date,
        sex=from_file.sex,
    )


def findings_of(m: Measurements, record: EcgRecord) -> EcgFindings:
    """What the urgency rules look at: the measurements, and the patient's sex and age at the
    recording (the V2–V3 ST threshold depends on them)."""
    sex = (record.patient.sex or "").strip().upper()[:1]
    age = age_in_years(record.patient.birth_date, (record.acquired_at or utcnow()).date())
    return EcgFindings(heart_rate_bpm=m.heart_rate_bpm, rr_max_ms=m.rr_max_ms,
                       qtc_bazett_ms=m.qtc_bazett_ms, qtc_fridericia_ms=m.qtc_fridericia_ms,
                       st_level_mv=m.st_level_mv, sex=sex if sex in ("M", "F") else None,
                       age_years=age)


def ingest_files(session: Session, client: OrthancClient, rules: IntakeRules,
                 files: Mapping[str, bytes], ctx: UploadContext,
                 urgency: UrgencyRules | None = None) -> list[WorklistItem]:
    """Read, measure, archive and enqueue every ECG in an upload.

    Args:
        files: file name → bytes; a WFDB record is its ``.hea`` plus the signal files.
        ctx: patient and institution from the uploader (fills gaps in the file's own data).

    Raises:
        EcgError: a file is unsupported (``UnsupportedFormat``) or unreadable; nothing is stored.
        OrthancError: the archive could not be reached; retry.
    """
    parsed = read_files(files)
    return [ingest_parsed(session, client, rules, p, ctx, urgency) for p in parsed]


def ingest_parsed(session: Session, client: OrthancClient, rules: IntakeRules,
                  parsed: ParsedEcg, ctx: UploadContext,
                  urgency: UrgencyRules | None = None) -> WorklistItem:
    """Archive one parsed ECG in Orthanc (converted to DICOM if needed) and enqueue it."""
    record = parsed.record.with_patient(merge_patient(parsed.record.patient, ctx))
    if parsed.dicom_bytes is not None:
        # The cart's own object is the archive copy; we do not rewrite what it said.
        stored = client.upload(parsed.dicom_bytes)
        sop_uid = record.sop_instance_uid
    else:
        archive = record
        if not 200 <= record.sampling_rate_hz <= 1000:
            archive = resample_record(record, 500)
        dicom = to_dicom_bytes(archive, institution=ctx.institution)
        archived = read_dicom_bytes(dicom)
        sop_uid = archived.sop_instance_uid
        record = _with_uids(record, archived)
        stored = client.upload(dicom)
    if not sop_uid:
        raise InvalidInput("ECG has no SOP Instance UID")
    return _enqueue_ecg(session, rules, record, sop_uid, stored.get("ID"), ctx.institution,
                        [], urgency or UrgencyRules(), parsed.source_name)


def _with_uids(record: EcgRecord, archived: EcgRecord) -> EcgRecord:
    return replace(record, sop_instance_uid=archived.sop_instance_uid,
                   study_instance_uid=archived.study_instance_uid,
                   series_instance_uid=archived.series_instance_uid)


def ingest_from_orthanc_instance(session: Session, client: OrthancClient, rules: IntakeRules,
                                 instance_orthanc_id: str,
                                 urgency: UrgencyRules | None = None) -> WorklistItem:
    """Turn one ECG waveform instance that arrived in Orthanc into a worklist item.

    Called by the change follower for ECG SOP classes. Idempotent on the SOP Instance UID: an
    instance we uploaded ourselves (or saw before) is not measured again. An instance we cannot
    decode still becomes an item, flagged for a person: nothing is dropped.
    """
    tags = client.instance_tags(instance_orthanc_id)
    sop_uid = tags.get("SOPInstanceUID") or f"orthanc:{instance_orthanc_id}"
    existing = session.scalar(select(WorklistItem).where(
        WorklistItem.kind == ItemKind.ECG.value, WorklistItem.natural_key == sop_uid))
    if existing is not None and (existing.details or {}).get("measurements"):
        if not existing.orthanc_id:
            existing.orthanc_id = instance_orthanc_id
        return existing
    institution, inst_flags = _institution_for_instance(session, client, instance_orthanc_id,
                                                        tags.get("StudyInstanceUID"))
    data = client.get_bytes(f"/instances/{instance_orthanc_id}/file")
    try:
        record = read_dicom_bytes(data)
    except EcgError as exc:
        logger.warning("ECG instance %s (SOP %s) unreadable: %s", instance_orthanc_id, sop_uid,
                       exc)
        return enqueue(session, NewItem(
            kind=ItemKind.ECG, natural_key=sop_uid, institution_code=institution,
            patient=PatientRef(local_id=(tags.get("PatientID") or "").strip() or None,
                               name=display_name(tags.get("PatientName") or "")),
            modality="ECG", orthanc_id=instance_orthanc_id, ready=True,
            flags=inst_flags + [f"signal quality: unreadable ECG: {exc}"],
            details={"ecg": {"error": str(exc), "error_type": exc.__class__.__name__}},
        ), rules)
    item = _enqueue_ecg(session, rules, record, sop_uid, instance_orthanc_id, institution,
                        inst_flags, urgency or UrgencyRules(), None)
    accession = str(tags.get("AccessionNumber") or "").strip()
    if accession:
        # An ECG cart that took its patient from the worklist quotes the order (issue 8).
        from hub.services.orders import match_arriving_study

        item.accession_number = item.accession_number or accession[:64]
        match_arriving_study(session, item, utcnow(), rules.turnaround_minutes,
                             reconcile_unmatched=False)
    return item


def _institution_for_instance(session: Session, client: OrthancClient, instance_id: str,
                              study_uid: str | None) -> tuple[str | None, list[str]]:
    if study_uid:
        origin = session.get(StudyOrigin, study_uid)
        if origin is not None:
            return origin.institution_code, []
    aet = client.instance_metadata(instance_id, "RemoteAET")
    if aet:
        for inst in session.scalars(select(Institution)):
            if aet in (inst.ae_titles or []):
                return inst.code, []
        return None, [f"unknown AE title {aet!r}"]
    return None, []


def _enqueue_ecg(session: Session, rules: IntakeRules, record: EcgRecord, sop_uid: str,
                 orthanc_id: str | None, institution: str | None, extra_flags: list[str],
                 urgency: UrgencyRules, source_name: str | None) -> WorklistItem:
    m = measure(record)
    decision = assess(findings_of(m, record), urgency)
    details = ecg_details(record, m, decision, source_name)
    name = display_name(record.patient.name or "") if record.patient.name else ""
    item = enqueue(session, NewItem(
        kind=ItemKind.ECG,
        natural_key=sop_uid,
        institution_code=institution,
        patient=PatientRef(local_id=record.patient.patient_id, name=name,
                           birth_date=record.patient.birth_date, sex=record.patient.sex),
        priority=Priority.STAT if decision.is_critical else Priority.ROUTINE,
        is_critical=decision.is_critical,
        critical_reason=decision.reason,
        flags=extra_flags + list(m.quality_flags),
        details=details,
        modality="ECG",
        description=f"{len(record.leads)}-lead ECG",
        study_date=record.acquired_at.date() if record.acquired_at else None,
        series_count=1,
        instance_count=1,
        orthanc_id=orthanc_id,
        ready=True,
    ), rules)
    session.flush()
    if item.patient_id is not None:
        priors = list(session.scalars(
            select(WorklistItem.id).where(
                WorklistItem.kind == ItemKind.ECG.value,
                WorklistItem.patient_id == item.patient_id,
                WorklistItem.id != item.id,
            ).order_by(WorklistItem.received_at.desc())
        ))
        # Assign a new dict: JSON columns do not track in-place mutation.
        item.details = {**(item.details or {}), "prior_ecg_item_ids": priors}
    logger.info("ECG item %s: sop=%s hr=%s critical=%s flags=%d", item.id, sop_uid,
                None if m.heart_rate_bpm is None else round(m.heart_rate_bpm),
                decision.is_critical, len(item.flags or []))
    return item


def ecg_details(record: EcgRecord, m: Measurements, decision: UrgencyDecision,
                source_name: str | None) -> dict[str, Any]:
    """The JSON the worklist item carries: measurements, method, quality, the recording."""
    md = m.to_dict()
    method = md.pop("method")
    return {
        "measurements": md,
        "method": method,
        "quality_flags": list(m.quality_flags),
        "critical_reasons": list(decision.reasons),
        "ecg": {
            "leads": [str(x) for x in record.leads],
            "derived_leads": sorted(str(x) for x in record.derived_leads),
            "source_labels": list(record.source_labels),
            "sampling_rate_hz": record.sampling_rate_hz,
            "n_samples": record.n_samples,
            "duration_s": round(record.duration_s, 3),
            "units": "mV",
            "source_format": str(record.source_format),
            "source_name": source_name,
            "converted_to_dicom": record.source_format != SourceFormat.DICOM,
            "acquired_at": record.acquired_at.isoformat() if record.acquired_at else None,
            "device": {"manufacturer": record.device.manufacturer,
                       "model": record.device.model, "software": record.device.software},
            "notes": list(record.notes),
            "sop_instance_uid": record.sop_instance_uid,
            "study_instance_uid": record.study_instance_uid,
        },
        "prior_ecg_item_ids": [],
    }


def load_record(client: OrthancClient, item: WorklistItem) -> EcgRecord:
    """The ECG of ``item``, read back from its DICOM object in Orthanc.

    Raises:
        InvalidInput: the item is not an ECG or has no archived object.
        EcgError: the archived object cannot be decoded.
    """
    if item.kind != ItemKind.ECG.value:
        raise InvalidInput(f"worklist item {item.id} is not an ECG")
    if not item.orthanc_id:
        raise InvalidInput(f"ECG item {item.id} has no archived waveform")
    return read_dicom_bytes(client.get_bytes(f"/instances/{item.orthanc_id}/file"))


def samples_json(record: EcgRecord, start_s: float = 0.0,
                 seconds: float | None = None) -> dict[str, Any]:
    """Leads in mV for the viewer: ``{"leads": {"II": [...]}, "sampling_rate_hz": ...}``."""
    fs = record.sampling_rate_hz
    window = min(seconds or MAX_SAMPLES_WINDOW_S, MAX_SAMPLES_WINDOW_S)
    i0 = max(0, int(start_s * fs))
    i1 = min(record.n_samples, i0 + int(window * fs))
    return {
        "units": "mV",
        "sampling_rate_hz": fs,
        "start_s": i0 / fs,
        "n_samples": i1 - i0,
        "total_samples": record.n_samples,
        "duration_s": round(record.duration_s, 3),
        "derived_leads": sorted(str(x) for x in record.derived_leads),
        "leads": {str(lead): [round(float(v), 4) for v in record.signals_mv[k, i0:i1]]
                  for k, lead in enumerate(record.leads)},
    }


def page_info(item: WorklistItem, record: EcgRecord) -> PageInfo:
    return PageInfo(
        patient_name=item.patient_name or "",
        patient_id=item.patient_local_id or "",
        sex=record.patient.sex or "",
        birth_date=record.patient.birth_date.isoformat() if record.patient.birth_date else "",
        institution=item.institution_code or "",
        acquired=record.acquired_at.strftime("%Y-%m-%d %H:%M:%S") if record.acquired_at else "",
        critical_reason=item.critical_reason,
        flags=tuple(item.flags or ()),
    )


def render_page(client: OrthancClient, item: WorklistItem, fmt: str) -> bytes:
    """The 12-lead page of ``item`` as ``png`` or ``svg`` bytes, from the archived object."""
    record = load_record(client, item)
    measured = (item.details or {}).get("measurements")
    info = page_info(item, record)
    if fmt == "png":
        return render_png(record, measured, info)
    if fmt == "svg":
        return render_svg(record, measured, info).encode()
    raise InvalidInput(f"unknown page format {fmt!r}")
