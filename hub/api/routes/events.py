"""Server-sent events: tell an open viewer that its worklist changed, so it refreshes.

``EventSource`` cannot send an ``Authorization`` header, so the viewer first trades its bearer
token for a *ticket* (``POST /api/events/ticket``): a JWT that lives :data:`TICKET_SECONDS`, is
signed with a key derived from the hub's secret (so it is never accepted as a bearer token), and
carries the expiry of the session it came from. ``GET /api/events?ticket=...`` then streams until
that session expires. A client that can send headers (fetch streaming) may use its bearer token
instead of a ticket.

The stream carries no patient data: only "the worklist you can see changed" (and when); the
viewer re-reads the worklist through the authenticated API, which audits that read. Changes are
detected by polling a cheap signature of the user's scope (row count, newest update, highest id),
which works whichever process (API, worker, LIS bridge) made the change.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Annotated

import jwt
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel
from sqlalchemy import func, select
from starlette.concurrency import run_in_threadpool

from hub.api.deps import CurrentUser, Unauthenticated, oauth2_scheme
from hub.clock import as_utc, utcnow
from hub.db.models import User, WorklistItem
from hub.db.session import session_scope
from hub.domain.access import Role, Scope, Viewer, worklist_scope
from hub.security import read_token

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/api/events", tags=["events"])

TICKET_SECONDS = 60
POLL_SECONDS = 2.0
HEARTBEAT_SECONDS = 15.0
_PURPOSE = "events"


class Ticket(BaseModel):
    ticket: str
    expires_in: int


def _ticket_key(secret: str) -> str:
    return secret + ":events-ticket"


def issue_ticket(username: str, secret: str, session_expires: datetime, now: datetime) -> str:
    """A short-lived ticket for one event stream, bound to the session's expiry."""
    payload = {"sub": username, "purpose": _PURPOSE,
               "exp": int((now + timedelta(seconds=TICKET_SECONDS)).timestamp()),
               "sx": int(session_expires.timestamp())}
    return jwt.encode(payload, _ticket_key(secret), algorithm="HS256")


def read_ticket(ticket: str, secret: str) -> tuple[str, datetime] | None:
    """(username, session expiry) of a valid ticket; None for anything else."""
    try:
        payload = jwt.decode(ticket, _ticket_key(secret), algorithms=["HS256"])
    except jwt.PyJWTError:
        return None
    if payload.get("purpose") != _PURPOSE or not isinstance(payload.get("sub"), str):
        return None
    return payload["sub"], datetime.fromtimestamp(int(payload.get("sx", 0)), tz=utcnow().tzinfo)


def _token_expiry(token: str, secret: str) -> datetime:
    payload = jwt.decode(token, secret, algorithms=["HS256"])
    return datetime.fromtimestamp(int(payload["exp"]), tz=utcnow().tzinfo)


@router.post("/ticket", response_model=Ticket,
             summary="Trade the bearer token for a one-minute ticket to open the event stream")
def ticket(request: Request, current: CurrentUser,
           token: Annotated[str | None, Depends(oauth2_scheme)]) -> Ticket:
    secret = request.app.state.secret_key
    expires = _token_expiry(token or "", secret)
    return Ticket(ticket=issue_ticket(current.user.username, secret, expires, utcnow()),
                  expires_in=TICKET_SECONDS)


def _viewer(db_url: str, username: str) -> Viewer | None:
    from hub.db.models import Institution

    with session_scope(db_url) as session:
        user = session.scalar(select(User).where(User.username == username))
        if user is None or not user.is_active:
            return None
        is_lead = bool(session.scalar(
            select(Institution.is_lead).where(Institution.code == user.institution_code)))
        return Viewer(user.id, Role(user.role), user.institution_code, is_lead)


def worklist_signature(db_url: str, scope: Scope) -> tuple:
    """Changes whenever an item in ``scope`` is added, removed or updated."""
    stmt = select(func.count(WorklistItem.id), func.max(WorklistItem.updated_at),
                  func.max(WorklistItem.id))
    if scope.institution is not None:
        stmt = stmt.where(WorklistItem.institution_code == scope.institution)
    if scope.specialty is not None:
        stmt = stmt.where(WorklistItem.specialty == scope.specialty.value)
    with session_scope(db_url) as session:
        count, updated, top = session.execute(stmt).one()
    return count, str(updated), top


def _event(name: str, data: dict) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()


async def _stream(request: Request, db_url: str, scope: Scope,
                  session_expires: datetime) -> AsyncIterator[bytes]:
    # The browser reconnects after this delay if the stream drops (SSE "retry" field).
    yield b"retry: 3000\n\n"
    yield _event("hello", {"at": utcnow().isoformat()})
    last = await run_in_threadpool(worklist_signature, db_url, scope)
    quiet = 0.0
    while True:
        await asyncio.sleep(POLL_SECONDS)
        if await request.is_disconnected():
            return
        if utcnow() >= session_expires:
            yield _event("expired", {})
            return
        sig = await run_in_threadpool(worklist_signature, db_url, scope)
        if sig != last:
            last, quiet = sig, 0.0
            yield _event("worklist", {"at": utcnow().isoformat()})
            continue
        quiet += POLL_SECONDS
        if quiet >= HEARTBEAT_SECONDS:
            quiet = 0.0
            yield b": ping\n\n"


@router.get("", summary="Server-sent events: 'worklist' when the items you can see change",
            response_class=StreamingResponse,
            responses={200: {"content": {"text/event-stream": {}}}})
async def events(request: Request,
                 ticket: Annotated[str | None, Query(max_length=2000)] = None,
                 token: Annotated[str | None, Depends(oauth2_scheme)] = None,
                 ) -> StreamingResponse:
    secret = request.app.state.secret_key
    if ticket:
        found = read_ticket(ticket, secret)
        if found is None:
            raise Unauthenticated("invalid or expired event ticket")
        username, expires = found
    elif token and (username := read_token(token, secret) or ""):
        expires = _token_expiry(token, secret)
    else:
        raise Unauthenticated("event stream needs a ticket or a bearer token")
    db_url = request.app.state.settings.effective_database_url
    viewer = await run_in_threadpool(_viewer, db_url, username)
    if viewer is None:
        raise Unauthenticated("user unknown or disabled")
    scope = worklist_scope(viewer)
    return StreamingResponse(
        _stream(request, db_url, scope, as_utc(expires)),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
