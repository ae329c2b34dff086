"""A lean C-STORE SCU for the forwarder: PS3.8 upper layer + PS3.7 C-STORE, nothing else.

Why not pynetdicom here: its SCU hands each P-DATA PDU to a reactor thread through a queue
and polls with short sleeps, which costs ~10 ms of CPU and latency per 512 KiB instance on
a two-core branch gateway — the forwarder would be the bottleneck of the whole node (see
docs/performance.md). This class writes each message with one ``sendall`` and blocks on the
socket for the response, so forwarding runs at the archive's speed. pynetdicom still serves
the modalities (scp.py), where its strict negotiation is worth the cost.

Only what the forwarder needs is implemented: associate with the requested presentation
contexts, C-STORE a spooled file's raw dataset bytes, release or abort.
"""

from __future__ import annotations

import socket
import ssl
import struct
from dataclasses import dataclass, field
from pathlib import Path

from pynetdicom import PYNETDICOM_IMPLEMENTATION_UID

from dicom_node.part10 import FileMeta, read_file_meta

APPLICATION_CONTEXT = b"1.2.840.10008.3.1.1.1"
IMPLEMENTATION_VERSION = b"YIGONG_NODE_1"
#: Largest PDU we accept from the hub (its responses are tiny; this is just a bound).
OUR_MAX_PDU = 1 << 20
#: Fragment size when the hub announces "no limit" (0).
DEFAULT_FRAGMENT = 1 << 20


class ScuError(Exception):
    """The association failed or broke; the caller treats the hub as unavailable."""


class AssociationRejected(ScuError):
    """A-ASSOCIATE-RJ: the hub refused the association."""


@dataclass
class StoreResult:
    """C-STORE-RSP status and ErrorComment."""

    status: int
    error_comment: str = ""


@dataclass
class Association:
    """An established association: the socket, accepted contexts and the peer's PDU limit."""

    sock: socket.socket
    max_pdu: int
    #: (abstract syntax, transfer syntax) -> presentation context ID
    accepted: dict[tuple[str, str], int] = field(default_factory=dict)
    message_id: int = 0


def _pad_uid(uid: str) -> bytes:
    raw = uid.encode("ascii")
    return raw + b"\x00" if len(raw) % 2 else raw


def _item(item_type: int, payload: bytes) -> bytes:
    return struct.pack(">BBH", item_type, 0, len(payload)) + payload


def _ae(title: str) -> bytes:
    return title.encode("ascii")[:16].ljust(16, b" ")


def encode_associate_rq(
    calling_aet: str, called_aet: str, contexts: list[tuple[str, str]]
) -> tuple[bytes, dict[int, tuple[str, str]]]:
    """A-ASSOCIATE-RQ (PS3.8 9.3.2) proposing one transfer syntax per context.

    Returns:
        The PDU and the proposed context IDs.
    """
    items = [_item(0x10, APPLICATION_CONTEXT)]
    proposed: dict[int, tuple[str, str]] = {}
    for n, (abstract, tsyntax) in enumerate(contexts):
        cx_id = 2 * n + 1  # odd IDs 1..255
        proposed[cx_id] = (abstract, tsyntax)
        sub = _item(0x30, abstract.encode("ascii")) + _item(0x40, tsyntax.encode("ascii"))
        items.append(_item(0x20, struct.pack(">BBBB", cx_id, 0, 0, 0) + sub))
    user = (
        _item(0x51, struct.pack(">I", OUR_MAX_PDU))
        + _item(0x52, PYNETDICOM_IMPLEMENTATION_UID.encode("ascii"))
        + _item(0x55, IMPLEMENTATION_VERSION)
    )
    items.append(_item(0x50, user))
    body = (
        struct.pack(">HH", 1, 0) + _ae(called_aet) + _ae(calling_aet) + b"\x00" * 32
        + b"".join(items)
    )
    return struct.pack(">BBI", 0x01, 0, len(body)) + body, proposed


def parse_associate_ac(
    body: bytes, proposed: dict[int, tuple[str, str]]
) -> tuple[dict[tuple[str, str], int], int]:
    """Accepted contexts and the peer's maximum PDU length from an A-ASSOCIATE-AC body."""
    accepted: dict[tuple[str, str], int] = {}
    max_pdu = 0
    pos = 68  # version, reserved, AE titles, reserved
    while pos + 4 <= len(body):
        item_type, _, length = struct.unpack_from(">BBH", body, pos)
        value = body[pos + 4:pos + 4 + length]
        pos += 4 + length
        if item_type == 0x21:
            cx_id, _, result = value[0], value[1], value[2]
            if result == 0 and cx_id in proposed:
                # The AC names the transfer syntax it chose; we proposed only one.
                accepted[proposed[cx_id]] = cx_id
        elif item_type == 0x50:
            sub = 0
            while sub + 4 <= len(value):
                s_type, _, s_len = struct.unpack_from(">BBH", value, sub)
                if s_type == 0x51 and s_len == 4:
                    max_pdu = struct.unpack_from(">I", value, sub + 4)[0]
                sub += 4 + s_len
    return accepted, max_pdu


