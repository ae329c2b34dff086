from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.security import OAuth2PasswordRequestForm

from hub import audit
from hub.api.deps import SessionDep, SettingsDep, Unauthenticated
from hub.api.schemas import Token
from hub.clock import utcnow
from hub.security import create_token
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
