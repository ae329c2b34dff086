"""ECG critical-value rules (危急值): pure, table-driven, configurable."""

from __future__ import annotations

import pytest

from hub.domain.ecg_urgency import EcgFindings, UrgencyRules, assess, st_elevation_leads

RULES = UrgencyRules()


@pytest.mark.parametrize(("findings", "critical", "reason_part"), [
    (EcgFindings(heart_rate_bpm=72), False, None),
    (EcgFindings(heart_rate_bpm=180), True, "heart rate 180 bpm ≥ 180"),
    (EcgFindings(heart_rate_bpm=200), True, "heart rate 200"),
    (EcgFindings(heart_rate_bpm=179.4), False, None),
    (EcgFindings(heart_rate_bpm=40), True, "≤ 40"),
    (EcgFindings(heart_rate_bpm=41), False, None),
    (EcgFindings(rr_max_ms=3000), True, "RR pause 3.0 s"),
    (EcgFindings(rr_max_ms=2990), False, None),
    (EcgFindings(qtc_bazett_ms=500), True, "QTc (Bazett) 500 ms"),
    (EcgFindings(qtc_bazett_ms=499, qtc_fridericia_ms=520), False, None),
    (EcgFindings(st_level_mv={"V2": 0.25, "V3": 0.3}), True, "ST elevation in V2, V3"),
    (EcgFindings(st_level_mv={"V2": 0.15, "V3": 0.15}, sex="M", age_years=55), False, None),
    (EcgFindings(st_level_mv={"II": 0.12, "aVF": 0.15}), True, "II, aVF"),
    (EcgFindings(st_level_mv={"I": 0.12, "aVL": 0.15}), True, "I, aVL"),
    (EcgFindings(st_level_mv={"II": 0.12, "aVL": 0.15}), False, None),
    (EcgFindings(st_level_mv={"II": 0.2, "III": 0.2}), True, "II, III"),  # both inferior
    (EcgFindings(st_level_mv={"V2": 0.3, "V4": 0.3}), False, None),  # not neighbours
    (EcgFindings(), False, None),
])
def test_default_rules(findings, critical, reason_part):
    decision = assess(findings, RULES)
    assert decision.is_critical is critical
    if reason_part:
        assert reason_part in decision.reason
    else:
        assert decision.reason is None


def test_every_reason_is_listed():
    d = assess(EcgFindings(heart_rate_bpm=190, qtc_bazett_ms=560), RULES)
    assert len(d.reasons) == 2


def test_thresholds_are_configurable():
    rules = UrgencyRules(hr_high_bpm=150, qtc_ms=550, qtc_formula="fridericia")
    assert assess(EcgFindings(heart_rate_bpm=160), rules).is_critical
    assert not assess(EcgFindings(qtc_bazett_ms=600, qtc_fridericia_ms=540), rules).is_critical
    assert assess(EcgFindings(qtc_fridericia_ms=550), rules).is_critical


def test_unknown_qtc_formula_is_refused():
    with pytest.raises(ValueError):
        UrgencyRules(qtc_formula="hodges")


def test_st_elevation_needs_contiguous_leads():
    assert st_elevation_leads({"V1": 0.2, "V2": 0.1, "V3": 0.25, "V4": 0.15}, RULES) == [
        "V3", "V4"]


MAN_50, MAN_30, MAN, WOMAN, UNKNOWN = ("M", 50), ("M", 30), ("M", None), ("F", 62), (None, None)


@pytest.mark.parametrize(("who", "v2_v3_mv", "critical"), [
    # Fourth Universal Definition of MI: V2-V3 threshold by sex and age.
    (MAN_50, 0.19, False), (MAN_50, 0.2, True),
    (MAN_30, 0.24, False), (MAN_30, 0.25, True),
    (WOMAN, 0.14, False), (WOMAN, 0.15, True),
    # Not known: the most sensitive threshold that could apply.
    (MAN, 0.2, True), (MAN, 0.19, False),
    (UNKNOWN, 0.15, True), (UNKNOWN, 0.14, False),
])
def test_v2_v3_threshold_depends_on_sex_and_age(who, v2_v3_mv, critical):
    sex, age = who
    findings = EcgFindings(st_level_mv={"V2": v2_v3_mv, "V3": v2_v3_mv}, sex=sex, age_years=age)
    assert assess(findings, RULES).is_critical is critical


def test_lateral_limb_and_precordial_leads_are_contiguous():
    assert st_elevation_leads({"I": 0.12, "V6": 0.15}, RULES) == ["I", "V6"]
    assert st_elevation_leads({"aVL": 0.1, "V5": 0.1}, RULES) == ["aVL", "V5"]
    assert st_elevation_leads({"II": 0.2, "V6": 0.2}, RULES) == []  # inferior + lateral


def test_leads_are_named_once_in_standard_order():
    leads = {"V6": 0.2, "V5": 0.2, "aVL": 0.2, "I": 0.2, "III": 0.3, "II": 0.3}
    assert st_elevation_leads(leads, RULES) == ["I", "II", "III", "aVL", "V5", "V6"]


def test_the_v2_v3_thresholds_are_configurable():
    rules = UrgencyRules(st_v2_v3_women_mv=0.2, st_v2_v3_young_men_mv=0.3,
                         young_men_below_years=35)
    assert not assess(EcgFindings(st_level_mv={"V2": 0.18, "V3": 0.18}, sex="F"),
                      rules).is_critical
    assert assess(EcgFindings(st_level_mv={"V2": 0.26, "V3": 0.26}, sex="M", age_years=36),
                  rules).is_critical
    assert not assess(EcgFindings(st_level_mv={"V2": 0.26, "V3": 0.26}, sex="M", age_years=34),
                      rules).is_critical
