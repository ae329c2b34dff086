"""ECG centre edge: read ECG files into one typed model, measure, render, archive as DICOM.

Public surface (see docs/ecg.md); modules below are the implementation.
"""

from ecg_ingest.errors import (
    EcgError,
    InvalidRecord,
    MissingSignalFile,
    SamplingRateOutOfRange,
    TruncatedSignal,
    UnknownInterpretation,
    UnreadableEcg,
    UnsupportedFormat,
)
from ecg_ingest.record import DeviceInfo, EcgRecord, Lead, PatientInfo, SourceFormat

__all__ = [
    "DeviceInfo",
    "EcgError",
    "EcgRecord",
    "InvalidRecord",
    "Lead",
    "MissingSignalFile",
    "PatientInfo",
    "SamplingRateOutOfRange",
    "SourceFormat",
    "TruncatedSignal",
    "UnknownInterpretation",
    "UnreadableEcg",
    "UnsupportedFormat",
]
