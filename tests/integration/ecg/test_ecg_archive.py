"""ECGs in the real Orthanc and a real database: archive round trip, worklist, feed, links."""

from __future__ import annotations

import io

import numpy as np
import pydicom
import pytest
from sqlalchemy import func, select

from ecg_ingest.dicom_writer import read_dicom_bytes, to_dicom_bytes
from ecg_ingest.readers import files_for_path, read_files
from ecg_ingest.record import PatientInfo
from ecg_ingest.synthetic import synthetic_ecg, to_wfdb_files
from hub import audit
from hub.clock import utcnow
from hub.db.models import WorklistItem
from hub.db.session import session_scope
from hub.domain.access import Scope
from hub.domain.priority import Priority
from hub.domain.worklist import ItemKind
from hub.intake import IntakeRules, NewItem, enqueue
from hub.services import ecg as svc
from hub.services.patients import PatientRef
from hub.services.users import upsert_institution
from hub.services.worklist import WorklistQuery, list_items

pytestmark = pytest.mark.integration
RULES = IntakeRules({"stat": 30, "urgent": 120, "routine": 1440}, {"ECG": "cardiology"})


@pytest.fixture
def community(db_url):
    with session_scope(db_url) as s:
        upsert_institution(s, audit.SYSTEM, "LEAD", "县人民医院", True, ["YIGONG"], [])
        upsert_institution(s, audit.SYSTEM, "BR01", "城关镇卫生院", False, ["BR01-ECG"], [])
    return db_url


def ingest(db_url, client, files, **ctx):
    with session_scope(db_url) as s:
        items = svc.ingest_files(s, client, RULES, files, svc.UploadContext(**ctx))
        return [(i.id, i.natural_key) for i in items]


def item(db_url, item_id) -> WorklistItem:
    with session_scope(db_url) as s:
        return s.get(WorklistItem, item_id)


@pytest.mark.parametrize("rel", ["wfdb/mitdb_100/100.hea", "wfdb/ptbdb_s0010_re/s0010_re.hea"])
def test_wfdb_to_dicom_in_orthanc_and_back_is_within_one_step(orthanc_client, testdata, rel):
    original = read_files(files_for_path(testdata / "ecg" / rel))[0].record
    stored = orthanc_client.upload(to_dicom_bytes(original))
    back = read_dicom_bytes(orthanc_client.get_bytes(f"/instances/{stored['ID']}/file"))
    assert back.leads == original.leads
    assert back.sampling_rate_hz == original.sampling_rate_hz
    assert back.n_samples == original.n_samples
    step_mv = np.array(original.resolution_uv)[:, None] / 1000.0
    assert (np.abs(back.signals_mv - original.signals_mv) <= step_mv).all()
    tags = orthanc_client.instance_tags(stored["ID"])
    assert tags["Modality"] == "ECG"


def test_ecg_at_200_bpm_is_critical_stat_and_first_in_the_cardiology_list(community,
                                                                        orthanc_client):
    # Routine work already waiting, some of it received earlier.
    with session_scope(community) as s:
        for k in range(3):
            enqueue(s, NewItem(kind=ItemKind.ECG, natural_key=f"1.2.3.{k}",
                               institution_code="BR01", patient=PatientRef(f"P{k}", "张三"),
                               ready=True, modality="ECG"), RULES)
    ingest(community, orthanc_client, to_wfdb_files(synthetic_ecg(72), "normal"),
           patient_id="N1", institution="BR01")
    [(fast_id, _)] = ingest(community, orthanc_client, to_wfdb_files(synthetic_ecg(200), "svt"),
                            patient_id="T1", patient_name="李四", institution="BR01")
    fast = item(community, fast_id)
    assert fast.priority == Priority.STAT
    assert fast.is_critical
    assert "heart rate 200 bpm" in fast.critical_reason
    assert fast.specialty == "cardiology" and fast.status == "ready"
    assert fast.details["measurements"]["heart_rate_bpm"] == pytest.approx(200, abs=1)
    with session_scope(community) as s:
        rows = list_items(s, WorklistQuery(kind="ecg"), Scope(None, None), utcnow())
        assert rows[0][0].id == fast_id
        everything = list_items(s, WorklistQuery(), Scope(None, None), utcnow())
        assert everything[0][0].id == fast_id


def test_details_hold_measurements_method_quality_and_archive_link(community, orthanc_client):
    [(item_id, sop)] = ingest(community, orthanc_client, to_wfdb_files(synthetic_ecg(72)),
                              patient_id="P9", institution="BR01")
    it = item(community, item_id)
    d = it.details
    assert d["measurements"]["qrs_ms"] and d["measurements"]["qtc_fridericia_ms"]
    assert "wfdb.xqrs (primary)" in d["method"]["qrs_detectors"]
    assert d["quality_flags"] == [] and d["ecg"]["converted_to_dicom"] is True
    assert d["ecg"]["units"] == "mV" and len(d["ecg"]["leads"]) == 12
    # The archive holds the converted object under the patient.
    tags = orthanc_client.instance_tags(it.orthanc_id)
    assert tags["SOPInstanceUID"] == sop == it.natural_key
    assert tags["PatientID"] == "P9"
    assert tags["SOPClassUID"] == "1.2.840.10008.5.1.4.1.1.9.1.1"


