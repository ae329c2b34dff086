"""Node logs: one JSON object per line with the identifiers passed in ``extra``."""

from __future__ import annotations

import json
import logging

import pytest

from dicom_node.logging import configure_logging


@pytest.fixture
def restore_root():
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    yield
    root.handlers[:], root.level = saved[0], saved[1]


def test_json_lines_carry_extra_identifiers(capsys, restore_root):
    configure_logging("INFO", json_lines=True)
    logging.getLogger("dicom_node.test").warning(
        "store rejected", extra={"sop_instance_uid": "1.2.3", "status": "0xC000"})
    line = capsys.readouterr().err.strip().splitlines()[-1]
    record = json.loads(line)
    assert record["msg"] == "store rejected" and record["level"] == "warning"
    assert record["sop_instance_uid"] == "1.2.3" and record["status"] == "0xC000"


def test_pynetdicom_chatter_is_quiet_unless_debug(restore_root):
    configure_logging("INFO")
    assert logging.getLogger("pynetdicom").level == logging.WARNING
