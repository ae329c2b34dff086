"""Done-when of issue 6: C-STORE → item → dr.li writes → dr.zhao verifies → signed PDF that
pyHanko and `yigong verify` accept (and reject after one flipped byte) → ORU^R01 with the PDF to
a real MLLP listener acting as the branch HIS → item `delivered` after its ACK → Encapsulated
PDF in the study in Orthanc."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hub.demo import synthetic_ct
from hub.demo.run import send_datasets
from hub.reports.verify import validate_pdf
from hub.services.delivery import ENCAPSULATED_PDF_STORAGE, deliver_and_sync
from tests.conftest import REPO
from tests.helpers import sign_and_deliver_setup, wait_for

pytestmark = pytest.mark.integration




def run_verify_cli(path: Path, server, *extra: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "YIGONG_DATABASE_URL": server.db_url,
           "YIGONG_DATA_DIR": str(server.settings.data_dir),
           "YIGONG_SECRET_KEY": server.settings.secret_key}
    return subprocess.run([sys.executable, "-m", "hub.cli_reports", "verify", str(path),
                           *extra], env=env, cwd=REPO, capture_output=True, text=True,
                          timeout=120)


def test_cstore_to_signed_delivered_report(hub_server, orthanc, orthanc_client, tmp_path):
    server = hub_server
    his, lis, ca_pem = sign_and_deliver_setup(server)

    study = synthetic_ct(slices=6)
    assert send_datasets(study, orthanc.config.dicom_port, "YIGONG", "BR01-CT") == len(study)
    import requests

    li, zhao = server.headers("dr.li"), server.headers("dr.zhao")

    def ready_item():
        items = requests.get(server.url + "/api/worklist", headers=li, timeout=10).json()
        return next((i for i in items if i["status"] == "ready"), None)

    item = wait_for(ready_item, timeout=60, what="the C-STORE'd study to become ready")
    assert item["institution"]["code"] == "BR01" and item["modality"] == "CT"
    base = f"{server.url}/api/worklist/{item['id']}/report"

    r = requests.put(base + "/draft", headers=li, timeout=30, json={
        "template": "ct_chest", "findings": "右肺上叶见一枚实性结节，直径约6mm，边界清。",
        "impression": "右肺上叶小结节，建议12个月后复查。",
        "fields": {"nodule": "有", "largest_nodule_mm": 6}})
    assert r.status_code == 200, r.text
    assert requests.post(base + "/submit", headers=li, timeout=30).status_code == 200
    qc = requests.put(server.url + "/api/recognition/qc/BR01", headers=server.headers("admin"),
                      timeout=10, json={"valid_from": "2026-01-01T00:00:00Z",
                                        "valid_until": "2027-01-01T00:00:00Z", "note": "年度质控"})
    assert qc.status_code == 200, qc.text
    r = requests.post(base + "/verify", headers=zhao, timeout=60)
    assert r.status_code == 200, r.text
    report = r.json()
    assert report["status"] == "final"
    assert report["recognised"] and report["recognition"]["item_code"] == "CT-CHEST"

    pdf = requests.get(server.url + report["pdf_url"], headers=zhao, timeout=30).content
    path = tmp_path / "report.pdf"
    path.write_bytes(pdf)
    (tmp_path / "ca.pem").write_bytes(b"".join(
        c.public_bytes(__import__("cryptography.hazmat.primitives.serialization",
                                  fromlist=["Encoding"]).Encoding.PEM) for c in ca_pem))

    # pyHanko's validator, and the CLI (against the hub's database, and offline with --ca).
    assert validate_pdf(pdf, ca_pem).ok
    ok = run_verify_cli(path, server)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "赵主任" in ok.stdout and "VERIFIED" in ok.stdout
    assert run_verify_cli(path, server, "--ca", str(tmp_path / "ca.pem")).returncode == 0

    # One flipped byte: both fail.
    tampered = bytearray(pdf)
    tampered[len(pdf) // 2] ^= 0x01
    bad = tmp_path / "tampered.pdf"
    bad.write_bytes(bytes(tampered))
    assert not validate_pdf(bytes(tampered), ca_pem).ok
    failed = run_verify_cli(bad, server)
    assert failed.returncode == 1 and "VERIFICATION FAILED" in failed.stdout
    assert run_verify_cli(bad, server, "--ca", str(tmp_path / "ca.pem")).returncode == 1

    # HL7 to the branch HIS; delivered on its ACK.
    assert deliver_and_sync(server.db_url, lis) == 1
    assert len(his.messages) == 1
    message = his.messages[0]
    segments = message.split("\r")
    assert segments[0].split("|")[8] == "ORU^R01^ORU_R01"
    obx_pdf = next(s for s in segments if s.startswith("OBX") and "|ED|" in s)
    ed = obx_pdf.split("|")[5].split("^")
    assert ed[1:4] == ["AP", "PDF", "Base64"]
    assert base64.b64decode(ed[4]) == pdf
    assert "右肺上叶小结节" in message
    detail = requests.get(f"{server.url}/api/worklist/{item['id']}", headers=li, timeout=10)
    assert detail.json()["status"] == "delivered"
    got = requests.get(base, headers=li, timeout=10).json()
    assert {d["channel"]: d["status"] for d in got["delivery"]} == {"hl7": "acked",
                                                                  "dicom": "sent"}

    # The study in Orthanc now holds the encapsulated PDF.
    orthanc_study = orthanc_client.lookup_study(study[0].StudyInstanceUID)
    instances = orthanc_client.get_json(f"/studies/{orthanc_study}/instances")
    pdfs = [i for i in instances
            if orthanc_client.instance_tags(i["ID"]).get("SOPClassUID")
            == ENCAPSULATED_PDF_STORAGE]
    assert len(pdfs) == 1
    stored = orthanc_client.get_bytes(f"/instances/{pdfs[0]['ID']}/content/0042-0011")
    assert stored.rstrip(b"\x00") == pdf.rstrip(b"\x00")
    # ... and did not become a second worklist item.
    items = requests.get(server.url + "/api/worklist", headers=li, timeout=10).json()
    assert len(items) == 1
    his.close()
