"""Lab result rules: critical values (危急值), result and order statuses. Pure: stdlib only.

Rule tables (critical ranges per test code) come in as arguments; services load them from
settings. Nothing here knows about HL7 wire syntax beyond the code tables it names.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass


class ResultStatus(enum.StrEnum):
    """OBX-11 / OBR-25 observation result status (HL7 table 0085, the subset labs send)."""

    PRELIMINARY = "P"
    FINAL = "F"
    CORRECTED = "C"
    CANCELLED = "X"
    RESULTS_ENTERED = "R"  # entered, not verified
    INCOMPLETE = "I"
    DELETED = "D"
    AMENDED = "A"   # OBR-25 only: some, not all, results available
    SCHEDULED = "S"
    ORDER_RECEIVED = "O"

    @classmethod
    def from_hl7(cls, code: str | None, default: ResultStatus) -> ResultStatus:
        """Map a wire code to the enum; an empty or unknown code gives ``default``."""
        try:
            return cls((code or "").strip().upper())
        except ValueError:
            return default


class OrderStatus(enum.StrEnum):
    """Lab order lifecycle. Only moves forward; see :func:`advance_order`."""

    ORDERED = "ordered"
    COLLECTED = "collected"
    RECEIVED = "received"
    RESULTED = "resulted"
    VERIFIED = "verified"
    CANCELLED = "cancelled"


ORDER_RANK: dict[OrderStatus, int] = {
    OrderStatus.ORDERED: 0,
    OrderStatus.COLLECTED: 1,
    OrderStatus.RECEIVED: 2,
    OrderStatus.RESULTED: 3,
    OrderStatus.VERIFIED: 4,
    OrderStatus.CANCELLED: 5,
}


def advance_order(current: OrderStatus | None, reported: OrderStatus) -> OrderStatus:
    """Return the order status after a message reports ``reported``.

    Messages arrive out of order (a collection notice after the result), so a status never moves
    backwards; cancellation wins over anything except a verified result, which is already final.
    """
    if current is None:
        return reported
    current = OrderStatus(current)
    if reported == OrderStatus.CANCELLED:
        return current if current == OrderStatus.VERIFIED else OrderStatus.CANCELLED
    if current == OrderStatus.CANCELLED:
        return current
    return reported if ORDER_RANK[reported] > ORDER_RANK[current] else current


#: OBX-8 abnormal flags (HL7 table 0078) that by themselves mean a critical value.
CRITICAL_FLAGS: frozenset[str] = frozenset({"HH", "LL", "AA", ">", "<"})
#: ``>`` and ``<`` mean "above/below absolute high/low" (off scale) in table 0078 up to v2.6.


@dataclass(frozen=True)
class CriticalRange:
    """Configured critical limits for one test code: a value outside [low, high] is critical.

    Either bound may be None. Raises ValueError if both are None or low > high.
    """

    code: str
    low: float | None = None
    high: float | None = None

    def __post_init__(self) -> None:
        if self.low is None and self.high is None:
            raise ValueError(f"critical range for {self.code!r} needs a low or a high limit")
        if self.low is not None and self.high is not None and self.low > self.high:
            raise ValueError(f"critical range for {self.code!r}: low {self.low} > high {self.high}")


@dataclass(frozen=True)
class CriticalFinding:
    """Why an observation counts as critical, in words a clinician reads."""

    code: str
    reason: str


def assess_critical(
    code: str,
    numeric_value: float | None,
    abnormal_flags: Iterable[str],
    ranges: Mapping[str, CriticalRange],
) -> CriticalFinding | None:
    """Decide whether one observation is a critical value.

    Args:
        code: the observation identifier (OBX-3.1), used to look up ``ranges``.
        numeric_value: the value when the type is numeric (NM/SN), else None.
        abnormal_flags: OBX-8 flags as sent.
        ranges: configured critical ranges keyed by test code.

    Returns:
        A :class:`CriticalFinding` or None when the value is not critical.
    """
    flags = [f.strip().upper() for f in abnormal_flags if f and f.strip()]
    for flag in flags:
        if flag in CRITICAL_FLAGS:
            return CriticalFinding(code, f"{code}: abnormal flag {flag}")
    rule = ranges.get(code)
    if rule is not None and numeric_value is not None and math.isfinite(numeric_value):
        if rule.low is not None and numeric_value < rule.low:
            return CriticalFinding(
                code, f"{code}: {numeric_value:g} below critical low {rule.low:g}"
            )
        if rule.high is not None and numeric_value > rule.high:
            return CriticalFinding(
                code, f"{code}: {numeric_value:g} above critical high {rule.high:g}"
            )
    return None


def parse_ranges(table: Mapping[str, object]) -> dict[str, CriticalRange]:
    """Build the rule table from configuration: ``{"K": [2.8, 6.2], "GLU": [null, 25]}``.

    Raises ValueError on a malformed entry, so bad configuration stops startup.
    """
    out: dict[str, CriticalRange] = {}
    for code, limits in table.items():
        if not isinstance(limits, list | tuple) or len(limits) != 2:
            raise ValueError(f"critical range for {code!r} must be [low, high]")
        low, high = (None if v is None else float(v) for v in limits)
        out[code] = CriticalRange(code, low, high)
    return out
