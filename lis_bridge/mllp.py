"""MLLP (HL7 v2 Minimal Lower Layer Protocol, HL7 v2.5.1 appendix C) over asyncio.

A frame is ``0x0B <message> 0x1C 0x0D``. TCP delivers bytes, not frames, so the decoder keeps
state across reads: a frame may be split over many reads, and one read may hold several frames.
Bytes outside a frame (stray CR/LF keep-alives from some senders) are skipped.

The server owns sockets, framing, size limits and idle timeouts; the application gives it one
coroutine ``handler(frame_bytes, peer) -> reply_bytes | None`` (None closes the connection
without a reply, used when the frame could not be stored). TCP_NODELAY is set on every socket:
an ACK is one small write and Nagle's delay would add up to 40 ms to each round trip.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

logger = logging.getLogger(__name__)

START = b"\x0b"
END = b"\x1c\x0d"
END_BLOCK = 0x1C

Handler = Callable[[bytes, str], Awaitable[bytes | None]]


class MllpError(Exception):
    """Base of framing errors."""


class FrameTooLarge(MllpError):  # noqa: N818 - reads as the condition it reports
    """A frame grew past the configured maximum before its end block arrived."""

    def __init__(self, size: int, limit: int, head: bytes) -> None:
        super().__init__(f"MLLP frame of at least {size} bytes exceeds {limit}")
        self.size = size
        self.limit = limit
        self.head = head  # first bytes, so the ACK can still name MSH-10


class IncompleteFrame(MllpError):
    """The peer closed the connection in the middle of a frame."""

    def __init__(self, partial: bytes) -> None:
        super().__init__(f"connection closed inside a frame after {len(partial)} bytes")
        self.partial = partial


def frame(message: bytes) -> bytes:
    """Wrap one message in MLLP start and end blocks."""
    return START + message + END


class FrameDecoder:
    """Incremental MLLP decoder: ``feed`` bytes, get back the complete frames found so far."""

    def __init__(self, max_size: int) -> None:
        self.max_size = max_size
        self._buf = bytearray()
        self._in_frame = False
        self._discarding = False

    @property
    def in_frame(self) -> bool:
        """True while part of a frame has been received."""
        return self._in_frame

    def partial(self) -> bytes:
        """The bytes of the unfinished frame (for storing a broken frame for inspection)."""
        return bytes(self._buf)

    def feed(self, data: bytes) -> list[bytes | FrameTooLarge]:
        """Consume ``data`` and return, in order, each complete frame's content.

        A frame that grows past ``max_size`` appears in the list as a :class:`FrameTooLarge`
        (not raised, so frames before and after it in the same read are kept); the decoder
        discards the rest of that frame up to its end block.
        """
        out: list[bytes | FrameTooLarge] = []
        i = 0
        n = len(data)
        while i < n:
            if not self._in_frame:
                start = data.find(START, i)
                if start < 0:
                    return out  # noise between frames
                self._in_frame = True
                self._discarding = False
                self._buf.clear()
                i = start + 1
                continue
            end = data.find(END_BLOCK, i)
            stop = n if end < 0 else end
            if not self._discarding:
                self._buf += data[i:stop]
                if len(self._buf) > self.max_size:
                    head = bytes(self._buf[:2048])
                    out.append(FrameTooLarge(len(self._buf), self.max_size, head))
                    self._buf.clear()
                    self._discarding = True
            if end < 0:
                return out
            if not self._discarding:
                out.append(bytes(self._buf))
            self._buf.clear()
            self._in_frame = False
            self._discarding = False
            i = end + 1
            # The CR after 0x1C is part of the end block; tolerate senders that omit it.
            if i < n and data[i] == 0x0D:
                i += 1
        return out


def set_nodelay(writer: asyncio.StreamWriter) -> None:
    """Disable Nagle on the writer's socket (works for plain and TLS transports)."""
    sock = writer.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


@dataclass
class ServerLimits:
    """Per-connection limits of :class:`MllpServer`."""

    max_message_bytes: int = 4 * 1024 * 1024
    idle_timeout: float = 300.0


OversizeHandler = Callable[[FrameTooLarge, str], Awaitable[bytes | None]]
BrokenHandler = Callable[[bytes, str], Awaitable[None]]


