"""Celery application: Redis broker, late acks, beat schedule for the Orthanc change feed."""

from __future__ import annotations

import logging

from celery import Celery
from celery.signals import setup_logging

from hub.config import get_settings

settings = get_settings()

celery_app = Celery("yigong", broker=settings.broker_url,
                    include=["hub.workers.tasks", "lis_bridge.tasks", "hub.reports.tasks"])
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
        "seal-audit-trail": {
            "task": "hub.workers.tasks.seal_audit_trail",
            "schedule": 2.0,
            "options": {"expires": 10},
        },
        "lis-outbound": {
            "task": "lis_bridge.tasks.send_outbound",
            "schedule": 10.0,
            "options": {"expires": 30},
        },
        "deliver-reports": {
            "task": "hub.reports.tasks.deliver_reports",
            "schedule": 60.0,
            "options": {"expires": 120},
        },
        "escalate-critical-results": {
            "task": "hub.reports.tasks.escalate_critical",
            "schedule": 60.0,
            "options": {"expires": 120},
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
