"""What branch nodes tell the hub about the studies they forward."""

from fastapi import APIRouter, Depends, Path, Response, status

from hub import audit
from hub.api.deps import CurrentUserInfo, OrthancDep, RulesDep, SessionDep, require
from hub.api.schemas import ManifestIn, ManifestOut, OriginIn
from hub.domain.access import Capability, Role
from hub.domain.errors import NotPermitted
from hub.services import studies as svc

router = APIRouter(prefix="/api/studies", tags=["studies"])

UID = Path(pattern=r"^[0-9.]{1,64}$", description="Study Instance UID")
NodeUser = require(Capability.NODE_SYNC)


def _check_institution(current: CurrentUserInfo, code: str) -> None:
    # A branch node speaks only for its own institution.
    if current.viewer.role != Role.ADMIN and code != current.viewer.institution:
        raise NotPermitted(f"user of {current.viewer.institution} cannot send for {code}")


@router.post("/{study_uid}/manifest", response_model=ManifestOut,
             status_code=status.HTTP_202_ACCEPTED,
             summary="A node's list of every instance it forwarded for a study")
def post_manifest(body: ManifestIn, session: SessionDep, client: OrthancDep, rules: RulesDep,
                  study_uid: str = UID,
                  current: CurrentUserInfo = Depends(NodeUser)) -> ManifestOut:
    _check_institution(current, body.institution_code)
    outcome = svc.record_manifest(session, client, rules, study_uid, body.institution_code,
                                  body.source_aet, body.series)
    audit.record(session, current.actor, "study.manifest", f"study:{study_uid}",
                 {"instances": sum(len(v) for v in body.series.values()),
                  "missing": outcome.missing})
    return ManifestOut(status=outcome.status, missing=outcome.missing)


@router.put("/{study_uid}/origin", status_code=status.HTTP_204_NO_CONTENT,
            summary="Record which institution sent a study")
def put_origin(body: OriginIn, session: SessionDep, study_uid: str = UID,
               current: CurrentUserInfo = Depends(NodeUser)) -> Response:
    _check_institution(current, body.institution_code)
    svc.record_origin(session, study_uid, body.institution_code, body.source_aet)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
