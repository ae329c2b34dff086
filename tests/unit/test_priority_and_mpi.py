from datetime import UTC, date, datetime, timedelta

import pytest

from hub.domain.access import Role, Viewer, can_see, worklist_scope
from hub.domain.mpi import Demographics, MatchKind, match, national_id_is_valid
from hub.domain.priority import Specialty, specialty_for
from hub.domain.turnaround import due_time
from hub.domain.worklist import ItemKind

RULES = {"stat": 30, "urgent": 120, "routine": 1440}
T0 = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)


@pytest.mark.parametrize(("priority", "minutes"), [("stat", 30), ("urgent", 120),
                                                   ("routine", 1440)])
def test_due_time_comes_from_turnaround_table(priority, minutes):
    assert due_time(T0, priority, "imaging", RULES) == T0 + timedelta(minutes=minutes)


def test_stat_ecg_is_due_within_fifteen_minutes():
    table = {**RULES, "stat:ecg": 15}
    assert due_time(T0, "stat", "ecg", table) == T0 + timedelta(minutes=15)
    assert due_time(T0, "stat", "imaging", table) == T0 + timedelta(minutes=30)


@pytest.mark.parametrize(("kind", "modality", "expected"), [
    (ItemKind.IMAGING, "CT", Specialty.RADIOLOGY),
    (ItemKind.IMAGING, "ECG", Specialty.CARDIOLOGY),
    (ItemKind.ECG, None, Specialty.CARDIOLOGY),
    (ItemKind.LAB, None, Specialty.LABORATORY),
    (ItemKind.IMAGING, "XYZ", Specialty.RADIOLOGY),
])
def test_specialty_by_kind_and_modality(kind, modality, expected):
    assert specialty_for(kind, modality, {"CT": "radiology", "ECG": "cardiology"}) == expected


def test_national_id_checksum():
    assert national_id_is_valid("11010519491231002X")
    assert not national_id_is_valid("110105194912310021")
    assert not national_id_is_valid("1101051949123100")


def test_same_national_id_is_definite_even_with_other_names():
    a = Demographics("王小东", national_id="11010519491231002X")
    b = Demographics("王晓东", national_id="11010519491231002X")
    assert match(a, b) == MatchKind.DEFINITE


def test_different_national_ids_never_match():
    a = Demographics("王小东", date(1965, 3, 12), "M", national_id="11010519491231002X")
    b = Demographics("王小东", date(1965, 3, 12), "M", national_id="110105194912310011")
    assert match(a, b) == MatchKind.NONE


def test_name_birth_sex_is_only_a_suggestion():
    a = Demographics("Wang^XiaoDong", date(1965, 3, 12), "M")
    b = Demographics("wang xiaodong", date(1965, 3, 12), "M")
    assert match(a, b) == MatchKind.SUGGESTED
    assert match(a, Demographics("Wang^XiaoDong", date(1965, 3, 13), "M")) == MatchKind.NONE


def test_branch_user_sees_only_own_institution():
    tech = Viewer(1, Role.TECHNICIAN, "BR01", is_lead=False)
    assert can_see(tech, "BR01", Specialty.RADIOLOGY)
    assert not can_see(tech, "BR02", Specialty.RADIOLOGY)


def test_lead_reader_sees_own_specialty_everywhere():
    cardio = Viewer(2, Role.CARDIOLOGIST, "LEAD", is_lead=True)
    assert worklist_scope(cardio).institution is None
    assert can_see(cardio, "BR02", Specialty.CARDIOLOGY)
    assert not can_see(cardio, "BR02", Specialty.RADIOLOGY)
