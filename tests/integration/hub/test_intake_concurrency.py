"""Two writers on one worklist item: neither may undo the other's change.

The change feed refreshes a study (``hub.intake.enqueue``) while a person reconciles it (which
adds the order link to the item's details). Both rewrite the whole ``details`` JSON; the order
link must survive whichever commits last.
"""

from __future__ import annotations

import threading
import time

from hub.db.models import WorklistItem
from hub.db.session import get_sessionmaker, session_scope
from hub.intake import IntakeRules, NewItem, enqueue
from hub.services.patients import PatientRef

RULES = IntakeRules({"stat": 30, "urgent": 120, "routine": 1440}, {"CT": "radiology"})


def study(**details: object) -> NewItem:
    return NewItem(kind="imaging", natural_key="1.2.3.4", institution_code=None,
                   patient=PatientRef("P1", "王芳"), modality="CT", details=dict(details))


def test_a_refresh_waits_for_an_uncommitted_order_link_and_keeps_it(db_url: str) -> None:
    with session_scope(db_url) as s:
        item_id = enqueue(s, study(series=1), RULES).id

    linker = get_sessionmaker(db_url)()
    refreshed = threading.Event()
    failure: list[BaseException] = []

    def refresh() -> None:
        try:
            with session_scope(db_url) as s:
                enqueue(s, study(series=2), RULES)
            refreshed.set()
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            failure.append(exc)

    try:
        item = linker.get(WorklistItem, item_id)
        assert item is not None
        item.details = {**item.details, "order": {"id": 7}}
        linker.flush()
        worker = threading.Thread(target=refresh)
        worker.start()
        # The refresh has had ample time to read the item; it must still be waiting for the link.
        time.sleep(1.0)
        assert not refreshed.is_set()
        linker.commit()
    finally:
        linker.close()
    worker.join(timeout=30)
    assert not failure, failure
    assert refreshed.is_set()

    with session_scope(db_url) as s:
        details = s.get(WorklistItem, item_id).details
    assert details["order"] == {"id": 7}
    assert details["series"] == 2
