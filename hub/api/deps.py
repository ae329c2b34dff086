"""FastAPI dependencies: settings, DB session, Orthanc client, the authenticated user."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer
from sqlalchemy import select
from sqlalchemy.orm import Session

from hub import audit
from hub.config import Settings
from hub.db.models import Institution, User
from hub.db.session import session_scope
from hub.domain.access import Capability, Role, Scope, Viewer, has_capability, worklist_scope
from hub.domain.errors import NotPermitted
from hub.intake import IntakeRules
from hub.orthanc.client import OrthancClient
from hub.security import read_token


class Unauthenticated(Exception):
    """No token, a bad token, or a disabled user: always 401."""


oauth2_scheme = OAuth2PasswordBearer(tokenUrl="/api/auth/token", auto_error=False)


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


SettingsDep = Annotated[Settings, Depends(get_settings)]


def get_session(settings: SettingsDep) -> Iterator[Session]:
    with session_scope(settings.effective_database_url) as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]


def get_orthanc(request: Request) -> OrthancClient:
    return request.app.state.orthanc


OrthancDep = Annotated[OrthancClient, Depends(get_orthanc)]


def get_rules(settings: SettingsDep) -> IntakeRules:
    return IntakeRules.from_settings(settings)


RulesDep = Annotated[IntakeRules, Depends(get_rules)]


@dataclass(frozen=True)
class CurrentUserInfo:
    user: User
    viewer: Viewer
    actor: audit.Actor

    @property
    def scope(self) -> Scope:
        return worklist_scope(self.viewer)


def get_current_user(request: Request, session: SessionDep, settings: SettingsDep,
                     token: Annotated[str | None, Depends(oauth2_scheme)]) -> CurrentUserInfo:
    if not token:
        raise Unauthenticated("not authenticated")
    username = read_token(token, request.app.state.secret_key)
    if username is None:
        raise Unauthenticated("invalid or expired token")
    user = session.scalar(select(User).where(User.username == username))
    if user is None or not user.is_active:
        raise Unauthenticated("user unknown or disabled")
    is_lead = bool(session.scalar(
        select(Institution.is_lead).where(Institution.code == user.institution_code)))
    client = request.client.host if request.client else ""
    return CurrentUserInfo(
        user=user,
        viewer=Viewer(user.id, Role(user.role), user.institution_code, is_lead),
        actor=audit.Actor(user.username, user.role, user.institution_code, client),
    )


CurrentUser = Annotated[CurrentUserInfo, Depends(get_current_user)]


def require(capability: Capability):
    """Dependency factory: the current user's role must hold ``capability``.

    The roles behind each capability are :data:`hub.domain.access.CAPABILITY_ROLES`, the table
    ``GET /api/auth/me`` also reads, so the viewer offers what this check lets through.
    """

    def check(current: CurrentUser) -> CurrentUserInfo:
        if not has_capability(current.viewer.role, capability):
            raise NotPermitted(f"role {current.viewer.role} may not do this ({capability})")
        return current

    return check


AdminUser = Annotated[CurrentUserInfo, Depends(require(Capability.ADMINISTER))]