def _element(group: int, elem: int, value: bytes) -> bytes:
    return struct.pack("<HHI", group, elem, len(value)) + value


def encode_store_rq(message_id: int, sop_class: str, sop_instance: str) -> bytes:
    """C-STORE-RQ command set (PS3.7 9.3.1.1), Implicit VR Little Endian as PS3.7 requires."""
    elems = b"".join((
        _element(0x0000, 0x0002, _pad_uid(sop_class)),
        _element(0x0000, 0x0100, struct.pack("<H", 0x0001)),
        _element(0x0000, 0x0110, struct.pack("<H", message_id & 0xFFFF)),
        _element(0x0000, 0x0700, struct.pack("<H", 0x0000)),
        _element(0x0000, 0x0800, struct.pack("<H", 0x0000)),  # a data set follows
        _element(0x0000, 0x1000, _pad_uid(sop_instance)),
    ))
    return _element(0x0000, 0x0000, struct.pack("<I", len(elems))) + elems


def parse_command(data: bytes) -> dict[int, bytes]:
    """Element (0000,eeee) -> raw value of an Implicit VR LE command set."""
    out: dict[int, bytes] = {}
    pos = 0
    while pos + 8 <= len(data):
        group, elem, length = struct.unpack_from("<HHI", data, pos)
        if group == 0x0000:
            out[elem] = data[pos + 8:pos + 8 + length]
        pos += 8 + length
    return out


def pdata_pdus(cx_id: int, payload: bytes | memoryview, is_command: bool, max_pdu: int) -> bytes:
    """Fragment one message into P-DATA-TF PDUs of one PDV each (PS3.8 9.3.5, E.2)."""
    limit = (max_pdu or DEFAULT_FRAGMENT + 6) - 6  # PDV header: length(4) + id(1) + ctrl(1)
    view = memoryview(payload)
    parts: list[bytes | memoryview] = []
    total = len(view)
    offset = 0
    while True:
        chunk = view[offset:offset + limit]
        offset += len(chunk)
        last = offset >= total
        ctrl = (0x01 if is_command else 0x00) | (0x02 if last else 0x00)
        parts.append(struct.pack(">BBIIBB", 0x04, 0, len(chunk) + 6, len(chunk) + 2,
                                 cx_id, ctrl))
        parts.append(chunk)
        if last:
            return b"".join(parts)


