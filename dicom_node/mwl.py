"""Modality Worklist C-FIND SCP (PS3.4 Annex K) on the node's AE, answered from the local copy.

The handler decodes the identifier into a :class:`MwlQuery` (typed; malformed keys raise
:class:`InvalidQuery`), matches it against the stored entries and yields one pending response
per match, encoded in the character set the modality asked for (Specific Character Set of the
query: GB18030, ISO_IR 192, ...) or the configured default when it asked for none or for one
that cannot carry the names.

Failure statuses (PS3.4 K.4.1.1.4, ``pynetdicom.status``):

| problem | status |
|---|---|
| malformed key (bad DA range, several SPS items, a sequence where a value belongs) | 0xA900 |
| identifier that cannot be decoded | 0xC000 |
| anything unexpected (logged with traceback) | 0xC001 |

Matching (PS3.4 C.2.2.2): PN keys with ``*``/``?`` wildcards, case-insensitive, against the whole
name or any component group (so ``王*`` and ``WANG*`` both find ``Wang^XiaoDong=王^小东``); LO/SH
keys single value or wildcard; Study Instance UID list match; the SPS start date as a single
date or a range (``A-B``, ``-B``, ``A-``) in the node's local time zone. A step with no station
AE title is offered to every station.
"""

from __future__ import annotations

import fnmatch
import logging
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence
from pynetdicom import evt

logger = logging.getLogger(__name__)

PENDING = 0xFF00
CANCEL = 0xFE00
IDENTIFIER_DOES_NOT_MATCH = 0xA900
UNABLE_TO_PROCESS = 0xC000
UNEXPECTED = 0xC001

#: Specific Character Set terms we can answer in -> Python codec.
CHARSETS: dict[str, str] = {
    "ISO_IR 192": "utf-8", "GB18030": "gb18030", "GBK": "gbk", "ISO_IR 100": "latin-1",
    "ISO_IR 6": "ascii", "": "ascii",
}

#: DICOM Requested Procedure Priority (0040,1003) per hub priority.
DICOM_PRIORITY = {"stat": "STAT", "urgent": "HIGH", "routine": "ROUTINE"}

_DA = re.compile(r"^\d{8}$")


class InvalidQuery(Exception):
    """A key the worklist cannot match as given: answered 0xA900 with the message."""


@dataclass(frozen=True)
class MwlQuery:
    """The matching keys of one MWL C-FIND (empty string / None = universal match)."""

    patient_name: str = ""
    patient_id: str = ""
    accession_number: str = ""
    requested_procedure_id: str = ""
    study_instance_uids: tuple[str, ...] = ()
    modality: str = ""
    station_aet: str = ""
    date_from: date | None = None
    date_to: date | None = None
    charset: str = ""            # the query's Specific Character Set (first value)
    top_keys: tuple[str, ...] = ()   # keywords asked for at the top level
    sps_keys: tuple[str, ...] = ()   # keywords asked for inside the SPS item ("" = all)
    wants_sps: bool = False


def _wild(pattern: str, value: str, casefold: bool = False) -> bool:
    """DICOM wildcard match; ``[`` is literal in DICOM, so it is escaped for fnmatch."""
    if not pattern or pattern == "*":
        return True
    pat = pattern.replace("[", "[[]")
    if casefold:
        return fnmatch.fnmatchcase(value.casefold(), pat.casefold())
    return fnmatch.fnmatchcase(value, pat)


def _text(ds: Dataset, keyword: str) -> str:
    value = ds.get(keyword)
    if value is None:
        return ""
    if isinstance(value, Sequence):
        raise InvalidQuery(f"{keyword} must be a value, not a sequence")
    if isinstance(value, MultiValue):
        return "\\".join(str(v).strip() for v in value)
    return str(value).strip()


def _date(value: str, keyword: str) -> date:
    if not _DA.match(value):
        raise InvalidQuery(f"{keyword}: {value!r} is not a DA value (YYYYMMDD)")
    try:
        return datetime.strptime(value, "%Y%m%d").date()
    except ValueError:
        raise InvalidQuery(f"{keyword}: {value!r} is not a calendar date") from None


def parse_date_range(value: str, keyword: str = "ScheduledProcedureStepStartDate"
                     ) -> tuple[date | None, date | None]:
    """A DA key: single date, ``A-B``, ``-B`` or ``A-``.

    Raises:
        InvalidQuery: anything else (bad digits, impossible dates, an inverted range).
    """
    v = value.strip()
    if not v:
        return None, None
    if "-" not in v:
        d = _date(v, keyword)
        return d, d
    if v.count("-") != 1 or v == "-":
        raise InvalidQuery(f"{keyword}: {value!r} is not a date range")
    start, end = v.split("-")
    lo = _date(start, keyword) if start else None
    hi = _date(end, keyword) if end else None
    if lo and hi and lo > hi:
        raise InvalidQuery(f"{keyword}: range {value!r} ends before it starts")
    return lo, hi


