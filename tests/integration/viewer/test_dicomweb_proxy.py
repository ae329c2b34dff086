"""The hub's DICOMweb proxy on a real Orthanc: auth, scope, audit before proxying, exact bytes."""

from __future__ import annotations

import json

import pytest
import requests
from sqlalchemy import select

from hub.db.models import AuditEntry
from hub.db.session import session_scope
from hub.demo import synthetic_ct
from hub.demo.run import send_datasets
from tests.helpers import wait_for

pytestmark = pytest.mark.integration

FRAME_ACCEPT = "multipart/related; type=application/octet-stream; transfer-syntax=*"
DICOM_ACCEPT = 'multipart/related; type="application/dicom"; transfer-syntax=*'


def parts(content_type: str, body: bytes) -> list[bytes]:
    """Payloads of a multipart/related body (PS3.18 §8.7.1), without their part headers."""
    boundary = next(p.split("=", 1)[1].strip('"') for p in content_type.split(";")
                    if p.strip().startswith("boundary="))
    out = []
    for chunk in body.split(b"--" + boundary.encode())[1:]:
        if chunk.startswith(b"--"):
            break
        _headers, _, payload = chunk.partition(b"\r\n\r\n")
        out.append(payload.removesuffix(b"\r\n"))
    return out


@pytest.fixture
def study(hub_server, orthanc):
    """A small BR01 CT, on the worklist and ready."""
    datasets = synthetic_ct(4, 32, patient_id="BR01-DW-1")
    assert send_datasets(datasets, orthanc.config.dicom_port, orthanc.config.aet, "BR01-CT") == 4
    headers = hub_server.headers("admin")

    def item():
        rows = requests.get(hub_server.url + "/api/worklist?kind=imaging", headers=headers,
                            timeout=10).json()
        return next((r for r in rows if r["patient"]["local_id"] == "BR01-DW-1"
                     and r["status"] == "ready"), None)

    found = wait_for(item, timeout=60, what="the study on the worklist")
    return datasets, found


def _get(hub, path: str, username: str | None = "dr.li", **headers) -> requests.Response:
    if username:
        headers.update(hub.headers(username))
    return requests.get(hub.url + "/api/dicom-web" + path, headers=headers, timeout=30)


def _orthanc(orthanc, path: str, **headers) -> requests.Response:
    return requests.get(orthanc.config.url + "/dicom-web" + path, headers=headers, timeout=30,
                        auth=(orthanc.config.user, orthanc.config.password))


def _audit(db_url: str, action: str) -> list[AuditEntry]:
    with session_scope(db_url) as s:
        return list(s.scalars(select(AuditEntry).where(AuditEntry.action == action)))


def test_no_token_is_401(hub_server, study):
    datasets, _ = study
    uid = datasets[0].StudyInstanceUID
    for path in ("/studies", f"/studies/{uid}/series", f"/studies/{uid}/metadata"):
        r = _get(hub_server, path, username=None)
        assert r.status_code == 401, path
        r = _get(hub_server, path, username=None, Authorization="Bearer nonsense")
        assert r.status_code == 401, path


def test_another_branchs_study_is_not_found_and_not_fetched(hub_server, study):
    datasets, _ = study
    uid = datasets[0].StudyInstanceUID
    before = len(_audit(hub_server.db_url, "dicomweb.metadata"))
    r = _get(hub_server, f"/studies/{uid}/metadata", "tech.br02")
    assert r.status_code == 404
    assert len(_audit(hub_server.db_url, "dicomweb.metadata")) == before
    # The branch's own technician and the lead radiologists may read it.
    assert _get(hub_server, f"/studies/{uid}/series", "tech.br01").status_code == 200
    assert _get(hub_server, f"/studies/{uid}/series", "dr.li").status_code == 200
    # A cardiologist does not read CT.
    assert _get(hub_server, f"/studies/{uid}/series", "dr.chen").status_code == 404
    assert _get(hub_server, "/studies/1.2.3.4.5/series", "dr.li").status_code == 404


def test_only_dicomweb_resources_are_reachable(hub_server, study):
    datasets, _ = study
    uid = datasets[0].StudyInstanceUID
    for rest in ("../../system", "series/../../../patients", "series/1.2/instances/3/file",
                 "archive", "series/abc"):
        r = _get(hub_server, f"/studies/{uid}/{rest}")
        assert r.status_code == 404, rest


def test_search_lists_only_studies_in_scope(hub_server, study):
    datasets, _ = study
    uid = datasets[0].StudyInstanceUID
    found = _get(hub_server, "/studies?PatientID=BR01-DW-1").json()
    assert [s["0020000D"]["Value"][0] for s in found] == [uid]
    assert _get(hub_server, "/studies?PatientID=BR01-DW-1", "tech.br02").json() == []


