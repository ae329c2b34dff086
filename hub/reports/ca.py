"""Community CA (医共体CA) for demos and tests, and the certificate store signing reads from.

``yigong ca init`` creates a self-signed CA; ``yigong ca issue USER`` gives a user a signing
certificate and key; ``yigong ca revoke USER`` revokes it. A hospital with its own CA imports its
CA certificate (:func:`import_ca`) and its users' PKCS#12 files (:func:`import_pkcs12`) instead.

Private keys are stored PKCS#8-encrypted with a passphrase derived from the hub secret
(:func:`key_passphrase`), so a copy of the database alone does not let anyone sign. Revocation is
recorded on the certificate row, checked before every signature (:func:`load_signing_key`), and
published as a CRL (:func:`build_crl`, served at ``/verify/crl.pem``).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from sqlalchemy import select
from sqlalchemy.orm import Session

from hub.clock import as_utc
from hub.db.models import User
from hub.db.report_models import CertificateAuthority, SigningCertificate
from hub.domain.errors import Conflict, InvalidInput, NotFound
from hub.domain.signoff import CertificateState
from hub.reports.signing import DEFAULT_ALGORITHM, SigningKey, algorithm_for_key, get_algorithm

logger = logging.getLogger(__name__)


def key_passphrase(secret: str) -> bytes:
    """The passphrase protecting stored private keys, derived from the hub secret."""
    return hashlib.sha256(b"yigong-report-keys\x00" + secret.encode()).hexdigest().encode()


def _encrypt(key: PrivateKeyTypes, passphrase: bytes) -> str:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.BestAvailableEncryption(passphrase)).decode()


def _decrypt(pem: str, passphrase: bytes) -> PrivateKeyTypes:
    return serialization.load_pem_private_key(pem.encode(), passphrase)


def _pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def _fingerprint(cert: x509.Certificate) -> str:
    return cert.fingerprint(hashes.SHA256()).hex()


def active_ca(session: Session) -> CertificateAuthority | None:
    """The CA the hub issues under (the newest active one holding a key)."""
    return session.scalar(select(CertificateAuthority).where(
        CertificateAuthority.is_active.is_(True), CertificateAuthority.key_pem.is_not(None))
        .order_by(CertificateAuthority.id.desc()).limit(1))


def trust_roots(session: Session) -> list[x509.Certificate]:
    """Certificates of every active CA (own and imported): the validator's trust anchors."""
    rows = session.scalars(select(CertificateAuthority).where(
        CertificateAuthority.is_active.is_(True)).order_by(CertificateAuthority.id))
    return [x509.load_pem_x509_certificate(r.cert_pem.encode()) for r in rows]


def init_ca(session: Session, passphrase: bytes, now: datetime, *,
            name: str = "Yigong Community CA 医共体CA", years: int = 10,
            algorithm: str = DEFAULT_ALGORITHM) -> CertificateAuthority:
    """Create the community CA, or return the existing one (idempotent)."""
    existing = active_ca(session)
    if existing is not None:
        return existing
    alg = get_algorithm(algorithm)
    key = alg.generate_key()
    subject = x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "CN"),
                         x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Yigong Hub"),
                         x509.NameAttribute(NameOID.COMMON_NAME, name)])
    cert = (x509.CertificateBuilder()
            .subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + timedelta(days=365 * years))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False,
                                         key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, key_cert_sign=True, crl_sign=True,
                                         encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                           critical=False)
            .sign(key, alg.certificate_hash()))
    row = CertificateAuthority(name=name, cert_pem=_pem(cert), key_pem=_encrypt(key, passphrase),
                               is_active=True, crl_number=0, created_at=now)
    session.add(row)
    session.flush()
    logger.info("community CA %s created (serial %x)", row.id, cert.serial_number)
    return row


def import_ca(session: Session, cert_pem: str, now: datetime) -> CertificateAuthority:
    """Trust a hospital CA's certificate (no key: the hub cannot issue under it).

    Raises:
        InvalidInput: not a PEM CA certificate.
    """
    try:
        cert = x509.load_pem_x509_certificate(cert_pem.encode())
        is_ca = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except (ValueError, x509.ExtensionNotFound) as exc:
        raise InvalidInput(f"not a CA certificate: {exc}") from None
    if not is_ca:
        raise InvalidInput("certificate is not a CA (BasicConstraints ca=false)")
    row = CertificateAuthority(name=cert.subject.rfc4514_string()[:200], cert_pem=_pem(cert),
                               key_pem=None, is_active=True, crl_number=0, created_at=now)
    session.add(row)
    session.flush()
    return row


