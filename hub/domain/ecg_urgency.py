"""ECG measurements → urgency and critical value (危急值) decision. Pure: stdlib only.

Defaults follow the common Chinese critical-value lists for ECG (heart rate ≥ 180 or ≤ 40 bpm,
RR pause ≥ 3 s, QTc ≥ 500 ms, suspected acute ST elevation). Suspected ST elevation uses the
Fourth Universal Definition of Myocardial Infarction (ESC/ACC/AHA/WHF 2018): new J-point
elevation in at least two contiguous leads, ≥ 0.1 mV in every lead but V2–V3, where it is
≥ 0.2 mV in men of 40 or more, ≥ 0.25 mV in men under 40 and ≥ 0.15 mV in women. When the sex
is not known the women's (lowest) threshold applies, and for a man of unknown age the
40-or-more one: a screen for a critical value errs towards a person looking at the trace.
Every threshold is a field of :class:`UrgencyRules`, which services build from configuration
and pass in.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

#: Contiguous lead groups: any two leads of an anatomical group count (inferior; lateral, which
#: joins the high-lateral limb leads to V5–V6); otherwise precordial leads count only when
#: neighbours (V2 and V3, not V2 and V4).
LEAD_GROUPS: tuple[tuple[str, ...], ...] = (("II", "III", "aVF"), ("I", "aVL", "V5", "V6"))
PRECORDIAL: tuple[str, ...] = ("V1", "V2", "V3", "V4", "V5", "V6")
STANDARD_ORDER: tuple[str, ...] = ("I", "II", "III", "aVR", "aVL", "aVF", *PRECORDIAL)


@dataclass(frozen=True)
class UrgencyRules:
    """Thresholds for an ECG critical value; every one configurable."""

    hr_high_bpm: float = 180.0
    hr_low_bpm: float = 40.0
    pause_s: float = 3.0
    qtc_ms: float = 500.0
    qtc_formula: str = "bazett"  # or "fridericia"
    st_mv: float = 0.1
    st_v2_v3_mv: float = 0.2  # men of 40 or more (and men of unknown age)
    st_v2_v3_young_men_mv: float = 0.25  # men under young_men_below_years
    st_v2_v3_women_mv: float = 0.15  # women, and anyone whose sex is not known
    young_men_below_years: float = 40.0
    st_min_contiguous: int = 2

    def v2_v3_limit(self, sex: str | None, age_years: float | None) -> float:
        """The V2–V3 threshold for this patient (see the module's description)."""
        if sex != "M":
            return self.st_v2_v3_women_mv
        if age_years is not None and age_years < self.young_men_below_years:
            return self.st_v2_v3_young_men_mv
        return self.st_v2_v3_mv

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
    sex: str | None = None  # "M", "F"; anything else is unknown
    age_years: float | None = None


@dataclass(frozen=True)
class UrgencyDecision:
    is_critical: bool
    reasons: tuple[str, ...]

    @property
    def reason(self) -> str | None:
        """All reasons in one line for the worklist, or None when nothing is critical."""
        return "; ".join(self.reasons) if self.reasons else None


def st_elevation_leads(st_level_mv: Mapping[str, float], rules: UrgencyRules,
                       sex: str | None = None, age_years: float | None = None) -> list[str]:
    """Leads with J-point elevation over threshold that have an elevated contiguous neighbour,
    in the order of the standard 12 leads."""
    v2_v3 = rules.v2_v3_limit(sex, age_years)

    def elevated(lead: str) -> bool:
        limit = v2_v3 if lead in ("V2", "V3") else rules.st_mv
        value = st_level_mv.get(lead)
        return value is not None and value >= limit

    hits: set[str] = set()
    for group in LEAD_GROUPS:
        up = [lead for lead in group if elevated(lead)]
        if len(up) >= rules.st_min_contiguous:
            hits.update(up)
    run: list[str] = []
    for lead in PRECORDIAL + ("",):
        if lead and elevated(lead):
            run.append(lead)
            continue
        if len(run) >= rules.st_min_contiguous:
            hits.update(run)
        run = []
    return [lead for lead in STANDARD_ORDER if lead in hits]


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
        leads = st_elevation_leads(findings.st_level_mv, rules, findings.sex,
                                   findings.age_years)
        if leads:
            reasons.append(f"suspected ST elevation in {', '.join(leads)}")
    return UrgencyDecision(bool(reasons), tuple(reasons))
