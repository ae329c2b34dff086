"""EcgRecord ⇄ DICOM ECG waveform objects (PS3.3 A.34: 12-lead and General ECG IODs).

Writing and reading live together so they mirror each other: whatever :func:`to_dataset` writes,
:func:`record_from_dataset` reads back to the same millivolts (within one quantisation step).
"""

from __future__ import annotations

import hashlib
import io
import logging
from datetime import UTC, date, datetime

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.errors import InvalidDicomError
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, ExplicitVRLittleEndian, generate_uid

from ecg_ingest.errors import (
    EcgError,
    InvalidRecord,
    TruncatedSignal,
    UnknownInterpretation,
    UnreadableEcg,
    UnsupportedFormat,
)
from ecg_ingest.record import (
    STANDARD_12,
    DeviceInfo,
    EcgRecord,
    Lead,
    PatientInfo,
    SourceFormat,
    complete_limb_leads,
    lead_from_label,
)

logger = logging.getLogger(__name__)

TWELVE_LEAD_ECG = "1.2.840.10008.5.1.4.1.1.9.1.1"
GENERAL_ECG = "1.2.840.10008.5.1.4.1.1.9.1.2"
AMBULATORY_ECG = "1.2.840.10008.5.1.4.1.1.9.1.3"
ECG_SOP_CLASSES = {TWELVE_LEAD_ECG: "12-lead ECG", GENERAL_ECG: "General ECG",
                   AMBULATORY_ECG: "Ambulatory ECG"}

# SCP-ECG lead codes (EN 1064 section 3, also used by DICOM CID 3001 as 5.6.3-9-N / MDC 2:N).
_SCP_LEAD: dict[int, Lead] = {
    1: Lead.I, 2: Lead.II, 3: Lead.V1, 4: Lead.V2, 5: Lead.V3, 6: Lead.V4, 7: Lead.V5,
    8: Lead.V6, 16: Lead.X, 17: Lead.Y, 18: Lead.Z, 61: Lead.III, 62: Lead.AVR, 63: Lead.AVL,
    64: Lead.AVF,
}
_MDC_CODE: dict[Lead, int] = {lead: n for n, lead in _SCP_LEAD.items()}
_MEANING: dict[Lead, str] = {lead: f"Lead {lead.value}" for lead in Lead}

# Sample interpretation (003A,0220... PS3.3 C.10.9.1.5) → numpy dtype and bits allocated.
_INTERPRETATION: dict[str, tuple[str, int]] = {
    "SB": ("i1", 8), "UB": ("u1", 8), "SS": ("<i2", 16), "US": ("<u2", 16),
    "SL": ("<i4", 32), "UL": ("<u4", 32),
}
_UNITS_TO_MV = {"uv": 1e-3, "mv": 1.0, "v": 1e3}

# The 12-lead IOD limits (PS3.3 A.34.3.4): 1–13 channels, 200–1000 Hz, ≤ 16384 samples.
_TWELVE_LEAD_MAX_SAMPLES = 16384


def _lead_for_channel(ch: Dataset) -> tuple[Lead | None, str]:
    src = ch.get("ChannelSourceSequence")
    label = str(ch.get("ChannelLabel", "") or "")
    if not src:
        lead, _ = lead_from_label(label) if label else (None, False)
        return lead, label
    item = src[0]
    code = str(item.get("CodeValue", "") or "")
    meaning = str(item.get("CodeMeaning", "") or "")
    number: int | None = None
    for prefix in ("5.6.3-9-", "2:"):
        if code.startswith(prefix) and code[len(prefix):].isdigit():
            number = int(code[len(prefix):])
    if number is None and code.isdigit() and int(code) >= 131072:
        number = int(code) - 131072  # MDC_ECG_LEAD_* as a 32-bit code: partition 2 << 16
    lead = _SCP_LEAD.get(number) if number is not None else None
    if lead is None:
        lead, _ = lead_from_label(meaning or label)
    return lead, meaning or label or code


