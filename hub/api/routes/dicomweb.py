"""DICOMweb (QIDO-RS / WADO-RS) for the viewer, proxied to Orthanc's DICOMweb plugin.

The browser never talks to Orthanc. Every request here is authenticated, the Study Instance UID
is mapped to its imaging worklist item and checked against the user's scope (a study outside it
answers 404, exactly like a worklist item the user may not see), and the access is written to the
audit trail and committed *before* a single byte is fetched from the archive.

Pixel data are streamed through unchanged (``Content-Type`` with the multipart boundary,
``Content-Length`` and ``Content-Encoding`` pass through, so the bytes are Orthanc's). DICOM JSON
bodies (QIDO results and metadata) are small; they are read whole so the absolute URLs Orthanc
writes into them (``BulkDataURI``, ``RetrieveURL``) can be pointed at this proxy instead of at the
archive, which the browser cannot reach.

Auditing: opening one CT makes hundreds of requests (series list, metadata, every frame). The
first request of each kind — ``dicomweb.metadata`` (QIDO below a study, metadata) and
``dicomweb.retrieve`` (pixel data) — for a (user, study) pair is recorded; later ones of that kind
within :data:`AUDIT_WINDOW_S` are covered by that row. This is the granularity of the IHE ATNA
"DICOM Instances Accessed" event (one per study access, not per frame). Study searches
(``dicomweb.search``) are recorded every time.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Iterator
from typing import Annotated, Any

import requests
from fastapi import APIRouter, Header, Path, Request, Response
from fastapi.responses import StreamingResponse
from sqlalchemy import select
from sqlalchemy.orm import Session

from hub import audit
from hub.api.deps import CurrentUser, OrthancDep, SessionDep
from hub.db.models import WorklistItem
from hub.domain.access import Scope
from hub.domain.errors import NotFound
from hub.domain.worklist import ItemKind
from hub.orthanc.client import OrthancClient
from hub.orthanc.errors import OrthancUnavailable
from hub.services import worklist as worklist_svc

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/api/dicom-web", tags=["dicomweb"])

#: Where Orthanc's DICOMweb plugin is mounted (``DicomWeb.Root`` in hub/orthanc/server.py).
ORTHANC_DICOMWEB_ROOT = "/dicom-web"
#: A later request of the same kind for the same study by the same user within this window is
#: covered by the audit row of the first one.
AUDIT_WINDOW_S = 300.0
CHUNK_BYTES = 256 * 1024

_UID = r"[0-9]+(?:\.[0-9]+)*"
#: The study-level resources we proxy (PS3.18 §10.4 WADO-RS, §10.6 QIDO-RS). Anything else is
#: 404, so no path can reach another Orthanc endpoint.
_STUDY_RESOURCE = re.compile(
    rf"^(?:"
    rf"|metadata|series|instances|rendered|thumbnail"
    rf"|series/{_UID}(?:/metadata|/instances|/rendered|/thumbnail)?"
    rf"|series/{_UID}/instances/{_UID}(?:/metadata|/rendered|/thumbnail)?"
    rf"|series/{_UID}/instances/{_UID}/frames/[0-9]+(?:,[0-9]+)*(?:/rendered|/thumbnail)?"
    rf")$"
)
_JSON_TYPES = ("application/dicom+json", "application/json")
#: Response headers worth passing to the browser; hop-by-hop and server headers stay behind.
_PASS_HEADERS = ("content-type", "content-length", "content-encoding", "etag", "last-modified")
#: Request query parameters QIDO/WADO understand (PS3.18 §8.3.4); the rest are dropped.
_QUERY_PARAM = re.compile(r"^(?:[0-9A-Fa-f]{8}|[A-Za-z]+|includefield|limit|offset|fuzzymatching"
                          r"|quality|viewport|window|annotation|charset|accept)$")


class _RecentAccess:
    """(user, study, action) triples audited recently, per API process."""

    def __init__(self, window_s: float) -> None:
        self.window_s = window_s
        self._seen: dict[tuple[str, str, str], float] = {}
        self._lock = threading.Lock()

    def is_fresh(self, key: tuple[str, str, str]) -> bool:
        with self._lock:
            seen = self._seen.get(key)
            return seen is not None and time.monotonic() - seen < self.window_s

    def mark(self, key: tuple[str, str, str]) -> None:
        now = time.monotonic()
        with self._lock:
            if len(self._seen) > 10_000:
                self._seen = {k: v for k, v in self._seen.items() if now - v < self.window_s}
            self._seen[key] = now

    def clear(self) -> None:
        with self._lock:
            self._seen.clear()


recent_access = _RecentAccess(AUDIT_WINDOW_S)


def study_item(session: Session, study_uid: str, scope: Scope) -> WorklistItem:
    """The imaging worklist item of ``study_uid`` visible in ``scope``.

    Raises:
        NotFound: no imaging item has this Study Instance UID, or the user may not see it (the
            two are indistinguishable on purpose, as for worklist items).
    """
    item_id = session.scalar(select(WorklistItem.id).where(
        WorklistItem.kind == ItemKind.IMAGING.value, WorklistItem.natural_key == study_uid))
    if item_id is None:
        raise NotFound(f"study {study_uid} not found")
    try:
        return worklist_svc.get_item(session, item_id, scope)
    except NotFound:
        raise NotFound(f"study {study_uid} not found") from None


def is_pixel_request(resource: str) -> bool:
    """True for WADO-RS requests that return pixel data; False for QIDO and metadata."""
    last = resource.rsplit("/", 1)[-1]
    return last not in ("metadata", "series", "instances")


def _upstream(orthanc: OrthancClient, path: str, params: list[tuple[str, str]],
              accept: str | None) -> requests.Response:
    headers = {"Accept": accept} if accept else {}
    try:
        resp = orthanc.session.get(orthanc.url + ORTHANC_DICOMWEB_ROOT + path, params=params,
                                   headers=headers, stream=True, timeout=orthanc.timeout)
    except requests.RequestException as exc:
        raise OrthancUnavailable(f"DICOMweb {path}: {exc.__class__.__name__}") from exc
    if resp.status_code >= 500:
        resp.close()
        raise OrthancUnavailable(f"DICOMweb {path}: HTTP {resp.status_code}")
    return resp


def _passed_headers(resp: requests.Response) -> dict[str, str]:
    return {k: v for k, v in resp.headers.items() if k.lower() in _PASS_HEADERS}


def _public_root(request: Request) -> str:
    return str(request.base_url).rstrip("/") + router.prefix


def rewrite_urls(body: bytes, orthanc_url: str, public_root: str) -> bytes:
    """Point the archive's absolute DICOMweb URLs in a JSON body at this proxy."""
    return body.replace((orthanc_url.rstrip("/") + ORTHANC_DICOMWEB_ROOT).encode(),
                        public_root.encode())


