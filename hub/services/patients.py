"""Master patient index: link a branch's local patient ID to one community-wide patient."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from hub.clock import utcnow
from hub.db.bulk import (
    insert_returning_ids,
    insert_rows,
    prefetch_where_in,
    select_where_any,
    select_where_in,
)
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
        patient = Patient(**_new_patient_values(demo, utcnow()))
        session.add(patient)
        session.flush()
    else:
        _fill_gaps(patient, demo)
    if ref.local_id:
        session.add(PatientIdentifier(institution_code=institution_code, local_id=ref.local_id,
                                      patient_id=patient.id))
        session.flush()
    if is_new:
        _suggest_links(session, [(patient.id, demo)], utcnow())
    return patient


def resolve_patients(session: Session,
                     refs: Sequence[tuple[str, PatientRef]]) -> list[int | None]:
    """Batch form of :func:`resolve_patient` for edges that deliver many results at once.

    Returns the community patient id for each ``(institution code, ref)``, with the same rules,
    in a fixed number of statements for the common cases: known local IDs (one query) and new
    patients (one query to rule out national ID / insurance matches, then multi-row INSERTs of
    patients, identifiers and link suggestions). Anything else (a new local ID for a patient
    known by national ID, gaps to fill in a known record, two new refs sharing an identifier)
    goes through :func:`resolve_patient` one by one.
    """
    out: list[int | None] = [None] * len(refs)
    known = _known_local_ids(session, refs)
    one_by_one: list[int] = []
    pending: list[int] = []
    for n, (inst, ref) in enumerate(refs):
        if not ref.local_id and not ref.national_id and not ref.insurance_no:
            continue
        found = known.get((inst, ref.local_id)) if ref.local_id else None
        if found is None:
            pending.append(n)
        elif _gaps(found.name, found.birth_date, found.sex, ref.demographics()):
            one_by_one.append(n)
        else:
            out[n] = found.id
    if pending:
        fresh, later = _split_new(session, [(n, refs[n]) for n in pending])
        one_by_one += later
        for n, patient_id in _create_patients(session, [(n, refs[n]) for n in fresh]).items():
            out[n] = patient_id
    for n in sorted(one_by_one):
        patient = resolve_patient(session, *refs[n])
        out[n] = patient.id if patient else None
    return out


@dataclass(frozen=True)
class _KnownPatient:
    id: int
    name: str
    birth_date: date | None
    sex: str | None


# Module constants so the batch lookup's SQL is built once (hub.db.bulk caches by statement).
_IDENTIFIED_PATIENT = Patient.id == PatientIdentifier.patient_id
_LOCAL_ID = (PatientIdentifier.institution_code, PatientIdentifier.local_id)
_KNOWN_COLUMNS = (*_LOCAL_ID, Patient.id, Patient.name, Patient.birth_date, Patient.sex)


def prefetch_resolve(session: Session, refs: Sequence[tuple[str, PatientRef]]) -> None:
    """Announce the lookup :func:`resolve_patients` starts with (``hub.db.bulk``).

    ``refs`` may be a superset of those later resolved.
    """
    prefetch_where_in(session, _KNOWN_COLUMNS, _LOCAL_ID, _local_id_keys(refs),
                      join_on=_IDENTIFIED_PATIENT)


def _local_id_keys(refs: Sequence[tuple[str, PatientRef]]) -> list[tuple[str, str]]:
    return [(inst, ref.local_id) for inst, ref in refs if ref.local_id]


def _known_local_ids(session: Session, refs: Sequence[tuple[str, PatientRef]]
                     ) -> dict[tuple[str, str], _KnownPatient]:
    rows = select_where_in(session, _KNOWN_COLUMNS, _LOCAL_ID, _local_id_keys(refs),
                           join_on=_IDENTIFIED_PATIENT)
    return {(inst, local): _KnownPatient(pid, name, born, sex)
            for inst, local, pid, name, born, sex in rows}


def _split_new(session: Session, pending: list[tuple[int, tuple[str, PatientRef]]]
               ) -> tuple[list[int], list[int]]:
    """Which refs are new people (created in bulk) and which need the one-by-one rules."""
    demos = {n: ref.demographics() for n, (_inst, ref) in pending}
    national = {d.national_id for d in demos.values() if d.national_id}
    insurance = {d.insurance_no for d in demos.values() if d.insurance_no}
    taken_national: set[str] = set()
    taken_insurance: set[str] = set()
    for nid, ins in select_where_any(session, [Patient.national_id, Patient.insurance_no],
                                     [(Patient.national_id, national),
                                      (Patient.insurance_no, insurance)]):
        if nid:
            taken_national.add(nid)
        if ins:
            taken_insurance.add(ins)
    fresh: list[int] = []
    later: list[int] = []
    claimed: set[tuple[str, ...]] = set()
    for n, (inst, ref) in pending:
        demo = demos[n]
        keys = {key for key, present in ((("local", inst, ref.local_id or ""), ref.local_id),
                                         (("national", demo.national_id or ""), demo.national_id),
                                         (("insurance", demo.insurance_no or ""),
                                          demo.insurance_no)) if present}
        if ((demo.national_id or "") in taken_national
                or (demo.insurance_no or "") in taken_insurance or keys & claimed):
            later.append(n)  # an existing or earlier-in-batch patient: resolve_patient links it
        else:
            claimed |= keys
            fresh.append(n)
    return fresh, later


def _create_patients(session: Session, refs: list[tuple[int, tuple[str, PatientRef]]]
                     ) -> dict[int, int]:
    if not refs:
        return {}
    now = utcnow()
    demos = [ref.demographics() for _n, (_inst, ref) in refs]
    ids = insert_returning_ids(session, Patient.__table__,
                               [_new_patient_values(d, now) for d in demos])
    insert_rows(session, PatientIdentifier.__table__, [
        {"institution_code": inst, "local_id": ref.local_id, "patient_id": pid}
        for (_n, (inst, ref)), pid in zip(refs, ids, strict=True) if ref.local_id])
    _suggest_links(session, list(zip(ids, demos, strict=True)), now)
    return {n: pid for (n, _ref), pid in zip(refs, ids, strict=True)}


def _new_patient_values(demo: Demographics, now: datetime) -> dict[str, Any]:
    return {"name": demo.name, "birth_date": demo.birth_date,
            "sex": (demo.sex or "")[:1].upper() or None, "national_id": demo.national_id,
            "insurance_no": demo.insurance_no, "merged_into_id": None, "created_at": now}


def _suggest_links(session: Session, created: list[tuple[int, Demographics]],
                   now: datetime) -> None:
    """Record name + birth date + sex matches of patients just created, for a person to confirm.

    One candidate query for all of them. A patient is compared with every other patient born
    that day except those created after it in the same batch, as if created one by one.
    """
    dated = [(pid, d) for pid, d in created if d.birth_date and d.name]
    if not dated:
        return
    created_ids = {pid for pid, _d in created}
    candidates = select_where_in(
        session, [Patient.id, Patient.name, Patient.birth_date, Patient.sex, Patient.national_id,
                  Patient.insurance_no], [Patient.birth_date],
        [(d.birth_date,) for _pid, d in dated])
    by_date: dict[date, list[tuple[int, Demographics]]] = {}
    for cid, name, born, sex, nid, ins in candidates:
        by_date.setdefault(born, []).append((cid, Demographics(name, born, sex, nid, ins)))
    rows = []
    for pid, demo in dated:
        for cid, other in by_date.get(demo.birth_date, []):  # type: ignore[arg-type]
            if cid == pid or (cid in created_ids and cid > pid):
                continue
            if match(demo, other) == MatchKind.SUGGESTED:
                rows.append({"patient_id": pid, "candidate_id": cid, "status": "open",
                             "created_at": now})
                logger.info("suggested patient link %s ~ %s", pid, cid)
    insert_rows(session, PatientLinkSuggestion.__table__, rows)


def _gaps(name: str, birth_date: date | None, sex: str | None,
          demo: Demographics) -> dict[str, Any]:
    """What ``demo`` adds to a patient record that lacks it (nothing known is overwritten)."""
    gaps: dict[str, Any] = {}
    if not name and demo.name:
        gaps["name"] = demo.name
    if birth_date is None and demo.birth_date:
        gaps["birth_date"] = demo.birth_date
    if not sex and demo.sex:
        gaps["sex"] = demo.sex[:1].upper()
    return gaps


def _fill_gaps(patient: Patient, demo: Demographics) -> None:
    for column, value in _gaps(patient.name, patient.birth_date, patient.sex, demo).items():
        setattr(patient, column, value)


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
