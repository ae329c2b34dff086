"""EcgRecord is checked at construction; labels map to standard leads; derived leads are exact."""

from __future__ import annotations

import numpy as np
import pytest

from ecg_ingest.errors import InvalidRecord, SamplingRateOutOfRange
from ecg_ingest.record import (
    STANDARD_12,
    EcgRecord,
    Lead,
    SourceFormat,
    complete_limb_leads,
    lead_from_label,
)


def make(leads=(Lead.II,), n=1000, fs=500.0, **kw):
    return EcgRecord(leads=leads, signals_mv=np.zeros((len(leads), n)), sampling_rate_hz=fs,
                     source_format=SourceFormat.WFDB, **kw)


@pytest.mark.parametrize("fs", [99.9, 2000.1, 0.0, float("nan"), 5000.0])
def test_sampling_rate_outside_100_to_2000_hz_is_refused(fs):
    with pytest.raises(SamplingRateOutOfRange, match="outside"):
        make(fs=fs, n=20000)


@pytest.mark.parametrize("fs", [100.0, 360.0, 1000.0, 2000.0])
def test_sampling_rates_in_range_are_accepted(fs):
    assert make(fs=fs, n=int(fs) * 2).duration_s == pytest.approx(2.0)


def test_errors_are_value_errors_with_a_message():
    with pytest.raises(ValueError, match="duplicate leads"):
        make(leads=(Lead.II, Lead.II))


@pytest.mark.parametrize("bad", [
    dict(signals_mv=np.zeros((2, 1000))),
    dict(signals_mv=np.zeros(1000)),
    dict(signals_mv=np.full((1, 1000), np.nan)),
    dict(signals_mv=np.zeros((1, 100))),
    dict(resolution_uv=(0.0,)),
    dict(resolution_uv=(1.0, 1.0)),
])
def test_inconsistent_records_are_refused(bad):
    kw = dict(leads=(Lead.II,), signals_mv=np.zeros((1, 1000)), sampling_rate_hz=500.0,
              source_format=SourceFormat.WFDB)
    kw.update(bad)
    with pytest.raises(InvalidRecord):
        EcgRecord(**kw)


def test_record_signals_are_a_read_only_copy():
    data = np.zeros((1, 1000))
    rec = EcgRecord(leads=(Lead.II,), signals_mv=data, sampling_rate_hz=500,
                    source_format="wfdb")
    data[0, 0] = 5
    assert rec.signals_mv[0, 0] == 0
    with pytest.raises(ValueError):
        rec.signals_mv[0, 0] = 1
    assert rec.source_format is SourceFormat.WFDB


@pytest.mark.parametrize(("label", "lead", "modified"), [
    ("I", Lead.I, False), ("ii", Lead.II, False), ("Lead I (Einthoven)", Lead.I, False),
    ("MDC_ECG_LEAD_AVF", Lead.AVF, False), ("avr", Lead.AVR, False), ("V6", Lead.V6, False),
    ("vx", Lead.X, False), ("MLII", Lead.II, True), ("Lead aVL", Lead.AVL, False),
    ("ABP", None, False), ("RESP", None, False),
])
def test_channel_labels_map_to_standard_leads(label, lead, modified):
    assert lead_from_label(label) == (lead, modified)


def test_eight_lead_file_gets_exact_einthoven_and_goldberger_leads():
    rng = np.random.default_rng(1)
    i, ii = rng.normal(size=(2, 1000))
    chest = rng.normal(size=(6, 1000))
    leads = [Lead.I, Lead.II, Lead.V1, Lead.V2, Lead.V3, Lead.V4, Lead.V5, Lead.V6]
    out, sig, res, derived = complete_limb_leads(leads, np.vstack([i, ii, chest]), [5.0] * 8)
    assert out == STANDARD_12
    assert derived == {Lead.III, Lead.AVR, Lead.AVL, Lead.AVF}
    np.testing.assert_allclose(sig[2], ii - i)
    np.testing.assert_allclose(sig[3], -(i + ii) / 2)
    np.testing.assert_allclose(sig[4], i - ii / 2)
    np.testing.assert_allclose(sig[5], ii - i / 2)
    assert res[2] == 5.0 and res[3] == 2.5