def test_resending_the_same_file_gives_the_same_item(community, orthanc_client):
    files = to_wfdb_files(synthetic_ecg(72))
    first = ingest(community, orthanc_client, files, patient_id="P9", institution="BR01")
    second = ingest(community, orthanc_client, files, patient_id="P9", institution="BR01")
    assert first == second
    with session_scope(community) as s:
        assert s.scalar(select(func.count()).select_from(WorklistItem)) == 1


def test_later_ecgs_link_to_the_patients_earlier_ones(community, orthanc_client):
    [(a, _)] = ingest(community, orthanc_client, to_wfdb_files(synthetic_ecg(60), "a"),
                      patient_id="P5", institution="BR01")
    [(b, _)] = ingest(community, orthanc_client, to_wfdb_files(synthetic_ecg(90), "b"),
                      patient_id="P5", institution="BR01")
    [(c, _)] = ingest(community, orthanc_client, to_wfdb_files(synthetic_ecg(80), "c"),
                      patient_id="OTHER", institution="BR01")
    assert item(community, a).details["prior_ecg_item_ids"] == []
    assert item(community, b).details["prior_ecg_item_ids"] == [a]
    assert item(community, c).details["prior_ecg_item_ids"] == []


def test_ecg_without_any_patient_is_listed_for_assignment(community, orthanc_client):
    [(item_id, _)] = ingest(community, orthanc_client, to_wfdb_files(synthetic_ecg(72)),
                            institution="BR01")
    it = item(community, item_id)
    assert "missing patient ID" in it.flags
    assert it.status == "ready"


def test_patient_data_in_the_file_wins_over_options(community, orthanc_client, testdata):
    files = files_for_path(testdata / "ecg/aecg/Example_aECG.xml")
    [(item_id, _)] = ingest(community, orthanc_client, files, patient_id="OTHER",
                            patient_name="别人", institution="BR01")
    it = item(community, item_id)
    assert it.patient_local_id == "SBJ-123"
    assert it.patient_name == "Clark"


def test_uploaded_dicom_is_archived_as_sent(community, orthanc_client, testdata):
    path = testdata / "ecg/dicom/waveform_ecg.dcm"
    [(item_id, sop)] = ingest(community, orthanc_client, files_for_path(path),
                              institution="BR01")
    it = item(community, item_id)
    assert orthanc_client.get_bytes(f"/instances/{it.orthanc_id}/file") == path.read_bytes()
    assert sop == pydicom.dcmread(path).SOPInstanceUID
    assert it.details["ecg"]["converted_to_dicom"] is False


def test_feed_instance_becomes_an_item_once(community, orthanc_client, testdata):
    data = (testdata / "ecg/dicom/waveform_ecg.dcm").read_bytes()
    inst = orthanc_client.upload(data)["ID"]
    with session_scope(community) as s:
        first = svc.ingest_from_orthanc_instance(s, orthanc_client, RULES, inst).id
    with session_scope(community) as s:
        again = svc.ingest_from_orthanc_instance(s, orthanc_client, RULES, inst)
        assert again.id == first
        assert again.patient_local_id == "642341"
        assert again.details["measurements"]["heart_rate_bpm"] == pytest.approx(61, abs=2)
        assert s.scalar(select(func.count()).select_from(WorklistItem)) == 1


def test_unreadable_feed_instance_is_listed_with_the_reason(community, orthanc_client, testdata):
    ds = pydicom.dcmread(testdata / "ecg/dicom/waveform_ecg.dcm")
    ds.WaveformSequence[0].WaveformSampleInterpretation = "MB"
    ds.SOPInstanceUID = pydicom.uid.generate_uid()
    buf = io.BytesIO()
    ds.save_as(buf)
    inst = orthanc_client.upload(buf.getvalue())["ID"]
    with session_scope(community) as s:
        it = svc.ingest_from_orthanc_instance(s, orthanc_client, RULES, inst)
        assert it.natural_key == ds.SOPInstanceUID
        assert any("unreadable ECG" in f and "MB" in f for f in it.flags)


def test_change_feed_hands_ecg_instances_to_the_ecg_service(community, orthanc_client):
    import time

    from hub.services.studies import follow_changes

    rec = synthetic_ecg(190).with_patient(PatientInfo("FEED1", "王五"))
    sop = read_dicom_bytes(to_dicom_bytes(rec)).sop_instance_uid
    orthanc_client.upload(to_dicom_bytes(rec))
    deadline = time.monotonic() + 30
    found = None
    while time.monotonic() < deadline and found is None:
        with session_scope(community) as s:
            follow_changes(s, orthanc_client, RULES)
            found = s.scalar(select(WorklistItem).where(WorklistItem.natural_key == sop))
            if found is not None:
                assert found.kind == "ecg" and found.is_critical
                assert found.patient_name == "王五"
        time.sleep(0.5)
    assert found is not None