def parse_query(ds: Dataset) -> MwlQuery:
    """Typed matching keys of an MWL identifier.

    Raises:
        InvalidQuery: malformed keys (see the module table).
    """
    raw_cs = ds.get("SpecificCharacterSet", "")
    # Multi-valued (code extensions): the first non-empty term names the repertoire asked for.
    charset = raw_cs if isinstance(raw_cs, str) else next((str(c) for c in raw_cs if str(c)), "")
    sps_keys: tuple[str, ...] = ()
    wants_sps = "ScheduledProcedureStepSequence" in ds
    sps = Dataset()
    if wants_sps:
        seq = ds.ScheduledProcedureStepSequence
        if not isinstance(seq, Sequence):
            raise InvalidQuery("ScheduledProcedureStepSequence must be a sequence")
        if len(seq) > 1:
            raise InvalidQuery("ScheduledProcedureStepSequence may hold one item in a query")
        if len(seq) == 1:
            sps = seq[0]
            sps_keys = tuple(e.keyword for e in sps if e.keyword)
    uids = _text(ds, "StudyInstanceUID")
    date_from, date_to = parse_date_range(_text(sps, "ScheduledProcedureStepStartDate"))
    name = ds.get("PatientName")
    if name is not None and isinstance(name, Sequence):
        raise InvalidQuery("PatientName must be a value, not a sequence")
    return MwlQuery(
        patient_name=str(name or "").strip(),
        patient_id=_text(ds, "PatientID"),
        accession_number=_text(ds, "AccessionNumber"),
        requested_procedure_id=_text(ds, "RequestedProcedureID"),
        study_instance_uids=tuple(u.strip() for u in uids.split("\\") if u.strip()),
        modality=_text(sps, "Modality"),
        station_aet=_text(sps, "ScheduledStationAETitle"),
        date_from=date_from, date_to=date_to,
        charset=str(charset).strip(),
        top_keys=tuple(e.keyword for e in ds if e.keyword and e.keyword not in (
            "SpecificCharacterSet", "ScheduledProcedureStepSequence")),
        sps_keys=sps_keys, wants_sps=wants_sps,
    )


def local_start(entry: dict[str, Any], zone: ZoneInfo) -> datetime | None:
    """The entry's scheduled start in the node's time zone."""
    raw = entry.get("scheduled_at")
    if not raw:
        return None
    return datetime.fromisoformat(str(raw)).astimezone(zone)


def matches(q: MwlQuery, entry: dict[str, Any], zone: ZoneInfo) -> bool:
    """Whether a stored entry satisfies every key of ``q``."""
    name = str(entry.get("patient_name") or "")
    if q.patient_name and q.patient_name != "*":
        groups = [name, *name.split("=")]
        if not any(_wild(q.patient_name, g, casefold=True) for g in groups):
            return False
    if not _wild(q.patient_id, str(entry.get("patient_id") or "")):
        return False
    if not _wild(q.accession_number, str(entry.get("accession_number") or "")):
        return False
    if not _wild(q.requested_procedure_id, str(entry.get("requested_procedure_id") or "")):
        return False
    if q.study_instance_uids and entry.get("study_instance_uid") not in q.study_instance_uids:
        return False
    if q.modality and str(entry.get("modality") or "").upper() != q.modality.upper():
        return False
    station = str(entry.get("scheduled_station_aet") or "")
    if q.station_aet and station and not _wild(q.station_aet, station):
        return False
    if q.date_from or q.date_to:
        start = local_start(entry, zone)
        if start is None:
            return False
        if (q.date_from and start.date() < q.date_from) or (q.date_to and
                                                            start.date() > q.date_to):
            return False
    return True


def choose_charset(requested: str, default: str, entries: list[dict[str, Any]]) -> str:
    """The Specific Character Set to answer in: the requested one when we support it and it
    can carry every name, else ``default``."""
    codec = CHARSETS.get(requested)
    if codec is None:
        return default
    for e in entries:
        for key in ("patient_name", "requested_procedure_description", "reason",
                    "referring_physician"):
            try:
                str(e.get(key) or "").encode(codec)
            except UnicodeEncodeError:
                return default
    return requested


