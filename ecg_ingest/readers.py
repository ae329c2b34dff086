"""File formats → :class:`~ecg_ingest.record.EcgRecord`.

One entry point, :func:`read_files`, takes the uploaded files by name (a WFDB record is a ``.hea``
header plus the signal files it names) and sniffs each format from its bytes: DICOM ECG waveform
objects, WFDB, HL7 aECG XML. SCP-ECG is recognised and refused with :class:`UnsupportedFormat`
naming it: no maintained pure-Python SCP-ECG decoder exists on PyPI, and a home-made Huffman /
reference-beat decoder checked against one sample file would be a silently-wrong-trace risk.
"""

from __future__ import annotations

import logging
import math
import re
import struct
import tempfile
import warnings
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path, PurePath
from typing import Any

import numpy as np

from ecg_ingest.dicom_writer import read_dicom_bytes
from ecg_ingest.errors import (
    EcgError,
    MissingSignalFile,
    SamplingRateOutOfRange,
    TruncatedSignal,
    UnknownInterpretation,
    UnreadableEcg,
    UnsupportedFormat,
)
from ecg_ingest.record import (
    DeviceInfo,
    EcgRecord,
    Lead,
    PatientInfo,
    SourceFormat,
    complete_limb_leads,
    lead_from_label,
)

logger = logging.getLogger(__name__)

_HL7 = "urn:hl7-org:v3"
_NS = {"h": _HL7}
_XSI_TYPE = "{http://www.w3.org/2001/XMLSchema-instance}type"
_UNITS_TO_MV = {"uv": 1e-3, "mv": 1.0, "v": 1e3}

# WFDB storage formats → bytes per sample (signal(5) in the WFDB manual).
_WFDB_BYTES_PER_SAMPLE = {8: 1.0, 16: 2.0, 24: 3.0, 32: 4.0, 61: 2.0, 80: 1.0, 160: 2.0,
                          212: 1.5, 310: 4 / 3, 311: 4 / 3}


@dataclass(frozen=True)
class ParsedEcg:
    """One ECG read from the upload: the record, where it came from, the DICOM bytes if any."""

    record: EcgRecord
    source_name: str
    dicom_bytes: bytes | None = None


def sniff_format(name: str, data: bytes) -> SourceFormat | None:
    """Guess the format of one file from its bytes (the name only breaks ties).

    Returns None for a file that is none of the formats (e.g. a WFDB ``.dat``).
    """
    head = data[:4096]
    if len(data) >= 132 and data[128:132] == b"DICM":
        return SourceFormat.DICOM
    if head.lstrip()[:1] == b"<" or head.startswith(b"\xef\xbb\xbf<"):
        return SourceFormat.AECG
    if _looks_like_scp(data):
        return SourceFormat.SCP
    suffix = PurePath(name).suffix.lower()
    if suffix == ".hea":
        return SourceFormat.WFDB
    if suffix == ".dcm":
        return SourceFormat.DICOM
    if suffix == ".scp":
        return SourceFormat.SCP
    return None


def _looks_like_scp(data: bytes) -> bool:
    # EN 1064: CRC(2) + record length(4), then section 0's header: CRC(2), id 0 (2), length(4).
    if len(data) < 22:
        return False
    (length,) = struct.unpack_from("<I", data, 2)
    (section_id,) = struct.unpack_from("<H", data, 8)
    return length == len(data) and section_id == 0


