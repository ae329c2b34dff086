"""Acknowledgements: the one place where outcomes become MSA/ERR (HL7 v2 original mode).

- ``AA`` only after the message and its records are committed (the sender drops its copy once
  acknowledged, so an AA for something not on disk is a lost result).
- ``AR`` for messages we will never accept as sent: not HL7, bad MSH, unsupported message type,
  event, version or processing ID.
- ``AE`` with an ERR segment naming the field for content we could not process.

The ACK's structure comes from hl7apy (one template per version family, built and cached on first
use) and is filled by substitution: building each ACK with hl7apy costs about 2 ms, which alone
would cap the bridge below its throughput goal. Values copied from the sender's MSH are inserted
exactly as they were on the wire (already escaped); our own texts are escaped here.

Outbound, :func:`parse_ack` reads both original-mode (AA/AE/AR) and enhanced-mode accept
acknowledgements (CA/CE/CR).
"""

from __future__ import annotations

import itertools
import os
import re
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import TYPE_CHECKING

from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.core import Message

from lis_bridge.hl7_map import ERROR_TEXT, Header, Hl7Error

if TYPE_CHECKING:
    from hub.services.lab import ErrorInfo

_FIELDS = ("APP", "FAC", "RAPP", "RFAC", "TS", "TRIG", "CID", "PID", "VER", "CS", "CODE", "REF",
           "TEXT", "SEG", "SEQ", "FLD", "ECODE", "ETEXT")
_PLACEHOLDER = re.compile("@@(" + "|".join(_FIELDS) + ")@@")

#: Accept codes that mean "the receiver has it": original AA, enhanced-mode commit accept CA.
POSITIVE = frozenset({"AA", "CA"})


def _family(version: str) -> str:
    """hl7apy template version: MSH-9 has 2 components up to 2.3, ERR changed shape in 2.5."""
    if version in ("2.1", "2.2", "2.3"):
        return "2.3"
    if version.startswith("2.3") or version.startswith("2.4"):
        return "2.4"
    return "2.5"


@lru_cache(maxsize=8)
def _template(family: str, with_err: bool) -> str:
    """Build an ACK skeleton with hl7apy, with ``@@NAME@@`` placeholders for every value."""
    ack = Message("ACK", version=family, validation_level=VALIDATION_LEVEL.TOLERANT)
    msh = ack.msh
    msh.msh_3 = "@@APP@@"
    msh.msh_4 = "@@FAC@@"
    msh.msh_5 = "@@RAPP@@"
    msh.msh_6 = "@@RFAC@@"
    msh.msh_7 = "@@TS@@"
    msh.msh_9 = "ACK^@@TRIG@@" if family == "2.3" else "ACK^@@TRIG@@^ACK"
    msh.msh_10 = "@@CID@@"
    msh.msh_11 = "@@PID@@"
    msh.msh_12 = "@@VER@@"
    msh.msh_18 = "@@CS@@"
    ack.msa.msa_1 = "@@CODE@@"
    ack.msa.msa_2 = "@@REF@@"
    ack.msa.msa_3 = "@@TEXT@@"
    if with_err:
        err = ack.add_segment("ERR")
        if family == "2.5":
            err.err_2 = "@@SEG@@^@@SEQ@@^@@FLD@@"
            err.err_3 = "@@ECODE@@^@@ETEXT@@^HL70357"
            err.err_4 = "E"
        else:
            err.err_1 = "@@SEG@@^@@SEQ@@^@@FLD@@^@@ECODE@@&@@ETEXT@@&HL70357"
    return ack.to_er7()


def escape(text: str) -> str:
    """HL7 escaping with the default encoding characters (our own texts only)."""
    return (text.replace("\\", "\\E\\").replace("|", "\\F\\").replace("^", "\\S\\")
            .replace("&", "\\T\\").replace("~", "\\R\\").replace("\r", " ").replace("\n", " "))


_counter = itertools.count(1)
_PREFIX = f"{os.getpid() % 100000:05d}"


def new_control_id(now: datetime) -> str:
    """A control ID unique per process and time: our MSH-10 on ACKs and outbound messages."""
    return f"Y{now:%Y%m%d%H%M%S}{_PREFIX}{next(_counter) % 1_000_000:06d}"


@dataclass(frozen=True)
class AckOutcome:
    """What we answer: MSA-1, an optional error, and a human-readable MSA-3."""

    code: str                      # AA / AE / AR
    error: Hl7Error | None = None
    text: str = ""


