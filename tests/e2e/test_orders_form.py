"""A branch technician places an order in the viewer (issue 8: branches without an HIS link)."""

from __future__ import annotations

import pytest

from tests.e2e.support import E2EHub, login

pytestmark = pytest.mark.e2e


def test_technician_places_order_and_sees_accession(page, shots, e2e_hub: E2EHub):
    e2e_hub.require_route("/api/orders", "post", "issue 8")
    login(page, "tech.br01")
    shots("worklist_with_new_order_link")
    page.get_by_test_id("new-order").click()
    page.get_by_test_id("order-form").wait_for()
    assert "#/orders/new" in page.url

    # First attempt without the patient ID: the hub refuses (422) and nothing typed is lost.
    page.get_by_test_id("order-name").fill("赵^小红")
    page.get_by_test_id("order-birth_date").fill("1961-03-05")
    page.get_by_test_id("order-sex").select_option("F")
    page.get_by_test_id("order-modality").select_option("CT")
    page.get_by_test_id("order-procedure_name").fill("胸部CT平扫")
    page.get_by_test_id("order-priority").select_option("urgent")
    page.get_by_test_id("order-reason").fill("咳嗽两周，发热")
    page.get_by_test_id("order-scheduled_at").fill("2026-12-01T09:30")
    shots("form_filled_without_patient_id")
    page.get_by_test_id("order-submit").click()
    error = page.get_by_test_id("order-error")
    error.wait_for()
    assert "422" in error.inner_text()
    assert "identifier" in error.inner_text()
    assert page.get_by_test_id("order-name").input_value() == "赵^小红"
    assert page.get_by_test_id("order-procedure_name").input_value() == "胸部CT平扫"
    assert page.get_by_test_id("order-result").is_hidden()
    shots("refused_422_detail_shown")

    # Completed: the hub assigns the accession number, shown on screen.
    page.get_by_test_id("order-local_id").fill("BR01-E2E-ORD-1")
    page.get_by_test_id("order-submit").click()
    accession_el = page.get_by_test_id("order-accession")
    accession_el.wait_for()
    accession = accession_el.inner_text().strip()
    assert accession
    assert error.is_hidden()
    shots("order_placed_accession_shown")

    orders = e2e_hub.get("/api/orders", "tech.br01")
    assert orders.status_code == 200, orders.text
    placed = [o for o in orders.json() if o["accession_number"] == accession]
    assert len(placed) == 1, orders.json()
    o = placed[0]
    assert o["institution"] == "BR01"
    assert o["patient_local_id"] == "BR01-E2E-ORD-1"
    assert o["patient_name"] == "赵^小红"
    assert (o["modality"], o["kind"], o["priority"]) == ("CT", "imaging", "urgent")
    assert o["procedure_name"] == "胸部CT平扫"
    assert o["body_part"] == "CHEST"  # taken from the procedure by the hub
    assert o["reason"] == "咳嗽两周，发热"
    assert o["scheduled_at"].startswith("2026-12-01T01:30")  # 09:30 China Standard Time
    # No patient data in the URL or in persistent storage.
    assert "BR01-E2E-ORD-1" not in page.url
    stored = page.evaluate(
        "() => JSON.stringify({...localStorage}) + JSON.stringify({...sessionStorage})")
    assert "BR01-E2E-ORD-1" not in stored and "赵" not in stored
    assert not page.yigong_errors, page.yigong_errors
