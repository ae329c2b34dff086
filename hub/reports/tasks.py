"""Celery tasks for reports. Thin: settings in, services do the work; explicit names.

``shared_task`` binds to the current Celery app, so the lead lists ``hub.reports.tasks`` in the
app's ``include`` and schedules both tasks in beat (every minute is enough).
"""

from __future__ import annotations

import logging

from celery import shared_task

from hub.config import Settings

logger = logging.getLogger(__name__)


@shared_task(name="hub.reports.tasks.deliver_reports", acks_late=True)
def deliver_reports() -> dict[str, int]:
    """Send due outbound messages, mark ACKed report deliveries, retry DICOM stores.

    Idempotent: a redelivered task runs one more pass.
    """
    from hub.db.session import session_scope
    from hub.orthanc.client import OrthancClient
    from hub.services.delivery import deliver_and_sync, retry_dicom
    from lis_bridge.config import LisSettings

    settings = Settings()
    delivered = deliver_and_sync(settings.effective_database_url, LisSettings())
    orthanc = OrthancClient(settings.orthanc_url, settings.orthanc_user,
                            settings.orthanc_password, timeout=settings.orthanc_timeout)
    with session_scope(settings.effective_database_url) as session:
        stored = retry_dicom(session, orthanc)
    return {"delivered": delivered, "dicom_stored": stored}


@shared_task(name="hub.reports.tasks.escalate_critical", acks_late=True)
def escalate_critical() -> int:
    """Escalate unacknowledged critical results (lab and report) that are due."""
    from hub.db.session import session_scope
    from hub.services.critical import escalate_now

    settings = Settings()
    with session_scope(settings.effective_database_url) as session:
        return len(escalate_now(session, settings.report_critical_escalate_minutes,
                                settings.report_critical_max_level))
