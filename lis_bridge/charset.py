"""MSH-18 character sets: find the sender's charset, decode the message, encode our reply.

MSH-18 is read from the raw bytes of the MSH segment before decoding. That is safe because the
MSH segment itself is ASCII and ends at the first CR (0x0D), a byte that never occurs inside a
GB 18030 or UTF-8 multi-byte sequence. The rest of the message is *not* split on bytes: in
GB 18030 a trail byte may be 0x7C ('|') or 0x5E ('^'), so we decode first, then parse text.
"""

from __future__ import annotations

import codecs

#: HL7 table 0211 names (and common variants sent by Chinese LIS/HIS vendors) -> Python codec.
CHARSETS: dict[str, str] = {
    "ASCII": "ascii",
    "8859/1": "latin-1",
    "UNICODE UTF-8": "utf-8",
    "UTF-8": "utf-8",
    "UNICODE": "utf-8",
    "GB 18030-2000": "gb18030",
    "GB18030": "gb18030",
    "GB 2312": "gb18030",   # GB 18030 is a superset of GB 2312 and GBK
    "GBK": "gb18030",
    "CNS 11643-1992": "big5",
    "BIG-5": "big5",
}


class UnsupportedCharset(ValueError):
    """MSH-18 names a character set we cannot decode."""

    def __init__(self, name: str) -> None:
        super().__init__(f"unsupported character set {name!r} in MSH-18")
        self.name = name


def msh18(raw: bytes) -> str:
    """Return MSH-18 (first repetition) from the raw message, or '' when absent or unreadable."""
    start = raw.find(b"MSH")
    if start < 0:
        return ""
    end = raw.find(b"\r", start)
    head = raw[start:end if end >= 0 else len(raw)]
    if len(head) < 4:
        return ""
    sep = head[3:4]
    fields = head.split(sep)
    # fields[0] = "MSH", fields[1] = encoding characters (MSH-2), so MSH-n is fields[n-1].
    if len(fields) < 18:
        return ""
    value = fields[17].decode("latin-1")
    rep = head[4:5].decode("latin-1") if len(head) > 4 else "~"
    return value.split(rep)[0].strip() if rep else value.strip()


def codec_for(name: str, default: str = "ASCII") -> str:
    """Python codec for an MSH-18 value; '' means ``default``. Raises UnsupportedCharset."""
    key = (name or default).strip().upper()
    codec = CHARSETS.get(key)
    if codec is None:
        raise UnsupportedCharset(name)
    return codecs.lookup(codec).name


def decode(raw: bytes, default: str = "ASCII") -> tuple[str, str, str]:
    """Decode a whole message as MSH-18 says.

    Returns ``(text, msh18_value, codec)``. When MSH-18 is empty the default applies; a message
    that is not valid in the default but is valid UTF-8 or GB 18030 is decoded with that instead
    (senders often leave MSH-18 empty and send UTF-8), and ``codec`` says which was used.

    Raises:
        UnsupportedCharset: MSH-18 names a charset we do not know.
        UnicodeDecodeError: the bytes are not valid in the declared charset.
    """
    declared = msh18(raw)
    codec = codec_for(declared, default)
    try:
        return raw.decode(codec), declared, codec
    except UnicodeDecodeError:
        if declared:
            raise
    for fallback in ("utf-8", "gb18030"):
        try:
            return raw.decode(fallback), declared, fallback
        except UnicodeDecodeError:
            continue
    return raw.decode("latin-1"), declared, "latin-1"


def encode(text: str, codec: str) -> bytes:
    """Encode a reply in the sender's charset; characters it cannot hold become HL7-escaped.

    HL7 has no escape for arbitrary code points in ASCII, so '?' is the last resort; our
    replies only echo MSH identifiers, which are ASCII in practice.
    """
    return text.encode(codec, errors="replace")
