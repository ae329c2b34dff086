"""Log in, open a CT from the worklist, window/level and scroll; bad images are named."""

from __future__ import annotations

import pytest

from tests.e2e.support import E2EHub, canvas_stats, login, open_item, send_ct

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def ct_item(e2e_hub: E2EHub) -> dict:
    send_ct(e2e_hub, slices=30, size=256, patient_id="BR01-E2E-CT", bad_instance=True)
    return e2e_hub.wait_item("imaging", "BR01-E2E-CT", "dr.li")


def _wait_drawn(page, min_rendered: int = 1) -> dict:
    # The first image may come from its own metadata; wait for the whole series too.
    page.wait_for_function(
        "(n) => window.__ygPerf && window.__ygPerf.rendered >= n"
        " && window.__ygPerf.marks.metadata !== undefined && window.__ygPerf.total > 1",
        arg=min_rendered)
    page.wait_for_timeout(200)
    stats = canvas_stats(page)
    assert stats is not None, "no canvas in the main viewport"
    return stats


def test_login_shows_worklist_in_chinese(page, shots, e2e_hub, ct_item):
    page.goto("/")
    page.get_by_test_id("login-form").wait_for()
    shots("login_form")
    login(page, "dr.li")
    row = page.locator(f'[data-testid="worklist-row"][data-item-id="{ct_item["id"]}"]')
    row.wait_for()
    assert "王" in row.inner_text()
    assert "影像" in row.inner_text()
    shots("worklist")
    page.get_by_test_id("lang").click()
    page.get_by_text("Reading worklist").wait_for()
    shots("worklist_english")


def test_ct_opens_and_window_level_changes_pixels(page, shots, e2e_hub, ct_item):
    login(page, "dr.li")
    open_item(page, ct_item["id"])
    before = _wait_drawn(page)
    shots("ct_first_image")
    assert before["nonBlack"] > 0.05, f"canvas looks blank: {before}"
    assert page.evaluate("window.__ygPerf.total") == 31
    page.get_by_test_id("wl-preset").select_option("lung")
    page.wait_for_timeout(300)
    after = canvas_stats(page)
    shots("ct_lung_window")
    assert after["hash"] != before["hash"], "window/level change did not alter the pixels"
    assert abs(after["mean"] - before["mean"]) > 1.0
    assert "W 1500 L -600" in page.get_by_test_id("viewport-info-main").inner_text()
    assert not page.yigong_errors, page.yigong_errors


def test_scrolling_the_series_shows_other_images(page, shots, e2e_hub, ct_item):
    login(page, "dr.li")
    open_item(page, ct_item["id"])
    first = _wait_drawn(page)
    vp = page.get_by_test_id("viewport-main")
    vp.hover()
    for _ in range(10):
        page.mouse.wheel(0, 120)
        page.wait_for_timeout(60)
    page.wait_for_function("() => window.__ygPerf.index >= 5")
    page.wait_for_timeout(200)
    later = canvas_stats(page)
    shots("ct_scrolled")
    assert later["hash"] != first["hash"], "scrolling did not change the image"
    assert "/31" in page.get_by_test_id("viewport-info-main").inner_text()


def test_undecodable_image_is_named_and_the_rest_works(page, shots, e2e_hub, ct_item):
    login(page, "dr.li")
    open_item(page, ct_item["id"])
    _wait_drawn(page)
    errors = page.get_by_test_id("image-errors")
    errors.wait_for(state="visible", timeout=30_000)
    text = errors.inner_text()
    shots("ct_bad_image_listed")
    assert "31" in text, text
    assert page.get_by_test_id("image-errors-list").locator("li").count() == 1
    # The rest of the stack still displays.
    vp = page.get_by_test_id("viewport-main")
    vp.hover()
    page.mouse.wheel(0, 120)
    page.wait_for_function("() => window.__ygPerf.index >= 1")
    assert canvas_stats(page)["nonBlack"] > 0.05
