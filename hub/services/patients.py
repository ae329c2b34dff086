"""Master patient index: link a branch's local patient ID to one community-wide patient."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date

from sqlalchemy import select
from sqlalchemy.orm import Session

from hub.clock import utcnow
from hub.db.models import Patient, PatientIdentifier, PatientLinkSuggestion
from hub.domain.mpi import Demographics, MatchKind, match, normalise_national_id

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PatientRef:
    """Patient as an edge (DICOM, HL7, ECG file, upload) saw it."""

    local_id: str | None
    name: str = ""
    birth_date: date | None = None
    sex: str | None = None
    national_id: str | None = None
    insurance_no: str | None = None

    def demographics(self) -> Demographics:
        return Demographics(self.name, self.birth_date, self.sex,
                            normalise_national_id(self.national_id), self.insurance_no or None)


def resolve_patient(session: Session, institution_code: str, ref: PatientRef) -> Patient | None:
    """Find or create the community patient for ``ref``; None when there is no identifier at all.

    Order: the branch's own local ID link, then national ID, then insurance number (definite
    links); otherwise a new patient, with name + birth date + sex candidates recorded as
    suggestions for a person to confirm.
    """
    if not ref.local_id and not ref.national_id and not ref.insurance_no:
        return None
    demo = ref.demographics()
    if ref.local_id:
        ident = session.scalar(
            select(PatientIdentifier).where(
                PatientIdentifier.institution_code == institution_code,
                PatientIdentifier.local_id == ref.local_id,
            )
        )
        if ident is not None:
            patient = session.get(Patient, ident.patient_id)
            _fill_gaps(patient, demo)
            return patient

    patient = None
    if demo.national_id:
        patient = session.scalar(select(Patient).where(Patient.national_id == demo.national_id))
    if patient is None and demo.insurance_no:
        patient = session.scalar(select(Patient).where(Patient.insurance_no == demo.insurance_no))
    is_new = patient is None
    if patient is None:
        patient = Patient(name=demo.name, birth_date=demo.birth_date,
                          sex=(demo.sex or "")[:1].upper() or None,
                          national_id=demo.national_id, insurance_no=demo.insurance_no,
                          created_at=utcnow())
        session.add(patient)
        session.flush()
    else:
        _fill_gaps(patient, demo)
    if ref.local_id:
        session.add(PatientIdentifier(institution_code=institution_code, local_id=ref.local_id,
                                      patient_id=patient.id))
        session.flush()
    if is_new:
        _suggest_links(session, patient, demo)
    return patient


def _fill_gaps(patient: Patient, demo: Demographics) -> None:
    if not patient.name and demo.name:
        patient.name = demo.name
    if patient.birth_date is None and demo.birth_date:
        patient.birth_date = demo.birth_date
    if not patient.sex and demo.sex:
        patient.sex = demo.sex[:1].upper()


def _suggest_links(session: Session, patient: Patient, demo: Demographics) -> None:
    if not (demo.birth_date and demo.name):
        return
    candidates = session.scalars(
        select(Patient).where(Patient.birth_date == demo.birth_date, Patient.id != patient.id)
    )
    for cand in candidates:
        other = Demographics(cand.name, cand.birth_date, cand.sex, cand.national_id,
                             cand.insurance_no)
        if match(demo, other) == MatchKind.SUGGESTED:
            session.add(PatientLinkSuggestion(patient_id=patient.id, candidate_id=cand.id,
                                              created_at=utcnow()))
            logger.info("suggested patient link %s ~ %s", patient.id, cand.id)


def list_suggestions(session: Session) -> list[PatientLinkSuggestion]:
    return list(session.scalars(
        select(PatientLinkSuggestion).where(PatientLinkSuggestion.status == "open")
        .order_by(PatientLinkSuggestion.id)))


def decide_suggestion(session: Session, suggestion_id: int, accept: bool) -> Patient | None:
    """Confirm (merge the newer patient into the older) or reject a suggested link.

    Returns the surviving patient when accepted. Merging moves the branch identifiers and every
    worklist item, so the history shows one person.
    """
    from hub.db.models import WorklistItem
    from hub.domain.errors import Conflict, NotFound

    sug = session.get(PatientLinkSuggestion, suggestion_id)
    if sug is None:
        raise NotFound(f"link suggestion {suggestion_id} not found")
    if sug.status != "open":
        raise Conflict(f"link suggestion {suggestion_id} was already {sug.status}")
    sug.status = "accepted" if accept else "rejected"
    if not accept:
        return None
    keep, gone = session.get(Patient, sug.candidate_id), session.get(Patient, sug.patient_id)
    if keep.national_id and gone.national_id and keep.national_id != gone.national_id:
        raise Conflict("the two patients have different national IDs")
    for ident in session.scalars(select(PatientIdentifier).where(
            PatientIdentifier.patient_id == gone.id)):
        ident.patient_id = keep.id
    for item in session.scalars(select(WorklistItem).where(WorklistItem.patient_id == gone.id)):
        item.patient_id = keep.id
    national_id, insurance_no = gone.national_id, gone.insurance_no
    for other in session.scalars(select(PatientLinkSuggestion).where(
            PatientLinkSuggestion.status == "open",
            (PatientLinkSuggestion.patient_id == gone.id)
            | (PatientLinkSuggestion.candidate_id == gone.id))):
        other.status = "superseded"
    # The merged record stays (suggestions and the audit trail point at it), emptied.
    gone.national_id = gone.insurance_no = None
    gone.merged_into_id = keep.id
    session.flush()
    keep.national_id = keep.national_id or national_id
    keep.insurance_no = keep.insurance_no or insurance_no
    session.flush()
    logger.info("patient %s merged into %s", gone.id, keep.id)
    return keep
