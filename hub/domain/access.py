"""Who may see which worklist items. Returns decisions, not HTTP codes."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from hub.domain.priority import Specialty


class Role(enum.StrEnum):
    ADMIN = "admin"
    TECHNICIAN = "technician"
    RADIOLOGIST = "radiologist"
    CARDIOLOGIST = "cardiologist"
    LAB_PHYSICIAN = "lab_physician"
    CLINICIAN = "clinician"


READER_SPECIALTY: dict[Role, Specialty] = {
    Role.RADIOLOGIST: Specialty.RADIOLOGY,
    Role.CARDIOLOGIST: Specialty.CARDIOLOGY,
    Role.LAB_PHYSICIAN: Specialty.LABORATORY,
}


@dataclass(frozen=True)
class Viewer:
    """The user as the access rules see them."""

    user_id: int
    role: Role
    institution: str
    is_lead: bool


@dataclass(frozen=True)
class Scope:
    """A filter the data layer applies: None means unrestricted on that axis."""

    institution: str | None
    specialty: Specialty | None


def worklist_scope(viewer: Viewer) -> Scope:
    """Branch users see only their institution; lead readers see what their specialty reads."""
    if viewer.role == Role.ADMIN and viewer.is_lead:
        return Scope(None, None)
    if not viewer.is_lead:
        return Scope(viewer.institution, None)
    if viewer.role in READER_SPECIALTY:
        return Scope(None, READER_SPECIALTY[viewer.role])
    # Lead-hospital clinicians and technicians: their own institution's patients.
    return Scope(viewer.institution, None)


def can_see(viewer: Viewer, institution: str, specialty: Specialty) -> bool:
    scope = worklist_scope(viewer)
    return (scope.institution is None or scope.institution == institution) and (
        scope.specialty is None or scope.specialty == specialty
    )
