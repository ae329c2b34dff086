"""Forward spooled instances to the hub with parallel workers.

The spool directory is the queue; the in-memory queue here is only a cache of it, refilled
from the directory at start and by a periodic rescan, so nothing depends on it surviving.
A file is deleted only after its transport returned (the hub confirmed it). While the hub is
unreachable every worker waits behind one shared gate with exponential backoff and full jitter
(so a fleet of nodes does not reconnect in lock-step when the lead hospital's link comes back).
"""

from __future__ import annotations

import heapq
import logging
import queue
import random
import threading
import time
from collections.abc import Callable
from pathlib import Path

from dicom_node.config import NodeSettings
from dicom_node.ledger import Ledger
from dicom_node.metrics import METRICS
from dicom_node.spool import InstanceInfo, Spool, read_info
from dicom_node.statuses import HubUnavailable, InstanceRefused
from dicom_node.transports import HubTransport, make_transport

logger = logging.getLogger(__name__)

Item = tuple[Path, InstanceInfo]


class Backoff:
    """Shared "hub is down" gate: exponential delay with full jitter, reset on success."""

    def __init__(self, base: float, cap: float, rng: random.Random | None = None) -> None:
        self.base = base
        self.cap = cap
        self.failures = 0
        self._open_at = 0.0
        self._lock = threading.Lock()
        self._rng = rng or random.Random()

    def delay_for(self, failures: int) -> float:
        """Upper bound of the wait after ``failures`` consecutive failures."""
        return min(self.cap, self.base * (2 ** max(0, failures - 1)))

    def failed(self) -> float:
        """Record a failure; returns the chosen wait in seconds."""
        with self._lock:
            now = time.monotonic()
            if now < self._open_at:
                # Another worker already backed off for this outage: share its wait.
                return self._open_at - now
            self.failures += 1
            wait = self._rng.uniform(0, self.delay_for(self.failures))
            # Never below a tenth of the base: a zero wait would hammer a dead hub.
            wait = max(wait, self.base / 10)
            self._open_at = now + wait
            return wait

    def succeeded(self) -> None:
        """The hub answered: open the gate for everyone."""
        with self._lock:
            self.failures = 0
            self._open_at = 0.0

    def wait(self, stop: threading.Event) -> None:
        """Block until the gate opens or ``stop`` is set."""
        while not stop.is_set():
            remaining = self._open_at - time.monotonic()
            if remaining <= 0:
                return
            stop.wait(min(remaining, 0.5))


