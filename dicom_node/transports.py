"""Ways to hand a spooled file to the hub. One transport object per forwarding worker.

Every transport raises only :class:`HubUnavailable` (retry later, for every file) or
:class:`InstanceRefused` (this file, as it is, will not be taken); library errors are
translated here, at one seam, the way httpx maps httpcore's errors.
"""

from __future__ import annotations

import gzip
import logging
import socket
import time
from collections import OrderedDict
from pathlib import Path
from typing import Protocol

import requests
from pynetdicom import evt
from requests.adapters import HTTPAdapter

from dicom_node.config import Compression, NodeSettings
from dicom_node.part10 import read_file_meta
from dicom_node.scu import AssociationRejected, ScuError, StoreScu
from dicom_node.spool import InstanceInfo
from dicom_node.statuses import HubUnavailable, InstanceRefused, is_success, is_transient
from dicom_node.transcode import compress_lossless

logger = logging.getLogger(__name__)

#: PS3.8 limits an association to 128 presentation contexts (odd IDs 1..255).
MAX_CONTEXTS = 128


def set_nodelay(event: evt.Event) -> None:
    """EVT_CONN_OPEN handler: disable Nagle on the association's socket.

    Without TCP_NODELAY the small PDUs that end each C-STORE wait for the peer's delayed ACK
    (~40 ms on Linux), which caps a single association at about 25 instances per second.
    """
    try:
        sock = event.assoc.dul.socket.socket
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except (AttributeError, OSError) as exc:
        logger.warning("could not set TCP_NODELAY: %s", exc)


class HubTransport(Protocol):
    """What a forwarding worker needs from a transport."""

    def send(self, path: Path, info: InstanceInfo) -> None:
        """Deliver one spooled file; return only once the hub confirmed it."""

    def close(self) -> None:
        """Release connections."""

    def release_idle(self) -> None:
        """Called when the worker has had nothing to do for a while."""


class DicomTransport:
    """C-STORE to Orthanc's DICOM port over one reused association (see scu.py for why it
    is not pynetdicom's SCU)."""

    def __init__(self, settings: NodeSettings) -> None:
        self.settings = settings
        self.scu = StoreScu(
            settings.hub_host, settings.hub_port, settings.hub_aet, settings.aet,
            timeout=120.0, ssl_context=settings.hub_ssl_context(),
            server_hostname=settings.hub_tls_hostname or None,
        )
        # (SOP class, transfer syntax) pairs we have needed, most recent last.
        self._wanted: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._last_used = 0.0

    def _want(self, key: tuple[str, str]) -> None:
        if key in self._wanted:
            self._wanted.move_to_end(key)
            return
        self._wanted[key] = None
        while len(self._wanted) > MAX_CONTEXTS:
            self._wanted.popitem(last=False)

    def _associate(self) -> None:
        try:
            self.scu.associate(list(self._wanted))
        except AssociationRejected as exc:
            raise HubUnavailable(f"association to {self.settings.hub_aet} {exc}") from exc
        except ScuError as exc:
            raise HubUnavailable(str(exc)) from exc

    def send(self, path: Path, info: InstanceInfo) -> None:
        """C-STORE ``path``; raises HubUnavailable or InstanceRefused unless it was stored."""
        try:
            data = path.read_bytes()
            # The file's own meta, not the queued info: a re-sent instance may have replaced
            # the file with another transfer syntax since it was queued.
            meta = read_file_meta(data)
        except FileNotFoundError:
            raise
        except Exception as exc:  # noqa: BLE001 - a damaged spool file
            raise InstanceRefused(f"unreadable spool file: {exc}") from exc
        key = (meta.sop_class_uid, meta.transfer_syntax_uid)
        self._want(key)
        fresh = False
        idle = time.monotonic() - self._last_used
        if not self.scu.is_established or idle > self.settings.idle_release:
            self.scu.release()
            self._associate()
            fresh = True
        if not self.scu.accepts(*key):
            # Propose every pair needed so far, so a mixed study settles on one association.
            self.scu.release()
            self._associate()
            fresh = True
            if not self.scu.accepts(*key):
                raise InstanceRefused(f"hub accepts no context for {key[0]} in {key[1]}")
        try:
            result = self.scu.store(data, meta)
        except ScuError as exc:
            if fresh:
                raise HubUnavailable(str(exc)) from exc
            # A reused association may have been closed by the hub while idle: retry once.
            self._associate()
            try:
                result = self.scu.store(data, meta)
            except ScuError as exc2:
                raise HubUnavailable(str(exc2)) from exc2
        self._last_used = time.monotonic()
        if is_success(result.status):
            return
        message = f"C-STORE status 0x{result.status:04X} {result.error_comment}".strip()
        if is_transient(result.status):
            raise HubUnavailable(message)
        raise InstanceRefused(message)

    def release_idle(self) -> None:
        """Release the association once idle for ``idle_release`` seconds.

        Orthanc serves DICOM with a small fixed pool of threads (``DicomThreadsCount``,
        4 by default) and an idle association holds one until its 30 s timeout, so idle
        associations from our workers would make the modalities at the hub wait.
        """
        if self.scu.is_established and (
            time.monotonic() - self._last_used > self.settings.idle_release
        ):
            self.scu.release()

    def close(self) -> None:
        """Release the association if there is one."""
        self.scu.release()


