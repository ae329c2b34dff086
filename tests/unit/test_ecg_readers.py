"""Every ECG in the shared test data reads into an EcgRecord that agrees with its own header;
bad input gives a clear EcgError (a ValueError), never a crash or a silently wrong rate."""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
import pydicom
import pytest

from ecg_ingest.errors import (
    EcgError,
    MissingSignalFile,
    SamplingRateOutOfRange,
    TruncatedSignal,
    UnknownInterpretation,
    UnreadableEcg,
    UnsupportedFormat,
)
from ecg_ingest.readers import files_for_path, read_files, sniff_format
from ecg_ingest.record import STANDARD_12, Lead, SourceFormat


@pytest.fixture(scope="module")
def ecgdir(testdata) -> Path:
    return testdata / "ecg"


def read_one(path: Path):
    parsed = read_files(files_for_path(path))
    assert len(parsed) == 1
    return parsed[0]


def wfdb_header(path: Path) -> tuple[list[str], list[list[str]]]:
    lines = [ln.split() for ln in path.read_text().splitlines()
             if ln.strip() and not ln.startswith("#")]
    return lines[0], lines[1:]


@pytest.mark.parametrize(("rel", "expected_leads"), [
    ("wfdb/mitdb_100/100.hea", (Lead.II, Lead.V5)),
    ("wfdb/ptbdb_s0010_re/s0010_re.hea", STANDARD_12 + (Lead.X, Lead.Y, Lead.Z)),
])
def test_wfdb_records_match_their_headers(ecgdir, rel, expected_leads):
    path = ecgdir / rel
    rec_line, sig_lines = wfdb_header(path)
    rec = read_one(path).record
    n_sig, fs, n_samp = int(rec_line[1]), float(rec_line[2]), int(rec_line[3])
    assert rec.source_format == SourceFormat.WFDB
    assert len(rec.leads) == n_sig
    assert rec.leads == expected_leads
    assert rec.source_labels == tuple(s[-1] for s in sig_lines)
    assert rec.sampling_rate_hz == fs
    assert rec.n_samples == n_samp
    assert rec.duration_s == pytest.approx(n_samp / fs)
    for k, s in enumerate(sig_lines):
        # fields: file fmt gain[/units] bits zero first-value checksum blocksize label
        gain = float(s[2].split("/")[0])
        zero, first = int(s[4]), int(s[5])
        # WFDB baseline defaults to the ADC zero; the header's first value checks our units.
        assert rec.signals_mv[k, 0] == pytest.approx((first - zero) / gain)
        assert rec.resolution_uv[k] == pytest.approx(1000.0 / gain)
    assert rec.derived_leads == frozenset()


def test_mitdb_modified_lead_is_noted_not_hidden(ecgdir):
    rec = read_one(ecgdir / "wfdb/mitdb_100/100.hea").record
    assert any("MLII" in n for n in rec.notes)


def test_ptb_raw_samples_are_in_millivolts(ecgdir):
    rec = read_one(ecgdir / "wfdb/ptbdb_s0010_re/s0010_re.hea").record
    raw = np.frombuffer((ecgdir / "wfdb/ptbdb_s0010_re/s0010_re.dat").read_bytes(), "<i2")
    raw = raw.reshape(-1, 12)
    np.testing.assert_allclose(rec.signals_mv[:12, :500], raw[:500].T / 2000.0)


def test_dicom_waveform_matches_its_tags(ecgdir):
    path = ecgdir / "dicom/waveform_ecg.dcm"
    parsed = read_one(path)
    rec = parsed.record
    ds = pydicom.dcmread(path)
    group = ds.WaveformSequence[0]
    assert parsed.dicom_bytes == path.read_bytes()
    assert rec.source_format == SourceFormat.DICOM
    assert rec.sampling_rate_hz == float(group.SamplingFrequency)
    assert rec.n_samples == group.NumberOfWaveformSamples
    assert rec.duration_s == pytest.approx(10.0)
    assert len(rec.leads) == group.NumberOfWaveformChannels == 12
    meanings = [c.ChannelSourceSequence[0].CodeMeaning for c in group.ChannelDefinitionSequence]
    assert [str(x) for x in rec.leads] == ["I", "II", "III", "aVR", "aVL", "aVF",
                                          "V1", "V2", "V3", "V4", "V5", "V6"]
    assert meanings[0].startswith("Lead I") and meanings[11] == "Lead V6"
    # Units: raw × sensitivity (µV) → mV, cross-checked with pydicom's own decoder.
    expected_uv = ds.waveform_array(0)
    np.testing.assert_allclose(rec.signals_mv.T, expected_uv / 1000.0)
    assert rec.sop_instance_uid == ds.SOPInstanceUID
    assert rec.patient.patient_id == ds.PatientID
    assert rec.acquired_at is not None and rec.acquired_at.year == 2013


def test_aecg_matches_its_xml(ecgdir):
    path = ecgdir / "aecg/Example_aECG.xml"
    text = path.read_text()
    rec = read_one(path).record
    inc = float(re.search(r'<increment value="([\d.]+)" unit="s"', text).group(1))
    assert rec.source_format == SourceFormat.AECG
    assert rec.sampling_rate_hz == pytest.approx(1 / inc) == 500
    first_digits = re.search(r'MDC_ECG_LEAD_I".*?<scale value="([\d.]+)" unit="uV"/>.*?'
                             r"<digits>([-\d\s]+?)</digits>", text, re.S)
    scale = float(first_digits.group(1))
    digits = first_digits.group(2).split()
    assert rec.n_samples == len(digits) == 5000
    assert rec.duration_s == pytest.approx(10.0)
    assert rec.leads == STANDARD_12
    np.testing.assert_allclose(rec.lead(Lead.I)[:20], np.array(digits[:20], float) * scale / 1000)
    assert rec.patient.patient_id == "SBJ-123"
    assert rec.patient.sex == "M"
    assert rec.device.model == "ELI250"


