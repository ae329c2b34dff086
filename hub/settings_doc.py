"""Settings of every deployable as Markdown tables (README) and as effective values (CLI)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from pydantic_settings import BaseSettings

SECRET_WORDS = ("password", "secret", "key")


def deployables() -> list[tuple[str, type[BaseSettings]]]:
    from dicom_node.config import NodeSettings
    from hub.config import Settings
    from lis_bridge.config import LisSettings

    return [("Hub (`hub`: API, worker, beat)", Settings),
            ("Branch DICOM node (`yigong node`)", NodeSettings),
            ("LIS bridge (`yigong lis`)", LisSettings)]


def env_names(cls: type[BaseSettings]) -> Iterator[tuple[str, str]]:
    prefix = cls.model_config.get("env_prefix", "")
    for name in cls.model_fields:
        yield name, f"{prefix}{name.upper()}"


def _show(value: Any, long_hint: str) -> str:
    if value is None or value == "":
        return "*(empty)*"
    if isinstance(value, dict | list):
        text = json.dumps(value, ensure_ascii=False)
        return f"`{text}`" if len(text) <= 58 else long_hint
    return f"`{getattr(value, 'value', value)}`"


def markdown() -> str:
    out = []
    for title, cls in deployables():
        out += [f"#### {title}", "", "| variable | default | meaning |", "|---|---|---|"]
        for name, env in env_names(cls):
            field = cls.model_fields[name]
            default = field.default_factory() if field.default_factory else field.default
            desc = (field.description or "").replace("|", "\\|")
            out.append(f"| `{env}` | {_show(default, f'see `{cls.__module__}`')} | {desc} |")
        out.append("")
    return "\n".join(out)


def effective() -> list[tuple[str, str]]:
    """(variable, value) of the current environment, secrets masked."""
    rows = []
    for _title, cls in deployables():
        settings = cls()
        for name, env in env_names(cls):
            value = getattr(settings, name)
            masked = any(w in name for w in SECRET_WORDS) and value
            rows.append((env, "****" if masked else _show(value, json.dumps(value)).strip("`")))
    return rows
