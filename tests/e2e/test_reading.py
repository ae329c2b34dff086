"""ECG with a caliper, lab with a critical value, and a report written, signed and final."""

from __future__ import annotations

import socket
import threading

import pytest
import requests

from tests.e2e.support import E2EHub, login, open_item, send_ct
from tests.helpers import wait_for

pytestmark = pytest.mark.e2e

ECG_SAMPLES = "/api/ecg/{item_id}/samples"
LAB_RESULTS = "/api/lab/{item_id}/results"
REPORT_VERIFY = "/api/worklist/{item_id}/report/verify"


def upload_ecg(hub: E2EHub, patient_id: str, heart_rate: float = 75.0) -> dict:
    """A synthetic 12-lead ECG (WFDB) uploaded by the branch technician, as a cart would."""
    from ecg_ingest.synthetic import synthetic_ecg, to_wfdb_files

    files = to_wfdb_files(synthetic_ecg(heart_rate_bpm=heart_rate), name="e2e")
    r = requests.post(hub.url + "/api/ecg", headers=hub.headers("tech.br01"),
                      files=[("file", (n, b)) for n, b in files.items()],
                      data={"patient_id": patient_id, "patient_name": "李^四=李^四"}, timeout=60)
    assert r.status_code == 201, r.text
    return r.json()[0]


ORU_CRITICAL_K = (
    "MSH|^~\\&|LIS|BR01HIS|YIGONG|LEAD|20261126083000||ORU^R01|E2E-K-{n}|P|2.5.1"
    "|||||CHN|UNICODE UTF-8\r"
    "PID|1||BR01-E2E-LAB^^^BR01||张^三||19700101|M\r"
    "OBR|1|PL{n}|FL{n}|BMP^电解质^L|||20261126080000|||||||||||||||20261126082500||CH|F\r"
    "OBX|1|NM|2823-3^钾^LN||7.1|mmol/L|3.5-5.3|HH|||F|||20261126080000\r"
    "OBX|2|NM|2951-2^钠^LN||140|mmol/L|137-147|N|||F|||20261126080000\r"
    "OBX|3|NM|2345-7^葡萄糖^LN||7.9|mmol/L|3.9-6.1|H|||F|||20261126080000\r"
)


def send_lab_result(hub: E2EHub, n: int = 1) -> None:
    """One ORU^R01 with a critical potassium, over MLLP to an in-process LIS bridge."""
    import asyncio

    from hub.config import Settings
    from hub.intake import IntakeRules
    from lis_bridge.config import LisSettings
    from lis_bridge.mllp import frame
    from lis_bridge.server import LisBridge

    loop = asyncio.new_event_loop()
    ready = threading.Event()
    holder: dict = {}

    def run() -> None:
        asyncio.set_event_loop(loop)
        bridge = LisBridge(LisSettings(port=0, commit_window_ms=1.0), hub.server.db_url,
                           IntakeRules.from_settings(Settings()))
        holder["port"] = loop.run_until_complete(bridge.start("127.0.0.1", 0))
        ready.set()
        loop.run_forever()
        loop.run_until_complete(bridge.close())

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert ready.wait(30)
    try:
        with socket.create_connection(("127.0.0.1", holder["port"]), timeout=20) as s:
            s.sendall(frame(ORU_CRITICAL_K.format(n=n).encode()))
            ack = s.recv(4096)
        assert b"MSA|AA" in ack, ack
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(30)


def test_ecg_drawn_from_samples_and_caliper_measures(page, shots, e2e_hub):
    e2e_hub.require_route(ECG_SAMPLES, part="ECG samples, issue 4")
    item = upload_ecg(e2e_hub, "BR01-E2E-ECG", heart_rate=75)
    login(page, "dr.chen")
    open_item(page, item["id"])
    canvas = page.locator('[data-testid="ecg"] canvas.ecg-overlay')
    canvas.wait_for()
    shots("ecg_page")
    page.get_by_test_id("ecg-caliper-toggle").click()
    box = canvas.bounding_box()
    # 4 px/mm at 25 mm/s: 80 CSS px = 20 mm = 800 ms (75 bpm).
    scale = box["width"] / page.evaluate(
        "() => document.querySelector('[data-testid=\"ecg\"] canvas.ecg-overlay').width")
    x0, y0 = box["x"] + 200 * scale, box["y"] + 120 * scale
    page.mouse.move(x0, y0)
    page.mouse.down()
    page.mouse.move(x0 + 40 * scale, y0 - 20 * scale)
    page.mouse.move(x0 + 80 * scale, y0 - 40 * scale)
    page.mouse.up()
    result = page.get_by_test_id("ecg-caliper")
    shots("ecg_caliper")
    assert abs(int(result.get_attribute("data-ms")) - 800) <= 10, result.inner_text()
    assert abs(float(result.get_attribute("data-mv")) - 1.0) <= 0.05, result.inner_text()
    assert "75" in result.inner_text()
    # Measurements are offered for confirmation.
    hr = page.get_by_test_id("measure-heart_rate_bpm").input_value()
    assert hr and abs(float(hr) - 75) < 5, hr
    # One lead on its own, full length, then zoomed.
    page.get_by_test_id("ecg-caliper-toggle").click()
    page.mouse.click(box["x"] + 120 * scale, box["y"] + 192 * scale)  # lead II: 30 mm, 48 mm
    page.locator('[data-testid="ecg"] canvas[data-lead="II"]').wait_for()
    shots("ecg_single_lead")
    page.get_by_test_id("ecg-zoom-in").click()
    shots("ecg_zoomed")
    assert not page.yigong_errors, page.yigong_errors