def _user(session: Session, username: str) -> User:
    user = session.scalar(select(User).where(User.username == username))
    if user is None:
        raise NotFound(f"no user {username!r}")
    return user


def current_certificate(session: Session, user_id: int) -> SigningCertificate | None:
    """The user's newest certificate that is not revoked (it may still be expired)."""
    return session.scalar(select(SigningCertificate).where(
        SigningCertificate.user_id == user_id, SigningCertificate.revoked_at.is_(None))
        .order_by(SigningCertificate.id.desc()).limit(1))


def issue(session: Session, username: str, passphrase: bytes, now: datetime, *,
          days: int = 730, not_before: datetime | None = None,
          algorithm: str = DEFAULT_ALGORITHM) -> SigningCertificate:
    """Issue a signing certificate for ``username`` under the community CA.

    ``not_before`` lets tests make an already-expired certificate.

    Raises:
        NotFound: unknown user. Conflict: no community CA (run ``yigong ca init``).
    """
    user = _user(session, username)
    ca_row = active_ca(session)
    if ca_row is None or ca_row.key_pem is None:
        raise Conflict("no community CA: run `yigong ca init` first")
    ca_cert = x509.load_pem_x509_certificate(ca_row.cert_pem.encode())
    ca_key = _decrypt(ca_row.key_pem, passphrase)
    alg = get_algorithm(algorithm)
    key = alg.generate_key()
    start = not_before or (now - timedelta(minutes=5))
    subject = x509.Name([
        x509.NameAttribute(NameOID.COUNTRY_NAME, "CN"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, user.institution_code),
        x509.NameAttribute(NameOID.COMMON_NAME, user.display_name or user.username),
        x509.NameAttribute(NameOID.USER_ID, user.username),
    ])
    cert = (x509.CertificateBuilder()
            .subject_name(subject).issuer_name(ca_cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start).not_valid_after(start + timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            # Non-repudiation (content commitment): the signer stands behind the report.
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=True,
                                         key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, key_cert_sign=False,
                                         crl_sign=False, encipher_only=False,
                                         decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]),
                           critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                ca_cert.public_key()), critical=False)
            .sign(ca_key, alg.certificate_hash()))
    row = SigningCertificate(
        user_id=user.id, ca_id=ca_row.id, serial=format(cert.serial_number, "x"),
        subject=cert.subject.rfc4514_string()[:400], algorithm=alg.name,
        not_before=as_utc(cert.not_valid_before_utc), not_after=as_utc(cert.not_valid_after_utc),
        cert_pem=_pem(cert), key_pem=_encrypt(key, passphrase),
        fingerprint_sha256=_fingerprint(cert),
        created_at=now,
    )
    session.add(row)
    session.flush()
    logger.info("certificate %s issued to user %s", row.serial, user.id)
    return row


def import_pkcs12(session: Session, username: str, data: bytes, password: bytes | None,
                  passphrase: bytes, now: datetime) -> SigningCertificate:
    """Import a user's certificate and key from their hospital CA (PKCS#12).

    The issuing CA must already be trusted (:func:`import_ca`).

    Raises:
        NotFound: unknown user. InvalidInput: unreadable file or untrusted issuer.
    """
    user = _user(session, username)
    try:
        key, cert, _extra = pkcs12.load_key_and_certificates(data, password)
    except ValueError as exc:
        raise InvalidInput(f"cannot read PKCS#12: {exc}") from None
    if key is None or cert is None:
        raise InvalidInput("PKCS#12 holds no key or certificate")
    issuer = next((c for c in trust_roots(session) if c.subject == cert.issuer), None)
    if issuer is None:
        raise InvalidInput("the certificate's issuer is not a trusted CA")
    ca_id = session.scalar(select(CertificateAuthority.id).where(
        CertificateAuthority.cert_pem == _pem(issuer)))
    row = SigningCertificate(
        user_id=user.id, ca_id=ca_id, serial=format(cert.serial_number, "x"),
        subject=cert.subject.rfc4514_string()[:400], algorithm=algorithm_for_key(key).name,
        not_before=as_utc(cert.not_valid_before_utc), not_after=as_utc(cert.not_valid_after_utc),
        cert_pem=_pem(cert), key_pem=_encrypt(key, passphrase),
        fingerprint_sha256=_fingerprint(cert),
        created_at=now,
    )
    session.add(row)
    session.flush()
    return row


