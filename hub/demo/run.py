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
        console.print("demo users already exist (their passwords were printed on first run; "
                      "`yigong user passwd NAME` sets a new one)")
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
    send_demo_ecg(settings, console)
    send_demo_lab(console)


def send_demo_ecg(settings: Settings, console: Console) -> None:
    """A 12-lead ECG at 150 bpm with ST elevation in V2–V4: lands as a critical STAT item."""
    from ecg_ingest.record import Lead, PatientInfo
    from ecg_ingest.synthetic import synthetic_ecg, to_wfdb_files
    from hub.intake import IntakeRules
    from hub.orthanc.client import OrthancClient
    from hub.services.ecg import UploadContext, ingest_files, urgency_rules_from_settings

    record = synthetic_ecg(150, st_elevation_mv={Lead.V2: 0.3, Lead.V3: 0.35, Lead.V4: 0.25},
                           patient=PatientInfo("BR02-000456", "李^秀兰", sex="F"))
    client = OrthancClient(settings.orthanc_url, settings.orthanc_user,
                           settings.orthanc_password, timeout=settings.orthanc_timeout)
    with session_scope(settings.effective_database_url) as session:
        ingest_files(session, client, IntakeRules.from_settings(settings),
                     to_wfdb_files(record, "demo_ecg"), UploadContext(institution="BR02"),
                     urgency_rules_from_settings(settings))
    console.print("demo ECG (李秀兰, 150 bpm, ST elevation) sent to the ECG centre")


#: An ORU^R01 from the BR01 HIS with a critical potassium (OBX-8 HH), in GB 18030.
DEMO_ORU = (
    "MSH|^~\\&|BR01LIS|BR01HIS|YIGONG|LEAD|20261126093000||ORU^R01^ORU_R01|DEMO-ORU-0001|P|2.5.1"
    "|||||CHN|GB 18030-2000\r"
    "PID|1||BR01-000789^^^BR01||张^建国||19580704|M\r"
    "OBR|1|PL0001|FL0001|CHEM^生化检验^L|||20261126083000\r"
    "OBX|1|NM|2823-3^钾^LN||6.8|mmol/L|3.5-5.3|HH|||F|||20261126090000\r"
    "OBX|2|NM|2951-2^钠^LN||139|mmol/L|137-147|N|||F|||20261126090000\r"
)


def send_demo_lab(console: Console) -> None:
    """Send the demo lab result to the LIS bridge, as a branch HIS would, if it runs."""
    import asyncio

    from lis_bridge.config import LisSettings
    from lis_bridge.mllp import MllpClient

    port = LisSettings().port
    if not _port_open(port):
        console.print("LIS bridge not running: demo lab result not sent")
        return

    async def send() -> bytes:
        client = MllpClient("127.0.0.1", port)
        try:
            return await client.send(DEMO_ORU.encode("gb18030"))
        finally:
            await client.close()

    ack = asyncio.run(send()).decode("gb18030", "replace")
    code = ack.split("MSA|")[1][:2] if "MSA|" in ack else "?"
    console.print(f"demo lab result (张建国, K 6.8 mmol/L critical) sent to the LIS bridge: {code}")
