"""EcgRecord → DICOM ECG waveform object → EcgRecord gives the same samples."""

from __future__ import annotations

import io
from dataclasses import replace

import numpy as np
import pydicom
import pytest

from ecg_ingest.dicom_writer import (
    GENERAL_ECG,
    TWELVE_LEAD_ECG,
    read_dicom_bytes,
    to_dataset,
    to_dicom_bytes,
)
from ecg_ingest.errors import InvalidRecord
from ecg_ingest.readers import files_for_path, read_files
from ecg_ingest.record import STANDARD_12, PatientInfo, SourceFormat
from ecg_ingest.synthetic import synthetic_ecg, to_wfdb_files


def assert_same_within_one_step(a, b):
    assert a.leads == b.leads
    assert a.sampling_rate_hz == b.sampling_rate_hz
    assert a.n_samples == b.n_samples
    steps_mv = np.array(b.resolution_uv)[:, None] / 1000.0
    assert (np.abs(a.signals_mv - b.signals_mv) <= steps_mv + 1e-12).all()


@pytest.mark.parametrize("rel", ["wfdb/ptbdb_s0010_re/s0010_re.hea", "aecg/Example_aECG.xml",
                                 "dicom/waveform_ecg.dcm"])
def test_round_trip_of_test_files(testdata, rel):
    original = read_files(files_for_path(testdata / "ecg" / rel))[0].record
    back = read_dicom_bytes(to_dicom_bytes(original))
    assert_same_within_one_step(original, back)
    # The source's own quantisation step is kept, so nothing is lost at all.
    np.testing.assert_allclose(back.signals_mv, original.signals_mv, atol=1e-9)
    assert back.source_format == SourceFormat.DICOM


def test_twelve_lead_record_becomes_a_12_lead_ecg_object():
    rec = synthetic_ecg(72)
    ds = to_dataset(rec)
    assert ds.SOPClassUID == TWELVE_LEAD_ECG
    assert ds.Modality == "ECG"
    group = ds.WaveformSequence[0]
    assert group.WaveformOriginality == "ORIGINAL"
    assert group.NumberOfWaveformChannels == 12
    assert group.WaveformSampleInterpretation == "SS" and group.WaveformBitsAllocated == 16
    ch = group.ChannelDefinitionSequence[0]
    assert ch.ChannelSourceSequence[0].CodeValue == "2:1"
    assert ch.ChannelSourceSequence[0].CodingSchemeDesignator == "MDC"
    assert ch.ChannelSensitivityUnitsSequence[0].CodeValue == "uV"
    assert float(ch.ChannelSensitivity) == 2.5
    # pydicom's own decoder agrees with ours (interleaving, sensitivity, units).
    back = pydicom.dcmread(io.BytesIO(to_dicom_bytes(rec)))
    np.testing.assert_allclose(back.waveform_array(0).T / 1000.0, rec.signals_mv, atol=1e-9)


def test_fifteen_leads_or_long_records_become_general_ecg(testdata):
    ptb = read_files(files_for_path(testdata / "ecg/wfdb/ptbdb_s0010_re/s0010_re.hea"))[0]
    assert to_dataset(ptb.record).SOPClassUID == GENERAL_ECG
    long = synthetic_ecg(72, duration_s=40)
    assert to_dataset(long).SOPClassUID == GENERAL_ECG


def test_sampling_rate_outside_the_iod_range_is_refused():
    rec = synthetic_ecg(72, fs=1500)
    with pytest.raises(InvalidRecord, match="200–1000"):
        to_dataset(rec)


def test_uids_are_derived_from_content_so_resending_is_idempotent():
    rec = synthetic_ecg(72)
    a, b = to_dataset(rec), to_dataset(rec)
    assert a.SOPInstanceUID == b.SOPInstanceUID
    other = to_dataset(rec.with_patient(PatientInfo(patient_id="P2")))
    assert other.SOPInstanceUID != a.SOPInstanceUID


def test_chinese_patient_name_and_wfdb_source_survive():
    rec = synthetic_ecg(72).with_patient(PatientInfo("P1", "王^小东", None, "M"))
    files = to_wfdb_files(rec)
    wfdb_rec = read_files(files)[0].record.with_patient(rec.patient)
    back = read_dicom_bytes(to_dicom_bytes(wfdb_rec, institution="BR01"))
    assert back.patient.name == "王^小东"
    assert back.patient.patient_id == "P1" and back.patient.sex == "M"
    assert back.institution_name == "BR01"
    assert_same_within_one_step(wfdb_rec, back)


def test_a_range_too_wide_for_int16_coarsens_the_step_not_the_values():
    rec = synthetic_ecg(72)
    big = replace(rec, signals_mv=rec.signals_mv * 200, resolution_uv=(0.1,) * 12)
    back = read_dicom_bytes(to_dicom_bytes(big))
    steps = np.array(back.resolution_uv)
    assert (steps > 0.1).all()
    assert (np.abs(back.signals_mv - big.signals_mv) <= steps[:, None] / 1000 / 2 + 1e-9).all()
    assert back.leads == STANDARD_12
