"""Synthetic CT studies for the node's tests and benchmarks.

Each slice keeps every header element of a real CT (pydicom's public ``CT_small.dcm`` or any
CT file given) and gets new UIDs, a slice position and 512x512 pixel data drawn from a simple
phantom: air, a body ellipse with lungs and a spine, plus quantum noise (sigma ~12 HU) so
lossless compression ratios are in the range real CT gives, not the flattering ones of a
noiseless image. Outside the reconstruction circle the padding value is used, as scanners do.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
from pydicom.uid import ExplicitVRLittleEndian, generate_uid


def phantom_slice(z: int, size: int = 512, seed: int = 0) -> np.ndarray:
    """Stored values (uint16, 12 bits used, intercept -1024) of one phantom slice."""
    rng = np.random.default_rng(seed * 100_003 + z)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    c = size / 2
    x, y = (xx - c) / c, (yy - c) / c
    hu = np.full((size, size), -1000.0, dtype=np.float32)
    body = (x / 0.78) ** 2 + (y / (0.58 + 0.02 * np.sin(z / 20))) ** 2 <= 1
    hu[body] = 40.0
    for side in (-1, 1):
        lung = ((x - side * 0.33) / 0.25) ** 2 + ((y + 0.05) / 0.38) ** 2 <= 1
        hu[lung] = -850.0
    spine = (x**2 + (y - 0.38) ** 2) <= 0.09**2
    hu[spine] = 700.0
    hu += rng.normal(0.0, 12.0, hu.shape).astype(np.float32)
    stored = np.clip(np.rint(hu + 1024.0), 0, 4095).astype(np.uint16)
    outside = (x**2 + y**2) > 1.0
    stored[outside] = 0  # pixel padding outside the field of view
    return stored


def write_ct_study(
    header_file: Path, out_dir: Path, count: int = 300, size: int = 512, seed: int = 0,
    series_count: int = 1,
) -> list[Path]:
    """Write ``count`` CT slices (split across ``series_count`` series) into ``out_dir``.

    Args:
        header_file: a real CT instance whose header is reused.
        out_dir: created if needed.

    Returns:
        The written paths, in slice order.
    """
    template = pydicom.dcmread(header_file)
    out_dir.mkdir(parents=True, exist_ok=True)
    study_uid = generate_uid()
    series_uids = [generate_uid() for _ in range(series_count)]
    paths: list[Path] = []
    for i in range(count):
        ds = template.copy()
        ds.file_meta = template.file_meta.copy()
        sop_uid = generate_uid()
        ds.StudyInstanceUID = study_uid
        ds.SeriesInstanceUID = series_uids[i % series_count]
        ds.SOPInstanceUID = sop_uid
        ds.file_meta.MediaStorageSOPInstanceUID = sop_uid
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.InstanceNumber = i + 1
        ds.SeriesNumber = (i % series_count) + 1
        ds.ImagePositionPatient = [-250.0, -250.0, float(-i * 1.25)]
        ds.SliceLocation = float(-i * 1.25)
        ds.Rows = ds.Columns = size
        ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 12, 11
        ds.PixelRepresentation = 0
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.RescaleIntercept, ds.RescaleSlope = -1024, 1
        ds.PixelPaddingValue = 0
        ds.PixelData = phantom_slice(i, size, seed).tobytes()
        ds["PixelData"].VR = "OW"
        path = out_dir / f"CT{i + 1:04d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths
