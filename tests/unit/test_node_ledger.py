"""Ledger: manifest readiness, late instances, reconcile after a crash, status numbers."""

from __future__ import annotations

from dicom_node.ledger import Ledger
from dicom_node.spool import InstanceInfo


def _info(sop: str, study: str = "1.2.3", series: str = "1.2.3.1") -> InstanceInfo:
    return InstanceInfo(sop, "1.2.840.10008.5.1.4.1.1.2", study, series, "1.2.840.10008.1.2.1",
                        calling_aet="CT1", size=10)


def test_study_is_ready_only_when_quiet_and_fully_forwarded(tmp_path):
    led = Ledger(tmp_path / "l.db")
    led.record_received(_info("1"), now=100)
    led.record_received(_info("2", series="1.2.3.2"), now=101)
    led.record_forwarded("1", now=102)
    assert led.studies_ready_for_manifest(now=200, quiet_seconds=30) == []  # "2" queued
    led.record_forwarded("2", now=103)
    assert led.studies_ready_for_manifest(now=120, quiet_seconds=30) == []  # not quiet yet
    assert led.studies_ready_for_manifest(now=200, quiet_seconds=30) == ["1.2.3"]
    series, aet, last = led.manifest("1.2.3")
    assert series == {"1.2.3.1": ["1"], "1.2.3.2": ["2"]}
    assert aet == "CT1" and last == 101


def test_late_instance_reopens_a_posted_study(tmp_path):
    led = Ledger(tmp_path / "l.db")
    led.record_received(_info("1"), now=100)
    led.record_forwarded("1", now=101)
    _, _, last = led.manifest("1.2.3")
    assert led.mark_manifest_posted("1.2.3", last)
    assert led.studies_ready_for_manifest(now=500, quiet_seconds=1) == []
    led.record_received(_info("2"), now=600)
    led.record_forwarded("2", now=601)
    assert led.studies_ready_for_manifest(now=700, quiet_seconds=1) == ["1.2.3"]


def test_manifest_built_before_a_late_instance_does_not_close_the_study(tmp_path):
    led = Ledger(tmp_path / "l.db")
    led.record_received(_info("1"), now=100)
    led.record_forwarded("1", now=101)
    _, _, last = led.manifest("1.2.3")
    led.record_received(_info("2"), now=102)  # arrives while the POST is in flight
    assert not led.mark_manifest_posted("1.2.3", last)


def test_reconcile_after_a_crash(tmp_path):
    led = Ledger(tmp_path / "l.db")
    led.record_received(_info("gone"), now=100)  # forwarded, but the update was lost
    led.reconcile({"new": _info("new")}, now=200)  # file spooled, insert lost
    st = led.status(now=210)
    assert st.queue_depth == 1 and st.forwarded_total == 1
    assert led.queued_uids() == {"new"}


def test_quarantined_instances_do_not_block_the_manifest(tmp_path):
    led = Ledger(tmp_path / "l.db")
    led.record_received(_info("1"), now=100)
    led.record_received(_info("2"), now=100)
    led.record_forwarded("1", now=101)
    led.record_quarantined("2", "hub refused")
    assert led.studies_ready_for_manifest(now=200, quiet_seconds=1) == ["1.2.3"]
    st = led.status(now=200)
    assert st.quarantined == 1 and "hub refused" in st.last_error


def test_origin_is_needed_once_something_was_forwarded(tmp_path):
    led = Ledger(tmp_path / "l.db")
    led.record_received(_info("1"), now=100)
    assert led.studies_needing_origin() == []
    led.record_forwarded("1", now=101)
    assert led.studies_needing_origin() == ["1.2.3"]
    led.mark_origin_posted("1.2.3")
    assert led.studies_needing_origin() == []


def test_status_counts_rate_over_the_last_minute(tmp_path):
    led = Ledger(tmp_path / "l.db")
    for i in range(6):
        led.record_received(_info(str(i)), now=100)
        led.record_forwarded(str(i), now=100 + i * 20)
    st = led.status(now=200)
    assert st.forwarded_last_minute == 4  # at 140, 160, 180 and 200; 100 and 120 are older
    assert st.rate_per_second == st.forwarded_last_minute / 60


def test_prune_forgets_old_manifested_studies_only(tmp_path):
    led = Ledger(tmp_path / "l.db")
    led.record_received(_info("1", study="old"), now=100)
    led.record_forwarded("1", now=101)
    _, _, last = led.manifest("old")
    led.mark_manifest_posted("old", last, now=102)
    led.record_received(_info("2", study="pending"), now=100)  # never forwarded
    led.record_received(_info("3", study="new"), now=5000)
    led.record_forwarded("3", now=5001)
    assert led.prune(older_than=1000) == 1
    assert led.queued_uids() == {"2"}
    assert led.status(now=6000).received_total == 2
