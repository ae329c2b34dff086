"""HL7 imaging and ECG orders (ORM^O01, OMI^O23, OMG^O19) -> :class:`OrderIn` (issue 8).

Where each value is read, in the order tried (IHE SWF RAD-2/RAD-4 for v2.3.1 ORM, v2.5.1 OMI):

| value | fields |
|---|---|
| placer order number | ORC-2 / OBR-2 (EI) |
| filler order number | ORC-3 / OBR-3 |
| accession number | IPC-1, OBR-18 |
| requested procedure ID / SPS ID | IPC-2, OBR-19 / IPC-4, OBR-20 |
| Study Instance UID | IPC-3, ZDS-1 |
| modality | IPC-5, OBR-24 (table 0074, see ``SECTION_MODALITY``) |
| scheduled station AE title | IPC-9 |
| scheduled date/time | TQ1-7, ORC-7.4, OBR-36, OBR-27.4 |
| requested procedure | OBR-4 (code^text) |
| priority | TQ1-9, OBR-5, ORC-7.6 |
| ordering clinician | ORC-12, OBR-16 (XCN id^family^given) |
| reason | OBR-31 (text, else code), ORC-16 |

Routing: OML^O21 is always lab. OMI^O23 is imaging; OMG^O19 is an ECG unless OBR-24 names an
imaging section. ORM^O01 is imaging/ECG when IPC-5 or OBR-24 names a modality, else a lab order
(the lab bridge's behaviour before issue 8).
"""

from __future__ import annotations

from datetime import tzinfo
from typing import TYPE_CHECKING

from hub.domain.errors import InvalidInput
from hub.domain.orders import (
    OrderControl,
    OrderKind,
    body_region,
    kind_for_modality,
    modality_for,
)
from hub.services.orders import OrderIn

if TYPE_CHECKING:
    from lis_bridge.hl7_map import Header, _Seg


def _modality(obr: _Seg, ipc: _Seg | None) -> str | None:
    return modality_for(ipc.comp(5, 1) if ipc else "") or modality_for(obr.comp(24, 1))


def is_imaging_group(header: Header, obr: _Seg, ipc: _Seg | None) -> bool:
    """Whether this OBR group is an imaging/ECG order (True) or a lab order (False)."""
    if header.message_code == "OML":
        return False
    if header.message_code in ("OMI", "OMG"):
        return True
    return _modality(obr, ipc) is not None


def _xcn(seg: _Seg, n: int) -> str:
    parts = [seg.comp(n, c) for c in (1, 2, 3)]
    return "^".join(parts).strip("^") if any(parts) else ""


def imaging_order(header: Header, pid: _Seg, obr: _Seg, orc: _Seg | None, tq1: _Seg | None,
                  ipc: _Seg | None, zds: _Seg | None, placer: str, filler: str,
                  local: tzinfo) -> OrderIn:
    """Map one order group.

    Raises:
        Hl7ContentError: an order control we do not act on (ORC-1, 103), a new order without a
            modality (OBR-24, 101) or for a patient with no identifier at all (PID-3, 101).
    """
    from lis_bridge.hl7_map import (
        ErrorCode,
        Hl7ContentError,
        _priority,
        parse_dtm,
    )

    try:
        control = OrderControl.from_hl7(orc.comp(1, 1) if orc else "NW")
    except InvalidInput as exc:
        raise Hl7ContentError(ErrorCode.TABLE_VALUE_NOT_FOUND,
                              orc.loc(1) if orc else "ORC", str(exc)) from None
    modality = _modality(obr, ipc)
    if modality is None and header.message_code == "OMG":
        modality = "ECG"
    if modality is None:
        if control == OrderControl.NEW:
            raise Hl7ContentError(ErrorCode.REQUIRED_FIELD_MISSING, obr.loc(24),
                                  "modality (OBR-24 or IPC-5) is required on an imaging order")
        modality = ""
    if control == OrderControl.NEW and not any(
            pid.comp(n, 1, i) for n in (2, 3, 4) for i in range(max(len(pid.reps(n)), 1))):
        raise Hl7ContentError(ErrorCode.REQUIRED_FIELD_MISSING, pid.loc(3),
                              "unknown patient without identifiers")
    scheduled = None
    for raw in ((tq1.comp(7, 1) if tq1 else ""), (orc.comp(7, 4) if orc else ""),
                obr.comp(36, 1), obr.comp(27, 4)):
        scheduled = parse_dtm(raw, local) if raw else None
        if scheduled is not None:
            break
    reason = obr.comp(31, 2) or obr.comp(31, 1) or (orc.comp(16, 2) or orc.comp(16, 1)
                                                     if orc else "")
    clinician = (_xcn(orc, 12) if orc else "") or _xcn(obr, 16)
    code, name = obr.comp(4, 1), obr.comp(4, 2)
    return OrderIn(
        control=control,
        kind=kind_for_modality(modality) if modality else OrderKind.IMAGING,
        placer_order_number=placer,
        modality=modality,
        priority=_priority(obr, orc, tq1),
        filler_order_number=filler,
        accession_number=(ipc.comp(1, 1) if ipc else "") or obr.comp(18, 1),
        requested_procedure_id=(ipc.comp(2, 1) if ipc else "") or obr.comp(19, 1),
        sps_id=(ipc.comp(4, 1) if ipc else "") or obr.comp(20, 1),
        study_instance_uid=(ipc.comp(3, 1) if ipc else "") or (zds.comp(1, 1) if zds else ""),
        procedure_code=code[:64],
        procedure_name=name[:200],
        body_part=body_region(obr.comp(15, 4), code, name),
        scheduled_at=scheduled,
        scheduled_station_aet=(ipc.comp(9, 1) if ipc else "")[:16],
        ordering_clinician=clinician[:200],
        reason=reason,
        patient_name="^".join(pid.comp(5, c) for c in (1, 2, 3)).rstrip("^")[:200],
    )
