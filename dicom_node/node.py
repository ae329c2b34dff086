"""One branch node: SCP + spool + forwarder + manifest publisher, started and stopped together."""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType

from pynetdicom import AE
from pynetdicom.transport import ThreadedAssociationServer

from dicom_node.config import NodeSettings
from dicom_node.forwarder import Forwarder
from dicom_node.ledger import Ledger
from dicom_node.manifest import HubClient, ManifestPublisher
from dicom_node.metrics import METRICS
from dicom_node.scp import start_scp
from dicom_node.spool import Spool
from dicom_node.worklist import WorklistStore, WorklistSync

logger = logging.getLogger(__name__)


class Node:
    """Wires the parts; ``start()`` returns once the SCP listens."""

    def __init__(self, settings: NodeSettings) -> None:
        self.settings = settings
        self.spool = Spool(settings.spool_dir, settings.min_free_bytes)
        self.ledger = Ledger(settings.spool_dir / "ledger.sqlite3")
        self.publisher: ManifestPublisher | None = None
        self.worklist = WorklistStore(settings.spool_dir / "worklist.sqlite3")
        self.worklist_sync: WorklistSync | None = None
        if settings.hub_url:
            client = HubClient(settings.hub_url, settings.hub_user, settings.hub_password)
            if settings.institution_code:
                self.worklist_sync = WorklistSync(client, self.worklist,
                                                  settings.institution_code,
                                                  settings.mwl_sync_seconds)
            self.publisher = ManifestPublisher(
                self.ledger, client, settings.institution_code,
                settings.study_quiet_seconds, settings.manifest_poll_seconds,
            )
        self.forwarder = Forwarder(
            settings, self.spool, self.ledger,
            on_study_forwarded=self._study_forwarded if self.publisher else None,
        )
        self.ae: AE | None = None
        self.server: ThreadedAssociationServer | None = None
        self._stopped = False

    def _study_forwarded(self, study_instance_uid: str) -> None:
        # The hub learns the branch as soon as the first image is there; the publisher's
        # loop retries if the hub API is down right now.
        if self.publisher is not None:
            threading.Thread(
                target=self.publisher.post_origin, args=(study_instance_uid,), daemon=True
            ).start()

    @property
    def port(self) -> int:
        """The port the SCP actually listens on (useful with port 0)."""
        assert self.server is not None
        return int(self.server.server_address[1])

    def start(self) -> None:
        """Start forwarding what is already spooled, then accept new associations."""
        removed = self.spool.clean_tmp()
        if removed:
            logger.info("removed half-written files", extra={"count": removed})
        self.forwarder.start()
        if self.publisher is not None:
            self.publisher.start()
        if self.worklist_sync is not None:
            self.worklist_sync.start()
        if self.settings.metrics_port:
            METRICS.serve(self.settings.metrics_port)
        self.ae, self.server = start_scp(
            self.settings, self.spool, self.ledger, self.forwarder.submit, self.worklist
        )

    def stop(self) -> None:
        """Stop accepting, finish what is in flight, keep the rest spooled. Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        if self.ae is not None:
            self.ae.shutdown()
        self.forwarder.stop()
        if self.publisher is not None:
            self.publisher.stop()
        if self.worklist_sync is not None:
            self.worklist_sync.stop()
        self.spool.close()
        logger.info("node stopped")

    def run_forever(self) -> None:
        """Start, then block until SIGINT/SIGTERM."""
        stop = threading.Event()

        def _signal(signum: int, frame: FrameType | None) -> None:
            stop.set()

        signal.signal(signal.SIGINT, _signal)
        signal.signal(signal.SIGTERM, _signal)
        self.start()
        try:
            while not stop.wait(1.0):
                pass
        finally:
            self.stop()
