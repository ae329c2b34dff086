"""Report commands: ``yigong ca init|issue|revoke|import-ca|import-p12|crl`` and
``yigong verify FILE.pdf``.

The lead's ``hub/cli.py`` registers them with::

    from hub.cli_reports import ca_app, verify
    app.add_typer(ca_app, name="ca")
    app.command("verify")(verify)

:data:`app` bundles the same for running this module on its own
(``python -m hub.cli_reports verify FILE.pdf``) and for tests.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from hub import audit
from hub.clock import utcnow

ca_app = typer.Typer(help="Community CA (医共体CA) for report signing certificates.",
                     no_args_is_help=True)
console = Console()


def _session():
    from hub.config import get_settings
    from hub.db.migrate import upgrade
    from hub.db.session import session_scope

    url = get_settings().effective_database_url
    upgrade(url)
    return session_scope(url)


def _passphrase() -> bytes:
    from hub.config import get_settings
    from hub.reports.ca import key_passphrase

    return key_passphrase(get_settings().resolved_secret_key())


@ca_app.command("init")
def ca_init(name: Annotated[str, typer.Option(help="CA common name")] =
            "Yigong Community CA 医共体CA") -> None:
    """Create the community CA (once; running it again shows the existing one)."""
    from hub.reports import ca

    with _session() as session:
        row = ca.init_ca(session, _passphrase(), utcnow(), name=name)
        audit.record(session, audit.SYSTEM, "ca.init", f"ca:{row.id}", {})
        console.print(f"community CA {row.id}: {row.name}")
        console.print(row.cert_pem)


@ca_app.command("issue")
def ca_issue(username: str,
             days: Annotated[int, typer.Option(help="Validity in days")] = 0) -> None:
    """Issue a signing certificate (and key, held encrypted by the hub) to USER."""
    from hub.config import get_settings
    from hub.reports import ca

    with _session() as session:
        row = ca.issue(session, username, _passphrase(), utcnow(),
                       days=days or get_settings().report_cert_days)
        audit.record(session, audit.SYSTEM, "ca.issue", f"certificate:{row.serial}",
                     {"user": username})
        console.print(f"issued {row.serial} to {username}: {row.subject}, valid until "
                      f"{row.not_after:%Y-%m-%d}")


@ca_app.command("revoke")
def ca_revoke(username: str,
              reason: Annotated[str, typer.Option(help="Why")] = "unspecified") -> None:
    """Revoke every certificate of USER; later signatures by USER are refused."""
    from hub.reports import ca

    with _session() as session:
        rows = ca.revoke(session, username, utcnow(), reason)
        for r in rows:
            audit.record(session, audit.SYSTEM, "ca.revoke", f"certificate:{r.serial}",
                         {"user": username, "reason": reason})
            console.print(f"revoked {r.serial}")


@ca_app.command("import-ca")
def ca_import(pem: Path) -> None:
    """Trust a hospital CA's certificate (PEM) for verification and imported user certs."""
    from hub.reports import ca

    with _session() as session:
        row = ca.import_ca(session, pem.read_text(), utcnow())
        audit.record(session, audit.SYSTEM, "ca.import", f"ca:{row.id}", {})
        console.print(f"trusted CA {row.id}: {row.name}")


@ca_app.command("import-p12")
def ca_import_p12(username: str, p12: Path,
                  password: Annotated[str, typer.Option(prompt=True, hide_input=True)]) -> None:
    """Import USER's certificate and key from a PKCS#12 file issued by a trusted hospital CA."""
    from hub.reports import ca

    with _session() as session:
        row = ca.import_pkcs12(session, username, p12.read_bytes(), password.encode() or None,
                               _passphrase(), utcnow())
        audit.record(session, audit.SYSTEM, "ca.import_p12", f"certificate:{row.serial}",
                     {"user": username})
        console.print(f"imported {row.serial} for {username}")


@ca_app.command("crl")
def ca_crl(out: Annotated[Path | None, typer.Option(help="Write here instead of stdout")] = None,
           ) -> None:
    """Print (or write) a fresh CRL of the community CA."""
    from hub.reports import ca

    with _session() as session:
        crl = ca.build_crl(session, _passphrase(), utcnow())
    if crl is None:
        raise typer.BadParameter("no community CA: run `yigong ca init`")
    if out:
        out.write_bytes(crl)
    else:
        console.print(crl.decode())


def verify(file: Annotated[Path, typer.Argument(help="A report PDF")],
           ca_file: Annotated[Path | None, typer.Option(
               "--ca", help="Trust this CA (PEM) instead of the hub's database (offline)")] = None,
           ) -> None:
    """Verify a report PDF: who signed what and when; exit 1 if any byte was changed."""
    from cryptography import x509

    from hub.reports.verify import validate_pdf

    data = file.read_bytes()
    issued = None
    if ca_file is not None:
        roots = x509.load_pem_x509_certificates(ca_file.read_bytes())
        revoked: dict = {}
    else:
        from sqlalchemy import select

        from hub.db.models import User
        from hub.db.report_models import Report, ReportVersion
        from hub.reports import ca

        with _session() as session:
            roots = ca.trust_roots(session)
            revoked = ca.revoked_serials(session)
            row = session.execute(
                select(ReportVersion, Report, User)
                .join(Report, Report.id == ReportVersion.report_id)
                .join(User, User.id == ReportVersion.author_id)
                .where(ReportVersion.pdf_sha256 == hashlib.sha256(data).hexdigest())).first()
            if row is not None:
                v, r, u = row
                issued = (f"report {r.id} version {v.number} ({v.kind}), signed by "
                          f"{u.display_name or u.username} at {v.signed_at:%Y-%m-%d %H:%M} UTC, "
                          f"content sha256 {v.sha256}")
    check = validate_pdf(data, roots, revoked)
    for s in check.signatures:
        mark = "[green]OK[/]" if s.ok else "[red]FAILED[/]"
        when = f"{s.signing_time:%Y-%m-%d %H:%M:%S %Z}" if s.signing_time else "?"
        console.print(f"{mark} signature {s.field_name}: {s.signer} (serial {s.serial}) at "
                      f"{when}: {s.summary}{' REVOKED' if s.revoked else ''}")
    if check.error:
        console.print(f"[red]FAILED[/] {check.error}")
    ok = check.ok
    if ca_file is None:
        if issued:
            console.print(f"[green]OK[/] issued by this hub: {issued}")
        else:
            console.print("[red]FAILED[/] this exact file was not issued by this hub "
                          f"(sha256 {check.sha256})")
            ok = False
    if not ok:
        console.print("[red bold]VERIFICATION FAILED[/]")
        raise typer.Exit(1)
    console.print("[green bold]VERIFIED[/]")


app = typer.Typer(help="Report signing and verification.", no_args_is_help=True)
app.add_typer(ca_app, name="ca")
app.command("verify")(verify)

if __name__ == "__main__":
    app()
