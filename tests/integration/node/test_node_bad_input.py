"""Bad input at the node: each is refused with a failure status and the association goes on."""

from __future__ import annotations

import io
from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset, write_file_meta_info
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

from dicom_node.scu import AssociationRejected, StoreScu
from tests.integration.node.conftest import orthanc_count, scu_send, wait_until

pytestmark = pytest.mark.integration

CT = "dicom/single/CT_small.dcm"


def _encode_body(ds: pydicom.Dataset) -> bytes:
    fp = DicomBytesIO()
    fp.is_little_endian, fp.is_implicit_VR = True, False
    write_dataset(fp, ds)
    return fp.getvalue()


def _raw_file(tmp_path: Path, body: bytes, sop_class: str, sop_uid: str) -> Path:
    """A Part 10 file whose meta is valid and whose dataset bytes are exactly ``body``."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = generate_uid()
    out = io.BytesIO()
    out.write(b"\x00" * 128 + b"DICM")
    write_file_meta_info(out, meta, enforce_standard=True)
    path = tmp_path / f"{sop_uid[-12:]}.dcm"
    path.write_bytes(out.getvalue() + body)
    return path


@pytest.fixture
def good(testdata, tmp_path) -> pydicom.Dataset:
    ds = pydicom.dcmread(testdata / CT)
    ds.SOPInstanceUID = generate_uid()
    return ds


def _good_file(tmp_path: Path, ds: pydicom.Dataset) -> Path:
    return _raw_file(tmp_path, _encode_body(ds), str(ds.SOPClassUID), str(ds.SOPInstanceUID))


def _scu(node) -> StoreScu:
    scu = StoreScu("127.0.0.1", node.port, "YIGONG-NODE", "CT1", timeout=30)
    scu.associate([(str(pydicom.uid.CTImageStorage), ExplicitVRLittleEndian),
                   (str(MRImageStorage), ExplicitVRLittleEndian)])
    return scu


def test_not_dicom_is_refused_and_the_association_goes_on(
    tmp_path, good, orthanc_client, node_settings, start_node
):
    node = start_node(node_settings)
    garbage = _raw_file(tmp_path, b"this is a PDF, not a dataset " * 40,
                        str(good.SOPClassUID), generate_uid())
    scu = _scu(node)
    bad = scu.store_file(garbage)
    ok = scu.store_file(_good_file(tmp_path, good))
    scu.release()
    assert 0xC000 <= bad.status <= 0xCFFF
    assert bad.error_comment
    assert ok.status == 0x0000
    wait_until(lambda: orthanc_count(orthanc_client) == 1, what="the good instance")
    assert node.spool.depth() == 0


def test_truncated_dataset_is_refused(tmp_path, good, node_settings, start_node):
    node = start_node(node_settings)
    body = _encode_body(good)
    path = _raw_file(tmp_path, body[: len(body) // 2], str(good.SOPClassUID),
                     str(good.SOPInstanceUID))
    scu = _scu(node)
    res = scu.store_file(path)
    scu.release()
    assert res.status == 0xC000
    assert "truncated" in res.error_comment
    assert node.ledger.status().received_total == 0


def test_dataset_without_sop_instance_uid_is_refused(tmp_path, good, node_settings, start_node):
    node = start_node(node_settings)
    uid = str(good.SOPInstanceUID)
    del good.SOPInstanceUID
    path = _raw_file(tmp_path, _encode_body(good), str(good.SOPClassUID), uid)
    scu = _scu(node)
    res = scu.store_file(path)
    scu.release()
    assert res.status == 0xC000
    assert "SOPInstanceUID" in res.error_comment


def test_sop_class_mismatch_is_refused_with_a900(tmp_path, good, node_settings, start_node):
    node = start_node(node_settings)
    # The request says MR Image Storage; the dataset is a CT image.
    path = _raw_file(tmp_path, _encode_body(good), str(MRImageStorage), str(good.SOPInstanceUID))
    scu = _scu(node)
    res = scu.store_file(path)
    scu.release()
    assert res.status == 0xA900


def test_full_disk_answers_out_of_resources(testdata, node_settings, start_node):
    node_settings.min_free_bytes = 1 << 62  # more than any disk has: always "full"
    node = start_node(node_settings)
    path = testdata / CT
    assert scu_send([path], node.port) == {path: 0xA700}
    assert node.spool.depth() == 0


def test_calling_aet_outside_allow_list_is_rejected(testdata, node_settings, start_node):
    node_settings.allowed_aets = ["CT1"]
    node = start_node(node_settings)
    scu = StoreScu("127.0.0.1", node.port, "YIGONG-NODE", "INTRUDER", timeout=10)
    with pytest.raises(AssociationRejected):
        scu.associate([(str(pydicom.uid.CTImageStorage), ExplicitVRLittleEndian)])
    path = testdata / CT
    assert scu_send([path], node.port, calling_aet="CT1") == {path: 0x0000}
