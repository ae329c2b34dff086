"""Browser tests: Playwright for Python driving Debian's chromium against the viewer the hub serves.

One hub (SQLite, demo users) and one real Orthanc per module; one browser per session; a fresh
browser context (no cookies, no storage) per test. Screenshots of each step go to
``test-artifacts/screenshots/`` (git-ignored) for a person to look at.

Parts that land separately (ECG samples, lab results, report signing) are checked against the
OpenAPI document at test time: a test of a part whose route is absent is skipped, saying which
route; everything present runs.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO, HubServer, make_database, make_settings, seed_demo
from tests.e2e.support import E2EHub, Shots

CHROMIUM = os.environ.get("YIGONG_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
DIST_INDEX = REPO / "viewer" / "static" / "dist" / "index.html"



@pytest.fixture(scope="package")
def browser():
    """Debian's chromium, headless; never a downloaded browser.

    Package scope, not session: Playwright's sync API keeps an event loop running in the main
    thread while it is open, which would break every later test that calls ``asyncio.run``.
    """
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} missing: apt-get install -y chromium (install.sh --test)")
    if not DIST_INDEX.exists():
        pytest.fail("viewer not built: `cd viewer && npm ci && npm run build` (scripts/install.sh)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


def setup_signing(db_url: str, settings) -> None:
    """The community CA and a signing certificate per reader, when the reports part is present."""
    try:
        from hub.reports import ca
    except ModuleNotFoundError:
        return
    from hub.clock import utcnow
    from hub.db.session import session_scope

    passphrase = ca.key_passphrase(settings.resolved_secret_key())
    with session_scope(db_url) as session:
        ca.init_ca(session, passphrase, utcnow())
        for username in ("dr.li", "dr.zhao", "dr.chen", "dr.sun"):
            ca.issue(session, username, passphrase, utcnow())


def _no_his_delivery(app) -> None:
    """No branch HIS listens in these tests: deliver nowhere rather than to the env's defaults."""
    try:
        from lis_bridge.config import LisSettings
    except ModuleNotFoundError:
        return
    app.state.lis_settings = LisSettings(his_endpoints={})


@pytest.fixture(scope="module")
def e2e_hub(tmp_path_factory: pytest.TempPathFactory, orthanc) -> Iterator[E2EHub]:
    from hub.orthanc.client import OrthancClient

    tmp = tmp_path_factory.mktemp("e2e-hub")
    gen = make_database("sqlite", tmp)
    url = next(gen)
    seed_demo(url)
    client = OrthancClient(orthanc.config.url, orthanc.config.user, orthanc.config.password)
    settings = make_settings(tmp, url, orthanc)
    setup_signing(url, settings)
    server = HubServer(settings, client)
    _no_his_delivery(server.app)
    server.start()
    try:
        yield E2EHub(server, orthanc)
    finally:
        server.stop()
        for pid in client.get_json("/patients"):
            client._request("DELETE", f"/patients/{pid}")


@pytest.fixture
def page(browser, e2e_hub: E2EHub, request: pytest.FixtureRequest):
    context = browser.new_context(viewport={"width": 1600, "height": 1000}, locale="zh-CN",
                                  timezone_id="Asia/Shanghai", base_url=e2e_hub.url)
    pg = context.new_page()
    pg.set_default_timeout(20_000)
    errors: list[str] = []
    console: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    pg.on("console", lambda msg: console.append(f"{msg.type}: {msg.text}"))
    pg.yigong_errors = errors  # type: ignore[attr-defined]
    yield pg
    # Shown by pytest only when the test failed: what the page said while it ran.
    print("\n--- browser console ---\n" + "\n".join(console[-60:] + errors))
    context.close()


@pytest.fixture
def shots(page, request: pytest.FixtureRequest) -> Shots:
    return Shots(page, request.node.name)


