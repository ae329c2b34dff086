"""`yigong ca init|issue|revoke|crl` against a real database."""

from __future__ import annotations

import pytest
from cryptography import x509
from sqlalchemy import select
from typer.testing import CliRunner

from hub.config import get_settings
from hub.db.report_models import SigningCertificate
from hub.db.session import session_scope
from hub.reports import ca
from tests.conftest import seed_demo

pytestmark = pytest.mark.integration


@pytest.fixture
def cli_env(sqlite_url, tmp_path, monkeypatch):
    seed_demo(sqlite_url)
    monkeypatch.setenv("YIGONG_DATABASE_URL", sqlite_url)
    monkeypatch.setenv("YIGONG_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("YIGONG_SECRET_KEY", "cli-test-secret-0123456789abcdef0123456789")
    get_settings.cache_clear()
    yield sqlite_url
    get_settings.cache_clear()


def test_init_issue_revoke_and_crl(cli_env, tmp_path):
    from hub.cli_reports import app

    runner = CliRunner()
    first = runner.invoke(app, ["ca", "init"])
    assert first.exit_code == 0, first.output
    assert runner.invoke(app, ["ca", "init"]).exit_code == 0  # idempotent
    issued = runner.invoke(app, ["ca", "issue", "dr.zhao"])
    assert issued.exit_code == 0, issued.output
    assert runner.invoke(app, ["ca", "issue", "nobody"]).exit_code != 0
    with session_scope(cli_env) as s:
        row = s.scalar(select(SigningCertificate))
        assert "赵主任" in row.subject and row.revoked_at is None
        serial = row.serial
        assert len(ca.trust_roots(s)) == 1
    revoked = runner.invoke(app, ["ca", "revoke", "dr.zhao", "--reason", "left the hospital"])
    assert revoked.exit_code == 0 and serial in revoked.output
    out = tmp_path / "crl.pem"
    assert runner.invoke(app, ["ca", "crl", "--out", str(out)]).exit_code == 0
    crl = x509.load_pem_x509_crl(out.read_bytes())
    assert crl.get_revoked_certificate_by_serial_number(int(serial, 16)) is not None
    with session_scope(cli_env) as s:
        assert crl.is_signature_valid(ca.trust_roots(s)[0].public_key())
