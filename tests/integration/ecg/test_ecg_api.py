"""POST /api/ecg, the samples and page routes, and `yigong ecg send` against a running hub."""

from __future__ import annotations

import io

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from ecg_ingest.readers import files_for_path
from ecg_ingest.synthetic import synthetic_ecg, to_wfdb_files
from hub.api.main import create_app
from tests.conftest import DEMO_PASSWORD, make_settings, seed_demo

pytestmark = pytest.mark.integration


@pytest.fixture
def api(tmp_path, sqlite_url, orthanc, orthanc_client):
    seed_demo(sqlite_url)
    app = create_app(make_settings(tmp_path, sqlite_url, orthanc))
    with TestClient(app) as client:
        yield client


def login(api, username):
    r = api.post("/api/auth/token", data={"username": username, "password": DEMO_PASSWORD})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def upload(api, headers, files: dict[str, bytes], **form):
    parts = [("file", (name, data, "application/octet-stream")) for name, data in files.items()]
    return api.post("/api/ecg", headers=headers, files=parts, data=form)


def test_branch_technician_uploads_a_wfdb_record(api, testdata):
    h = login(api, "tech.br01")
    r = upload(api, h, files_for_path(testdata / "ecg/wfdb/ptbdb_s0010_re/s0010_re.hea"),
               patient_id="BR01-77", patient_name="赵六")
    assert r.status_code == 201, r.text
    [body] = r.json()
    assert body["kind"] == "ecg" and body["institution"]["code"] == "BR01"
    assert body["patient"]["local_id"] == "BR01-77" and body["patient"]["name"] == "赵六"
    assert body["details"]["ecg"]["leads"][-3:] == ["X", "Y", "Z"]
    assert body["details"]["measurements"]["heart_rate_bpm"] == pytest.approx(82, abs=2)

    samples = api.get(f"/api/ecg/{body['id']}/samples", headers=h,
                      params={"start_s": 1, "seconds": 2}).json()
    assert samples["units"] == "mV" and samples["sampling_rate_hz"] == 1000
    assert samples["n_samples"] == 2000 and samples["total_samples"] == 38400
    assert len(samples["leads"]["II"]) == 2000

    png = api.get(f"/api/ecg/{body['id']}/page.png", headers=h)
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(png.content)).size == (3360, 2040)
    svg = api.get(f"/api/ecg/{body['id']}/page.svg", headers=h)
    assert svg.headers["content-type"].startswith("image/svg+xml")
    assert "赵六" in svg.text and 'class="lead-label"' in svg.text


def test_critical_ecg_is_first_on_the_cardiologists_list(api):
    tech = login(api, "tech.br01")
    for hr, pid in ((70, "A"), (200, "B"), (80, "C")):
        r = upload(api, tech, to_wfdb_files(synthetic_ecg(hr), f"r{hr}"), patient_id=pid)
        assert r.status_code == 201, r.text
    dr = login(api, "dr.chen")
    items = api.get("/api/worklist", headers=dr, params={"kind": "ecg"}).json()
    assert items[0]["patient"]["local_id"] == "B"
    assert items[0]["priority"] == "stat" and items[0]["is_critical"]
    assert "heart rate 200 bpm" in items[0]["critical_reason"]


@pytest.mark.parametrize(("change", "status", "words"), [
    ("scp", 415, "SCP-ECG"),
    ("truncated", 422, "holds"),
    ("missing", 422, "not supplied"),
    ("junk", 415, "unrecognised"),
    ("rate", 422, "outside"),
])
def test_bad_files_get_4xx_with_a_reason(api, testdata, change, status, words):
    h = login(api, "tech.br01")
    files = files_for_path(testdata / "ecg/wfdb/mitdb_100/100.hea")
    if change == "scp":
        files = files_for_path(testdata / "ecg/scp/test.scp")
    elif change == "truncated":
        files["100.dat"] = files["100.dat"][:1000]
    elif change == "missing":
        del files["100.dat"]
    elif change == "junk":
        files = {"photo.jpg": b"\xff\xd8\xff\xe0 not an ECG"}
    elif change == "rate":
        files["100.hea"] = files["100.hea"].replace(b"100 2 360", b"100 2 4000")
    r = upload(api, h, files)
    assert r.status_code == status, r.text
    assert words in r.json()["detail"]


def test_upload_without_a_file_is_422(api):
    r = api.post("/api/ecg", headers=login(api, "tech.br01"), data={"patient_id": "x"})
    assert r.status_code == 422


def test_branch_user_cannot_upload_for_another_branch(api):
    r = upload(api, login(api, "tech.br01"), to_wfdb_files(synthetic_ecg(72)),
               institution="BR02")
    assert r.status_code == 403


def test_other_branch_cannot_read_the_samples(api):
    r = upload(api, login(api, "tech.br01"), to_wfdb_files(synthetic_ecg(72)), patient_id="Q")
    item_id = r.json()[0]["id"]
    other = login(api, "tech.br02")
    assert api.get(f"/api/ecg/{item_id}/samples", headers=other).status_code == 404
    assert api.get(f"/api/ecg/{item_id}/page.png", headers=other).status_code == 404
    assert api.get(f"/api/ecg/{item_id}/samples").status_code == 401


def test_cli_send_uploads_and_reports_refusals(hub_server, testdata, tmp_path):
    from typer.testing import CliRunner

    from ecg_ingest.cli import app

    files = to_wfdb_files(synthetic_ecg(200), "svt")
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    args = ["send", "--hub", hub_server.url, "--username", "tech.br01",
            "--password", DEMO_PASSWORD, "--patient-id", "CLI-1"]
    result = CliRunner().invoke(app, [*args, str(tmp_path / "svt.hea"),
                                      str(testdata / "ecg/dicom/waveform_ecg.dcm")])
    assert result.exit_code == 0, result.output
    assert "stat" in result.output and "CRITICAL: heart rate 200 bpm" in result.output
    assert result.output.count(": item ") == 2

    refused = CliRunner().invoke(app, [*args, str(testdata / "ecg/scp/test.scp")])
    assert refused.exit_code == 1
    assert "HTTP 415" in refused.output and "SCP-ECG" in refused.output
