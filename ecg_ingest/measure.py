"""Automatic ECG measurements (pure: arrays in, numbers out; no I/O).

Pipeline, recorded in :attr:`Measurements.method` so a cardiologist knows what to trust:

1. Every lead is resampled to 500 Hz (wfdb's XQRS finds no beats at 1000 Hz) and band-passed
   0.5–40 Hz with a zero-phase Butterworth filter (zero phase keeps the ST segment in place).
2. Two independent QRS detectors run on lead II (else the first lead): wfdb's XQRS (primary) and
   wfdb's GQRS. Beats are matched within 150 ms away from the record's edges (GQRS needs a second
   of context at each end); when they disagree the ECG is flagged for a closer look.
3. Heart rate and RR come from the primary detector's beats.
4. PR, QRS, QT come from a median beat per lead, measured globally over all leads: QRS onset and
   offset where the summed absolute slope crosses a fraction of its peak, T end by the tangent
   method on the RMS curve, P onset by threshold on the RMS curve before the QRS.
5. QTc by Bazett (QT/√RR) and Fridericia (QT/∛RR), both reported and labelled.
6. Frontal axis from the net QRS area in leads I and aVF; ST level per lead at the J point against
   the PR segment at the J point (the domain decides what counts as suspected ST elevation).
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass, field, replace
from fractions import Fraction
from typing import Any

import numpy as np
from scipy.signal import butter, resample_poly, sosfiltfilt

from ecg_ingest.record import EcgRecord, Lead

logger = logging.getLogger(__name__)

ANALYSIS_FS = 500
MATCH_WINDOW_S = 0.150
EDGE_GUARD_S = 1.0
METHOD_VERSION = "yigong-ecg-measure 1"

_SOS = butter(2, [0.5, 40.0], btype="bandpass", fs=ANALYSIS_FS, output="sos")


@dataclass(frozen=True)
class DetectorComparison:
    """How well the two QRS detectors agree, away from the record's edges."""

    primary: str
    secondary: str
    primary_count: int
    secondary_count: int
    matched: int
    disagree: bool


