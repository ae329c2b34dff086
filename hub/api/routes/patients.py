from fastapi import APIRouter
from sqlalchemy import select

from hub import audit
from hub.api.deps import CurrentUser, SessionDep
from hub.api.schemas import PatientOut, WorklistItemOut
from hub.clock import utcnow
from hub.db.models import Institution, Patient, PatientIdentifier
from hub.domain.access import can_see
from hub.domain.errors import NotFound
from hub.domain.priority import Specialty
from hub.services.worklist import patient_history

router = APIRouter(prefix="/api/patients", tags=["patients"])


@router.get("/{patient_id}", response_model=PatientOut,
            summary="A community patient with results from every institution")
def get_patient(patient_id: int, session: SessionDep, current: CurrentUser) -> PatientOut:
    patient = session.get(Patient, patient_id)
    if patient is None:
        raise NotFound(f"patient {patient_id} not found")
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
    audit.record(session, current.actor, "patient.view", f"patient:{patient_id}")
    return PatientOut(
        id=patient.id, name=patient.name, birth_date=patient.birth_date, sex=patient.sex,
        identifiers=[{"institution": i.institution_code, "local_id": i.local_id} for i in idents],
        history=history,
    )
