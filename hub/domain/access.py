"""Who may see which worklist items and what each role may do. Decisions, not HTTP codes."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from hub.domain.priority import Specialty
from hub.domain.signoff import SignoffRules, holds_verify_rank


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


class Capability(enum.StrEnum):
    """An action a role may take. The API checks these (``hub.api.deps.require``) and
    ``GET /api/auth/me`` lists the signed-in user's, so the viewer offers only what the hub allows.
    """

    ORDER_WRITE = "order.write"          # place and cancel orders (branches without an HIS)
    ORDER_RECONCILE = "order.reconcile"  # give a study that arrived without an order its order
    NODE_SYNC = "node.sync"              # a branch node: manifests, origin, modality worklist
    PATIENT_LINK = "patient.link"        # confirm or reject a suggested patient link (MPI)
    REPORT_WRITE = "report.write"        # draft, submit and issue a preliminary report (书写)
    REPORT_VERIFY = "report.verify"      # verify and sign (审核), addenda; also needs a rank
    REPORT_CRITICAL = "report.critical"  # raise a critical result (危急值) from a report
    ADMINISTER = "admin"                 # users, institutions, dead letters, recognition catalogue


_READERS = frozenset(READER_SPECIALTY)

#: Which roles hold each capability: the one table the API's role checks read. Holding a report
#: capability lets a user try; the sign-off rules (hub.domain.signoff) then decide per exam.
CAPABILITY_ROLES: dict[Capability, frozenset[Role]] = {
    Capability.ORDER_WRITE: frozenset({Role.TECHNICIAN, Role.CLINICIAN, Role.ADMIN}),
    Capability.ORDER_RECONCILE: frozenset({Role.TECHNICIAN, Role.ADMIN, Role.RADIOLOGIST}),
    Capability.NODE_SYNC: frozenset({Role.TECHNICIAN, Role.ADMIN}),
    Capability.PATIENT_LINK: frozenset({Role.ADMIN, Role.CLINICIAN, Role.TECHNICIAN}),
    # Readers, each for the specialty their role reads (READER_SPECIALTY).
    Capability.REPORT_WRITE: _READERS,
    Capability.REPORT_VERIFY: _READERS,
    Capability.REPORT_CRITICAL: _READERS,
    Capability.ADMINISTER: frozenset({Role.ADMIN}),
}


def has_capability(role: Role, capability: Capability) -> bool:
    """Whether ``role`` holds ``capability`` according to :data:`CAPABILITY_ROLES`."""
    return Role(role) in CAPABILITY_ROLES[capability]


def user_capabilities(role: Role, rank: str | None,
                      rules: SignoffRules) -> list[Capability]:
    """What a user of ``role`` and ``rank`` may do, in the table's order.

    :data:`Capability.REPORT_VERIFY` also needs a verifying rank (``rules.verify_ranks``):
    residents and trainees write but do not verify. Per-item conditions (specialty, the item's
    institution, the report's state, a valid signing certificate) are decided when acting.
    """
    return [c for c, roles in CAPABILITY_ROLES.items()
            if Role(role) in roles
            and (c != Capability.REPORT_VERIFY or holds_verify_rank(rank, rules))]


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
