"""Lab result sets of a worklist item, for the viewer's lab view."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel
from sqlalchemy import select

from hub import audit
from hub.api.deps import CurrentUser, SessionDep
from hub.clock import as_utc
from hub.db.lab_models import LabObservation, LabResultSet
from hub.domain.errors import InvalidInput
from hub.domain.worklist import ItemKind
from hub.services.worklist import get_item

router = APIRouter(prefix="/api/lab", tags=["lab"])


class ObservationOut(BaseModel):
    id: int
    code: str
    name: str
    value_type: str
    value: str
    numeric_value: float | None
    units: str
    reference_range: str
    abnormal_flags: list[str]
    result_status: str
    observed_at: datetime | None
    is_critical: bool
    version: int


class ResultSetOut(BaseModel):
    id: int
    service_code: str
    service_name: str
    placer_order_number: str
    filler_order_number: str
    specimen_barcode: str | None
    result_status: str
    observed_at: datetime | None
    reported_at: datetime | None
    is_critical: bool
    verified_at: datetime | None
    verified_by: str | None
    notes: list[Any]
    observations: list[ObservationOut]


class LabResultsOut(BaseModel):
    item_id: int
    result_sets: list[ResultSetOut]


@router.get("/{item_id}/results", response_model=LabResultsOut,
            summary="Every result set of a lab item with its observations (current versions)")
def lab_results(item_id: int, session: SessionDep, current: CurrentUser) -> LabResultsOut:
    item = get_item(session, item_id, current.scope)
    if item.kind != ItemKind.LAB.value:
        raise InvalidInput(f"worklist item {item_id} is {item.kind}, not lab")
    sets = session.scalars(select(LabResultSet).where(LabResultSet.worklist_item_id == item.id)
                           .order_by(LabResultSet.id)).all()
    observations = session.scalars(
        select(LabObservation).where(LabObservation.result_set_id.in_([s.id for s in sets]))
        .order_by(LabObservation.result_set_id, LabObservation.id)).all() if sets else []
    by_set: dict[int, list[ObservationOut]] = {}
    for o in observations:
        by_set.setdefault(o.result_set_id, []).append(ObservationOut(
            id=o.id, code=o.code, name=o.name, value_type=o.value_type, value=o.value,
            numeric_value=o.numeric_value, units=o.units, reference_range=o.reference_range,
            abnormal_flags=list(o.abnormal_flags or []), result_status=o.result_status,
            observed_at=as_utc(o.observed_at), is_critical=o.is_critical, version=o.version))
    audit.record_read(session, current.actor, "lab.view", f"worklist_item:{item.id}",
                 {"patient_id": item.patient_id})
    return LabResultsOut(item_id=item.id, result_sets=[ResultSetOut(
        id=s.id, service_code=s.service_code, service_name=s.service_name,
        placer_order_number=s.placer_order_number, filler_order_number=s.filler_order_number,
        specimen_barcode=s.specimen_barcode, result_status=s.result_status,
        observed_at=as_utc(s.observed_at), reported_at=as_utc(s.reported_at),
        is_critical=s.is_critical, verified_at=as_utc(s.verified_at), verified_by=s.verified_by,
        notes=list(s.notes or []), observations=by_set.get(s.id, [])) for s in sets])
