"""Lossless transcoding: bit-identical pixels, same SOP Instance UID, or no transcoding."""

from __future__ import annotations

import io

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, JPEGLSLossless, generate_uid

from dicom_node.config import Compression
from dicom_node.synthetic import phantom_slice
from dicom_node.transcode import compress_lossless


def _ct(size: int = 128) -> bytes:
    ds = Dataset()
    ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, generate_uid()
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.Rows = ds.Columns = size
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.PixelData = phantom_slice(3, size).tobytes()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


@pytest.mark.parametrize("method", [Compression.JPEG_LS, Compression.JPEG_2000])
def test_transcoded_pixels_are_bit_identical_and_uid_kept(method):
    raw = _ct()
    out = compress_lossless(raw, method)
    assert out is not None and len(out) < len(raw) / 2
    a, b = pydicom.dcmread(io.BytesIO(raw)), pydicom.dcmread(io.BytesIO(out))
    assert b.SOPInstanceUID == a.SOPInstanceUID
    assert np.array_equal(a.pixel_array, b.pixel_array)


def test_already_compressed_is_left_alone():
    once = compress_lossless(_ct(), Compression.JPEG_LS)
    assert pydicom.dcmread(io.BytesIO(once)).file_meta.TransferSyntaxUID == JPEGLSLossless
    assert compress_lossless(once, Compression.JPEG_LS) is None


def test_no_pixels_or_no_method_means_unchanged():
    assert compress_lossless(_ct(), Compression.NONE) is None
    assert compress_lossless(b"not dicom", Compression.JPEG_LS) is None
