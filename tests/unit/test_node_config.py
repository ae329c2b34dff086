"""Node settings from the environment."""

from __future__ import annotations

from dicom_node.config import Compression, NodeSettings, Transport


def test_defaults_match_the_contract(monkeypatch):
    for key in list(__import__("os").environ):
        if key.startswith("YIGONG_NODE_"):
            monkeypatch.delenv(key)
    s = NodeSettings()
    assert (s.aet, s.port, s.transport) == ("YIGONG-NODE", 11112, Transport.DICOM)
    assert s.allowed_aets == [] and s.hub_password == ""
    assert s.scp_ssl_context() is None and s.hub_ssl_context() is None
    assert s.effective_workers == 2
    assert NodeSettings(transport=Transport.HTTP).effective_workers == 4


def test_environment_overrides(monkeypatch):
    monkeypatch.setenv("YIGONG_NODE_ALLOWED_AETS", "CT1, DR1")
    monkeypatch.setenv("YIGONG_NODE_TRANSPORT", "http")
    monkeypatch.setenv("YIGONG_NODE_COMPRESSION", "jpeg-ls")
    monkeypatch.setenv("YIGONG_NODE_WORKERS", "3")
    s = NodeSettings()
    assert s.allowed_aets == ["CT1", "DR1"]
    assert s.transport == Transport.HTTP and s.compression == Compression.JPEG_LS
    assert s.workers == 3