def _json_response(resp: requests.Response, orthanc: OrthancClient, request: Request,
                   body: bytes | None = None) -> Response:
    with resp:
        raw = resp.content if body is None else body
    headers = {k: v for k, v in _passed_headers(resp).items()
               if k.lower() not in ("content-length", "content-encoding")}
    return Response(rewrite_urls(raw, orthanc.url, _public_root(request)),
                    status_code=resp.status_code, headers=headers)


def _stream(resp: requests.Response) -> Iterator[bytes]:
    # decode_content=False: the bytes (and any Content-Encoding) are exactly Orthanc's.
    try:
        yield from resp.raw.stream(CHUNK_BYTES, decode_content=False)
    finally:
        resp.close()  # also when the browser goes away mid-transfer


def _proxy(resp: requests.Response, orthanc: OrthancClient, request: Request) -> Response:
    ctype = resp.headers.get("content-type", "")
    if resp.status_code >= 400 or ctype.startswith(_JSON_TYPES):
        return _json_response(resp, orthanc, request)
    return StreamingResponse(_stream(resp), status_code=resp.status_code,
                             headers=_passed_headers(resp))


def _params(request: Request) -> list[tuple[str, str]]:
    return [(k, v) for k, v in request.query_params.multi_items() if _QUERY_PARAM.match(k)]