class StoreScu:
    """One association at a time to one peer; not thread-safe (one per forwarding worker)."""

    def __init__(
        self, host: str, port: int, called_aet: str, calling_aet: str,
        timeout: float = 60.0, ssl_context: ssl.SSLContext | None = None,
        server_hostname: str | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.called_aet = called_aet
        self.calling_aet = calling_aet
        self.timeout = timeout
        self.ssl_context = ssl_context
        self.server_hostname = server_hostname
        self.assoc: Association | None = None

    # --- socket helpers ----------------------------------------------------------------
    def _recv_exact(self, n: int) -> bytes:
        assert self.assoc is not None
        buf = bytearray()
        while len(buf) < n:
            chunk = self.assoc.sock.recv(n - len(buf))
            if not chunk:
                raise ScuError("connection closed by peer")
            buf += chunk
        return bytes(buf)

    def _read_pdu(self) -> tuple[int, bytes]:
        pdu_type, _, length = struct.unpack(">BBI", self._recv_exact(6))
        return pdu_type, self._recv_exact(length)

    # --- association -------------------------------------------------------------------
    def associate(self, contexts: list[tuple[str, str]]) -> Association:
        """Open a connection and negotiate ``contexts`` (at most 128).

        Raises:
            AssociationRejected: A-ASSOCIATE-RJ.
            ScuError: connection refused, timeout, abort or a malformed answer.
        """
        self.close()
        try:
            sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
            # One write per message plus TCP_NODELAY: no 40 ms delayed-ACK stall per instance.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.ssl_context is not None:
                sock = self.ssl_context.wrap_socket(sock, server_hostname=self.server_hostname)
        except OSError as exc:
            raise ScuError(f"connect {self.host}:{self.port}: {exc}") from exc
        self.assoc = Association(sock=sock, max_pdu=0)
        pdu, proposed = encode_associate_rq(self.calling_aet, self.called_aet, contexts[:128])
        try:
            sock.sendall(pdu)
            pdu_type, body = self._read_pdu()
        except (OSError, ScuError) as exc:
            self._drop()
            raise ScuError(f"association: {exc}") from exc
        if pdu_type == 0x03:
            self._drop()
            raise AssociationRejected(
                f"rejected (result {body[1]}, source {body[2]}, reason {body[3]})"
            )
        if pdu_type != 0x02:
            self._drop()
            raise ScuError(f"unexpected PDU 0x{pdu_type:02X} during association")
        accepted, max_pdu = parse_associate_ac(body, proposed)
        self.assoc.accepted = accepted
        self.assoc.max_pdu = max_pdu
        return self.assoc

    @property
    def is_established(self) -> bool:
        """True while an association is open."""
        return self.assoc is not None

    def accepts(self, sop_class: str, tsyntax: str) -> bool:
        """True when the open association has a context for this pair."""
        return self.assoc is not None and (sop_class, tsyntax) in self.assoc.accepted

    # --- C-STORE -----------------------------------------------------------------------
    def store_file(self, path: Path) -> StoreResult:
        """Send a DICOM file's dataset exactly as stored (no decode, no re-encode).

        Raises:
            MalformedDicom: the file has no readable file meta.
            KeyError: no accepted context for the file's SOP class and transfer syntax.
            ScuError: the association broke; it is closed.
        """
        data = path.read_bytes()
        return self.store(data, read_file_meta(data))

    def store(self, data: bytes, meta: FileMeta) -> StoreResult:
        """Send the dataset of a DICOM file already read (``data``, its meta parsed as ``meta``).

        Raises:
            KeyError: no accepted context for the file's SOP class and transfer syntax.
            ScuError: the association broke; it is closed.
        """
        assert self.assoc is not None, "associate() first"
        cx_id = self.assoc.accepted[(meta.sop_class_uid, meta.transfer_syntax_uid)]
        dataset = memoryview(data)[meta.dataset_offset:]
        self.assoc.message_id = (self.assoc.message_id % 0xFFFF) + 1
        command = encode_store_rq(self.assoc.message_id, meta.sop_class_uid,
                                  meta.sop_instance_uid)
        max_pdu = self.assoc.max_pdu
        try:
            self.assoc.sock.sendall(
                pdata_pdus(cx_id, command, True, max_pdu)
                + pdata_pdus(cx_id, dataset, False, max_pdu)
            )
            return self._read_response()
        except (OSError, ScuError) as exc:
            self._drop()
            raise ScuError(f"C-STORE: {exc}") from exc

    def _read_response(self) -> StoreResult:
        command = bytearray()
        while True:
            pdu_type, body = self._read_pdu()
            if pdu_type == 0x07:
                raise ScuError("association aborted by peer")
            if pdu_type == 0x05:
                raise ScuError("peer asked to release during a C-STORE")
            if pdu_type != 0x04:
                raise ScuError(f"unexpected PDU 0x{pdu_type:02X}")
            pos = 0
            while pos + 6 <= len(body):
                (length,) = struct.unpack_from(">I", body, pos)
                ctrl = body[pos + 5]
                value = body[pos + 6:pos + 4 + length]
                pos += 4 + length
                if ctrl & 0x01:
                    command += value
                    if ctrl & 0x02:
                        elems = parse_command(bytes(command))
                        status = struct.unpack("<H", elems.get(0x0900, b"\xff\xff"))[0]
                        comment = elems.get(0x0902, b"").decode("ascii", "replace").strip()
                        return StoreResult(status, comment.rstrip("\x00 "))

    # --- teardown ----------------------------------------------------------------------
    def _drop(self) -> None:
        if self.assoc is not None:
            try:
                self.assoc.sock.close()
            finally:
                self.assoc = None

    def release(self) -> None:
        """A-RELEASE-RQ and wait for the RP; drops the socket whatever happens."""
        if self.assoc is None:
            return
        try:
            self.assoc.sock.settimeout(5)
            self.assoc.sock.sendall(struct.pack(">BBI", 0x05, 0, 4) + b"\x00" * 4)
            self._read_pdu()
        except (OSError, ScuError):
            pass
        finally:
            self._drop()

    def abort(self) -> None:
        """A-ABORT and drop the socket."""
        if self.assoc is None:
            return
        try:
            self.assoc.sock.sendall(struct.pack(">BBI", 0x07, 0, 4) + b"\x00\x00\x00\x00")
        except OSError:
            pass
        finally:
            self._drop()

    close = release
