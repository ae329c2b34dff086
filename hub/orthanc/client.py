"""Thin client for Orthanc's REST API: one pooled session, timeouts, retries on 5xx/connection."""

from __future__ import annotations

import logging
from contextlib import contextmanager
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from hub.orthanc.errors import (
    OrthancRejected,
    OrthancResourceGone,
    OrthancUnavailable,
)

logger = logging.getLogger(__name__)


class OrthancClient:
    """Talks to one Orthanc over HTTP.

    Every method raises :class:`OrthancUnavailable` (retryable), :class:`OrthancResourceGone` (404)
    or :class:`OrthancRejected` (other 4xx); ``requests`` exceptions never leak out.
    """

    def __init__(self, url: str, user: str | None = None, password: str | None = None,
                 timeout: float = 10.0, retries: int = 3) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.session = requests.Session()
        if user:
            self.session.auth = (user, password or "")
        retry = Retry(
            total=retries, connect=retries, read=retries, status=retries,
            backoff_factor=0.2, status_forcelist=(500, 502, 503, 504),
            allowed_methods=None, raise_on_status=False,
        )
        adapter = HTTPAdapter(max_retries=retry, pool_connections=4, pool_maxsize=16)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)

    @contextmanager
    def _mapped(self, what: str):
        try:
            yield
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise OrthancUnavailable(f"{what}: {exc.__class__.__name__}") from exc
        except requests.RequestException as exc:
            raise OrthancUnavailable(f"{what}: {exc}") from exc

    def _request(self, method: str, path: str, **kw: Any) -> requests.Response:
        what = f"{method} {path}"
        with self._mapped(what):
            resp = self.session.request(method, self.url + path, timeout=self.timeout, **kw)
        if resp.status_code == 404:
            raise OrthancResourceGone(what)
        if resp.status_code >= 500:
            raise OrthancUnavailable(f"{what}: HTTP {resp.status_code}")
        if resp.status_code >= 400:
            raise OrthancRejected(f"{what}: HTTP {resp.status_code} {resp.text[:200]}")
        return resp

    def get_json(self, path: str, **params: Any) -> Any:
        return self._request("GET", path, params=params or None).json()

    def get_bytes(self, path: str) -> bytes:
        return self._request("GET", path).content

    def post_json(self, path: str, body: Any) -> Any:
        resp = self._request("POST", path, json=body)
        return resp.json() if resp.content else None

    def put_json(self, path: str, body: Any) -> None:
        self._request("PUT", path, json=body)

    def modify_instance(self, orthanc_id: str, body: dict[str, Any]) -> bytes:
        """``/instances/{id}/modify``: the modified DICOM file (Orthanc does not store it)."""
        return self._request("POST", f"/instances/{orthanc_id}/modify", json=body).content

    def delete(self, path: str) -> None:
        """Delete a resource (``/studies/{id}``, ...)."""
        self._request("DELETE", path)

    def upload(self, dicom: bytes) -> dict[str, Any]:
        """Store one DICOM file; re-sending a stored instance is harmless (same SOPInstanceUID)."""
        return self._request(
            "POST", "/instances", data=dicom, headers={"Content-Type": "application/dicom"}
        ).json()

    def system(self) -> dict[str, Any]:
        return self.get_json("/system")

    def ping(self, timeout: float = 2.0) -> dict[str, Any]:
        """``/system`` once, without retries: for health checks that must answer fast."""
        with self._mapped("GET /system"):
            resp = requests.get(self.url + "/system", auth=self.session.auth, timeout=timeout)
        if resp.status_code != 200:
            raise OrthancUnavailable(f"GET /system: HTTP {resp.status_code}")
        return resp.json()

    def changes(self, since: int, limit: int = 100) -> dict[str, Any]:
        return self.get_json("/changes", since=since, limit=limit)

    def study(self, orthanc_id: str) -> dict[str, Any]:
        return self.get_json(f"/studies/{orthanc_id}")

    def study_instances(self, orthanc_id: str) -> list[dict[str, Any]]:
        return self.get_json(f"/studies/{orthanc_id}/instances")

    def study_statistics(self, orthanc_id: str) -> dict[str, Any]:
        return self.get_json(f"/studies/{orthanc_id}/statistics")

    def instance_tags(self, orthanc_id: str) -> dict[str, Any]:
        return self.get_json(f"/instances/{orthanc_id}/simplified-tags")

    def instance_raw_value(self, orthanc_id: str, tag: str) -> bytes | None:
        """Raw bytes of one tag (``"0010-0010"``), undecoded, so we can apply the charset."""
        try:
            return self.get_bytes(f"/instances/{orthanc_id}/content/{tag}")
        except OrthancResourceGone:
            return None

    def instance_metadata(self, orthanc_id: str, name: str) -> str | None:
        try:
            return self._request("GET", f"/instances/{orthanc_id}/metadata/{name}").text
        except OrthancResourceGone:
            return None

    def lookup_study(self, study_instance_uid: str) -> str | None:
        """Orthanc ID of a study by its Study Instance UID, or None."""
        resp = self._request("POST", "/tools/lookup", data=study_instance_uid)
        found = resp.json()
        for entry in found:
            if entry.get("Type") == "Study":
                return entry["ID"]
        return None
