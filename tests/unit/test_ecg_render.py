"""The rendered page: grid pitch matches 25 mm/s and 10 mm/mV, 12 labelled panels + rhythm."""

from __future__ import annotations

import io
import re

import numpy as np
import pytest
from PIL import Image

from ecg_ingest.measure import measure
from ecg_ingest.readers import files_for_path, read_files
from ecg_ingest.record import STANDARD_12, EcgRecord, Lead, SourceFormat
from ecg_ingest.render import (
    _MAJOR,
    _MINOR,
    PageInfo,
    PageLayout,
    render_png,
    render_svg,
)
from ecg_ingest.synthetic import synthetic_ecg

LAYOUT = PageLayout()
SPIKES_S = (1.0, 3.0, 5.5, 8.25)


def spike_record() -> EcgRecord:
    """Flat 12-lead ECG with 1 mV, 10 ms spikes in lead II at known times."""
    fs = 500
    t = np.arange(10 * fs) / fs
    sig = np.zeros((12, t.size))
    for s in SPIKES_S:
        sig[1] += np.exp(-0.5 * ((t - s) / 0.004) ** 2)
    return EcgRecord(leads=STANDARD_12, signals_mv=sig, sampling_rate_hz=fs,
                     source_format=SourceFormat.WFDB)


@pytest.fixture(scope="module")
def page() -> np.ndarray:
    png = render_png(spike_record())
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))


def line_positions(img: np.ndarray, colour, axis: int) -> np.ndarray:
    """Columns (axis=0) or rows (axis=1) of the grid area mostly painted ``colour``."""
    grid = img[LAYOUT.grid_top:LAYOUT.grid_bottom + 1, LAYOUT.grid_left:LAYOUT.grid_right + 1]
    hits = (grid == np.array(colour, dtype=np.uint8)).all(axis=2).mean(axis=axis)
    offset = LAYOUT.grid_left if axis == 0 else LAYOUT.grid_top
    return np.flatnonzero(hits > 0.5) + offset


def test_page_fits_a_4k_screen_and_scales_are_standard():
    assert LAYOUT.width <= 3840 and LAYOUT.height <= 2160
    assert LAYOUT.px_per_second == 25 * LAYOUT.px_per_mm  # 25 mm/s
    assert LAYOUT.px_per_mv == 10 * LAYOUT.px_per_mm  # 10 mm/mV


def test_png_grid_pitch_is_1_mm_and_5_mm(page):
    mm = LAYOUT.px_per_mm
    for axis in (0, 1):
        major = set(line_positions(page, _MAJOR, axis).tolist())
        minor = set(line_positions(page, _MINOR, axis).tolist())
        if axis == 1:
            # The flat traces are drawn over the grid line at each row's baseline.
            covered = {int(p.baseline_y) for p in LAYOUT.panels}
            assert not covered & (major | minor)
            minor |= covered
        assert set(np.diff(sorted(major))) == {5 * mm}
        assert set(np.diff(sorted(major | minor))) == {mm}
    vertical_major = line_positions(page, _MAJOR, 0)
    # 10 s at 25 mm/s = 250 mm = 50 large squares across the trace area.
    inside = vertical_major[(vertical_major >= LAYOUT.trace_left)]
    assert inside[-1] - inside[0] == 250 * mm


def test_spikes_land_at_25_mm_per_second_and_10_mm_per_mv(page):
    rhythm = LAYOUT.panels[-1]
    band_top = int(rhythm.top + 8 * LAYOUT.px_per_mm)  # below the lead label
    band = page[band_top:int(rhythm.bottom), LAYOUT.trace_left:LAYOUT.grid_right]
    dark = (band < 80).all(axis=2)
    top_rows = np.argmax(dark, axis=0)  # first dark pixel from the top in each column
    cols = np.flatnonzero(dark.any(axis=0) & (top_rows < (rhythm.baseline_y - band_top) - 60))
    # Group adjacent columns into spikes.
    groups = np.split(cols, np.flatnonzero(np.diff(cols) > 5) + 1)
    centres = [LAYOUT.trace_left + g.mean() for g in groups]
    expected = [LAYOUT.trace_left + s * 25 * LAYOUT.px_per_mm for s in SPIKES_S]
    assert np.allclose(centres, expected, atol=3)
    peak_y = band_top + min(top_rows[g].min() for g in groups)
    assert peak_y == pytest.approx(rhythm.baseline_y - LAYOUT.px_per_mv, abs=6)


def test_calibration_pulse_is_1_mv_by_200_ms(page):
    mm = LAYOUT.px_per_mm
    for panel in (LAYOUT.panels[0], LAYOUT.panels[4], LAYOUT.panels[8], LAYOUT.panels[-1]):
        x_mid = LAYOUT.grid_left + mm + int(2.5 * mm)
        top = int(panel.baseline_y - LAYOUT.px_per_mv)
        column = (page[:, x_mid] < 80).all(axis=1)
        assert column[top - 1: top + 2].any()
        assert not column[top - 12: top - 4].any()
        row = (page[top, :] < 80).all(axis=1)
        dark = np.flatnonzero(row[LAYOUT.grid_left:LAYOUT.trace_left]) + LAYOUT.grid_left
        assert dark.max() - dark.min() == pytest.approx(5 * mm, abs=3)  # 200 ms


def test_twelve_labelled_panels_and_a_lead_ii_rhythm_strip():
    panels = LAYOUT.panels
    assert len(panels) == 13
    assert {p.lead for p in panels[:12]} == set(STANDARD_12)
    assert panels[-1].lead == Lead.II and panels[-1].t1 - panels[-1].t0 == 10
    assert [p.lead for p in panels[:4]] == [Lead.I, Lead.AVR, Lead.V1, Lead.V4]
    svg = render_svg(synthetic_ecg(72))
    labels = re.findall(r'<text class="lead-label"[^>]*>([^<]+)</text>', svg)
    assert sorted(labels[:12]) == sorted(str(x) for x in STANDARD_12)
    assert labels[12] == "II"
    assert len(re.findall(r'<polyline class="trace"', svg)) == 13
    assert 'data-px-per-mm="12"' in svg and 'class="grid-major"' in svg


def test_svg_grid_has_the_same_pitch_as_the_png():
    svg = render_svg(spike_record())
    major = re.search(r'class="grid-major" d="([^"]+)"', svg).group(1)
    xs = sorted({int(x) for x in re.findall(r"M(\d+) \d+V", major)})
    assert set(np.diff(xs)) == {5 * LAYOUT.px_per_mm}


def test_header_shows_patient_measurements_and_critical_reason():
    rec = synthetic_ecg(200)
    svg = render_svg(rec, measure(rec), PageInfo(patient_name="王小东", patient_id="P1",
                                                 critical_reason="heart rate 200 bpm ≥ 180"))
    assert "王小东" in svg and "HR 200 bpm" in svg and "QTc Bazett" in svg
    assert "QTc Fridericia" in svg and "CRITICAL: heart rate 200 bpm" in svg
    assert "25 mm/s" in svg and "10 mm/mV" in svg


def test_two_lead_holter_record_renders_with_gaps_marked(testdata):
    rec = read_files(files_for_path(testdata / "ecg/wfdb/mitdb_100/100.hea"))[0].record
    png = render_png(rec)
    img = Image.open(io.BytesIO(png))
    assert img.size == (LAYOUT.width, LAYOUT.height)
    assert render_svg(rec).count("not recorded") == 0  # SVG omits absent traces
    assert render_svg(rec).count('class="trace"') == 3  # II, V5 and the rhythm strip
