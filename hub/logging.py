"""Logging set up once per process entry point (API, worker, node, bridge, CLI)."""

from __future__ import annotations

import logging
import os


def configure(level: str | None = None) -> None:
    level = (level or os.environ.get("YIGONG_LOG_LEVEL") or "INFO").upper()
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
    )
    # pynetdicom logs every PDU at INFO; keep protocol chatter for DEBUG runs.
    logging.getLogger("pynetdicom").setLevel(max(logging.getLevelName(level), logging.WARNING))
