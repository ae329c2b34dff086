"""Priority, specialty and due-time rules. Rule tables come in as arguments."""

from __future__ import annotations

import enum
from collections.abc import Mapping

from hub.domain.worklist import ItemKind


class Priority(enum.StrEnum):
    STAT = "stat"
    URGENT = "urgent"
    ROUTINE = "routine"


class Specialty(enum.StrEnum):
    RADIOLOGY = "radiology"
    CARDIOLOGY = "cardiology"
    LABORATORY = "laboratory"


#: Sort rank: lower first.
PRIORITY_RANK: dict[Priority, int] = {Priority.STAT: 0, Priority.URGENT: 1, Priority.ROUTINE: 2}


def specialty_for(kind: ItemKind, modality: str | None,
                  by_modality: Mapping[str, str]) -> Specialty:
    """ECG → cardiology, lab → laboratory, imaging by modality table (default radiology)."""
    if kind == ItemKind.ECG:
        return Specialty.CARDIOLOGY
    if kind == ItemKind.LAB:
        return Specialty.LABORATORY
    for part in (modality or "").replace("\\", "/").split("/"):
        if part.strip().upper() in by_modality:
            return Specialty(by_modality[part.strip().upper()])
    return Specialty.RADIOLOGY


def priority_from_hl7(code: str | None) -> Priority:
    """HL7 priority codes (TQ1-9 / OBR-5 / ORC-7): S = stat, A/ASAP = urgent, else routine."""
    c = (code or "").strip().upper()
    if c == "S":
        return Priority.STAT
    if c in ("A", "ASAP", "U"):
        return Priority.URGENT
    return Priority.ROUTINE


def priority_from_dicom(code: str | None) -> Priority:
    """DICOM RequestedProcedurePriority / ScheduledProcedureStepPriority."""
    c = (code or "").strip().upper()
    if c == "STAT":
        return Priority.STAT
    if c in ("HIGH", "URGENT"):
        return Priority.URGENT
    return Priority.ROUTINE
