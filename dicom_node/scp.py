"""The node's DICOM side facing the modalities: C-ECHO and C-STORE (pynetdicom).

Handlers only decode, hand the instance to the spool and return a status; everything that can
go wrong is turned into a status by :func:`dicom_node.statuses.store_guard`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

from pydicom.dataset import Dataset
from pynetdicom import AE, _config, evt
from pynetdicom.sop_class import ModalityWorklistInformationFind, Verification
from pynetdicom.transport import ThreadedAssociationServer

from dicom_node.config import NodeSettings
from dicom_node.ledger import Ledger
from dicom_node.metrics import METRICS
from dicom_node.mwl import make_find_handler
from dicom_node.spool import InstanceInfo, Spool, parse_dataset
from dicom_node.statuses import StoreStatus, store_guard
from dicom_node.transports import set_nodelay
from dicom_node.worklist import WorklistStore

logger = logging.getLogger(__name__)

# Accept every storage SOP class, including private and future ones, in any transfer syntax
# the modality proposes: the node stores bytes as received and never needs to decode pixels.
_config.UNRESTRICTED_STORAGE_SERVICE = True

Submit = Callable[[Path, InstanceInfo], None]


def make_store_handler(
    spool: Spool, ledger: Ledger, submit: Submit | None = None
) -> Callable[[evt.Event], int | Dataset]:
    """Build the ``evt.EVT_C_STORE`` handler.

    Args:
        spool: where instances are written durably.
        ledger: the study/instance index.
        submit: called with each spooled file so forwarding starts at once.

    Returns:
        A handler that answers 0x0000 only after the file is renamed into the spool and the
        directory fsynced, and a failure status (with ErrorComment) otherwise. The dataset
        is stored as received: its element framing is checked, its values never decoded.
    """

    @store_guard
    def handle_store(event: evt.Event) -> int | Dataset:
        start = time.perf_counter()
        body = event.encoded_dataset(include_meta=False)
        # Refuse before parsing when the disk cannot take it: cheap, and 0xA700 tells the
        # modality to keep the image and retry, instead of believing it was archived.
        spool.check_room(len(body) + 1024)
        info, head = parse_dataset(
            body,
            str(event.context.transfer_syntax),
            expected_sop_class=str(event.request.AffectedSOPClassUID or ""),
            calling_aet=str(event.assoc.requestor.ae_title).strip(),
        )
        path = spool.put(body, info, head=head)
        ledger.record_received(info)
        if submit is not None:
            submit(path, info)
        METRICS.received.inc()
        METRICS.received_bytes.inc(info.size)
        METRICS.store_seconds.observe(time.perf_counter() - start)
        return StoreStatus.SUCCESS

    def counted(event: evt.Event) -> int | Dataset:
        result = handle_store(event)
        status = result if isinstance(result, int) else int(result.Status)
        if status != StoreStatus.SUCCESS:
            METRICS.rejected.labels(f"0x{status:04X}").inc()
        return result

    return counted


def handle_echo(event: evt.Event) -> int:
    """C-ECHO: always success; the node being up is the answer."""
    return 0x0000


def _log_assoc(event: evt.Event) -> None:
    # One line per association at INFO, identifiers only (AE titles, address).
    assoc = event.assoc
    logger.info(
        "association %s",
        event.event.name.removeprefix("EVT_").lower(),
        extra={"calling_aet": str(assoc.requestor.ae_title).strip(),
               "peer": f"{assoc.requestor.address}:{assoc.requestor.port}"},
    )


def build_ae(settings: NodeSettings) -> AE:
    """The node's application entity, configured from ``settings``."""
    ae = AE(ae_title=settings.aet)
    ae.add_supported_context(Verification)
    # Modality worklist (issue 8): the modality picks its patient from the branch's orders.
    ae.add_supported_context(ModalityWorklistInformationFind)
    ae.maximum_pdu_size = settings.max_pdu
    ae.network_timeout = settings.network_timeout
    ae.acse_timeout = 30
    ae.dimse_timeout = settings.network_timeout
    ae.maximum_associations = 32
    if settings.allowed_aets:
        # Rejected at association (A-ASSOCIATE-RJ, calling AE not recognised).
        ae.require_calling_aet = list(settings.allowed_aets)
    return ae


def start_scp(
    settings: NodeSettings, spool: Spool, ledger: Ledger, submit: Submit | None = None,
    worklist: WorklistStore | None = None,
) -> tuple[AE, ThreadedAssociationServer]:
    """Start the SCP in background threads; returns the AE and its server.

    With ``worklist`` the AE also answers Modality Worklist C-FIND from that local copy.

    Raises:
        OSError: the port is taken.
    """
    ae = build_ae(settings)
    handlers = [
        (evt.EVT_C_STORE, make_store_handler(spool, ledger, submit)),
        (evt.EVT_C_ECHO, handle_echo),
        (evt.EVT_CONN_OPEN, set_nodelay),
        (evt.EVT_ACCEPTED, _log_assoc),
        (evt.EVT_REJECTED, _log_assoc),
    ]
    if worklist is not None:
        handlers.append((evt.EVT_C_FIND, make_find_handler(
            worklist.entries, settings.mwl_charset, settings.timezone)))
    server = ae.start_server(
        (settings.host, settings.port),
        block=False,
        evt_handlers=handlers,
        ssl_context=settings.scp_ssl_context(),
    )
    assert server is not None  # block=False always returns the server
    logger.info("SCP listening", extra={"aet": settings.aet, "host": settings.host,
                                         "port": server.server_address[1],
                                         "tls": settings.tls_cert is not None})
    return ae, server
