"""README command 1: `yigong up --demo` brings the stack up with demo data; Ctrl-C stops it all."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys

import pytest
import requests

from tests.conftest import free_port
from tests.helpers import wait_for

pytestmark = pytest.mark.integration


def test_up_demo_serves_demo_worklist_and_stops_cleanly(tmp_path):
    api, http, dicom = free_port(), free_port(), free_port()
    node, lis = free_port(), free_port()
    env = dict(os.environ, YIGONG_DATA_DIR=str(tmp_path / "data"), YIGONG_API_PORT=str(api),
               YIGONG_ORTHANC_URL=f"http://127.0.0.1:{http}",
               YIGONG_ORTHANC_DICOM_PORT=str(dicom), YIGONG_ORTHANC_STABLE_AGE="2",
               YIGONG_BROKER_URL=f"redis://127.0.0.1:6379/{random.randint(3, 15)}",
               YIGONG_NODE_PORT=str(node), YIGONG_NODE_STUDY_QUIET_SECONDS="2",
               YIGONG_LIS_PORT=str(lis), YIGONG_CHANGES_POLL_SECONDS="1")
    proc = subprocess.Popen([sys.executable, "-m", "hub.cli", "up", "--demo"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    output: list[str] = []
    try:
        def admin_password():
            line = proc.stdout.readline()
            output.append(line)
            if proc.poll() is not None:
                raise AssertionError("yigong up exited:\n" + "".join(output))
            if "│ admin " in line:
                return line.split("│")[2].strip()
            return None

        password = wait_for(admin_password, timeout=90, interval=0, what="demo users table")
        base = f"http://127.0.0.1:{api}"
        health = wait_for(lambda: _get(base + "/api/health"), timeout=60, what="API health")
        assert health["components"]["orthanc"]["state"] == "up"
        token = requests.post(base + "/api/auth/token",
                              data={"username": "admin", "password": password}).json()
        headers = {"Authorization": f"Bearer {token['access_token']}"}

        def demo_items():
            rows = requests.get(base + "/api/worklist", headers=headers, timeout=5).json()
            ct = [r for r in rows if r["kind"] == "imaging" and r["status"] == "ready"]
            return rows if ct and {r["kind"] for r in rows} == {"imaging", "ecg", "lab"} else None

        rows = wait_for(demo_items, timeout=90, what="demo CT ready, demo ECG and lab listed")
        by_kind = {r["kind"]: r for r in rows}
        ct = by_kind["imaging"]
        assert ct["patient"]["name"] == "王小东"
        assert ct["institution"]["code"] == "BR01"
        assert ct["instance_count"] == 20
        # Critical ECG and critical potassium come first, as STAT.
        assert {rows[0]["kind"], rows[1]["kind"]} == {"ecg", "lab"}
        assert by_kind["ecg"]["priority"] == by_kind["lab"]["priority"] == "stat"
        assert by_kind["ecg"]["is_critical"] and by_kind["lab"]["is_critical"]
        assert by_kind["lab"]["patient"]["name"] == "张建国"
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            rest, _ = proc.communicate(timeout=90)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            raise
    assert proc.returncode == 0, "".join(output) + rest
    assert "stopped orthanc" in rest
    # Nothing of the stack is left listening.
    for port in (api, http, dicom, node, lis):
        with pytest.raises(requests.ConnectionError):
            requests.get(f"http://127.0.0.1:{port}/", timeout=1)


def _get(url):
    try:
        r = requests.get(url, timeout=2)
        return r.json() if r.status_code == 200 else None
    except requests.RequestException:
        return None
