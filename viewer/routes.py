"""Serve the built viewer (a single-page app) at ``/`` from ``viewer/static/dist``.

Static files need no login: they hold no patient data, and the app itself signs in through
``POST /api/auth/token``. The routes are left out of the OpenAPI document, which lists only the
authenticated API. The build is made by ``npm ci && npm run build`` in ``viewer/`` (see
``scripts/install.sh``); until then ``/`` explains how to build it.
"""

from __future__ import annotations

import logging
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse, HTMLResponse, Response

from hub.domain.errors import NotFound

logger = logging.getLogger(__name__)

DIST = Path(__file__).resolve().parent / "static" / "dist"

#: Same-origin everything; 'wasm-unsafe-eval' lets the image codecs (WebAssembly) compile,
#: blob: workers are how the DICOM decoder runs off the main thread.
CSP = ("default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; worker-src 'self' blob:; "
       "style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; connect-src 'self'; "
       "frame-src 'self' blob:; object-src 'self' blob:; base-uri 'none'; "
       "frame-ancestors 'none'; form-action 'none'")
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}

router = APIRouter(include_in_schema=False)

_NOT_BUILT = """<!doctype html><meta charset="utf-8"><title>Yigong Hub</title>
<p>阅片工作站尚未构建 / The viewer has not been built:
<code>cd viewer &amp;&amp; npm ci &amp;&amp; npm run build</code></p>"""


def asset_path(dist: Path, name: str) -> Path:
    """The file ``name`` under ``dist``, refusing anything that escapes it.

    Raises:
        NotFound: no such file, or ``name`` points outside ``dist``.
    """
    root = dist.resolve()
    path = (root / name).resolve()
    if not path.is_relative_to(root) or not path.is_file():
        raise NotFound("no such file")
    return path


def _index() -> Response:
    index = DIST / "index.html"
    if not index.is_file():
        return HTMLResponse(_NOT_BUILT, status_code=503)
    # The page names hashed asset files, so it must never be cached past a rebuild.
    return FileResponse(index, media_type="text/html",
                        headers={"Cache-Control": "no-cache", **SECURITY_HEADERS})


@router.get("/")
def index() -> Response:
    return _index()


@router.get("/assets/{name:path}")
def asset(name: str) -> Response:
    path = asset_path(DIST / "assets", name)
    # Vite puts a content hash in every asset name: safe to cache for good.
    return FileResponse(path, headers={"Cache-Control": "public, max-age=31536000, immutable",
                                       "X-Content-Type-Options": "nosniff"})


@router.get("/favicon.svg")
def favicon() -> Response:
    return FileResponse(asset_path(DIST, "favicon.svg"), headers=SECURITY_HEADERS)
