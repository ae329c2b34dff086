"""Imaging and ECG orders (检查申请): order state, order control, study matching, body region.

Scheduled workflow (IHE SWF): the branch HIS places an order, the hub schedules it and gives it an
accession number, the modality picks it from the worklist, the study comes back carrying the
accession number, and the report goes back quoting the placer order number.

Shaped like :mod:`hub.domain.worklist`: the allowed changes are data
(:data:`ORDER_TRANSITIONS`, keyed by (state, event)), read in one place and tested row by row.
Pure: stdlib only, time and candidates come in as arguments.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date

from hub.domain.errors import Conflict, InvalidInput, InvalidTransition, NotFound


class OrderRefusal:
    """Mixin: which part of the order a refusal is about, so each edge can name its field.

    ``what`` is one of ``placer_order_number``, ``accession_number``, ``patient_identifier``,
    ``order_control``, ``modality``.
    """

    what: str = ""

    def __init__(self, message: str, what: str) -> None:
        super().__init__(message)  # type: ignore[call-arg]
        self.what = what


class DuplicateOrder(OrderRefusal, Conflict):
    """A placer order number or accession number already in use."""


class UnknownOrder(OrderRefusal, NotFound):
    """A change or cancel for an order we do not have."""


class OrderLocked(OrderRefusal, InvalidTransition):
    """A change the order's state forbids (e.g. cancelling an order already read)."""


class BadOrder(OrderRefusal, InvalidInput):
    """The order itself is unusable (no patient identifier, bad accession number)."""


class OrderKind(enum.StrEnum):
    """What an order asks for. Lab orders live in the lab tables (``lab_orders``)."""

    IMAGING = "imaging"
    ECG = "ecg"


class OrderStatus(enum.StrEnum):
    """Where an order is, as the orderer sees it."""

    SCHEDULED = "scheduled"      # on the modality worklist
    RECEIVED = "received"        # the study reached the hub and was matched
    IN_READING = "in_reading"    # a reader opened it
    FINAL = "final"              # the signed report went out
    CANCELLED = "cancelled"      # CA before the exam was read
    DISCONTINUED = "discontinued"  # DC: stopped after it had started


class OrderEvent(enum.StrEnum):
    """What can happen to an order."""

    CHANGE = "change"            # XO: details changed by the placer
    CANCEL = "cancel"            # CA
    DISCONTINUE = "discontinue"  # DC
    STUDY_RECEIVED = "study_received"
    READING_STARTED = "reading_started"
    FINALISED = "finalised"


class OrderControl(enum.StrEnum):
    """ORC-1 order control codes we act on (HL7 table 0119)."""

    NEW = "NW"
    CANCEL = "CA"
    CHANGE = "XO"
    DISCONTINUE = "DC"

    @classmethod
    def from_hl7(cls, code: str) -> OrderControl:
        """ORC-1 to a control; OC/OD (filler-side spellings) count as CA/DC.

        Raises:
            InvalidInput: a control code we do not act on (SC, RP, ...).
        """
        c = (code or "NW").strip().upper()
        c = {"OC": "CA", "OD": "DC"}.get(c, c)
        try:
            return cls(c)
        except ValueError:
            raise BadOrder(f"order control {c!r} is not supported (NW, CA, XO, DC)",
                           "order_control") from None


_CONTROL_EVENT = {OrderControl.CANCEL: OrderEvent.CANCEL,
                  OrderControl.CHANGE: OrderEvent.CHANGE,
                  OrderControl.DISCONTINUE: OrderEvent.DISCONTINUE}

S, E = OrderStatus, OrderEvent