def build_response(q: MwlQuery, entry: dict[str, Any], charset: str,
                   zone: ZoneInfo) -> Dataset:
    """The pending response for one entry: every key the query asked for, in ``charset``."""
    start = local_start(entry, zone)
    full = Dataset()
    full.SpecificCharacterSet = charset or "ISO_IR 6"
    full.PatientName = str(entry.get("patient_name") or "")
    full.PatientID = str(entry.get("patient_id") or "")
    full.PatientBirthDate = str(entry.get("patient_birth_date") or "")
    full.PatientSex = str(entry.get("patient_sex") or "")
    full.AccessionNumber = str(entry.get("accession_number") or "")
    full.ReferringPhysicianName = str(entry.get("referring_physician") or "")
    full.RequestedProcedureID = str(entry.get("requested_procedure_id") or "")[:16]
    full.RequestedProcedureDescription = str(
        entry.get("requested_procedure_description") or "")[:64]
    full.RequestedProcedurePriority = DICOM_PRIORITY.get(str(entry.get("priority")), "ROUTINE")
    full.StudyInstanceUID = str(entry.get("study_instance_uid") or "")
    full.ReasonForTheRequestedProcedure = str(entry.get("reason") or "")[:64]
    full.PlacerOrderNumberImagingServiceRequest = str(
        entry.get("placer_order_number") or "")[:64]
    sps = Dataset()
    sps.Modality = str(entry.get("modality") or "")
    sps.ScheduledStationAETitle = str(entry.get("scheduled_station_aet") or "")
    sps.ScheduledProcedureStepStartDate = start.strftime("%Y%m%d") if start else ""
    sps.ScheduledProcedureStepStartTime = start.strftime("%H%M%S") if start else ""
    sps.ScheduledProcedureStepDescription = str(
        entry.get("requested_procedure_description") or "")[:64]
    sps.ScheduledProcedureStepID = str(entry.get("sps_id") or "")[:16]
    sps.ScheduledPerformingPhysicianName = ""
    sps.ScheduledProcedureStepStatus = "SCHEDULED"
    out = Dataset()
    out.SpecificCharacterSet = full.SpecificCharacterSet
    for keyword in q.top_keys:
        if keyword in full:
            out.add(full.data_element(keyword))
        else:
            setattr(out, keyword, None)  # a key we do not hold goes back empty (PS3.4 C.2.2.1)
    if q.wants_sps:
        item = Dataset()
        for keyword in q.sps_keys or tuple(e.keyword for e in sps):
            if keyword in sps:
                item.add(sps.data_element(keyword))
            else:
                setattr(item, keyword, None)
        out.ScheduledProcedureStepSequence = [item]
    return out


def _failure(status: int, comment: str) -> Dataset:
    ds = Dataset()
    ds.Status = status
    ds.ErrorComment = comment[:64]
    return ds


def make_find_handler(entries: Callable[[], list[dict[str, Any]]], default_charset: str,
                      zone: str) -> Callable[[evt.Event], Iterator[tuple[Any, Any]]]:
    """Build the ``evt.EVT_C_FIND`` handler for the Modality Worklist FIND SOP class.

    Args:
        entries: returns the stored scheduled procedure steps (the local copy).
        default_charset: Specific Character Set used when the query names none we can use.
        zone: IANA time zone the modalities schedule in (e.g. Asia/Shanghai).
    """
    tz = ZoneInfo(zone)

    def handle_find(event: evt.Event) -> Iterator[tuple[Any, Any]]:
        try:
            try:
                identifier = event.identifier
                query = parse_query(identifier)
            except InvalidQuery as exc:
                logger.info("MWL query refused", extra={"reason": str(exc)})
                yield _failure(IDENTIFIER_DOES_NOT_MATCH, str(exc)), None
                return
            except Exception as exc:  # noqa: BLE001 - undecodable identifier
                logger.info("MWL identifier unreadable", extra={"reason": repr(exc)})
                yield _failure(UNABLE_TO_PROCESS, "identifier cannot be decoded"), None
                return
            found = [e for e in entries() if matches(query, e, tz)]
            charset = choose_charset(query.charset, default_charset, found)
            logger.info("MWL query answered", extra={"matches": len(found),
                                                     "charset": charset})
            for entry in found:
                if event.is_cancelled:
                    yield CANCEL, None
                    return
                yield PENDING, build_response(query, entry, charset, tz)
        except Exception:  # noqa: BLE001 - one place turns the unexpected into a status
            logger.exception("MWL query failed")
            yield _failure(UNEXPECTED, "node error"), None

    return handle_find
