"""Order routes (issue 8): orders for branches without an HIS interface, the modality worklist
a node synchronises, priors, and reconciliation of studies that arrived without an order.

Domain refusals are raised as domain errors and become 4xx in hub/api/errors.py.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, status
from pydantic import BaseModel, Field
from sqlalchemy import select

from hub import audit
from hub.api.deps import (
    CurrentUser,
    CurrentUserInfo,
    OrthancDep,
    SessionDep,
    SettingsDep,
    require,
)
from hub.clock import as_utc, utcnow
from hub.db.order_models import ImagingOrder
from hub.domain.access import Capability, Role
from hub.domain.errors import NotFound, NotPermitted
from hub.domain.orders import (
    OrderControl,
    OrderStatus,
    body_region,
    kind_for_modality,
)
from hub.domain.priority import Priority
from hub.services import orders as svc
from hub.services.patients import PatientRef
from hub.services.worklist import get_item

router = APIRouter(tags=["orders"])

OrderWriter = require(Capability.ORDER_WRITE)
NodeUser = require(Capability.NODE_SYNC)
Reconciler = require(Capability.ORDER_RECONCILE)


class PatientIn(BaseModel):
    local_id: str | None = Field(None, max_length=64, description="The branch's patient ID")
    name: str = Field("", max_length=200, description="DICOM-style family^given, UTF-8")
    birth_date: date | None = None
    sex: str | None = Field(None, pattern="^[MFOU]?$")
    national_id: str | None = Field(None, max_length=32)
    insurance_no: str | None = Field(None, max_length=64)


class OrderCreate(BaseModel):
    institution: str | None = Field(None, max_length=32,
                                    description="Default: the user's institution")
    placer_order_number: str | None = Field(None, max_length=100,
                                            description="Default: assigned (API-<n>)")
    accession_number: str | None = Field(None, max_length=16,
                                         description="Default: assigned by the hub")
    patient: PatientIn
    modality: str = Field(..., min_length=1, max_length=16)
    procedure_code: str = Field("", max_length=64)
    procedure_name: str = Field("", max_length=200)
    body_part: str | None = Field(None, max_length=64)
    scheduled_at: datetime | None = None
    scheduled_station_aet: str = Field("", max_length=16)
    priority: Priority = Priority.ROUTINE
    ordering_clinician: str = Field("", max_length=200)
    reason: str = Field("", max_length=2000)


class CancelIn(BaseModel):
    reason: str = Field("", max_length=500)
    discontinue: bool = Field(False, description="DC (after it started) instead of CA")


class ReconcileIn(BaseModel):
    order_id: int | None = None
    patient_id: int | None = None


class OrderOut(BaseModel):
    id: int
    kind: str
    status: str
    institution: str
    placer_order_number: str
    filler_order_number: str
    accession_number: str
    study_instance_uid: str
    procedure_code: str
    procedure_name: str
    modality: str
    body_part: str | None
    scheduled_at: datetime | None
    scheduled_station_aet: str
    priority: str
    ordering_clinician: str
    reason: str
    patient_id: int | None
    patient_local_id: str | None
    patient_name: str
    worklist_item_id: int | None
    created_at: datetime
    history: list[dict[str, Any]]

    @classmethod
    def build(cls, o: ImagingOrder) -> OrderOut:
        return cls(id=o.id, kind=o.kind, status=o.status, institution=o.institution_code,
                   placer_order_number=o.placer_order_number,
                   filler_order_number=o.filler_order_number,
                   accession_number=o.accession_number, study_instance_uid=o.study_instance_uid,
                   procedure_code=o.procedure_code, procedure_name=o.procedure_name,
                   modality=o.modality, body_part=o.body_part,
                   scheduled_at=as_utc(o.scheduled_at) if o.scheduled_at else None,
                   scheduled_station_aet=o.scheduled_station_aet, priority=o.priority,
                   ordering_clinician=o.ordering_clinician, reason=o.reason,
                   patient_id=o.patient_id, patient_local_id=o.patient_local_id,
                   patient_name=o.patient_name, worklist_item_id=o.worklist_item_id,
                   created_at=as_utc(o.created_at), history=list(o.history or []))


def _own_institution(current: CurrentUserInfo, code: str) -> None:
    # Branch users act for their own institution only; the lead hospital's admin for anyone.
    if not (current.viewer.role == Role.ADMIN and current.viewer.is_lead) and \
            code != current.viewer.institution:
        raise NotPermitted(f"user of {current.viewer.institution} cannot act for {code}")


def _visible_order(session, current: CurrentUserInfo, order_id: int) -> ImagingOrder:
    order = session.get(ImagingOrder, order_id)
    scope = current.scope
    if order is None or (scope.institution is not None
                         and order.institution_code != scope.institution):
        raise NotFound(f"order {order_id} not found")
    return order


@router.get("/api/orders/worklist", summary="Scheduled procedures of a branch (for its node)")
def modality_worklist(session: SessionDep,
                      institution: Annotated[str, Query(min_length=1, max_length=32)],
                      current: CurrentUserInfo = Depends(NodeUser)) -> dict[str, Any]:
    _own_institution(current, institution)
    entries = svc.worklist_entries(session, institution)
    audit.record_read(session, current.actor, "orders.worklist", f"institution:{institution}",
                 {"count": len(entries)})
    return {"institution": institution, "generated_at": utcnow().isoformat(),
            "entries": entries}


@router.post("/api/orders", status_code=status.HTTP_201_CREATED, response_model=OrderOut,
             summary="Place an imaging/ECG order (branches without an HIS interface)")
def create_order(body: OrderCreate, session: SessionDep,
                 current: CurrentUserInfo = Depends(OrderWriter)) -> OrderOut:
    institution = body.institution or current.viewer.institution
    _own_institution(current, institution)
    now = utcnow()
    placer = body.placer_order_number or f"API-{now:%Y%m%d%H%M%S%f}"
    modality = body.modality.strip().upper()
    new = svc.OrderIn(
        control=OrderControl.NEW, kind=kind_for_modality(modality),
        placer_order_number=placer, modality=modality, priority=body.priority,
        accession_number=body.accession_number or "", procedure_code=body.procedure_code,
        procedure_name=body.procedure_name,
        body_part=body.body_part or body_region(body.procedure_code, body.procedure_name),
        # Stored as UTC like every time in the DB: "09:30+08:00" is 01:30 (SQLite keeps no offset).
        scheduled_at=as_utc(body.scheduled_at), scheduled_station_aet=body.scheduled_station_aet,
        ordering_clinician=body.ordering_clinician or current.user.display_name,
        reason=body.reason, patient_name=body.patient.name)
    p = body.patient
    patient = PatientRef(p.local_id, p.name, p.birth_date, p.sex or None, p.national_id,
                         p.insurance_no)
    order = svc.place_order(session, current.actor, institution, "api", patient, new, now)
    return OrderOut.build(order)


@router.get("/api/orders", response_model=list[OrderOut], summary="Orders visible to the user")
def list_orders(session: SessionDep, current: CurrentUser,
                status_: Annotated[OrderStatus | None, Query(alias="status")] = None,
                institution: Annotated[str | None, Query(max_length=32)] = None,
                limit: Annotated[int, Query(ge=1, le=500)] = 100) -> list[OrderOut]:
    stmt = select(ImagingOrder).order_by(ImagingOrder.id.desc()).limit(limit)
    scope_inst = current.scope.institution
    if scope_inst is not None:
        stmt = stmt.where(ImagingOrder.institution_code == scope_inst)
    if institution:
        stmt = stmt.where(ImagingOrder.institution_code == institution)
    if status_ is not None:
        stmt = stmt.where(ImagingOrder.status == status_.value)
    rows = list(session.scalars(stmt))
    audit.record_read(session, current.actor, "orders.list", "orders", {"count": len(rows)})
    return [OrderOut.build(o) for o in rows]


@router.get("/api/orders/{order_id}", response_model=OrderOut, summary="One order")
def get_order(order_id: int, session: SessionDep, current: CurrentUser) -> OrderOut:
    order = _visible_order(session, current, order_id)
    audit.record_read(session, current.actor, "order.view", f"order:{order.id}",
                 {"patient_id": order.patient_id})
    return OrderOut.build(order)


@router.post("/api/orders/{order_id}/cancel", response_model=OrderOut,
             summary="Cancel (CA) or discontinue (DC) an order not yet read")
def cancel_order(order_id: int, body: CancelIn, session: SessionDep,
                 current: CurrentUserInfo = Depends(OrderWriter)) -> OrderOut:
    order = _visible_order(session, current, order_id)
    control = OrderControl.DISCONTINUE if body.discontinue else OrderControl.CANCEL
    svc.change_order(session, current.actor, order, control, utcnow(), note=body.reason)
    return OrderOut.build(order)


@router.get("/api/orders/{order_id}/priors",
            summary="Recognised earlier results of the same body region (any institution)")
def order_priors(order_id: int, session: SessionDep,
                 current: CurrentUser) -> list[dict[str, Any]]:
    order = _visible_order(session, current, order_id)
    out = svc.priors(session, order, utcnow())
    audit.record(session, current.actor, "order.priors", f"order:{order.id}",
                 {"patient_id": order.patient_id, "found": len(out)})
    return out


@router.get("/api/reconciliation", summary="Studies that arrived without a matching order")
def reconciliation(session: SessionDep, current: CurrentUser) -> list[dict[str, Any]]:
    rows = svc.reconciliation_list(session, current.scope.institution)
    audit.record_read(session, current.actor, "reconciliation.list", "reconciliation",
                 {"count": len(rows)})
    return rows


@router.post("/api/reconciliation/{item_id}",
             summary="Give an unmatched study its order or patient (fixed in Orthanc too)")
def reconcile(item_id: int, body: ReconcileIn, session: SessionDep, orthanc: OrthancDep,
              settings: SettingsDep,
              current: CurrentUserInfo = Depends(Reconciler)) -> dict[str, Any]:
    item = get_item(session, item_id, current.scope)
    if body.order_id is not None:
        _visible_order(session, current, body.order_id)
    svc.reconcile(session, orthanc, current.actor, item, utcnow(), settings.turnaround_minutes,
                  order_id=body.order_id, patient_id=body.patient_id)
    order = svc.order_for_item(session, item.id)
    return {"item_id": item.id, "patient_id": item.patient_id,
            "patient_local_id": item.patient_local_id, "patient_name": item.patient_name,
            "accession_number": item.accession_number, "orthanc_id": item.orthanc_id,
            "priority": item.priority, "order_id": order.id if order else None}
