"""Lossless transcoding before a slow link, with a bit-identical pixel check.

Encoders are pydicom 3's plugins: ``pyjpegls`` (CharLS) for JPEG-LS lossless and
``pylibjpeg-openjpeg`` for JPEG 2000 lossless. A file is sent as it came whenever transcoding
does not apply (already compressed, no pixels, a layout the encoder refuses) or the decoded
result differs from the original by a single bit: a smaller file is never worth a changed image.
"""

from __future__ import annotations

import io
import logging

import numpy as np
import pydicom
from pydicom.uid import (
    UID,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGLSLossless,
)

from dicom_node.config import Compression

logger = logging.getLogger(__name__)

_NATIVE = {ImplicitVRLittleEndian, ExplicitVRLittleEndian, ExplicitVRBigEndian}
_TARGET: dict[Compression, UID] = {
    Compression.JPEG_LS: JPEGLSLossless,
    Compression.JPEG_2000: JPEG2000Lossless,
}


def compress_lossless(data: bytes, method: Compression) -> bytes | None:
    """Return ``data`` re-encoded losslessly, or None when it should be sent unchanged.

    Args:
        data: a DICOM file (with meta) in a native (uncompressed) transfer syntax.
        method: which lossless syntax to produce.

    Returns:
        The new file's bytes, only if decoding them gives exactly the original pixels and
        they are smaller; otherwise None.
    """
    target = _TARGET.get(method)
    if target is None:
        return None
    try:
        ds = pydicom.dcmread(io.BytesIO(data))
        if ds.file_meta.TransferSyntaxUID not in _NATIVE or "PixelData" not in ds:
            return None
        original = ds.pixel_array.copy()
        # Lossless transcoding keeps the SOP Instance UID (PS3.5 8.2.1): the manifest, the
        # hub and any re-send must all name the same instance.
        ds.compress(target, generate_instance_uid=False)
        out = io.BytesIO()
        ds.save_as(out, enforce_file_format=True)
        encoded = out.getvalue()
        check = pydicom.dcmread(io.BytesIO(encoded)).pixel_array
    except Exception as exc:  # noqa: BLE001 - any encoder refusal means "send as is"
        logger.debug("not transcoded: %s", exc)
        return None
    if check.shape != original.shape or not np.array_equal(check, original):
        logger.warning("lossless transcode changed pixels; sending the original")
        return None
    if len(encoded) >= len(data):
        return None
    return encoded
