"""The viewer offers each role only what the hub lets it do (GET /api/auth/me)."""

from __future__ import annotations

import pytest

from tests.e2e.support import E2EHub, login, open_item, send_ct

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def small_ct(e2e_hub: E2EHub) -> dict:
    send_ct(e2e_hub, slices=2, size=64, patient_id="BR01-E2E-ROLE", name="Zhou^Ba=周^八")
    return e2e_hub.wait_item("imaging", "BR01-E2E-ROLE", "dr.li")


def test_reader_is_not_offered_a_new_order(page, shots, e2e_hub: E2EHub):
    e2e_hub.require_route("/api/auth/me")
    login(page, "dr.li")
    assert page.get_by_test_id("user-name").inner_text() == "李放射"
    assert page.get_by_test_id("user-role").inner_text() == "放射科医师"
    # The worklist's head, where the link would be, is drawn with the list body.
    assert page.get_by_test_id("new-order").count() == 0
    shots("reader_worklist_without_new_order")
    # Typing the address does not bring up a form the hub would refuse (403) either.
    page.goto("/#/orders/new")
    page.get_by_test_id("not-permitted").wait_for()
    assert page.get_by_test_id("order-form").count() == 0
    assert e2e_hub.get("/api/auth/me", "dr.li").json()["role"] == "radiologist"
    assert not page.yigong_errors, page.yigong_errors


def test_branch_technician_is_offered_a_new_order(page, shots, e2e_hub: E2EHub):
    e2e_hub.require_route("/api/auth/me")
    login(page, "tech.br01")
    page.get_by_test_id("new-order").wait_for()
    assert page.get_by_test_id("user-name").inner_text() == "城关技师"
    assert page.get_by_test_id("user-role").inner_text() == "技师"
    shots("technician_worklist_with_new_order")
    page.get_by_test_id("lang").click()
    assert page.get_by_test_id("user-role").inner_text() == "Technician"
    assert page.get_by_test_id("new-order").inner_text() == "New order"
    page.get_by_test_id("new-order").click()
    page.get_by_test_id("order-form").wait_for()
    assert not page.yigong_errors, page.yigong_errors


def test_report_actions_follow_the_role(page, shots, e2e_hub: E2EHub, small_ct):
    e2e_hub.require_route("/api/auth/me")
    e2e_hub.require_route("/api/worklist/{item_id}/report/verify", "post", "issue 6")
    # The branch technician may open the study but neither writes nor verifies reports.
    login(page, "tech.br01")
    open_item(page, small_ct["id"])
    page.get_by_test_id("report-read-only").wait_for()
    for action in ("report-save", "report-submit", "report-verify", "critical-submit"):
        assert page.get_by_test_id(action).count() == 0, action
    assert page.get_by_test_id("report-findings").get_attribute("readonly") is not None
    shots("technician_report_read_only")

    # A radiologist of attending rank is offered writing, verifying and the critical call.
    page.get_by_test_id("logout").click()
    login(page, "dr.li")
    open_item(page, small_ct["id"])
    page.get_by_test_id("report-save").wait_for()
    assert page.get_by_test_id("report-verify").count() == 1
    assert page.get_by_test_id("report-read-only").count() == 0
    assert page.get_by_test_id("report-findings").get_attribute("readonly") is None
    shots("reader_report_actions")
    assert not page.yigong_errors, page.yigong_errors