#: (state, event) -> next state. Absent pairs are refused. A cancel, change or discontinue is
#: refused once a reader has the study: the report is on its way and the HIS must not believe
#: the exam was called off.
ORDER_TRANSITIONS: dict[tuple[OrderStatus, OrderEvent], OrderStatus] = {
    (S.SCHEDULED, E.CHANGE): S.SCHEDULED,
    (S.SCHEDULED, E.CANCEL): S.CANCELLED,
    (S.SCHEDULED, E.DISCONTINUE): S.DISCONTINUED,
    (S.SCHEDULED, E.STUDY_RECEIVED): S.RECEIVED,
    (S.RECEIVED, E.CHANGE): S.RECEIVED,
    (S.RECEIVED, E.CANCEL): S.CANCELLED,
    (S.RECEIVED, E.DISCONTINUE): S.DISCONTINUED,
    (S.RECEIVED, E.STUDY_RECEIVED): S.RECEIVED,
    (S.RECEIVED, E.READING_STARTED): S.IN_READING,
    (S.RECEIVED, E.FINALISED): S.FINAL,
    (S.IN_READING, E.STUDY_RECEIVED): S.IN_READING,
    (S.IN_READING, E.READING_STARTED): S.IN_READING,
    (S.IN_READING, E.FINALISED): S.FINAL,
    (S.FINAL, E.STUDY_RECEIVED): S.FINAL,
    (S.FINAL, E.FINALISED): S.FINAL,
}

#: States whose orders are still on the modality worklist.
WORKLIST_STATES = (OrderStatus.SCHEDULED,)
#: States in which an arriving study may still be matched to the order.
MATCHABLE_STATES = (OrderStatus.SCHEDULED, OrderStatus.RECEIVED, OrderStatus.IN_READING,
                    OrderStatus.FINAL)


def next_order_state(state: OrderStatus, event: OrderEvent) -> OrderStatus:
    """The state after ``event``.

    Raises:
        InvalidTransition: the table forbids it (e.g. cancelling an order already read).
    """
    try:
        return ORDER_TRANSITIONS[(OrderStatus(state), OrderEvent(event))]
    except KeyError:
        raise OrderLocked(f"cannot {event} an order that is {state}", "order_control") from None


def event_for_control(control: OrderControl) -> OrderEvent:
    """The order event an ORC-1 code means (NW has none: it creates the order)."""
    if control == OrderControl.NEW:
        raise InvalidInput("NW creates an order; it is not an event on one")
    return _CONTROL_EVENT[control]


#: HL7 status sent back to the placer per order state: (ORC-5 order status, table 0038;
#: OBR-25 result status, table 0123). "received": in process, specimen (here: images) received,
#: procedure incomplete. "in reading": in process, results stored but not yet verified.
#: "final" goes out as the signed report's ORU^R01 itself (ORC-5 CM, OBR-25 F).
HL7_STATUS: dict[OrderStatus, tuple[str, str]] = {
    OrderStatus.RECEIVED: ("IP", "I"),
    OrderStatus.IN_READING: ("IP", "R"),
    OrderStatus.FINAL: ("CM", "F"),
    OrderStatus.CANCELLED: ("CA", "X"),
    OrderStatus.DISCONTINUED: ("DC", "X"),
}


# --------------------------------------------------------------------------- modality

#: OBR-24 diagnostic service section (HL7 table 0074) and common local spellings -> DICOM
#: modality. Orders whose section is not here are lab orders.
SECTION_MODALITY: dict[str, str] = {
    "CT": "CT", "MR": "MR", "MRI": "MR", "NMR": "MR", "US": "US", "CUS": "US", "OUS": "US",
    "RAD": "DX", "DX": "DX", "CR": "CR", "XR": "DX", "DR": "DX", "MG": "MG", "RX": "DX",
    "NM": "NM", "PT": "PT", "XA": "XA", "RF": "RF", "VUS": "US",
    "EC": "ECG", "ECG": "ECG", "EKG": "ECG",
}


def modality_for(section: str | None) -> str | None:
    """DICOM modality for an OBR-24 / IPC-5 value, or None when it names no imaging/ECG."""
    return SECTION_MODALITY.get((section or "").strip().upper())


def kind_for_modality(modality: str) -> OrderKind:
    """ECG orders go to cardiology; every other modality is imaging."""
    return OrderKind.ECG if modality.upper() in ("ECG", "EC", "EKG") else OrderKind.IMAGING


