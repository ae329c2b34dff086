"""The LIS bridge: MLLP in, typed lab messages recorded with group commit, ACK after commit.

Per frame, on the event loop: decode the charset, parse with python-hl7, run the HL7 acceptance
checks, map to typed objects. Then the frame goes to the :class:`GroupCommitter`, a thread that
collects frames from every connection for up to ``commit_window_ms`` and records them in one
transaction (one fsync for the batch). Each connection's ACK is written only after that commit
returned. If the batch fails, its frames are recorded one by one so one bad frame cannot take its
neighbours down; a database outage closes the connections without an ACK, so senders re-send.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session

from hub.clock import utcnow
from hub.db.session import HeldConnection, get_sessionmaker
from hub.domain.lab_rules import parse_ranges
from hub.intake import IntakeRules
from hub.services.lab import (
    AckBuilder,
    ErrorInfo,
    Inbound,
    InstitutionMap,
    LabRules,
    Recorded,
    record_batch,
    record_message,
    record_unkeyed,
)
from lis_bridge import charset
from lis_bridge.acks import AckOutcome, build_ack, refusal_info
from lis_bridge.config import LisSettings
from lis_bridge.dispatch import closed_notifier, receive_connections
from lis_bridge.hl7_map import (
    ErrorCode,
    Header,
    Hl7Error,
    Hl7Rejected,
    check_acceptable,
    local_zone,
    parse_body,
    parse_header,
)
from lis_bridge.mllp import FrameTooLarge, MllpServer, ServerLimits

logger = logging.getLogger(__name__)


class DatabaseUnavailable(Exception):
    """The batch could not be committed; no ACK may be sent."""


# --------------------------------------------------------------------------- frame -> Inbound


class FramePreparer:
    """Turns raw frame bytes into an :class:`Inbound` (pure CPU work, no database)."""

    def __init__(self, settings: LisSettings, zone: str = "Asia/Shanghai") -> None:
        self.settings = settings
        self.zone = local_zone(zone)

    def ack_builder(self, header: Header | None, codec: str) -> AckBuilder:
        """Return a function that renders our ACK for ``header`` in the sender's charset."""
        settings = self.settings

        def make_ack(code: str, error: ErrorInfo | None) -> bytes:
            err = None
            if error is not None:
                err = (Hl7Rejected if error.ack_code == "AR" else Hl7Error)(
                    ErrorCode(error.code), error.location, error.text)
            text = build_ack(header, AckOutcome(code, err), application=settings.application,
                             facility=settings.facility, now=utcnow())
            return charset.encode(text, codec)

        return make_ack

    def prepare(self, raw: bytes, peer: str, received_at: datetime) -> Inbound:
        """Decode, parse, check and map one frame; problems become ``Inbound.error``."""
        header: Header | None = None
        codec = "ascii"
        try:
            try:
                text, _declared, codec = charset.decode(raw, self.settings.default_charset)
                bad_bytes = None
            except charset.UnsupportedCharset as exc:
                text = raw.decode("latin-1")
                bad_bytes = Hl7Rejected(ErrorCode.TABLE_VALUE_NOT_FOUND, "MSH^1^18", str(exc))
                codec = "ascii"
            except UnicodeDecodeError as exc:
                codec = charset.codec_for(charset.msh18(raw), self.settings.default_charset)
                text = raw.decode(codec, errors="replace")
                bad_bytes = Hl7Error(ErrorCode.DATA_TYPE, "MSH^1^18",
                                     f"bytes are not valid in the declared charset: {exc.reason}")
            msg, header = parse_header(text)
            if bad_bytes is not None:
                raise bad_bytes
            kind = check_acceptable(header, self.settings.versions, self.settings.processing_ids)
            lab_message = parse_body(msg, header, kind, self.zone)
            return self._inbound(raw, peer, received_at, header, codec, message=lab_message)
        except Hl7Error as exc:
            logger.warning("MSH-10 %s from %s refused %s: %s %s", header.control_id if header
                           else "-", peer, exc.ack_code, exc.location, exc.text)
            info = ErrorInfo(exc.ack_code, exc.location, int(exc.code), exc.text)
            return self._inbound(raw, peer, received_at, header, codec, error=info)
        except Exception:  # noqa: BLE001 - a parser bug must not cost the connection
            logger.exception("MSH-10 %s from %s: unexpected error while parsing",
                             header.control_id if header else "-", peer)
            info = ErrorInfo("AE", "", int(ErrorCode.INTERNAL_ERROR), "application internal error")
            inbound = self._inbound(raw, peer, received_at, header, codec, error=info)
            # Outside the idempotency key: once the bug is fixed, a re-send is processed afresh.
            inbound.sender = inbound.control_id = None
            return inbound

    def _inbound(self, raw: bytes, peer: str, received_at: datetime, header: Header | None,
                 codec: str, **kw: object) -> Inbound:
        return Inbound(
            raw=raw, peer=peer, received_at=received_at,
            make_ack=self.ack_builder(header, codec),
            sender=_column_text(header.sender, 200) if header else None,
            control_id=_column_text(header.control_id, 64) if header else None,
            sending_application=(_column_text(header.sending_application, 200) if header
                                 else None),
            message_type=(_column_text(f"{header.message_code}^{header.trigger_event}", 32)
                          if header else None),
            version=_column_text(header.version, 16) if header else None,
            charset=codec,
            facility_codes=header.facility_codes if header else [],
            refuse=refusal_info,
            **kw,  # type: ignore[arg-type]
        )

    def prepare_oversize(self, exc: FrameTooLarge, peer: str, received_at: datetime) -> Inbound:
        """An oversize frame: AR naming MSH-10 when its MSH could be read from the first bytes."""
        head = exc.head.split(b"\r", 1)[0]
        header: Header | None = None
        codec = "ascii"
        try:
            codec = charset.codec_for(charset.msh18(head), self.settings.default_charset)
            _msg, header = parse_header(head.decode(codec, errors="replace"))
        except (Hl7Error, charset.UnsupportedCharset):
            header = None
        info = ErrorInfo("AR", "MSH", int(ErrorCode.INTERNAL_ERROR),
                         f"message larger than {exc.limit} bytes refused")
        return self._inbound(exc.head, peer, received_at, header, codec, error=info)


