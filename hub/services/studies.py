"""Imaging studies: follow Orthanc's change feed, record node manifests, decide completeness.

Where a study enters the worklist: :func:`refresh_study` → :func:`hub.intake.enqueue`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ecg_ingest.dicom_writer import ECG_SOP_CLASSES  # waveforms go to the ECG centre
from hub import audit
from hub.clock import utcnow
from hub.db.models import ChangeCursor, Institution, StudyManifest, StudyOrigin, WorklistItem
from hub.domain.names import display_name
from hub.domain.worklist import Event, ItemKind, ReadingState
from hub.intake import IntakeRules, NewItem, enqueue
from hub.orthanc.charset import decode_person_name
from hub.orthanc.client import OrthancClient
from hub.orthanc.errors import OrthancResourceGone, OrthancUnavailable
from hub.services.patients import PatientRef
from hub.services.worklist import apply_event

logger = logging.getLogger(__name__)

CURSOR = "orthanc"
#: Reports and documents stored back into a study are not reading work.
NON_READING_SOP_CLASSES = {
    "1.2.840.10008.5.1.4.1.1.104.1",  # Encapsulated PDF Storage
}


@dataclass
class FollowResult:
    processed: int = 0
    last_seq: int = 0
    done: bool = True
    studies: set[str] = field(default_factory=set)


def _parse_da(value: str | None) -> date | None:
    try:
        return datetime.strptime((value or "").strip()[:8], "%Y%m%d").date()
    except ValueError:
        return None


def _cursor(session: Session) -> ChangeCursor:
    cur = session.scalar(
        select(ChangeCursor).where(ChangeCursor.name == CURSOR).with_for_update()
    )
    if cur is None:
        cur = ChangeCursor(name=CURSOR, last_seq=0, updated_at=utcnow())
        session.add(cur)
        session.flush()
    return cur


def follow_changes(session: Session, client: OrthancClient, rules: IntakeRules,
                   limit: int = 200) -> FollowResult:
    """Process one page of Orthanc's ``/changes`` after the stored cursor.

    The cursor moves in the same transaction as the worklist updates, so a worker killed half way
    redoes the page and :func:`enqueue`'s natural key keeps that from duplicating anything.
    """
    cur = _cursor(session)
    page = client.changes(cur.last_seq, limit)
    touched: dict[str, bool] = {}  # orthanc study id -> a new instance arrived
    for change in page.get("Changes", []):
        kind, rid = change.get("ChangeType"), change.get("ID")
        if kind in ("NewStudy", "StableStudy"):
            touched.setdefault(rid, False)
        elif kind == "NewInstance":
            try:
                study_id = client.get_json(f"/instances/{rid}/study")["ID"]
            except OrthancResourceGone:
                continue
            touched[study_id] = True
    result = FollowResult(processed=len(page.get("Changes", [])), done=bool(page.get("Done")))
    for study_id, new_instance in touched.items():
        try:
            # A savepoint per study: one that cannot be described must neither leave half its
            # rows behind nor hold back the cursor for every study after it.
            with session.begin_nested():
                refresh_study(session, client, rules, study_id, saw_new_instance=new_instance)
            result.studies.add(study_id)
        except OrthancResourceGone:
            logger.info("study %s vanished from Orthanc before it was described", study_id)
        except OrthancUnavailable:
            raise
        except Exception as exc:  # noqa: BLE001 - flagged for a person, logged with traceback
            logger.exception("Orthanc study %s could not be described", study_id)
            _flag_undescribed(session, rules, study_id, exc)
    cur.last_seq = int(page.get("Last", cur.last_seq))
    cur.updated_at = utcnow()
    result.last_seq = cur.last_seq
    return result


def _flag_undescribed(session: Session, rules: IntakeRules, orthanc_study_id: str,
                      exc: Exception) -> None:
    """List a study we could not read, so a person resolves it instead of it vanishing."""
    enqueue(session, NewItem(
        kind=ItemKind.IMAGING, natural_key=f"orthanc:{orthanc_study_id}", institution_code=None,
        patient=PatientRef(local_id=None), orthanc_id=orthanc_study_id,
        flags=[f"study could not be described ({type(exc).__name__}): see the hub log"],
    ), rules)


def _institution_for(session: Session, study_uid: str, remote_aet: str | None
                     ) -> tuple[str | None, list[str]]:
    origin = session.get(StudyOrigin, study_uid)
    if origin is not None:
        return origin.institution_code, []
    if remote_aet:
        for inst in session.scalars(select(Institution)):
            if remote_aet in (inst.ae_titles or []):
                return inst.code, []
        return None, [f"unknown AE title {remote_aet!r}"]
    return None, ["sending AE title unknown"]


def refresh_study(session: Session, client: OrthancClient, rules: IntakeRules,
                  orthanc_study_id: str, saw_new_instance: bool = False) -> WorklistItem | None:
    """Describe one Orthanc study and bring its worklist item up to date."""
    study = client.study(orthanc_study_id)
    tags: dict[str, Any] = study.get("MainDicomTags", {})
    ptags: dict[str, Any] = study.get("PatientMainDicomTags", {})
    study_uid = tags.get("StudyInstanceUID") or f"orthanc:{orthanc_study_id}"
    instances = client.study_instances(orthanc_study_id)
    if not instances:
        return None
    first = instances[0]["ID"]
    sop_class = client.instance_metadata(first, "SopClassUid")
    if sop_class in NON_READING_SOP_CLASSES:
        return None
    if sop_class in ECG_SOP_CLASSES:
        from hub.services import ecg  # the ECG centre owns waveform objects

        for inst in instances:
            ecg.ingest_from_orthanc_instance(session, client, rules, inst["ID"])
        return None

    series = client.get_json(f"/studies/{orthanc_study_id}/series")
    modalities = sorted({s["MainDicomTags"].get("Modality", "") for s in series} - {""})
    body_parts = sorted({s["MainDicomTags"].get("BodyPartExamined", "") for s in series} - {""})
    raw_name = client.instance_raw_value(first, "0010-0010")
    charset = client.instance_raw_value(first, "0008-0005")
    dicom_name = decode_person_name(raw_name, charset) if raw_name else ptags.get("PatientName", "")
    remote_aet = client.instance_metadata(first, "RemoteAET")
    institution, flags = _institution_for(session, study_uid, remote_aet)

    item = enqueue(session, NewItem(
        kind=ItemKind.IMAGING,
        natural_key=study_uid,
        institution_code=institution,
        patient=PatientRef(
            local_id=(ptags.get("PatientID") or "").strip() or None,
            name=display_name(dicom_name),
            birth_date=_parse_da(ptags.get("PatientBirthDate")),
            sex=(ptags.get("PatientSex") or "").strip() or None,
        ),
        modality="/".join(modalities) or None,
        body_part="/".join(body_parts) or None,
        accession_number=(tags.get("AccessionNumber") or "").strip() or None,
        study_date=_parse_da(tags.get("StudyDate")),
        description=(tags.get("StudyDescription") or "").strip() or None,
        series_count=len(series),
        instance_count=len(instances),
        orthanc_id=orthanc_study_id,
        flags=flags,
        details={"dicom_patient_name": dicom_name, "source_aet": remote_aet},
    ), rules)
    # The counts describe what Orthanc holds now, even when they fall (an instance deleted).
    item.series_count, item.instance_count = len(series), len(instances)
    session.flush()
    _settle(session, item, bool(study.get("IsStable")), saw_new_instance,
            {i["MainDicomTags"].get("SOPInstanceUID") for i in instances})
    # Scheduled workflow: the accession number ties the study to its order (issue 8).
    from hub.services.orders import match_arriving_study

    match_arriving_study(session, item, utcnow(), rules.turnaround_minutes)
    return item


def _settle(session: Session, item: WorklistItem, is_stable: bool, saw_new_instance: bool,
            held_uids: set[str]) -> None:
    """Apply completeness: ready only when stable *and* the node's manifest is satisfied."""
    state = ReadingState(item.status)
    manifest = session.get(StudyManifest, item.natural_key)
    missing = 0
    if manifest is not None:
        missing = len(set(manifest.instance_uids) - held_uids)
        item.details = {**(item.details or {}), "manifest_missing": missing,
                        "manifest_count": manifest.instance_count}
    # A study a node announced (origin) is complete only with its manifest: Orthanc's "stable"
    # is a quiet-time guess, and the link to the branch may be down with images still queued.
    announced = manifest is None and session.get(StudyOrigin, item.natural_key) is not None
    complete = is_stable and missing == 0 and not announced
    item.is_stable = is_stable
    if state == ReadingState.RECEIVING and complete:
        apply_event(session, item, Event.COMPLETE, audit.SYSTEM,
                    {"instances": item.instance_count})
    elif state in (ReadingState.READY, ReadingState.IN_PROGRESS) and (
        (saw_new_instance and not is_stable) or missing
    ):
        apply_event(session, item, Event.REOPEN, audit.SYSTEM, {"reason": "late instance"})
    elif saw_new_instance and state in (ReadingState.PRELIMINARY, ReadingState.FINAL,
                                        ReadingState.DELIVERED, ReadingState.AMENDED):
        note = "instances arrived after the report"
        if note not in (item.flags or []):
            item.flags = [*(item.flags or []), note]


