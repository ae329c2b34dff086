"""Errors raised while turning an ECG file into an :class:`~ecg_ingest.record.EcgRecord`.

Every error is a :class:`ValueError` so a caller that only knows "bad input" can catch that;
edges that want finer answers catch the subclasses (the HTTP route maps them to 415 / 422)::

    EcgError (ValueError)
    ├── UnsupportedFormat          we recognise the format but do not read it (e.g. SCP-ECG) → 415
    └── UnreadableEcg              the file claims a format we read but is broken → 422
        ├── MissingSignalFile      a WFDB header names a signal file that was not supplied
        ├── TruncatedSignal        a signal file is shorter than its header says
        ├── UnknownInterpretation  sample encoding or units we cannot map to millivolts
        ├── SamplingRateOutOfRange sampling rate missing or outside 100–2000 Hz
        └── InvalidRecord          the decoded record fails EcgRecord's checks
"""

from __future__ import annotations


class EcgError(ValueError):
    """Base of every ECG input error; the message says what is wrong, for a person to read."""


class UnsupportedFormat(EcgError):
    """A format we recognise (or cannot recognise at all) and do not decode."""

    def __init__(self, message: str, format_name: str | None = None) -> None:
        super().__init__(message)
        self.format_name = format_name


class UnreadableEcg(EcgError):
    """The file is in a format we read, but its content is broken or inconsistent."""


class MissingSignalFile(UnreadableEcg):
    pass


class TruncatedSignal(UnreadableEcg):
    pass


class UnknownInterpretation(UnreadableEcg):
    pass


class SamplingRateOutOfRange(UnreadableEcg):
    pass


class InvalidRecord(UnreadableEcg):
    pass