class HttpTransport:
    """POST to Orthanc's REST ``/instances`` on a keep-alive session (the WAN transport).

    urllib3 sets TCP_NODELAY on its sockets by default. Bodies are transcoded losslessly (if
    configured) and gzip-compressed (Orthanc decodes ``Content-Encoding: gzip``).
    """

    def __init__(self, settings: NodeSettings, timeout: float = 120.0) -> None:
        self.settings = settings
        self.url = settings.orthanc_url.rstrip("/") + "/instances"
        self.timeout = timeout
        self.session = requests.Session()
        self.session.auth = (settings.orthanc_user, settings.orthanc_password)
        adapter = HTTPAdapter(pool_connections=1, pool_maxsize=2, max_retries=0)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        if settings.hub_tls_ca:
            self.session.verify = str(settings.hub_tls_ca)
        #: bytes read from the spool vs bytes put on the wire, for the compression ratio.
        self.bytes_in = 0
        self.bytes_out = 0

    def encode(self, data: bytes) -> tuple[bytes, dict[str, str]]:
        """Body and headers for one file: optional lossless transcoding, optional gzip."""
        headers = {"Content-Type": "application/dicom"}
        transcoded = None
        if self.settings.compression != Compression.NONE:
            transcoded = compress_lossless(data, self.settings.compression)
            if transcoded is not None:
                data = transcoded
        # JPEG-LS/JPEG 2000 output does not shrink under gzip: skip the CPU then.
        if self.settings.http_gzip and transcoded is None:
            zipped = gzip.compress(data, compresslevel=1 if len(data) > 1 << 20 else 6)
            # Compressed pixel data does not shrink further; skip the header then.
            if len(zipped) < len(data) * 0.95:
                headers["Content-Encoding"] = "gzip"
                data = zipped
        return data, headers

    def send(self, path: Path, info: InstanceInfo) -> None:
        """POST the file; raises HubUnavailable or InstanceRefused unless Orthanc answered 200."""
        raw = path.read_bytes()
        body, headers = self.encode(raw)
        self.bytes_in += len(raw)
        self.bytes_out += len(body)
        try:
            resp = self.session.post(self.url, data=body, headers=headers, timeout=self.timeout)
        except requests.RequestException as exc:
            raise HubUnavailable(f"POST /instances: {type(exc).__name__}") from exc
        if resp.status_code == 200:
            return
        detail = resp.text[:200].replace("\n", " ")
        if resp.status_code >= 500 or resp.status_code in (401, 403, 408, 429):
            # Auth problems are configuration, not this file: keep it and retry.
            raise HubUnavailable(f"POST /instances: HTTP {resp.status_code} {detail}")
        raise InstanceRefused(f"POST /instances: HTTP {resp.status_code} {detail}")

    def release_idle(self) -> None:
        """Keep-alive HTTP connections are cheap for Orthanc: nothing to do."""

    def close(self) -> None:
        """Close pooled connections."""
        self.session.close()


def make_transport(settings: NodeSettings) -> HubTransport:
    """The transport chosen by ``settings.transport``."""
    from dicom_node.config import Transport

    if settings.transport == Transport.HTTP:
        return HttpTransport(settings)
    return DicomTransport(settings)
