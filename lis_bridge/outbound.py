"""Results out: verified lab results to each institution's HIS as ORU^R01 over MLLP.

Queue (:func:`queue_result`) in the same transaction as the verification, then deliver
(:func:`deliver_due`) from a Celery task or directly. Delivery keeps order per patient: only the
oldest undelivered message of each (institution, patient) queue is attempted, the next one waits
until it is acknowledged or dead-lettered. A failed attempt is retried with exponential backoff;
after ``outbound_dead_after`` seconds without an ACK the message is dead-lettered (row status
``dead`` plus a ``dead_letters`` entry) and logged at ERROR for the alerting to pick up.

An ACK counts as delivery when it is AA (original mode) or CA (enhanced-mode commit accept: the
HIS has it safely; its application ACK, if any, comes later on its own).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.core import Message
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from hub.clock import as_utc, utcnow
from hub.db.lab_models import LabObservation, LabOutbound, LabResultSet
from hub.db.models import DeadLetter, Patient
from hub.db.session import get_sessionmaker
from hub.domain.errors import NotFound
from lis_bridge.acks import escape, new_control_id, parse_ack
from lis_bridge.config import LisSettings
from lis_bridge.mllp import MllpClient

logger = logging.getLogger(__name__)

TASK_NAME = "lis_bridge.tasks.send_outbound"


def _hl7_ts(value: datetime | None) -> str:
    return as_utc(value).strftime("%Y%m%d%H%M%S+0000") if value else ""


def build_oru(session: Session, result_set: LabResultSet, settings: LisSettings,
              control_id: str, now: datetime) -> str:
    """Build the ORU^R01 (v2.5.1) for one result set with hl7apy; returns ER7 text.

    Values are set as escaped ER7 so separators in a value cannot break the structure.
    """
    patient = session.get(Patient, result_set.patient_id) if result_set.patient_id else None
    m = Message("ORU_R01", version="2.5.1", validation_level=VALIDATION_LEVEL.TOLERANT)
    m.msh.msh_3 = escape(settings.application)
    m.msh.msh_4 = escape(settings.facility)
    m.msh.msh_5 = "HIS"
    m.msh.msh_6 = escape(result_set.institution_code)
    m.msh.msh_7 = now.strftime("%Y%m%d%H%M%S")
    m.msh.msh_9 = "ORU^R01^ORU_R01"
    m.msh.msh_10 = control_id
    m.msh.msh_11 = "P"
    m.msh.msh_12 = "2.5.1"
    m.msh.msh_18 = "UNICODE UTF-8"
    group = m.add_group("ORU_R01_PATIENT_RESULT")
    pgroup = group.add_group("ORU_R01_PATIENT")
    pid = pgroup.add_segment("PID")
    pid.pid_1 = "1"
    local_id = escape(result_set.patient_local_id or "")
    pid.pid_3 = f"{local_id}^^^{escape(result_set.institution_code)}^MR"
    name = (patient.name if patient else "") or ""
    pid.pid_5 = "^".join(escape(p) for p in name.split("^"))
    if patient and patient.birth_date:
        pid.pid_7 = patient.birth_date.strftime("%Y%m%d")
    if patient and patient.sex:
        pid.pid_8 = patient.sex
    obs_group = group.add_group("ORU_R01_ORDER_OBSERVATION")
    orc = obs_group.add_segment("ORC")
    orc.orc_1 = "RE"
    obr = obs_group.add_segment("OBR")
    obr.obr_1 = "1"
    placer = result_set.placer_order_number
    if placer:
        orc.orc_2 = escape(placer).replace("\\S\\", "^", 1)
        obr.obr_2 = escape(placer).replace("\\S\\", "^", 1)
    filler = result_set.filler_order_number.removeprefix("placer:")
    orc.orc_3 = escape(filler).replace("\\S\\", "^", 1)
    obr.obr_3 = escape(filler).replace("\\S\\", "^", 1)
    obr.obr_4 = f"{escape(result_set.service_code)}^{escape(result_set.service_name)}"
    if result_set.observed_at:
        obr.obr_7 = _hl7_ts(result_set.observed_at)
    obr.obr_22 = _hl7_ts(result_set.verified_at or now)
    obr.obr_25 = result_set.result_status
    observations = session.scalars(select(LabObservation).where(
        LabObservation.result_set_id == result_set.id).order_by(LabObservation.id))
    for i, o in enumerate(observations, start=1):
        og = obs_group.add_group("ORU_R01_OBSERVATION")
        obx = og.add_segment("OBX")
        obx.obx_1 = str(i)
        obx.obx_2 = o.value_type or "ST"
        obx.obx_3 = f"{escape(o.code)}^{escape(o.name)}^{escape(o.coding_system)}"
        if o.sub_id:
            obx.obx_4 = escape(o.sub_id)
        if o.value:
            # Structured types (CWE, SN, ...) were stored in their ER7 form; copy them as is.
            obx.obx_5 = o.value if o.value_type in ("CWE", "CE", "SN", "FN") else escape(o.value)
        if o.units:
            obx.obx_6 = escape(o.units)
        if o.reference_range:
            obx.obx_7 = escape(o.reference_range)
        if o.abnormal_flags:
            obx.obx_8 = "~".join(escape(f) for f in o.abnormal_flags)
        obx.obx_11 = o.result_status
        if o.observed_at:
            obx.obx_14 = _hl7_ts(o.observed_at)
    return m.to_er7()


def queue_result(session: Session, result_set_id: int, settings: LisSettings,
                 now: datetime) -> LabOutbound | None:
    """Queue a verified result set for its institution's HIS; None when it has no endpoint.

    Call in the transaction that verifies the result, so the message exists iff the
    verification does.

    Raises:
        NotFound: no such result set.
    """
    result_set = session.get(LabResultSet, result_set_id)
    if result_set is None:
        raise NotFound(f"lab result set {result_set_id}")
    if result_set.institution_code not in settings.his_endpoints:
        logger.info("result set %s: institution %s has no HIS endpoint, not sent",
                    result_set_id, result_set.institution_code)
        return None
    control_id = new_control_id(now)
    row = LabOutbound(
        institution_code=result_set.institution_code,
        patient_key=f"{result_set.patient_id or 'local:' + (result_set.patient_local_id or '')}",
        result_set_id=result_set.id,
        control_id=control_id,
        message=build_oru(session, result_set, settings, control_id, now),
        status="pending", attempts=0, created_at=now, next_attempt_at=now,
    )
    session.add(row)
    session.flush()
    return row


@dataclass(frozen=True)
class DeliveryReport:
    """What one :func:`deliver_due` pass did."""

    acked: int = 0
    failed: int = 0
    dead: int = 0
    pending: int = 0


async def mllp_send(host: str, port: int, message: bytes, timeout: float) -> bytes:
    """Send one message on a fresh connection and return the ACK frame."""
    client = MllpClient(host, port, timeout=timeout)
    try:
        await client.connect()
        return await client.send(message)
    finally:
        await client.close()


def _backoff(settings: LisSettings, attempts: int) -> timedelta:
    return timedelta(seconds=min(settings.outbound_backoff_base * (2 ** max(attempts - 1, 0)),
                                 settings.outbound_backoff_max))


def deliver_due(database_url: str, settings: LisSettings, *, now: datetime | None = None,
                limit: int = 100) -> DeliveryReport:
    """Attempt the head message of every patient queue that is due; return what happened.

    Safe to run from several workers at once: heads are locked with ``FOR UPDATE SKIP LOCKED``
    on PostgreSQL while they are sent, so no message is sent twice concurrently.
    """
    maker = get_sessionmaker(database_url)
    acked = failed = dead = 0
    with maker() as session:
        heads = session.execute(
            select(func.min(LabOutbound.id))
            .where(LabOutbound.status == "pending")
            .group_by(LabOutbound.institution_code, LabOutbound.patient_key)
            .limit(limit)
        ).scalars().all()
    for head_id in sorted(heads):
        with maker() as session, session.begin():
            row = session.scalar(select(LabOutbound).where(LabOutbound.id == head_id,
                                                           LabOutbound.status == "pending")
                                 .with_for_update(skip_locked=True))
            if row is None:
                continue
            t = now or utcnow()
            if as_utc(row.next_attempt_at) > t:
                continue
            outcome = _attempt(row, settings, t)
            if outcome == "acked":
                acked += 1
            elif outcome == "dead":
                dead += 1
                session.add(DeadLetter(task_name=TASK_NAME, task_id=row.control_id,
                                       args=[row.id], error=row.last_error or "",
                                       failed_at=t))
            else:
                failed += 1
    with maker() as session:
        pending = session.scalar(select(func.count()).select_from(LabOutbound)
                                 .where(LabOutbound.status == "pending")) or 0
    return DeliveryReport(acked, failed, dead, pending)


def _attempt(row: LabOutbound, settings: LisSettings, now: datetime) -> str:
    endpoint = settings.his_endpoints.get(row.institution_code, "")
    host, _, port = endpoint.rpartition(":")
    row.attempts += 1
    try:
        if not host or not port.isdigit():
            raise ValueError(f"no HIS endpoint for {row.institution_code}")
        reply = asyncio.run(mllp_send(host, int(port), row.message.encode("utf-8"),
                                      settings.outbound_timeout))
        ack = parse_ack(reply.decode("utf-8", errors="replace"))
        if ack.ref_control_id and ack.ref_control_id != row.control_id:
            raise ValueError(f"ACK refers to {ack.ref_control_id}, not {row.control_id}")
        row.ack_code = ack.code
        if ack.is_positive:
            row.status = "acked"
            row.acked_at = now
            row.last_error = None
            logger.info("outbound %s (MSH-10 %s) acknowledged %s by %s", row.id,
                        row.control_id, ack.code, row.institution_code)
            return "acked"
        raise ValueError(f"HIS answered {ack.code}: {ack.text}")
    except (OSError, TimeoutError, ConnectionError, ValueError) as exc:
        row.last_error = f"{type(exc).__name__}: {exc}"[:2000]
        age = (now - as_utc(row.created_at)).total_seconds()
        if age >= settings.outbound_dead_after:
            row.status = "dead"
            logger.error("outbound %s (MSH-10 %s) to %s dead-lettered after %d attempts: %s",
                         row.id, row.control_id, row.institution_code, row.attempts,
                         row.last_error)
            return "dead"
        row.next_attempt_at = now + _backoff(settings, row.attempts)
        logger.warning("outbound %s (MSH-10 %s) to %s failed (attempt %d), retry at %s: %s",
                       row.id, row.control_id, row.institution_code, row.attempts,
                       row.next_attempt_at.isoformat(), row.last_error)
        return "failed"
