"""Live refresh, a lost connection (banner, draft kept), session expiry, no patient data stored."""

from __future__ import annotations

import json
import time

import jwt
import pytest

from tests.e2e.support import E2EHub, login, open_item, send_ct

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def small_ct(e2e_hub: E2EHub) -> dict:
    send_ct(e2e_hub, slices=3, size=64, patient_id="BR01-E2E-SES", name="Qian^Liu=钱^六")
    return e2e_hub.wait_item("imaging", "BR01-E2E-SES", "dr.li")


def test_new_study_appears_without_refreshing(page, shots, e2e_hub, small_ct):
    login(page, "dr.li")
    page.locator(f'[data-testid="worklist-row"][data-item-id="{small_ct["id"]}"]').wait_for()
    before = page.get_by_test_id("worklist-row").count()
    send_ct(e2e_hub, slices=2, size=64, patient_id="BR01-E2E-LIVE", name="Sun^Qi=孙^七")
    # No click: the server-sent event makes the list reload.
    page.get_by_text("孙七").wait_for(timeout=45_000)
    assert page.get_by_test_id("worklist-row").count() > before
    shots("worklist_live_refreshed")


def test_lost_connection_shows_banner_and_keeps_the_draft(page, shots, e2e_hub, small_ct):
    login(page, "dr.li")
    open_item(page, small_ct["id"])
    findings = page.get_by_test_id("report-findings")
    findings.wait_for()
    page.wait_for_timeout(500)  # the editor fills in the template, then we type
    text = "右肺上叶见一约5mm结节（断网前输入）。"
    findings.fill(text)
    page.route("**/api/**", lambda route: route.abort("connectionrefused"))
    save = page.get_by_test_id("report-save")
    if save.count():
        save.click()
    else:
        page.get_by_test_id("back").click()
    banner = page.locator("#banner")
    banner.wait_for(state="visible")
    assert "连接已断开" in banner.inner_text()
    if save.count():
        assert findings.input_value() == text
    shots("offline_banner_draft_kept")
    page.unroute("**/api/**")
    banner.wait_for(state="hidden", timeout=15_000)
    # Leave the item and come back: the draft was kept in this tab.
    page.goto("/#/")
    open_item(page, small_ct["id"])
    page.get_by_text("已恢复本页保留的草稿").or_(page.get_by_text("草稿已保存")).first.wait_for()
    assert page.get_by_test_id("report-findings").input_value() == text
    shots("draft_restored_after_reconnect")


def test_expired_session_asks_to_sign_in_again_over_the_screen(page, shots, e2e_hub, small_ct):
    secret = e2e_hub.server.settings.secret_key
    now = int(time.time())
    # Long enough for the item to open on a busy machine before the token runs out.
    life = 12
    short = jwt.encode({"sub": "dr.li", "iat": now, "exp": now + life}, secret,
                       algorithm="HS256")
    page.goto("/")
    page.evaluate("(s) => sessionStorage.setItem('yg.session', s)", json.dumps(
        {"token": short, "username": "dr.li", "expiresAt": (now + life) * 1000}))
    page.goto(f"/#/item/{small_ct['id']}")
    page.reload()  # a hash change alone does not reload the app, which reads the session at start
    page.get_by_test_id("report-findings").wait_for()
    page.get_by_test_id("report-findings").fill("会话过期前输入的文字")
    overlay = page.get_by_test_id("session-expired")
    overlay.wait_for(timeout=(life + 15) * 1000)
    shots("session_expired_overlay")
    overlay.get_by_test_id("login-password").fill("demo-password-1")
    overlay.get_by_test_id("login-submit").click()
    overlay.wait_for(state="detached")
    assert page.get_by_test_id("report-findings").input_value() == "会话过期前输入的文字"
    shots("signed_in_again_screen_kept")


def test_a_rejected_token_also_asks_to_sign_in(page, e2e_hub, small_ct):
    login(page, "dr.li")
    page.evaluate("""() => {
      const s = JSON.parse(sessionStorage.getItem('yg.session'));
      s.token = 'not-a-token';
      sessionStorage.setItem('yg.session', JSON.stringify(s));
    }""")
    page.reload()
    page.get_by_test_id("session-expired").wait_for()


def test_no_patient_data_in_urls_or_persistent_storage(page, e2e_hub, small_ct):
    urls: list[str] = []
    page.on("request", lambda r: urls.append(r.url))
    login(page, "dr.li")
    open_item(page, small_ct["id"])
    page.wait_for_function("() => window.__ygPerf.rendered > 0")
    assert not [u for u in urls if "BR01-E2E" in u or "%E9%92%B1" in u or "Qian" in u]
    assert "#/item/" in page.url and "BR01" not in page.url
    local = page.evaluate("() => JSON.stringify(localStorage)")
    assert "钱" not in local and "BR01" not in local
