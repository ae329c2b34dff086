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
import itertools
import logging
import os
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pydicom

from dicom_node.part10 import MalformedDicom, encode_file_meta, scan_dataset
from dicom_node.statuses import CannotUnderstand, OutOfResources, SopClassMismatch

logger = logging.getLogger(__name__)

_UID_RE = re.compile(r"^[0-9]+(\.[0-9]+)*$")


@dataclass(frozen=True, slots=True)
class InstanceInfo:
    """Identifiers of one received instance; nothing about the patient."""

    sop_instance_uid: str
    sop_class_uid: str
    study_instance_uid: str
    series_instance_uid: str
    transfer_syntax_uid: str
    calling_aet: str = ""
    #: Bytes of the spool file (file meta included).
    size: int = 0


def parse_dataset(
    body: bytes, transfer_syntax_uid: str, *, expected_sop_class: str | None = None,
    calling_aet: str = "",
) -> tuple[InstanceInfo, bytes]:
    """Check a received dataset and build the file meta it is spooled with.

    Args:
        body: the dataset as the modality encoded it (no file meta).
        transfer_syntax_uid: of the presentation context it arrived on.
        expected_sop_class: the C-STORE request's Affected SOP Class UID, if any.
        calling_aet: stored with the instance for the study's origin.

    Returns:
        The instance's identifiers, and the preamble + file meta to write before ``body``.
        The meta names the dataset's own SOP Instance UID (the dataset wins over the request),
        because the forwarder sends the file's dataset under the UID its meta gives.

    Raises:
        CannotUnderstand: not DICOM (bad element framing), truncated, or a required UID
            missing.
        SopClassMismatch: the dataset's SOP Class UID differs from ``expected_sop_class``.
    """
    try:
        ids = scan_dataset(body, transfer_syntax_uid)
    except MalformedDicom as exc:
        raise CannotUnderstand(str(exc)) from exc
    if not ids.sop_instance_uid:
        raise CannotUnderstand("SOPInstanceUID (0008,0018) missing")
    if not ids.study_instance_uid:
        raise CannotUnderstand("StudyInstanceUID (0020,000D) missing")
    if not ids.series_instance_uid:
        raise CannotUnderstand("SeriesInstanceUID (0020,000E) missing")
    if expected_sop_class and ids.sop_class_uid and ids.sop_class_uid != expected_sop_class:
        raise SopClassMismatch(f"SOP class {ids.sop_class_uid} differs from request")
    sop_class = ids.sop_class_uid or (expected_sop_class or "")
    head = encode_file_meta(sop_class, ids.sop_instance_uid, transfer_syntax_uid, calling_aet)
    info = InstanceInfo(
        sop_instance_uid=ids.sop_instance_uid,
        sop_class_uid=sop_class,
        study_instance_uid=ids.study_instance_uid,
        series_instance_uid=ids.series_instance_uid,
        transfer_syntax_uid=transfer_syntax_uid,
        calling_aet=calling_aet,
        size=len(head) + len(body),
    )
    return info, head


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
        self._tmp_seq = itertools.count()

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

    def put(self, data: bytes, info: InstanceInfo, head: bytes = b"") -> Path:
        """Write ``head`` + ``data`` durably into the queue as one instance; return its path.

        The two parts are written with one vectored write, so the received dataset is never
        copied just to put the file meta in front of it.

        Raises:
            OutOfResources: the disk is (nearly) full; nothing was kept.
        """
        self.check_room(len(head) + len(data))
        # Unique within this process; tmp/ is emptied at start, and O_EXCL guards the rest.
        tmp = self.tmp / f"{os.getpid()}-{next(self._tmp_seq)}.part"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
            try:
                _write_all(fd, (head, data))
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


def _write_all(fd: int, parts: Sequence[bytes]) -> None:
    """Write every part in order, resuming after short writes."""
    views = [memoryview(p) for p in parts if p]
    while views:
        written = os.writev(fd, views)
        while written:
            if written >= len(views[0]):
                written -= len(views.pop(0))
            else:
                views[0] = views[0][written:]
                written = 0


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
