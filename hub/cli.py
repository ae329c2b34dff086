"""The ``yigong`` command."""

from __future__ import annotations

import logging
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from hub import audit
from hub.config import get_settings
from hub.domain.access import Role

app = typer.Typer(help="Yigong Hub: remote imaging, ECG and lab reading (县域医共体).",
                  no_args_is_help=True)
user_app = typer.Typer(help="Manage users.", no_args_is_help=True)
inst_app = typer.Typer(help="Manage institutions.", no_args_is_help=True)
audit_app = typer.Typer(help="The audit trail.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
config_app = typer.Typer(help="Settings (YIGONG_* environment variables).", no_args_is_help=True)
app.add_typer(user_app, name="user")
app.add_typer(inst_app, name="institution")
app.add_typer(audit_app, name="audit")
app.add_typer(db_app, name="db")
app.add_typer(config_app, name="config")
console = Console()


def _session():
    from hub.db.migrate import upgrade
    from hub.db.session import session_scope

    url = get_settings().effective_database_url
    upgrade(url)
    return session_scope(url)


@app.command()
def up(demo: Annotated[bool, typer.Option(help="Create demo institutions, users, data")] = False,
       node: Annotated[bool, typer.Option(help="Also run a branch DICOM node")] = True,
       lis: Annotated[bool, typer.Option(help="Also run the LIS bridge")] = True) -> None:
    """Run the whole stack on loopback in the foreground; Ctrl-C stops everything."""
    from hub.logging import configure
    from hub.stack import Stack, run_foreground

    configure()
    settings = get_settings()
    stack = Stack(settings, with_node=node, with_lis=lis)
    from hub.db.migrate import upgrade

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade(settings.effective_database_url)
    if demo:
        from hub.demo.run import seed_demo

        stack.node_user, stack.node_password = seed_demo(settings, console)

    def ready() -> None:
        if demo:
            from hub.demo.run import send_demo_data

            send_demo_data(settings, console)
        console.print(f"[bold green]Yigong Hub is up[/]: http://{settings.api_host}:"
                      f"{settings.api_port}/  (API docs at /docs). Ctrl-C stops everything.")

    run_foreground(stack, ready)


@app.command()
def api() -> None:
    """Run only the API (uvicorn)."""
    import uvicorn

    s = get_settings()
    uvicorn.run("hub.api.main:create_app", factory=True, host=s.api_host, port=s.api_port)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply every Alembic migration to the configured database."""
    from hub.db.migrate import upgrade

    upgrade(get_settings().effective_database_url)
    console.print("database is up to date")


@config_app.command("show")
def config_show() -> None:
    """Effective settings of the hub, node and bridge in this environment (secrets masked)."""
    from hub.settings_doc import effective

    table = Table("variable", "value")
    for env, value in effective():
        table.add_row(env, value)
    console.print(table)


@config_app.command("doc")
def config_doc() -> None:
    """Every setting with its default, as the Markdown tables in the README."""
    from hub.settings_doc import markdown

    print(markdown())


@user_app.command("add")
def user_add(name: str,
             password: Annotated[str, typer.Option(prompt=True, hide_input=True)],
             role: Annotated[Role, typer.Option()],
             institution: Annotated[str | None, typer.Option()] = None,
             display_name: Annotated[str, typer.Option()] = "",
             rank: Annotated[str | None, typer.Option()] = None) -> None:
    """Create a user (institution defaults to the lead hospital)."""
    from hub.domain.errors import DomainError
    from hub.services.users import create_user

    inst = institution or get_settings().lead_institution
    try:
        with _session() as session:
            create_user(session, audit.Actor("cli", "admin", inst), name, password, role, inst,
                        display_name, rank)
    except DomainError as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(1) from None
    console.print(f"user {name} ({role.value}, {inst}) created")


@user_app.command("passwd")
def user_passwd(name: str,
                password: Annotated[str, typer.Option(prompt=True, hide_input=True,
                                                      confirmation_prompt=True)]) -> None:
    """Set a user's password (e.g. a demo user whose printed password was lost)."""
    from hub.domain.errors import DomainError
    from hub.services.users import set_password

    try:
        with _session() as session:
            set_password(session, audit.Actor("cli", "admin", get_settings().lead_institution),
                         name, password)
    except DomainError as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(1) from None
    console.print(f"password of {name} changed")


@user_app.command("list")
def user_list() -> None:
    """List users."""
    from sqlalchemy import select

    from hub.db.models import User

    table = Table("username", "role", "institution", "name", "active")
    with _session() as session:
        for u in session.scalars(select(User).order_by(User.username)):
            table.add_row(u.username, u.role, u.institution_code, u.display_name,
                          str(u.is_active))
    console.print(table)


@inst_app.command("add")
def institution_add(code: str, name: str,
                    lead: Annotated[bool, typer.Option("--lead")] = False,
                    ae: Annotated[list[str] | None, typer.Option(help="AE title (repeat)")] = None,
                    hl7: Annotated[list[str] | None, typer.Option(help="HL7 facility")] = None,
                    ) -> None:
    """Create or update an institution."""
    from hub.services.users import upsert_institution

    with _session() as session:
        upsert_institution(session, audit.Actor("cli", "admin", code), code, name, lead,
                           ae or [], hl7 or [])
    console.print(f"institution {code} saved")


@audit_app.command("verify")
def audit_verify() -> None:
    """Seal pending rows, then check the audit trail's hash chain; exit 1 if anything changed."""
    from hub.audit import count_rows, seal_all, verify_chain
    from hub.db.migrate import upgrade
    from hub.db.session import get_sessionmaker

    url = get_settings().effective_database_url
    upgrade(url)
    maker = get_sessionmaker(url)
    seal_all(maker)
    with maker() as session:
        count = count_rows(session)
        problems = list(verify_chain(session))
    if problems:
        for p in problems:
            console.print(f"[red]audit row {p.entry_id}:[/] {p.reason}")
        console.print(f"[red bold]audit trail BROKEN[/]: {len(problems)} problem(s) "
                      f"in {count} rows")
        raise typer.Exit(1)
    console.print(f"audit trail intact: {count} rows verified")


def _register_parts() -> None:
    """Sub-commands of the parts (node, ECG, LIS) that are installed."""
    import importlib

    from hub.cli_reports import ca_app, verify

    app.add_typer(ca_app, name="ca")
    app.command("verify")(verify)
    for module, name in (("dicom_node.cli", "node"), ("ecg_ingest.cli", "ecg"),
                         ("lis_bridge.cli", "lis")):
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise
            continue
        app.add_typer(mod.app, name=name)
        if name == "node":
            # `yigong send PATH…` is the technician's DICOM sender; ECGs use `yigong ecg send`.
            app.command("send", help=mod.send.__doc__)(mod.send)


_register_parts()
logging.getLogger("alembic").setLevel(logging.WARNING)

if __name__ == "__main__":
    app()
