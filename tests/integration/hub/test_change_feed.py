"""Studies C-STOREd into a real Orthanc become exactly one worklist item each."""

from __future__ import annotations

import copy

import pytest
from pydicom.uid import generate_uid
from sqlalchemy import func, select

from hub.db.models import Patient, WorklistItem
from hub.db.session import session_scope
from hub.demo import synthetic_ct
from hub.demo.run import send_datasets
from hub.intake import IntakeRules
from hub.services import studies
from hub.workers.tasks import follow_until_done
from tests.conftest import seed_demo
from tests.helpers import read_study, wait_for

pytestmark = pytest.mark.integration
RULES = IntakeRules({"stat": 30, "urgent": 120, "routine": 1440},
                    {"CT": "radiology", "MR": "radiology"})


def follow(db_url, client):
    follow_until_done(db_url, client, RULES, budget_seconds=10)


def items(db_url):
    with session_scope(db_url) as s:
        return list(s.scalars(select(WorklistItem).order_by(WorklistItem.id)))


def item_for(db_url, client, study_uid, status="ready"):
    def check():
        follow(db_url, client)
        found = [i for i in items(db_url) if i.natural_key == study_uid]
        return found[0] if found and found[0].status == status else None
    return wait_for(check, timeout=30, what=f"item of {study_uid} to be {status}")


@pytest.fixture
def community(db_url):
    seed_demo(db_url)
    return db_url


def test_multi_series_study_becomes_one_item(community, orthanc, orthanc_client, testdata):
    study = read_study(testdata / "dicom/series/study_98892001_ct")
    assert send_datasets(study, orthanc.config.dicom_port, "YIGONG", "BR01-CT") == len(study)
    uid = study[0].StudyInstanceUID
    item = item_for(community, orthanc_client, uid)
    assert (item.series_count, item.instance_count) == (2, 7)
    assert item.institution_code == "BR01"
    assert item.patient_name == "Doe Peter"
    assert item.patient_local_id == study[0].PatientID
    assert item.modality == "CT" and item.specialty == "radiology"
    # Following the feed again, or from scratch, never duplicates.
    follow(community, orthanc_client)
    with session_scope(community) as s:
        s.execute(studies.ChangeCursor.__table__.update().values(last_seq=0))
    follow(community, orthanc_client)
    assert [i.natural_key for i in items(community)].count(uid) == 1


def test_gb18030_name_shows_chinese(community, orthanc, orthanc_client, testdata):
    import pydicom

    ds = pydicom.dcmread(testdata / "dicom/charset/chrX2_GB18030.dcm")
    send_datasets([ds], orthanc.config.dicom_port, "YIGONG", "BR01-CT")
    item = item_for(community, orthanc_client, ds.StudyInstanceUID)
    assert item.patient_name == "王小东"
    assert item.details["dicom_patient_name"] == "Wang^XiaoDong=王^小东"


@pytest.mark.parametrize("charset", ["GBK", "ISO_IR 192", "\\ISO 2022 IR 58"])
def test_other_chinese_charsets_show_chinese(community, orthanc, orthanc_client, charset):
    ds = synthetic_ct(slices=1, size=16, charset=charset)[0]
    if "IR 58" in charset:
        raw = b"Wang^XiaoDong=\x1b$)A\xcd\xf5^\x1b$)A\xd0\xa1\xb6\xab"
        ds["PatientName"].value = raw
    send_datasets([ds], orthanc.config.dicom_port, "YIGONG", "BR01-CT")
    assert item_for(community, orthanc_client, ds.StudyInstanceUID).patient_name == "王小东"


def test_unknown_ae_and_missing_patient_id_are_flagged_not_dropped(
        community, orthanc, orthanc_client):
    ds = synthetic_ct(slices=2, size=16)
    for d in ds:
        del d.PatientID
    send_datasets(ds, orthanc.config.dicom_port, "YIGONG", "STRANGER")
    item = item_for(community, orthanc_client, ds[0].StudyInstanceUID)
    assert any("STRANGER" in f for f in item.flags)
    assert "missing patient ID" in item.flags
    assert item.institution_code == "UNKNOWN"