def build_ack(header: Header | None, outcome: AckOutcome, *, application: str, facility: str,
              now: datetime) -> str:
    """Return the ACK for ``header`` as ER7 text (CR-separated, no MLLP framing).

    ``header`` is None when the message was not HL7 at all: the ACK then has empty receiving
    fields and an empty MSA-2, which is the best HL7 allows.
    """
    version = header.version if header and header.version else "2.5"
    family = _family(version)
    err = outcome.error
    values = {
        "APP": escape(application),
        "FAC": escape(facility),
        "RAPP": header.sending_application if header else "",
        "RFAC": header.sending_facility if header else "",
        "TS": now.strftime("%Y%m%d%H%M%S"),
        "TRIG": header.trigger_event if header else "",
        "CID": new_control_id(now),
        "PID": header.processing_id if header and header.processing_id else "P",
        "VER": version if re.fullmatch(r"[0-9.]{1,8}", version) else "2.5",
        "CS": header.charset if header else "",
        "CODE": outcome.code,
        "REF": header.control_id if header else "",
        "TEXT": escape(outcome.text or (err.text if err else ""))[:80],
    }
    if err is not None:
        seg, _, rest = err.location.partition("^")
        seq, _, fld = rest.partition("^")
        values.update(SEG=seg, SEQ=seq, FLD=fld, ECODE=str(int(err.code)),
                      ETEXT=escape(ERROR_TEXT.get(err.code, "")))
    text = _PLACEHOLDER.sub(lambda m: values[m.group(1)], _template(family, err is not None))
    # Trailing empty components/fields (e.g. ERR with no sequence) are legal but untidy.
    # MSH-1/MSH-2 ("|^~\\&") are the first 8 characters and must stay as they are.
    return "\r".join(seg[:8] + _TRAILING.sub("", seg[8:]).rstrip("|")
                     for seg in text.split("\r"))


_TRAILING = re.compile(r"[\^&]+(?=\||$)")


@dataclass(frozen=True)
class ReceivedAck:
    """An acknowledgement we received for an outbound message."""

    code: str            # AA AE AR CA CE CR
    ref_control_id: str  # MSA-2
    text: str            # MSA-3 / ERR text

    @property
    def is_positive(self) -> bool:
        """AA, or an enhanced-mode commit accept (CA): the receiver holds the message."""
        return self.code in POSITIVE

    @property
    def is_permanent_failure(self) -> bool:
        """AR/CR: the receiver will not take this message as sent (retrying may still help if
        the cause was on their side, so the sender keeps retrying until dead-lettered)."""
        return self.code in ("AR", "CR")


def parse_ack(text: str) -> ReceivedAck:
    """Read MSA from an ACK (original or enhanced mode).

    Raises:
        ValueError: no MSA segment or an unknown acknowledgement code.
    """
    segments = [s for s in text.replace("\n", "\r").split("\r") if s]
    if not segments or not segments[0].startswith("MSH"):
        raise ValueError("ACK does not start with MSH")
    sep = segments[0][3]
    comp = segments[0][4]
    for seg in segments:
        if seg.startswith("MSA"):
            fields = seg.split(sep)
            code = fields[1].split(comp)[0].strip().upper() if len(fields) > 1 else ""
            if code not in ("AA", "AE", "AR", "CA", "CE", "CR"):
                raise ValueError(f"unknown acknowledgement code {code!r}")
            ref = fields[2].strip() if len(fields) > 2 else ""
            msg = fields[3].strip() if len(fields) > 3 else ""
            return ReceivedAck(code, ref, msg)
    raise ValueError("ACK has no MSA segment")


#: Domain refusals of orders (issue 8) -> (ERR location, table 0357 code). The domain names
#: what was wrong (``OrderRefusal.what``); only this edge knows where HL7 carries it.
_ORDER_FIELD = {"placer_order_number": "ORC^1^2", "accession_number": "OBR^1^18",
                "patient_identifier": "PID^1^3", "order_control": "ORC^1^1",
                "modality": "OBR^1^24"}


def refusal_info(exc: Exception) -> ErrorInfo:
    """The AE ErrorInfo for a domain refusal raised while storing a message.

    Duplicate -> 205 (duplicate key), unknown order -> 204 (unknown key), a change the order's
    state forbids -> 206 (application record locked), bad content -> 101/102.
    """
    from hub.domain.errors import Conflict, InvalidInput, InvalidTransition, NotFound
    from hub.services.lab import ErrorInfo

    location = _ORDER_FIELD.get(getattr(exc, "what", ""), "")
    if isinstance(exc, Conflict):
        code = 205
    elif isinstance(exc, NotFound):
        code = 204
    elif isinstance(exc, InvalidTransition):
        code = 206
    elif isinstance(exc, InvalidInput):
        code = 102 if getattr(exc, "what", "") == "accession_number" else 101
    else:
        code = 207
    return ErrorInfo("AE", location, code, str(exc)[:200])