def read_files(files: Mapping[str, bytes]) -> list[ParsedEcg]:
    """Read every ECG in ``files`` (file name → bytes).

    A WFDB record is its ``.hea`` plus the signal files the header names, all in ``files``.
    Stops at the first bad file, so an upload is accepted whole or refused with one reason.

    Raises:
        UnsupportedFormat: SCP-ECG, an unknown format, or a signal file without its header.
        UnreadableEcg (and subclasses): a file in a known format that is broken.
    """
    by_name = {PurePath(n).name: b for n, b in files.items()}
    formats = {n: sniff_format(n, b) for n, b in by_name.items()}
    used: set[str] = set()
    out: list[ParsedEcg] = []
    for name, data in by_name.items():
        fmt = formats[name]
        if fmt == SourceFormat.SCP:
            raise UnsupportedFormat(
                f"{name}: SCP-ECG (EN 1064) is not supported: no maintained pure-Python "
                "decoder is available; export the ECG as DICOM waveform, HL7 aECG or WFDB",
                "SCP-ECG",
            )
        if fmt == SourceFormat.DICOM:
            out.append(ParsedEcg(read_dicom_bytes(data), name, data))
            used.add(name)
        elif fmt == SourceFormat.AECG:
            out.append(ParsedEcg(read_aecg(data), name))
            used.add(name)
        elif fmt == SourceFormat.WFDB:
            record, consumed = read_wfdb(name, data, by_name)
            out.append(ParsedEcg(record, name))
            used.add(name)
            used.update(consumed)
    leftovers = [n for n in by_name if n not in used]
    if leftovers:
        raise UnsupportedFormat(
            f"unrecognised file(s) {', '.join(sorted(leftovers))}: not DICOM, HL7 aECG or a WFDB "
            "header (a WFDB signal file needs its .hea in the same upload)",
        )
    if not out:
        raise UnsupportedFormat("no ECG file in the upload")
    return out


def files_for_path(path: str | Path) -> dict[str, bytes]:
    """The files that make up the ECG at ``path``: a ``.hea`` brings its signal files along.

    A ``.dat`` path is taken as naming its record's header. Signal files that do not exist are
    left out; :func:`read_files` then names them in a :class:`MissingSignalFile` error.
    """
    p = Path(path)
    if p.suffix.lower() == ".dat" and p.with_suffix(".hea").exists():
        p = p.with_suffix(".hea")
    files = {p.name: p.read_bytes()}
    if p.suffix.lower() == ".hea":
        for fname in _wfdb_signal_files(files[p.name].decode("latin-1")):
            sib = p.parent / fname
            if sib.is_file():
                files[fname] = sib.read_bytes()
    return files


# --- WFDB -------------------------------------------------------------------------------------

def _header_lines(text: str) -> list[str]:
    return [ln.strip() for ln in text.splitlines()
            if ln.strip() and not ln.lstrip().startswith("#")]


def _wfdb_signal_files(text: str) -> list[str]:
    lines = _header_lines(text)
    names: list[str] = []
    for line in lines[1:]:
        fname = line.split()[0]
        if fname not in names and fname != "~":
            names.append(fname)
    return names


