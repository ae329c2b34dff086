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
    (EcgFindings(st_level_mv={"V2": 0.15, "V3": 0.15}), False, None),
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
