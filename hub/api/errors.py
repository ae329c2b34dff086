"""Map domain and edge exceptions to HTTP responses in one place."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

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


async def _unauthenticated(_request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse({"detail": str(exc)}, status_code=401,
                        headers={"WWW-Authenticate": "Bearer"})


def install(app: FastAPI) -> None:
    app.add_exception_handler(Unauthenticated, _unauthenticated)
    # Starlette walks the MRO, so one registration per class covers its subclasses.
    for exc_type, status in STATUS_FOR.items():
        app.add_exception_handler(exc_type, _handler(status))
