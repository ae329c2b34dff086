"""``yigong lis``: run the MLLP server in the foreground; ``yigong lis replay``: re-process.

The lead registers this Typer app as the ``lis`` command group of ``yigong``.
``python -m lis_bridge`` runs the same thing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import signal
import socket
from datetime import UTC, datetime

import typer

from hub.config import Settings
from hub.intake import IntakeRules
from lis_bridge.config import LisSettings

logger = logging.getLogger(__name__)

app = typer.Typer(help="LIS bridge: HL7 v2 over MLLP for lab results and orders.")


def _configure_logging(level: str) -> None:
    from hub.logging import configure

    configure(level)


def _serve_process(lis: LisSettings, database_url: str, intake: IntakeRules,
                   channel: socket.socket | None = None) -> None:
    from lis_bridge.server import run_bridge

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    task = loop.create_task(run_bridge(lis, database_url, intake, channel=channel))
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, task.cancel)
    with contextlib.suppress(asyncio.CancelledError):
        loop.run_until_complete(task)
    loop.close()


@app.callback(invoke_without_command=True)
def serve(
    ctx: typer.Context,
    host: str = typer.Option(None, help="Listen address (default YIGONG_LIS_HOST)"),
    port: int = typer.Option(None, help="MLLP port (default YIGONG_LIS_PORT, 2575)"),
    workers: int = typer.Option(None, help="Server processes sharing the port"),
    migrate: bool = typer.Option(True, help="Apply database migrations first"),
    log_level: str = typer.Option("info", help="Logging level"),
) -> None:
    """Run the MLLP server in the foreground until Ctrl-C."""
    if ctx.invoked_subcommand is not None:
        return
    _configure_logging(log_level)
    hub_settings = Settings()
    overrides = {k: v for k, v in {"host": host, "port": port, "workers": workers}.items()
                 if v is not None}
    lis = LisSettings(**overrides)
    url = hub_settings.effective_database_url
    if migrate:
        from hub.db.migrate import upgrade

        upgrade(url)
    intake = IntakeRules.from_settings(hub_settings)
    if lis.workers <= 1:
        _serve_process(lis, url, intake)
        return
    # Several processes: parsing and recording are CPU-bound and the GIL would otherwise cap
    # the bridge at one core. This process accepts and hands each connection to the worker
    # with the fewest (lis_bridge.dispatch); each worker group-commits on its own.
    from lis_bridge.dispatch import ConnectionDispatcher

    listener = socket.create_server((lis.host, lis.port), backlog=256)
    ctx_mp = multiprocessing.get_context("spawn")
    pairs = [socket.socketpair() for _ in range(lis.workers)]
    procs = [ctx_mp.Process(target=_serve_process, args=(lis, url, intake, theirs),
                            daemon=False) for _ours, theirs in pairs]
    for p in procs:
        p.start()
    for _ours, theirs in pairs:
        theirs.close()
    logger.info("MLLP listening on %s:%s, %d worker processes", lis.host, lis.port,
                lis.workers)

    def _stop(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    # SIGTERM (docker stop, a supervisor) must stop the workers too, not orphan them.
    signal.signal(signal.SIGTERM, _stop)
    try:
        ConnectionDispatcher(listener, [ours for ours, _theirs in pairs]).serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        for p in procs:
            if p.is_alive():
                p.terminate()
        for p in procs:
            p.join(30)
        listener.close()


@app.command()
def replay(
    message_id: list[int] = typer.Option(None, "--id", help="Raw message id(s) to replay"),
    ack_code: str = typer.Option(None, "--ack", help="Replay every message with this ACK code"),
    since: datetime = typer.Option(None, help="Only messages received at or after (UTC)"),
    dry_run: bool = typer.Option(False, help="Show what would be replayed"),
) -> None:
    """Re-process stored raw messages (e.g. after fixing a mapping or adding an institution).

    The stored row is updated with the new outcome; nothing is sent to the original sender
    (it already has an ACK). Records are written idempotently, as for a corrected re-send.
    """
    _configure_logging("info")
    from lis_bridge.replay import replay_messages

    hub_settings = Settings()
    lis = LisSettings()
    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    results = replay_messages(hub_settings.effective_database_url, lis,
                              IntakeRules.from_settings(hub_settings), ids=message_id or None,
                              ack_code=ack_code, since=since, dry_run=dry_run)
    for rid, before, after in results:
        typer.echo(f"{rid}\t{before}\t->\t{after}")
    typer.echo(f"{len(results)} message(s) {'would be ' if dry_run else ''}replayed")