def record_from_dataset(ds: Dataset) -> EcgRecord:
    """Read an ECG waveform dataset into an :class:`EcgRecord`.

    Uses the first ORIGINAL multiplex group (the rhythm); derived groups such as median beats
    are not the recording. Values become mV as ``(raw * sensitivity * correction + baseline)``
    in the channel's units (PS3.3 C.10.9.1.4.3).

    Raises:
        UnsupportedFormat: not an ECG waveform SOP class.
        UnknownInterpretation: sample encoding or units that cannot be mapped to mV.
        TruncatedSignal: Waveform Data shorter than channels × samples.
        UnreadableEcg / SamplingRateOutOfRange / InvalidRecord: other inconsistencies.
    """
    sop_class = str(ds.get("SOPClassUID", ""))
    if sop_class not in ECG_SOP_CLASSES:
        raise UnsupportedFormat(
            f"DICOM object of SOP class {sop_class or 'unknown'} is not an ECG waveform",
            "DICOM",
        )
    groups = ds.get("WaveformSequence")
    if not groups:
        raise UnreadableEcg("DICOM ECG has no Waveform Sequence")
    group = next((g for g in groups if g.get("WaveformOriginality") == "ORIGINAL"), groups[0])
    try:
        n_ch = int(group.NumberOfWaveformChannels)
        n_samp = int(group.NumberOfWaveformSamples)
        fs = float(group.SamplingFrequency)
        interp = str(group.WaveformSampleInterpretation)
        bits = int(group.WaveformBitsAllocated)
        raw_bytes = bytes(group.WaveformData)
        channels = list(group.ChannelDefinitionSequence)
    except (AttributeError, TypeError, ValueError) as exc:
        raise UnreadableEcg(f"DICOM waveform group is incomplete: {exc}") from exc
    if interp not in _INTERPRETATION:
        raise UnknownInterpretation(
            f"waveform sample interpretation {interp!r} is not one we decode "
            f"(supported: {', '.join(_INTERPRETATION)})"
        )
    dtype, want_bits = _INTERPRETATION[interp]
    if bits != want_bits:
        raise UnknownInterpretation(f"interpretation {interp} with {bits} bits allocated")
    if len(channels) != n_ch or n_ch < 1 or n_samp < 1:
        raise UnreadableEcg(f"{len(channels)} channel definitions for {n_ch} channels")
    need = n_ch * n_samp * bits // 8
    if len(raw_bytes) < need:
        raise TruncatedSignal(
            f"Waveform Data holds {len(raw_bytes)} bytes; {n_ch} channels × {n_samp} samples "
            f"need {need}"
        )
    # Samples are interleaved by channel (PS3.3 C.10.9.1.7).
    raw = np.frombuffer(raw_bytes[:need], dtype=dtype).reshape(n_samp, n_ch).T

    leads: list[Lead] = []
    rows: list[np.ndarray] = []
    res: list[float] = []
    labels: list[str] = []
    notes: list[str] = []
    for k, ch in enumerate(channels):
        lead, label = _lead_for_channel(ch)
        if lead is None:
            notes.append(f"channel {k + 1} ({label or 'unlabelled'}) is not an ECG lead: skipped")
            continue
        if lead in leads:
            notes.append(f"channel {k + 1} repeats lead {lead}: skipped")
            continue
        if "ChannelSensitivity" not in ch:
            raise UnknownInterpretation(f"lead {lead} has no Channel Sensitivity: units unknown")
        units_seq = ch.get("ChannelSensitivityUnitsSequence")
        unit = str(units_seq[0].get("CodeValue", "")) if units_seq else ""
        to_mv = _UNITS_TO_MV.get(unit.lower())
        if to_mv is None:
            raise UnknownInterpretation(
                f"lead {lead} has sensitivity units {unit!r}, not a voltage")
        sens = float(ch.ChannelSensitivity)
        corr = float(ch.get("ChannelSensitivityCorrectionFactor", 1) or 1)
        base = float(ch.get("ChannelBaseline", 0) or 0)
        rows.append((raw[k].astype(np.float64) * sens * corr + base) * to_mv)
        res.append(abs(sens * corr) * to_mv * 1000.0)
        leads.append(lead)
        labels.append(label)
    if not leads:
        raise UnreadableEcg("DICOM waveform has no recognisable ECG lead")

    out_leads, signals, out_res, derived = complete_limb_leads(leads, np.vstack(rows), res)
    label_by_lead = dict(zip(leads, labels, strict=True))
    return EcgRecord(
        leads=out_leads,
        signals_mv=signals,
        sampling_rate_hz=fs,
        source_format=SourceFormat.DICOM,
        resolution_uv=out_res,
        acquired_at=_acquired_at(ds),
        patient=PatientInfo(
            patient_id=(str(ds.get("PatientID", "") or "").strip() or None),
            name=(str(ds.get("PatientName", "") or "").strip() or None),
            birth_date=_parse_da(ds.get("PatientBirthDate")),
            sex=(str(ds.get("PatientSex", "") or "").strip() or None),
        ),
        device=DeviceInfo(
            manufacturer=str(ds.get("Manufacturer", "") or "") or None,
            model=str(ds.get("ManufacturerModelName", "") or "") or None,
            software=_first(ds.get("SoftwareVersions")),
        ),
        source_labels=tuple(label_by_lead.get(x, f"derived {x}") for x in out_leads),
        derived_leads=derived,
        notes=tuple(notes),
        sop_instance_uid=str(ds.get("SOPInstanceUID", "") or "") or None,
        study_instance_uid=str(ds.get("StudyInstanceUID", "") or "") or None,
        series_instance_uid=str(ds.get("SeriesInstanceUID", "") or "") or None,
        institution_name=str(ds.get("InstitutionName", "") or "") or None,
    )


