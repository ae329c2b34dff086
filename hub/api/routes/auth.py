from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.security import OAuth2PasswordRequestForm
from sqlalchemy import select

from hub import audit
from hub.api.deps import CurrentUser, SessionDep, SettingsDep, Unauthenticated
from hub.api.schemas import Me, Token
from hub.clock import utcnow
from hub.db.models import Institution
from hub.domain.access import user_capabilities
from hub.security import create_token
from hub.services.reports import signoff_rules
from hub.services.users import authenticate

router = APIRouter(prefix="/api/auth", tags=["auth"])


@router.post("/token", response_model=Token, summary="OAuth2 password flow: get a bearer token")
def issue_token(request: Request, form: Annotated[OAuth2PasswordRequestForm, Depends()],
                session: SessionDep, settings: SettingsDep) -> Token:
    user = authenticate(session, form.username, form.password)
    client = request.client.host if request.client else ""
    if user is None:
        raise Unauthenticated("wrong username or password")
    audit.record(session, audit.Actor(user.username, user.role, user.institution_code, client),
                 "auth.login", f"user:{user.username}")
    token = create_token(user.username, request.app.state.secret_key, utcnow(),
                         settings.token_minutes)
    return Token(access_token=token)


@router.get("/me", response_model=Me,
            summary="The signed-in user: name, role, institution and what the role allows")
def me(current: CurrentUser, session: SessionDep, settings: SettingsDep) -> Me:
    # Not audited: it shows users only their own account, no patient data (the login is audited).
    user = current.user
    return Me(
        username=user.username, display_name=user.display_name or None,
        role=current.viewer.role, rank=user.rank, institution_code=user.institution_code,
        institution_name=session.scalar(
            select(Institution.name).where(Institution.code == user.institution_code)),
        is_lead=current.viewer.is_lead,
        capabilities=user_capabilities(current.viewer.role, user.rank, signoff_rules(settings)),
    )
