"""LIS bridge settings, ``YIGONG_LIS_*`` environment variables, read once at the entry point."""

from __future__ import annotations

import ssl
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class LisSettings(BaseSettings):
    """Settings of the MLLP server, the HL7 rules and the outbound sender."""

    model_config = SettingsConfigDict(env_prefix="YIGONG_LIS_", extra="ignore")

    host: str = Field("127.0.0.1", description="Address the MLLP server listens on")
    port: int = Field(2575, description="MLLP port (2575 is the IANA-registered HL7 port)")
    workers: int = Field(
        1, description="Server processes; connections are spread evenly, each group-commits"
    )
    max_message_bytes: int = Field(
        4 * 1024 * 1024, description="Larger frames are refused (AR) and the rest discarded"
    )
    idle_timeout: float = Field(300.0, description="Seconds of silence before a connection closes")
    tls_cert: Path | None = Field(None, description="PEM certificate; set with tls_key for TLS")
    tls_key: Path | None = Field(None, description="PEM private key")
    tls_ca: Path | None = Field(None, description="CA bundle; when set, clients must present certs")

    # Group commit: messages from all connections that arrive within this window share one
    # transaction (one fsync). ACKs still go out only after that commit.
    commit_window_ms: float = Field(2.0, description="Longest wait to fill a commit batch")
    commit_batch: int = Field(64, description="Most messages per commit")
    commit_threads: int = Field(
        1, description="Committer threads per process; more overlap batches but shrink them"
    )

    application: str = Field("YIGONG-LIS", description="Our MSH-3 on ACKs and outbound messages")
    facility: str = Field("YIGONG", description="Our MSH-4")
    versions: list[str] = Field(
        default_factory=lambda: ["2.3", "2.3.1", "2.4", "2.5", "2.5.1", "2.6", "2.7", "2.7.1",
                                 "2.8"],
        description="Accepted MSH-12 versions; others get AR (203)",
    )
    processing_ids: list[str] = Field(
        default_factory=lambda: ["P", "T"],
        description="Accepted MSH-11 processing IDs; others (D = debugging) get AR (202)",
    )
    default_charset: str = Field(
        "ASCII", description="Charset assumed when MSH-18 is empty (HL7 default is ASCII)"
    )
    critical_ranges: dict[str, list[float | None]] = Field(
        default_factory=lambda: {
            # Common 危急值 limits (mmol/L unless noted); each site adjusts its own list.
            "K": [2.8, 6.2],
            "2823-3": [2.8, 6.2],      # LOINC potassium
            "NA": [120.0, 160.0],
            "2951-2": [120.0, 160.0],  # LOINC sodium
            "GLU": [2.2, 22.2],
            "2345-7": [2.2, 22.2],     # LOINC glucose
        },
        description="Critical limits per test code (OBX-3.1): [low, high], either may be null",
    )

    # Outbound ORU^R01 to each institution's HIS.
    his_endpoints: dict[str, str] = Field(
        default_factory=dict, description='Institution code -> "host:port" of its HIS MLLP'
    )
    outbound_timeout: float = Field(10.0, description="Seconds to connect and to wait for an ACK")
    outbound_backoff_base: float = Field(5.0, description="First retry delay, seconds")
    outbound_backoff_max: float = Field(600.0, description="Longest retry delay, seconds")
    outbound_dead_after: float = Field(
        24 * 3600.0, description="Seconds without an ACK before a message is dead-lettered"
    )

    @field_validator("max_message_bytes")
    @classmethod
    def _positive(cls, v: int) -> int:
        if v < 1024:
            raise ValueError("max_message_bytes must be at least 1024")
        return v

    def ssl_context(self) -> ssl.SSLContext | None:
        """Server-side TLS context, or None when no certificate is configured."""
        if not self.tls_cert:
            return None
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(self.tls_cert, self.tls_key)
        if self.tls_ca:
            ctx.load_verify_locations(self.tls_ca)
            ctx.verify_mode = ssl.CERT_REQUIRED
        return ctx