def read_dicom_bytes(data: bytes) -> EcgRecord:
    """Parse DICOM bytes and read the ECG; every parser failure becomes an :class:`EcgError`."""
    try:
        ds = pydicom.dcmread(io.BytesIO(data), force=True)
    except (InvalidDicomError, EOFError, OSError, ValueError, KeyError) as exc:
        raise UnreadableEcg(f"not a readable DICOM file: {exc}") from exc
    if "SOPClassUID" not in ds:
        raise UnreadableEcg("DICOM file without a SOP Class UID")
    try:
        return record_from_dataset(ds)
    except EcgError:
        raise
    except (AttributeError, TypeError, ValueError, KeyError, IndexError) as exc:
        # pydicom decodes lazily; a broken element only fails when touched.
        raise UnreadableEcg(f"DICOM ECG could not be decoded: {exc}") from exc


def _first(value: object) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, list | tuple | pydicom.multival.MultiValue):
        return str(value[0]) if len(value) else None
    return str(value)


def _parse_da(value: object) -> date | None:
    text = str(value or "").strip()
    if len(text) == 8 and text.isdigit():
        try:
            return datetime.strptime(text, "%Y%m%d").date()
        except ValueError:
            return None
    return None


def _acquired_at(ds: Dataset) -> datetime | None:
    text = str(ds.get("AcquisitionDateTime", "") or "").strip()
    if not text:
        day = str(ds.get("ContentDate", "") or "").strip()
        time = str(ds.get("ContentTime", "") or "").strip()
        text = day + time if day else ""
    if len(text) < 8:
        return None
    try:
        return pydicom.valuerep.DT(text.split("&")[0].split("+")[0])
    except ValueError:
        return None


def _choose_sop_class(record: EcgRecord) -> str:
    fs_ok = 200 <= record.sampling_rate_hz <= 1000
    if (fs_ok and len(record.leads) <= 13 and set(record.leads) <= set(STANDARD_12)
            and record.n_samples <= _TWELVE_LEAD_MAX_SAMPLES):
        return TWELVE_LEAD_ECG
    if len(record.leads) > 24:
        raise InvalidRecord(f"{len(record.leads)} leads: more than a General ECG object holds")
    return GENERAL_ECG


def _ds_number(value: float) -> str:
    """Format a step for a DS element (16 characters at most) without losing the value."""
    for digits in (12, 10, 8, 6):
        text = f"{value:.{digits}g}"
        if len(text) <= 16:
            return text
    return f"{value:.6e}"


def _uid_from(*parts: str) -> str:
    digest = hashlib.sha256("\x1f".join(parts).encode()).hexdigest()
    return generate_uid(entropy_srcs=[digest])