def _column_text(value: str, size: int) -> str:
    # A NUL cannot be stored in a text column; the frame itself is kept byte for byte.
    return value.replace("\x00", "")[:size]


# --------------------------------------------------------------------------- group commit


@dataclass
class _Job:
    inbound: Inbound
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Recorded]
    unkeyed_reason: str | None = None  # store outside the key, no reply (broken frame)


@dataclass
class CommitStats:
    """Counters for logs and the benchmark."""

    batches: int = 0
    messages: int = 0
    fallbacks: int = 0
    sizes: list[int] = field(default_factory=list)


class GroupCommitter:
    """Records frames from all connections in shared transactions on one thread."""

    _STOP = object()

    def __init__(self, database_url: str, rules: LabRules, *, window_ms: float = 2.0,
                 max_batch: int = 64, threads: int = 1,
                 connections: Callable[[], int] | None = None) -> None:
        self.sessionmaker = get_sessionmaker(database_url)
        self._database_url = database_url
        self._held = threading.local()
        self.rules = rules
        self.window = window_ms / 1000.0
        self.max_batch = max_batch
        # Open connections, each of which can have at most one frame waiting for its ACK (MLLP
        # original mode): once all of them have one queued or being recorded, waiting out the
        # rest of the window would only delay the batch.
        self._connections = connections
        self._recording = 0  # frames in batches being recorded; under _recording_lock
        self._recording_lock = threading.Lock()
        self.institutions = InstitutionMap()
        self.stats = CommitStats()
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        # More than one committer thread overlaps one batch's database round trips with the
        # next batch's Python work (psycopg releases the GIL while it waits on the socket).
        self._threads = [threading.Thread(target=self._run, name=f"lis-group-commit-{n}",
                                          daemon=True) for n in range(max(threads, 1))]
        for thread in self._threads:
            thread.start()

    async def submit(self, inbound: Inbound, unkeyed_reason: str | None = None) -> Recorded:
        """Queue ``inbound``; return its outcome once the transaction holding it committed.

        Raises:
            DatabaseUnavailable: the commit failed; do not acknowledge.
        """
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Recorded] = loop.create_future()
        self._queue.put(_Job(inbound, loop, fut, unkeyed_reason))
        return await fut

    def close(self) -> None:
        """Finish queued work and stop the thread."""
        for _ in self._threads:
            self._queue.put(self._STOP)
        for thread in self._threads:
            thread.join(timeout=30)

    # -- thread side

    def _run(self) -> None:
        try:
            self._collect_and_process()
        finally:
            held: HeldConnection | None = getattr(self._held, "conn", None)
            if held is not None:
                held.close()

    def _collect_and_process(self) -> None:
        while True:
            first = self._queue.get()
            if first is self._STOP:
                return
            batch = [first]
            deadline = time.monotonic() + self.window
            stop = False
            while len(batch) < self._batch_target():
                remaining = deadline - time.monotonic()
                try:
                    nxt = self._queue.get(timeout=max(remaining, 0)) if remaining > 0 else \
                        self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is self._STOP:
                    stop = True
                    break
                batch.append(nxt)
            jobs = [j for j in batch if isinstance(j, _Job)]
            with self._recording_lock:
                self._recording += len(jobs)
            try:
                self._process(jobs)
            finally:
                with self._recording_lock:
                    self._recording -= len(jobs)
            if stop:
                return

    def _batch_target(self) -> int:
        """How many frames to collect before the window is up."""
        if self._connections is None:
            return self.max_batch
        waiting = self._connections() - self._recording
        return max(1, min(self.max_batch, waiting))

    def _process(self, batch: list[_Job]) -> None:
        self.stats.batches += 1
        self.stats.messages += len(batch)
        if len(self.stats.sizes) < 100_000:
            self.stats.sizes.append(len(batch))
        try:
            results = self._record(batch)
        except DBAPIError as exc:
            if exc.connection_invalidated:
                logger.error("database connection lost, %d frames not acknowledged: %s",
                             len(batch), exc)
                self._fail(batch, DatabaseUnavailable(str(exc)))
                return
            # A unique-key race with another process, a deadlock, a value the database refused:
            # retry each frame alone; those that still fail are answered there.
            logger.warning("batch of %d failed (%s), recording one by one", len(batch),
                           type(exc.orig).__name__ if exc.orig else exc)
            results = self._one_by_one(batch)
        except Exception:  # noqa: BLE001 - isolate the culprit below
            logger.warning("batch of %d failed, recording one by one", len(batch))
            results = self._one_by_one(batch)
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[_Job, object]]] = {}
        for job, result in zip(batch, results, strict=True):
            by_loop.setdefault(job.loop, []).append((job, result))
        # One wake-up of each event loop per batch rather than one per frame.
        for loop, outcomes in by_loop.items():
            loop.call_soon_threadsafe(_settle, outcomes)

    def _record(self, batch: list[_Job]) -> list[Recorded | BaseException]:
        now = utcnow()
        out: list[Recorded | BaseException | None] = [None] * len(batch)
        with self._batch_session() as session, session.begin():
            normal = [n for n, j in enumerate(batch) if not j.unkeyed_reason]
            recorded = record_batch(session, [batch[n].inbound for n in normal], self.rules,
                                    self.institutions, now=now)
            for n, result in zip(normal, recorded, strict=True):
                out[n] = result
            for n, job in enumerate(batch):
                if job.unkeyed_reason:
                    out[n] = self._record_one(session, job, now)
        return [r for r in out if r is not None]

    def _batch_session(self) -> Session:
        held: HeldConnection | None = getattr(self._held, "conn", None)
        if held is None:
            held = self._held.conn = HeldConnection(self._database_url)
        return held.session()

    def _record_one(self, session, job: _Job, now: datetime) -> Recorded:  # noqa: ANN001
        if job.unkeyed_reason:
            rid = record_unkeyed(session, job.inbound, "--", b"", job.unkeyed_reason)
            return Recorded("--", b"", rid)
        return record_message(session, job.inbound, self.rules, self.institutions, now=now)

    def _one_by_one(self, batch: list[_Job]) -> list[Recorded | BaseException]:
        self.stats.fallbacks += 1
        out: list[Recorded | BaseException] = []
        for job in batch:
            now = utcnow()
            try:
                with self.sessionmaker() as session, session.begin():
                    out.append(self._record_one(session, job, now))
                continue
            except OperationalError as exc:
                logger.error("database unavailable for MSH-10 %s: %s", job.inbound.control_id,
                             exc)
                out.append(DatabaseUnavailable(str(exc)))
                continue
            except Exception:
                logger.exception("MSH-10 %s from %s could not be recorded",
                                 job.inbound.control_id, job.inbound.sender)
            # Internal error: answer AE 207 and keep the frame outside the idempotency key, so
            # the sender's re-send after a fix is processed afresh.
            info = ErrorInfo("AE", "", 207, "application internal error")
            try:
                ack = job.inbound.make_ack("AE", info)
                with self.sessionmaker() as session, session.begin():
                    rid = record_unkeyed(session, job.inbound, "AE", ack, "internal error")
                out.append(Recorded("AE", ack, rid))
            except Exception as exc:  # noqa: BLE001
                logger.exception("could not store failed frame MSH-10 %s",
                                 job.inbound.control_id)
                out.append(DatabaseUnavailable(str(exc)))
        return out

    def _fail(self, batch: list[_Job], exc: BaseException) -> None:
        for job in batch:
            job.loop.call_soon_threadsafe(_settle, [(job, exc)])


