"""Tell the hub where a study came from and, once it is quiet and forwarded, what it holds.

Contract with the hub (issue 2 / issue 3):

* ``POST {hub}/api/auth/token`` (form ``username``, ``password``) -> ``{"access_token": ...}``
* ``PUT {hub}/api/studies/{study_uid}/origin`` ``{"institution_code", "source_aet"}`` -> 204
* ``POST {hub}/api/studies/{study_uid}/manifest``
  ``{"institution_code", "source_aet", "series": {series_uid: [sop_uid, ...]}}``
  -> 202 ``{"status": ..., "missing": int}``

Both calls are durable: the ledger keeps a study dirty until the hub accepted its manifest, so
a node restarted after a crash posts what it still owes.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any
from urllib.parse import quote

import requests

from dicom_node.ledger import Ledger
from dicom_node.metrics import METRICS

logger = logging.getLogger(__name__)


class HubApiError(Exception):
    """The hub API call failed; the caller retries later."""


class HubClient:
    """Bearer-token client for the hub's study endpoints."""

    def __init__(self, base_url: str, username: str, password: str, timeout: float = 15.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.username = username
        self.password = password
        self.timeout = timeout
        self.session = requests.Session()
        self._token: str | None = None
        self._lock = threading.Lock()

    def _fetch_token(self) -> str:
        try:
            resp = self.session.post(
                self.base_url + "/api/auth/token",
                data={"username": self.username, "password": self.password},
                timeout=self.timeout,
            )
        except requests.RequestException as exc:
            raise HubApiError(f"token: {type(exc).__name__}") from exc
        if resp.status_code != 200:
            raise HubApiError(f"token: HTTP {resp.status_code}")
        return str(resp.json()["access_token"])

    def _request(self, method: str, path: str,
                 body: dict[str, Any] | None) -> requests.Response:
        for attempt in (1, 2):
            with self._lock:
                if self._token is None:
                    self._token = self._fetch_token()
                token = self._token
            try:
                resp = self.session.request(
                    method, self.base_url + path, json=body, timeout=self.timeout,
                    headers={"Authorization": f"Bearer {token}"},
                )
            except requests.RequestException as exc:
                raise HubApiError(f"{method} {path}: {type(exc).__name__}") from exc
            if resp.status_code == 401 and attempt == 1:
                # Token expired (tokens last one shift): fetch a new one once.
                with self._lock:
                    self._token = None
                continue
            return resp
        raise HubApiError(f"{method} {path}: unauthorized")

    def put_origin(self, study_instance_uid: str, institution_code: str, source_aet: str) -> None:
        """Record the study's branch at the hub. Raises HubApiError unless 2xx."""
        path = f"/api/studies/{study_instance_uid}/origin"
        resp = self._request(
            "PUT", path, {"institution_code": institution_code, "source_aet": source_aet}
        )
        if resp.status_code // 100 != 2:
            raise HubApiError(f"PUT origin: HTTP {resp.status_code} {resp.text[:200]}")

    def post_manifest(
        self, study_instance_uid: str, institution_code: str, source_aet: str,
        series: dict[str, list[str]],
    ) -> dict[str, Any]:
        """Post a study manifest. Returns the hub's JSON. Raises HubApiError unless 2xx."""
        path = f"/api/studies/{study_instance_uid}/manifest"
        body = {"institution_code": institution_code, "source_aet": source_aet, "series": series}
        resp = self._request("POST", path, body)
        if resp.status_code // 100 != 2:
            raise HubApiError(f"POST manifest: HTTP {resp.status_code} {resp.text[:200]}")
        try:
            return dict(resp.json())
        except ValueError:
            return {}

    def get_worklist(self, institution_code: str) -> list[dict[str, Any]]:
        """The branch's scheduled procedures (``GET /api/orders/worklist``).

        Raises:
            HubApiError: the hub did not answer 200 with a list of entries.
        """
        path = f"/api/orders/worklist?institution={quote(institution_code)}"
        resp = self._request("GET", path, None)
        if resp.status_code != 200:
            raise HubApiError(f"GET worklist: HTTP {resp.status_code} {resp.text[:200]}")
        try:
            entries = resp.json()["entries"]
        except (ValueError, KeyError, TypeError) as exc:
            raise HubApiError(f"GET worklist: unreadable answer ({exc})") from exc
        return [dict(e) for e in entries]

    def close(self) -> None:
        """Close pooled connections."""
        self.session.close()


class ManifestPublisher:
    """Background loop: post pending origins and the manifests of quiet, forwarded studies."""

    def __init__(
        self, ledger: Ledger, client: HubClient, institution_code: str,
        quiet_seconds: float, poll_seconds: float = 1.0,
    ) -> None:
        self.ledger = ledger
        self.client = client
        self.institution_code = institution_code
        self.quiet_seconds = quiet_seconds
        self.poll_seconds = poll_seconds
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._origin_lock = threading.Lock()

    def post_origin(self, study_instance_uid: str) -> bool:
        """Try ``PUT origin`` once; False (and retried by the loop) when the hub is not there."""
        with self._origin_lock:
            if self.ledger.study_origin_posted(study_instance_uid):
                return True
            source_aet = self.ledger.study_source_aet(study_instance_uid)
            try:
                self.client.put_origin(study_instance_uid, self.institution_code, source_aet)
            except HubApiError as exc:
                logger.warning("origin not posted", extra={
                    "study_instance_uid": study_instance_uid, "reason": str(exc)})
                self.ledger.set_error(f"origin {study_instance_uid}: {exc}")
                return False
            self.ledger.mark_origin_posted(study_instance_uid)
            logger.info("origin posted", extra={"study_instance_uid": study_instance_uid})
            return True

    def run_once(self, now: float | None = None) -> int:
        """One pass; returns how many manifests were accepted by the hub."""
        now = time.time() if now is None else now
        for study in self.ledger.studies_needing_origin():
            if not self.post_origin(study):
                return 0  # hub unreachable: try the rest on the next pass
        posted = 0
        for study in self.ledger.studies_ready_for_manifest(now, self.quiet_seconds):
            series, source_aet, last_received = self.ledger.manifest(study)
            try:
                answer = self.client.post_manifest(
                    study, self.institution_code, source_aet, series
                )
            except HubApiError as exc:
                self.ledger.record_manifest_failure(study, str(exc))
                METRICS.manifest_failures.inc()
                logger.warning("manifest not posted", extra={
                    "study_instance_uid": study, "reason": str(exc)})
                return posted
            count = sum(len(v) for v in series.values())
            if self.ledger.mark_manifest_posted(study, last_received):
                posted += 1
            METRICS.manifests_posted.inc()
            logger.info("manifest posted", extra={
                "study_instance_uid": study, "series": len(series), "instances": count,
                "hub_status": answer.get("status"), "missing": answer.get("missing")})
        return posted

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_once()
            except Exception:  # noqa: BLE001 - keep the loop alive; the ledger keeps the work
                logger.exception("manifest pass failed")
            self._stop.wait(self.poll_seconds)

    def start(self) -> None:
        """Run the loop in a daemon thread."""
        self._thread = threading.Thread(target=self._loop, name="manifests", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the loop and wait for it."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
