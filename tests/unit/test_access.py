"""The capability table (hub.domain.access): what each role may do, as GET /api/auth/me lists it."""

import pytest

from hub.domain.access import (
    CAPABILITY_ROLES,
    READER_SPECIALTY,
    Capability,
    Role,
    has_capability,
    user_capabilities,
)
from hub.domain.signoff import SignoffRules

RULES = SignoffRules(verify_ranks=frozenset({"attending", "chief"}))


def test_every_capability_is_in_the_table():
    assert set(CAPABILITY_ROLES) == set(Capability)


@pytest.mark.parametrize("role", list(Role))
def test_user_capabilities_follow_the_table(role):
    caps = user_capabilities(role, "chief", RULES)
    assert caps == [c for c in Capability if has_capability(role, c)]


@pytest.mark.parametrize("role", list(READER_SPECIALTY))
@pytest.mark.parametrize(("rank", "verifies"), [("attending", True), ("chief", True),
                                                ("resident", False), (None, False)])
def test_reader_verifies_only_with_a_verifying_rank(role, rank, verifies):
    caps = user_capabilities(role, rank, RULES)
    assert Capability.REPORT_WRITE in caps
    assert (Capability.REPORT_VERIFY in caps) is verifies


def test_readers_do_not_order_and_branch_staff_do_not_report():
    assert not has_capability(Role.RADIOLOGIST, Capability.ORDER_WRITE)
    assert has_capability(Role.TECHNICIAN, Capability.ORDER_WRITE)
    assert has_capability(Role.CLINICIAN, Capability.ORDER_WRITE)
    for role in (Role.TECHNICIAN, Role.CLINICIAN, Role.ADMIN):
        assert not [c for c in user_capabilities(role, "chief", RULES)
                    if c.value.startswith("report.")]
