"""Two-level sign-off (书写医师 writes, 审核医师 verifies): who may write, verify, co-sign, amend.

Every rule returns a :class:`Decision` instead of raising, so the API, the CLI and tests can show
the reason; :func:`ensure` turns a refusal into the matching :mod:`hub.domain.errors` exception.
The report's own little state machine is data (:data:`REPORT_TRANSITIONS`), as the worklist's is.

Rules come in as a :class:`SignoffRules` built by the service from settings: which ranks may
verify (residents and trainees may not), which exam types allow single sign-off (writer = verifier),
and which specialty each reader role reads.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from hub.domain.errors import Conflict, InvalidInput, InvalidTransition, NotPermitted


class ReportStatus(enum.StrEnum):
    DRAFT = "draft"
    SUBMITTED = "submitted"      # writer done, awaiting verification (待审核)
    PRELIMINARY = "preliminary"  # emergency report (急诊报告), signed by the writer
    FINAL = "final"              # verified and signed (已审核)


class Action(enum.StrEnum):
    WRITE = "write"
    SUBMIT = "submit"
    PRELIMINARY = "preliminary"
    VERIFY = "verify"
    ADDENDUM = "addendum"
    AMEND = "amend"


class VersionKind(enum.StrEnum):
    PRELIMINARY = "preliminary"
    FINAL = "final"
    ADDENDUM = "addendum"      # 补充报告: text appended, original unchanged
    AMENDMENT = "amendment"    # 更正报告: findings/impression replaced, original kept visible


class SignerRole(enum.StrEnum):
    WRITER = "writer"
    VERIFIER = "verifier"
    AMENDER = "amender"


class Refusal(enum.StrEnum):
    """Why an action was refused; the edge maps each to its protocol (HTTP 403/409/422)."""

    NOT_PERMITTED = "not_permitted"
    WRONG_STATE = "wrong_state"
    BAD_INPUT = "bad_input"


R, A = ReportStatus, Action

#: (status, action) -> status after. None status = no report yet.
REPORT_TRANSITIONS: dict[tuple[ReportStatus | None, Action], ReportStatus] = {
    (None, A.WRITE): R.DRAFT,
    (R.DRAFT, A.WRITE): R.DRAFT,
    (R.SUBMITTED, A.WRITE): R.SUBMITTED,       # the writer may still correct before verification
    (R.PRELIMINARY, A.WRITE): R.PRELIMINARY,
    (R.DRAFT, A.SUBMIT): R.SUBMITTED,
    (R.DRAFT, A.PRELIMINARY): R.PRELIMINARY,
    (R.SUBMITTED, A.PRELIMINARY): R.PRELIMINARY,
    (R.DRAFT, A.VERIFY): R.FINAL,              # only with single sign-off
    (R.SUBMITTED, A.VERIFY): R.FINAL,
    (R.PRELIMINARY, A.VERIFY): R.FINAL,
    (R.FINAL, A.ADDENDUM): R.FINAL,
    (R.FINAL, A.AMEND): R.FINAL,
}


def next_status(status: ReportStatus | None, action: Action) -> ReportStatus:
    """Return the report status after ``action``.

    Raises:
        InvalidTransition: the table has no such row (e.g. a second verify of a final report).
    """
    key = (ReportStatus(status) if status else None, Action(action))
    try:
        return REPORT_TRANSITIONS[key]
    except KeyError:
        raise InvalidTransition(
            f"cannot {action} a report that is {status or 'not yet written'}") from None


@dataclass(frozen=True)
class SignoffRules:
    """Configuration the sign-off rules read; built from settings by the service."""

    verify_ranks: frozenset[str] = frozenset({"attending", "associate_chief", "chief"})
    #: Exam types (template codes) whose writer may also verify (single sign-off, 单签).
    single_signoff: frozenset[str] = frozenset()
    #: Reader role -> specialty it reads (radiologist -> radiology, ...).
    reader_specialty: Mapping[str, str] = field(default_factory=lambda: {
        "radiologist": "radiology", "cardiologist": "cardiology", "lab_physician": "laboratory",
    })


@dataclass(frozen=True)
class Signer:
    """A user as the sign-off rules see them."""

    user_id: int
    role: str
    rank: str | None


@dataclass(frozen=True)
class CertificateState:
    """The signer's certificate at signing time; None fields mean unknown."""

    not_before: datetime
    not_after: datetime
    revoked_at: datetime | None = None


@dataclass(frozen=True)
class Decision:
    """Allowed, or refused with a reason a person can read."""

    allowed: bool
    reason: str = ""
    refusal: Refusal | None = None

    def __bool__(self) -> bool:
        return self.allowed


ALLOW = Decision(True)


def _refuse(reason: str, refusal: Refusal = Refusal.NOT_PERMITTED) -> Decision:
    return Decision(False, reason, refusal)


def ensure(decision: Decision) -> None:
    """Raise the domain error that matches a refusal; do nothing when allowed.

    Raises:
        NotPermitted, Conflict, InvalidInput: by ``decision.refusal``.
    """
    if decision.allowed:
        return
    if decision.refusal == Refusal.WRONG_STATE:
        raise Conflict(decision.reason)
    if decision.refusal == Refusal.BAD_INPUT:
        raise InvalidInput(decision.reason)
    raise NotPermitted(decision.reason)


def _state(status: ReportStatus | None, action: Action) -> Decision:
    key = (ReportStatus(status) if status else None, action)
    if key not in REPORT_TRANSITIONS:
        return _refuse(f"cannot {action} a report that is {status or 'not yet written'}",
                       Refusal.WRONG_STATE)
    return ALLOW


