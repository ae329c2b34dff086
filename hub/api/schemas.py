"""Request and response bodies. Routes return these, never table rows."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from hub.clock import as_utc
from hub.db.models import WorklistItem
from hub.domain.access import Capability, Role
from hub.domain.worklist import is_overdue


class Token(BaseModel):
    access_token: str
    token_type: str = "bearer"


class Me(BaseModel):
    """The signed-in user and what their role allows (GET /api/auth/me)."""

    username: str
    display_name: str | None = Field(description="None when the account has no display name")
    role: Role
    rank: str | None = Field(description="Professional rank (attending, chief, ...), if recorded")
    institution_code: str
    institution_name: str | None
    is_lead: bool = Field(description="Whether the institution is the lead hospital")
    capabilities: list[Capability] = Field(
        description="What the role (and, for report.verify, the rank) allows; the hub still "
                    "checks every request, and per-item rules (scope, specialty, report state) "
                    "apply when acting")


class ComponentHealth(BaseModel):
    state: str
    detail: str = ""


class Health(BaseModel):
    status: str
    components: dict[str, ComponentHealth]


class PatientBrief(BaseModel):
    id: int | None = Field(description="Community-wide patient ID (None until identified)")
    local_id: str | None = Field(description="The branch's own patient ID")
    name: str


class InstitutionBrief(BaseModel):
    code: str
    name: str | None = None


class WorklistItemOut(BaseModel):
    id: int
    kind: str
    status: str
    priority: str
    specialty: str
    due_at: datetime
    received_at: datetime
    overdue: bool
    institution: InstitutionBrief
    patient: PatientBrief
    accession_number: str | None
    modality: str | None
    body_part: str | None
    description: str | None
    study_date: date | None
    series_count: int
    instance_count: int
    is_critical: bool
    critical_reason: str | None
    flags: list[str]
    claimed_by: int | None
    claim_expires_at: datetime | None

    @classmethod
    def build(cls, item: WorklistItem, institution_name: str | None,
              now: datetime) -> WorklistItemOut:
        due = as_utc(item.due_at)
        # Built from our own rows, so skip validation: this runs 100 times per worklist page.
        return cls.model_construct(
            id=item.id, kind=item.kind, status=item.status, priority=item.priority,
            specialty=item.specialty, due_at=due, received_at=as_utc(item.received_at),
            overdue=is_overdue(item.status, due, now),
            institution=InstitutionBrief.model_construct(code=item.institution_code,
                                                         name=institution_name),
            patient=PatientBrief.model_construct(id=item.patient_id,
                                                 local_id=item.patient_local_id,
                                                 name=item.patient_name),
            accession_number=item.accession_number, modality=item.modality,
            body_part=item.body_part, description=item.description, study_date=item.study_date,
            series_count=item.series_count, instance_count=item.instance_count,
            is_critical=item.is_critical, critical_reason=item.critical_reason,
            flags=list(item.flags or []), claimed_by=item.claimed_by,
            claim_expires_at=as_utc(item.claim_expires_at),
        )


class WorklistItemDetail(WorklistItemOut):
    natural_key: str
    orthanc_id: str | None
    details: dict[str, Any]


class ManifestIn(BaseModel):
    institution_code: str = Field(min_length=1, max_length=32)
    source_aet: str | None = Field(None, max_length=16)
    series: dict[str, list[str]] = Field(description="Series Instance UID → SOP Instance UIDs")


class ManifestOut(BaseModel):
    status: str
    missing: int


class OriginIn(BaseModel):
    institution_code: str = Field(min_length=1, max_length=32)
    source_aet: str | None = Field(None, max_length=16)


class UserIn(BaseModel):
    username: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.@-]+$")
    password: str = Field(min_length=8, max_length=200)
    role: Role
    institution_code: str
    display_name: str = ""
    rank: str | None = None


class UserOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    username: str
    display_name: str
    role: str
    institution_code: str
    rank: str | None
    is_active: bool


class InstitutionIn(BaseModel):
    code: str = Field(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_-]+$")
    name: str = Field(min_length=1, max_length=200)
    is_lead: bool = False
    ae_titles: list[str] = []
    hl7_facilities: list[str] = []


class InstitutionOut(InstitutionIn):
    model_config = ConfigDict(from_attributes=True)

    id: int


class PatientOut(BaseModel):
    id: int
    name: str
    birth_date: date | None
    sex: str | None
    identifiers: list[dict[str, str]]
    history: list[WorklistItemOut]
