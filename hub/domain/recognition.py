"""Mutual recognition (检查检验结果互认): which results count where, and for how long.

A result is recognised for every member of the community when

* it is a final report or a verified lab result of an item in the catalogue (互认项目目录),
* the catalogue item is active and the query time is within its validity window, counted in
  days from the exam (the value may have changed since: a CT stays valid longer than a glucose),
* the issuing institution's quality control (质控) was valid when the exam was done and is still
  valid at the query time ("carries the mark while its institution's QC is valid").

Pure: the service loads the catalogue, the QC periods and the results, and passes ``at``.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta


class RepeatReason(enum.StrEnum):
    """Coded reasons a clinician gives for repeating a recognised exam (重复检查原因)."""

    CONDITION_CHANGED = "condition_changed"
    FAST_CHANGING = "fast_changing"
    BEFORE_INTERVENTION = "before_intervention"
    EMERGENCY = "emergency"
    MEDICO_LEGAL = "medico_legal"
    OTHER = "other"


REPEAT_REASON_LABELS: dict[RepeatReason, str] = {
    RepeatReason.CONDITION_CHANGED: "病情变化",
    RepeatReason.FAST_CHANGING: "检验结果易变",
    RepeatReason.BEFORE_INTERVENTION: "重大手术或治疗前",
    RepeatReason.EMERGENCY: "急诊抢救",
    RepeatReason.MEDICO_LEGAL: "医疗纠纷或司法鉴定",
    RepeatReason.OTHER: "其他",
}


@dataclass(frozen=True)
class CatalogueItem:
    """One recognisable item (互认项目) and how to match results to it."""

    code: str
    name: str
    scope: str
    validity_days: int
    kind: str                      # imaging / ecg / lab
    modality: str | None = None    # imaging: CT, DX, US, ...
    body_part: str | None = None   # imaging: HEAD, CHEST, ABDOMEN
    service_code: str | None = None  # lab: OBR-4.1 of the panel
    active: bool = True

    def __post_init__(self) -> None:
        if self.validity_days <= 0:
            raise ValueError(f"catalogue item {self.code}: validity_days must be positive")


@dataclass(frozen=True)
class QcPeriod:
    """An institution's quality-control accreditation, valid from..until (until exclusive)."""

    institution: str
    valid_from: datetime
    valid_until: datetime

    def covers(self, t: datetime) -> bool:
        return self.valid_from <= t < self.valid_until


@dataclass(frozen=True)
class ResultRef:
    """A final report or verified lab result, reduced to what recognition needs."""

    institution: str
    kind: str
    exam_at: datetime
    modality: str | None = None
    body_part: str | None = None
    service_code: str | None = None
    is_final: bool = True


@dataclass(frozen=True)
class Recognition:
    """The outcome: recognised or not, why, and until when."""

    recognised: bool
    reason: str
    item: CatalogueItem | None = None
    valid_until: datetime | None = None


def _norm(s: str | None) -> str:
    return (s or "").strip().upper()


#: Modality spellings that mean the same exam family for recognition.
_MODALITY_FAMILY = {"CR": "DX", "DR": "DX", "DX": "DX"}


def _same_modality(a: str | None, b: str | None) -> bool:
    fa = _MODALITY_FAMILY.get(_norm(a), _norm(a))
    fb = _MODALITY_FAMILY.get(_norm(b), _norm(b))
    return fa == fb


def match_item(result: ResultRef, catalogue: Iterable[CatalogueItem]) -> CatalogueItem | None:
    """The catalogue item a result belongs to, or None when it is not catalogued."""
    for item in catalogue:
        if item.kind != result.kind:
            continue
        if item.kind == "lab":
            if item.service_code and _norm(item.service_code) == _norm(result.service_code):
                return item
            continue
        if item.modality and not _same_modality(item.modality, result.modality):
            continue
        if item.body_part and _norm(item.body_part) != _norm(result.body_part):
            continue
        return item
    return None


def qc_valid(institution: str, t: datetime, periods: Sequence[QcPeriod]) -> bool:
    """Whether any QC period of ``institution`` covers time ``t``."""
    return any(p.institution == institution and p.covers(t) for p in periods)


def assess(result: ResultRef, item: CatalogueItem | None, qc: Sequence[QcPeriod],
           at: datetime) -> Recognition:
    """Is ``result`` recognised at time ``at``?

    Args:
        result: the result to judge.
        item: its catalogue item (see :func:`match_item`), None when uncatalogued.
        qc: QC periods (any institutions; only the issuer's are used).
        at: the moment of the question (a clinician about to order).
    """
    if item is None:
        return Recognition(False, "not a catalogued recognisable item")
    if not item.active:
        return Recognition(False, f"catalogue item {item.code} is not active", item)
    if not result.is_final:
        return Recognition(False, "result is not final", item)
    valid_until = result.exam_at + timedelta(days=item.validity_days)
    if at < result.exam_at:
        return Recognition(False, "exam is later than the question time", item, valid_until)
    if at >= valid_until:
        return Recognition(False, f"outside its {item.validity_days}-day validity window",
                           item, valid_until)
    if not qc_valid(result.institution, result.exam_at, qc):
        return Recognition(False, f"{result.institution} had no valid QC when examined",
                           item, valid_until)
    if not qc_valid(result.institution, at, qc):
        return Recognition(False, f"{result.institution} QC has lapsed", item, valid_until)
    return Recognition(True, "recognised", item, valid_until)


def repeats_avoided(recognised_results: int, repeat_orders: int) -> int:
    """Exams not repeated: recognised results a clinician looked up minus those repeated anyway."""
    return max(recognised_results - repeat_orders, 0)
