"""ECG centre routes: upload ECG files, and the samples and page of an ECG item for the viewer."""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, File, Form, HTTPException, Query, Response, UploadFile, status

from ecg_ingest.errors import EcgError, UnsupportedFormat
from hub import audit
from hub.api.deps import CurrentUser, OrthancDep, RulesDep, SessionDep, SettingsDep
from hub.api.schemas import WorklistItemDetail, WorklistItemOut
from hub.clock import utcnow
from hub.db.models import Institution, WorklistItem
from hub.domain.errors import InvalidInput, NotPermitted
from hub.services import ecg as svc
from hub.services import worklist as worklist_svc

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/api/ecg", tags=["ecg"])

#: A 24-hour 3-lead Holter in format 212 is ~100 MB; a resting ECG is well under 2 MB.
MAX_UPLOAD_BYTES = 128 * 1024 * 1024


def ecg_error_status(exc: EcgError) -> int:
    """415 for a format we do not read (e.g. SCP-ECG), 422 for a broken file."""
    return (status.HTTP_415_UNSUPPORTED_MEDIA_TYPE if isinstance(exc, UnsupportedFormat)
            else 422)  # Unprocessable Content (RFC 9110)


def _detail(session: SessionDep, item: WorklistItem) -> WorklistItemDetail:
    inst_name = session.query(Institution.name).filter_by(code=item.institution_code).scalar()
    base = WorklistItemOut.build(item, inst_name, utcnow())
    return WorklistItemDetail(**base.model_dump(), natural_key=item.natural_key,
                              orthanc_id=item.orthanc_id, details=dict(item.details or {}))


@router.post("", response_model=list[WorklistItemDetail], status_code=status.HTTP_201_CREATED,
             summary="Upload ECG file(s): DICOM waveform, HL7 aECG, or WFDB (.hea + signal files)")
def upload_ecg(
    session: SessionDep, current: CurrentUser, orthanc: OrthancDep, rules: RulesDep,
    settings: SettingsDep,
    file: Annotated[list[UploadFile] | None, File(description="ECG file(s)")] = None,
    files: Annotated[list[UploadFile] | None, File(description="ECG file(s), alias")] = None,
    patient_id: Annotated[str | None, Form(max_length=64)] = None,
    patient_name: Annotated[str | None, Form(max_length=200)] = None,
    institution: Annotated[str | None, Form(max_length=32)] = None,
) -> list[WorklistItemDetail]:
    """Store each ECG in the archive and list it for cardiology; the file's patient data wins.

    Branch users upload for their own institution only. Unsupported formats answer 415, broken
    files 422, with the reason in ``detail``; nothing is stored when any file is refused.
    """
    uploads = (file or []) + (files or [])
    if not uploads:
        raise InvalidInput("no file uploaded (multipart field 'file')")
    viewer = current.viewer
    if not viewer.is_lead:
        if institution and institution != viewer.institution:
            raise NotPermitted("a branch user uploads ECGs for their own institution only")
        institution = viewer.institution
    institution = institution or viewer.institution
    blobs: dict[str, bytes] = {}
    total = 0
    for k, up in enumerate(uploads):
        data = up.file.read(MAX_UPLOAD_BYTES + 1 - total)
        total += len(data)
        if total > MAX_UPLOAD_BYTES:
            raise HTTPException(status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
                                f"upload larger than {MAX_UPLOAD_BYTES // 2**20} MiB")
        blobs[up.filename or f"upload-{k}"] = data
    ctx = svc.UploadContext(patient_id=patient_id, patient_name=patient_name,
                            institution=institution)
    try:
        items = svc.ingest_files(session, orthanc, rules, blobs, ctx,
                                 svc.urgency_rules_from_settings(settings))
    except EcgError as exc:
        # The reason goes back to the uploader; file names may carry patient names, so the log
        # keeps only the kind of refusal.
        logger.info("ECG upload refused: %s", exc.__class__.__name__)
        raise HTTPException(ecg_error_status(exc), str(exc)) from None
    for item in items:
        audit.record(session, current.actor, "ecg.upload", f"worklist_item:{item.id}",
                     {"patient_id": item.patient_id, "sop_instance_uid": item.natural_key})
    return [_detail(session, item) for item in items]


def _ecg_item(session: SessionDep, current: CurrentUser, item_id: int) -> WorklistItem:
    item = worklist_svc.get_item(session, item_id, current.scope)
    if item.kind != "ecg":
        raise InvalidInput(f"worklist item {item_id} is not an ECG")
    return item


@router.get("/{item_id}/samples", summary="Leads in mV for the viewer (a window of ≤ 60 s)")
def ecg_samples(
    item_id: int, session: SessionDep, current: CurrentUser, orthanc: OrthancDep,
    start_s: Annotated[float, Query(ge=0)] = 0.0,
    seconds: Annotated[float, Query(gt=0, le=svc.MAX_SAMPLES_WINDOW_S)] = 10.0,
) -> dict:
    item = _ecg_item(session, current, item_id)
    try:
        record = svc.load_record(orthanc, item)
    except EcgError as exc:
        raise HTTPException(ecg_error_status(exc), str(exc)) from None
    audit.record_read(session, current.actor, "ecg.samples", f"worklist_item:{item.id}",
                 {"patient_id": item.patient_id})
    return svc.samples_json(record, start_s, seconds)


def _page(item_id: int, session: SessionDep, current: CurrentUser, orthanc: OrthancDep,
          fmt: str) -> bytes:
    item = _ecg_item(session, current, item_id)
    try:
        body = svc.render_page(orthanc, item, fmt)
    except EcgError as exc:
        raise HTTPException(ecg_error_status(exc), str(exc)) from None
    audit.record_read(session, current.actor, "ecg.page", f"worklist_item:{item.id}",
                 {"patient_id": item.patient_id, "format": fmt})
    return body


@router.get("/{item_id}/page.png", response_class=Response,
            responses={200: {"content": {"image/png": {}}}},
            summary="The 12-lead page (25 mm/s, 10 mm/mV) as PNG")
def ecg_page_png(item_id: int, session: SessionDep, current: CurrentUser,
                 orthanc: OrthancDep) -> Response:
    return Response(_page(item_id, session, current, orthanc, "png"), media_type="image/png")


@router.get("/{item_id}/page.svg", response_class=Response,
            responses={200: {"content": {"image/svg+xml": {}}}},
            summary="The 12-lead page as SVG")
def ecg_page_svg(item_id: int, session: SessionDep, current: CurrentUser,
                 orthanc: OrthancDep) -> Response:
    return Response(_page(item_id, session, current, orthanc, "svg"),
                    media_type="image/svg+xml")