def _settle(outcomes: list[tuple[_Job, object]]) -> None:
    for job, outcome in outcomes:
        if job.future.done():
            continue
        if isinstance(outcome, BaseException):
            job.future.set_exception(outcome)
        else:
            job.future.set_result(outcome)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- the bridge


class LisBridge:
    """MLLP server + frame preparation + group commit. Start with :meth:`start`."""

    def __init__(self, settings: LisSettings, database_url: str, intake: IntakeRules,
                 *, zone: str = "Asia/Shanghai") -> None:
        self.settings = settings
        self.preparer = FramePreparer(settings, zone)
        rules = LabRules(intake=intake, critical_ranges=parse_ranges(settings.critical_ranges))
        self.server = MllpServer(
            self.handle_frame,
            ServerLimits(settings.max_message_bytes, settings.idle_timeout),
            on_oversize=self.handle_oversize,
            on_broken=self.handle_broken,
            ssl_context=settings.ssl_context(),
        )
        self.committer = GroupCommitter(database_url, rules, window_ms=settings.commit_window_ms,
                                        max_batch=settings.commit_batch,
                                        threads=settings.commit_threads,
                                        connections=lambda: self.server.connection_count)
        self.port: int | None = None

    async def start(self, host: str | None = None, port: int | None = None) -> int:
        """Listen; returns the bound port."""
        self.port = await self.server.start(
            host or self.settings.host, self.settings.port if port is None else port)
        return self.port

    async def close(self) -> None:
        """Stop the server, then the committer (queued frames still commit)."""
        await self.server.close()
        await asyncio.to_thread(self.committer.close)

    async def handle_frame(self, raw: bytes, peer: str) -> bytes | None:
        """One frame in, one ACK out (None = close the connection without an ACK)."""
        inbound = self.preparer.prepare(raw, peer, utcnow())
        try:
            result = await self.committer.submit(inbound)
        except DatabaseUnavailable:
            return None
        if inbound.error is None and not result.is_duplicate:
            logger.debug("MSH-10 %s from %s recorded: %s", inbound.control_id, peer,
                         result.ack_code)
        return result.ack

    async def handle_oversize(self, exc: FrameTooLarge, peer: str) -> bytes | None:
        """Refuse (AR) an oversize frame; its first bytes are stored for inspection."""
        inbound = self.preparer.prepare_oversize(exc, peer, utcnow())
        try:
            return (await self.committer.submit(inbound)).ack
        except DatabaseUnavailable:
            return None

    async def handle_broken(self, partial: bytes, peer: str) -> None:
        """Store the half frame of a connection that died mid-message (no reply possible)."""
        inbound = Inbound(raw=partial, peer=peer, received_at=utcnow(),
                          make_ack=lambda _c, _e: b"")
        try:
            await self.committer.submit(inbound, unkeyed_reason="connection closed inside frame")
        except DatabaseUnavailable:
            logger.error("could not store broken frame from %s", peer)


async def run_bridge(settings: LisSettings, database_url: str, intake: IntakeRules,
                     *, ready: asyncio.Event | None = None,
                     channel: socket.socket | None = None) -> None:
    """Run one bridge process until cancelled.

    Without ``channel`` it listens on the configured port itself; with one, it serves the
    connections the dispatcher process hands over on it (``lis_bridge.dispatch``).
    """
    bridge = LisBridge(settings, database_url, intake)
    if channel is None:
        await bridge.start()
    if ready is not None:
        ready.set()
    try:
        if channel is None:
            await bridge.server.serve_forever()
        else:
            bridge.server.on_closed = closed_notifier(channel)
            await receive_connections(channel, bridge.server.adopt)
    finally:
        await bridge.close()