@dataclass(frozen=True)
class ManifestOutcome:
    status: str
    missing: int


def record_manifest(session: Session, client: OrthancClient, rules: IntakeRules,
                    study_uid: str, institution_code: str, source_aet: str | None,
                    series: dict[str, list[str]]) -> ManifestOutcome:
    """Store what a node sent for a study (replacing an earlier manifest) and re-check it."""
    uids = sorted({uid for lst in series.values() for uid in lst})
    manifest = session.get(StudyManifest, study_uid)
    if manifest is None:
        manifest = StudyManifest(study_instance_uid=study_uid, received_at=utcnow(),
                                 institution_code=institution_code, instance_count=0)
        session.add(manifest)
    manifest.institution_code = institution_code
    manifest.instance_uids = uids
    manifest.series = {k: len(v) for k, v in series.items()}
    manifest.instance_count = len(uids)
    manifest.received_at = utcnow()
    record_origin(session, study_uid, institution_code, source_aet)
    session.flush()
    orthanc_id = client.lookup_study(study_uid)
    if orthanc_id is None:
        return ManifestOutcome(ReadingState.RECEIVING.value, len(uids))
    item = refresh_study(session, client, rules, orthanc_id)
    if item is None:
        return ManifestOutcome("not_for_reading", 0)
    return ManifestOutcome(item.status, int((item.details or {}).get("manifest_missing", 0)))


def record_origin(session: Session, study_uid: str, institution_code: str,
                  source_aet: str | None) -> None:
    """Remember which branch sent a study; the first node to say so wins."""
    if session.get(StudyOrigin, study_uid) is None:
        session.add(StudyOrigin(study_instance_uid=study_uid, institution_code=institution_code,
                                source_aet=source_aet))
        # Locked: the flags are rewritten whole, as the change feed's refresh does.
        item = session.scalar(select(WorklistItem).where(
            WorklistItem.kind == ItemKind.IMAGING.value, WorklistItem.natural_key == study_uid)
            .with_for_update().execution_options(populate_existing=True))
        if item is not None and item.institution_code != institution_code:
            item.institution_code = institution_code
            item.flags = [f for f in (item.flags or []) if "AE title" not in f
                          and "unknown institution" not in f]