#: Words in a procedure code or name -> body region (the ``body_part`` of the recognition
#: catalogue), so priors of the same region can be offered before the exam.
BODY_REGION_WORDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("HEAD", ("HEAD", "BRAIN", "SKULL", "头", "颅", "脑")),
    ("CHEST", ("CHEST", "THORAX", "LUNG", "胸", "肺")),
    ("ABDOMEN", ("ABD", "ABDOMEN", "LIVER", "腹", "肝", "胆", "胰", "脾")),
    ("SPINE", ("SPINE", "脊", "腰椎", "颈椎")),
    ("PELVIS", ("PELVIS", "盆")),
)


def body_region(*texts: str | None) -> str | None:
    """The first body region any of ``texts`` names (procedure code, name, OBR-15 site)."""
    for text in texts:
        t = (text or "").upper()
        if not t:
            continue
        for region, words in BODY_REGION_WORDS:
            if any(w in t for w in words):
                return region
    return None


def accession_for(order_id: int, prefix: str = "YG") -> str:
    """A hub-assigned accession number: prefix + zero-padded order id.

    DICOM AccessionNumber is SH (at most 16 characters); the order id is unique, so the result
    is too unless a HIS assigned the same string, which the unique column then refuses.
    """
    value = f"{prefix}{order_id:08d}"
    if len(value) > 16:
        raise InvalidInput(f"accession {value!r} longer than 16 characters")
    return value


def check_accession(value: str) -> str:
    """A HIS-given accession number, checked for DICOM SH (16 chars, no backslash/control).

    Raises:
        InvalidInput: too long or containing characters SH forbids.
    """
    v = value.strip()
    if len(v) > 16 or "\\" in v or any(ord(c) < 32 for c in v):
        raise BadOrder(f"accession number {value!r} is not a valid DICOM SH value",
                       "accession_number")
    return v


# --------------------------------------------------------------------------- matching


@dataclass(frozen=True)
class StudyFacts:
    """An arriving study, reduced to what matching needs."""

    accession_number: str | None
    institution: str | None
    patient_id: int | None
    patient_local_id: str | None
    modality: str | None
    study_date: date | None


@dataclass(frozen=True)
class OrderFacts:
    """An order, reduced to what matching needs."""

    order_id: int
    accession_number: str
    institution: str
    patient_id: int | None
    patient_local_id: str | None
    modality: str
    scheduled_date: date | None
    status: OrderStatus


class MatchKind(enum.StrEnum):
    ACCESSION = "accession"      # definite: the study quotes the order's accession number
    SUGGESTED = "suggested"      # patient + modality + date: a person confirms
    NONE = "none"


@dataclass(frozen=True)
class Match:
    """Outcome of :func:`match_study`: the definite order, or suggestions for a person."""

    kind: MatchKind
    order_id: int | None = None
    suggestions: tuple[int, ...] = ()


def _modalities(value: str | None) -> set[str]:
    return {m.strip().upper() for m in (value or "").replace("\\", "/").split("/") if m.strip()}


def match_study(study: StudyFacts, orders: Iterable[OrderFacts], *,
                date_window_days: int = 1) -> Match:
    """Match an arriving study to its order.

    The accession number decides when it names a live order. Otherwise orders of the same
    patient (community patient, or the same local ID at the same branch) with the study's
    modality, scheduled within ``date_window_days`` of the study date, are *suggestions* only:
    two CTs of one patient on one day are not rare, and a wrong automatic match would send a
    report to the wrong order.
    """
    live = [o for o in orders if o.status in MATCHABLE_STATES]
    acc = (study.accession_number or "").strip()
    if acc:
        for o in live:
            if o.accession_number == acc:
                return Match(MatchKind.ACCESSION, o.order_id)
    mods = _modalities(study.modality)
    out: list[int] = []
    for o in live:
        same_patient = (study.patient_id is not None and o.patient_id == study.patient_id) or (
            bool(study.patient_local_id) and o.patient_local_id == study.patient_local_id
            and o.institution == study.institution)
        if not same_patient or (mods and o.modality.upper() not in mods):
            continue
        if study.study_date and o.scheduled_date and \
                abs((study.study_date - o.scheduled_date).days) > date_window_days:
            continue
        if o.status != OrderStatus.SCHEDULED:
            continue  # already has its study: suggesting it again would invite a double link
        out.append(o.order_id)
    if out:
        return Match(MatchKind.SUGGESTED, suggestions=tuple(out))
    return Match(MatchKind.NONE)
