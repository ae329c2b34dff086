"""Split an HL7 v2 message in ER7 (pipe) encoding into segments and fields.

The inbound hot path needs only segment names and raw field text: components, repetitions and
escapes are resolved lazily by ``lis_bridge.hl7_map`` for the few fields it reads. python-hl7
builds a full object tree for every message (about 0.5 ms for a 10-segment ORU); this split is
a few string operations. Escape sequences, which are rare, are still decoded by python-hl7.
"""

from __future__ import annotations

from collections.abc import Iterator

from hl7.util import unescape as _hl7_unescape


class Er7Message:
    """Segments as lists of raw field strings, numbered as in HL7: ``seg[0]`` is the name.

    For MSH, ``seg[1]`` is the field separator and ``seg[2]`` the encoding characters, so
    ``seg[n]`` is MSH-n like every other segment.
    """

    __slots__ = ("esc", "segments", "separators")

    def __init__(self, segments: list[list[str]], field_sep: str, encoding: str) -> None:
        self.segments = segments
        # Same layout as python-hl7's: segment, field, repetition, component, subcomponent.
        self.separators = "\r" + field_sep + encoding[1] + encoding[0] + encoding[3]
        self.esc = encoding[2]

    def __iter__(self) -> Iterator[list[str]]:
        return iter(self.segments)

    def segment(self, name: str) -> list[str]:
        """The first segment called ``name``.

        Raises:
            KeyError: the message has no such segment.
        """
        for seg in self.segments:
            if seg[0] == name:
                return seg
        raise KeyError(name)

    def unescape(self, value: str) -> str:
        """Decode HL7 escape sequences (\\F\\, \\S\\, \\X..\\, \\.br\\ ...) in ``value``."""
        return _hl7_unescape(self, value)


def parse(text: str) -> Er7Message:
    """Split ``text`` (segments separated by CR, starting with MSH) into an :class:`Er7Message`.

    The caller has checked that ``text`` starts with ``MSH`` followed by the field separator
    and four encoding characters.
    """
    field_sep = text[3]
    segments: list[list[str]] = []
    for line in text.split("\r"):
        if not line.strip():
            continue
        fields = line.split(field_sep)
        if fields[0] == "MSH":
            fields.insert(1, field_sep)
        segments.append(fields)
    return Er7Message(segments, field_sep, text[4:8])
