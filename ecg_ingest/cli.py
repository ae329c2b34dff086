"""``yigong ecg``: send ECG files to the hub, or render one locally.

The hub registers this Typer app as ``yigong ecg``. ``send`` talks to the hub over HTTP only, so
it runs on a branch PC that has the package but no database or Orthanc.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import requests
import typer

from ecg_ingest.errors import EcgError
from ecg_ingest.readers import files_for_path

logger = logging.getLogger(__name__)

app = typer.Typer(help="ECG centre: send ECGs to the hub, render a page locally.",
                  no_args_is_help=True)


def _token(session: requests.Session, hub: str, username: str, password: str) -> str:
    resp = session.post(f"{hub}/api/auth/token",
                        data={"username": username, "password": password}, timeout=30)
    if resp.status_code != 200:
        raise typer.BadParameter(f"login failed: HTTP {resp.status_code} {resp.text[:200]}")
    return resp.json()["access_token"]


@app.command()
def send(
    files: Annotated[list[Path], typer.Argument(
        help="ECG files: .dcm, aECG .xml, or a WFDB .hea (its signal files go along)",
        exists=True, dir_okay=False, readable=True)],
    patient_id: Annotated[str | None, typer.Option(help="Fills the file's gap only")] = None,
    patient_name: Annotated[str | None, typer.Option(help="Fills the file's gap only")] = None,
    institution: Annotated[str | None, typer.Option(help="Institution code")] = None,
    hub: Annotated[str, typer.Option(envvar="YIGONG_HUB_URL")] = "http://127.0.0.1:8000",
    username: Annotated[str | None, typer.Option(envvar="YIGONG_USERNAME")] = None,
    password: Annotated[str | None, typer.Option(envvar="YIGONG_PASSWORD",
                                                 hide_input=True)] = None,
) -> None:
    """Upload each ECG to the hub's POST /api/ecg and print the worklist item it became."""
    hub = hub.rstrip("/")
    http = requests.Session()
    if username:
        if password is None:
            password = typer.prompt("Password", hide_input=True)
        http.headers["Authorization"] = f"Bearer {_token(http, hub, username, password)}"
    failed = 0
    for path in files:
        try:
            blobs = files_for_path(path)
        except (OSError, EcgError) as exc:
            typer.echo(f"{path}: cannot read: {exc}", err=True)
            failed += 1
            continue
        form = {k: v for k, v in (("patient_id", patient_id), ("patient_name", patient_name),
                                  ("institution", institution)) if v}
        multipart = [("file", (name, data, "application/octet-stream"))
                     for name, data in blobs.items()]
        try:
            resp = http.post(f"{hub}/api/ecg", data=form, files=multipart, timeout=120)
        except requests.RequestException as exc:
            typer.echo(f"{path}: hub unreachable: {exc}", err=True)
            failed += 1
            continue
        if resp.status_code != 201:
            try:
                detail = resp.json().get("detail")
            except ValueError:
                detail = resp.text[:300]
            typer.echo(f"{path}: refused (HTTP {resp.status_code}): {detail}", err=True)
            failed += 1
            continue
        for item in resp.json():
            m = (item.get("details") or {}).get("measurements") or {}
            line = (f"{path}: item {item['id']} {item['priority']} "
                    f"HR {m.get('heart_rate_bpm')} bpm")
            if item.get("is_critical"):
                line += f"  CRITICAL: {item.get('critical_reason')}"
            if item.get("flags"):
                line += f"  flags: {'; '.join(item['flags'])}"
            typer.echo(line)
    if failed:
        raise typer.Exit(code=1)


@app.command()
def render(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
    output: Annotated[Path, typer.Option("--output", "-o", help=".png or .svg")] = Path("ecg.png"),
) -> None:
    """Read, measure and render one ECG locally (no hub needed)."""
    from ecg_ingest.measure import measure
    from ecg_ingest.readers import read_files
    from ecg_ingest.render import PageInfo, render_png, render_svg

    try:
        parsed = read_files(files_for_path(file))
    except EcgError as exc:
        typer.echo(f"{file}: {exc}", err=True)
        raise typer.Exit(code=1) from None
    record = parsed[0].record
    m = measure(record)
    info = PageInfo(patient_id=record.patient.patient_id or "",
                    patient_name=record.patient.name or "",
                    flags=m.quality_flags)
    if output.suffix.lower() == ".svg":
        output.write_text(render_svg(record, m, info), encoding="utf-8")
    else:
        output.write_bytes(render_png(record, m, info))
    typer.echo(f"{output}: HR {m.heart_rate_bpm and round(m.heart_rate_bpm)} bpm, "
               f"{len(record.leads)} leads, {record.duration_s:.1f} s")
