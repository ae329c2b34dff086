"""Map domain and edge exceptions to HTTP responses in one place."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import OperationalError

from hub.api.deps import Unauthenticated
from hub.domain.errors import (
    Conflict,
    DomainError,
    InvalidInput,
    InvalidTransition,
    NotFound,
    NotPermitted,
)
from hub.orthanc.errors import OrthancError, OrthancResourceGone

logger = logging.getLogger(__name__)

STATUS_FOR: dict[type[Exception], int] = {
    NotFound: 404,
    NotPermitted: 403,
    Conflict: 409,
    InvalidTransition: 409,
    InvalidInput: 422,
    DomainError: 400,
    OrthancResourceGone: 404,
    OrthancError: 503,
}


def _handler(status: int):
    async def handle(_request: Request, exc: Exception) -> JSONResponse:
        if status >= 500:
            logger.warning("%s: %s", exc.__class__.__name__, exc)
        return JSONResponse({"detail": str(exc) or exc.__class__.__name__}, status_code=status)

    return handle


#: PostgreSQL's "try again" states: deadlock detected, serialization failure, lock not available.
_RETRYABLE_SQLSTATES = frozenset({"40P01", "40001", "55P03"})


async def _database_error(_request: Request, exc: Exception) -> JSONResponse:
    # The request's transaction was rolled back: say so, and when to try again, rather than
    # answer a bare 500.
    state = getattr(getattr(exc, "orig", None), "sqlstate", None)
    if state in _RETRYABLE_SQLSTATES:
        logger.warning("concurrent change, request rolled back (SQLSTATE %s): %s", state,
                       getattr(exc, "orig", exc))
        return JSONResponse(
            {"detail": "someone else changed the same record at the same moment; nothing "
                       "was saved, please try again"},
            status_code=503, headers={"Retry-After": "1"})
    logger.error("database unavailable: %s", exc)
    return JSONResponse({"detail": "database unavailable; nothing was saved, please try again"},
                        status_code=503, headers={"Retry-After": "5"})


async def _unauthenticated(_request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse({"detail": str(exc)}, status_code=401,
                        headers={"WWW-Authenticate": "Bearer"})


def install(app: FastAPI) -> None:
    app.add_exception_handler(Unauthenticated, _unauthenticated)
    app.add_exception_handler(OperationalError, _database_error)
    # Starlette walks the MRO, so one registration per class covers its subclasses.
    for exc_type, status in STATUS_FOR.items():
        app.add_exception_handler(exc_type, _handler(status))
