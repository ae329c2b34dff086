"""The one internal ECG model: :class:`EcgRecord`, checked at construction.

Leads carry the standard labels (I, II, III, aVR, aVL, aVF, V1–V6; Frank X/Y/Z when a file has
them), values are millivolts, and the sampling rate is always stated. Readers build records; the
rest of the system (measurement, rendering, archive) never sees a file format again.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime

import numpy as np

from ecg_ingest.errors import InvalidRecord, SamplingRateOutOfRange

#: Sampling rates a resting ECG can honestly have; outside this a header is almost surely wrong.
MIN_SAMPLING_RATE_HZ = 100.0
MAX_SAMPLING_RATE_HZ = 2000.0


class Lead(enum.StrEnum):
    """ECG lead labels as printed on a standard 12-lead page (plus Frank orthogonal leads)."""

    I = "I"  # noqa: E741 - the lead's standard name
    II = "II"
    III = "III"
    AVR = "aVR"
    AVL = "aVL"
    AVF = "aVF"
    V1 = "V1"
    V2 = "V2"
    V3 = "V3"
    V4 = "V4"
    V5 = "V5"
    V6 = "V6"
    X = "X"
    Y = "Y"
    Z = "Z"


STANDARD_12: tuple[Lead, ...] = (
    Lead.I, Lead.II, Lead.III, Lead.AVR, Lead.AVL, Lead.AVF,
    Lead.V1, Lead.V2, Lead.V3, Lead.V4, Lead.V5, Lead.V6,
)
LEAD_ORDER: dict[Lead, int] = {lead: i for i, lead in enumerate(Lead)}


class SourceFormat(enum.StrEnum):
    WFDB = "wfdb"
    DICOM = "dicom"
    AECG = "hl7-aecg"
    SCP = "scp-ecg"


# Spellings seen in the wild → standard lead. Modified chest-lead placements of Holter records
# (MIT-BIH "MLII") are mapped to their limb lead and noted on the record, never silently.
_ALIASES: dict[str, Lead] = {
    "i": Lead.I, "ii": Lead.II, "iii": Lead.III, "avr": Lead.AVR, "avl": Lead.AVL,
    "avf": Lead.AVF, "v1": Lead.V1, "v2": Lead.V2, "v3": Lead.V3, "v4": Lead.V4, "v5": Lead.V5,
    "v6": Lead.V6, "x": Lead.X, "y": Lead.Y, "z": Lead.Z, "vx": Lead.X, "vy": Lead.Y,
    "vz": Lead.Z, "mli": Lead.I, "mlii": Lead.II, "mliii": Lead.III,
}
_MODIFIED = {"mli", "mlii", "mliii"}


def lead_from_label(label: str) -> tuple[Lead | None, bool]:
    """Map a file's channel label to a :class:`Lead`.

    Accepts ``"II"``, ``"ii"``, ``"Lead II"``, ``"Lead I (Einthoven)"``, ``"MDC_ECG_LEAD_AVF"``.

    Returns:
        ``(lead, is_modified)``: ``lead`` is None for a channel that is not an ECG lead we know;
        ``is_modified`` is True for a modified-limb Holter lead (MLII) mapped to its limb lead.
    """
    text = label.strip().lower()
    text = re.sub(r"\(.*?\)", "", text)
    text = text.removeprefix("mdc_ecg_lead_").removeprefix("lead").strip(" -_:")
    key = text.replace(" ", "")
    lead = _ALIASES.get(key)
    return lead, key in _MODIFIED


@dataclass(frozen=True)
class PatientInfo:
    """Patient as the file states it; empty fields are unknown, not blank."""

    patient_id: str | None = None
    name: str | None = None
    birth_date: date | None = None
    sex: str | None = None


@dataclass(frozen=True)
class DeviceInfo:
    manufacturer: str | None = None
    model: str | None = None
    software: str | None = None


@dataclass(frozen=True, eq=False)
class EcgRecord:
    """One ECG: leads in millivolts at one sampling rate, with who and what recorded it.

    Args:
        leads: lead of each row of ``signals_mv``; no duplicates.
        signals_mv: array of shape ``(len(leads), n_samples)``, finite, in millivolts.
        sampling_rate_hz: samples per second, 100–2000.
        resolution_uv: the source's quantisation step per lead in microvolts (None if unknown);
            the DICOM writer keeps it so a round trip loses nothing.
        source_labels: the channel labels as the file spelled them, parallel to ``leads``.
        derived_leads: leads computed here (Einthoven/Goldberger) rather than recorded.
        notes: facts about the conversion a reader of the ECG should know.
        quality_flags: ``"signal quality: ..."`` problems found while reading.

    Raises:
        SamplingRateOutOfRange: the rate is missing or outside 100–2000 Hz.
        InvalidRecord: shape, lead list or values are inconsistent.
    """

    leads: tuple[Lead, ...]
    signals_mv: np.ndarray
    sampling_rate_hz: float
    source_format: SourceFormat
    resolution_uv: tuple[float, ...] | None = None
    acquired_at: datetime | None = None
    patient: PatientInfo = field(default_factory=PatientInfo)
    device: DeviceInfo = field(default_factory=DeviceInfo)
    source_labels: tuple[str, ...] = ()
    derived_leads: frozenset[Lead] = frozenset()
    notes: tuple[str, ...] = ()
    quality_flags: tuple[str, ...] = ()
    sop_instance_uid: str | None = None
    study_instance_uid: str | None = None
    series_instance_uid: str | None = None
    institution_name: str | None = None

    def __post_init__(self) -> None:
        leads = tuple(Lead(x) for x in self.leads)
        object.__setattr__(self, "leads", leads)
        object.__setattr__(self, "source_format", SourceFormat(self.source_format))
        fs = self.sampling_rate_hz
        if fs is None or not np.isfinite(fs) or not (
            MIN_SAMPLING_RATE_HZ <= float(fs) <= MAX_SAMPLING_RATE_HZ
        ):
            raise SamplingRateOutOfRange(
                f"sampling rate {fs!r} Hz is outside {MIN_SAMPLING_RATE_HZ:g}–"
                f"{MAX_SAMPLING_RATE_HZ:g} Hz"
            )
        object.__setattr__(self, "sampling_rate_hz", float(fs))
        if not leads:
            raise InvalidRecord("an ECG needs at least one lead")
        if len(set(leads)) != len(leads):
            raise InvalidRecord(f"duplicate leads: {[str(x) for x in leads]}")
        sig = np.array(self.signals_mv, dtype=np.float64, copy=True)
        if sig.ndim != 2 or sig.shape[0] != len(leads):
            raise InvalidRecord(
                f"signals have shape {sig.shape}; expected ({len(leads)}, n_samples)"
            )
        if sig.shape[1] < int(fs):
            raise InvalidRecord(f"only {sig.shape[1]} samples: shorter than one second")
        if not np.isfinite(sig).all():
            raise InvalidRecord("signals contain NaN or infinite values")
        sig.setflags(write=False)
        object.__setattr__(self, "signals_mv", sig)
        if self.resolution_uv is not None:
            res = tuple(float(r) for r in self.resolution_uv)
            if len(res) != len(leads) or any(not (r > 0) for r in res):
                raise InvalidRecord("resolution_uv needs one positive value per lead")
            object.__setattr__(self, "resolution_uv", res)
        if self.source_labels and len(self.source_labels) != len(leads):
            raise InvalidRecord("source_labels must be parallel to leads")
        object.__setattr__(self, "derived_leads", frozenset(Lead(x) for x in self.derived_leads))

    @property
    def n_samples(self) -> int:
        return int(self.signals_mv.shape[1])

    @property
    def duration_s(self) -> float:
        return self.n_samples / self.sampling_rate_hz

    def has(self, lead: Lead) -> bool:
        return lead in self.leads

    def lead(self, lead: Lead) -> np.ndarray:
        """Samples of one lead in mV; KeyError if the record lacks it."""
        try:
            return self.signals_mv[self.leads.index(Lead(lead))]
        except ValueError:
            raise KeyError(str(lead)) from None

    def with_patient(self, patient: PatientInfo) -> EcgRecord:
        return replace(self, patient=patient)


def complete_limb_leads(
    leads: Sequence[Lead], signals_mv: np.ndarray, resolution_uv: Sequence[float] | None,
) -> tuple[tuple[Lead, ...], np.ndarray, tuple[float, ...] | None, frozenset[Lead]]:
    """Compute III, aVR, aVL, aVF from I and II when a file carries only 8 leads.

    Einthoven and Goldberger: III = II − I, aVR = −(I + II)/2, aVL = I − II/2, aVF = II − I/2.
    Carts commonly store only I, II and V1–V6 because the other four are exactly these sums.

    Returns:
        ``(leads, signals, resolution, derived)`` sorted in standard page order.
    """
    leads = [Lead(x) for x in leads]
    rows = list(np.asarray(signals_mv, dtype=np.float64))
    res = list(resolution_uv) if resolution_uv is not None else None
    derived: set[Lead] = set()
    if Lead.I in leads and Lead.II in leads:
        i = rows[leads.index(Lead.I)]
        ii = rows[leads.index(Lead.II)]
        step = None
        if res is not None:
            step = max(res[leads.index(Lead.I)], res[leads.index(Lead.II)])
        formulas = {
            Lead.III: lambda: ii - i,
            Lead.AVR: lambda: -(i + ii) / 2,
            Lead.AVL: lambda: i - ii / 2,
            Lead.AVF: lambda: ii - i / 2,
        }
        for lead, make in formulas.items():
            if lead not in leads:
                leads.append(lead)
                rows.append(make())
                derived.add(lead)
                if res is not None and step is not None:
                    # Half-steps appear in aVR/aVL/aVF; the archive keeps them exactly.
                    res.append(step / 2 if lead != Lead.III else step)
    order = sorted(range(len(leads)), key=lambda k: LEAD_ORDER[leads[k]])
    out_leads = tuple(leads[k] for k in order)
    out_rows = np.vstack([rows[k] for k in order]) if rows else np.zeros((0, 0))
    out_res = tuple(res[k] for k in order) if res is not None else None
    return out_leads, out_rows, out_res, frozenset(derived)