class MllpServer:
    """Asyncio MLLP server: many connections, many messages per connection, one at a time each.

    Messages on one connection are handled strictly in order (the next is read only after the
    previous ACK is written), which is what MLLP senders expect.
    """

    def __init__(
        self,
        handler: Handler,
        limits: ServerLimits,
        *,
        on_oversize: OversizeHandler | None = None,
        on_broken: BrokenHandler | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.handler = handler
        self.limits = limits
        self.on_oversize = on_oversize
        self.on_broken = on_broken
        self.ssl_context = ssl_context
        self._server: asyncio.AbstractServer | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self._adopting: set[asyncio.Task[object]] = set()
        #: Called after each connection ends (the dispatcher keeps count of them).
        self.on_closed: Callable[[], None] | None = None

    async def start(self, host: str, port: int) -> int:
        """Listen on ``host:port`` (0 = any free port); return the bound port."""
        self._server = await asyncio.start_server(
            self._serve, host, port, ssl=self.ssl_context,
            limit=64 * 1024,
        )
        sock = self._server.sockets[0]
        bound = sock.getsockname()[1]
        logger.info("MLLP listening on %s:%s%s", host, bound, " (TLS)" if self.ssl_context else "")
        return bound

    def adopt(self, sock: socket.socket) -> None:
        """Serve a connection accepted by another process (see ``lis_bridge.dispatch``)."""
        loop = asyncio.get_running_loop()

        def protocol() -> asyncio.StreamReaderProtocol:
            return asyncio.StreamReaderProtocol(asyncio.StreamReader(limit=64 * 1024),
                                                self._serve)

        task = loop.create_task(loop.connect_accepted_socket(protocol, sock,
                                                             ssl=self.ssl_context))
        self._adopting.add(task)
        task.add_done_callback(self._adopted)

    def _adopted(self, task: asyncio.Task[object]) -> None:
        self._adopting.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.info("MLLP connection could not be set up: %s", task.exception())
            if self.on_closed is not None:
                self.on_closed()

    @property
    def connection_count(self) -> int:
        """Connections open right now."""
        return len(self._connections)

    async def serve_forever(self) -> None:
        """Serve until cancelled."""
        assert self._server is not None
        async with self._server:
            await self._server.serve_forever()

    async def close(self) -> None:
        """Stop listening and end open connections."""
        if self._server is not None:
            self._server.close()
        for task in list(self._connections):
            task.cancel()
        for task in list(self._connections):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._server is not None:
            with contextlib.suppress(Exception):
                await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        peer_info = writer.get_extra_info("peername")
        peer = f"{peer_info[0]}:{peer_info[1]}" if peer_info else "?"
        set_nodelay(writer)
        decoder = FrameDecoder(self.limits.max_message_bytes)
        logger.debug("MLLP connection from %s", peer)
        try:
            while True:
                try:
                    # asyncio.timeout, unlike wait_for, does not wrap each read in a new task.
                    async with asyncio.timeout(self.limits.idle_timeout):
                        data = await reader.read(65536)
                except TimeoutError:
                    logger.info("MLLP %s idle for %.0fs: closing", peer, self.limits.idle_timeout)
                    if decoder.in_frame and self.on_broken is not None:
                        await self.on_broken(decoder.partial(), peer)
                    break
                if not data:
                    if decoder.in_frame:
                        partial = decoder.partial()
                        logger.warning("MLLP %s closed inside a frame (%d bytes): discarded",
                                       peer, len(partial))
                        if self.on_broken is not None:
                            await self.on_broken(partial, peer)
                    break
                for item in decoder.feed(data):
                    if isinstance(item, FrameTooLarge):
                        logger.warning("MLLP %s: %s", peer, item)
                        reply = await self.on_oversize(item, peer) if self.on_oversize else None
                    else:
                        reply = await self.handler(item, peer)
                        if reply is None:
                            logger.warning("MLLP %s: no reply possible, closing connection", peer)
                            return
                    if reply is not None:
                        writer.write(frame(reply))
                        await writer.drain()
        except (ConnectionError, ssl.SSLError) as exc:
            logger.info("MLLP %s connection error: %s", peer, exc)
        except asyncio.CancelledError:
            # Server shutdown. Returning (rather than re-raising) keeps asyncio's stream callback
            # from logging the cancellation as an error.
            pass
        except Exception:  # noqa: BLE001 - one bad connection must not stop the server
            logger.exception("MLLP %s: unexpected error, closing connection", peer)
        finally:
            self._connections.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
            if self.on_closed is not None:
                self.on_closed()


class MllpClient:
    """Minimal MLLP client: one request, one reply, in order. Used for outbound and tests."""

    def __init__(self, host: str, port: int, *, timeout: float = 10.0,
                 ssl_context: ssl.SSLContext | None = None,
                 max_size: int = 4 * 1024 * 1024) -> None:
        self.host = host
        self.port = port
        self.timeout = timeout
        self.ssl_context = ssl_context
        self._decoder = FrameDecoder(max_size)
        self._pending: list[bytes] = []
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def connect(self) -> None:
        """Open the connection. Raises OSError / TimeoutError."""
        self._reader, self._writer = await asyncio.wait_for(
            asyncio.open_connection(self.host, self.port, ssl=self.ssl_context), self.timeout
        )
        set_nodelay(self._writer)

    async def send(self, message: bytes) -> bytes:
        """Send one framed message and return the content of the reply frame.

        Raises:
            ConnectionError: the peer closed before replying.
            TimeoutError: no reply within the timeout.
        """
        if self._writer is None:
            await self.connect()
        assert self._writer is not None and self._reader is not None
        self._writer.write(frame(message))
        await self._writer.drain()
        return await self.receive()

    async def receive(self) -> bytes:
        """Wait for the next reply frame."""
        assert self._reader is not None
        while not self._pending:
            data = await asyncio.wait_for(self._reader.read(65536), self.timeout)
            if not data:
                raise ConnectionError("MLLP peer closed the connection before replying")
            for item in self._decoder.feed(data):
                if isinstance(item, FrameTooLarge):
                    raise item
                self._pending.append(item)
        return self._pending.pop(0)

    async def close(self) -> None:
        """Close the connection (safe to call twice)."""
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(Exception):
                await self._writer.wait_closed()
        self._writer = self._reader = None

    async def __aenter__(self) -> MllpClient:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
