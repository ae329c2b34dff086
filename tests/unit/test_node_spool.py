"""Spool: what counts as a whole instance, durable writes, claims and crash recovery."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import pydicom
import pytest
from pydicom.uid import MRImageStorage

from dicom_node.part10 import MalformedDicom, read_file_meta
from dicom_node.spool import InstanceInfo, Spool, parse_dataset, read_info, spool_name
from dicom_node.statuses import CannotUnderstand, OutOfResources, SopClassMismatch
from tests.conftest import SHARED_TESTDATA

DATA = SHARED_TESTDATA / "dicom"
SINGLES = sorted((DATA / "single").glob("*.dcm"))
pytestmark = pytest.mark.skipif(not DATA.is_dir(), reason=f"no shared test data at {DATA}")


def _bytes(path: Path) -> bytes:
    return path.read_bytes()


def _received(data: bytes) -> tuple[bytes, str]:
    """A file as the SCP receives it: the dataset bytes and the context's transfer syntax."""
    try:
        meta = read_file_meta(data)
    except MalformedDicom as exc:
        raise CannotUnderstand(str(exc)) from exc
    return data[meta.dataset_offset:], meta.transfer_syntax_uid


def parse_instance(data: bytes, **kwargs: str) -> InstanceInfo:
    return parse_dataset(*_received(data), **kwargs)[0]


@pytest.mark.parametrize("path", SINGLES, ids=lambda p: p.name)
def test_whole_files_parse_or_are_refused_for_a_missing_uid(path):
    data = _bytes(path)
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    if "StudyInstanceUID" not in ds:
        with pytest.raises(CannotUnderstand, match="StudyInstanceUID"):
            parse_instance(data)
        return
    body, tsyntax = _received(data)
    info, head = parse_dataset(body, tsyntax, calling_aet="CT1")
    assert info.sop_instance_uid == ds.SOPInstanceUID
    assert info.calling_aet == "CT1"
    assert info.size == len(head) + len(body)
    # The spool file (our meta + the dataset as received) reads back with pydicom.
    spooled = pydicom.dcmread(io.BytesIO(head + body))
    assert spooled.SOPInstanceUID == ds.SOPInstanceUID
    assert spooled.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
    assert spooled.file_meta.TransferSyntaxUID == tsyntax
    assert spooled.file_meta.SourceApplicationEntityTitle == "CT1"


@pytest.mark.parametrize("path", SINGLES, ids=lambda p: p.name)
@pytest.mark.parametrize("keep", [0.5, 0.97])
def test_truncated_files_are_refused(path, keep):
    data = _bytes(path)
    warnings.simplefilter("ignore", UserWarning)  # pydicom's own note about the missing end
    with pytest.raises(CannotUnderstand):
        parse_instance(data[: int(len(data) * keep)])


def test_not_dicom_is_refused():
    with pytest.raises(CannotUnderstand):
        parse_instance(b"%PDF-1.7 this is a report, not an image" * 30)


def test_missing_sop_instance_uid_is_refused():
    ds = pydicom.dcmread(DATA / "single" / "CT_small.dcm")
    del ds.SOPInstanceUID
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    with pytest.raises(CannotUnderstand, match="SOPInstanceUID"):
        parse_instance(out.getvalue())


def test_sop_class_differing_from_the_request_is_a_mismatch():
    with pytest.raises(SopClassMismatch):
        parse_instance(_bytes(DATA / "single" / "CT_small.dcm"), expected_sop_class=MRImageStorage)


@pytest.mark.parametrize("uid", ["../../etc/passwd", "1.2.3/4", "x" * 80, "1.2.3.4" * 20])
def test_malformed_uids_never_become_paths(uid):
    name = spool_name(uid)
    assert "/" not in name and ".." not in name and name.endswith(".dcm")
    assert len(name) < 80


def _info(uid: str = "1.2.3.4") -> InstanceInfo:
    return InstanceInfo(uid, "1.2.840.10008.5.1.4.1.1.2", "1.2.3", "1.2.3.1", "1.2.840.10008.1.2.1")


def test_put_leaves_only_the_final_file(tmp_path):
    spool = Spool(tmp_path)
    path = spool.put(b"data", _info())
    assert path == tmp_path / "queue" / "1.2.3.4.dcm"
    assert path.read_bytes() == b"data"
    assert list(spool.tmp.iterdir()) == []
    assert spool.depth() == 1


def test_full_disk_refuses_before_writing(tmp_path):
    spool = Spool(tmp_path, min_free_bytes=1 << 62)
    with pytest.raises(OutOfResources):
        spool.put(b"data", _info())
    assert spool.depth() == 0 and list(spool.tmp.iterdir()) == []


def test_claim_protects_a_new_arrival_of_the_same_instance(tmp_path):
    spool = Spool(tmp_path)
    path = spool.put(b"old", _info())
    sending = spool.claim(path)
    spool.put(b"new", _info())  # the modality sends it again meanwhile
    spool.remove(sending)
    assert path.read_bytes() == b"new"


def test_unclaim_prefers_the_newer_copy(tmp_path):
    spool = Spool(tmp_path)
    sending = spool.claim(spool.put(b"old", _info()))
    spool.put(b"new", _info())
    back = spool.unclaim(sending)
    assert back.read_bytes() == b"new" and not sending.exists()


def test_restart_recovers_inflight_and_drops_half_written_files(tmp_path):
    spool = Spool(tmp_path)
    spool.claim(spool.put(b"x", _info()))
    (spool.tmp / "abc.part").write_bytes(b"half")
    again = Spool(tmp_path)
    assert again.clean_tmp() == 1
    assert again.recover_inflight() == 1
    assert again.depth() == 1


def test_read_info_reads_identifiers_and_source_aet(tmp_path):
    ds = pydicom.dcmread(DATA / "single" / "CT_small.dcm")
    ds.file_meta.SourceApplicationEntityTitle = "CT1"
    path = tmp_path / "x.dcm"
    ds.save_as(path, enforce_file_format=True)
    info = read_info(path)
    assert info.sop_instance_uid == ds.SOPInstanceUID
    assert info.calling_aet == "CT1"
