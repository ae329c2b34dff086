"""``yigong send``: push files, folders or a DICOMDIR (a patient's CD) to a node or the hub."""

from __future__ import annotations

import logging
import ssl
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pydicom
from pydicom.errors import InvalidDicomError
from pynetdicom import AE, evt
from pynetdicom.presentation import build_context

from dicom_node.statuses import is_success
from dicom_node.transports import MAX_CONTEXTS, set_nodelay

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Planned:
    """A file we will send, with what the association needs to know."""

    path: Path
    sop_class_uid: str
    transfer_syntax_uid: str


@dataclass
class SendReport:
    """Outcome of one ``send`` run."""

    sent: int = 0
    failed: list[tuple[Path, str]] = field(default_factory=list)
    skipped: list[tuple[Path, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when every DICOM file was stored."""
        return not self.failed


def iter_candidate_files(paths: Iterable[Path]) -> Iterator[Path]:
    """Expand folders (recursively) and DICOMDIRs into the files they hold."""
    for p in paths:
        p = Path(p)
        if p.is_dir():
            dicomdir = next((c for c in p.iterdir() if c.name.upper() == "DICOMDIR"), None)
            if dicomdir is not None:
                yield from _dicomdir_files(dicomdir)
                continue
            yield from sorted(c for c in p.rglob("*") if c.is_file())
        elif p.name.upper() == "DICOMDIR":
            yield from _dicomdir_files(p)
        else:
            yield p


def _dicomdir_files(path: Path) -> Iterator[Path]:
    """Files referenced by a DICOMDIR (PS3.10 Referenced File ID, relative to its folder)."""
    ds = pydicom.dcmread(path)
    root = path.parent
    for record in ds.get("DirectoryRecordSequence", []):
        ref = record.get("ReferencedFileID")
        if not ref:
            continue
        parts = [ref] if isinstance(ref, str) else list(ref)
        candidate = root.joinpath(*parts)
        if not candidate.exists():
            # CDs burned on Windows often differ in case from the DICOMDIR's entries.
            lowered = root.joinpath(*[x.lower() for x in parts])
            candidate = lowered if lowered.exists() else candidate
        yield candidate


def plan(paths: Iterable[Path], report: SendReport) -> list[Planned]:
    """Read each file's header; non-DICOM files go to ``report.skipped`` with the reason."""
    out: list[Planned] = []
    for path in iter_candidate_files(paths):
        if path.name.upper() == "DICOMDIR":
            continue
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True)
            sop_class = str(ds.get("SOPClassUID", ""))
            tsyntax = str(ds.file_meta.get("TransferSyntaxUID", ""))
            if not sop_class or "SOPInstanceUID" not in ds:
                raise InvalidDicomError("no SOP Class/Instance UID")
        except FileNotFoundError:
            report.failed.append((path, "file not found"))
            continue
        except (InvalidDicomError, Exception) as exc:  # noqa: BLE001 - report and go on
            report.skipped.append((path, f"not DICOM: {exc}"[:200]))
            continue
        out.append(Planned(path, sop_class, tsyntax or pydicom.uid.ImplicitVRLittleEndian))
    return out


def send_files(
    paths: Iterable[Path],
    host: str,
    port: int,
    called_aet: str = "YIGONG-NODE",
    calling_aet: str = "YIGONG-SEND",
    ssl_context: ssl.SSLContext | None = None,
    progress: Callable[[int], None] | None = None,
    planned: list[Planned] | None = None,
    report: SendReport | None = None,
) -> SendReport:
    """C-STORE every DICOM file under ``paths`` to ``called_aet@host:port``.

    Args:
        paths: files, folders and DICOMDIRs.
        progress: called with 1 after each file (sent or failed), for a progress bar.
        planned, report: pass the result of :func:`plan` to avoid reading headers twice.

    Returns:
        The report: how many were stored, and each failure with its reason.
    """
    report = report if report is not None else SendReport()
    items = planned if planned is not None else plan(paths, report)
    ae = AE(ae_title=calling_aet)
    ae.maximum_pdu_size = 0
    ae.acse_timeout = 30
    ae.dimse_timeout = 120
    ae.network_timeout = 120
    pairs = sorted({(p.sop_class_uid, p.transfer_syntax_uid) for p in items})
    for i in range(0, len(pairs), MAX_CONTEXTS):
        group = set(pairs[i:i + MAX_CONTEXTS])
        batch = [p for p in items if (p.sop_class_uid, p.transfer_syntax_uid) in group]
        kwargs: dict = {"ae_title": called_aet,
                        "contexts": [build_context(s, t) for s, t in sorted(group)],
                        "evt_handlers": [(evt.EVT_CONN_OPEN, set_nodelay)]}
        if ssl_context is not None:
            kwargs["tls_args"] = (ssl_context, None)
        assoc = ae.associate(host, port, **kwargs)
        if not assoc.is_established:
            why = "association rejected" if assoc.is_rejected else "cannot connect"
            for p in batch:
                report.failed.append((p.path, f"{why} ({called_aet}@{host}:{port})"))
                if progress:
                    progress(1)
            continue
        try:
            for p in batch:
                reason = _store_one(assoc, p)
                if reason is None:
                    report.sent += 1
                else:
                    report.failed.append((p.path, reason))
                if progress:
                    progress(1)
                if not assoc.is_established:
                    # The peer dropped us; the rest of the batch fails with a clear reason.
                    rest = batch[batch.index(p) + 1:]
                    for q in rest:
                        report.failed.append((q.path, "association lost"))
                        if progress:
                            progress(1)
                    break
        finally:
            if assoc.is_established:
                assoc.release()
    return report


def _store_one(assoc, p: Planned) -> str | None:
    try:
        ds = pydicom.dcmread(p.path)
        rsp = assoc.send_c_store(ds)
    except Exception as exc:  # noqa: BLE001 - one bad file must not end the run
        return f"{type(exc).__name__}: {exc}"[:200]
    status = rsp.get("Status") if rsp is not None else None
    if status is None:
        return "no response (connection lost or timed out)"
    if is_success(int(status)):
        return None
    comment = rsp.get("ErrorComment", "")
    return f"status 0x{int(status):04X} {comment}".strip()
