"""Synthetic 12-lead ECGs with known rate and intervals, for tests, the bench and demos.

Not physiology: a sum of Gaussian waves (P, Q, R, S, T) per beat, with per-lead gains chosen so
the limb leads obey Einthoven/Goldberger exactly and the chest leads progress from rS in V1 to
qR in V6. Good enough to check that measured values match what was put in.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime

import numpy as np
from scipy.special import expit

from ecg_ingest.record import STANDARD_12, DeviceInfo, EcgRecord, Lead, PatientInfo, SourceFormat

# (centre relative to R in s, width σ in s, amplitude in mV) of a lead-II-like beat.
_WAVES = {"P": (-0.16, 0.022, 0.15), "Q": (-0.028, 0.007, -0.10), "R": (0.0, 0.009, 1.2),
          "S": (0.026, 0.008, -0.30)}
# Gains of each wave in lead I relative to lead II (frontal axis about +50°).
_LEAD_I_GAIN = {"P": 0.6, "Q": 0.3, "R": 0.55, "S": 0.3, "T": 0.6}
# Chest leads: (QRS R gain, S gain, T gain).
_CHEST = {Lead.V1: (0.2, 3.0, -0.2), Lead.V2: (0.45, 3.2, 0.9), Lead.V3: (0.8, 2.2, 1.0),
          Lead.V4: (1.2, 1.2, 1.0), Lead.V5: (1.3, 0.6, 0.9), Lead.V6: (1.1, 0.3, 0.7)}


def synthetic_ecg(heart_rate_bpm: float = 72.0, duration_s: float = 10.0, fs: float = 500.0,
                  st_elevation_mv: Mapping[Lead, float] | None = None, noise_mv: float = 0.01,
                  seed: int = 7, patient: PatientInfo | None = None,
                  pause_after_s: float | None = None, pause_s: float = 0.0) -> EcgRecord:
    """A 12-lead ECG at ``heart_rate_bpm`` with QT following Bazett (QTc ≈ 400 ms).

    Args:
        st_elevation_mv: J-point/ST elevation to add per lead (e.g. ``{Lead.V2: 0.3}``).
        pause_after_s / pause_s: insert a pause of ``pause_s`` after the beat nearest that time.
    """
    rr = 60.0 / heart_rate_bpm
    n = int(round(duration_s * fs))
    t = np.arange(n) / fs
    beats = []
    tb = 0.35
    while tb < duration_s - 0.05:
        beats.append(tb)
        tb += rr
        if pause_after_s is not None and abs(tb - rr - pause_after_s) < rr / 2:
            tb += pause_s
    qt = 0.40 * math.sqrt(rr)
    t_wave = (qt - 0.09, 0.045, 0.30)
    st = {Lead(k): v for k, v in (st_elevation_mv or {}).items()}

    def wave_sum(gains: Mapping[str, float], st_mv: float) -> np.ndarray:
        y = np.zeros(n)
        for b in beats:
            for name, (c, w, a) in {**_WAVES, "T": t_wave}.items():
                y += gains.get(name, 1.0) * a * np.exp(-0.5 * ((t - b - c) / w) ** 2)
            if st_mv:
                # A raised ST segment from the J point into the T wave (smooth edges).
                lo, hi = b + 0.04, b + t_wave[0]
                y += st_mv * expit((t - lo) / 0.004) * expit(-(t - hi) / 0.02)
        return y

    ii = wave_sum({}, 0.0)
    i = wave_sum(_LEAD_I_GAIN, 0.0)
    limb = {Lead.I: i, Lead.II: ii, Lead.III: ii - i, Lead.AVR: -(i + ii) / 2,
            Lead.AVL: i - ii / 2, Lead.AVF: ii - i / 2}
    rows: dict[Lead, np.ndarray] = {}
    for lead in STANDARD_12:
        if lead in limb:
            base = limb[lead]
        else:
            r_gain, s_gain, t_gain = _CHEST[lead]
            base = wave_sum({"P": 0.5, "Q": 0.2, "R": r_gain, "S": s_gain, "T": t_gain}, 0.0)
        rows[lead] = base
    # ST elevation is added after the limb sums so each requested lead gets exactly its value.
    for lead, mv in st.items():
        rows[lead] = rows[lead] + wave_sum({k: 0.0 for k in ("P", "Q", "R", "S", "T")}, mv)
    rng = np.random.default_rng(seed)
    signals = np.vstack([rows[x] for x in STANDARD_12])
    signals = signals + rng.normal(0, noise_mv, signals.shape) if noise_mv else signals
    # Quantise like a cart does (2.5 µV) so the archive round trip is exact.
    signals = np.round(signals / 0.0025) * 0.0025
    return EcgRecord(
        leads=STANDARD_12, signals_mv=signals, sampling_rate_hz=fs,
        source_format=SourceFormat.WFDB, resolution_uv=(2.5,) * 12,
        acquired_at=datetime(2026, 11, 26, 8, 0, 0),
        patient=patient or PatientInfo(), device=DeviceInfo(manufacturer="synthetic"),
        source_labels=tuple(str(x) for x in STANDARD_12),
        notes=(f"synthetic ECG at {heart_rate_bpm:g} bpm",),
    )


def to_wfdb_files(record: EcgRecord, name: str = "synth") -> dict[str, bytes]:
    """Encode a record as a WFDB header + format-16 signal file (5 µV per unit... per lead)."""
    gains = [1000.0 / (r if record.resolution_uv else 1.0)
             for r in (record.resolution_uv or (1.0,) * len(record.leads))]
    digital = np.vstack([np.round(record.signals_mv[k] * gains[k])
                         for k in range(len(record.leads))]).astype("<i2")
    lines = [f"{name} {len(record.leads)} {record.sampling_rate_hz:g} {record.n_samples}"]
    for k, lead in enumerate(record.leads):
        lines.append(f"{name}.dat 16 {gains[k]:g}/mV 16 0 {int(digital[k, 0])} 0 0 {lead}")
    return {f"{name}.hea": ("\n".join(lines) + "\n").encode(),
            f"{name}.dat": digital.T.tobytes()}
