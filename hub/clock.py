"""The one place services read the time (timezone-aware UTC); the domain takes ``now`` as input."""

from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(value: datetime | None) -> datetime | None:
    """Normalise to aware UTC: SQLite returns naive datetimes (stored as UTC), PostgreSQL aware
    ones in the session's time zone."""
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)
