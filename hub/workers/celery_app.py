"""Celery application: Redis broker, late acks, beat schedule for the Orthanc change feed."""

from __future__ import annotations

import logging

from celery import Celery
from celery.signals import setup_logging

from hub.config import get_settings

settings = get_settings()

celery_app = Celery("yigong", broker=settings.broker_url, include=["hub.workers.tasks"])
celery_app.conf.update(
    # Tasks are idempotent, so acknowledge only after they ran: a killed worker's task is redone.
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    # Longer than any task runs, so Redis does not redeliver a task that is still running.
    broker_transport_options={"visibility_timeout": 3600},
    task_ignore_result=True,
    broker_connection_retry_on_startup=True,
    timezone="UTC",
    beat_schedule={
        "follow-orthanc-changes": {
            "task": "hub.workers.tasks.follow_orthanc_changes",
            "schedule": settings.changes_poll_seconds,
            "options": {"expires": max(settings.changes_poll_seconds * 5, 10)},
        },
        "release-expired-claims": {
            "task": "hub.workers.tasks.release_expired_claims",
            "schedule": 60.0,
        },
    },
)

app = celery_app


@setup_logging.connect
def _configure_logging(**_kwargs) -> None:  # noqa: ANN003
    # Beat fires the change follower every few seconds; per-task received/succeeded lines would
    # bury the lines that matter (items created, failures).
    from hub.logging import configure

    configure()
    for name in ("celery.app.trace", "celery.worker.strategy"):
        logging.getLogger(name).setLevel(logging.WARNING)
