"""Node settings, read once from ``YIGONG_NODE_*`` environment variables at the entry point.

Shared settings (``YIGONG_DATA_DIR``) are not read here: a node usually runs on its own machine
at the branch, so everything it needs has its own ``YIGONG_NODE_`` name.
"""

from __future__ import annotations

import json
import ssl
from enum import StrEnum
from pathlib import Path
from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class Transport(StrEnum):
    """How the node sends spooled instances to the hub."""

    #: DICOM C-STORE to Orthanc's DICOM port: the LAN choice.
    DICOM = "dicom"
    #: HTTP POST to Orthanc's REST ``/instances``: the slow-link choice (keep-alive, compression).
    HTTP = "http"


class Compression(StrEnum):
    """Lossless transcoding applied before sending over the HTTP transport."""

    NONE = "none"
    JPEG_LS = "jpeg-ls"
    JPEG_2000 = "jpeg2000"


class NodeSettings(BaseSettings):
    """Every setting has an environment variable ``YIGONG_NODE_<NAME>``; see docs/node.md."""

    model_config = SettingsConfigDict(env_prefix="YIGONG_NODE_", extra="ignore")

    # --- receiving (SCP) ---
    aet: str = Field("YIGONG-NODE", description="Our AE title")
    host: str = Field("127.0.0.1", description="Address the SCP listens on (0.0.0.0 on a LAN)")
    port: int = Field(11112, description="DICOM port of the SCP")
    allowed_aets: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Calling AE titles allowed to associate; empty = any (branch LAN default)",
    )
    spool_dir: Path = Field(Path("./yigong-data/node-spool"), description="Spool = the queue")
    min_free_bytes: int = Field(
        512 * 1024 * 1024,
        description="Refuse new instances (0xA700) when the spool disk has less free space",
    )
    max_pdu: int = Field(0, description="Maximum PDU we receive; 0 = unlimited (fastest)")
    network_timeout: float = Field(60.0, description="Seconds of silence before dropping a peer")

    # --- forwarding ---
    transport: Transport = Field(
        Transport.DICOM, description="dicom (C-STORE, LAN) or http (Orthanc REST, slow links)"
    )
    hub_host: str = Field("127.0.0.1", description="Orthanc DICOM host (DICOM transport)")
    hub_port: int = Field(4242, description="Orthanc DICOM port (DICOM transport)")
    hub_aet: str = Field("YIGONG", description="Orthanc AE title")
    orthanc_url: str = Field("http://127.0.0.1:8042", description="Orthanc REST (HTTP transport)")
    orthanc_user: str = Field("yigong", description="Orthanc REST user (HTTP transport)")
    orthanc_password: str = Field("yigong", description="Orthanc REST password (HTTP transport)")
    http_gzip: bool = Field(True, description="gzip request bodies on the HTTP transport")
    compression: Compression = Field(
        Compression.NONE, description="Lossless transcoding before sending (HTTP transport)"
    )
    workers: int | None = Field(
        None, ge=1, le=32,
        description="Parallel forwarding workers; default 2 for DICOM (each holds one of "
        "Orthanc's few DICOM threads), 4 for HTTP (keeps a slow link busy while others encode)",
    )
    retry_base: float = Field(0.5, description="First backoff delay in seconds")
    retry_max: float = Field(60.0, description="Longest backoff delay in seconds")
    max_attempts: int = Field(
        20, description="Attempts before an instance the hub refuses is quarantined"
    )
    idle_release: float = Field(
        2.0, description="Release an idle hub association after this many seconds"
    )

    # --- identity and the hub API ---
    institution_code: str = Field("", description="Our branch's code at the hub, e.g. BR01")
    hub_url: str = Field("", description="Hub API base URL; empty = no manifests/origin calls")
    hub_user: str = Field("", description="Node service user at the hub")
    hub_password: str = Field("", description="Its password (no default: it is a secret)")
    study_quiet_seconds: float = Field(
        30.0, description="A study silent this long, fully forwarded, gets its manifest posted"
    )
    manifest_poll_seconds: float = Field(1.0, description="How often manifests are considered")
    ledger_retention_days: float = Field(
        30.0, description="Forget fully forwarded, manifested studies after this many days"
    )

    # --- modality worklist (issue 8) ---
    mwl_sync_seconds: float = Field(
        30.0, description="How often the branch's scheduled procedures are fetched from the hub"
    )
    mwl_charset: str = Field(
        "ISO_IR 192",
        description="Specific Character Set of MWL answers when the query asks for none we "
        "can use (ISO_IR 192 = UTF-8, or GB18030)",
    )
    timezone: str = Field("Asia/Shanghai", description="Time zone of the modalities' schedule")

    # --- TLS ---
    tls_cert: Path | None = Field(None, description="PEM certificate of our SCP (enables TLS)")
    tls_key: Path | None = Field(None, description="PEM private key of our SCP")
    tls_client_ca: Path | None = Field(
        None, description="CA bundle; when set, modalities must present a client certificate"
    )
    hub_tls: bool = Field(False, description="Use TLS for associations to the hub")
    hub_tls_ca: Path | None = Field(None, description="CA bundle to verify the hub")
    hub_tls_cert: Path | None = Field(None, description="Our client certificate for the hub")
    hub_tls_key: Path | None = Field(None, description="Private key of that certificate")
    hub_tls_hostname: str = Field("", description="Name to verify in the hub's certificate")

    # --- operations ---
    metrics_port: int = Field(0, description="Prometheus metrics port; 0 = off")
    log_level: str = Field("INFO", description="Logging level")
    log_json: bool = Field(True, description="One JSON object per log line")

    @field_validator("allowed_aets", mode="before")
    @classmethod
    def _split_aets(cls, v: object) -> object:
        # Accept "CT1,DR1" from the environment as well as a JSON list.
        if isinstance(v, str):
            if v.strip().startswith("["):
                return json.loads(v)
            return [a.strip() for a in v.split(",") if a.strip()]
        return v

    @property
    def effective_workers(self) -> int:
        """Worker count, with the per-transport default when none was configured."""
        if self.workers is not None:
            return self.workers
        return 4 if self.transport == Transport.HTTP else 2

    def scp_ssl_context(self) -> ssl.SSLContext | None:
        """Server-side TLS context for the SCP, or None when TLS is off."""
        if not self.tls_cert:
            return None
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(str(self.tls_cert), str(self.tls_key) if self.tls_key else None)
        if self.tls_client_ca:
            ctx.verify_mode = ssl.CERT_REQUIRED
            ctx.load_verify_locations(str(self.tls_client_ca))
        return ctx

    def hub_ssl_context(self) -> ssl.SSLContext | None:
        """Client-side TLS context for associations to the hub, or None when TLS is off."""
        if not self.hub_tls:
            return None
        ctx = ssl.create_default_context(
            ssl.Purpose.SERVER_AUTH, cafile=str(self.hub_tls_ca) if self.hub_tls_ca else None
        )
        if not self.hub_tls_hostname:
            ctx.check_hostname = False
        if self.hub_tls_cert:
            ctx.load_cert_chain(
                str(self.hub_tls_cert), str(self.hub_tls_key) if self.hub_tls_key else None
            )
        return ctx