def read_wfdb(header_name: str, header: bytes, files: Mapping[str, bytes]
              ) -> tuple[EcgRecord, set[str]]:
    """Read one WFDB record whose header is ``header``; its signal files come from ``files``.

    Checks what the WFDB library would otherwise paper over: a header with no sampling frequency
    (the library silently assumes 250 Hz), signal files that are missing or shorter than the
    header says, and units that are not a voltage.

    Returns:
        the record and the names of the signal files it used.
    """
    try:
        text = header.decode("latin-1")
    except UnicodeDecodeError as exc:  # pragma: no cover - latin-1 decodes any byte
        raise UnreadableEcg(f"{header_name}: header is not text") from exc
    lines = _header_lines(text)
    if not lines:
        raise UnreadableEcg(f"{header_name}: empty WFDB header")
    rec = lines[0].split()
    if "/" in rec[0]:
        raise UnsupportedFormat(f"{header_name}: multi-segment WFDB records are not supported",
                                "WFDB multi-segment")
    if len(rec) < 3:
        raise SamplingRateOutOfRange(f"{header_name}: header gives no sampling frequency")
    try:
        n_sig = int(rec[1])
        fs = float(re.split(r"[/(]", rec[2])[0])
    except ValueError as exc:
        raise UnreadableEcg(f"{header_name}: bad record line {lines[0]!r}") from exc
    if not 100 <= fs <= 2000:
        raise SamplingRateOutOfRange(f"{header_name}: sampling rate {fs:g} Hz is outside "
                                     "100–2000 Hz")
    if len(lines) - 1 < n_sig:
        raise UnreadableEcg(f"{header_name}: header promises {n_sig} signals, describes "
                            f"{len(lines) - 1}")
    sig_files = _wfdb_signal_files(text)
    missing = [f for f in sig_files if f not in files]
    if missing:
        raise MissingSignalFile(f"{header_name}: signal file(s) {', '.join(missing)} named by "
                                "the header were not supplied")

    import wfdb  # imported here: it pulls in pandas/matplotlib, which readers of DICOM never need

    stem = PurePath(header_name).stem
    with tempfile.TemporaryDirectory(prefix="yigong-wfdb-") as tmp:
        (Path(tmp) / f"{stem}.hea").write_bytes(header)
        for f in sig_files:
            (Path(tmp) / f).write_bytes(files[f])
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                hdr = wfdb.rdheader(str(Path(tmp) / stem))
                _check_wfdb_sizes(header_name, hdr, files)
                wrec = wfdb.rdrecord(str(Path(tmp) / stem), physical=True)
        except EcgError:
            raise
        except Exception as exc:  # noqa: BLE001 - wfdb raises bare ValueError/IndexError/...
            raise UnreadableEcg(f"{header_name}: WFDB record could not be read: {exc}") from exc

    leads: list[Lead] = []
    rows: list[np.ndarray] = []
    res: list[float] = []
    labels: list[str] = []
    notes: list[str] = []
    quality: list[str] = []
    for k in range(wrec.n_sig):
        label = str(wrec.sig_name[k])
        lead, modified = lead_from_label(label)
        if lead is None:
            notes.append(f"signal {k + 1} ({label}) is not an ECG lead: skipped")
            continue
        if lead in leads:
            notes.append(f"signal {k + 1} ({label}) repeats lead {lead}: skipped")
            continue
        unit = str(wrec.units[k] or "mV")
        to_mv = _UNITS_TO_MV.get(unit.lower())
        if to_mv is None:
            raise UnknownInterpretation(f"{header_name}: lead {label} is in {unit!r}, not a "
                                        "voltage")
        gain = float(wrec.adc_gain[k])
        if gain == 0:
            raise UnknownInterpretation(f"{header_name}: lead {label} is uncalibrated (gain 0)")
        x = np.asarray(wrec.p_signal[:, k], dtype=np.float64) * to_mv
        bad = ~np.isfinite(x)
        if bad.any():
            quality.append(f"signal quality: lead {lead} has {int(bad.sum())} missing samples")
            x[bad] = 0.0
        if modified:
            notes.append(f"{label} (modified limb lead) shown as {lead}")
        leads.append(lead)
        rows.append(x)
        res.append(1000.0 * to_mv / gain)
        labels.append(label)
    if not leads:
        raise UnreadableEcg(f"{header_name}: no ECG lead among {list(wrec.sig_name)}")
    out_leads, signals, out_res, derived = complete_limb_leads(leads, np.vstack(rows), res)
    label_by_lead = dict(zip(leads, labels, strict=True))
    acquired = None
    if wrec.base_date is not None:
        acquired = datetime.combine(wrec.base_date, wrec.base_time or datetime.min.time())
    record = EcgRecord(
        leads=out_leads, signals_mv=signals, sampling_rate_hz=float(wrec.fs),
        source_format=SourceFormat.WFDB, resolution_uv=out_res, acquired_at=acquired,
        patient=PatientInfo(sex=_wfdb_sex(wrec.comments or [])),
        source_labels=tuple(label_by_lead.get(x, f"derived {x}") for x in out_leads),
        derived_leads=derived, notes=tuple(notes), quality_flags=tuple(quality),
    )
    return record, set(sig_files)


