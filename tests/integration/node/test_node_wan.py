"""The HTTP (WAN) transport: Orthanc REST, gzip, optional lossless transcoding."""

from __future__ import annotations

import io

import numpy as np
import pydicom
import pytest
from pydicom.uid import JPEG2000Lossless, JPEGLSLossless

from dicom_node.config import Compression, Transport
from tests.integration.node.conftest import orthanc_count, scu_send, wait_until

pytestmark = pytest.mark.integration


def _archived(orthanc_client) -> dict[str, pydicom.Dataset]:
    out = {}
    for iid in orthanc_client.get_json("/instances"):
        ds = pydicom.dcmread(io.BytesIO(orthanc_client.get_bytes(f"/instances/{iid}/file")))
        out[str(ds.SOPInstanceUID)] = ds
    return out


@pytest.mark.parametrize(("compression", "syntax"), [
    (Compression.JPEG_LS, JPEGLSLossless), (Compression.JPEG_2000, JPEG2000Lossless)])
def test_http_transport_transcodes_losslessly(
    compression, syntax, ct_study_300, orthanc_client, node_settings, start_node
):
    node_settings.transport = Transport.HTTP
    node_settings.compression = compression
    node = start_node(node_settings)
    files = ct_study_300[:5]
    assert set(scu_send(files, node.port).values()) == {0x0000}
    wait_until(lambda: orthanc_count(orthanc_client) == len(files) and
               node.ledger.status().queue_depth == 0, what="instances in Orthanc")
    archived = _archived(orthanc_client)
    for path in files:
        orig = pydicom.dcmread(path)
        got = archived[str(orig.SOPInstanceUID)]
        assert got.file_meta.TransferSyntaxUID == syntax
        assert np.array_equal(got.pixel_array, orig.pixel_array), "pixels changed"
    sent = sum(t.bytes_out for t in node.forwarder.transports)
    read = sum(t.bytes_in for t in node.forwarder.transports)
    assert read / sent > 2.0, f"compression ratio only {read / sent:.2f}"


def test_http_transport_keeps_already_compressed_files_as_they_are(
    testdata, orthanc_client, node_settings, start_node
):
    node_settings.transport = Transport.HTTP
    node_settings.compression = Compression.JPEG_LS
    node = start_node(node_settings)
    files = [testdata / "dicom/single/US1_J2KI.dcm", testdata / "dicom/single/test-SR.dcm",
             testdata / "dicom/series/study_stc_test_mr_siemens/axasc36"
             / "MR.1.3.12.2.1107.5.2.32.35131.2014031012525641770887330.dcm"]
    assert set(scu_send(files, node.port).values()) == {0x0000}
    wait_until(lambda: orthanc_count(orthanc_client) == len(files) and
               node.ledger.status().queue_depth == 0, what="instances in Orthanc")
    archived = _archived(orthanc_client)
    us = archived[str(pydicom.dcmread(files[0]).SOPInstanceUID)]
    assert us.PixelData == pydicom.dcmread(files[0]).PixelData  # lossy J2K passed through
    mr_orig = pydicom.dcmread(files[2])
    mr = archived[str(mr_orig.SOPInstanceUID)]
    assert mr.file_meta.TransferSyntaxUID == JPEGLSLossless
    assert np.array_equal(mr.pixel_array, mr_orig.pixel_array)


def test_http_transport_with_wrong_password_keeps_files_queued(
    testdata, orthanc_client, node_settings, start_node
):
    node_settings.transport = Transport.HTTP
    node_settings.orthanc_password = "wrong"
    node = start_node(node_settings)
    path = testdata / "dicom/single/CT_small.dcm"
    assert scu_send([path], node.port) == {path: 0x0000}
    wait_until(lambda: "401" in node.ledger.status().last_error, what="the 401 to be recorded")
    assert node.spool.depth() == 1
    assert orthanc_count(orthanc_client) == 0
