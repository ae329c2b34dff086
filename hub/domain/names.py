"""Person names as people read them, from DICOM PN or HL7 XPN component form."""

from __future__ import annotations


def display_name(dicom_name: str) -> str:
    """The ideographic group when present, else the alphabetic one, for display.

    ``Wang^XiaoDong=王^小东`` → ``王小东``; ``张^建国`` (HL7 family^given) → ``张建国``;
    ``Doe^Peter`` → ``Doe Peter``. Chinese names are written without spaces.
    """
    groups = dicom_name.split("=")
    for group in (groups[1] if len(groups) > 1 else "", groups[0]):
        if group.strip("^ "):
            parts = [p for p in group.split("^") if p]
            has_cjk = any(ord(ch) > 0x2E80 for ch in group)
            return ("" if has_cjk else " ").join(parts)
    return ""
