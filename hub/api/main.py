"""The hub's FastAPI application."""

from __future__ import annotations

import logging

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from hub.api import errors
from hub.api.routes import (
    admin,
    auth,
    dicomweb,
    ecg,
    events,
    health,
    lab,
    orders,
    patients,
    reports,
    studies,
    worklist,
)
from hub.config import Settings, get_settings
from hub.orthanc.client import OrthancClient
from viewer import routes as viewer_routes

logger = logging.getLogger(__name__)

# The viewer's catch-all for its single-page app goes last, after every API route.
ROUTERS = [health.router, auth.router, worklist.router, studies.router, patients.router,
           admin.router, ecg.router, lab.router, reports.router, orders.router, dicomweb.router,
           events.router, viewer_routes.router]


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    app = FastAPI(
        title="Yigong Hub",
        version="0.1.0",
        description="Remote imaging, ECG and lab reading for a county medical community.",
    )
    app.state.settings = settings
    app.state.secret_key = settings.resolved_secret_key()
    app.state.orthanc = OrthancClient(settings.orthanc_url, settings.orthanc_user,
                                      settings.orthanc_password, timeout=settings.orthanc_timeout)
    errors.install(app)

    @app.exception_handler(RequestValidationError)
    async def _validation(_request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": jsonable_errors(exc)}, status_code=422)

    for router in ROUTERS:
        app.include_router(router)
    return app


def jsonable_errors(exc: RequestValidationError) -> list[dict]:
    return [{"loc": list(e.get("loc", ())), "msg": e.get("msg", "")} for e in exc.errors()]