def to_dataset(record: EcgRecord, *, institution: str | None = None,
               accession_number: str | None = None) -> Dataset:
    """Build a DICOM ECG waveform object holding ``record``.

    The SOP class is 12-lead ECG when the record fits that IOD (standard leads, ≤ 16384 samples),
    else General ECG. Each channel is stored as 16-bit signed integers with a sensitivity equal
    to the source's own quantisation step when the range allows, so reading it back gives the
    same samples. UIDs the record lacks are derived from its content, so converting the same
    file twice yields the same object (the worklist is idempotent on the SOP Instance UID).

    Raises:
        InvalidRecord: the sampling rate is outside 200–1000 Hz (the IODs' limit) or there are
            more than 24 leads.
    """
    if not 200 <= record.sampling_rate_hz <= 1000:
        raise InvalidRecord(
            f"sampling rate {record.sampling_rate_hz:g} Hz is outside 200–1000 Hz, the range "
            "DICOM ECG objects allow; resample first"
        )
    sop_class = _choose_sop_class(record)
    content_key = hashlib.sha256(record.signals_mv.tobytes()).hexdigest()
    pid = record.patient.patient_id or ""
    sop_uid = record.sop_instance_uid or _uid_from("sop", content_key, pid)
    study_uid = record.study_instance_uid or _uid_from("study", content_key, pid)
    series_uid = record.series_instance_uid or _uid_from("series", content_key, pid)
    when = record.acquired_at or datetime.now(UTC)

    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"  # UTF-8: Chinese names intact
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_uid
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.Modality = "ECG"
    ds.PatientName = record.patient.name or ""
    ds.PatientID = record.patient.patient_id or ""
    birth = record.patient.birth_date
    ds.PatientBirthDate = birth.strftime("%Y%m%d") if birth else ""
    sex = (record.patient.sex or "").upper()[:1]
    ds.PatientSex = sex if sex in ("M", "F", "O") else ""
    ds.StudyDate = ds.ContentDate = when.strftime("%Y%m%d")
    ds.StudyTime = ds.ContentTime = when.strftime("%H%M%S")
    ds.AcquisitionDateTime = when.strftime("%Y%m%d%H%M%S")
    ds.ReferringPhysicianName = ""
    ds.StudyID = ""
    ds.AccessionNumber = accession_number or ""
    ds.SeriesNumber = 1
    ds.InstanceNumber = 1
    ds.StudyDescription = "ECG"
    ds.Manufacturer = record.device.manufacturer or ""
    if record.device.model:
        ds.ManufacturerModelName = record.device.model
    if record.device.software:
        ds.SoftwareVersions = record.device.software
    if institution or record.institution_name:
        ds.InstitutionName = institution or record.institution_name
    ds.AcquisitionContextSequence = DicomSequence([])

    raw = np.empty((len(record.leads), record.n_samples), dtype="<i2")
    channels = []
    for k, lead in enumerate(record.leads):
        x_uv = record.signals_mv[k] * 1000.0
        peak = float(np.max(np.abs(x_uv))) if x_uv.size else 0.0
        wanted = record.resolution_uv[k] if record.resolution_uv else 1.0
        # The source step when it fits int16; a coarser step only when the range demands it.
        step = max(wanted, peak / 32000.0)
        step = float(_ds_number(step))
        raw[k] = np.clip(np.rint(x_uv / step), -32768, 32767).astype("<i2")
        ch = Dataset()
        src = Dataset()
        src.CodeValue = f"2:{_MDC_CODE[lead]}"
        src.CodingSchemeDesignator = "MDC"
        src.CodeMeaning = _MEANING[lead]
        ch.ChannelSourceSequence = DicomSequence([src])
        ch.ChannelLabel = lead.value
        ch.ChannelSensitivity = _ds_number(step)
        unit = Dataset()
        unit.CodeValue = "uV"
        unit.CodingSchemeDesignator = "UCUM"
        unit.CodeMeaning = "microvolt"
        ch.ChannelSensitivityUnitsSequence = DicomSequence([unit])
        ch.ChannelSensitivityCorrectionFactor = "1"
        ch.ChannelBaseline = "0"
        ch.ChannelSampleSkew = "0"
        ch.WaveformBitsStored = 16
        channels.append(ch)

    group = Dataset()
    group.MultiplexGroupTimeOffset = "0"
    group.WaveformOriginality = "ORIGINAL"
    group.NumberOfWaveformChannels = len(record.leads)
    group.NumberOfWaveformSamples = record.n_samples
    group.SamplingFrequency = _ds_number(record.sampling_rate_hz)
    group.MultiplexGroupLabel = "RHYTHM"
    group.ChannelDefinitionSequence = DicomSequence(channels)
    group.WaveformBitsAllocated = 16
    group.WaveformSampleInterpretation = "SS"
    group.WaveformData = raw.T.tobytes()  # interleaved: sample-major
    ds.WaveformSequence = DicomSequence([group])

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds.file_meta = meta
    return ds


def to_dicom_bytes(record: EcgRecord, *, institution: str | None = None,
                   accession_number: str | None = None) -> bytes:
    """:func:`to_dataset`, encoded as a Part 10 file (Explicit VR Little Endian)."""
    ds = to_dataset(record, institution=institution, accession_number=accession_number)
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()
