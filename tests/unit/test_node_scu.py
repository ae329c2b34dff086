"""The forwarder's lean SCU speaks PS3.8 as pynetdicom understands it."""

from __future__ import annotations

import struct

from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, JPEGLSLossless
from pynetdicom.pdu import A_ASSOCIATE_RQ, P_DATA_TF

from dicom_node.scu import (
    encode_associate_rq,
    encode_store_rq,
    parse_associate_ac,
    parse_command,
    pdata_pdus,
)


def test_associate_rq_decodes_with_pynetdicom():
    pdu, proposed = encode_associate_rq(
        "YIGONG-NODE", "YIGONG", [(CTImageStorage, ExplicitVRLittleEndian),
                                  (CTImageStorage, JPEGLSLossless)])
    rq = A_ASSOCIATE_RQ()
    rq.decode(pdu)
    assert rq.called_ae_title == "YIGONG" and rq.calling_ae_title == "YIGONG-NODE"
    contexts = rq.presentation_context
    assert [c.context_id for c in contexts] == [1, 3] == sorted(proposed)
    assert contexts[1].transfer_syntax == [JPEGLSLossless]
    assert rq.user_information.maximum_length > 0


def test_associate_ac_keeps_only_accepted_contexts():
    proposed = {1: ("a", "t1"), 3: ("b", "t2")}

    def cx(cx_id: int, result: int) -> bytes:
        sub = struct.pack(">BBH", 0x40, 0, 2) + b"t1"
        body = struct.pack(">BBBB", cx_id, 0, result, 0) + sub
        return struct.pack(">BBH", 0x21, 0, len(body)) + body

    user = struct.pack(">BBH", 0x51, 0, 4) + struct.pack(">I", 16384)
    body = b"\x00" * 68 + cx(1, 0) + cx(3, 3) + struct.pack(">BBH", 0x50, 0, len(user)) + user
    accepted, max_pdu = parse_associate_ac(body, proposed)
    assert accepted == {("a", "t1"): 1}
    assert max_pdu == 16384


def test_store_rq_command_round_trips():
    cmd = encode_store_rq(7, CTImageStorage, "1.2.3.4.5")
    elems = parse_command(cmd)
    assert struct.unpack("<H", elems[0x0100])[0] == 0x0001  # C-STORE-RQ
    assert struct.unpack("<H", elems[0x0110])[0] == 7
    assert elems[0x1000].rstrip(b"\x00") == b"1.2.3.4.5"
    assert struct.unpack("<I", elems[0x0000])[0] == len(cmd) - 12


def test_pdata_fragments_respect_the_peer_limit():
    payload = bytes(range(256)) * 200  # 51200 bytes
    stream = pdata_pdus(5, payload, False, 16384)
    pos, data, flags = 0, b"", []
    while pos < len(stream):
        length = struct.unpack_from(">I", stream, pos + 2)[0]
        assert length <= 16384
        pdu = P_DATA_TF()
        pdu.decode(stream[pos:pos + 6 + length])
        for item in pdu.presentation_data_value_items:
            assert item.context_id == 5
            data += item.presentation_data_value[1:]
            flags.append(item.presentation_data_value[0])
        pos += 6 + length
    assert data == payload
    assert flags[-1] == 0x02 and all(f == 0x00 for f in flags[:-1])


def test_set_nodelay_disables_nagle_on_the_association_socket():
    import socket
    from types import SimpleNamespace

    from dicom_node.transports import set_nodelay

    with socket.socket() as sock:
        event = SimpleNamespace(assoc=SimpleNamespace(dul=SimpleNamespace(
            socket=SimpleNamespace(socket=sock))))
        set_nodelay(event)
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