def revoke(session: Session, username: str, now: datetime,
           reason: str = "unspecified") -> list[SigningCertificate]:
    """Revoke every unrevoked certificate of ``username``; returns them.

    Raises:
        NotFound: unknown user, or the user has no certificate to revoke.
    """
    user = _user(session, username)
    rows = list(session.scalars(select(SigningCertificate).where(
        SigningCertificate.user_id == user.id, SigningCertificate.revoked_at.is_(None))))
    if not rows:
        raise NotFound(f"user {username!r} has no certificate to revoke")
    for r in rows:
        r.revoked_at = now
        r.revocation_reason = reason[:200]
        logger.warning("certificate %s of user %s revoked", r.serial, user.id)
    return rows


def certificate_state(row: SigningCertificate | None) -> CertificateState | None:
    """What :func:`hub.domain.signoff.check_certificate` needs to know about a row."""
    if row is None:
        return None
    return CertificateState(as_utc(row.not_before), as_utc(row.not_after), as_utc(row.revoked_at))


@dataclass(frozen=True)
class LoadedKey:
    """A certificate row and the key material ready to sign with."""

    row: SigningCertificate
    signing_key: SigningKey


_KEY_CACHE: dict[tuple[int, str], PrivateKeyTypes] = {}


def load_signing_key(session: Session, row: SigningCertificate, passphrase: bytes) -> LoadedKey:
    """Decrypt the key of ``row`` and assemble its chain.

    Revocation and validity are the caller's check (:func:`hub.domain.signoff.check_certificate`)
    so that the refusal carries the domain's reason; this only loads.

    Raises:
        Conflict: the hub holds no private key for this certificate.
    """
    if not row.key_pem:
        raise Conflict("the hub holds no private key for this certificate")
    cache_key = (row.id, row.fingerprint_sha256)
    key = _KEY_CACHE.get(cache_key)
    if key is None:
        # PKCS#8 decryption runs a KDF on purpose; cache the result per process.
        key = _decrypt(row.key_pem, passphrase)
        _KEY_CACHE[cache_key] = key
    cert = x509.load_pem_x509_certificate(row.cert_pem.encode())
    chain: tuple[x509.Certificate, ...] = ()
    if row.ca_id is not None:
        ca_row = session.get(CertificateAuthority, row.ca_id)
        if ca_row is not None:
            chain = (x509.load_pem_x509_certificate(ca_row.cert_pem.encode()),)
    return LoadedKey(row, SigningKey(key, cert, chain, row.algorithm))


def build_crl(session: Session, passphrase: bytes, now: datetime) -> bytes | None:
    """A fresh CRL (PEM) of the community CA listing every revoked certificate; None without CA."""
    ca_row = active_ca(session)
    if ca_row is None or ca_row.key_pem is None:
        return None
    ca_cert = x509.load_pem_x509_certificate(ca_row.cert_pem.encode())
    ca_key = _decrypt(ca_row.key_pem, passphrase)
    ca_row.crl_number += 1
    builder = (x509.CertificateRevocationListBuilder()
               .issuer_name(ca_cert.subject).last_update(now - timedelta(minutes=1))
               .next_update(now + timedelta(days=1))
               .add_extension(x509.CRLNumber(ca_row.crl_number), critical=False))
    revoked = session.scalars(select(SigningCertificate).where(
        SigningCertificate.ca_id == ca_row.id, SigningCertificate.revoked_at.is_not(None)))
    for r in revoked:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(int(r.serial, 16))
            .revocation_date(as_utc(r.revoked_at)).build())
    alg = algorithm_for_key(ca_key)
    crl = builder.sign(ca_key, alg.certificate_hash())
    return crl.public_bytes(serialization.Encoding.PEM)


def revoked_serials(session: Session) -> dict[str, datetime]:
    """Serial (hex) -> revocation time, for verification."""
    rows = session.execute(select(SigningCertificate.serial, SigningCertificate.revoked_at).where(
        SigningCertificate.revoked_at.is_not(None)))
    return {s: as_utc(t) for s, t in rows}
