from datetime import date, timedelta
from typing import Annotated

from fastapi import APIRouter, Query, Response, status
from pydantic import TypeAdapter

from hub import audit
from hub.api.deps import CurrentUser, SessionDep, SettingsDep
from hub.api.schemas import WorklistItemDetail, WorklistItemOut
from hub.clock import utcnow
from hub.db.models import Institution
from hub.domain.priority import Priority, Specialty
from hub.domain.worklist import ItemKind, ReadingState
from hub.services import worklist as svc

router = APIRouter(prefix="/api/worklist", tags=["worklist"])
WORKLIST_PAGE = TypeAdapter(list[WorklistItemOut])


@router.get("", response_model=list[WorklistItemOut],
            summary="The reading worklist: overdue first, then priority, then due time")
def list_worklist(
    session: SessionDep, current: CurrentUser,
    kind: ItemKind | None = None,
    status_: Annotated[ReadingState | None, Query(alias="status")] = None,
    priority: Priority | None = None,
    institution: Annotated[str | None, Query(max_length=32)] = None,
    specialty: Specialty | None = None,
    date_from: date | None = None,
    date_to: date | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> Response:
    now = utcnow()
    q = svc.WorklistQuery(kind=kind, status=status_, priority=priority, institution=institution,
                          specialty=specialty, date_from=date_from, date_to=date_to,
                          limit=limit, offset=offset)
    rows = svc.list_items(session, q, current.scope, now)
    audit.record_read(session, current.actor, "worklist.list", "worklist",
                 {"count": len(rows), "filters": {k: str(v) for k, v in q.__dict__.items()
                                                  if v is not None}})
    # Serialised here in one pass; FastAPI would validate the 100 models again first.
    return Response(WORKLIST_PAGE.dump_json([WorklistItemOut.build(item, name, now)
                                             for item, name in rows]),
                    media_type="application/json")


def _detail(session, item) -> WorklistItemDetail:
    inst_name = session.query(Institution.name).filter_by(code=item.institution_code).scalar()
    base = WorklistItemOut.build(item, inst_name, utcnow())
    return WorklistItemDetail(**base.model_dump(), natural_key=item.natural_key,
                              orthanc_id=item.orthanc_id, details=dict(item.details or {}))


@router.get("/{item_id}", response_model=WorklistItemDetail,
            summary="One item with its study or result details")
def get_worklist_item(item_id: int, session: SessionDep,
                      current: CurrentUser) -> WorklistItemDetail:
    item = svc.get_item(session, item_id, current.scope)
    audit.record_read(session, current.actor, "worklist.view", f"worklist_item:{item.id}",
                 {"patient_id": item.patient_id})
    return _detail(session, item)


@router.post("/{item_id}/claim", response_model=WorklistItemDetail,
             summary="Claim an item for reading (the claim expires; renew by claiming again)")
def claim(item_id: int, session: SessionDep, current: CurrentUser,
          settings: SettingsDep) -> WorklistItemDetail:
    item = svc.get_item(session, item_id, current.scope)
    svc.claim_item(session, item, current.user.id, current.actor,
                   timedelta(minutes=settings.claim_minutes))
    return _detail(session, item)


@router.post("/{item_id}/release", response_model=WorklistItemDetail,
             status_code=status.HTTP_200_OK, summary="Give a claimed item back to the list")
def release(item_id: int, session: SessionDep, current: CurrentUser) -> WorklistItemDetail:
    item = svc.get_item(session, item_id, current.scope)
    svc.release_item(session, item, current.user.id, current.actor)
    return _detail(session, item)
