"""Turnaround targets per priority and exam type, on-time rates, critical escalation levels."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from hub.domain.turnaround import (
    DEFAULT_TARGETS,
    TurnaroundRecord,
    due_time,
    escalation_level,
    is_on_time,
    is_overdue,
    summarise,
    target_minutes,
)

T0 = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)


@pytest.mark.parametrize(("priority", "kind", "minutes"), [
    ("stat", "ecg", 15), ("stat", "imaging", 30), ("urgent", "ecg", 120),
    ("urgent", "imaging", 120), ("routine", "lab", 1440), ("routine", "imaging", 1440),
])
def test_default_targets(priority, kind, minutes):
    assert target_minutes(priority, kind, DEFAULT_TARGETS) == minutes


def test_stat_ecg_is_due_within_fifteen_minutes():
    assert due_time(T0, "stat", "ecg", DEFAULT_TARGETS) == T0 + timedelta(minutes=15)
    assert is_on_time(T0, T0 + timedelta(minutes=15), "stat", "ecg", DEFAULT_TARGETS)
    assert not is_on_time(T0, T0 + timedelta(minutes=16), "stat", "ecg", DEFAULT_TARGETS)


def test_unknown_priority_raises():
    with pytest.raises(KeyError):
        target_minutes("whenever", "ecg", DEFAULT_TARGETS)


def test_overdue_only_while_unreported():
    later = T0 + timedelta(minutes=31)
    assert is_overdue(T0, None, "stat", "imaging", DEFAULT_TARGETS, later)
    assert not is_overdue(T0, T0 + timedelta(minutes=5), "stat", "imaging", DEFAULT_TARGETS,
                          later)


def test_summary_per_institution_and_specialty():
    now = T0 + timedelta(hours=3)
    recs = [
        TurnaroundRecord("BR01", "radiology", "imaging", "stat", T0, T0 + timedelta(minutes=20)),
        TurnaroundRecord("BR01", "radiology", "imaging", "stat", T0, T0 + timedelta(minutes=45)),
        TurnaroundRecord("BR01", "radiology", "imaging", "urgent", T0, None),
        TurnaroundRecord("BR02", "cardiology", "ecg", "stat", T0, T0 + timedelta(minutes=10)),
        TurnaroundRecord("BR02", "cardiology", "ecg", "routine", T0, None),
    ]
    rad, card = summarise(recs, DEFAULT_TARGETS, now)
    assert (rad.institution, rad.total, rad.on_time, rad.late, rad.open_overdue) == \
        ("BR01", 3, 1, 1, 1)
    assert rad.on_time_rate == 0.5
    assert (card.on_time, card.open_in_time, card.on_time_rate) == (1, 1, 1.0)


@pytest.mark.parametrize(("minutes", "level"), [(0, 0), (9, 0), (10, 1), (25, 2), (200, 3)])
def test_escalation_level_grows_every_interval_up_to_max(minutes, level):
    assert escalation_level(T0, T0 + timedelta(minutes=minutes), 10, 3) == level
