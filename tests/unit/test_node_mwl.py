"""Modality worklist keys (dicom_node/mwl.py): parsing, matching, projection, charsets."""

from __future__ import annotations

from datetime import date
from zoneinfo import ZoneInfo

import pytest
from pydicom.dataset import Dataset

from dicom_node.mwl import (
    InvalidQuery,
    build_response,
    choose_charset,
    matches,
    parse_date_range,
    parse_query,
)

TZ = ZoneInfo("Asia/Shanghai")
ENTRY = {"accession_number": "YG00000001", "patient_name": "Wang^XiaoDong=王^小东",
         "patient_id": "BR01-000123", "patient_birth_date": "19650312", "patient_sex": "M",
         "study_instance_uid": "2.25.1", "requested_procedure_id": "YG00000001",
         "requested_procedure_description": "胸部CT平扫", "priority": "stat",
         "reason": "咳嗽", "referring_physician": "刘^医生", "modality": "CT",
         "scheduled_at": "2026-11-26T01:30:00+00:00", "scheduled_station_aet": "BR01-CT",
         "sps_id": "YG00000001", "placer_order_number": "P1"}


def query(**top) -> Dataset:
    ds = Dataset()
    sps = top.pop("sps", None)
    for k, v in top.items():
        setattr(ds, k, v)
    item = Dataset()
    for k, v in (sps or {}).items():
        setattr(item, k, v)
    ds.ScheduledProcedureStepSequence = [item]
    return ds


@pytest.mark.parametrize(("value", "expected"), [
    ("20261126", (date(2026, 11, 26), date(2026, 11, 26))),
    ("20261120-20261130", (date(2026, 11, 20), date(2026, 11, 30))),
    ("-20261130", (None, date(2026, 11, 30))), ("20261120-", (date(2026, 11, 20), None)),
    ("", (None, None))])
def test_date_ranges(value, expected):
    assert parse_date_range(value) == expected


@pytest.mark.parametrize("bad", ["2026-11-26", "20261301", "20261130-20261120", "-", "abc",
                                 "20261120-20261121-20261122"])
def test_malformed_dates_are_refused(bad):
    with pytest.raises(InvalidQuery):
        parse_date_range(bad)


def test_two_sps_items_are_refused():
    ds = query()
    ds.ScheduledProcedureStepSequence.append(Dataset())
    with pytest.raises(InvalidQuery):
        parse_query(ds)


def test_a_sequence_where_a_value_belongs_is_refused():
    ds = query()
    ds.PatientID = None
    ds.add_new(0x00100020, "SQ", [Dataset()])
    with pytest.raises(InvalidQuery):
        parse_query(ds)


@pytest.mark.parametrize(("keys", "hit"), [
    ({"PatientName": "王*"}, True), ({"PatientName": "wang*"}, True),
    ({"PatientName": "WANG^XIAODONG"}, True), ({"PatientName": "张*"}, False),
    ({"PatientName": "W?ng*"}, True), ({"PatientID": "BR01-000123"}, True),
    ({"PatientID": "BR01-*"}, True), ({"PatientID": "BR02*"}, False),
    ({"AccessionNumber": "YG00000001"}, True), ({"AccessionNumber": "YG2"}, False),
    ({"sps": {"Modality": "CT"}}, True), ({"sps": {"Modality": "US"}}, False),
    ({"sps": {"ScheduledStationAETitle": "BR01-CT"}}, True),
    ({"sps": {"ScheduledStationAETitle": "BR01-DR"}}, False),
    # 01:30 UTC is 09:30 in Shanghai, on the same day.
    ({"sps": {"ScheduledProcedureStepStartDate": "20261126"}}, True),
    ({"sps": {"ScheduledProcedureStepStartDate": "20261127-"}}, False),
    ({"StudyInstanceUID": "2.25.9\\2.25.1"}, True)])
def test_matching(keys, hit):
    assert matches(parse_query(query(**keys)), ENTRY, TZ) is hit


def test_step_without_station_is_offered_to_every_station():
    q = parse_query(query(sps={"ScheduledStationAETitle": "ANY-CT"}))
    assert matches(q, {**ENTRY, "scheduled_station_aet": ""}, TZ)


def test_response_has_the_asked_keys_in_local_time():
    q = parse_query(query(PatientName="", AccessionNumber="", OtherPatientIDs="",
                          sps={"Modality": "", "ScheduledProcedureStepStartDate": "",
                               "ScheduledProcedureStepStartTime": ""}))
    ds = build_response(q, ENTRY, "GB18030", TZ)
    assert str(ds.PatientName) == ENTRY["patient_name"] and ds.AccessionNumber == "YG00000001"
    assert "PatientID" not in ds and ds.OtherPatientIDs in ("", None)
    sps = ds.ScheduledProcedureStepSequence[0]
    assert sps.ScheduledProcedureStepStartDate == "20261126"
    assert sps.ScheduledProcedureStepStartTime == "093000"
    assert "ScheduledStationAETitle" not in sps


def test_empty_sps_returns_the_whole_step():
    ds = Dataset()
    ds.ScheduledProcedureStepSequence = []
    out = build_response(parse_query(ds), ENTRY, "ISO_IR 192", TZ)
    assert out.ScheduledProcedureStepSequence[0].ScheduledProcedureStepStatus == "SCHEDULED"


@pytest.mark.parametrize(("requested", "chosen"), [
    ("GB18030", "GB18030"), ("ISO_IR 192", "ISO_IR 192"), ("", "ISO_IR 192"),
    ("ISO_IR 100", "ISO_IR 192"), ("ISO 2022 IR 87", "ISO_IR 192")])
def test_charset_choice(requested, chosen):
    assert choose_charset(requested, "ISO_IR 192", [ENTRY]) == chosen
