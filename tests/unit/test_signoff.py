"""Two-level sign-off rules: one class per report status, as the worklist table tests are."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from hub.domain.errors import Conflict, InvalidInput, InvalidTransition, NotPermitted
from hub.domain.signoff import (
    REPORT_TRANSITIONS,
    Action,
    CertificateState,
    Refusal,
    ReportStatus,
    Signer,
    SignoffRules,
    VersionKind,
    can_amend,
    can_issue_preliminary,
    can_submit,
    can_verify,
    can_write,
    check_certificate,
    ensure,
    next_status,
    to_minute,
)

NOW = datetime(2026, 11, 26, 9, 30, 41, tzinfo=UTC)
RULES = SignoffRules(verify_ranks=frozenset({"attending", "chief"}),
                     single_signoff=frozenset({"lab_review"}))
CERT = CertificateState(NOW - timedelta(days=1), NOW + timedelta(days=365))
WRITER = Signer(1, "radiologist", "attending")
CHIEF = Signer(2, "radiologist", "chief")
RESIDENT = Signer(3, "radiologist", "resident")
NO_RANK = Signer(4, "radiologist", None)
CARDIO = Signer(5, "cardiologist", "chief")
CLINICIAN = Signer(6, "clinician", "chief")


def verify(signer=CHIEF, status=ReportStatus.SUBMITTED, writer=1, exam="ct_head",
           content=True, cert=CERT, specialty="radiology"):
    return can_verify(signer, specialty, exam, status, writer, content, RULES, cert, NOW)


@pytest.mark.parametrize(("key", "after"), sorted(REPORT_TRANSITIONS.items(), key=str))
def test_every_table_row_is_what_next_status_returns(key, after):
    assert next_status(key[0], key[1]) == after


@pytest.mark.parametrize("action", [Action.VERIFY, Action.WRITE, Action.SUBMIT,
                                    Action.PRELIMINARY])
def test_final_report_refuses_everything_but_addendum_and_amendment(action):
    with pytest.raises(InvalidTransition):
        next_status(ReportStatus.FINAL, action)


class TestSubmitted:
    def test_chief_verifies_another_writers_report(self):
        assert verify().allowed

    def test_writer_may_not_verify_own_report(self):
        d = verify(signer=WRITER, writer=WRITER.user_id)
        assert not d and d.refusal == Refusal.NOT_PERMITTED and "own report" in d.reason

    def test_single_signoff_exam_lets_the_writer_verify(self):
        d = can_verify(Signer(9, "lab_physician", "attending"), "laboratory", "lab_review",
                       ReportStatus.DRAFT, 9, True, RULES, CERT, NOW)
        assert d.allowed

    def test_resident_may_not_verify(self):
        d = verify(signer=RESIDENT)
        assert not d and "resident" in d.reason

    def test_user_without_rank_may_not_verify(self):
        d = verify(signer=NO_RANK)
        assert not d and "no rank" in d.reason

    def test_other_specialty_may_not_verify(self):
        d = verify(signer=CARDIO)
        assert not d and "radiology" in d.reason

    def test_clinician_does_not_write_reports(self):
        assert not verify(signer=CLINICIAN)

    def test_empty_report_is_bad_input(self):
        assert verify(content=False).refusal == Refusal.BAD_INPUT


class TestDraft:
    def test_unsubmitted_draft_cannot_be_verified_by_another(self):
        assert verify(status=ReportStatus.DRAFT).refusal == Refusal.WRONG_STATE

    def test_only_the_writer_edits_the_draft(self):
        assert can_write(WRITER, "radiology", ReportStatus.DRAFT, 1, RULES)
        assert not can_write(CHIEF, "radiology", ReportStatus.DRAFT, 1, RULES)

    def test_writer_submits_non_empty_draft(self):
        assert can_submit(WRITER, ReportStatus.DRAFT, 1, True)
        assert can_submit(WRITER, ReportStatus.DRAFT, 1, False).refusal == Refusal.BAD_INPUT
        assert not can_submit(CHIEF, ReportStatus.DRAFT, 1, True)


class TestPreliminary:
    def test_writer_issues_preliminary_with_valid_certificate(self):
        assert can_issue_preliminary(WRITER, "radiology", ReportStatus.DRAFT, 1, True, RULES,
                                     CERT, NOW)

    def test_preliminary_can_be_verified_to_final(self):
        assert verify(status=ReportStatus.PRELIMINARY).allowed


class TestFinal:
    def test_second_verify_is_a_conflict(self):
        d = verify(status=ReportStatus.FINAL)
        assert d.refusal == Refusal.WRONG_STATE
        with pytest.raises(Conflict):
            ensure(d)

    def test_final_report_cannot_be_edited(self):
        d = can_write(WRITER, "radiology", ReportStatus.FINAL, 1, RULES)
        assert d.refusal == Refusal.WRONG_STATE and "addendum" in d.reason

    @pytest.mark.parametrize("kind", list(VersionKind)[2:])
    def test_amendment_needs_a_reason(self, kind):
        d = can_amend(CHIEF, "radiology", ReportStatus.FINAL, kind, "  ", "text", RULES, CERT,
                      NOW)
        assert d.refusal == Refusal.BAD_INPUT
        with pytest.raises(InvalidInput):
            ensure(d)

    def test_amendment_with_reason_by_chief_is_allowed(self):
        assert can_amend(CHIEF, "radiology", ReportStatus.FINAL, VersionKind.AMENDMENT,
                         "wrong side", "", RULES, CERT, NOW)

    def test_addendum_to_a_draft_is_refused(self):
        assert can_amend(CHIEF, "radiology", ReportStatus.DRAFT, VersionKind.ADDENDUM, "r",
                         "t", RULES, CERT, NOW).refusal == Refusal.WRONG_STATE

    def test_resident_may_not_amend(self):
        assert not can_amend(RESIDENT, "radiology", ReportStatus.FINAL, VersionKind.ADDENDUM,
                             "r", "t", RULES, CERT, NOW)


class TestCertificate:
    def test_expired_certificate_is_refused(self):
        cert = CertificateState(NOW - timedelta(days=30), NOW - timedelta(minutes=1))
        d = verify(cert=cert)
        assert not d and "expired" in d.reason
        with pytest.raises(NotPermitted):
            ensure(d)

    def test_revoked_certificate_is_refused(self):
        cert = CertificateState(CERT.not_before, CERT.not_after, NOW - timedelta(seconds=1))
        assert "revoked" in verify(cert=cert).reason

    def test_revocation_in_the_future_does_not_apply_yet(self):
        cert = CertificateState(CERT.not_before, CERT.not_after, NOW + timedelta(days=1))
        assert check_certificate(cert, NOW)

    def test_not_yet_valid_and_missing(self):
        assert "not yet" in check_certificate(
            CertificateState(NOW + timedelta(1), NOW + timedelta(2)), NOW).reason
        assert "no signing certificate" in verify(cert=None).reason


def test_times_are_kept_to_the_minute():
    assert to_minute(NOW) == datetime(2026, 11, 26, 9, 30, tzinfo=UTC)
