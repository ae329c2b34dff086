"""Signatures: a detached signature over a report's canonical JSON, and PAdES on its PDF.

The algorithm is pluggable: :class:`SignatureAlgorithm` is the small interface, registered by
name in :data:`ALGORITHMS`. ECDSA P-256/SHA-256 (default: fast, small) and RSA PKCS#1 v1.5/SHA-256
are built in. SM2/SM3 (GM/T 0003, 0004, national crypto) plugs in as another implementation: it
needs a library providing SM2 keys in X.509 (e.g. gmssl) and a pyHanko signer for the PDF side,
registered with :func:`register_algorithm`; nothing else in the hub names an algorithm.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from io import BytesIO
from typing import Any, Protocol

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes, PublicKeyTypes


def canonical_json(document: dict[str, Any]) -> bytes:
    """The exact bytes that are signed: sorted keys, no spaces, UTF-8 (Chinese not escaped).

    Every value must already be JSON-native (str/int/float/bool/None/list/dict); datetimes are
    turned into ISO strings by the caller so that the document is reproducible from the database.
    """
    return json.dumps(document, sort_keys=True, ensure_ascii=False,
                      separators=(",", ":"), allow_nan=False).encode("utf-8")


def sha256_hex(data: bytes) -> str:
    """Hex SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


class SignatureAlgorithm(Protocol):
    """What an algorithm provides: key generation, signing, verification, and its X.509 hash."""

    name: str

    def generate_key(self) -> PrivateKeyTypes: ...

    def sign(self, key: PrivateKeyTypes, data: bytes) -> bytes: ...

    def verify(self, public_key: PublicKeyTypes, signature: bytes, data: bytes) -> bool: ...

    def certificate_hash(self) -> hashes.HashAlgorithm | None: ...


class EcdsaP256Sha256:
    """ECDSA on P-256 with SHA-256 (default)."""

    name = "ecdsa-p256-sha256"

    def generate_key(self) -> ec.EllipticCurvePrivateKey:
        return ec.generate_private_key(ec.SECP256R1())

    def sign(self, key: PrivateKeyTypes, data: bytes) -> bytes:
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        return key.sign(data, ec.ECDSA(hashes.SHA256()))

    def verify(self, public_key: PublicKeyTypes, signature: bytes, data: bytes) -> bool:
        if not isinstance(public_key, ec.EllipticCurvePublicKey):
            return False
        try:
            public_key.verify(signature, data, ec.ECDSA(hashes.SHA256()))
            return True
        except InvalidSignature:
            return False

    def certificate_hash(self) -> hashes.HashAlgorithm:
        return hashes.SHA256()


class RsaPkcs1Sha256:
    """RSA-2048 PKCS#1 v1.5 with SHA-256 (what most hospital CAs issue today)."""

    name = "rsa-pkcs1v15-sha256"

    def generate_key(self) -> rsa.RSAPrivateKey:
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def sign(self, key: PrivateKeyTypes, data: bytes) -> bytes:
        assert isinstance(key, rsa.RSAPrivateKey)
        return key.sign(data, padding.PKCS1v15(), hashes.SHA256())

    def verify(self, public_key: PublicKeyTypes, signature: bytes, data: bytes) -> bool:
        if not isinstance(public_key, rsa.RSAPublicKey):
            return False
        try:
            public_key.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())
            return True
        except InvalidSignature:
            return False

    def certificate_hash(self) -> hashes.HashAlgorithm:
        return hashes.SHA256()


ALGORITHMS: dict[str, SignatureAlgorithm] = {}


def register_algorithm(alg: SignatureAlgorithm) -> None:
    """Make ``alg`` available by its name (e.g. an SM2/SM3 implementation)."""
    ALGORITHMS[alg.name] = alg


register_algorithm(EcdsaP256Sha256())
register_algorithm(RsaPkcs1Sha256())
DEFAULT_ALGORITHM = EcdsaP256Sha256.name


def get_algorithm(name: str) -> SignatureAlgorithm:
    """The registered algorithm ``name``.

    Raises:
        KeyError: not registered.
    """
    return ALGORITHMS[name]


def algorithm_for_key(key: PrivateKeyTypes | PublicKeyTypes) -> SignatureAlgorithm:
    """The built-in algorithm that fits a key, for imported certificates."""
    if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
        return ALGORITHMS[EcdsaP256Sha256.name]
    if isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey):
        return ALGORITHMS[RsaPkcs1Sha256.name]
    raise KeyError(f"no registered algorithm for {type(key).__name__}")


@dataclass(frozen=True)
class SigningKey:
    """A signer's key and certificate, with the CA chain that issued it."""

    key: PrivateKeyTypes
    certificate: x509.Certificate
    chain: tuple[x509.Certificate, ...]
    algorithm: str


def sign_detached(signing_key: SigningKey, document: bytes) -> str:
    """Sign canonical JSON bytes; returns the base64 signature."""
    alg = get_algorithm(signing_key.algorithm)
    return base64.b64encode(alg.sign(signing_key.key, document)).decode("ascii")


def verify_detached(certificate: x509.Certificate, algorithm: str, signature_b64: str,
                    document: bytes) -> bool:
    """Check a detached signature over ``document`` with the certificate's public key."""
    try:
        signature = base64.b64decode(signature_b64, validate=True)
    except ValueError:
        return False
    return get_algorithm(algorithm).verify(certificate.public_key(), signature, document)


def _asn1_cert(cert: x509.Certificate):  # noqa: ANN202 - asn1crypto has no type stubs
    from asn1crypto import x509 as asn1_x509

    return asn1_x509.Certificate.load(cert.public_bytes(serialization.Encoding.DER))


def sign_pdf(pdf: bytes, signing_key: SigningKey, *, reason: str, location: str,
             signer_name: str) -> bytes:
    """PAdES-B-B signature over the whole PDF with the signer's certificate (pyHanko).

    The certificate chain is embedded so a validator needs only the trust root.
    """
    from asn1crypto import keys as asn1_keys
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.sign import fields, signers
    from pyhanko_certvalidator.registry import SimpleCertificateStore

    key_der = signing_key.key.private_bytes(serialization.Encoding.DER,
                                            serialization.PrivateFormat.PKCS8,
                                            serialization.NoEncryption())
    signer = signers.SimpleSigner(
        signing_cert=_asn1_cert(signing_key.certificate),
        signing_key=asn1_keys.PrivateKeyInfo.load(key_der),
        cert_registry=SimpleCertificateStore.from_certs(
            [_asn1_cert(c) for c in signing_key.chain]),
    )
    meta = signers.PdfSignatureMetadata(
        field_name="YigongSignature", md_algorithm="sha256",
        subfilter=fields.SigSeedSubFilter.PADES, reason=reason, location=location,
        name=signer_name,
    )
    writer = IncrementalPdfFileWriter(BytesIO(pdf))
    pdf_signer = signers.PdfSigner(meta, signer=signer)
    out = BytesIO()
    pdf_signer.sign_pdf(writer, output=out)
    return out.getvalue()