def _check_wfdb_sizes(header_name: str, hdr: Any, files: Mapping[str, bytes]) -> None:
    """A truncated .dat must be an error: wfdb would read fewer samples or pad silently."""
    if hdr.sig_len is None:
        return
    per_file: dict[str, list[int]] = {}
    for k, fname in enumerate(hdr.file_name):
        per_file.setdefault(fname, []).append(k)
    for fname, idx in per_file.items():
        fmt = int(hdr.fmt[idx[0]])
        if fmt not in _WFDB_BYTES_PER_SAMPLE:
            raise UnknownInterpretation(f"{header_name}: WFDB storage format {fmt} is not "
                                        "supported")
        spf = sum(int((hdr.samps_per_frame or [1] * hdr.n_sig)[k] or 1) for k in idx)
        offset = int((hdr.byte_offset or [0] * hdr.n_sig)[idx[0]] or 0)
        need = offset + math.ceil(hdr.sig_len * spf * _WFDB_BYTES_PER_SAMPLE[fmt])
        have = len(files[fname])
        if have < need:
            raise TruncatedSignal(
                f"{header_name}: {fname} holds {have} bytes; {hdr.sig_len} samples of "
                f"{len(idx)} signal(s) in format {fmt} need {need}"
            )


def _wfdb_sex(comments: list[str]) -> str | None:
    for c in comments:
        m = re.search(r"\bsex:\s*(male|female|m|f)\b", c, re.IGNORECASE)
        if m:
            return m.group(1)[0].upper()
    return None


# --- HL7 aECG ---------------------------------------------------------------------------------

def _pq_mv(el: ET.Element | None, what: str) -> float:
    if el is None:
        raise UnknownInterpretation(f"aECG sequence has no {what}")
    unit = (el.get("unit") or "").lower()
    if unit not in _UNITS_TO_MV:
        raise UnknownInterpretation(f"aECG {what} unit {el.get('unit')!r} is not a voltage")
    return float(el.get("value", "0")) * _UNITS_TO_MV[unit]


def _ts(value: str | None) -> datetime | None:
    text = (value or "").split(".")[0].split("+")[0].split("-")[0]
    for fmt, n in (("%Y%m%d%H%M%S", 14), ("%Y%m%d%H%M", 12), ("%Y%m%d", 8)):
        if len(text) >= n:
            try:
                return datetime.strptime(text[:n], fmt)
            except ValueError:
                return None
    return None


