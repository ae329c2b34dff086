"""`yigong user add / passwd / list` against a real database."""

import os
import subprocess
import sys

import pytest

from hub.db.session import session_scope
from hub.services.users import authenticate
from tests.conftest import seed_demo

pytestmark = pytest.mark.integration


def yigong(args, db_url, tmp_path, stdin=None):
    env = dict(os.environ, YIGONG_DATABASE_URL=db_url, YIGONG_DATA_DIR=str(tmp_path))
    return subprocess.run([sys.executable, "-m", "hub.cli", *args], env=env, input=stdin,
                          capture_output=True, text=True, timeout=120)


def test_user_add_then_passwd_then_login(sqlite_url, tmp_path):
    seed_demo(sqlite_url)
    out = yigong(["user", "add", "dr.wang", "--password", "first-pass-1", "--role",
                  "radiologist", "--institution", "LEAD", "--display-name", "王医生"],
                 sqlite_url, tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    out = yigong(["user", "passwd", "dr.wang"], sqlite_url, tmp_path,
                 stdin="second-pass-2\nsecond-pass-2\n")
    assert out.returncode == 0, out.stdout + out.stderr
    with session_scope(sqlite_url) as s:
        assert authenticate(s, "dr.wang", "second-pass-2") is not None
        assert authenticate(s, "dr.wang", "first-pass-1") is None
    listing = yigong(["user", "list"], sqlite_url, tmp_path).stdout
    assert "dr.wang" in listing and "王医生" in listing


@pytest.mark.parametrize(("args", "message"), [
    (["user", "add", "x", "--password", "short", "--role", "radiologist"], "at least 8"),
    (["user", "add", "x", "--password", "long-enough", "--role", "radiologist",
      "--institution", "NOPE"], "does not exist"),
    (["user", "add", "dr.li", "--password", "long-enough", "--role", "radiologist"],
     "already exists"),
])
def test_bad_user_input_is_a_clear_error(sqlite_url, tmp_path, args, message):
    seed_demo(sqlite_url)
    out = yigong(args, sqlite_url, tmp_path)
    assert out.returncode == 1 and message in out.stdout


def test_unknown_role_is_refused_by_the_cli(sqlite_url, tmp_path):
    out = yigong(["user", "add", "x", "--password", "long-enough", "--role", "wizard"],
                 sqlite_url, tmp_path)
    assert out.returncode == 2 and "wizard" in out.stdout + out.stderr
