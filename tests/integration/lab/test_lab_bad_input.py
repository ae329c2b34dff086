"""Bad input over MLLP: each gets the right ACK (or a clean close), is stored, harms nothing."""

from __future__ import annotations

import socket
import time

from sqlalchemy import func, select

from hub.db.lab_models import LabCriticalAlert, LabObservation, LabRawMessage, LabResultSet
from hub.db.models import WorklistItem
from hub.db.session import session_scope
from lis_bridge.mllp import frame

from .conftest import RunningBridge, SyncMllp, err, msa, start_bridge


def oru(control_id: str, value: str = "4.1", *, version: str = "2.5.1", msg_type: str = "ORU^R01",
        flags: str = "", code: str = "K^Potassium^L", charset: str = "", name: str | None = None,
        status: str = "F", filler: str | None = None, processing: str = "P") -> bytes:
    """A small lab result message (ASCII unless ``charset`` says otherwise)."""
    # A distinct name per message: identical name + birth date would make every new patient a
    # suggested duplicate of every earlier one (the MPI's job, not what these tests measure).
    name = name or f"TEST^{control_id}"
    segs = [
        f"MSH|^~\\&|LIS|BRANCH1|YIGONG|HUB|20261126080000||{msg_type}|{control_id}|{processing}|"
        f"{version}||||||{charset}",
        f"PID|1||P{control_id}^^^BRANCH1^MR||{name}||19600101|M",
        f"OBR|1|PL{control_id}^HIS|{filler or 'F' + control_id}^LIS|CHEM^Chemistry^L|||"
        f"20261126073000|||||||||||||||20261126075500|||{status}",
        f"OBX|1|NM|{code}||{value}|mmol/L|3.5-5.5|{flags}|||{status}|||20261126073000",
    ]
    text = "\r".join(segs) + "\r"
    codec = {"GB 18030-2000": "gb18030", "UNICODE UTF-8": "utf-8"}.get(charset, "ascii")
    return text.encode(codec)


def _row(url: str, **where) -> LabRawMessage:
    with session_scope(url) as s:
        q = select(LabRawMessage)
        for k, v in where.items():
            q = q.where(getattr(LabRawMessage, k) == v)
        return s.scalars(q.order_by(LabRawMessage.id.desc())).first()


def test_bad_input_on_one_connection_leaves_good_messages_working(bridge: RunningBridge):
    c = SyncMllp(bridge.port)
    # Not HL7 at all.
    ack = c.send(b"hello, this is not HL7")
    assert msa(ack)[1] == "AR" and "100^" in err(ack)
    # Bad MSH: invalid encoding characters.
    ack = c.send(b"MSH|^^^^|LIS|BRANCH1|||20261126||ORU^R01|X1|P|2.5.1\rPID|1\r")
    assert msa(ack)[1] == "AR"
    # Unknown message type.
    ack = c.send(oru("BAD-TYPE", msg_type="ZZZ^Z01"))
    assert msa(ack)[1:3] == ["AR", "BAD-TYPE"] and "200^" in err(ack)
    # Unknown event of a known type.
    ack = c.send(oru("BAD-EVENT", msg_type="ORU^R30"))
    assert msa(ack)[1] == "AR" and "201^" in err(ack)
    # Wrong version.
    ack = c.send(oru("BAD-VER", version="3.0"))
    assert msa(ack)[1] == "AR" and "MSH^1^12" in err(ack) and "203^" in err(ack)
    # Processing ID D (debugging) is not accepted.
    ack = c.send(oru("BAD-PID", processing="D"))
    assert msa(ack)[1] == "AR" and "202^" in err(ack)
    # Garbage in an NM value: AE naming OBX-5.
    ack = c.send(oru("BAD-NM", value="4,1 mmol"))
    assert msa(ack)[1:3] == ["AE", "BAD-NM"]
    assert "OBX^1^5" in err(ack) and "102^" in err(ack)
    # A result without PID: AE naming PID.
    no_pid = b"\r".join(line for line in oru("NO-PID").split(b"\r") if not line.startswith(b"PID"))
    ack = c.send(no_pid)
    assert msa(ack)[1] == "AE" and "|PID|" in err(ack)
    # After all that, the same connection still takes a good message.
    ack = c.send(oru("GOOD-1"))
    assert msa(ack)[1:3] == ["AA", "GOOD-1"]
    c.close()

    with session_scope(bridge.url) as s:
        rows = s.scalars(select(LabRawMessage).order_by(LabRawMessage.id)).all()
        assert [r.ack_code for r in rows] == ["AR"] * 6 + ["AE", "AE", "AA"]
        assert rows[0].raw == b"hello, this is not HL7" and rows[0].control_id is None
        bad_nm = next(r for r in rows if r.control_id == "BAD-NM")
        assert (bad_nm.error_location, bad_nm.error_code) == ("OBX^1^5", 102)
        assert bad_nm.ack.startswith(b"MSH|")
        # Only the good message produced records.
        assert s.scalar(select(func.count()).select_from(LabResultSet)) == 1
        assert s.scalar(select(func.count()).select_from(WorklistItem)) == 1