def holds_verify_rank(rank: str | None, rules: SignoffRules) -> bool:
    """Whether a user of ``rank`` may verify and sign at all (residents and trainees may not)."""
    return bool(rank) and rank in rules.verify_ranks


def reads_specialty(signer: Signer, specialty: str, rules: SignoffRules) -> Decision:
    """A reader may only report exams of the specialty their role reads."""
    own = rules.reader_specialty.get(signer.role)
    if own is None:
        return _refuse(f"role {signer.role} does not write reports")
    if own != specialty:
        return _refuse(f"a {signer.role} may not report a {specialty} exam")
    return ALLOW


def can_write(signer: Signer, specialty: str, status: ReportStatus | None,
              writer_id: int | None, rules: SignoffRules) -> Decision:
    """May ``signer`` create or edit the draft? Only the writer edits a draft once started."""
    d = reads_specialty(signer, specialty, rules)
    if not d:
        return d
    d = _state(status, Action.WRITE)
    if not d:
        if status == ReportStatus.FINAL:
            return _refuse("the report is final: write an addendum or amendment",
                           Refusal.WRONG_STATE)
        return d
    if writer_id is not None and writer_id != signer.user_id:
        return _refuse("only the writer edits the draft; the verifier edits when verifying")
    return ALLOW


def can_submit(signer: Signer, status: ReportStatus | None, writer_id: int | None,
               has_content: bool) -> Decision:
    """The writer hands a non-empty draft to verification."""
    d = _state(status, Action.SUBMIT)
    if not d:
        return d
    if writer_id != signer.user_id:
        return _refuse("only the writer submits the report")
    if not has_content:
        return _refuse("findings and impression are empty", Refusal.BAD_INPUT)
    return ALLOW


def check_certificate(cert: CertificateState | None, now: datetime) -> Decision:
    """A signature needs a certificate valid now and not revoked."""
    if cert is None:
        return _refuse("no signing certificate: ask the administrator to issue one")
    if cert.revoked_at is not None and cert.revoked_at <= now:
        return _refuse("the signing certificate has been revoked")
    if now < cert.not_before:
        return _refuse("the signing certificate is not yet valid")
    if now >= cert.not_after:
        return _refuse("the signing certificate has expired")
    return ALLOW


def can_issue_preliminary(signer: Signer, specialty: str, status: ReportStatus | None,
                          writer_id: int | None, has_content: bool, rules: SignoffRules,
                          cert: CertificateState | None, now: datetime) -> Decision:
    """An emergency report is signed by its writer and labelled preliminary until final."""
    for d in (reads_specialty(signer, specialty, rules), _state(status, Action.PRELIMINARY)):
        if not d:
            return d
    if writer_id is not None and writer_id != signer.user_id:
        return _refuse("only the writer issues the preliminary report")
    if not has_content:
        return _refuse("findings and impression are empty", Refusal.BAD_INPUT)
    return check_certificate(cert, now)


def can_verify(signer: Signer, specialty: str, exam_type: str, status: ReportStatus | None,
               writer_id: int | None, has_content: bool, rules: SignoffRules,
               cert: CertificateState | None, now: datetime) -> Decision:
    """May ``signer`` verify (审核) and sign the report, making it final?

    Checked in this order, so the reason names the first rule broken: state (a final report
    cannot be verified twice), specialty, rank, same writer (unless single sign-off for the exam
    type), content, then the certificate.
    """
    d = _state(status, Action.VERIFY)
    if not d:
        return d
    d = reads_specialty(signer, specialty, rules)
    if not d:
        return d
    if not signer.rank:
        return _refuse("user has no rank recorded and may not verify")
    if not holds_verify_rank(signer.rank, rules):
        return _refuse(f"rank {signer.rank} may not verify reports")
    single = exam_type in rules.single_signoff
    if writer_id == signer.user_id and not single:
        return _refuse("the writer may not verify their own report (two-level sign-off)")
    if status == ReportStatus.DRAFT and not single:
        return _refuse("the draft has not been submitted for verification", Refusal.WRONG_STATE)
    if not has_content:
        return _refuse("findings and impression are empty", Refusal.BAD_INPUT)
    return check_certificate(cert, now)


def can_amend(signer: Signer, specialty: str, status: ReportStatus | None, kind: VersionKind,
              reason: str, text: str, rules: SignoffRules, cert: CertificateState | None,
              now: datetime) -> Decision:
    """An addendum or amendment to a final report, itself signed; it needs a reason.

    Only readers of the specialty holding a verifying rank may sign one, because it changes
    what the community recognises.
    """
    action = Action.ADDENDUM if kind == VersionKind.ADDENDUM else Action.AMEND
    d = _state(status, action)
    if not d:
        if status != ReportStatus.FINAL:
            return _refuse("only a final report takes an addendum or amendment",
                           Refusal.WRONG_STATE)
        return d
    if not reason.strip():
        return _refuse("an addendum or amendment needs a reason", Refusal.BAD_INPUT)
    if kind == VersionKind.ADDENDUM and not text.strip():
        return _refuse("the addendum text is empty", Refusal.BAD_INPUT)
    d = reads_specialty(signer, specialty, rules)
    if not d:
        return d
    if not holds_verify_rank(signer.rank, rules):
        return _refuse(f"rank {signer.rank or 'none'} may not sign an addendum or amendment")
    return check_certificate(cert, now)


def to_minute(value: datetime) -> datetime:
    """Exam, write and verify times are recorded to the minute (the regulation's resolution)."""
    return value.replace(second=0, microsecond=0)
