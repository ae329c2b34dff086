"""Age in completed years (report headers, ECG thresholds)."""

from __future__ import annotations

from datetime import date

import pytest

from hub.domain.age import age_in_years


@pytest.mark.parametrize(("birth", "on", "years"), [
    (date(1980, 6, 15), date(2026, 6, 14), 45),
    (date(1980, 6, 15), date(2026, 6, 15), 46),
    (date(2000, 2, 29), date(2026, 2, 28), 25),  # a leap-day birthday comes on 1 March
    (date(2000, 2, 29), date(2026, 3, 1), 26),
    (date(2026, 11, 26), date(2026, 11, 26), 0),
    (date(2027, 1, 1), date(2026, 11, 26), None),  # born after the exam: a data error
    (None, date(2026, 11, 26), None),
    (date(1980, 1, 1), None, None),
])
def test_age_in_completed_years(birth, on, years):
    assert age_in_years(birth, on) == years
