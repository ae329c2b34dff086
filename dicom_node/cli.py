"""Command line of the node. hub/cli.py mounts ``app`` as ``yigong node`` and ``send`` as
``yigong send``; ``python -m dicom_node`` runs ``app`` directly.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from dicom_node.config import NodeSettings

app = typer.Typer(help="Branch DICOM node: receive, spool, forward to the hub.",
                  no_args_is_help=False)


@app.callback(invoke_without_command=True)
def node(ctx: typer.Context) -> None:
    """Run the node in the foreground (settings from YIGONG_NODE_* variables)."""
    if ctx.invoked_subcommand is not None:
        return
    from dicom_node.logging import configure_logging
    from dicom_node.node import Node

    settings = NodeSettings()
    configure_logging(settings.log_level, settings.log_json)
    Node(settings).run_forever()


@app.command()
def status(
    spool_dir: Annotated[
        Path | None, typer.Option(help="Spool directory (default: YIGONG_NODE_SPOOL_DIR)")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output")] = False,
) -> None:
    """Queue depth, oldest waiting instance, last error and forwarding rate.

    Reads the spool's ledger, so it works while the node runs in another process.
    """
    from dicom_node.ledger import Ledger

    root = spool_dir or NodeSettings().spool_dir
    db = root / "ledger.sqlite3"
    if not db.exists():
        typer.echo(f"no node spool at {root}", err=True)
        raise typer.Exit(2)
    st = Ledger(db).status()
    if as_json:
        typer.echo(json.dumps(asdict(st)))
        return
    now = time.time()
    table = Table(title=f"Yigong node — {root}", show_header=False)
    table.add_row("queue depth", str(st.queue_depth))
    oldest = (f"{now - st.oldest_waiting_at:.0f} s ago" if st.oldest_waiting_at else "—")
    table.add_row("oldest waiting", oldest)
    table.add_row("rate (last minute)", f"{st.rate_per_second:.1f} instances/s")
    table.add_row("received / forwarded", f"{st.received_total} / {st.forwarded_total}")
    table.add_row("quarantined", str(st.quarantined))
    table.add_row("studies awaiting manifest", str(st.studies_awaiting_manifest))
    err = st.last_error or "—"
    if st.last_error_at:
        err += f" ({now - st.last_error_at:.0f} s ago)"
    table.add_row("last error", err)
    Console().print(table)


def send(
    paths: Annotated[list[Path], typer.Argument(help="Files, folders or DICOMDIR")],
    host: Annotated[str, typer.Option(help="Node or hub address")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="DICOM port")] = 11112,
    aet: Annotated[str, typer.Option(help="Called AE title")] = "YIGONG-NODE",
    calling_aet: Annotated[str, typer.Option(help="Our AE title")] = "YIGONG-SEND",
    tls: Annotated[bool, typer.Option(help="Use TLS")] = False,
    tls_ca: Annotated[Path | None, typer.Option(help="CA bundle to verify the peer")] = None,
) -> None:
    """Send DICOM files, folders or a patient CD (DICOMDIR) with a progress bar."""
    import ssl

    from dicom_node.sender import SendReport, plan, send_files

    console = Console(stderr=True)
    report = SendReport()
    planned = plan(paths, report)
    ctx = None
    if tls:
        ctx = ssl.create_default_context(cafile=str(tls_ca) if tls_ca else None)
        ctx.check_hostname = False
    with Progress(
        TextColumn("[bold]sending"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
        console=console, transient=False,
    ) as bar:
        task = bar.add_task("send", total=len(planned))
        send_files(paths, host, port, aet, calling_aet, ctx,
                   progress=lambda n: bar.advance(task, n), planned=planned, report=report)
    console.print(f"[green]{report.sent} sent[/], [red]{len(report.failed)} failed[/], "
                  f"{len(report.skipped)} skipped (not DICOM)")
    for path, why in report.failed[:50]:
        console.print(f"  [red]failed[/] {path}: {why}")
    for path, why in report.skipped[:20]:
        console.print(f"  [yellow]skipped[/] {path}: {why}")
    if report.failed:
        raise typer.Exit(1)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