def test_oversize_message_is_refused_and_the_connection_goes_on(db_url: str):
    running, stop = start_bridge(db_url, max_message_bytes=4096)
    try:
        c = SyncMllp(running.port)
        big = oru("BIG-1").replace(b"OBX|1", b"NTE|1||" + b"x" * 10_000 + b"\rOBX|1")
        ack = c.send(big)
        assert msa(ack)[1:3] == ["AR", "BIG-1"]
        # Oversize frame followed by a good one in the same TCP write.
        c.send_raw(frame(big.replace(b"BIG-1", b"BIG-2")) + frame(oru("AFTER-BIG")))
        assert msa(c.receive())[1:3] == ["AR", "BIG-2"]
        assert msa(c.receive())[1:3] == ["AA", "AFTER-BIG"]
        c.close()
    finally:
        stop()
    row = _row(db_url, control_id="BIG-1")
    assert row.ack_code == "AR" and "larger than 4096" in row.error_text
    assert row.raw.startswith(b"MSH|")  # the head is kept for inspection


def test_half_a_frame_then_the_connection_dies(bridge: RunningBridge):
    sock = socket.create_connection(("127.0.0.1", bridge.port))
    msg = frame(oru("HALF-1"))
    sock.sendall(msg[: len(msg) // 2])
    time.sleep(0.2)
    sock.close()
    # Meanwhile and afterwards the server serves others normally.
    c = SyncMllp(bridge.port)
    assert msa(c.send(oru("WHOLE-1")))[1] == "AA"
    c.close()
    deadline = time.time() + 10
    while time.time() < deadline:
        with session_scope(bridge.url) as s:
            broken = s.scalars(select(LabRawMessage).where(LabRawMessage.ack_code == "--")).all()
        if broken:
            break
        time.sleep(0.1)
    assert len(broken) == 1
    assert broken[0].raw == msg[1: len(msg) // 2] and broken[0].control_id is None
    assert "inside frame" in broken[0].error_text
    with session_scope(bridge.url) as s:
        assert s.scalar(select(func.count()).select_from(LabResultSet)) == 1  # WHOLE-1 only


def test_split_and_merged_frames(bridge: RunningBridge):
    c = SyncMllp(bridge.port)
    data = frame(oru("SPLIT-1")) + frame(oru("SPLIT-2")) + frame(oru("SPLIT-3"))
    # Byte-by-byte for the first frame, then the other two in a single write.
    first_len = len(frame(oru("SPLIT-1")))
    for i in range(first_len):
        c.send_raw(data[i:i + 1])
    assert msa(c.receive())[2] == "SPLIT-1"
    c.send_raw(data[first_len:])
    assert [msa(c.receive())[2] for _ in range(2)] == ["SPLIT-2", "SPLIT-3"]
    c.close()


def test_critical_values_make_the_item_stat_and_raise_alerts(bridge: RunningBridge):
    c = SyncMllp(bridge.port)
    # OBX-8 HH: critical by flag.
    assert msa(c.send(oru("CRIT-1", value="7.1", flags="HH")))[1] == "AA"
    # No flag, but potassium 2.1 is below the configured critical low (2.8).
    assert msa(c.send(oru("CRIT-2", value="2.1")))[1] == "AA"
    # Normal potassium: routine.
    assert msa(c.send(oru("NORMAL-1", value="4.2")))[1] == "AA"
    # A re-sent critical (new MSH-10, same filler, same value) does not page twice.
    assert msa(c.send(oru("CRIT-1B", value="7.1", flags="HH", filler="FCRIT-1")))[1] == "AA"
    c.close()
    with session_scope(bridge.url) as s:
        items = {i.natural_key.split("|")[1]: i for i in s.scalars(select(WorklistItem))}
        assert items["FCRIT-1^LIS"].priority == "stat" and items["FCRIT-1^LIS"].is_critical
        assert "HH" in items["FCRIT-1^LIS"].critical_reason
        assert items["FCRIT-2^LIS"].is_critical and "below critical low" in \
            items["FCRIT-2^LIS"].critical_reason
        assert items["FNORMAL-1^LIS"].priority == "routine"
        assert not items["FNORMAL-1^LIS"].is_critical
        alerts = s.scalars(select(LabCriticalAlert).order_by(LabCriticalAlert.id)).all()
        assert [(a.test_code, a.value, a.status) for a in alerts] == \
            [("K", "7.1", "open"), ("K", "2.1", "open")]
        assert all(a.notified_at is None and a.acknowledged_at is None for a in alerts)
        obs = s.scalars(select(LabObservation).where(LabObservation.is_critical)).all()
        assert len(obs) == 2


def test_chinese_name_in_gb18030_round_trips(bridge: RunningBridge):
    c = SyncMllp(bridge.port)
    raw = oru("GB-1", name="王^小东", charset="GB 18030-2000").replace(
        b"OBX|1", "NTE|1||标本溶血\rOBX|1".encode("gb18030"))
    assert "王".encode("gb18030") in raw  # really GB 18030 bytes on the wire
    ack = c.send(raw)
    c.close()
    # The reply is in the sender's charset and says so in MSH-18.
    text = ack.decode("gb18030")
    assert text.split("\r")[0].endswith("|GB 18030-2000")
    assert msa(ack, "gb18030")[1:3] == ["AA", "GB-1"]
    with session_scope(bridge.url) as s:
        item = s.scalar(select(WorklistItem))
        assert item.patient_name == "王小东"
        rs = s.scalar(select(LabResultSet))
        assert rs.notes == ["标本溶血"]
        raw_row = s.scalar(select(LabRawMessage))
        assert raw_row.raw == raw and raw_row.charset == "gb18030"
        assert raw_row.ack == ack


def test_utf8_declared_and_undeclared(bridge: RunningBridge):
    c = SyncMllp(bridge.port)
    ack = c.send(oru("U8-1", name="李^四", charset="UNICODE UTF-8"))
    assert msa(ack, "utf-8")[1] == "AA"
    # No MSH-18 (ASCII by default) but UTF-8 bytes: decoded as UTF-8 rather than refused.
    ack = c.send(oru("U8-2", name="ASCII^OK").replace(b"ASCII", "张".encode()))
    assert msa(ack)[1] == "AA"
    c.close()
    with session_scope(bridge.url) as s:
        names = sorted(i.patient_name for i in s.scalars(select(WorklistItem)))
    assert names == ["张OK", "李四"]


def test_nul_characters_get_ae_naming_the_field_and_the_frame_is_kept(bridge: RunningBridge):
    c = SyncMllp(bridge.port)
    ack = c.send(oru("NUL-1").replace(b"mmol/L", b"mm\x00ol/L"))
    assert msa(ack)[1:3] == ["AE", "NUL-1"] and "|OBX^1^6|" in err(ack) and "102^" in err(ack)
    # In MSH too: the sending facility loses the NUL in the stored key, the frame keeps it.
    ack = c.send(oru("NUL-2").replace(b"|BRANCH1|", b"|BRANCH\x001|", 1))
    assert msa(ack)[1:3] == ["AE", "NUL-2"] and "|MSH^1^4|" in err(ack)
    assert msa(c.send(oru("AFTER-NUL")))[1] == "AA"
    c.close()
    assert b"mm\x00ol/L" in bytes(_row(bridge.url, control_id="NUL-1").raw)
    row = _row(bridge.url, control_id="NUL-2")
    assert row.sending_facility == "BRANCH1" and b"BRANCH\x001" in bytes(row.raw)