def test_access_is_audited_before_the_archive_answers(hub_server, study):
    datasets, item = study
    uid = datasets[0].StudyInstanceUID
    # Orthanc answers 404 for an unknown series; the access attempt is on record regardless.
    r = _get(hub_server, f"/studies/{uid}/series/1.2.3.999/metadata")
    assert r.status_code == 404
    rows = [a for a in _audit(hub_server.db_url, "dicomweb.metadata")
            if a.target == f"worklist_item:{item['id']}"]
    assert rows and rows[-1].username == "dr.li"
    assert rows[-1].detail["study_instance_uid"] == uid
    assert rows[-1].detail["resource"] == "series/metadata"
    s = datasets[0]
    frame = f"/studies/{uid}/series/{s.SeriesInstanceUID}/instances/{s.SOPInstanceUID}/frames/1"
    assert _get(hub_server, frame, Accept=FRAME_ACCEPT).status_code == 200
    retrieved = [a for a in _audit(hub_server.db_url, "dicomweb.retrieve")
                 if a.target == f"worklist_item:{item['id']}"]
    assert len(retrieved) == 1 and retrieved[0].detail["resource"] == "series/instances/frames"
    # Later frames of the same study by the same reader are covered by that row.
    _get(hub_server, frame, Accept=FRAME_ACCEPT)
    assert len([a for a in _audit(hub_server.db_url, "dicomweb.retrieve")
                if a.target == f"worklist_item:{item['id']}"]) == 1


def test_pixels_and_metadata_are_orthancs_bytes(hub_server, orthanc, orthanc_client, study):
    datasets, _ = study
    s = datasets[1]
    base = f"/studies/{s.StudyInstanceUID}/series/{s.SeriesInstanceUID}"
    # Frame: the multipart boundary is random per response, the payload is not.
    path = f"{base}/instances/{s.SOPInstanceUID}/frames/1"
    ours = _get(hub_server, path, Accept=FRAME_ACCEPT)
    theirs = _orthanc(orthanc, path, Accept=FRAME_ACCEPT)
    assert ours.status_code == theirs.status_code == 200
    assert ours.headers["content-type"].split("boundary=")[0] == \
        theirs.headers["content-type"].split("boundary=")[0]
    assert parts(ours.headers["content-type"], ours.content) == \
        parts(theirs.headers["content-type"], theirs.content)
    assert parts(ours.headers["content-type"], ours.content)[0] == s.PixelData
    # Whole instance: the part is the very file Orthanc stores.
    path = f"{base}/instances/{s.SOPInstanceUID}"
    ours = _get(hub_server, path, Accept=DICOM_ACCEPT)
    found = orthanc_client._request("POST", "/tools/lookup", data=s.SOPInstanceUID).json()
    stored = orthanc_client.get_bytes(f"/instances/{found[0]['ID']}/file")
    assert parts(ours.headers["content-type"], ours.content) == [stored]
    # Metadata: identical except that the archive's URLs now point at the proxy.
    ours = _get(hub_server, f"{base}/metadata")
    theirs = _orthanc(orthanc, f"{base}/metadata")
    expected = theirs.content.replace((orthanc.config.url + "/dicom-web").encode(),
                                      (hub_server.url + "/api/dicom-web").encode())
    assert ours.content == expected
    assert orthanc.config.url.encode() not in ours.content
    assert len(json.loads(ours.content)) == 4


def test_a_ticket_opens_the_event_stream_and_is_no_bearer_token(hub_server, study, orthanc):
    headers = hub_server.headers("dr.li")
    r = requests.post(hub_server.url + "/api/events/ticket", headers=headers, timeout=10)
    assert r.status_code == 200
    ticket = r.json()["ticket"]
    assert requests.get(hub_server.url + "/api/worklist", timeout=10,
                        headers={"Authorization": f"Bearer {ticket}"}).status_code == 401
    assert requests.get(hub_server.url + "/api/events?ticket=forged", timeout=10,
                        stream=True).status_code == 401
    assert requests.get(hub_server.url + "/api/events", timeout=10).status_code == 401
    with requests.get(hub_server.url + f"/api/events?ticket={ticket}", stream=True,
                      timeout=60) as stream:
        assert stream.status_code == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
        lines = stream.iter_lines(decode_unicode=True)
        assert any(line == "event: hello" for line in _take(lines, 4))
        send_datasets(synthetic_ct(2, 16, patient_id="BR01-DW-2"), orthanc.config.dicom_port,
                      orthanc.config.aet, "BR01-CT")
        assert any(line == "event: worklist" for line in _take(lines, 40))


def _take(lines, n: int) -> list[str]:
    out = []
    for line in lines:
        out.append(line)
        if len(out) >= n or line.startswith("event: worklist"):
            break
    return out


def test_viewer_is_served_without_login_and_cannot_leave_its_folder(hub_server):
    r = requests.get(hub_server.url + "/", timeout=10)
    assert r.status_code in (200, 503)
    assert "text/html" in r.headers["content-type"]
    if r.status_code == 200:
        assert "default-src 'self'" in r.headers["content-security-policy"]
    for path in ("/assets/../routes.py", "/assets/%2e%2e/routes.py", "/assets/nope.js"):
        assert requests.get(hub_server.url + path, timeout=10).status_code == 404, path
