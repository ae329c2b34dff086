"""Verify a report PDF: every embedded PAdES signature intact, valid, trusted, covering the whole
file, by a certificate that is not revoked; and (when the hub's database is at hand) the file is
byte-for-byte a version the hub issued. Any changed byte fails one of those checks.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from datetime import datetime
from io import BytesIO

from cryptography import x509
from cryptography.hazmat.primitives import serialization

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SignatureCheck:
    """One embedded signature as the validator saw it."""

    field_name: str
    signer: str
    serial: str
    signing_time: datetime | None
    intact: bool
    valid: bool
    trusted: bool
    covers_whole_file: bool
    revoked: bool
    summary: str

    @property
    def ok(self) -> bool:
        return (self.intact and self.valid and self.trusted and self.covers_whole_file
                and not self.revoked)


@dataclass
class PdfCheck:
    """The outcome for a whole file."""

    sha256: str
    signatures: list[SignatureCheck] = field(default_factory=list)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and bool(self.signatures) and all(
            s.ok for s in self.signatures)


def _asn1(cert: x509.Certificate):  # noqa: ANN202 - asn1crypto has no stubs
    from asn1crypto import x509 as asn1_x509

    return asn1_x509.Certificate.load(cert.public_bytes(serialization.Encoding.DER))


def _der_length(blob: bytes) -> int | None:
    """Total length of the DER element at the start of ``blob`` (tag, length, content)."""
    if len(blob) < 2:
        return None
    first = blob[1]
    if first < 0x80:
        return 2 + first
    n = first & 0x7F
    if n == 0 or n > 4 or len(blob) < 2 + n:
        return None
    return 2 + n + int.from_bytes(blob[2:2 + n], "big")


def signature_gap_is_clean(data: bytes, byte_range: list[int]) -> bool:
    """The bytes a PAdES signature does not cover (its own /Contents) hold only the CMS blob.

    The byte range deliberately skips the hex string with the signature; inside it, the CMS
    structure is followed by zero padding that no digest covers. Require ``<hex>``, valid hex,
    and nothing but zero bytes after the DER element, so that no byte of the file can change
    unnoticed even without the hub's database at hand.
    """
    try:
        start, len1, start2, _len2 = (int(x) for x in byte_range)
    except (TypeError, ValueError):
        return False
    if start != 0:
        return False
    gap = data[len1:start2]
    if len(gap) < 2 or gap[:1] != b"<" or gap[-1:] != b">":
        return False
    hex_text = gap[1:-1]
    if any(c not in b"0123456789abcdefABCDEF" for c in hex_text):
        return False
    try:
        blob = bytes.fromhex(hex_text.decode("ascii"))
    except ValueError:
        return False
    size = _der_length(blob)
    if size is None or size > len(blob):
        return False
    # One case throughout: a flipped 0x20 bit turns "a" into "A", same value, different file.
    consistent_case = hex_text == hex_text.lower() or hex_text == hex_text.upper()
    return consistent_case and not any(blob[size:])


def validate_pdf(data: bytes, trust_roots: list[x509.Certificate],
                 revoked: dict[str, datetime] | None = None) -> PdfCheck:
    """Validate every signature of a PDF with pyHanko against ``trust_roots``.

    Args:
        data: the PDF bytes.
        trust_roots: CA certificates to trust.
        revoked: serial (lower-case hex) -> revocation time; a signature made at or after its
            certificate's revocation fails.

    Never raises for a damaged file: the error is in :attr:`PdfCheck.error`.
    """
    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.sign.validation import SignatureCoverageLevel, validate_pdf_signature
    from pyhanko.sign.validation.errors import SignatureValidationError
    from pyhanko_certvalidator import ValidationContext

    result = PdfCheck(sha256=hashlib.sha256(data).hexdigest())
    revoked = revoked or {}
    try:
        reader = PdfFileReader(BytesIO(data), strict=False)
        sigs = reader.embedded_signatures
        if not sigs:
            result.error = "the file has no embedded signature"
            return result
        # Revocation is checked against the hub's own list below; the validator must not go
        # fetching CRLs/OCSP over the network from a county hospital's LAN.
        vc = ValidationContext(trust_roots=[_asn1(c) for c in trust_roots],
                               allow_fetching=False, revocation_mode="soft-fail")
        for sig in sigs:
            status = validate_pdf_signature(sig, vc)
            cert = status.signing_cert
            serial = format(cert.serial_number, "x") if cert is not None else ""
            when = getattr(status, "signer_reported_dt", None)
            clean = signature_gap_is_clean(data, list(sig.byte_range))
            rev_at = revoked.get(serial)
            is_revoked = rev_at is not None and (when is None or when >= rev_at)
            result.signatures.append(SignatureCheck(
                field_name=sig.field_name,
                signer=cert.subject.human_friendly if cert is not None else "",
                serial=serial, signing_time=when, intact=bool(status.intact),
                valid=bool(status.valid) and clean, trusted=bool(status.trusted),
                covers_whole_file=status.coverage == SignatureCoverageLevel.ENTIRE_FILE,
                revoked=is_revoked,
                summary=status.summary() + ("" if clean else ",PADDING_ALTERED"),
            ))
    except (SignatureValidationError, ValueError, KeyError, TypeError, IndexError,
            AttributeError) as exc:
        result.error = f"cannot validate: {type(exc).__name__}: {exc}"
    except Exception as exc:  # noqa: BLE001 - pyHanko raises many parser errors for a bad file
        result.error = f"damaged or unreadable PDF: {type(exc).__name__}: {exc}"
    return result
