"""Modality -> node -> Orthanc on loopback: every instance arrives, pixels unchanged."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pydicom
import pytest

from tests.integration.node.conftest import orthanc_count, scu_send, wait_until

pytestmark = pytest.mark.integration

SERIES_STUDIES = ["dicom/series/study_98892001_ct", "dicom/series/study_stc_test_mr_siemens"]


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.dcm"))


def _assert_archived_identical(orthanc_client, originals: list[Path]) -> None:
    """Orthanc holds each original once, with the same pixels (decoded, or raw if no codec)."""
    by_uid = {}
    for iid in orthanc_client.get_json("/instances"):
        ds = pydicom.dcmread(
            __import__("io").BytesIO(orthanc_client.get_bytes(f"/instances/{iid}/file")))
        assert str(ds.SOPInstanceUID) not in by_uid, "instance stored twice"
        by_uid[str(ds.SOPInstanceUID)] = ds
    for path in originals:
        orig = pydicom.dcmread(path)
        got = by_uid[str(orig.SOPInstanceUID)]
        assert got.file_meta.TransferSyntaxUID == orig.file_meta.TransferSyntaxUID
        if "PixelData" not in orig:
            continue
        assert got.PixelData == orig.PixelData, f"pixel bytes differ for {path.name}"
        try:
            expected = orig.pixel_array
        except Exception:  # noqa: BLE001 - no decoder installed for this syntax
            continue
        assert np.array_equal(got.pixel_array, expected), f"decoded pixels differ: {path.name}"


def test_pynetdicom_scu_multi_series_studies_arrive_complete(
    testdata, orthanc_client, node_settings, start_node
):
    files = [f for s in SERIES_STUDIES for f in _files(testdata / s)]
    node = start_node(node_settings)
    statuses = scu_send(files, node.port)
    assert set(statuses.values()) == {0x0000}
    wait_until(lambda: orthanc_count(orthanc_client) == len(files) and
               node.ledger.status().queue_depth == 0, what="all instances in Orthanc")
    _assert_archived_identical(orthanc_client, files)
    studies = orthanc_client.get_json("/studies")
    assert len(studies) == 2
    series = orthanc_client.get_json("/series")
    assert len(series) == 4


@pytest.mark.skipif(shutil.which("storescu") is None, reason="dcmtk storescu not installed")
def test_dcmtk_storescu_multi_series_studies_arrive_complete(
    testdata, orthanc_client, node_settings, start_node, tmp_path
):
    # storescu scans one folder; copy both studies into one tree it can recurse.
    src = tmp_path / "cd"
    for s in SERIES_STUDIES:
        shutil.copytree(testdata / s, src / Path(s).name)
    files = _files(src)
    node = start_node(node_settings)
    subprocess.run(
        ["storescu", "-aet", "DR1", "-aec", "YIGONG-NODE", "+sd", "+r", "127.0.0.1",
         str(node.port), str(src)],
        check=True, capture_output=True, env=dict(os.environ, TCP_NODELAY="1"), timeout=60,
    )
    wait_until(lambda: orthanc_count(orthanc_client) == len(files) and
               node.ledger.status().queue_depth == 0, what="all instances in Orthanc")
    _assert_archived_identical(orthanc_client, files)
    assert node.ledger.study_source_aet(
        str(pydicom.dcmread(files[0]).StudyInstanceUID)) == "DR1"


SINGLES = [
    "MR_small_implicit.dcm", "MR_small_bigendian.dcm", "MR_small_RLE.dcm",
    "MR_small_jp2klossless.dcm", "MR_small_jpeg_ls_lossless.dcm", "JPEG-lossy.dcm",
    "JPGLosslessP14SV1_1s_1f_8b.dcm", "SC_rgb_jpeg_dcmtk.dcm", "US1_J2KI.dcm",
    "image_dfl.dcm", "OBXXXX1A_rle_2frame.dcm", "emri_small.dcm", "test-SR.dcm",
]


@pytest.mark.parametrize("name", SINGLES)
def test_each_transfer_syntax_is_forwarded_unchanged(
    name, testdata, orthanc_client, node_settings, start_node
):
    path = testdata / "dicom" / "single" / name
    node = start_node(node_settings)
    assert scu_send([path], node.port) == {path: 0x0000}
    wait_until(lambda: orthanc_count(orthanc_client) == 1 and
               node.ledger.status().queue_depth == 0, what="instance in Orthanc")
    _assert_archived_identical(orthanc_client, [path])


def test_node_answers_c_echo(node_settings, start_node):
    from pynetdicom import AE
    from pynetdicom.sop_class import Verification

    node = start_node(node_settings)
    ae = AE(ae_title="US1")
    ae.add_requested_context(Verification)
    assoc = ae.associate("127.0.0.1", node.port, ae_title="YIGONG-NODE")
    assert assoc.is_established
    assert assoc.send_c_echo().Status == 0x0000
    assoc.release()


def test_prometheus_metrics_count_received_and_forwarded(testdata, node_settings, start_node):
    import requests

    from tests.conftest import free_port

    node_settings.metrics_port = free_port()
    node = start_node(node_settings)
    path = testdata / "dicom" / "single" / "CT_small.dcm"
    assert scu_send([path], node.port) == {path: 0x0000}
    wait_until(lambda: node.ledger.status().forwarded_total == 1, what="forwarding")
    text = requests.get(f"http://127.0.0.1:{node_settings.metrics_port}/metrics", timeout=5).text
    for name in ("yigong_node_received_instances_total", "yigong_node_forwarded_instances_total",
                 "yigong_node_store_seconds_count"):
        line = next(x for x in text.splitlines() if x.startswith(name))
        assert float(line.rsplit(" ", 1)[1]) >= 1


def test_logs_carry_identifiers_but_no_patient_names(
    testdata, node_settings, start_node, caplog, tmp_path
):
    import logging

    caplog.set_level(logging.DEBUG, logger="dicom_node")
    good = testdata / "dicom" / "charset" / "chrX2_GB18030.dcm"  # Wang^XiaoDong=王^小东
    bad = pydicom.dcmread(good)
    del bad.StudyInstanceUID  # refused: the rejection is logged too
    bad.SOPInstanceUID = pydicom.uid.generate_uid()
    bad_path = tmp_path / "bad.dcm"
    bad.save_as(bad_path)
    node = start_node(node_settings)
    assert scu_send([good, bad_path], node.port) == {good: 0x0000, bad_path: 0xC000}
    wait_until(lambda: node.ledger.status().forwarded_total == 1, what="forwarding")
    text = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert str(bad.SOPInstanceUID) in text
    for name in ("Wang", "XiaoDong", "王", "小东"):
        assert name not in text
