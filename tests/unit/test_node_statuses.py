"""One wrapper maps every handler failure to a C-STORE status."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from dicom_node.statuses import (
    CannotUnderstand,
    OutOfResources,
    SopClassMismatch,
    StoreStatus,
    is_success,
    is_transient,
    status_dataset,
    store_guard,
)

EVENT = SimpleNamespace(
    request=SimpleNamespace(AffectedSOPInstanceUID="1.2.3"),
    assoc=SimpleNamespace(requestor=SimpleNamespace(ae_title="CT1")),
)


@pytest.mark.parametrize(("exc", "status"), [
    (OutOfResources("disk full"), 0xA700),
    (SopClassMismatch("CT is not MR"), 0xA900),
    (CannotUnderstand("truncated dataset"), 0xC000),
    (KeyError("boom"), 0xC211),
])
def test_exceptions_become_statuses_with_a_comment(exc, status):
    @store_guard
    def handler(event):
        raise exc

    rsp = handler(EVENT)
    assert rsp.Status == status
    assert rsp.ErrorComment


def test_success_passes_through():
    assert store_guard(lambda event: StoreStatus.SUCCESS)(EVENT) == 0


def test_error_comment_fits_lo():
    ds = status_dataset(0xC000, "x\\" * 100)
    assert len(ds.ErrorComment) == 64 and "\\" not in ds.ErrorComment


@pytest.mark.parametrize(("status", "ok", "transient"), [
    (0x0000, True, False), (0xB000, True, False), (0xB007, True, False),
    (0xA700, False, True), (0xA7FF, False, True), (0xA900, False, False),
    (0xC000, False, False), (0x0110, False, False),
])
def test_hub_status_classes(status, ok, transient):
    assert is_success(status) is ok
    assert is_transient(status) is transient
