"""``yigong send`` (files, folders, a patient CD) and ``yigong node status``."""

from __future__ import annotations

import json
import shutil

import pydicom
import pytest
import typer
from pydicom.fileset import FileSet
from typer.testing import CliRunner

from dicom_node.cli import app, send
from tests.integration.node.conftest import orthanc_count, wait_until

pytestmark = pytest.mark.integration

send_app = typer.Typer()
send_app.command()(send)


def test_send_a_patient_cd_with_dicomdir(testdata, tmp_path, orthanc_client, node_settings,
                                         start_node):
    files = sorted((testdata / "dicom/series/study_stc_test_mr_siemens").rglob("*.dcm"))
    fs = FileSet()
    for f in files:
        fs.add(pydicom.dcmread(f))
    cd = tmp_path / "cd"
    fs.write(cd)
    node = start_node(node_settings)
    result = CliRunner().invoke(send_app, [str(cd / "DICOMDIR"), "--port", str(node.port)])
    assert result.exit_code == 0, result.output
    assert f"{len(files)} sent" in result.output
    wait_until(lambda: orthanc_count(orthanc_client) == len(files), what="the CD in Orthanc")


def test_send_reports_what_failed_and_why(testdata, tmp_path, node_settings, start_node):
    folder = tmp_path / "mixed"
    folder.mkdir()
    shutil.copy(testdata / "dicom/single/CT_small.dcm", folder / "good.dcm")
    shutil.copy(testdata / "dicom/single/JLSL_08_07_0_1F.dcm", folder / "no-study-uid.dcm")
    (folder / "notes.txt").write_text("not an image")
    node = start_node(node_settings)
    result = CliRunner().invoke(send_app, [str(folder), "--port", str(node.port)])
    assert result.exit_code == 1
    assert "1 sent" in result.output and "1 failed" in result.output
    assert "StudyInstanceUID" in result.output
    assert "notes.txt" in result.output  # skipped, with the reason


def test_send_to_a_node_that_is_down_fails_clearly(testdata):
    from tests.conftest import free_port

    result = CliRunner().invoke(send_app, [str(testdata / "dicom/single/CT_small.dcm"),
                                           "--port", str(free_port())])
    assert result.exit_code == 1
    assert "cannot connect" in result.output


def test_status_reads_the_spool_of_a_running_node(testdata, node_settings, start_node):
    from tests.integration.node.conftest import scu_send

    node = start_node(node_settings)
    path = testdata / "dicom/single/CT_small.dcm"
    scu_send([path], node.port)
    wait_until(lambda: node.ledger.status().forwarded_total == 1, what="forwarding")
    result = CliRunner().invoke(app, ["status", "--spool-dir", str(node_settings.spool_dir),
                                      "--json"])
    assert result.exit_code == 0, result.output
    st = json.loads(result.output)
    assert st["queue_depth"] == 0 and st["forwarded_total"] == 1
    human = CliRunner().invoke(app, ["status", "--spool-dir", str(node_settings.spool_dir)])
    assert "queue depth" in human.output
