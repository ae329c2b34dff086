"""part10: the node's byte-level view of instances agrees with pydicom and sees every cut."""

from __future__ import annotations

import io
import struct

import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset
from pydicom.uid import (
    CTImageStorage,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEGLSLossless,
)

from dicom_node.part10 import (
    MalformedDicom,
    encode_file_meta,
    read_file_meta,
    scan_dataset,
)

SYNTAXES = [ImplicitVRLittleEndian, ExplicitVRLittleEndian, ExplicitVRBigEndian]


def _dataset() -> Dataset:
    ds = Dataset()
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = "1.2.3.4.5"
    ds.StudyInstanceUID = "1.2.3"
    ds.SeriesInstanceUID = "1.2.3.1"
    ds.PatientName = "Wang^Xiaodong"
    return ds


def _encode(ds: Dataset, tsyntax: str) -> bytes:
    fp = DicomBytesIO()
    fp.is_little_endian = tsyntax != ExplicitVRBigEndian
    fp.is_implicit_VR = tsyntax == ImplicitVRLittleEndian
    write_dataset(fp, ds)
    return fp.getvalue()


def _with_nested_sequence() -> Dataset:
    """Ends with an undefined-length sequence whose items hold another sequence."""
    ds = _dataset()
    inner = Dataset()
    inner.CodeValue, inner.CodingSchemeDesignator = "121071", "DCM"
    item = Dataset()
    item.ValueType = "TEXT"
    item.ConceptNameCodeSequence = [inner]
    ds.ContentSequence = [item, item]
    for seq in (ds["ContentSequence"], item["ConceptNameCodeSequence"]):
        seq.is_undefined_length = True
        for each in seq.value:
            each.is_undefined_length_sequence_item = True
    return ds


def test_file_meta_reads_back_with_pydicom_and_ourselves():
    head = encode_file_meta(CTImageStorage, "1.2.3.4.5", ExplicitVRLittleEndian, "CT1")
    body = _encode(_dataset(), ExplicitVRLittleEndian)
    ds = pydicom.dcmread(io.BytesIO(head + body))
    assert ds.file_meta.MediaStorageSOPInstanceUID == "1.2.3.4.5"
    assert ds.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert ds.file_meta.SourceApplicationEntityTitle == "CT1"
    assert ds.PatientName == "Wang^Xiaodong"
    meta = read_file_meta(head + body)
    assert (meta.sop_class_uid, meta.sop_instance_uid, meta.source_aet) == (
        CTImageStorage, "1.2.3.4.5", "CT1")
    assert meta.dataset_offset == len(head)


def test_a_file_without_the_prefix_is_not_dicom():
    with pytest.raises(MalformedDicom, match="DICM"):
        read_file_meta(b"%PDF-1.7" * 40)


@pytest.mark.parametrize("tsyntax", SYNTAXES)
def test_identifiers_are_read_in_every_syntax(tsyntax):
    body = _encode(_with_nested_sequence(), tsyntax)
    assert body.count(b"\xfe\xff\xdd\xe0" if tsyntax != ExplicitVRBigEndian
                      else b"\xff\xfe\xe0\xdd") == 3  # two nested sequences, one outer
    ids = scan_dataset(body, tsyntax)
    assert (ids.sop_class_uid, ids.sop_instance_uid, ids.study_instance_uid,
            ids.series_instance_uid) == (CTImageStorage, "1.2.3.4.5", "1.2.3", "1.2.3.1")


@pytest.mark.parametrize("tsyntax", SYNTAXES)
def test_every_cut_inside_a_nested_sequence_is_refused(tsyntax):
    body = _encode(_with_nested_sequence(), tsyntax)
    sequence_start = len(_encode(_dataset(), tsyntax))
    for cut in range(sequence_start + 1, len(body)):
        with pytest.raises(MalformedDicom, match="truncated"):
            scan_dataset(body[:cut], tsyntax)


def test_every_cut_inside_encapsulated_pixel_data_is_refused():
    ds = _dataset()
    ds.PixelData = encapsulate([b"\x01" * 64, b"\x02" * 30])
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True
    body = _encode(ds, JPEGLSLossless)
    pixels_start = len(_encode(_dataset(), JPEGLSLossless))
    assert scan_dataset(body, JPEGLSLossless).sop_instance_uid == "1.2.3.4.5"
    for cut in range(pixels_start + 1, len(body)):
        with pytest.raises(MalformedDicom, match="truncated"):
            scan_dataset(body[:cut], JPEGLSLossless)


def test_undefined_length_un_is_walked_as_implicit_little_endian():
    # PS3.5 6.2.2: a private sequence sent as UN keeps implicit VR LE inside its items.
    item = struct.pack("<HHI", 0x0009, 0x1001, 4) + b"abcd"
    un = (struct.pack("<HH2sHI", 0x0009, 0x1010, b"UN", 0, 0xFFFFFFFF)
          + struct.pack("<HHI", 0xFFFE, 0xE000, 0xFFFFFFFF) + item
          + struct.pack("<HHI", 0xFFFE, 0xE00D, 0)
          + struct.pack("<HHI", 0xFFFE, 0xE0DD, 0))
    body = _encode(_dataset(), ExplicitVRLittleEndian)
    # Group 0009 sorts between (0008,...) and (0010,...); order does not matter to the walk.
    ids = scan_dataset(body + un, ExplicitVRLittleEndian)
    assert ids.sop_instance_uid == "1.2.3.4.5"
    with pytest.raises(MalformedDicom, match="truncated"):
        scan_dataset(body + un[:-8], ExplicitVRLittleEndian)


def test_text_is_not_a_dataset():
    with pytest.raises(MalformedDicom, match="bad VR"):
        scan_dataset(b"this is a PDF, not a dataset " * 40, ExplicitVRLittleEndian)
