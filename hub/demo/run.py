"""``yigong up --demo``: seed the demo community and send it something to read."""

from __future__ import annotations

import logging
import socket

from pynetdicom import AE
from rich.console import Console
from rich.table import Table

from hub.config import Settings
from hub.db.session import session_scope
from hub.demo import node_service_login, seed, synthetic_ct

logger = logging.getLogger(__name__)


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def send_datasets(datasets, port: int, called_aet: str, calling_aet: str) -> int:
    """C-STORE ``datasets`` over one association; returns how many got a success status."""
    ae = AE(ae_title=calling_aet)
    for ds in datasets[:1]:
        ae.add_requested_context(ds.SOPClassUID, ds.file_meta.TransferSyntaxUID)
    assoc = ae.associate("127.0.0.1", port, ae_title=called_aet)
    if not assoc.is_established:
        raise ConnectionError(f"association to {called_aet}@{port} refused")
    ok = 0
    try:
        for ds in datasets:
            status = assoc.send_c_store(ds)
            ok += int(getattr(status, "Status", 0xFFFF) == 0)
    finally:
        assoc.release()
    return ok


def seed_demo(settings: Settings, console: Console) -> tuple[str, str]:
    """Seed the demo community; returns the branch node's service login for the node process."""
    with session_scope(settings.effective_database_url) as session:
        created = seed(session)
        node_user, node_password = node_service_login(session, settings.data_dir)
    if created:
        table = Table("username", "password", "role", "institution",
                      title="Demo users (passwords are shown only this once)")
        for u in created:
            table.add_row(u.username, u.password, u.role, u.institution)
        console.print(table)
    else:
        console.print("demo users already exist (their passwords were printed on first run)")
    return node_user, node_password


def send_demo_data(settings: Settings, console: Console) -> None:
    """Send the demo study as a township CT would: to the branch node when it runs."""
    from dicom_node.config import NodeSettings

    study = synthetic_ct()
    node_port = NodeSettings().port
    if _port_open(node_port):
        port, called = node_port, "YIGONG-NODE"
    else:
        port, called = settings.orthanc_dicom_port, settings.orthanc_aet
    sent = send_datasets(study, port, called, "BR01-CT")
    console.print(f"demo CT (王小东, {len(study)} slices) sent to {called}: {sent} stored")
