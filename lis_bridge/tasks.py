"""Celery task for outbound results. Thin: settings in, :func:`deliver_due` does the work.

``shared_task`` binds to whichever Celery app is current, so this module does not import
``hub.workers.celery_app``; the hub's app lists ``lis_bridge.tasks`` in its ``include`` and runs
the task from beat every few seconds (and callers may ``.delay()`` it right after verifying a
result). Each run is one delivery pass; per-message backoff lives in the ``lab_outbound`` rows, so
a redelivered or overlapping run is harmless (heads are locked with SKIP LOCKED on PostgreSQL).
"""

from __future__ import annotations

from celery import shared_task

from hub.config import get_settings
from lis_bridge.config import LisSettings
from lis_bridge.outbound import TASK_NAME, deliver_due


@shared_task(name=TASK_NAME, acks_late=True, ignore_result=True)
def send_outbound() -> dict[str, int]:
    """Deliver every due outbound lab result once; returns counts for the worker log."""
    report = deliver_due(get_settings().effective_database_url, LisSettings())
    return {"acked": report.acked, "failed": report.failed, "dead": report.dead,
            "pending": report.pending}
