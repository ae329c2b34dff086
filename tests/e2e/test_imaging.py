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
        " && window.__ygPerf.marks.metadata !== undefined && window.__ygPerf.total > 0",
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


def test_earlier_study_of_the_patient_opens_side_by_side(page, shots, e2e_hub):
    send_ct(e2e_hub, slices=3, size=128, patient_id="BR01-E2E-PRI", name="Zheng^Ba=郑^八")
    first = e2e_hub.wait_item("imaging", "BR01-E2E-PRI", "dr.li")
    send_ct(e2e_hub, slices=3, size=128, patient_id="BR01-E2E-PRI", name="Zheng^Ba=郑^八")

    def second() -> dict | None:
        rows = e2e_hub.get("/api/worklist?kind=imaging&limit=500", "dr.li").json()
        return next((r for r in rows if r["patient"]["local_id"] == "BR01-E2E-PRI"
                     and r["id"] != first["id"] and r["status"] == "ready"), None)

    from tests.helpers import wait_for

    later = wait_for(second, timeout=60, what="the second study")
    login(page, "dr.li")
    open_item(page, later["id"])
    _wait_drawn(page)
    prior = page.get_by_test_id("prior")
    prior.wait_for()
    prior.click()
    page.wait_for_function(
        "() => document.querySelector('[data-testid=\"viewport-info-compare\"]')"
        "?.textContent.includes('/3')")
    shots("prior_side_by_side")
    assert canvas_stats(page, '[data-testid="viewport-compare"]')["nonBlack"] > 0.05
    assert canvas_stats(page)["nonBlack"] > 0.05


CODEC_FILES = {  # series description -> file in the shared test data (dicom/single)
    "JPEG-LS": "MR_small_jpeg_ls_lossless.dcm",
    "JPEG2000": "MR_small_jp2klossless.dcm",
    "RLE": "MR_small_RLE.dcm",
    "multiframe": "emri_small.dcm",
}


def test_compressed_and_multiframe_images_decode_in_the_browser(page, shots, e2e_hub,
                                                               testdata):
    import pydicom
    from pydicom.uid import generate_uid

    from hub.orthanc.client import OrthancClient
    from tests.e2e.support import dicom_bytes

    cfg = e2e_hub.orthanc.config
    client = OrthancClient(cfg.url, cfg.user, cfg.password)
    study = generate_uid()
    for number, (label, name) in enumerate(CODEC_FILES.items(), start=1):
        ds = pydicom.dcmread(testdata / "dicom" / "single" / name)
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study, generate_uid()
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.PatientID, ds.PatientName, ds.Modality = "BR01-E2E-CMP", "Codec^Test", "MR"
        ds.SeriesNumber, ds.SeriesDescription, ds.InstanceNumber = number, label, 1
        client.upload(dicom_bytes(ds))
    item = e2e_hub.wait_item("imaging", "BR01-E2E-CMP", "dr.li")
    login(page, "dr.li")
    open_item(page, item["id"])
    _wait_drawn(page)
    tiles = page.get_by_test_id("series-tile")
    assert tiles.count() == len(CODEC_FILES)
    for k, label in enumerate(CODEC_FILES):
        tiles.nth(k).click()
        page.wait_for_function(
            "(l) => document.querySelector('[data-testid=\"viewport-info-main\"]')"
            ".textContent.includes(l)", arg=label)
        page.wait_for_timeout(400)
        stats = canvas_stats(page)
        assert stats["nonBlack"] > 0.02, f"{label}: canvas blank {stats}"
        shots(f"codec_{label}")
    # The multi-frame series is a stack of its frames; cine steps through them.
    assert page.evaluate("window.__ygPerf.total") > 1
    page.get_by_test_id("cine").click()
    page.wait_for_function("() => window.__ygPerf.index >= 2")
    page.get_by_test_id("cine").click()
    assert page.get_by_test_id("image-errors").is_hidden()
