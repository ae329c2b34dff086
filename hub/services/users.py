"""Users and institutions: creation and authentication."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from hub import audit
from hub.clock import utcnow
from hub.db.models import Institution, User
from hub.domain.access import Role
from hub.domain.errors import Conflict, InvalidInput, NotFound
from hub.security import hash_password, verify_password


def create_user(session: Session, actor: audit.Actor, username: str, password: str, role: Role,
                institution_code: str, display_name: str = "", rank: str | None = None) -> User:
    if len(password) < 8:
        raise InvalidInput("password must have at least 8 characters")
    if session.scalar(select(Institution.id).where(Institution.code == institution_code)) is None:
        raise NotFound(f"institution {institution_code!r} does not exist")
    user = User(username=username, password_hash=hash_password(password), role=Role(role).value,
                institution_code=institution_code, display_name=display_name, rank=rank,
                is_active=True, created_at=utcnow())
    try:
        with session.begin_nested():
            session.add(user)
            session.flush()
    except IntegrityError:
        raise Conflict(f"user {username!r} already exists") from None
    audit.record(session, actor, "user.create", f"user:{username}",
                 {"role": user.role, "institution": institution_code})
    return user


def set_password(session: Session, actor: audit.Actor, username: str, password: str) -> None:
    if len(password) < 8:
        raise InvalidInput("password must have at least 8 characters")
    user = session.scalar(select(User).where(User.username == username))
    if user is None:
        raise NotFound(f"user {username!r} does not exist")
    user.password_hash = hash_password(password)
    audit.record(session, actor, "user.password", f"user:{username}")


def authenticate(session: Session, username: str, password: str) -> User | None:
    user = session.scalar(select(User).where(User.username == username))
    if user is None or not user.is_active or not verify_password(password, user.password_hash):
        return None
    return user


def upsert_institution(session: Session, actor: audit.Actor, code: str, name: str,
                       is_lead: bool = False, ae_titles: list[str] | None = None,
                       hl7_facilities: list[str] | None = None) -> Institution:
    inst = session.scalar(select(Institution).where(Institution.code == code))
    if inst is None:
        inst = Institution(code=code, name=name)
        session.add(inst)
    inst.name, inst.is_lead = name, is_lead
    inst.ae_titles = list(ae_titles or [])
    inst.hl7_facilities = list(hl7_facilities or [])
    session.flush()
    audit.record(session, actor, "institution.upsert", f"institution:{code}",
                 {"is_lead": is_lead, "ae_titles": inst.ae_titles})
    return inst