def read_aecg(data: bytes) -> EcgRecord:
    """Read the rhythm series of an HL7 v3 Annotated ECG (aECG) document.

    Lead values are ``origin + scale × digit`` (HL7 SLIST_PQ) converted to mV; the sampling rate
    is the reciprocal of the time sequence's increment. Derived series (median beats) are not
    the recording and are ignored.

    Raises:
        UnreadableEcg: not well-formed XML, a DTD (refused: entity expansion), no rhythm series.
        UnknownInterpretation: units that are not voltages / seconds.
    """
    if b"<!DOCTYPE" in data[:4096] or b"<!ENTITY" in data:
        raise UnreadableEcg("aECG with a DTD or entities is refused")
    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        raise UnreadableEcg(f"not well-formed XML: {exc}") from exc
    if root.tag != f"{{{_HL7}}}AnnotatedECG":
        raise UnsupportedFormat(f"XML root {root.tag!r} is not an HL7 AnnotatedECG", "XML")
    series_list = root.findall("h:component/h:series", _NS)
    series = next((s for s in series_list
                   if (s.find("h:code", _NS) is not None
                       and s.find("h:code", _NS).get("code") == "RHYTHM")),
                  series_list[0] if series_list else None)
    if series is None:
        raise UnreadableEcg("aECG has no waveform series")
    fs: float | None = None
    acquired: datetime | None = None
    leads: list[Lead] = []
    rows: list[np.ndarray] = []
    res: list[float] = []
    labels: list[str] = []
    notes: list[str] = []
    for seq in series.findall("h:component/h:sequenceSet/h:component/h:sequence", _NS):
        code_el = seq.find("h:code", _NS)
        value = seq.find("h:value", _NS)
        code = code_el.get("code", "") if code_el is not None else ""
        if value is None:
            continue
        if code.startswith("TIME_"):
            inc = value.find("h:increment", _NS)
            if inc is None:
                raise UnreadableEcg("aECG time sequence has no increment")
            unit = (inc.get("unit") or "s").lower()
            scale = {"s": 1.0, "ms": 1e-3, "us": 1e-6}.get(unit)
            if scale is None:
                raise UnknownInterpretation(f"aECG time increment unit {unit!r}")
            step = float(inc.get("value", "0")) * scale
            if step <= 0:
                raise SamplingRateOutOfRange("aECG time increment is not positive")
            fs = 1.0 / step
            head = value.find("h:head", _NS)
            acquired = _ts(head.get("value") if head is not None else None)
            continue
        lead, _ = lead_from_label(code)
        if lead is None:
            notes.append(f"sequence {code or 'without code'} is not an ECG lead: skipped")
            continue
        digits_el = value.find("h:digits", _NS)
        if digits_el is None or not (digits_el.text or "").strip():
            raise UnreadableEcg(f"aECG lead {lead} has no digits")
        try:
            digits = np.array(digits_el.text.split(), dtype=np.float64)
        except ValueError as exc:
            raise UnreadableEcg(f"aECG lead {lead}: digits are not numbers") from exc
        origin = _pq_mv(value.find("h:origin", _NS), "origin")
        scale = _pq_mv(value.find("h:scale", _NS), "scale")
        if lead in leads:
            notes.append(f"sequence {code} repeats lead {lead}: skipped")
            continue
        leads.append(lead)
        rows.append(origin + scale * digits)
        res.append(abs(scale) * 1000.0)
        labels.append(code)
    if fs is None:
        raise SamplingRateOutOfRange("aECG has no time sequence: sampling rate unknown")
    if not leads:
        raise UnreadableEcg("aECG rhythm series has no ECG lead")
    lengths = {len(r) for r in rows}
    if len(lengths) != 1:
        raise UnreadableEcg(f"aECG leads have different lengths: {sorted(lengths)}")
    out_leads, signals, out_res, derived = complete_limb_leads(leads, np.vstack(rows), res)
    label_by_lead = dict(zip(leads, labels, strict=True))
    person = root.find(".//h:subjectDemographicPerson", _NS)
    subject_id = root.find(".//h:trialSubject/h:id", _NS)
    device = series.find(".//h:manufacturedSeriesDevice", _NS)
    maker = series.find(".//h:manufacturerOrganization/h:name", _NS)
    return EcgRecord(
        leads=out_leads, signals_mv=signals, sampling_rate_hz=fs,
        source_format=SourceFormat.AECG, resolution_uv=out_res, acquired_at=acquired,
        patient=PatientInfo(
            patient_id=(subject_id.get("extension") if subject_id is not None else None),
            name=_text(person, "h:name"),
            birth_date=_birth(person),
            sex=_attr(person, "h:administrativeGenderCode", "code"),
        ),
        device=DeviceInfo(
            manufacturer=(maker.text or "").strip() or None if maker is not None else None,
            model=_text(device, "h:manufacturerModelName"),
            software=_text(device, "h:softwareName"),
        ),
        source_labels=tuple(label_by_lead.get(x, f"derived {x}") for x in out_leads),
        derived_leads=derived, notes=tuple(notes),
    )


def _text(parent: ET.Element | None, path: str) -> str | None:
    if parent is None:
        return None
    el = parent.find(path, _NS)
    return (el.text or "").strip() or None if el is not None else None


def _attr(parent: ET.Element | None, path: str, attr: str) -> str | None:
    if parent is None:
        return None
    el = parent.find(path, _NS)
    return el.get(attr) if el is not None else None


def _birth(person: ET.Element | None) -> date | None:
    ts = _ts(_attr(person, "h:birthTime", "value"))
    return ts.date() if ts else None
