"""Measurements: QRS detection scored against MIT-BIH annotations, intervals on ECGs with known
values, quality flags instead of crashes."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ecg_ingest import measure as M
from ecg_ingest.readers import files_for_path, read_files
from ecg_ingest.record import STANDARD_12, EcgRecord, Lead, SourceFormat
from ecg_ingest.synthetic import synthetic_ecg

# Beat labels of the MIT-BIH annotation set (non-beat labels such as '+' rhythm marks excluded).
BEAT_SYMBOLS = set("NLRBAaJSVrFejnE/fQ?")


@pytest.fixture(scope="module")
def mitdb_100(testdata):
    import wfdb

    path = testdata / "ecg/wfdb/mitdb_100/100.hea"
    record = read_files(files_for_path(path))[0].record
    ann = wfdb.rdann(str(path.with_suffix("")), "atr")
    ref = np.array([s for s, sym in zip(ann.sample, ann.symbol, strict=True)
                    if sym in BEAT_SYMBOLS])
    return record, ref


@pytest.mark.parametrize("detector", [M.detect_xqrs, M.detect_gqrs])
def test_qrs_detection_on_mitdb_100_whole_record(mitdb_100, detector):
    """All 30 minutes (2273 reference beats), lead MLII resampled 360 → 500 Hz, scored by wfdb's
    own comparator with a 150 ms window: sensitivity and +P ≥ 0.995."""
    from wfdb import processing

    record, ref = mitdb_100
    assert len(ref) == 2273
    fs = record.sampling_rate_hz
    x = M.bandpass(M.resample(record.lead(Lead.II), fs))
    found = detector(x)
    found_at_fs = np.round(found * fs / M.ANALYSIS_FS).astype(int)
    cmp = processing.compare_annotations(ref, found_at_fs, int(0.150 * fs))
    assert cmp.sensitivity >= 0.995, cmp.sensitivity
    assert cmp.positive_predictivity >= 0.995, cmp.positive_predictivity


def test_the_two_detectors_agree_on_mitdb_100(mitdb_100):
    record, _ = mitdb_100
    m = M.measure(record)
    assert not m.detectors.disagree
    assert m.beat_count == pytest.approx(2273, abs=3)
    assert 70 < m.heart_rate_bpm < 80


@pytest.mark.parametrize("hr", [40, 60, 72, 120, 150, 200])
def test_rate_and_intervals_of_a_synthetic_ecg(hr):
    rec = synthetic_ecg(hr)
    m = M.measure(rec)
    rr = 60 / hr
    assert m.heart_rate_bpm == pytest.approx(hr, abs=1)
    assert m.rr_mean_ms == pytest.approx(rr * 1000, abs=5)
    assert 60 <= m.qrs_ms <= 100
    # The generator ends T about 0.4·√RR after R and starts Q ~40 ms before it.
    assert m.qt_ms == pytest.approx(400 * rr ** 0.5 + 40, abs=35)
    rr_measured = 60 / m.heart_rate_bpm  # QTc uses the median RR
    assert m.qtc_bazett_ms == pytest.approx(m.qt_ms / rr_measured ** 0.5)
    assert m.qtc_fridericia_ms == pytest.approx(m.qt_ms / rr_measured ** (1 / 3))
    assert 35 <= m.axis_deg <= 65
    if hr <= 120:  # above that the generator's P wave sits inside the previous T wave
        assert 140 <= m.pr_ms <= 210
    assert not m.detectors.disagree
    assert m.quality_flags == ()


def test_p_wave_hidden_in_t_wave_is_not_measured():
    assert M.measure(synthetic_ecg(200)).pr_ms is None


def test_pause_shows_in_longest_rr():
    m = M.measure(synthetic_ecg(60, pause_after_s=4.0, pause_s=2.5))
    assert m.rr_max_ms == pytest.approx(3500, abs=10)


def test_st_elevation_is_measured_at_the_j_point():
    m = M.measure(synthetic_ecg(72, st_elevation_mv={Lead.V2: 0.3, Lead.V3: 0.3}))
    assert m.st_level_mv["V2"] > 0.2 and m.st_level_mv["V3"] > 0.2
    assert abs(m.st_level_mv["V5"]) < 0.05


def test_measurements_are_json_and_carry_the_method():
    d = M.measure(synthetic_ecg(72)).to_dict()
    text = json.dumps(d)
    assert "wfdb.xqrs" in text and "wfdb.gqrs" in text
    assert d["method"]["analysis_rate_hz"] == 500
    assert d["method"]["qtc"]["bazett"] and d["method"]["qtc"]["fridericia"]


def replace_lead(rec: EcgRecord, lead: Lead, values: np.ndarray) -> EcgRecord:
    sig = rec.signals_mv.copy()
    sig[rec.leads.index(lead)] = values
    return EcgRecord(leads=rec.leads, signals_mv=sig, sampling_rate_hz=rec.sampling_rate_hz,
                     source_format=rec.source_format)


def test_flat_lead_is_flagged():
    rec = synthetic_ecg(72)
    m = M.measure(replace_lead(rec, Lead.V3, np.zeros(rec.n_samples)))
    assert "signal quality: lead V3 is flat" in m.quality_flags
    assert m.heart_rate_bpm == pytest.approx(72, abs=1)


def test_saturated_lead_is_flagged():
    rec = synthetic_ecg(72)
    v2 = rec.lead(Lead.V2).copy()
    v2[1000:1600] = 5.0  # the amplifier sat on its rail for 1.2 s (electrode pop)
    m = M.measure(replace_lead(rec, Lead.V2, v2))
    assert any("lead V2 saturated" in f for f in m.quality_flags)


@pytest.mark.parametrize("kind", ["zeros", "noise", "constant"])
def test_no_heartbeat_is_flagged_not_crashed(kind):
    rng = np.random.default_rng(3)
    sig = {"zeros": np.zeros((12, 5000)), "noise": rng.normal(0, 0.05, (12, 5000)),
           "constant": np.full((12, 5000), 1.5)}[kind]
    rec = EcgRecord(leads=STANDARD_12, signals_mv=sig, sampling_rate_hz=500,
                    source_format=SourceFormat.WFDB)
    m = M.measure(rec)
    assert m.quality_flags
    if kind != "noise":
        assert m.heart_rate_bpm is None
        assert "signal quality: fewer than two QRS complexes detected" in m.quality_flags


def test_detector_comparison_ignores_the_edges_and_flags_real_disagreement():
    a = np.arange(100, 5000, 400)
    assert not M.compare_detectors(a, a[1:-1], 5000).disagree  # edge beats only
    assert not M.compare_detectors(a, a + 40, 5000).disagree  # within 150 ms
    assert M.compare_detectors(a, a[::2], 5000).disagree


@pytest.mark.parametrize("fs", [250, 360, 500, 1000, 2000])
def test_resampling_keeps_time_and_amplitude(fs):
    t = np.arange(int(4 * fs)) / fs
    y = M.resample(np.sin(2 * np.pi * 5 * t), fs)
    assert y.size == 2000
    t5 = np.arange(2000) / 500
    np.testing.assert_allclose(y[100:-100], np.sin(2 * np.pi * 5 * t5)[100:-100], atol=0.01)


def test_real_files_measure_without_disagreement(testdata):
    for rel in ("wfdb/ptbdb_s0010_re/s0010_re.hea", "dicom/waveform_ecg.dcm",
                "aecg/Example_aECG.xml"):
        rec = read_files(files_for_path(testdata / "ecg" / rel))[0].record
        m = M.measure(rec)
        assert not m.detectors.disagree, rel
        assert 50 < m.heart_rate_bpm < 100, rel
        assert 50 <= m.qrs_ms <= 140, rel
