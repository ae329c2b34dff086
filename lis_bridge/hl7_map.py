"""HL7 v2 lab messages -> typed objects (LabMessage, LabResultSet, Observation, LabOrder).

The hot path splits messages with ``lis_bridge.er7`` and reads only the fields it maps (hl7apy
would cost ~8 ms and python-hl7 ~0.5 ms per ORU here); hl7apy builds ACKs and outbound messages
(see ``acks.py`` and ``outbound.py``). Code past this module never touches segments: it gets
the dataclasses below, with enums for codes and ``None`` for absent values.

Errors are raised as :class:`Hl7Rejected` (MSA-1 ``AR``: we will never accept this message as
sent) or :class:`Hl7ContentError` (``AE``: the message is HL7 we accept, but its content is
wrong), each naming the field (``OBX^2^5``) and an HL7 table 0357 code, so ``acks.py`` can write
the ERR segment without knowing anything else.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone, tzinfo
from functools import lru_cache
from zoneinfo import ZoneInfo

from hub.domain.lab_rules import OrderStatus, ResultStatus, advance_order
from hub.domain.names import display_name
from hub.domain.priority import Priority, priority_from_hl7
from hub.services.orders import OrderIn
from hub.services.patients import PatientRef
from lis_bridge import er7
from lis_bridge.er7 import Er7Message


class ErrorCode(enum.IntEnum):
    """HL7 table 0357, message error condition codes."""

    SEGMENT_SEQUENCE = 100
    REQUIRED_FIELD_MISSING = 101
    DATA_TYPE = 102
    TABLE_VALUE_NOT_FOUND = 103
    UNSUPPORTED_MESSAGE_TYPE = 200
    UNSUPPORTED_EVENT = 201
    UNSUPPORTED_PROCESSING_ID = 202
    UNSUPPORTED_VERSION = 203
    UNKNOWN_KEY = 204
    DUPLICATE_KEY = 205
    APPLICATION_RECORD_LOCKED = 206
    INTERNAL_ERROR = 207


ERROR_TEXT: dict[ErrorCode, str] = {
    ErrorCode.SEGMENT_SEQUENCE: "Segment sequence error",
    ErrorCode.REQUIRED_FIELD_MISSING: "Required field missing",
    ErrorCode.DATA_TYPE: "Data type error",
    ErrorCode.TABLE_VALUE_NOT_FOUND: "Table value not found",
    ErrorCode.UNSUPPORTED_MESSAGE_TYPE: "Unsupported message type",
    ErrorCode.UNSUPPORTED_EVENT: "Unsupported event code",
    ErrorCode.UNSUPPORTED_PROCESSING_ID: "Unsupported processing id",
    ErrorCode.UNSUPPORTED_VERSION: "Unsupported version id",
    ErrorCode.UNKNOWN_KEY: "Unknown key identifier",
    ErrorCode.DUPLICATE_KEY: "Duplicate key identifier",
    ErrorCode.APPLICATION_RECORD_LOCKED: "Application record locked",
    ErrorCode.INTERNAL_ERROR: "Application internal error",
}


class Hl7Error(Exception):
    """A message we cannot take as it is. ``location`` is ``SEG^seq^field`` or ``SEG``."""

    ack_code = "AE"

    def __init__(self, code: ErrorCode, location: str, text: str) -> None:
        super().__init__(f"{location}: {text}")
        self.code = ErrorCode(code)
        self.location = location
        self.text = text


class Hl7Rejected(Hl7Error):
    """AR: not HL7, bad MSH, unsupported type, version or processing ID."""

    ack_code = "AR"


class Hl7ContentError(Hl7Error):
    """AE: accepted message type whose content is wrong (garbage NM value, no PID, ...)."""

    ack_code = "AE"


class MessageKind(enum.StrEnum):
    """What a supported message carries."""

    RESULT = "result"
    ORDER = "order"


#: (MSH-9.1, MSH-9.2) -> kind. Everything else gets AR 200/201 (documented in docs/lab.md).
SUPPORTED: dict[tuple[str, str], MessageKind] = {
    ("ORU", "R01"): MessageKind.RESULT,
    ("OUL", "R22"): MessageKind.RESULT,
    ("OML", "O21"): MessageKind.ORDER,
    ("ORM", "O01"): MessageKind.ORDER,
    # Imaging (OMI^O23) and general clinical orders such as ECG (OMG^O19), issue 8.
    ("OMI", "O23"): MessageKind.ORDER,
    ("OMG", "O19"): MessageKind.ORDER,
}


@dataclass(frozen=True)
class Header:
    """MSH, typed. ``sender`` is the idempotency namespace for ``control_id`` (MSH-10)."""

    field_sep: str
    encoding_chars: str
    sending_application: str      # MSH-3
    sending_facility: str         # MSH-4, raw HD (all components, so "Lab^1234^CLIA" != "^1234")
    receiving_application: str    # MSH-5
    receiving_facility: str       # MSH-6
    message_datetime: str         # MSH-7, raw
    message_code: str             # MSH-9.1
    trigger_event: str            # MSH-9.2
    structure: str                # MSH-9.3
    control_id: str               # MSH-10
    processing_id: str            # MSH-11.1
    version: str                  # MSH-12.1
    accept_ack_type: str          # MSH-15
    application_ack_type: str     # MSH-16
    charset: str                  # MSH-18

    @property
    def sender(self) -> str:
        """Sending facility, or the sending application when MSH-4 is empty."""
        return self.sending_facility or f"app:{self.sending_application}"

    @property
    def facility_codes(self) -> list[str]:
        """Candidate institution codes: the whole MSH-4 and each non-empty HD component."""
        parts = [p for p in self.sending_facility.split("^") if p]
        return [self.sending_facility, *parts] if self.sending_facility else []


@dataclass(frozen=True)
class Observation:
    """One OBX."""

    set_id: str                   # OBX-1
    value_type: str               # OBX-2
    code: str                     # OBX-3.1
    name: str                     # OBX-3.2
    coding_system: str            # OBX-3.3
    sub_id: str                   # OBX-4
    value: str                    # OBX-5, repetitions joined with '~'
    numeric_value: float | None   # OBX-5 as a number for NM / SN
    comparator: str               # SN comparator (">", "<=", ...) or ""
    units: str                    # OBX-6.1
    reference_range: str          # OBX-7
    abnormal_flags: tuple[str, ...]  # OBX-8, repetitions
    result_status: ResultStatus   # OBX-11
    observed_at: datetime | None  # OBX-14


@dataclass(frozen=True)
class LabResultSet:
    """One OBR of a result message, with its OBX segments."""

    set_id: str                       # OBR-1
    placer_order_number: str          # OBR-2 (ORC-2)
    filler_order_number: str          # OBR-3 (ORC-3, else "placer:" + placer number)
    service_code: str                 # OBR-4.1
    service_name: str                 # OBR-4.2
    result_status: ResultStatus       # OBR-25
    observed_at: datetime | None      # OBR-7
    reported_at: datetime | None      # OBR-22
    priority: Priority                # TQ1-9 / OBR-5 / ORC-7.6
    specimen_barcode: str             # SPM-2 / OBR-15
    observations: list[Observation] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # NTE-3 after the OBR or its OBX


@dataclass(frozen=True)
class LabOrder:
    """One ORC/OBR pair of an order message."""

    order_control: str            # ORC-1 (NW new, CA cancel, SC status changed, XO change)
    placer_order_number: str      # ORC-2 / OBR-2
    filler_order_number: str      # ORC-3 / OBR-3
    service_code: str             # OBR-4.1
    service_name: str             # OBR-4.2
    status: OrderStatus
    priority: Priority
    specimen_barcode: str         # SPM-2.1 (or OBR-15 in v2.3)
    ordered_at: datetime | None   # ORC-9
    collected_at: datetime | None  # SPM-17 / OBR-7
    received_at: datetime | None  # SPM-18 / OBR-14


@dataclass(frozen=True)
class LabMessage:
    """A supported message, fully mapped."""

    header: Header
    kind: MessageKind
    patient: PatientRef
    result_sets: list[LabResultSet] = field(default_factory=list)
    orders: list[LabOrder] = field(default_factory=list)
    imaging_orders: list[OrderIn] = field(default_factory=list)  # imaging and ECG orders
    warnings: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- field helpers

class _Seg:
    """A segment with 1-based HL7 field numbering and decoded components."""

    __slots__ = ("fields", "msg", "name", "seq")

    def __init__(self, msg: Er7Message, seg: list[str], seq: int) -> None:
        self.msg = msg
        self.fields = seg
        self.name = seg[0]
        self.seq = seq

    def raw(self, n: int) -> str:
        fields = self.fields
        return fields[n] if n < len(fields) else ""

    def reps(self, n: int) -> list[str]:
        raw = self.raw(n)
        return raw.split(self.msg.separators[2]) if raw else []

    def comp(self, n: int, c: int = 1, rep: int = 0) -> str:
        """Field n, repetition rep, component c (1-based), unescaped and stripped."""
        # About 80 calls per result message, the bulk of parsing: partition rather than split
        # for the first repetition or component.
        fields = self.fields
        if n >= len(fields) or not (value := fields[n]):
            return ""
        msg = self.msg
        if rep:
            reps = value.split(msg.separators[2])
            if rep >= len(reps):
                return ""
            value = reps[rep]
        else:
            value = value.partition(msg.separators[2])[0]
        if c == 1:
            value = value.partition(msg.separators[3])[0]
        else:
            parts = value.split(msg.separators[3])
            if c > len(parts):
                return ""
            value = parts[c - 1]
        return _unescape(msg, value).strip()

    def ei(self, n: int) -> str:
        """An EI (entity identifier) as "id^namespace", or "" when the id is empty."""
        entity = self.comp(n, 1)
        if not entity:
            return ""
        ns = self.comp(n, 2)
        return f"{entity}^{ns}" if ns else entity

    def loc(self, n: int) -> str:
        return f"{self.name}^{self.seq}^{n}"


def _unescape(msg: Er7Message, value: str) -> str:
    # Escape sequences are rare; skip the decoder on the common path.
    if msg.esc in value:
        return msg.unescape(value)
    return value


_NM = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)$")
_DTM = re.compile(
    r"^(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\.\d{1,4})?([+-]\d{4})?$"
)


def parse_nm(text: str) -> float | None:
    """HL7 NM (numeric): optional sign, digits, optional decimal point. None when not NM."""
    t = text.strip()
    return float(t) if _NM.match(t) else None


# The observations of one analyser run share their timestamps, so most calls repeat a recent one.
@lru_cache(maxsize=4096)
def parse_dtm(text: str, local: tzinfo) -> datetime | None:
    """HL7 DTM/TS to an aware UTC datetime; a time without offset is in ``local``.

    Returns None for empty or unreadable values (timestamps are informative here; a bad one is
    recorded as a warning, not a reason to refuse a result).
    """
    t = text.strip()
    if not t:
        return None
    m = _DTM.match(t)
    if not m:
        return None
    year, month, day, hour, minute, second, frac, offset = m.groups()
    try:
        tz: tzinfo = local
        if offset:
            sign = 1 if offset[0] == "+" else -1
            tz = timezone(sign * timedelta(hours=int(offset[1:3]), minutes=int(offset[3:5])))
        value = datetime(int(year), int(month or 1), int(day or 1), int(hour or 0),
                         int(minute or 0), int(second or 0),
                         int(float(frac) * 1_000_000) if frac else 0, tzinfo=tz)
    except ValueError:
        return None
    return value.astimezone(UTC)


def parse_date(text: str) -> date | None:
    """HL7 DT (birth date); None when unreadable (e.g. month 35 in a real sample)."""
    t = text.strip()[:8]
    if len(t) < 8 or not t.isdigit():
        return None
    try:
        return date(int(t[:4]), int(t[4:6]), int(t[6:8]))
    except ValueError:
        return None


# --------------------------------------------------------------------------- MSH

def parse_header(text: str) -> tuple[Er7Message, Header]:
    """Parse the message and check its MSH.

    Raises:
        Hl7Rejected: not HL7 (no MSH first), or MSH-9, MSH-10, MSH-11 or MSH-12 missing.
    """
    body = text.lstrip("\r\n\t ")
    if not body.startswith("MSH") or len(body) < 8:
        raise Hl7Rejected(ErrorCode.SEGMENT_SEQUENCE, "MSH", "message does not start with MSH")
    # Senders on Windows send CRLF or LF; HL7 says CR. Normalise before parsing.
    if "\n" in body:
        body = body.replace("\r\n", "\r").replace("\n", "\r")
    sep, enc = body[3], body[4:8]
    if sep.isalnum() or len(set(enc)) != 4 or sep in enc or "\r" in enc:
        raise Hl7Rejected(ErrorCode.DATA_TYPE, "MSH^1^2", "invalid encoding characters")
    try:
        msg = er7.parse(body)
        msh = _Seg(msg, msg.segment("MSH"), 1)
    except KeyError as exc:
        raise Hl7Rejected(ErrorCode.SEGMENT_SEQUENCE, "MSH", f"unparseable MSH: {exc}") from exc
    header = Header(
        field_sep=sep,
        encoding_chars=enc,
        sending_application=msh.raw(3).strip(),
        sending_facility=msh.raw(4).strip(),
        receiving_application=msh.raw(5).strip(),
        receiving_facility=msh.raw(6).strip(),
        message_datetime=msh.raw(7).strip(),
        message_code=msh.comp(9, 1).upper(),
        trigger_event=msh.comp(9, 2).upper(),
        structure=msh.comp(9, 3).upper(),
        control_id=msh.raw(10).strip(),
        processing_id=msh.comp(11, 1).upper(),
        version=msh.comp(12, 1),
        accept_ack_type=msh.raw(15).strip().upper(),
        application_ack_type=msh.raw(16).strip().upper(),
        charset=msh.comp(18, 1, 0),
    )
    for n, value in ((9, header.message_code), (10, header.control_id),
                     (11, header.processing_id), (12, header.version)):
        if not value:
            raise Hl7Rejected(ErrorCode.REQUIRED_FIELD_MISSING, f"MSH^1^{n}",
                              f"MSH-{n} is required")
    return msg, header


def check_acceptable(header: Header, versions: list[str], processing_ids: list[str]) -> MessageKind:
    """Apply the HL7 acceptance checks in the standard's order: version, processing ID, type.

    Raises:
        Hl7Rejected: with code 203, 202, 200 or 201.
    """
    if header.version not in versions:
        raise Hl7Rejected(ErrorCode.UNSUPPORTED_VERSION, "MSH^1^12",
                          f"version {header.version!r} not supported")
    if header.processing_id not in processing_ids:
        raise Hl7Rejected(ErrorCode.UNSUPPORTED_PROCESSING_ID, "MSH^1^11",
                          f"processing ID {header.processing_id!r} not accepted")
    kind = SUPPORTED.get((header.message_code, header.trigger_event))
    if kind is None:
        if any(code == header.message_code for code, _ in SUPPORTED):
            raise Hl7Rejected(ErrorCode.UNSUPPORTED_EVENT, "MSH^1^9",
                              f"event {header.trigger_event!r} not supported")
        raise Hl7Rejected(ErrorCode.UNSUPPORTED_MESSAGE_TYPE, "MSH^1^9",
                          f"message type {header.message_code!r} not supported")
    return kind


# --------------------------------------------------------------------------- body

#: PID-3 identifier type codes (CX.5, HL7 table 0203) that carry a 身份证号 or an insurance no.
NATIONAL_ID_TYPES = frozenset({"NI", "NNCHN", "CZ"})
INSURANCE_TYPES = frozenset({"HC", "MC", "MI", "SN"})


def _patient(pid: _Seg) -> PatientRef:
    local_id = national = insurance = ""
    for i in range(len(pid.reps(3))):
        ident, kind = pid.comp(3, 1, i), pid.comp(3, 5, i).upper()
        if not ident:
            continue
        if kind in NATIONAL_ID_TYPES and not national:
            national = ident
        elif kind in INSURANCE_TYPES and not insurance:
            insurance = ident
        elif not local_id:
            local_id = ident
    # PID-2 (external ID) and PID-4 (alternate ID) are v2.3-era places for the same thing.
    local_id = local_id or pid.comp(2, 1) or pid.comp(4, 1)
    name_parts = [pid.comp(5, c) for c in range(1, 4)]
    while name_parts and not name_parts[-1]:
        name_parts.pop()
    sex = pid.comp(8, 1).upper()[:1] or None
    return PatientRef(
        local_id=local_id[:64] or None,
        name=display_name("^".join(name_parts))[:200],
        birth_date=parse_date(pid.comp(7, 1)),
        sex=sex if sex in ("M", "F", "O", "U", "A", "N") else None,
        national_id=national[:32] or None,
        insurance_no=insurance[:64] or None,
    )


def _observation(obx: _Seg, local: tzinfo) -> Observation:
    vtype = obx.comp(2, 1).upper()
    reps = obx.reps(5)
    value = obx.msg.separators[2].join(_unescape(obx.msg, r) for r in reps).strip()
    numeric: float | None = None
    comparator = ""
    if value:
        if vtype == "NM":
            if len(reps) != 1:
                raise Hl7ContentError(ErrorCode.DATA_TYPE, obx.loc(5),
                                      "NM value must not repeat")
            numeric = parse_nm(value)
            if numeric is None:
                raise Hl7ContentError(ErrorCode.DATA_TYPE, obx.loc(5),
                                      "value is not a number (OBX-2 is NM)")
        elif vtype == "SN":
            comparator = obx.comp(5, 1)
            num1 = obx.comp(5, 2)
            numeric = parse_nm(num1) if num1 else None
            if num1 and numeric is None:
                raise Hl7ContentError(ErrorCode.DATA_TYPE, obx.loc(5),
                                      "SN number is not numeric")
    if not obx.comp(3, 1) and not obx.comp(3, 2):
        raise Hl7ContentError(ErrorCode.REQUIRED_FIELD_MISSING, obx.loc(3),
                              "observation identifier is required")
    flags = tuple(f for f in (obx.comp(8, 1, i) for i in range(len(obx.reps(8)))) if f)
    return Observation(
        set_id=obx.raw(1).strip()[:32],
        value_type=vtype[:16],
        code=(obx.comp(3, 1) or obx.comp(3, 2))[:200],
        name=obx.comp(3, 2)[:200],
        coding_system=obx.comp(3, 3)[:200],
        sub_id=obx.raw(4).strip()[:64],
        value=value,
        numeric_value=numeric,
        comparator=comparator[:8],
        units=obx.comp(6, 1)[:200],
        reference_range=_unescape(obx.msg, obx.raw(7)).strip(),
        abnormal_flags=flags,
        result_status=ResultStatus.from_hl7(obx.comp(11, 1), ResultStatus.FINAL),
        observed_at=parse_dtm(obx.comp(14, 1), local),
    )


def _priority(obr: _Seg, orc: _Seg | None, tq1: _Seg | None) -> Priority:
    code = (tq1.comp(9, 1) if tq1 else "") or obr.comp(5, 1) or (orc.comp(7, 6) if orc else "")
    return priority_from_hl7(code)


#: ORC-5 (order status, table 0038) and ORC-1 -> our order status.
_ORC5 = {"IP": OrderStatus.RECEIVED, "A": OrderStatus.RESULTED, "CM": OrderStatus.RESULTED,
         "CA": OrderStatus.CANCELLED, "DC": OrderStatus.CANCELLED}


def _order_status(orc: _Seg | None, obr: _Seg, spm: _Seg | None, result_status: str) -> OrderStatus:
    control = orc.comp(1, 1).upper() if orc else ""
    if control in ("CA", "OC", "CR", "DC", "OD"):
        return OrderStatus.CANCELLED
    status = OrderStatus.ORDERED
    if (spm and spm.comp(17, 1)) or obr.comp(7, 1):
        status = OrderStatus.COLLECTED
    if (spm and spm.comp(18, 1)) or obr.comp(14, 1):
        status = OrderStatus.RECEIVED
    if orc and orc.comp(5, 1).upper() in _ORC5:
        status = advance_order(status, _ORC5[orc.comp(5, 1).upper()])
    if result_status in ("F", "C", "P", "R"):
        status = advance_order(status, OrderStatus.RESULTED)
    return status


def parse_body(msg: Er7Message, header: Header, kind: MessageKind, local: tzinfo) -> LabMessage:
    """Map PID/ORC/OBR/OBX/SPM/NTE to a :class:`LabMessage`.

    Segments are walked in order (ORC opens an order group, OBR a result set, OBX/NTE/SPM
    belong to the latest OBR), which copes with both the v2.3 flat ORU layout and the v2.5
    grouped OUL/OML layouts without a structure definition per message type.

    Raises:
        Hl7ContentError: no PID, no OBR, an OBR without order numbers, a bad OBX value, a NUL
            character in a field (no text column can store it).
    """
    _refuse_nul(msg)
    pid: _Seg | None = None
    groups: list[dict[str, object]] = []
    orc: _Seg | None = None
    tq1: _Seg | None = None
    current: dict[str, object] | None = None
    counters: dict[str, int] = {}
    for raw_seg in msg:
        name = raw_seg[0].strip()
        counters[name] = counters.get(name, 0) + 1
        seg = _Seg(msg, raw_seg, counters[name])
        if name == "PID" and pid is None:
            pid = seg
        elif name == "ORC":
            orc, tq1 = seg, None
        elif name == "TQ1" and tq1 is None:
            tq1 = seg
        elif name == "OBR":
            current = {"obr": seg, "orc": orc, "tq1": tq1, "obx": [], "spm": None, "nte": [],
                       "ipc": None, "zds": None}
            groups.append(current)
        elif current is not None:
            if name == "OBX":
                current["obx"].append(seg)  # type: ignore[attr-defined]
            elif name == "SPM" and current["spm"] is None:
                current["spm"] = seg
            elif name == "NTE":
                current["nte"].append(seg.comp(3, 1))  # type: ignore[attr-defined]
            elif name == "TQ1" and current["tq1"] is None:
                current["tq1"] = seg
            elif name == "IPC" and current["ipc"] is None:
                current["ipc"] = seg
            elif name == "ZDS" and current["zds"] is None:
                current["zds"] = seg
    if pid is None:
        raise Hl7ContentError(ErrorCode.SEGMENT_SEQUENCE, "PID", "PID segment is required")
    if not groups:
        raise Hl7ContentError(ErrorCode.SEGMENT_SEQUENCE, "OBR", "OBR segment is required")
    warnings: list[str] = []
    patient = _patient(pid)
    if pid.comp(7, 1) and patient.birth_date is None:
        warnings.append("PID-7 birth date unreadable")
    out = LabMessage(header=header, kind=kind, patient=patient, warnings=warnings)
    for g in groups:
        obr: _Seg = g["obr"]  # type: ignore[assignment]
        g_orc: _Seg | None = g["orc"]  # type: ignore[assignment]
        g_tq1: _Seg | None = g["tq1"]  # type: ignore[assignment]
        spm: _Seg | None = g["spm"]  # type: ignore[assignment]
        placer = (obr.ei(2) or (g_orc.ei(2) if g_orc else ""))[:190]
        filler = (obr.ei(3) or (g_orc.ei(3) if g_orc else ""))[:190]
        barcode = (spm.comp(2, 1) if spm else "") or obr.comp(15, 1)
        # SPM-2 is EIP: placer^filler assigned identifiers; the barcode is the first EI's id.
        barcode = barcode.split(msg.separators[4])[0][:200] if barcode else ""
        if kind == MessageKind.RESULT:
            if not filler and not placer:
                raise Hl7ContentError(ErrorCode.REQUIRED_FIELD_MISSING, obr.loc(3),
                                      "filler or placer order number is required")
            status_code = obr.comp(25, 1)
            obs = [_observation(o, local) for o in g["obx"]]  # type: ignore[attr-defined]
            out.result_sets.append(LabResultSet(
                set_id=obr.raw(1).strip(),
                placer_order_number=placer,
                filler_order_number=filler or f"placer:{placer}",
                service_code=(obr.comp(4, 1) or obr.comp(4, 2))[:200],
                service_name=obr.comp(4, 2)[:200],
                result_status=ResultStatus.from_hl7(
                    status_code, _derived_status(obs)),
                observed_at=parse_dtm(obr.comp(7, 1), local),
                reported_at=parse_dtm(obr.comp(22, 1), local),
                priority=_priority(obr, g_orc, g_tq1),
                specimen_barcode=barcode,
                observations=obs,
                notes=[n for n in g["nte"] if n],  # type: ignore[attr-defined]
            ))
        else:
            if not placer:
                raise Hl7ContentError(ErrorCode.REQUIRED_FIELD_MISSING, obr.loc(2),
                                      "placer order number is required on an order")
            from lis_bridge.order_map import imaging_order, is_imaging_group

            if is_imaging_group(header, obr, g["ipc"]):  # type: ignore[arg-type]
                out.imaging_orders.append(imaging_order(
                    header, pid, obr, g_orc, g_tq1, g["ipc"], g["zds"], placer, filler,
                    local))  # type: ignore[arg-type]
                continue
            out.orders.append(LabOrder(
                order_control=g_orc.comp(1, 1).upper() if g_orc else "NW",
                placer_order_number=placer,
                filler_order_number=filler,
                service_code=(obr.comp(4, 1) or obr.comp(4, 2))[:200],
                service_name=obr.comp(4, 2)[:200],
                status=_order_status(g_orc, obr, spm, obr.comp(25, 1).upper()),
                priority=_priority(obr, g_orc, g_tq1),
                specimen_barcode=barcode,
                ordered_at=parse_dtm(g_orc.comp(9, 1), local) if g_orc else None,
                collected_at=parse_dtm((spm.comp(17, 1) if spm else "") or obr.comp(7, 1), local),
                received_at=parse_dtm((spm.comp(18, 1) if spm else "") or obr.comp(14, 1), local),
            ))
    return out


def _refuse_nul(msg: Er7Message) -> None:
    counters: dict[str, int] = {}
    for seg in msg:
        counters[seg[0]] = counters.get(seg[0], 0) + 1
        for n, value in enumerate(seg):
            if "\x00" in value:
                raise Hl7ContentError(ErrorCode.DATA_TYPE, f"{seg[0]}^{counters[seg[0]]}^{n}",
                                      "NUL character (0x00) in the field")


def _derived_status(obs: list[Observation]) -> ResultStatus:
    """OBR-25 empty: corrected if any OBX is, final if all are, else preliminary."""
    if any(o.result_status == ResultStatus.CORRECTED for o in obs):
        return ResultStatus.CORRECTED
    if obs and all(o.result_status == ResultStatus.FINAL for o in obs):
        return ResultStatus.FINAL
    return ResultStatus.PRELIMINARY


def local_zone(name: str) -> tzinfo:
    """The zone that HL7 timestamps without an offset are in (Asia/Shanghai by default)."""
    return ZoneInfo(name)
