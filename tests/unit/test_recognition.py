"""Mutual recognition (互认): catalogue matching, validity window, QC at exam and query time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from hub.domain.recognition import (
    CatalogueItem,
    QcPeriod,
    ResultRef,
    assess,
    match_item,
    qc_valid,
    repeats_avoided,
)

T0 = datetime(2026, 6, 1, 8, 0, tzinfo=UTC)
CT_HEAD = CatalogueItem("CT-HEAD", "头颅CT平扫", "医共体HR", 180, "imaging", "CT", "HEAD")
DR_CHEST = CatalogueItem("DR-CHEST", "胸部DR", "医共体HR", 90, "imaging", "DX", "CHEST")
LAB = CatalogueItem("LAB-CHEM", "生化", "医共体HR", 7, "lab", service_code="CHEM")
CAT = [CT_HEAD, DR_CHEST, LAB]
QC = [QcPeriod("BR01", T0 - timedelta(days=365), T0 + timedelta(days=365)),
      QcPeriod("BR02", T0 - timedelta(days=365), T0 + timedelta(days=10))]
HEAD_CT = ResultRef("BR01", "imaging", T0, "CT", "HEAD")


def test_result_inside_window_with_valid_qc_is_recognised():
    r = assess(HEAD_CT, match_item(HEAD_CT, CAT), QC, T0 + timedelta(days=30))
    assert r.recognised and r.item == CT_HEAD
    assert r.valid_until == T0 + timedelta(days=180)


def test_result_outside_window_is_not_recognised():
    r = assess(HEAD_CT, CT_HEAD, QC, T0 + timedelta(days=180))
    assert not r.recognised and "validity" in r.reason


def test_lapsed_qc_at_query_time_is_not_recognised():
    ref = ResultRef("BR02", "imaging", T0, "CT", "HEAD")
    assert assess(ref, CT_HEAD, QC, T0 + timedelta(days=5)).recognised
    r = assess(ref, CT_HEAD, QC, T0 + timedelta(days=11))
    assert not r.recognised and "lapsed" in r.reason


def test_no_qc_when_examined_is_not_recognised():
    ref = ResultRef("BR01", "imaging", T0 - timedelta(days=400), "CT", "HEAD")
    big = CatalogueItem("CT-HEAD", "x", "s", 1000, "imaging", "CT", "HEAD")
    assert "when examined" in assess(ref, big, QC, T0).reason


def test_uncatalogued_inactive_and_not_final():
    ref = ResultRef("BR01", "imaging", T0, "MR", "KNEE")
    assert match_item(ref, CAT) is None
    assert not assess(ref, None, QC, T0).recognised
    inactive = CatalogueItem("CT-HEAD", "x", "s", 180, "imaging", "CT", "HEAD", active=False)
    assert not assess(HEAD_CT, inactive, QC, T0).recognised
    draft = ResultRef("BR01", "imaging", T0, "CT", "HEAD", is_final=False)
    assert not assess(draft, CT_HEAD, QC, T0).recognised


@pytest.mark.parametrize("modality", ["DX", "CR", "DR", "dx"])
def test_radiography_spellings_match_one_item(modality):
    assert match_item(ResultRef("BR01", "imaging", T0, modality, "chest"), CAT) == DR_CHEST


def test_lab_matches_by_service_code():
    assert match_item(ResultRef("LEAD", "lab", T0, service_code="chem"), CAT) == LAB
    assert match_item(ResultRef("LEAD", "lab", T0, service_code="CBC"), CAT) is None


def test_question_before_exam_is_not_recognised():
    assert not assess(HEAD_CT, CT_HEAD, QC, T0 - timedelta(minutes=1)).recognised


def test_qc_period_end_is_exclusive():
    assert qc_valid("BR02", T0 + timedelta(days=10) - timedelta(seconds=1), QC)
    assert not qc_valid("BR02", T0 + timedelta(days=10), QC)


def test_invalid_validity_is_refused_at_construction():
    with pytest.raises(ValueError):
        CatalogueItem("X", "x", "s", 0, "imaging")


def test_repeats_avoided_never_negative():
    assert repeats_avoided(5, 2) == 3
    assert repeats_avoided(1, 4) == 0
