"""Fixtures for the branch node against a real Orthanc on loopback."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pydicom
import pytest
from pynetdicom import AE
from pynetdicom.presentation import build_context

from dicom_node.config import NodeSettings
from dicom_node.node import Node
from tests.helpers import wait_for

CT_HEADER = Path("dicom/single/CT_small.dcm")


def wait_until(check: Callable[[], Any], timeout: float = 30.0, interval: float = 0.05,
               what: str = "condition") -> Any:
    """The shared poller with the node tests' shorter default interval."""
    return wait_for(check, timeout=timeout, interval=interval, what=what)


def orthanc_sop_uids(client) -> list[str]:
    """SOP Instance UIDs Orthanc holds (one entry per stored instance)."""
    found = client.post_json("/tools/find", {"Level": "Instance", "Query": {}, "Expand": True})
    return [f["MainDicomTags"]["SOPInstanceUID"] for f in found]


def orthanc_count(client) -> int:
    """Instances Orthanc holds."""
    return int(client.get_json("/statistics")["CountInstances"])


def scu_send(files: list[Path], port: int, calling_aet: str = "CT1",
             called_aet: str = "YIGONG-NODE", tls: Any = None) -> dict[Path, int]:
    """Send files with a pynetdicom SCU over one association; returns path -> status."""
    datasets = [(p, pydicom.dcmread(p)) for p in files]
    pairs = sorted({(str(ds.SOPClassUID), str(ds.file_meta.TransferSyntaxUID))
                    for _, ds in datasets})
    ae = AE(ae_title=calling_aet)
    kwargs: dict[str, Any] = {"ae_title": called_aet,
                              "contexts": [build_context(s, t) for s, t in pairs]}
    if tls is not None:
        kwargs["tls_args"] = (tls, None)
    assoc = ae.associate("127.0.0.1", port, **kwargs)
    assert assoc.is_established, "association with the node failed"
    result: dict[Path, int] = {}
    try:
        for path, ds in datasets:
            rsp = assoc.send_c_store(ds)
            result[path] = int(rsp.Status) if "Status" in rsp else -1
    finally:
        assoc.release()
    return result


@pytest.fixture
def node_settings(orthanc, orthanc_client, tmp_path: Path) -> NodeSettings:
    """Settings of a node on a free port forwarding to the session Orthanc over DICOM.

    Depends on ``orthanc_client`` so the archive is emptied after every node test, after the
    node itself was stopped (fixtures tear down in reverse order).
    """
    return NodeSettings(
        port=0, spool_dir=tmp_path / "spool", min_free_bytes=0,
        hub_host="127.0.0.1", hub_port=orthanc.config.dicom_port, hub_aet=orthanc.config.aet,
        orthanc_url=orthanc.config.url, orthanc_user=orthanc.config.user,
        orthanc_password=orthanc.config.password, workers=2, retry_base=0.1, retry_max=1.0,
    )


@pytest.fixture
def start_node() -> Iterator[Callable[[NodeSettings], Node]]:
    """Start in-process nodes; all are stopped at teardown."""
    nodes: list[Node] = []

    def _start(settings: NodeSettings) -> Node:
        node = Node(settings)
        node.start()
        nodes.append(node)
        return node

    yield _start
    for node in nodes:
        node.stop()


@pytest.fixture(scope="session")
def ct_study_300(testdata: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """300 CT slices of 512x512 built from a real CT header (generated once per session)."""
    from dicom_node.synthetic import write_ct_study

    return write_ct_study(testdata / CT_HEADER, tmp_path_factory.mktemp("ct300"), 300,
                          series_count=2)
