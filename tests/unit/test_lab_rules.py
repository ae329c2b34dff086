"""Critical values (危急值) and the lab order lifecycle: pure rules."""

from __future__ import annotations

import pytest

from hub.domain.lab_rules import (
    CriticalRange,
    OrderStatus,
    ResultStatus,
    advance_order,
    assess_critical,
    parse_ranges,
)

RANGES = parse_ranges({"K": [2.8, 6.2], "GLU": [None, 22.2]})


@pytest.mark.parametrize("flag", ["HH", "LL", "AA", "hh", ">", "<"])
def test_critical_flags_make_a_value_critical(flag):
    finding = assess_critical("XYZ", 1.0, [flag], {})
    assert finding is not None and flag.upper() in finding.reason


@pytest.mark.parametrize("flags", [[], ["H"], ["L"], ["N"], ["A"], [""]])
def test_ordinary_flags_are_not_critical(flags):
    assert assess_critical("XYZ", 1.0, flags, {}) is None


@pytest.mark.parametrize(("code", "value", "critical"), [
    ("K", 2.7, True), ("K", 2.8, False), ("K", 6.2, False), ("K", 6.3, True),
    ("GLU", 30.0, True), ("GLU", 0.5, False), ("NA", 100.0, False), ("K", None, False),
    ("K", float("nan"), False),
])
def test_configured_ranges(code, value, critical):
    assert (assess_critical(code, value, [], RANGES) is not None) is critical


def test_bad_range_configuration_is_refused():
    with pytest.raises(ValueError):
        CriticalRange("K")
    with pytest.raises(ValueError):
        CriticalRange("K", 7.0, 3.0)
    with pytest.raises(ValueError):
        parse_ranges({"K": [1.0]})


class TestOrderStatus:
    @pytest.mark.parametrize(("current", "reported", "expected"), [
        (None, OrderStatus.ORDERED, OrderStatus.ORDERED),
        (OrderStatus.ORDERED, OrderStatus.COLLECTED, OrderStatus.COLLECTED),
        (OrderStatus.COLLECTED, OrderStatus.RECEIVED, OrderStatus.RECEIVED),
        (OrderStatus.RECEIVED, OrderStatus.RESULTED, OrderStatus.RESULTED),
        (OrderStatus.RESULTED, OrderStatus.VERIFIED, OrderStatus.VERIFIED),
    ])
    def test_moves_forward(self, current, reported, expected):
        assert advance_order(current, reported) == expected

    def test_late_collection_notice_does_not_move_a_result_back(self):
        assert advance_order(OrderStatus.RESULTED, OrderStatus.COLLECTED) == OrderStatus.RESULTED

    def test_cancel_wins_except_over_verified(self):
        assert advance_order(OrderStatus.RECEIVED, OrderStatus.CANCELLED) == OrderStatus.CANCELLED
        assert advance_order(OrderStatus.VERIFIED, OrderStatus.CANCELLED) == OrderStatus.VERIFIED
        assert advance_order(OrderStatus.CANCELLED, OrderStatus.RESULTED) == OrderStatus.CANCELLED


def test_result_status_from_wire():
    assert ResultStatus.from_hl7("c", ResultStatus.FINAL) == ResultStatus.CORRECTED
    assert ResultStatus.from_hl7("", ResultStatus.FINAL) == ResultStatus.FINAL
    assert ResultStatus.from_hl7("?", ResultStatus.PRELIMINARY) == ResultStatus.PRELIMINARY
