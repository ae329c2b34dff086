"""HL7 parsing into typed lab objects, charsets, and ACKs checked with hl7apy."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.parser import parse_message

from lis_bridge import charset
from lis_bridge.acks import AckOutcome, build_ack, parse_ack
from lis_bridge.hl7_map import (
    ErrorCode,
    Hl7ContentError,
    Hl7Rejected,
    MessageKind,
    check_acceptable,
    parse_body,
    parse_dtm,
    parse_header,
)

SH = ZoneInfo("Asia/Shanghai")
VERSIONS = ["2.3", "2.4", "2.5", "2.5.1", "2.6"]

ORU = (
    "MSH|^~\\&|LIS|BRANCH1|YIGONG|HUB|20261126080000||ORU^R01^ORU_R01|C1|P|2.5.1\r"
    "PID|1||L1^^^B1^MR~110101199003074477^^^CHN^NI||WANG^XIAODONG||19900307|M\r"
    "ORC|RE|PL1^HIS|FL1^LIS\r"
    "OBR|1|PL1^HIS|FL1^LIS|CHEM^Chemistry^L|R||20261126073000|||||||||||||||20261126075500|||F\r"
    "OBX|1|NM|K^Potassium^L||6.8|mmol/L|3.5-5.5|HH|||F|||20261126073000\r"
    "NTE|1||hemolysed \\T\\ repeated\r"
    "OBX|2|SN|NA^Sodium^L||<^120|mmol/L|135-145|L|||C\r"
)


def _parse(text: str):
    msg, header = parse_header(text)
    kind = check_acceptable(header, VERSIONS, ["P", "T"])
    return parse_body(msg, header, kind, SH)


def test_oru_maps_to_typed_objects():
    m = _parse(ORU)
    assert m.kind == MessageKind.RESULT
    assert m.patient.local_id == "L1" and m.patient.national_id == "110101199003074477"
    assert m.patient.name == "WANG XIAODONG" and m.patient.sex == "M"
    (rs,) = m.result_sets
    assert (rs.placer_order_number, rs.filler_order_number) == ("PL1^HIS", "FL1^LIS")
    assert rs.result_status == "F" and rs.notes == ["hemolysed & repeated"]
    # 07:30 Beijing time is 23:30 UTC the day before.
    assert rs.observed_at == datetime(2026, 11, 25, 23, 30, tzinfo=UTC)
    k, na = rs.observations
    assert (k.code, k.value_type, k.numeric_value, k.units, k.reference_range, k.abnormal_flags,
            k.result_status) == ("K", "NM", 6.8, "mmol/L", "3.5-5.5", ("HH",), "F")
    assert (na.comparator, na.numeric_value, na.result_status) == ("<", 120.0, "C")


@pytest.mark.parametrize("value", ["abc", "4,1", "1.2.3", "--1", "NaN", "1e5"])
def test_garbage_nm_is_a_content_error_naming_obx5(value):
    with pytest.raises(Hl7ContentError) as info:
        _parse(ORU.replace("||6.8|", f"||{value}|"))
    assert info.value.location == "OBX^1^5" and info.value.code == ErrorCode.DATA_TYPE


@pytest.mark.parametrize(("text", "code", "location"), [
    ("not hl7", ErrorCode.SEGMENT_SEQUENCE, "MSH"),
    (ORU.replace("|C1|", "||"), ErrorCode.REQUIRED_FIELD_MISSING, "MSH^1^10"),
    (ORU.replace("|2.5.1\r", "|\r", 1), ErrorCode.REQUIRED_FIELD_MISSING, "MSH^1^12"),
    (ORU.replace("|2.5.1\r", "|2.9\r", 1), ErrorCode.UNSUPPORTED_VERSION, "MSH^1^12"),
    (ORU.replace("|C1|P|", "|C1|D|"), ErrorCode.UNSUPPORTED_PROCESSING_ID, "MSH^1^11"),
    (ORU.replace("ORU^R01^ORU_R01", "ADT^A01"), ErrorCode.UNSUPPORTED_MESSAGE_TYPE, "MSH^1^9"),
    (ORU.replace("ORU^R01^ORU_R01", "ORU^R30"), ErrorCode.UNSUPPORTED_EVENT, "MSH^1^9"),
])
def test_rejections(text, code, location):
    with pytest.raises(Hl7Rejected) as info:
        _parse(text)
    assert (info.value.code, info.value.location, info.value.ack_code) == (code, location, "AR")


def test_lf_separated_message_is_normalised():
    assert _parse(ORU.replace("\r", "\n")).result_sets[0].observations[0].numeric_value == 6.8


def test_dtm_offsets_and_partial_precision():
    assert parse_dtm("200808151030-0700", SH) == datetime(2008, 8, 15, 17, 30, tzinfo=UTC)
    assert parse_dtm("2008", SH) == datetime(2007, 12, 31, 16, 0, tzinfo=UTC)
    assert parse_dtm("20081345", SH) is None
    assert parse_dtm("", SH) is None


@pytest.mark.parametrize(("declared", "codec"), [
    ("", "ascii"), ("UNICODE UTF-8", "utf-8"), ("GB 18030-2000", "gb18030"), ("8859/1", "latin-1"),
])
def test_charset_decoding(declared, codec):
    text = ORU.replace("|2.5.1\r", f"|2.5.1||||||{declared}\r", 1)
    if codec in ("utf-8", "gb18030"):
        text = text.replace("WANG^XIAODONG", "王^小东")
    raw = text.encode(codec)
    decoded, msh18, used = charset.decode(raw)
    assert decoded == text and msh18 == declared and used == charset.codec_for(declared)


def test_unknown_charset_is_refused():
    with pytest.raises(charset.UnsupportedCharset):
        charset.decode(ORU.replace("|2.5.1\r", "|2.5.1||||||KLINGON\r", 1).encode())


def test_msh18_is_read_before_decoding_gb18030():
    raw = ORU.replace("|2.5.1\r", "|2.5.1||||||GB 18030-2000\r", 1).replace(
        "WANG^XIAODONG", "王^小东").encode("gb18030")
    assert charset.msh18(raw) == "GB 18030-2000"


@pytest.mark.parametrize("version", ["2.3", "2.4", "2.5", "2.5.1", "2.6"])
@pytest.mark.parametrize("code", ["AA", "AE", "AR"])
def test_acks_are_valid_hl7_per_hl7apy(version, code):
    text = ORU.replace("|2.5.1\r", f"|{version}\r", 1).replace("ORU^R01^ORU_R01", "ORU^R01")
    _msg, header = parse_header(text)
    error = None if code == "AA" else (Hl7Rejected if code == "AR" else Hl7ContentError)(
        ErrorCode.DATA_TYPE, "OBX^1^5", "value is not a number")
    ack = build_ack(header, AckOutcome(code, error), application="YIGONG-LIS",
                    facility="YIGONG", now=datetime(2026, 11, 26, tzinfo=UTC))
    # hl7apy cannot name a v2.3 ACK structure from a two-component MSH-9 in strict mode.
    level = VALIDATION_LEVEL.TOLERANT if version == "2.3" else VALIDATION_LEVEL.STRICT
    parsed = parse_message(ack, validation_level=level, find_groups=False)
    if level == VALIDATION_LEVEL.STRICT:
        assert parsed.validate()
    assert parsed.msa.msa_1.value == code and parsed.msa.msa_2.value == "C1"
    assert parsed.msh.msh_12.value == version
    assert parse_ack(ack).code == code
    if error is not None:
        assert "OBX^1^5" in ack and "102" in ack
