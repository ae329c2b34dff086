"""Master patient index rules: when two patient records are the same person.

A national ID (身份证号) or insurance number is a definite match. Name + birth date + sex alone is
only a *suggestion* that a person confirms, because namesakes born the same day are common in a
county.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from datetime import date


class MatchKind(enum.StrEnum):
    DEFINITE = "definite"
    SUGGESTED = "suggested"
    NONE = "none"


@dataclass(frozen=True)
class Demographics:
    name: str
    birth_date: date | None = None
    sex: str | None = None
    national_id: str | None = None
    insurance_no: str | None = None


_ID18 = re.compile(r"^\d{17}[\dX]$")
_WEIGHTS = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
_CHECK = "10X98765432"


def normalise_national_id(value: str | None) -> str | None:
    """Upper-case and strip; None when empty. Returns the ID even if the checksum fails."""
    v = (value or "").strip().upper()
    return v or None


def national_id_is_valid(value: str) -> bool:
    """GB 11643-1999 check digit for an 18-digit resident identity number."""
    if not _ID18.match(value):
        return False
    total = sum(int(d) * w for d, w in zip(value[:17], _WEIGHTS, strict=True))
    return _CHECK[total % 11] == value[17]


def normalise_name(name: str | None) -> str:
    """Compare names without DICOM '^' separators, spaces or case."""
    return re.sub(r"[\s^=]+", "", (name or "")).casefold()


def match(a: Demographics, b: Demographics) -> MatchKind:
    """How sure we are that ``a`` and ``b`` are one person."""
    if a.national_id and b.national_id:
        return MatchKind.DEFINITE if a.national_id == b.national_id else MatchKind.NONE
    if a.insurance_no and b.insurance_no and a.insurance_no == b.insurance_no:
        return MatchKind.DEFINITE
    if (
        a.birth_date and a.birth_date == b.birth_date
        and (a.sex or "").upper()[:1] == (b.sex or "").upper()[:1]
        and normalise_name(a.name) and normalise_name(a.name) == normalise_name(b.name)
    ):
        return MatchKind.SUGGESTED
    return MatchKind.NONE
