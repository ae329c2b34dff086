"""Order status back to the placer's HIS: ORM^O01 with ORC-1 ``SC`` (status changed).

The message quotes the placer order number (ORC-2/OBR-2) and our filler number (ORC-3/OBR-3),
with the accession number in OBR-18 and the status in ORC-5 (table 0038) and OBR-25 (table 0123)
as :data:`hub.domain.orders.HL7_STATUS` says. It travels on the same outbound queue as reports
and lab results (``lis_bridge.outbound``), in order per patient, retried until acknowledged.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from hub.clock import as_utc
from hub.domain.orders import HL7_STATUS, OrderStatus
from lis_bridge.acks import escape


def _ei(value: str) -> str:
    """An EI stored as ``id^namespace`` back to ER7, each component escaped."""
    return "^".join(escape(p) for p in value.split("^", 1))


def build_status_message(order: Any, status: OrderStatus, control_id: str, *,
                         application: str, facility: str, now: datetime) -> str:
    """ER7 text (segments ``\\r``) of the ORM^O01 status update for ``order``.

    Args:
        order: an ``ImagingOrder`` row (read only).
        status: the order status to report (received, in reading, ...).
        control_id: MSH-10.
        application, facility: our MSH-3 / MSH-4.
        now: MSH-7 and ORC-9.
    """
    orc5, obr25 = HL7_STATUS[OrderStatus(status)]
    ts = as_utc(now).strftime("%Y%m%d%H%M%S+0000")
    name = "^".join(escape(p) for p in (order.patient_name or "").split("^"))
    service = f"{escape(order.procedure_code)}^{escape(order.procedure_name)}"
    placer, filler = _ei(order.placer_order_number), escape(order.filler_order_number)
    obr = ["OBR", "1", placer, filler, service] + [""] * 13 + [
        escape(order.accession_number), escape(order.requested_procedure_id),
        escape(order.sps_id), "", "", "", escape(order.modality), obr25]
    segs = [
        "|".join(["MSH", "^~\\&", escape(application), escape(facility), "HIS",
                  escape(order.institution_code), now.strftime("%Y%m%d%H%M%S"), "",
                  "ORM^O01^ORM_O01", control_id, "P", "2.5.1", "", "", "", "", "", "",
                  "UNICODE UTF-8"]),
        "|".join(["PID", "1", "", f"{escape(order.patient_local_id or '')}^^^"
                  f"{escape(order.institution_code)}^MR", "", name, "",
                  order.patient_birth_date or "", order.patient_sex or ""]),
        "|".join(["ORC", "SC", placer, filler, "", orc5, "", "", "", ts]),
        "|".join(obr),
    ]
    return "\r".join(segs) + "\r"
