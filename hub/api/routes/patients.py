from fastapi import APIRouter, Depends
from pydantic import BaseModel
from sqlalchemy import select

from hub import audit
from hub.api.deps import CurrentUser, CurrentUserInfo, SessionDep, require
from hub.api.schemas import PatientOut, WorklistItemOut
from hub.clock import utcnow
from hub.db.models import Institution, Patient, PatientIdentifier, PatientLinkSuggestion
from hub.domain.access import Capability, can_see
from hub.domain.errors import NotFound
from hub.domain.priority import Specialty
from hub.services.patients import decide_suggestion, list_suggestions
from hub.services.worklist import patient_history

router = APIRouter(prefix="/api/patients", tags=["patients"])
LinkAdmin = require(Capability.PATIENT_LINK)


class LinkDecision(BaseModel):
    accept: bool


class LinkSuggestionOut(BaseModel):
    id: int
    patient_id: int
    candidate_id: int
    status: str


@router.get("/link-suggestions", response_model=list[LinkSuggestionOut],
            summary="Patients that may be one person (same name, birth date, sex)")
def link_suggestions(session: SessionDep,
                     current: CurrentUserInfo = Depends(LinkAdmin)) -> list[LinkSuggestionOut]:
    audit.record(session, current.actor, "patient.link_suggestions", "patients")
    return [LinkSuggestionOut(id=s.id, patient_id=s.patient_id, candidate_id=s.candidate_id,
                              status=s.status) for s in list_suggestions(session)]


@router.post("/link-suggestions/{suggestion_id}", response_model=LinkSuggestionOut,
             summary="Confirm (merge) or reject a suggested patient link")
def decide_link(suggestion_id: int, body: LinkDecision, session: SessionDep,
                current: CurrentUserInfo = Depends(LinkAdmin)) -> LinkSuggestionOut:
    kept = decide_suggestion(session, suggestion_id, body.accept)
    audit.record(session, current.actor, "patient.link_decided", f"suggestion:{suggestion_id}",
                 {"accept": body.accept, "kept": kept.id if kept else None})
    s = session.get(PatientLinkSuggestion, suggestion_id)
    return LinkSuggestionOut(id=s.id, patient_id=s.patient_id, candidate_id=s.candidate_id,
                             status=s.status)


@router.get("/{patient_id}", response_model=PatientOut,
            summary="A community patient with results from every institution")
def get_patient(patient_id: int, session: SessionDep, current: CurrentUser) -> PatientOut:
    patient = session.get(Patient, patient_id)
    while patient is not None and patient.merged_into_id is not None:
        patient = session.get(Patient, patient.merged_into_id)
    if patient is None:
        raise NotFound(f"patient {patient_id} not found")
    patient_id = patient.id
    idents = session.scalars(
        select(PatientIdentifier).where(PatientIdentifier.patient_id == patient_id)).all()
    # A branch sees a patient it has its own record of; then it sees the whole history, which
    # is what mutual recognition is for.
    if not current.viewer.is_lead and current.viewer.institution not in {
        i.institution_code for i in idents
    }:
        raise NotFound(f"patient {patient_id} not found")
    now = utcnow()
    names = dict(session.execute(select(Institution.code, Institution.name)).all())
    history = [
        WorklistItemOut.build(item, names.get(item.institution_code), now)
        for item in patient_history(session, patient_id)
        if not current.viewer.is_lead
        or can_see(current.viewer, item.institution_code, Specialty(item.specialty))
        or current.viewer.role not in ("radiologist", "cardiologist", "lab_physician")
    ]
    audit.record_read(session, current.actor, "patient.view", f"patient:{patient_id}")
    return PatientOut(
        id=patient.id, name=patient.name, birth_date=patient.birth_date, sex=patient.sex,
        identifiers=[{"institution": i.institution_code, "local_id": i.local_id} for i in idents],
        history=history,
    )
