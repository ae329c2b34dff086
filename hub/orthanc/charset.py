"""Decode DICOM person names from raw bytes with the dataset's Specific Character Set.

Orthanc's JSON already converts to UTF-8 for common charsets, but not reliably for ISO 2022 IR 58
(GB2312 with escape sequences) or when SpecificCharacterSet is missing; pydicom's decoder handles
them all, so the hub decodes patient names itself from the raw tag bytes.
"""

from __future__ import annotations

import logging
import re

from pydicom.charset import convert_encodings
from pydicom.valuerep import PersonName

logger = logging.getLogger(__name__)


def charsets_from_raw(raw: bytes | None) -> list[str]:
    """``b"ISO 2022 IR 6\\ISO 2022 IR 58"`` → ``["ISO 2022 IR 6", "ISO 2022 IR 58"]``."""
    if not raw:
        return ["ISO_IR 6"]
    values = [v.strip() for v in raw.decode("ascii", "replace").rstrip("\x00 ").split("\\")]
    # An empty first value means the default repertoire, as PS3.3 C.12.1.1.2 allows.
    return [v or "ISO_IR 6" for v in values] or ["ISO_IR 6"]


def decode_person_name(raw: bytes | None, charset_raw: bytes | None) -> str:
    """Return the name as text, components joined the DICOM way (``Wang^XiaoDong=王^小东``)."""
    if not raw:
        return ""
    raw = raw.rstrip(b"\x00 ")
    encodings = charsets_from_raw(charset_raw)
    if "ISO 2022 IR 58" in encodings:
        # pydicom leaves the ESC $ ) A designations in place for IR 58 (Python's iso_ir_58 codec
        # is plain GB2312). GB2312 in G1 is EUC-CN on the wire, which GB18030 decodes directly.
        stripped = re.sub(rb"\x1b(\$\)A|\(B)", b"", raw)
        return stripped.decode("gb18030", "replace").strip()
    try:
        return str(PersonName(raw, encodings=convert_encodings(encodings))).strip()
    except Exception:  # noqa: BLE001 - never drop a study over a name; flag instead
        logger.warning("could not decode person name with %s", encodings)
        return raw.decode("utf-8", "replace")
