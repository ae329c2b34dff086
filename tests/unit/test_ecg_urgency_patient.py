"""The ECG's own patient data decide the V2-V3 ST threshold: one trace, three patients."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime
from functools import cache

import pytest

from ecg_ingest.measure import Measurements, measure
from ecg_ingest.record import Lead, PatientInfo
from ecg_ingest.synthetic import synthetic_ecg
from hub.domain.ecg_urgency import UrgencyRules, assess
from hub.services.ecg import findings_of

RECORDED = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)


@cache
def trace() -> Measurements:
    m = measure(synthetic_ecg(75, st_elevation_mv={Lead.V2: 0.2, Lead.V3: 0.2}))
    # Measured at the J point, before the ST segment has fully risen: between the women's
    # threshold (0.15 mV) and the men's (0.2 mV), which is what this test needs.
    assert all(0.15 <= m.st_level_mv[lead] < 0.2 for lead in ("V2", "V3")), m.st_level_mv
    return m


@pytest.mark.parametrize(("sex", "birth", "critical"), [
    ("F", date(1958, 3, 2), True),
    ("M", date(1958, 3, 2), False),
    ("", None, True),  # sex not in the file: the most sensitive threshold
])
def test_the_files_patient_sets_the_v2_v3_threshold(sex, birth, critical):
    record = replace(synthetic_ecg(75, patient=PatientInfo("P1", "张^三", birth, sex)),
                     acquired_at=RECORDED)
    findings = findings_of(trace(), record)
    assert findings.age_years == (68 if birth else None)
    assert assess(findings, UrgencyRules()).is_critical is critical