@dataclass(frozen=True)
class Measurements:
    """Global measurements of one ECG; None where a value could not be measured honestly."""

    heart_rate_bpm: float | None
    rr_mean_ms: float | None
    rr_min_ms: float | None
    rr_max_ms: float | None
    pr_ms: float | None
    qrs_ms: float | None
    qt_ms: float | None
    qtc_bazett_ms: float | None
    qtc_fridericia_ms: float | None
    axis_deg: float | None
    st_level_mv: dict[str, float]
    beat_count: int
    duration_s: float
    analysed_lead: str
    detectors: DetectorComparison
    quality_flags: tuple[str, ...] = ()
    method: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form, rounded to what an ECG can resolve."""
        out = asdict(self)
        for key, value in list(out.items()):
            if isinstance(value, float):
                out[key] = round(value, 1)
        out["st_level_mv"] = {k: round(v, 3) for k, v in self.st_level_mv.items()}
        out["quality_flags"] = list(self.quality_flags)
        return out


def resample(x: np.ndarray, fs: float, target: int = ANALYSIS_FS) -> np.ndarray:
    """Polyphase resampling along the last axis from ``fs`` to ``target`` Hz."""
    if abs(fs - target) < 1e-9:
        return np.asarray(x, dtype=np.float64)
    ratio = Fraction(target / fs).limit_denominator(1000)
    return resample_poly(np.asarray(x, dtype=np.float64), ratio.numerator, ratio.denominator,
                         axis=-1)


def resample_record(record: EcgRecord, target: int = ANALYSIS_FS) -> EcgRecord:
    """The same ECG at ``target`` Hz (quantisation steps are no longer meaningful: dropped)."""
    return replace(record, signals_mv=resample(record.signals_mv, record.sampling_rate_hz, target),
                   sampling_rate_hz=float(target), resolution_uv=None,
                   notes=record.notes + (f"resampled from {record.sampling_rate_hz:g} Hz to "
                                         f"{target} Hz",))


def bandpass(x: np.ndarray) -> np.ndarray:
    """0.5–40 Hz zero-phase band-pass at the analysis rate."""
    padlen = min(x.shape[-1] - 1, 3 * 50)
    return sosfiltfilt(_SOS, x, axis=-1, padlen=padlen)


def detect_xqrs(x: np.ndarray, fs: int = ANALYSIS_FS) -> np.ndarray:
    """Primary detector: wfdb XQRS on one filtered lead at ``fs`` Hz; sample indices."""
    from wfdb import processing

    if x.size < fs:
        return np.zeros(0, dtype=np.int64)
    beats = processing.xqrs_detect(x, fs=fs, verbose=False)
    return np.asarray(beats, dtype=np.int64)


def detect_gqrs(x: np.ndarray, fs: int = ANALYSIS_FS) -> np.ndarray:
    """Second, independent detector: wfdb GQRS; inputs in mV, digitised at 1 µV per unit.

    GQRS's amplitude priors (QRSa, QRSamin) are lowered from the defaults so that low-voltage
    leads such as PTB's are not missed, and its timing priors (RRmin, QT, RT) shortened so that
    it follows rates up to 240 bpm; with the defaults it halves a 200 bpm tachycardia. The priors
    are fixed, not taken from XQRS, so the two detectors stay independent.
    """
    from wfdb import processing

    if x.size < fs:
        return np.zeros(0, dtype=np.int64)
    beats = processing.gqrs_detect(x, fs=fs, adc_gain=1000, adc_zero=0, QRSa=500, QRSamin=100,
                                   RRmin=0.15, QT=0.25, RTmin=0.15, RTmax=0.25)
    return np.asarray(beats, dtype=np.int64)


def match_beats(reference: np.ndarray, test: np.ndarray, window: int) -> int:
    """Number of one-to-one matches between two sorted beat lists within ``window`` samples."""
    i = j = matched = 0
    ref = np.sort(reference)
    tst = np.sort(test)
    while i < len(ref) and j < len(tst):
        d = tst[j] - ref[i]
        if abs(d) <= window:
            matched += 1
            i += 1
            j += 1
        elif d < 0:
            j += 1
        else:
            i += 1
    return matched


def compare_detectors(primary: np.ndarray, secondary: np.ndarray, n_samples: int,
                      fs: int = ANALYSIS_FS) -> DetectorComparison:
    """Agreement of two detectors inside the record minus :data:`EDGE_GUARD_S` at each end."""
    lo, hi = EDGE_GUARD_S * fs, n_samples - EDGE_GUARD_S * fs
    a = primary[(primary >= lo) & (primary < hi)]
    b = secondary[(secondary >= lo) & (secondary < hi)]
    matched = match_beats(a, b, int(MATCH_WINDOW_S * fs))
    unmatched = (len(a) - matched) + (len(b) - matched)
    # One stray beat in a 10 s strip is normal jitter at the guard boundary; more is not.
    disagree = unmatched > max(1, 0.05 * max(len(a), len(b)))
    return DetectorComparison("wfdb.xqrs", "wfdb.gqrs", len(a), len(b), matched, disagree)


def signal_quality(record: EcgRecord) -> list[str]:
    """Flat and saturated leads, as ``"signal quality: ..."`` flags."""
    flags: list[str] = []
    fs = record.sampling_rate_hz
    min_run = max(5, int(0.04 * fs))
    for lead, x in zip(record.leads, record.signals_mv, strict=True):
        if lead in record.derived_leads:
            continue
        centred = x - np.median(x)
        if np.ptp(centred) < 0.05:
            flags.append(f"signal quality: lead {lead} is flat")
            continue
        for extreme, name in ((x.max(), "high"), (x.min(), "low")):
            at = np.isclose(x, extreme, rtol=0, atol=1e-9)
            if _longest_run(at) >= min_run:
                flags.append(f"signal quality: lead {lead} saturated ({name})")
                break
    return flags


def _longest_run(mask: np.ndarray) -> int:
    if not mask.any():
        return 0
    padded = np.concatenate(([0], mask.astype(np.int8), [0]))
    edges = np.flatnonzero(np.diff(padded))
    return int((edges[1::2] - edges[0::2]).max())


def _analysed_lead(record: EcgRecord) -> Lead:
    return Lead.II if record.has(Lead.II) else record.leads[0]


def measure(record: EcgRecord) -> Measurements:
    """Measure ``record``; never raises on a poor signal, it flags instead.

    Returns:
        :class:`Measurements`; values that could not be measured are None and a quality flag
        says why.
    """
    fs = ANALYSIS_FS
    flags = list(record.quality_flags) + signal_quality(record)
    raw = resample(record.signals_mv, record.sampling_rate_hz, fs)
    filt = bandpass(raw)
    lead = _analysed_lead(record)
    x = filt[record.leads.index(lead)]
    beats = detect_xqrs(x, fs)
    second = detect_gqrs(x, fs)
    comparison = compare_detectors(beats, second, x.size, fs)
    if comparison.disagree:
        flags.append(
            f"QRS detectors disagree: {comparison.primary} {comparison.primary_count} beats, "
            f"{comparison.secondary} {comparison.secondary_count}, {comparison.matched} matched"
        )
    method: dict[str, Any] = {
        "version": METHOD_VERSION,
        "analysis_rate_hz": fs,
        "source_rate_hz": record.sampling_rate_hz,
        "filter": "0.5-40 Hz 2nd-order Butterworth, zero-phase",
        "qrs_detectors": ["wfdb.xqrs (primary)", "wfdb.gqrs"],
        "detector_match_window_ms": MATCH_WINDOW_S * 1000,
        "analysed_lead": str(lead),
        "intervals": "median beat over all leads: QRS on/offset at 15% of summed slope "
                     "(16 ms smoothing); "
                     "T end by tangent on RMS curve; P onset at 20% of P on RMS curve",
        "qtc": {"bazett": "QT/sqrt(RR)", "fridericia": "QT/cbrt(RR)"},
        "axis": "net QRS area, leads I and aVF",
        "st_level": "J point (global QRS offset) minus PR segment",
    }
    rr = np.diff(beats) / fs if len(beats) >= 2 else np.zeros(0)
    hr = rr_mean = rr_min = rr_max = None
    if rr.size:
        hr = 60.0 / float(np.median(rr))
        rr_mean, rr_min, rr_max = (float(rr.mean() * 1000), float(rr.min() * 1000),
                                   float(rr.max() * 1000))
    else:
        flags.append("signal quality: fewer than two QRS complexes detected")

    intervals = _median_beat_intervals(record, filt, beats, rr, fs) if rr.size >= 2 else None
    pr = qrs = qt = qtcb = qtcf = axis = None
    st: dict[str, float] = {}
    if intervals is not None:
        pr, qrs, qt, axis, st = intervals
        rr_s = float(np.median(rr))
        if qt is not None and rr_s > 0:
            qtcb = qt / math.sqrt(rr_s)
            qtcf = qt / rr_s ** (1 / 3)
    return Measurements(
        heart_rate_bpm=hr, rr_mean_ms=rr_mean, rr_min_ms=rr_min, rr_max_ms=rr_max,
        pr_ms=pr, qrs_ms=qrs, qt_ms=qt, qtc_bazett_ms=qtcb, qtc_fridericia_ms=qtcf,
        axis_deg=axis, st_level_mv=st, beat_count=int(len(beats)),
        duration_s=record.duration_s, analysed_lead=str(lead), detectors=comparison,
        quality_flags=tuple(dict.fromkeys(flags)), method=method,
    )


def _refine(beats: np.ndarray, energy: np.ndarray, half: int) -> np.ndarray:
    """Move each detection to the peak of ``energy`` within ±half samples (common fiducial)."""
    out = []
    for b in beats:
        lo, hi = max(0, b - half), min(energy.size, b + half + 1)
        out.append(lo + int(np.argmax(energy[lo:hi])))
    return np.asarray(out, dtype=np.int64)


def _median_beat_intervals(record: EcgRecord, filt: np.ndarray, beats: np.ndarray,
                           rr: np.ndarray, fs: int):
    ms = 1000.0 / fs
    rr_med = float(np.median(rr))
    pre = int(0.35 * fs)
    post = int(min(0.65, max(0.3, 0.95 * rr_med)) * fs)
    slope = np.abs(np.diff(filt, axis=1, prepend=filt[:, :1])).sum(axis=0)
    fid = _refine(beats, slope, int(0.05 * fs))
    fid = fid[(fid - pre >= 0) & (fid + post < filt.shape[1])]
    if fid.size < 2:
        return None
    stack = np.stack([filt[:, f - pre:f + post] for f in fid])  # beats × leads × window
    med = np.median(stack, axis=0)
    r0 = pre
    s = np.abs(np.diff(med, axis=1, prepend=med[:, :1])).sum(axis=0)
    # Smooth over 16 ms: the summed slope dips at the R apex, which must not end the QRS.
    s = np.convolve(s, np.ones(8) / 8, mode="same")
    peak = float(s[r0 - int(0.06 * fs):r0 + int(0.06 * fs)].max())
    thr = 0.15 * peak
    gap = int(0.012 * fs)
    onset = r0
    while onset > r0 - int(0.15 * fs) and s[onset - gap:onset + 1].max() > thr:
        onset -= 1
    offset = r0
    while offset < r0 + int(0.2 * fs) and s[offset:offset + gap + 1].max() > thr:
        offset += 1
    qrs = (offset - onset) * ms

    base_win = med[:, max(0, onset - int(0.03 * fs)):max(1, onset - int(0.01 * fs))]
    baseline = base_win.mean(axis=1, keepdims=True)
    mc = med - baseline
    rms = np.sqrt((mc ** 2).mean(axis=0))

    # T wave: RMS peak after the ST segment, before the next beat could start.
    t_lo = offset + int(0.08 * fs)
    t_hi = min(med.shape[1] - 1, r0 + int(min(0.6, 0.85 * rr_med) * fs))
    qt = None
    t_peak = None
    if t_hi - t_lo > int(0.04 * fs):
        t_peak = t_lo + int(np.argmax(rms[t_lo:t_hi]))
        d = np.diff(rms[t_peak:t_hi + 1])
        if d.size:
            k = t_peak + int(np.argmin(d))
            slope_t = float(d.min())
            base_level = float(np.min(rms[onset - int(0.03 * fs):onset])) if onset > 15 else 0.0
            if slope_t < 0:
                t_end = k + (base_level - rms[k]) / slope_t
                t_end = min(max(t_end, t_peak), t_hi + int(0.1 * fs))
                qt = (t_end - onset) * ms

    pr = None
    p_lo, p_hi = max(0, onset - int(0.3 * fs)), onset - int(0.04 * fs)
    if qt is not None:
        # The previous beat's T wave ends RR before this one's: at high rates P hides in it,
        # and an honest "not measurable" beats calling the T wave a P wave.
        prev_t_end = onset + int(qt / ms) - int(rr_med * fs)
        p_lo = max(p_lo, prev_t_end + int(0.01 * fs))
    if p_hi - p_lo > int(0.05 * fs):
        seg = rms[p_lo:p_hi]
        p_peak = p_lo + int(np.argmax(seg))
        p_base = float(np.min(rms[p_lo:p_peak + 1]))
        p_amp = float(rms[p_peak]) - p_base
        if p_amp >= 0.02 and p_peak > p_lo:
            p_on = p_peak
            while p_on > p_lo and rms[p_on] > p_base + 0.2 * p_amp:
                p_on -= 1
            pr = (onset - p_on) * ms

    axis = None
    leads = record.leads
    if Lead.I in leads and Lead.AVF in leads:
        area_i = float(mc[leads.index(Lead.I), onset:offset].sum())
        area_f = float(mc[leads.index(Lead.AVF), onset:offset].sum())
        if abs(area_i) + abs(area_f) > 0:
            axis = math.degrees(math.atan2(area_f, area_i))

    # ST deviation at the J point, where STEMI criteria (ESC/AHA, 4th universal definition of
    # MI) measure it; averaged over 8 ms so one noisy sample does not decide.
    j = min(offset, mc.shape[1] - 5)
    st = {str(lead): float(mc[k, j - 2:j + 2].mean()) for k, lead in enumerate(leads)}
    return pr, qrs, (float(qt) if qt is not None else None), axis, st