class Forwarder:
    """Worker threads draining the spool to the hub."""

    def __init__(
        self,
        settings: NodeSettings,
        spool: Spool,
        ledger: Ledger,
        transport_factory: Callable[[], HubTransport] | None = None,
        on_study_forwarded: Callable[[str], None] | None = None,
        rescan_seconds: float = 5.0,
    ) -> None:
        self.settings = settings
        self.spool = spool
        self.ledger = ledger
        self.transport_factory = transport_factory or (lambda: make_transport(settings))
        self.on_study_forwarded = on_study_forwarded
        self.rescan_seconds = rescan_seconds
        self.backoff = Backoff(settings.retry_base, settings.retry_max)
        self._queue: queue.Queue[Item | None] = queue.Queue()
        self._pending: set[str] = set()
        self._pending_lock = threading.Lock()
        self._delayed: list[tuple[float, str, Item]] = []
        self._delayed_lock = threading.Lock()
        self._studies_seen: set[str] = set()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.transports: list[HubTransport] = []

    # --- feeding ---------------------------------------------------------------------
    def submit(self, path: Path, info: InstanceInfo) -> None:
        """Queue one spooled file (ignored if it is already queued or in flight)."""
        with self._pending_lock:
            if info.sop_instance_uid in self._pending:
                return
            self._pending.add(info.sop_instance_uid)
        self._queue.put((path, info))

    def load_spool(self) -> int:
        """Reconcile the ledger with the queue directory and queue every file; returns count."""
        recovered = self.spool.recover_inflight()
        if recovered:
            logger.info("requeued files left in flight", extra={"count": recovered})
        spooled: dict[str, InstanceInfo] = {}
        items: list[Item] = []
        for path in self.spool.queued():
            try:
                info = read_info(path)
            except Exception as exc:  # noqa: BLE001 - a file we wrote ourselves went bad
                logger.error("unreadable spool file %s: %s", path.name, exc)
                self.spool.quarantine(path, f"unreadable in spool: {exc}")
                continue
            spooled[info.sop_instance_uid] = info
            items.append((path, info))
        self.ledger.reconcile(spooled)
        for path, info in items:
            self.submit(path, info)
        return len(items)

    def _rescan(self) -> None:
        with self._pending_lock:
            pending = set(self._pending)
        for path in self.spool.queued():
            if path.stem in pending:
                continue
            try:
                info = read_info(path)
            except Exception:  # noqa: BLE001 - half-visible file or already gone
                continue
            self.submit(path, info)

    def _release_delayed(self) -> None:
        now = time.monotonic()
        due: list[Item] = []
        with self._delayed_lock:
            while self._delayed and self._delayed[0][0] <= now:
                due.append(heapq.heappop(self._delayed)[2])
        for item in due:
            self._queue.put(item)

    # --- work ------------------------------------------------------------------------
    def _done(self, sop_instance_uid: str) -> None:
        with self._pending_lock:
            self._pending.discard(sop_instance_uid)

    def _handle(self, transport: HubTransport, item: Item) -> None:
        path, info = item
        sop = info.sop_instance_uid
        try:
            sending = self.spool.claim(path)
        except FileNotFoundError:
            # Forwarded already (an earlier run whose bookkeeping was reconciled).
            self._done(sop)
            return
        start = time.perf_counter()
        try:
            transport.send(sending, info)
        except HubUnavailable as exc:
            self.spool.unclaim(sending)
            wait = self.backoff.failed()
            METRICS.forward_errors.labels("unavailable").inc()
            self.ledger.set_error(str(exc))
            logger.warning("hub unavailable, retrying", extra={
                "sop_instance_uid": sop, "reason": str(exc), "retry_in": round(wait, 2)})
            self._queue.put(item)
            return
        except InstanceRefused as exc:
            self.backoff.succeeded()  # the hub answered; it is up
            METRICS.forward_errors.labels("refused").inc()
            attempts = self.ledger.record_failure(sop, str(exc))
            if attempts >= self.settings.max_attempts:
                self.spool.quarantine(sending, str(exc))
                self.ledger.record_quarantined(sop, str(exc))
                METRICS.quarantined.inc()
                self._done(sop)
                logger.error("instance quarantined", extra={
                    "sop_instance_uid": sop, "reason": str(exc)})
                return
            self.spool.unclaim(sending)
            delay = self.backoff.delay_for(attempts)
            logger.warning("hub refused instance", extra={
                "sop_instance_uid": sop, "reason": str(exc), "attempts": attempts,
                "retry_in": round(delay, 2)})
            with self._delayed_lock:
                heapq.heappush(self._delayed, (time.monotonic() + delay, sop, item))
            return
        except BaseException:
            self.spool.unclaim(sending)
            raise
        self.backoff.succeeded()
        # Bookkeeping before the unlink: a crash in between only causes a harmless resend.
        self.ledger.record_forwarded(sop)
        self.spool.remove(sending)
        self._done(sop)
        if path.exists():
            # The modality sent this instance again while we were sending the old copy.
            self.ledger.record_received(info)
            self.submit(path, info)
        METRICS.forwarded.inc()
        METRICS.forward_seconds.observe(time.perf_counter() - start)
        logger.debug("forwarded", extra={"sop_instance_uid": sop})
        study = info.study_instance_uid
        if study not in self._studies_seen:
            self._studies_seen.add(study)
            if self.on_study_forwarded is not None:
                self.on_study_forwarded(study)

    def _worker(self, transport: HubTransport) -> None:
        try:
            while not self._stop.is_set():
                try:
                    item = self._queue.get(timeout=0.5)
                except queue.Empty:
                    transport.release_idle()
                    continue
                if item is None:  # stop() wakes each worker with one None
                    break
                self.backoff.wait(self._stop)
                if self._stop.is_set():
                    break
                try:
                    self._handle(transport, item)
                except Exception:  # noqa: BLE001 - keep the worker alive; the file stays
                    logger.exception("forwarding crashed", extra={
                        "sop_instance_uid": item[1].sop_instance_uid})
                    self.backoff.failed()
                    self._queue.put(item)
        finally:
            transport.close()

    def _housekeeping(self) -> None:
        last_scan = time.monotonic()
        last_prune = 0.0
        while not self._stop.wait(0.2):
            self._release_delayed()
            if time.monotonic() - last_prune >= 3600:
                last_prune = time.monotonic()
                try:
                    cutoff = time.time() - self.settings.ledger_retention_days * 86400
                    self.ledger.prune(cutoff)
                except Exception:  # noqa: BLE001 - retried next hour
                    logger.exception("ledger prune failed")
            if time.monotonic() - last_scan >= self.rescan_seconds:
                last_scan = time.monotonic()
                try:
                    self._rescan()
                    METRICS.queue_depth.set(self.spool.depth())
                except Exception:  # noqa: BLE001
                    logger.exception("spool rescan failed")

    def start(self) -> None:
        """Load the spool and start the workers."""
        n = self.load_spool()
        if n:
            logger.info("resuming with queued instances", extra={"queued": n})
        for i in range(self.settings.effective_workers):
            transport = self.transport_factory()
            self.transports.append(transport)
            t = threading.Thread(
                target=self._worker, args=(transport,), name=f"forward-{i}", daemon=True)
            t.start()
            self._threads.append(t)
        hk = threading.Thread(target=self._housekeeping, name="forward-hk", daemon=True)
        hk.start()
        self._threads.append(hk)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop after the instances in flight; queued files stay in the spool."""
        self._stop.set()
        for _ in range(self.settings.effective_workers):
            self._queue.put(None)
        for t in self._threads:
            t.join(timeout=timeout)

    def in_flight(self) -> int:
        """Instances queued in memory or being sent."""
        with self._pending_lock:
            return len(self._pending)