def test_lab_set_with_critical_value_is_called_out(page, shots, e2e_hub):
    e2e_hub.require_route(LAB_RESULTS, part="lab results, issue 5; shape in docs/viewer.md")
    send_lab_result(e2e_hub)
    item = e2e_hub.wait_item("lab", "BR01-E2E-LAB", "dr.sun", status=("ready", "in_progress"))
    login(page, "dr.sun")
    row = page.locator(f'[data-testid="worklist-row"][data-item-id="{item["id"]}"]')
    row.wait_for()
    assert "危急值" in row.inner_text()
    shots("lab_worklist_critical")
    open_item(page, item["id"])
    callout = page.get_by_test_id("lab-critical")
    callout.wait_for()
    assert "7.1" in callout.inner_text()
    k_row = page.locator('[data-testid="lab-row"][data-code="2823-3"]')
    assert "flag-critical" in k_row.get_attribute("class")
    glucose = page.locator('[data-testid="lab-row"][data-code="2345-7"]')
    assert "flag-high" in glucose.get_attribute("class")
    shots("lab_results")


def _fill_required_fields(page) -> None:
    for sel in page.locator('[data-testid="report-fields"] select').all():
        options = [o for o in sel.locator("option").all_inner_texts() if o]
        if options:
            sel.select_option(label=options[-1])


def test_report_written_verified_signed_and_final(page, shots, e2e_hub):
    e2e_hub.require_route(REPORT_VERIFY, "post", part="report signing, issue 6")
    send_ct(e2e_hub, slices=4, size=128, patient_id="BR01-E2E-RPT", name="Zhou^Wu=周^武")
    item = e2e_hub.wait_item("imaging", "BR01-E2E-RPT", "dr.li")
    login(page, "dr.li")
    open_item(page, item["id"])
    page.get_by_test_id("report-save").wait_for()
    page.get_by_test_id("report-findings").fill("双肺纹理清晰，未见实质性病变。纵隔居中。")
    page.get_by_test_id("report-impression").fill("胸部CT平扫未见明显异常。")
    _fill_required_fields(page)
    page.get_by_test_id("report-save").click()
    page.locator('[data-testid="report-status"][data-status="draft"]').wait_for()
    page.get_by_test_id("report-submit").click()
    page.locator('[data-testid="report-status"][data-status="submitted"]').wait_for()
    shots("report_submitted_by_writer")
    page.get_by_test_id("logout").click()

    login(page, "dr.zhao")
    open_item(page, item["id"])
    page.locator('[data-testid="report-status"][data-status="submitted"]').wait_for()
    assert "未见明显异常" in page.get_by_test_id("report-impression").input_value()
    page.get_by_test_id("report-verify").click()
    page.locator('[data-testid="report-status"][data-status="final"]').wait_for(timeout=60_000)
    page.locator('[data-testid="report-pdf"] object').wait_for()
    sigs = page.get_by_test_id("report-signatures").inner_text()
    assert "赵主任" in sigs and "李放射" in sigs, sigs
    shots("report_final_signed")
    # A critical finding is called to the ordering clinician; its status shows in the editor.
    page.locator("details.critical-call summary").click()
    page.get_by_test_id("critical-finding").fill("右肺上叶占位，建议尽快进一步检查")
    page.get_by_test_id("critical-notify").fill("城关镇卫生院 doc.br01")
    page.get_by_test_id("critical-submit").click()
    page.get_by_test_id("critical-status").first.wait_for()
    shots("report_critical_called")
    # Headless chromium shows no PDF plug-in: check the signed PDF the editor embedded.
    pdf_url = e2e_hub.get(f"/api/worklist/{item['id']}/report", "dr.zhao").json()["pdf_url"]
    pdf = e2e_hub.get(pdf_url, "dr.zhao")
    assert pdf.headers["content-type"] == "application/pdf"
    assert pdf.content.startswith(b"%PDF") and b"/ByteRange" in pdf.content
    page.get_by_test_id("back").click()
    page.get_by_test_id("filter-status").select_option("final")
    row = page.locator(f'[data-testid="worklist-row"][data-item-id="{item["id"]}"]')
    wait_for(lambda: row.count() == 1 or page.get_by_test_id("refresh").click(), timeout=20,
             what="item listed as final")
    assert row.get_attribute("data-status") == "final"
    shots("worklist_item_final")
    status = e2e_hub.get(f"/api/worklist/{item['id']}", "dr.zhao").json()["status"]
    assert status in ("final", "delivered")
