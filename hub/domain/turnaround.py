"""Turnaround targets (报告时限) per priority and exam type, and on-time rates.

Targets are a table of minutes keyed ``"<priority>:<kind>"`` with a fallback keyed
``"<priority>"``: the defaults make a STAT ECG due in 15 minutes, STAT imaging in 30, anything
urgent in 2 hours and anything routine in 24 hours. The table comes from settings.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

DEFAULT_TARGETS: dict[str, int] = {
    "stat:ecg": 15,
    "stat:imaging": 30,
    "stat:lab": 30,
    "stat": 30,
    "urgent": 120,
    "routine": 1440,
}


def target_minutes(priority: str, kind: str, targets: Mapping[str, int]) -> int:
    """Minutes allowed from receipt to a final report.

    Raises:
        KeyError: neither ``priority:kind`` nor ``priority`` is in the table.
    """
    key = f"{priority}:{kind}"
    if key in targets:
        return targets[key]
    return targets[priority]


def due_time(received_at: datetime, priority: str, kind: str,
             targets: Mapping[str, int]) -> datetime:
    """When the final report is due."""
    return received_at + timedelta(minutes=target_minutes(priority, kind, targets))


def is_on_time(received_at: datetime, reported_at: datetime, priority: str, kind: str,
               targets: Mapping[str, int]) -> bool:
    """Reported (final) no later than the target."""
    return reported_at <= due_time(received_at, priority, kind, targets)


def is_overdue(received_at: datetime, reported_at: datetime | None, priority: str, kind: str,
               targets: Mapping[str, int], now: datetime) -> bool:
    """Not reported and past the target at ``now``."""
    return reported_at is None and now > due_time(received_at, priority, kind, targets)


@dataclass(frozen=True)
class TurnaroundRecord:
    """One item: where it came from, which specialty reads it, and when it was received/reported."""

    institution: str
    specialty: str
    kind: str
    priority: str
    received_at: datetime
    reported_at: datetime | None


@dataclass
class TurnaroundStats:
    """Counts for one (institution, specialty)."""

    institution: str
    specialty: str
    total: int = 0
    on_time: int = 0
    late: int = 0
    open_overdue: int = 0
    open_in_time: int = 0

    @property
    def on_time_rate(self) -> float | None:
        """On-time share of reported items (None when nothing was reported)."""
        done = self.on_time + self.late
        return round(self.on_time / done, 4) if done else None


def summarise(records: Iterable[TurnaroundRecord], targets: Mapping[str, int],
              now: datetime) -> list[TurnaroundStats]:
    """On-time rates per institution and specialty, sorted by institution then specialty."""
    out: dict[tuple[str, str], TurnaroundStats] = {}
    for r in records:
        s = out.setdefault((r.institution, r.specialty),
                           TurnaroundStats(r.institution, r.specialty))
        s.total += 1
        if r.reported_at is not None:
            if is_on_time(r.received_at, r.reported_at, r.priority, r.kind, targets):
                s.on_time += 1
            else:
                s.late += 1
        elif is_overdue(r.received_at, None, r.priority, r.kind, targets, now):
            s.open_overdue += 1
        else:
            s.open_in_time += 1
    return [out[k] for k in sorted(out)]


def escalation_level(raised_at: datetime, now: datetime, every_minutes: int,
                     max_level: int) -> int:
    """Escalation level an unacknowledged critical result should be at by ``now``.

    Level 1 after ``every_minutes`` without acknowledgement, level 2 after twice that, and so on
    up to ``max_level`` (e.g. reporting physician → department head → medical affairs office).
    """
    if every_minutes <= 0 or now <= raised_at:
        return 0
    elapsed = (now - raised_at).total_seconds() / 60
    return min(int(elapsed // every_minutes), max_level)