def test_manifest_holds_item_until_every_instance_arrived(community, orthanc, orthanc_client):
    ds = synthetic_ct(slices=4, size=16)
    send_datasets(ds[:3], orthanc.config.dicom_port, "YIGONG", "BR01-CT")
    uid = ds[0].StudyInstanceUID
    series = {ds[0].SeriesInstanceUID: [d.SOPInstanceUID for d in ds]}
    with session_scope(community) as s:
        out = studies.record_manifest(s, orthanc_client, RULES, uid, "BR01", "BR01-CT", series)
    assert out.missing == 1
    # Stable in Orthanc, but the manifest says one more: still receiving.
    wait_for(lambda: orthanc_client.get_json(f"/studies/{orthanc_client.lookup_study(uid)}")
             ["IsStable"], what="Orthanc stable study")
    follow(community, orthanc_client)
    assert [i.status for i in items(community) if i.natural_key == uid] == ["receiving"]
    send_datasets(ds[3:], orthanc.config.dicom_port, "YIGONG", "BR01-CT")
    item = item_for(community, orthanc_client, uid)
    assert item.instance_count == 4 and item.details["manifest_missing"] == 0


def test_late_instance_reopens_ready_item(community, orthanc, orthanc_client):
    ds = synthetic_ct(slices=3, size=16)
    send_datasets(ds[:2], orthanc.config.dicom_port, "YIGONG", "BR01-CT")
    uid = ds[0].StudyInstanceUID
    item_for(community, orthanc_client, uid)
    send_datasets(ds[2:], orthanc.config.dicom_port, "YIGONG", "BR01-CT")
    follow(community, orthanc_client)
    assert [i.status for i in items(community) if i.natural_key == uid] == ["receiving"]
    assert item_for(community, orthanc_client, uid).instance_count == 3


def test_same_patient_at_two_branches_is_one_patient_by_national_id(community, orthanc_client):
    from hub.services.patients import PatientRef, resolve_patient

    with session_scope(community) as s:
        a = resolve_patient(s, "BR01", PatientRef("P1", "王小东", national_id="11010519491231002X"))
        b = resolve_patient(s, "BR02", PatientRef("Q9", "王小东", national_id="11010519491231002x"))
        assert a.id == b.id
        assert s.scalar(select(func.count()).select_from(Patient)) == 1


def test_study_copy_under_new_uid_is_a_second_item(community, orthanc, orthanc_client):
    ds = synthetic_ct(slices=1, size=16)[0]
    other = copy.deepcopy(ds)
    other.StudyInstanceUID = generate_uid()
    other.SOPInstanceUID = other.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    send_datasets([ds, other], orthanc.config.dicom_port, "YIGONG", "BR01-CT")
    item_for(community, orthanc_client, ds.StudyInstanceUID)
    item_for(community, orthanc_client, other.StudyInstanceUID)
    assert len(items(community)) == 2


def test_study_that_cannot_be_described_is_flagged_and_the_feed_moves_on(
        community, orthanc, orthanc_client, monkeypatch):
    broken = synthetic_ct(slices=1, size=16, name="BROKEN^CASE", patient_id="BR01-BAD")
    fine = synthetic_ct(slices=1, size=16, patient_id="BR01-OK")
    real = studies.display_name

    def fails_for_broken(name):
        if "BROKEN" in name:
            raise ValueError("simulated undecodable header")
        return real(name)

    monkeypatch.setattr(studies, "display_name", fails_for_broken)
    send_datasets(broken + fine, orthanc.config.dicom_port, "YIGONG", "BR01-CT")
    ok = item_for(community, orthanc_client, fine[0].StudyInstanceUID)
    assert ok.patient_local_id == "BR01-OK"
    flagged = [i for i in items(community) if i.natural_key.startswith("orthanc:")]
    assert len(flagged) == 1
    assert "could not be described" in flagged[0].flags[0]
    assert "missing patient ID" in flagged[0].flags
    # Nothing half-written for the broken study under its real UID.
    assert broken[0].StudyInstanceUID not in [i.natural_key for i in items(community)]
