"""The spool directory is the node's queue: one durable file per SOP instance.

Layout under ``spool_dir``::

    tmp/          files being written (removed at start: nobody was told "success" for them)
    queue/        <SOPInstanceUID>.dcm, complete and fsynced: waiting to be forwarded
    inflight/     files a worker is sending (moved back to queue/ at start)
    quarantine/   files the hub refused for good, with a .why text beside each
    ledger.sqlite3  index of studies and instances (see ledger.py)

A file reaches ``queue/`` by write to ``tmp/`` + fsync + rename + fsync of the directory,
so after a crash or power cut a file in ``queue/`` is whole and a success status was only
ever sent for files that are there (PS3.4 B.2.3: success means the SCP has the instance).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import os
import re
import shutil
import threading
import uuid
import zlib
from dataclasses import dataclass
from pathlib import Path

import pydicom
from pydicom.errors import InvalidDicomError
from pydicom.uid import DeflatedExplicitVRLittleEndian

from dicom_node.statuses import CannotUnderstand, OutOfResources, SopClassMismatch

logger = logging.getLogger(__name__)

_UID_RE = re.compile(r"^[0-9]+(\.[0-9]+)*$")
_UNDEFINED_LENGTH = 0xFFFFFFFF


@dataclass(frozen=True, slots=True)
class InstanceInfo:
    """Identifiers of one received instance; nothing about the patient."""

    sop_instance_uid: str
    sop_class_uid: str
    study_instance_uid: str
    series_instance_uid: str
    transfer_syntax_uid: str
    calling_aet: str = ""
    size: int = 0


def parse_instance(
    data: bytes, *, expected_sop_class: str | None = None, calling_aet: str = ""
) -> InstanceInfo:
    """Check that ``data`` (a DICOM file with meta) is whole and has the UIDs we need.

    Args:
        data: preamble + file meta + dataset, as pynetdicom's ``encoded_dataset()`` gives it.
        expected_sop_class: the C-STORE request's Affected SOP Class UID, if any.
        calling_aet: stored with the instance for the study's origin.

    Returns:
        The instance's identifiers.

    Raises:
        CannotUnderstand: not DICOM, truncated, or a required UID missing.
        SopClassMismatch: the dataset's SOP Class UID differs from ``expected_sop_class``.
    """
    try:
        ds = pydicom.dcmread(io.BytesIO(data))
    except (InvalidDicomError, EOFError, zlib.error) as exc:
        raise CannotUnderstand(f"not a DICOM dataset: {exc}") from exc
    except Exception as exc:  # noqa: BLE001 - pydicom raises many types on garbage input
        raise CannotUnderstand(f"unreadable dataset: {type(exc).__name__}") from exc
    tsyntax = str(ds.file_meta.get("TransferSyntaxUID", ""))
    if tsyntax != DeflatedExplicitVRLittleEndian:
        # Deflated data is checked by zlib above; offsets below are into the raw stream.
        _check_complete(ds, len(data))
    try:
        sop = str(ds.get("SOPInstanceUID", "") or "").strip()
        sop_class = str(ds.get("SOPClassUID", "") or "").strip()
        study = str(ds.get("StudyInstanceUID", "") or "").strip()
        series = str(ds.get("SeriesInstanceUID", "") or "").strip()
    except Exception as exc:  # noqa: BLE001 - a value that fails to decode
        raise CannotUnderstand(f"unreadable identifiers: {type(exc).__name__}") from exc
    if not sop:
        raise CannotUnderstand("SOPInstanceUID (0008,0018) missing")
    if not study:
        raise CannotUnderstand("StudyInstanceUID (0020,000D) missing")
    if not series:
        raise CannotUnderstand("SeriesInstanceUID (0020,000E) missing")
    if expected_sop_class and sop_class and sop_class != expected_sop_class:
        raise SopClassMismatch(f"SOP class {sop_class} differs from request")
    return InstanceInfo(
        sop_instance_uid=sop,
        sop_class_uid=sop_class or (expected_sop_class or ""),
        study_instance_uid=study,
        series_instance_uid=series,
        transfer_syntax_uid=tsyntax,
        calling_aet=calling_aet,
        size=len(data),
    )


def _check_complete(ds: pydicom.Dataset, total: int) -> None:
    """Raise CannotUnderstand unless the top-level elements account for every byte.

    pydicom reads a truncated stream without complaint (a short last value, or it simply
    stops), so we compare each element's declared length with what is there.
    """
    end = 0
    for tag, raw in ds._dict.items():
        length = getattr(raw, "length", None)
        tell = getattr(raw, "value_tell", None)
        value = getattr(raw, "value", None)
        if length is None or tell is None:
            continue  # already converted: cannot be truncated in a way we can see
        if length == _UNDEFINED_LENGTH:
            # Value excludes the 8-byte sequence delimitation item that must follow it.
            size = len(value) if value is not None else 0
            elem_end = tell + size + 8
        else:
            if value is not None and len(value) != length:
                raise CannotUnderstand(f"truncated at element {tag}")
            elem_end = tell + length
        end = max(end, elem_end)
    if end == 0:
        raise CannotUnderstand("empty or unreadable dataset")
    if end != total:
        raise CannotUnderstand("truncated dataset" if end > total else "trailing bytes")


def spool_name(sop_instance_uid: str) -> str:
    """File name for an instance; UIDs that are not plain digits and dots are hashed."""
    if _UID_RE.match(sop_instance_uid) and len(sop_instance_uid) <= 64:
        return sop_instance_uid + ".dcm"
    # A malformed UID must never become a path ("../../etc"), but we still accept the image.
    return "h" + hashlib.sha256(sop_instance_uid.encode()).hexdigest()[:40] + ".dcm"


class Spool:
    """Durable file queue. Thread-safe: many associations write, many workers remove."""

    def __init__(self, root: Path, min_free_bytes: int = 0) -> None:
        self.root = Path(root)
        self.tmp = self.root / "tmp"
        self.queue = self.root / "queue"
        self.inflight = self.root / "inflight"
        self.quarantine_dir = self.root / "quarantine"
        self.min_free_bytes = min_free_bytes
        for d in (self.tmp, self.queue, self.inflight, self.quarantine_dir):
            d.mkdir(parents=True, exist_ok=True)
        self._queue_fd = os.open(self.queue, os.O_RDONLY | os.O_DIRECTORY)
        self._dir_lock = threading.Lock()

    def close(self) -> None:
        """Release the directory handle."""
        with contextlib.suppress(OSError):
            os.close(self._queue_fd)

    def clean_tmp(self) -> int:
        """Remove half-written files left by a crash; returns how many."""
        n = 0
        for p in self.tmp.iterdir():
            p.unlink(missing_ok=True)
            n += 1
        return n

    def recover_inflight(self) -> int:
        """Put files a crashed worker was sending back in the queue; returns how many.

        If the same instance arrived again meanwhile, the newer file in ``queue/`` wins.
        """
        n = 0
        for p in self.inflight.iterdir():
            dest = self.queue / p.name
            if dest.exists():
                p.unlink(missing_ok=True)
            else:
                os.rename(p, dest)
            n += 1
        return n

    def claim(self, path: Path) -> Path:
        """Move a queued file to ``inflight/`` so a new arrival of the same instance cannot be
        deleted by the worker that sends the old one.

        Raises:
            FileNotFoundError: another worker took it, or it was already forwarded.
        """
        dest = self.inflight / path.name
        os.rename(path, dest)
        return dest

    def unclaim(self, inflight: Path) -> Path:
        """Give a file back to the queue after a failed attempt; returns the queue path."""
        dest = self.queue / inflight.name
        if dest.exists():
            inflight.unlink(missing_ok=True)  # a newer copy arrived and waits already
        else:
            os.rename(inflight, dest)
        return dest

    def free_bytes(self) -> int:
        """Free bytes on the spool's filesystem, for unprivileged users."""
        st = os.statvfs(self.root)
        return st.f_bavail * st.f_frsize

    def check_room(self, incoming: int) -> None:
        """Raise OutOfResources when writing ``incoming`` bytes would pass the reserve."""
        if self.min_free_bytes <= 0:
            return
        free = self.free_bytes()
        if free - incoming < self.min_free_bytes:
            raise OutOfResources(f"spool disk full ({free // (1024 * 1024)} MiB free)")

    def path_for(self, sop_instance_uid: str) -> Path:
        """Where the queued file of this instance lives (whether or not it exists)."""
        return self.queue / spool_name(sop_instance_uid)

    def put(self, data: bytes, info: InstanceInfo) -> Path:
        """Write one instance durably into the queue and return its path.

        Raises:
            OutOfResources: the disk is (nearly) full; nothing was kept.
        """
        self.check_room(len(data))
        tmp = self.tmp / f"{uuid.uuid4().hex}.part"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
            try:
                view = memoryview(data)
                while view:
                    n = os.write(fd, view)
                    view = view[n:]
                # fdatasync flushes the data and the size needed to read it back, but not the
                # timestamps: one journal commit fewer per image than fsync, same guarantee.
                os.fdatasync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            if exc.errno in (28, 122):  # ENOSPC, EDQUOT
                raise OutOfResources("spool disk full") from exc
            raise
        final = self.path_for(info.sop_instance_uid)
        try:
            os.rename(tmp, final)
            # The rename is durable only once the directory entry is on disk.
            os.fsync(self._queue_fd)
        except OSError:
            tmp.unlink(missing_ok=True)
            raise
        return final

    def remove(self, path: Path) -> None:
        """Delete a forwarded file. Not fsynced: if the unlink is lost, a resend is harmless."""
        path.unlink(missing_ok=True)

    def quarantine(self, path: Path, reason: str) -> Path | None:
        """Move a file the hub refuses out of the queue, with the reason beside it."""
        if not path.exists():
            return None
        dest = self.quarantine_dir / path.name
        os.replace(path, dest)
        dest.with_suffix(".why").write_text(reason + "\n")
        return dest

    def queued(self) -> list[Path]:
        """Files waiting to be forwarded, oldest first."""
        entries = []
        with os.scandir(self.queue) as it:
            for e in it:
                if e.name.endswith(".dcm"):
                    try:
                        entries.append((e.stat().st_mtime, e.path))
                    except FileNotFoundError:
                        continue  # forwarded while we listed
        entries.sort()
        return [Path(p) for _, p in entries]

    def depth(self) -> int:
        """Number of queued files."""
        with os.scandir(self.queue) as it:
            return sum(1 for e in it if e.name.endswith(".dcm"))

    def disk_usage(self) -> shutil._ntuple_diskusage:
        """Total/used/free of the spool filesystem."""
        return shutil.disk_usage(self.root)


def read_info(path: Path) -> InstanceInfo:
    """Identifiers of a queued file (used when rebuilding after a restart)."""
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    return InstanceInfo(
        sop_instance_uid=str(ds.SOPInstanceUID),
        sop_class_uid=str(ds.get("SOPClassUID", "")),
        study_instance_uid=str(ds.get("StudyInstanceUID", "")),
        series_instance_uid=str(ds.get("SeriesInstanceUID", "")),
        transfer_syntax_uid=str(ds.file_meta.get("TransferSyntaxUID", "")),
        # Written by the SCP from the association's calling AE title.
        calling_aet=str(ds.file_meta.get("SourceApplicationEntityTitle", "") or "").strip(),
        size=path.stat().st_size,
    )
