"""Spread MLLP connections evenly over the bridge's worker processes.

A lab sends over a handful of long-lived connections. Left to ``SO_REUSEPORT``, the kernel hashes
each connection to a process, and with eight connections two workers often get six and two: the
busier process then sets the pace while the other idles. So with several workers the parent
process accepts every connection itself and hands it (the file descriptor, over a Unix socket
pair) to the worker that has the fewest open; a worker writes one byte back on that pair each time
one of its connections closes.
"""

from __future__ import annotations

import asyncio
import logging
import selectors
import socket
from collections.abc import Callable

logger = logging.getLogger(__name__)

_CLOSED = b"c"


class ConnectionDispatcher:
    """The parent's side: accept on the MLLP port, hand each connection to the least busy worker."""

    def __init__(self, listener: socket.socket, channels: list[socket.socket]) -> None:
        self.listener = listener
        self.channels = channels
        self.open = [0] * len(channels)
        self.alive = [True] * len(channels)

    def serve_forever(self) -> None:
        """Accept and dispatch until interrupted (KeyboardInterrupt) or every worker is gone."""
        with selectors.DefaultSelector() as selector:
            selector.register(self.listener, selectors.EVENT_READ, None)
            for n, channel in enumerate(self.channels):
                selector.register(channel, selectors.EVENT_READ, n)
            while any(self.alive):
                for key, _events in selector.select():
                    if key.data is None:
                        self._accept()
                    else:
                        self._worker_said(selector, key.data)

    def _accept(self) -> None:
        try:
            conn, peer = self.listener.accept()
        except OSError as exc:  # e.g. the client reset before we got to it
            logger.info("accept failed: %s", exc)
            return
        with conn:
            n = min((i for i, up in enumerate(self.alive) if up), key=lambda i: self.open[i])
            try:
                socket.send_fds(self.channels[n], [b"x"], [conn.fileno()])
            except OSError as exc:
                logger.error("could not hand %s to worker %d: %s", peer, n, exc)
                return
            self.open[n] += 1
            logger.debug("connection from %s:%s to worker %d (%d open)", *peer[:2], n,
                         self.open[n])

    def _worker_said(self, selector: selectors.BaseSelector, n: int) -> None:
        data = self.channels[n].recv(4096)
        if not data:
            logger.error("bridge worker %d is gone; its connections were closed", n)
            self.alive[n] = False
            selector.unregister(self.channels[n])
            return
        self.open[n] = max(0, self.open[n] - data.count(_CLOSED))


async def receive_connections(channel: socket.socket,
                              adopt: Callable[[socket.socket], object]) -> None:
    """The worker's side: adopt each connection the dispatcher sends until the channel closes."""
    loop = asyncio.get_running_loop()
    channel.setblocking(False)
    done = loop.create_future()

    def readable() -> None:
        try:
            msg, fds, _flags, _addr = socket.recv_fds(channel, 64, 16)
        except BlockingIOError:
            return
        for fd in fds:
            adopt(socket.socket(fileno=fd))
        if not msg and not done.done():
            done.set_result(None)

    loop.add_reader(channel.fileno(), readable)
    try:
        await done
    finally:
        loop.remove_reader(channel.fileno())


def closed_notifier(channel: socket.socket) -> Callable[[], None]:
    """What a worker calls when one of its connections closes."""

    def notify() -> None:
        try:
            channel.send(_CLOSED)
        except OSError as exc:
            logger.debug("dispatcher not told of a closed connection: %s", exc)

    return notify
