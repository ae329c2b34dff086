"""A person's age in completed years. Pure: stdlib only."""

from __future__ import annotations

from datetime import date


def age_in_years(birth: date | None, on: date | None) -> int | None:
    """Completed years from ``birth`` to ``on``; None when either is unknown or birth is later."""
    if birth is None or on is None or birth > on:
        return None
    return on.year - birth.year - ((on.month, on.day) < (birth.month, birth.day))
