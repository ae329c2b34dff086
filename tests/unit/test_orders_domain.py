"""Order rules (issue 8): the transition table row by row, order control, matching, regions."""

from __future__ import annotations

from datetime import date

import pytest

from hub.domain.errors import Conflict, InvalidInput, InvalidTransition, NotFound
from hub.domain.orders import (
    ORDER_TRANSITIONS,
    BadOrder,
    DuplicateOrder,
    MatchKind,
    OrderControl,
    OrderEvent,
    OrderFacts,
    OrderLocked,
    OrderStatus,
    StudyFacts,
    UnknownOrder,
    accession_for,
    body_region,
    check_accession,
    event_for_control,
    kind_for_modality,
    match_study,
    modality_for,
    next_order_state,
)

S, E = OrderStatus, OrderEvent


@pytest.mark.parametrize(("state", "event", "after"), sorted(
    ((s, e, a) for (s, e), a in ORDER_TRANSITIONS.items()), key=str))
def test_every_allowed_transition(state, event, after):
    assert next_order_state(state, event) == after


@pytest.mark.parametrize(("state", "event"), [
    (s, e) for s in OrderStatus for e in OrderEvent if (s, e) not in ORDER_TRANSITIONS])
def test_every_other_transition_is_refused(state, event):
    with pytest.raises(OrderLocked) as info:
        next_order_state(state, event)
    assert isinstance(info.value, InvalidTransition) and info.value.what == "order_control"


class TestInReading:
    def test_a_cancel_for_an_order_already_read_is_refused(self):
        with pytest.raises(InvalidTransition):
            next_order_state(S.IN_READING, E.CANCEL)

    def test_a_change_once_reading_started_is_refused(self):
        with pytest.raises(InvalidTransition):
            next_order_state(S.IN_READING, E.CHANGE)


class TestScheduled:
    def test_cancel(self):
        assert next_order_state(S.SCHEDULED, E.CANCEL) == S.CANCELLED

    def test_study_received(self):
        assert next_order_state(S.SCHEDULED, E.STUDY_RECEIVED) == S.RECEIVED


class TestFinal:
    def test_cancel_refused(self):
        with pytest.raises(InvalidTransition):
            next_order_state(S.FINAL, E.CANCEL)

    def test_amended_report_finalises_again(self):
        assert next_order_state(S.FINAL, E.FINALISED) == S.FINAL


@pytest.mark.parametrize(("code", "control"), [
    ("NW", OrderControl.NEW), ("ca", OrderControl.CANCEL), ("OC", OrderControl.CANCEL),
    ("XO", OrderControl.CHANGE), ("DC", OrderControl.DISCONTINUE),
    ("OD", OrderControl.DISCONTINUE), ("", OrderControl.NEW)])
def test_order_control_codes(code, control):
    assert OrderControl.from_hl7(code) == control


def test_unsupported_order_control_is_bad_input():
    with pytest.raises(BadOrder) as info:
        OrderControl.from_hl7("SC")
    assert isinstance(info.value, InvalidInput) and info.value.what == "order_control"


def test_new_is_not_an_event():
    with pytest.raises(InvalidInput):
        event_for_control(OrderControl.NEW)
    assert event_for_control(OrderControl.CANCEL) == E.CANCEL


def test_refusals_keep_their_http_families():
    assert isinstance(DuplicateOrder("x", "placer_order_number"), Conflict)
    assert isinstance(UnknownOrder("x", "placer_order_number"), NotFound)


def test_hub_assigned_accession_fits_dicom_sh():
    assert accession_for(42) == "YG00000042"
    assert len(accession_for(99_999_999)) <= 16


@pytest.mark.parametrize("bad", ["A" * 17, "AB\\C", "AB\x01"])
def test_bad_his_accession_is_refused(bad):
    with pytest.raises(BadOrder):
        check_accession(bad)


@pytest.mark.parametrize(("section", "modality"), [
    ("CT", "CT"), ("rad", "DX"), ("US", "US"), ("EC", "ECG"), ("CH", None), ("", None)])
def test_section_to_modality(section, modality):
    assert modality_for(section) == modality


def test_ecg_modality_is_an_ecg_order():
    assert kind_for_modality("ECG") == "ecg" and kind_for_modality("CT") == "imaging"


@pytest.mark.parametrize(("texts", "region"), [
    (("CT-HEAD", "头颅CT平扫"), "HEAD"), ((None, "胸部CT平扫"), "CHEST"),
    (("US-ABD", ""), "ABDOMEN"), (("XYZ", "其他"), None)])
def test_body_region(texts, region):
    assert body_region(*texts) == region


def _order(oid, acc="ACC1", patient=7, local="L7", modality="CT", day=date(2026, 11, 26),
           status=S.SCHEDULED):
    return OrderFacts(oid, acc, "BR01", patient, local, modality, day, status)


class TestMatching:
    def test_accession_decides(self):
        study = StudyFacts("ACC2", "BR01", None, None, "CT", None)
        m = match_study(study, [_order(1), _order(2, acc="ACC2")])
        assert m.kind == MatchKind.ACCESSION and m.order_id == 2

    def test_cancelled_orders_never_match(self):
        study = StudyFacts("ACC1", "BR01", 7, "L7", "CT", date(2026, 11, 26))
        m = match_study(study, [_order(1, status=S.CANCELLED)])
        assert m.kind == MatchKind.NONE

    def test_patient_modality_date_is_only_a_suggestion(self):
        study = StudyFacts(None, "BR01", 7, "L7", "CT", date(2026, 11, 27))
        m = match_study(study, [_order(1), _order(2, modality="US"),
                                _order(3, day=date(2026, 11, 1))])
        assert m.kind == MatchKind.SUGGESTED and m.suggestions == (1,)

    def test_local_id_at_another_branch_is_not_the_same_patient(self):
        study = StudyFacts(None, "BR02", None, "L7", "CT", date(2026, 11, 26))
        assert match_study(study, [_order(1)]).kind == MatchKind.NONE

    def test_an_unknown_accession_still_gets_suggestions(self):
        study = StudyFacts("NOPE", "BR01", 7, None, "CT", date(2026, 11, 26))
        assert match_study(study, [_order(1)]).suggestions == (1,)