@router.get("/studies", summary="QIDO-RS study search, limited to the studies you may read")
def search_studies(request: Request, session: SessionDep, current: CurrentUser,
                   orthanc: OrthancDep) -> Response:
    """Orthanc's answer, with every study outside the user's scope removed."""
    resp = _upstream(orthanc, "/studies", _params(request), "application/dicom+json")
    with resp:
        found = resp.json() if resp.status_code == 200 and resp.content else []
    uids = [(s.get("0020000D", {}).get("Value") or [None])[0] for s in found]
    visible: dict[str, int] = {}
    if uids:
        rows = session.execute(select(WorklistItem.id, WorklistItem.natural_key).where(
            WorklistItem.kind == ItemKind.IMAGING.value,
            WorklistItem.natural_key.in_([u for u in uids if u]))).all()
        for item_id, uid in rows:
            try:
                worklist_svc.get_item(session, item_id, current.scope)
            except NotFound:
                continue
            visible[uid] = item_id
    kept = [s for s, uid in zip(found, uids, strict=True) if uid in visible]
    audit.record_read(session, current.actor, "dicomweb.search", "dicom-web:studies",
                 {"returned": len(kept), "items": sorted(visible.values())})
    session.commit()
    return _json_response(resp, orthanc, request,
                          json.dumps(kept, ensure_ascii=False).encode())


@router.get("/studies/{study_uid}", summary="WADO-RS: a whole study (multipart DICOM)")
def retrieve_study(request: Request, session: SessionDep, current: CurrentUser,
                   orthanc: OrthancDep,
                   study_uid: Annotated[str, Path(max_length=64)],
                   accept: Annotated[str | None, Header()] = None) -> Response:
    return _study_resource(request, session, current, orthanc, study_uid, "", accept)


@router.get("/studies/{study_uid}/{resource:path}",
            summary="QIDO-RS / WADO-RS below one study: series, instances, metadata, frames")
def study_resource(request: Request, session: SessionDep, current: CurrentUser,
                   orthanc: OrthancDep,
                   study_uid: Annotated[str, Path(max_length=64)],
                   resource: str,
                   accept: Annotated[str | None, Header()] = None) -> Response:
    return _study_resource(request, session, current, orthanc, study_uid, resource, accept)


def _study_resource(request: Request, session: SessionDep, current: CurrentUser,
                    orthanc: OrthancClient, study_uid: str, resource: str,
                    accept: str | None) -> Response:
    resource = resource.strip("/")
    if not re.fullmatch(_UID, study_uid) or not _STUDY_RESOURCE.match(resource):
        raise NotFound("no such DICOMweb resource")
    item = study_item(session, study_uid, current.scope)
    action = "dicomweb.retrieve" if is_pixel_request(resource) else "dicomweb.metadata"
    key = (current.actor.username, study_uid, action)
    fresh = recent_access.is_fresh(key)
    if not fresh:
        audit.record_read(session, current.actor, action, f"worklist_item:{item.id}",
                     {"patient_id": item.patient_id, "study_instance_uid": study_uid,
                      "resource": _resource_kind(resource)})
    # Commit before proxying: the audit row is durable even if the transfer fails, and the
    # database (SQLite's write lock in particular) is not held while bytes flow.
    session.commit()
    if not fresh:
        recent_access.mark(key)
    path = f"/studies/{study_uid}" + (f"/{resource}" if resource else "")
    return _proxy(_upstream(orthanc, path, _params(request), accept), orthanc, request)


def _resource_kind(resource: str) -> str:
    """A coarse, identifier-free name of what was asked for, for the audit detail."""
    if not resource:
        return "study"
    parts: list[Any] = resource.split("/")
    words = [p for p in parts if not re.fullmatch(_UID, p) and "," not in p]
    return "/".join(words) or "study"