def test_scp_ecg_is_refused_naming_the_format(ecgdir):
    with pytest.raises(UnsupportedFormat, match="SCP-ECG") as exc:
        read_one(ecgdir / "scp/test.scp")
    assert exc.value.format_name == "SCP-ECG"
    assert isinstance(exc.value, ValueError)


# --- bad input --------------------------------------------------------------------------------

def copy_record(src: Path, dst: Path) -> None:
    for f in src.parent.iterdir():
        (dst / f.name).write_bytes(f.read_bytes())


def test_header_naming_a_missing_signal_file(ecgdir):
    files = files_for_path(ecgdir / "wfdb/ptbdb_s0010_re/s0010_re.hea")
    del files["s0010_re.xyz"]
    with pytest.raises(MissingSignalFile, match=r"s0010_re\.xyz"):
        read_files(files)


def test_missing_signal_file_from_a_path(tmp_path, ecgdir):
    hea = ecgdir / "wfdb/mitdb_100/100.hea"
    (tmp_path / "100.hea").write_bytes(hea.read_bytes())
    with pytest.raises(MissingSignalFile, match=r"100\.dat"):
        read_files(files_for_path(tmp_path / "100.hea"))


@pytest.mark.parametrize("keep", [0.5, 0.999])
def test_truncated_dat(ecgdir, keep):
    files = files_for_path(ecgdir / "wfdb/mitdb_100/100.hea")
    files["100.dat"] = files["100.dat"][: int(len(files["100.dat"]) * keep)]
    with pytest.raises(TruncatedSignal, match="100.dat"):
        read_files(files)


@pytest.mark.parametrize(("record_line", "match"), [
    ("100 2", "no sampling frequency"),
    ("100 2 50 650000", "outside"),
    ("100 2 5000 650000", "outside"),
])
def test_bad_sampling_rate_in_header(ecgdir, record_line, match):
    files = files_for_path(ecgdir / "wfdb/mitdb_100/100.hea")
    text = files["100.hea"].decode().replace("100 2 360 650000", record_line)
    files["100.hea"] = text.encode()
    with pytest.raises(SamplingRateOutOfRange, match=match):
        read_files(files)


def test_lead_in_units_that_are_not_voltage(ecgdir):
    files = files_for_path(ecgdir / "wfdb/mitdb_100/100.hea")
    files["100.hea"] = files["100.hea"].replace(b"212 200 11", b"212 200/mmHg 11", 1)
    with pytest.raises(UnknownInterpretation, match="mmHg"):
        read_files(files)


def dicom_variant(path: Path, change) -> bytes:
    ds = pydicom.dcmread(path)
    change(ds)
    buf = io.BytesIO()
    ds.save_as(buf)
    return buf.getvalue()


@pytest.mark.parametrize("interp", ["MB", "AB", "ZZ"])
def test_dicom_unknown_sample_interpretation(ecgdir, interp):
    def change(ds):
        ds.WaveformSequence[0].WaveformSampleInterpretation = interp

    data = dicom_variant(ecgdir / "dicom/waveform_ecg.dcm", change)
    with pytest.raises(UnknownInterpretation, match=interp):
        read_files({"x.dcm": data})


def test_dicom_truncated_waveform_data(ecgdir):
    def change(ds):
        g = ds.WaveformSequence[0]
        g.WaveformData = bytes(g.WaveformData)[:1000]

    with pytest.raises(TruncatedSignal):
        read_files({"x.dcm": dicom_variant(ecgdir / "dicom/waveform_ecg.dcm", change)})


def test_dicom_without_sensitivity_has_unknown_units(ecgdir):
    def change(ds):
        for ch in ds.WaveformSequence[0].ChannelDefinitionSequence:
            del ch.ChannelSensitivity

    with pytest.raises(UnknownInterpretation, match="Sensitivity"):
        read_files({"x.dcm": dicom_variant(ecgdir / "dicom/waveform_ecg.dcm", change)})


def test_dicom_image_is_not_an_ecg(testdata):
    data = (testdata / "dicom/single/CT_small.dcm").read_bytes()
    with pytest.raises(UnsupportedFormat, match="not an ECG"):
        read_files({"ct.dcm": data})


@pytest.mark.parametrize(("files", "error"), [
    ({"junk.bin": b"\x00\x01garbage" * 10}, UnsupportedFormat),
    ({"100.dat": b"\x00" * 300}, UnsupportedFormat),
    ({}, UnsupportedFormat),
    ({"a.xml": b"<AnnotatedECG xmlns='urn:hl7-org:v3'><broken"}, UnreadableEcg),
    ({"a.xml": b"<?xml version='1.0'?><!DOCTYPE x [<!ENTITY a 'b'>]><x/>"}, UnreadableEcg),
    ({"a.xml": b"<html/>"}, UnsupportedFormat),
    ({"a.dcm": b"\x00" * 128 + b"DICM" + b"\x02\x00"}, UnreadableEcg),
])
def test_garbage_is_refused_with_a_reason(files, error):
    with pytest.raises(error) as exc:
        read_files(files)
    assert isinstance(exc.value, EcgError) and str(exc.value)


def test_sniffing_uses_content_before_names(ecgdir):
    dcm = (ecgdir / "dicom/waveform_ecg.dcm").read_bytes()
    assert sniff_format("renamed.xml", dcm) == SourceFormat.DICOM
    assert sniff_format("x", (ecgdir / "scp/test.scp").read_bytes()) == SourceFormat.SCP
    assert sniff_format("100.hea", b"100 2 360 650000\n") == SourceFormat.WFDB
