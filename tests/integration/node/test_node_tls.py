"""DICOM over TLS at the node's SCP, with a self-signed certificate made in the test."""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.integration.node.conftest import orthanc_count, scu_send, wait_until

pytestmark = pytest.mark.integration


def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "yigong-node.test")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(
            [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "node.crt", tmp_path / "node.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    return cert_path, key_path


def test_tls_association_stores_and_forwards(
    testdata, tmp_path, orthanc_client, node_settings, start_node
):
    cert, key = _self_signed(tmp_path)
    node_settings.tls_cert, node_settings.tls_key = cert, key
    node = start_node(node_settings)
    client_ctx = ssl.create_default_context(cafile=str(cert))
    client_ctx.check_hostname = False  # pynetdicom passes no server name here
    path = testdata / "dicom/single/CT_small.dcm"
    assert scu_send([path], node.port, tls=client_ctx) == {path: 0x0000}
    wait_until(lambda: orthanc_count(orthanc_client) == 1, what="the instance in Orthanc")


def test_plain_association_to_a_tls_node_fails(testdata, tmp_path, node_settings, start_node):
    from pynetdicom import AE
    from pynetdicom.sop_class import Verification

    cert, key = _self_signed(tmp_path)
    node_settings.tls_cert, node_settings.tls_key = cert, key
    node = start_node(node_settings)
    ae = AE(ae_title="CT1")
    ae.add_requested_context(Verification)
    ae.acse_timeout = 5
    ae.network_timeout = 5
    assoc = ae.associate("127.0.0.1", node.port, ae_title="YIGONG-NODE")
    assert not assoc.is_established


def test_forwarder_speaks_tls_to_a_tls_peer(
    testdata, tmp_path, orthanc_client, node_settings, start_node
):
    # The "hub" here is a second node with a TLS SCP, which forwards on to Orthanc: this
    # exercises the forwarder's TLS client (Orthanc itself is configured without TLS).
    cert, key = _self_signed(tmp_path)
    hub_side = node_settings.model_copy(update={
        "tls_cert": cert, "tls_key": key, "spool_dir": tmp_path / "hub-spool"})
    relay = start_node(hub_side)
    branch = node_settings.model_copy(update={
        "hub_port": relay.port, "hub_aet": "YIGONG-NODE", "hub_tls": True,
        "hub_tls_ca": cert, "spool_dir": tmp_path / "branch-spool"})
    node = start_node(branch)
    path = testdata / "dicom/single/CT_small.dcm"
    assert scu_send([path], node.port) == {path: 0x0000}
    wait_until(lambda: orthanc_count(orthanc_client) == 1, what="the instance in Orthanc")
    assert node.ledger.status().forwarded_total == 1
