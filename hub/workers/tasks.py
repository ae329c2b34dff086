"""Celery tasks: thin wrappers that pass ids in and call services.

Every task is idempotent; retries use backoff for known transient errors only, and a task that
fails for good is written to the dead-letter table for a person to see.
"""

from __future__ import annotations

import contextlib
import logging
import time
import traceback

import redis
from celery import Task

from hub.clock import utcnow
from hub.config import get_settings
from hub.db.models import DeadLetter
from hub.db.session import session_scope
from hub.intake import IntakeRules
from hub.orthanc.client import OrthancClient
from hub.orthanc.errors import OrthancUnavailable
from hub.services import studies, worklist
from hub.workers.celery_app import celery_app

logger = logging.getLogger(__name__)


class DeadLetteringTask(Task):
    """Base task: on final failure, keep the task, its arguments and the error."""

    autoretry_for = (OrthancUnavailable, ConnectionError)
    retry_backoff = True
    retry_backoff_max = 300
    retry_jitter = True
    max_retries = get_settings().task_max_retries

    def on_retry(self, exc, task_id, args, kwargs, einfo):  # noqa: ANN001
        logger.warning("task %s[%s] will retry (%d so far): %s", self.name, task_id,
                       self.request.retries, exc)

    def on_failure(self, exc, task_id, args, kwargs, einfo):  # noqa: ANN001
        settings = get_settings()
        try:
            with session_scope(settings.effective_database_url) as session:
                session.add(DeadLetter(
                    task_name=self.name, task_id=task_id or "", args=[list(args), kwargs],
                    error="".join(traceback.format_exception(exc))[-4000:],
                    failed_at=utcnow()))
        except Exception:  # noqa: BLE001 - the log is the last resort
            logger.exception("could not dead-letter task %s", task_id)
        logger.error("task %s[%s] failed for good: %s", self.name, task_id, exc)


_client: OrthancClient | None = None


def orthanc_client() -> OrthancClient:
    global _client
    if _client is None:
        s = get_settings()
        _client = OrthancClient(s.orthanc_url, s.orthanc_user, s.orthanc_password,
                                timeout=s.orthanc_timeout)
    return _client


def follow_until_done(url: str, client: OrthancClient, rules: IntakeRules,
                      budget_seconds: float = 20.0) -> int:
    """Process change pages until Orthanc says Done or the time budget is used; returns count."""
    total = 0
    deadline = time.monotonic() + budget_seconds
    while time.monotonic() < deadline:
        with session_scope(url) as session:
            result = studies.follow_changes(session, client, rules)
        total += result.processed
        if result.done:
            break
    return total


@celery_app.task(base=DeadLetteringTask, name="hub.workers.tasks.follow_orthanc_changes",
                 bind=True)
def follow_orthanc_changes(self: Task) -> int:
    s = get_settings()
    # One follower at a time: beat fires every few seconds and a page may take longer. The
    # database cursor alone would serialise on PostgreSQL but not on SQLite.
    # The lock expires on its own, so a worker killed while holding it stalls the feed briefly.
    lock = redis.Redis.from_url(s.broker_url).lock(
        "yigong:follow-orthanc-changes", timeout=s.changes_budget_seconds + 10, blocking=False)
    if not lock.acquire():
        return 0
    try:
        n = follow_until_done(s.effective_database_url, orthanc_client(),
                              IntakeRules.from_settings(s), s.changes_budget_seconds)
    finally:
        with contextlib.suppress(redis.exceptions.LockError):
            lock.release()
    if n:
        logger.info("followed %d Orthanc changes", n)
    return n


@celery_app.task(base=DeadLetteringTask, name="hub.workers.tasks.release_expired_claims")
def release_expired_claims() -> int:
    with session_scope(get_settings().effective_database_url) as session:
        return worklist.release_expired_claims(session)


@celery_app.task(base=DeadLetteringTask, name="hub.workers.tasks.seal_audit_trail")
def seal_audit_trail() -> int:
    from hub.audit import seal_all
    from hub.db.session import get_sessionmaker

    return seal_all(get_sessionmaker(get_settings().effective_database_url))
