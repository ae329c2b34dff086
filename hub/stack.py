"""``yigong up``: run the single-machine stack in the foreground and stop it cleanly."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from urllib.parse import urlparse

import requests

from hub.config import Settings
from hub.orthanc.server import OrthancConfig, OrthancProcess

logger = logging.getLogger(__name__)


@dataclass
class Child:
    name: str
    argv: list[str]
    proc: subprocess.Popen | None = None


@dataclass
class Stack:
    settings: Settings
    with_node: bool = True
    with_lis: bool = True
    node_institution: str = "BR01"
    node_user: str = ""
    node_password: str = ""
    children: list[Child] = field(default_factory=list)
    orthanc: OrthancProcess | None = None
    redis: subprocess.Popen | None = None

    def env(self) -> dict[str, str]:
        s = self.settings
        env = dict(os.environ)
        env.update({
            "YIGONG_DATA_DIR": str(s.data_dir.resolve()),
            "YIGONG_DATABASE_URL": s.effective_database_url,
            "YIGONG_BROKER_URL": s.broker_url,
            "YIGONG_ORTHANC_URL": f"http://127.0.0.1:{urlparse(s.orthanc_url).port or 8042}",
            "YIGONG_API_PORT": str(s.api_port),
            "TCP_NODELAY": "1",
        })
        # The branch node of a single-machine stack forwards to this Orthanc and tells this API.
        env.setdefault("YIGONG_NODE_HUB_HOST", "127.0.0.1")
        env.setdefault("YIGONG_NODE_HUB_PORT", str(s.orthanc_dicom_port))
        env.setdefault("YIGONG_NODE_HUB_AET", s.orthanc_aet)
        env.setdefault("YIGONG_NODE_ORTHANC_URL", env["YIGONG_ORTHANC_URL"])
        env.setdefault("YIGONG_NODE_HUB_URL", f"http://{s.api_host}:{s.api_port}")
        env.setdefault("YIGONG_NODE_SPOOL_DIR", str((s.data_dir / "node-spool").resolve()))
        env.setdefault("YIGONG_NODE_INSTITUTION_CODE", self.node_institution)
        if self.node_user:
            env.setdefault("YIGONG_NODE_HUB_USER", self.node_user)
            env.setdefault("YIGONG_NODE_HUB_PASSWORD", self.node_password)
        return env

    def ensure_redis(self) -> None:
        """Use the broker if it answers; otherwise start a private redis-server on its port."""
        import redis

        try:
            redis.Redis.from_url(self.settings.broker_url, socket_connect_timeout=1).ping()
            return
        except redis.RedisError:
            pass
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError(f"no broker at {self.settings.broker_url} and no redis-server")
        port = urlparse(self.settings.broker_url).port or 6379
        self.redis = subprocess.Popen(
            [binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "",
             "--appendonly", "no"], stdout=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                redis.Redis.from_url(self.settings.broker_url, socket_connect_timeout=1).ping()
                return
            except redis.RedisError:
                time.sleep(0.1)
        raise RuntimeError("redis-server did not start")

    def start(self) -> None:
        s = self.settings
        s.data_dir.mkdir(parents=True, exist_ok=True)
        self.ensure_redis()
        url = urlparse(s.orthanc_url)
        self.orthanc = OrthancProcess(OrthancConfig(
            root=s.data_dir / "orthanc", http_port=url.port or 8042,
            dicom_port=s.orthanc_dicom_port, aet=s.orthanc_aet, user=s.orthanc_user,
            password=s.orthanc_password, stable_age=s.orthanc_stable_age,
            plugins_dir=s.orthanc_plugins_dir, binary=s.orthanc_binary))
        self.orthanc.start()
        py = sys.executable
        self.children = [
            Child("api", [py, "-m", "uvicorn", "hub.api.main:create_app", "--factory",
                          "--host", s.api_host, "--port", str(s.api_port),
                          "--log-level", "warning"]),
            Child("worker", [py, "-m", "celery", "-A", "hub.workers.celery_app", "worker",
                             "--concurrency", "2", "--loglevel", "INFO", "-n",
                             f"yigong-{s.api_port}@%h"]),
            Child("beat", [py, "-m", "celery", "-A", "hub.workers.celery_app", "beat",
                           "--loglevel", "WARNING", "-s",
                           str(s.data_dir / "celerybeat-schedule")]),
        ]
        if self.with_node and _importable("dicom_node.cli"):
            self.children.append(Child("node", [py, "-m", "hub.cli", "node"]))
        if self.with_lis and _importable("lis_bridge.cli"):
            self.children.append(Child("lis", [py, "-m", "hub.cli", "lis"]))
        env = self.env()
        logs = s.data_dir / "logs"
        logs.mkdir(exist_ok=True)
        for child in self.children:
            out = open(logs / f"{child.name}.log", "ab")  # noqa: SIM115 - child owns it
            child.proc = subprocess.Popen(child.argv, env=env, stdout=out,
                                          stderr=subprocess.STDOUT, start_new_session=True)
            logger.info("started %s (pid %d), log %s", child.name, child.proc.pid,
                        logs / f"{child.name}.log")
        self.wait_api()

    def wait_api(self, timeout: float = 60.0) -> None:
        url = f"http://{self.settings.api_host}:{self.settings.api_port}/api/health"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_children()
            try:
                if requests.get(url, timeout=1).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.3)
        raise TimeoutError(f"API did not answer on {url}")

    def check_children(self) -> None:
        for child in self.children:
            if child.proc is not None and child.proc.poll() is not None:
                raise RuntimeError(
                    f"{child.name} exited with {child.proc.returncode}; see "
                    f"{self.settings.data_dir / 'logs' / (child.name + '.log')}")

    def stop(self) -> None:
        for child in reversed(self.children):
            if child.proc is not None and child.proc.poll() is None:
                child.proc.send_signal(signal.SIGTERM)
        for child in reversed(self.children):
            if child.proc is None:
                continue
            try:
                child.proc.wait(20)
            except subprocess.TimeoutExpired:
                child.proc.kill()
                child.proc.wait()
            logger.info("stopped %s", child.name)
        if self.orthanc:
            self.orthanc.stop()
            logger.info("stopped orthanc")
        if self.redis:
            self.redis.terminate()
            self.redis.wait(10)


def _importable(module: str) -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def run_foreground(stack: Stack, on_ready=None) -> None:  # noqa: ANN001
    """Start everything, call ``on_ready``, then wait for Ctrl-C / SIGTERM and stop in order."""
    stopping = False

    def _stop(_sig, _frm):  # noqa: ANN001
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    try:
        stack.start()
        if on_ready:
            on_ready()
        while not stopping:
            stack.check_children()
            time.sleep(0.5)
    finally:
        stack.stop()
