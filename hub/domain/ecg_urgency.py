"""ECG measurements → urgency and critical value (危急值) decision. Pure: stdlib only.

Defaults follow the common Chinese critical-value lists for ECG (heart rate ≥ 180 or ≤ 40 bpm,
RR pause ≥ 3 s, QTc ≥ 500 ms, suspected acute ST elevation). Suspected ST elevation uses the
ESC/AHA shape: J-point elevation in at least two contiguous leads, ≥ 0.2 mV in V2–V3 and
≥ 0.1 mV elsewhere. Every threshold is a field of :class:`UrgencyRules`, which services build
from configuration and pass in.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

#: Contiguous lead groups: any two leads of an anatomical limb group (inferior, high lateral)
#: count; precordial leads count only when neighbours (V2 and V3, not V2 and V4).
LIMB_GROUPS: tuple[tuple[str, ...], ...] = (("II", "III", "aVF"), ("I", "aVL"))
PRECORDIAL: tuple[str, ...] = ("V1", "V2", "V3", "V4", "V5", "V6")


@dataclass(frozen=True)
class UrgencyRules:
    """Thresholds for an ECG critical value; every one configurable."""

    hr_high_bpm: float = 180.0
    hr_low_bpm: float = 40.0
    pause_s: float = 3.0
    qtc_ms: float = 500.0
    qtc_formula: str = "bazett"  # or "fridericia"
    st_mv: float = 0.1
    st_v2_v3_mv: float = 0.2
    st_min_contiguous: int = 2

    def __post_init__(self) -> None:
        if self.qtc_formula not in ("bazett", "fridericia"):
            raise ValueError(f"qtc_formula must be 'bazett' or 'fridericia', not "
                             f"{self.qtc_formula!r}")


@dataclass(frozen=True)
class EcgFindings:
    """The measurements the rules look at (plain numbers; None = not measured)."""

    heart_rate_bpm: float | None = None
    rr_max_ms: float | None = None
    qtc_bazett_ms: float | None = None
    qtc_fridericia_ms: float | None = None
    st_level_mv: Mapping[str, float] | None = None


@dataclass(frozen=True)
class UrgencyDecision:
    is_critical: bool
    reasons: tuple[str, ...]

    @property
    def reason(self) -> str | None:
        """All reasons in one line for the worklist, or None when nothing is critical."""
        return "; ".join(self.reasons) if self.reasons else None


def st_elevation_leads(st_level_mv: Mapping[str, float], rules: UrgencyRules) -> list[str]:
    """Leads with J-point elevation over threshold that have an elevated contiguous neighbour."""
    def elevated(lead: str) -> bool:
        limit = rules.st_v2_v3_mv if lead in ("V2", "V3") else rules.st_mv
        value = st_level_mv.get(lead)
        return value is not None and value >= limit

    hits: list[str] = []
    for group in LIMB_GROUPS:
        up = [lead for lead in group if elevated(lead)]
        if len(up) >= rules.st_min_contiguous:
            hits.extend(up)
    run: list[str] = []
    for lead in PRECORDIAL + ("",):
        if lead and elevated(lead):
            run.append(lead)
            continue
        if len(run) >= rules.st_min_contiguous:
            hits.extend(run)
        run = []
    return hits


def assess(findings: EcgFindings, rules: UrgencyRules) -> UrgencyDecision:
    """Decide whether an ECG is a critical value, with every reason that applies."""
    reasons: list[str] = []
    hr = findings.heart_rate_bpm
    if hr is not None and hr >= rules.hr_high_bpm:
        reasons.append(f"heart rate {hr:.0f} bpm ≥ {rules.hr_high_bpm:g}")
    if hr is not None and hr <= rules.hr_low_bpm:
        reasons.append(f"heart rate {hr:.0f} bpm ≤ {rules.hr_low_bpm:g}")
    if findings.rr_max_ms is not None and findings.rr_max_ms >= rules.pause_s * 1000:
        reasons.append(f"RR pause {findings.rr_max_ms / 1000:.1f} s ≥ {rules.pause_s:g} s")
    qtc = (findings.qtc_bazett_ms if rules.qtc_formula == "bazett"
           else findings.qtc_fridericia_ms)
    if qtc is not None and qtc >= rules.qtc_ms:
        reasons.append(f"QTc ({rules.qtc_formula.capitalize()}) {qtc:.0f} ms ≥ "
                       f"{rules.qtc_ms:g} ms")
    if findings.st_level_mv:
        leads = st_elevation_leads(findings.st_level_mv, rules)
        if leads:
            reasons.append(f"suspected ST elevation in {', '.join(leads)}")
    return UrgencyDecision(bool(reasons), tuple(reasons))
