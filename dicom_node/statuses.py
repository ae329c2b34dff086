"""Map node failures to DICOM statuses in one place, like pynetdicom's ``attempt``.

Exception tree (catch at the level you care about)::

    NodeError
    ├── StoreRejected            the instance is refused; the association goes on
    │   ├── OutOfResources       0xA700  spool disk too full to accept safely
    │   ├── SopClassMismatch     0xA900  dataset's SOP class differs from the request's
    │   └── CannotUnderstand     0xC000  not DICOM, truncated, required UID missing
    └── ForwardError             raised by transports, never seen by a modality
        ├── HubUnavailable       connection refused, timeout, 0xA7xx, 5xx: back off, retry
        └── InstanceRefused      the hub will never take this file as it is: quarantine

Statuses come from PS3.4 Annex B.2.3 (Storage Service Class), as tabled in
``pynetdicom.status.STORAGE_SERVICE_CLASS_STATUS``.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from enum import IntEnum
from typing import Any

from pydicom.dataset import Dataset

logger = logging.getLogger(__name__)


class StoreStatus(IntEnum):
    """C-STORE response statuses the SCP uses."""

    SUCCESS = 0x0000
    OUT_OF_RESOURCES = 0xA700
    SOP_CLASS_MISMATCH = 0xA900
    CANNOT_UNDERSTAND = 0xC000
    #: pynetdicom's own default for an exception in a handler; we use it for the unexpected.
    PROCESSING_FAILURE = 0xC211


class NodeError(Exception):
    """Base of every error the node raises on purpose."""


class StoreRejected(NodeError):
    """An incoming instance is refused with :attr:`status`; the message is the ErrorComment."""

    status: StoreStatus = StoreStatus.CANNOT_UNDERSTAND


class OutOfResources(StoreRejected):
    status = StoreStatus.OUT_OF_RESOURCES


class SopClassMismatch(StoreRejected):
    status = StoreStatus.SOP_CLASS_MISMATCH


class CannotUnderstand(StoreRejected):
    status = StoreStatus.CANNOT_UNDERSTAND


class ForwardError(NodeError):
    """Sending to the hub failed."""


class HubUnavailable(ForwardError):
    """Transient: the hub is down, slow or out of resources. Back off and retry."""


class InstanceRefused(ForwardError):
    """Permanent for this file: the hub answered with a failure that retrying will not fix."""


def status_dataset(status: int, comment: str = "") -> Dataset:
    """Build the C-STORE response status dataset.

    Args:
        status: the (0000,0900) Status value.
        comment: ErrorComment (0000,0902); PS3.7 limits it to 64 characters (LO).

    Returns:
        A dataset pynetdicom sends as the response's status elements.
    """
    ds = Dataset()
    ds.Status = status
    if comment:
        # LO: 64 characters at most, and no backslash (it would split the value).
        ds.ErrorComment = comment.replace("\\", "/")[:64]
    return ds


def store_guard(handler: Callable[..., int | Dataset]) -> Callable[..., int | Dataset]:
    """Wrap an ``evt.EVT_C_STORE`` handler so every exception becomes a status.

    ``StoreRejected`` subclasses answer with their own status and message; anything else is
    logged once with its traceback and answered with 0xC211, so the modality gets a failure
    for this instance and the association carries on with the next one.
    """

    @functools.wraps(handler)
    def wrapper(event: Any, *args: Any, **kwargs: Any) -> int | Dataset:
        try:
            return handler(event, *args, **kwargs)
        except StoreRejected as exc:
            sop = _request_sop_uid(event)
            logger.warning(
                "store rejected",
                extra={"sop_instance_uid": sop, "status": f"0x{exc.status:04X}",
                       "reason": str(exc), "calling_aet": _calling_aet(event)},
            )
            return status_dataset(exc.status, str(exc))
        except Exception as exc:  # noqa: BLE001 - the edge: log once, answer with a failure
            logger.exception(
                "store failed unexpectedly",
                extra={"sop_instance_uid": _request_sop_uid(event)},
            )
            return status_dataset(
                StoreStatus.PROCESSING_FAILURE, f"node error: {type(exc).__name__}"
            )

    return wrapper


def _request_sop_uid(event: Any) -> str:
    try:
        return str(event.request.AffectedSOPInstanceUID)
    except Exception:  # noqa: BLE001 - logging helper must never raise
        return ""


def _calling_aet(event: Any) -> str:
    try:
        return str(event.assoc.requestor.ae_title).strip()
    except Exception:  # noqa: BLE001
        return ""


def is_success(status: int) -> bool:
    """True for success and the storage warnings (0xB000, 0xB006, 0xB007): the hub has it."""
    return status == 0x0000 or (status & 0xF000) == 0xB000


def is_transient(status: int) -> bool:
    """True for "out of resources" (0xA7xx): the hub may take it later."""
    return (status & 0xFF00) == 0xA700
