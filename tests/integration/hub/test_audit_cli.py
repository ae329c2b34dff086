"""`yigong audit verify` detects a row edited or deleted directly in the database."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from sqlalchemy import text

from hub import audit
from hub.db.session import get_engine, get_sessionmaker, session_scope

pytestmark = pytest.mark.integration


def run_verify(db_url, tmp_path):
    env = dict(os.environ, YIGONG_DATABASE_URL=db_url, YIGONG_DATA_DIR=str(tmp_path))
    return subprocess.run([sys.executable, "-m", "hub.cli", "audit", "verify"], env=env,
                          capture_output=True, text=True, timeout=60)


def write_rows(db_url, n=5):
    """Write and seal ``n`` rows, as the API and the beat sealer would."""
    with session_scope(db_url) as s:
        for i in range(n):
            audit.record(s, audit.Actor("dr.li", "radiologist", "LEAD", "127.0.0.1"),
                         "worklist.view", f"worklist_item:{i}", {"note": "读片"})
    assert audit.seal_all(get_sessionmaker(db_url)) == n


def test_intact_chain_verifies(db_url, tmp_path):
    write_rows(db_url)
    out = run_verify(db_url, tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "intact: 5 rows" in out.stdout


def test_edited_row_is_detected(db_url, tmp_path):
    write_rows(db_url)
    with get_engine(db_url).begin() as conn:
        conn.execute(text("UPDATE audit_log SET username = 'someone' WHERE id = 3"))
    out = run_verify(db_url, tmp_path)
    assert out.returncode == 1
    assert "audit row 3" in out.stdout and "edited" in out.stdout


def test_deleted_row_is_detected(db_url, tmp_path):
    write_rows(db_url)
    with get_engine(db_url).begin() as conn:
        conn.execute(text("DELETE FROM audit_log WHERE id = 2"))
    out = run_verify(db_url, tmp_path)
    assert out.returncode == 1
    assert "audit row 3" in out.stdout and "link" in out.stdout


def test_concurrent_writers_keep_one_unbroken_chain(db_url):
    import threading

    from hub.audit import verify_chain

    errors = []

    def writer(n):
        try:
            for i in range(10):
                with session_scope(db_url) as s:
                    audit.record(s, audit.Actor(f"u{n}", "radiologist", "LEAD"), "worklist.view",
                                 f"worklist_item:{n}-{i}")
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert audit.seal_all(get_sessionmaker(db_url)) == 80
    with session_scope(db_url) as s:
        assert list(verify_chain(s)) == []
        assert s.scalar(text("SELECT count(*) FROM audit_log")) == 80


def test_rows_written_after_sealing_are_sealed_next_pass(db_url, tmp_path):
    write_rows(db_url, 3)
    write_rows(db_url, 2)
    out = run_verify(db_url, tmp_path)
    assert out.returncode == 0 and "intact: 5 rows" in out.stdout


def test_rolled_back_transaction_leaves_no_audit_row(db_url):
    with pytest.raises(RuntimeError), session_scope(db_url) as s:
        audit.record(s, audit.SYSTEM, "worklist.view", "worklist_item:1")
        raise RuntimeError("the change failed")
    with session_scope(db_url) as s:
        assert audit.count_rows(s) == 0
