"""The ER7 splitter: HL7 field numbering, separators from MSH, escapes left to python-hl7."""

from __future__ import annotations

import pytest

from lis_bridge import er7


def test_fields_are_numbered_as_in_hl7_also_in_msh() -> None:
    msg = er7.parse("MSH|^~\\&|LIS|BRANCH1|||20261126||ORU^R01|C1|P|2.5.1\r"
                    "PID|1||P1^^^BRANCH1^MR~110101^^^CHN^NI||王^五\r\r")
    msh, pid = msg.segment("MSH"), msg.segment("PID")
    assert msh[1] == "|" and msh[2] == "^~\\&" and msh[3] == "LIS" and msh[10] == "C1"
    assert pid[3] == "P1^^^BRANCH1^MR~110101^^^CHN^NI" and pid[5] == "王^五"
    assert [s[0] for s in msg] == ["MSH", "PID"]  # the empty segment is dropped


def test_separators_come_from_the_message() -> None:
    msg = er7.parse("MSH#*@!%#LIS#B\rOBX#1#NM#K*Potassium#1#4.1@4.2\r")
    assert msg.separators == "\r#@*%" and msg.esc == "!"
    assert msg.segment("OBX")[5] == "4.1@4.2"


def test_escapes_are_decoded_on_request() -> None:
    msg = er7.parse("MSH|^~\\&|LIS\rNTE|1||a\\F\\b\\S\\c\\T\\d\\R\\e\\E\\f\r")
    assert msg.unescape(msg.segment("NTE")[3]) == "a|b^c&d~e\\f"


def test_a_missing_segment_is_a_key_error() -> None:
    with pytest.raises(KeyError):
        er7.parse("MSH|^~\\&|LIS\r").segment("PID")
