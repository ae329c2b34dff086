"""Render + sign one report: the work done when a verifier presses 审核签名.

Renders a head-CT report (Chinese text, structured fields, a 512×512 key image, QR code) to PDF
with reportlab, PAdES-signs it with pyHanko (ECDSA P-256 certificate from a community CA, chain
embedded), and signs the canonical JSON (detached). Prints median and p95 over N runs after one
warm-up (font registration and imports happen once per process in the hub too).

    .venv/bin/python bench/sign.py --runs 50
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from io import BytesIO
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
from cryptography import x509  # noqa: E402
from cryptography.x509.oid import NameOID  # noqa: E402
from PIL import Image  # noqa: E402

from hub.reports.pdf import KeyImage, ReportDocument, SignerLine, render_pdf  # noqa: E402
from hub.reports.signing import (  # noqa: E402
    DEFAULT_ALGORITHM,
    SigningKey,
    canonical_json,
    get_algorithm,
    sign_detached,
    sign_pdf,
)
from hub.reports.verify import validate_pdf  # noqa: E402


def make_keys(algorithm: str) -> tuple[SigningKey, x509.Certificate]:
    alg = get_algorithm(algorithm)
    now = datetime.now(UTC)
    ca_key, user_key = alg.generate_key(), alg.generate_key()
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Bench Community CA")])
    ca_cert = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
               .public_key(ca_key.public_key()).serial_number(1)
               .not_valid_before(now - timedelta(days=1)).not_valid_after(now + timedelta(days=9))
               .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
               .sign(ca_key, alg.certificate_hash()))
    user = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "赵主任")])
    cert = (x509.CertificateBuilder().subject_name(user).issuer_name(ca_name)
            .public_key(user_key.public_key()).serial_number(2)
            .not_valid_before(now - timedelta(days=1)).not_valid_after(now + timedelta(days=9))
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=True,
                                         key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, key_cert_sign=False,
                                         crl_sign=False, encipher_only=False,
                                         decipher_only=False), critical=True)
            .sign(ca_key, alg.certificate_hash()))
    return SigningKey(user_key, cert, (ca_cert,), alg.name), ca_cert


def key_image() -> bytes:
    yy, xx = np.mgrid[0:512, 0:512]
    r = np.hypot(yy - 256, xx - 256)
    img = np.where(r < 200, 180, 20) + (np.sin(r / 9) * 30)
    buf = BytesIO()
    Image.fromarray(img.clip(0, 255).astype("uint8")).save(buf, "PNG")
    return buf.getvalue()


def document(image: bytes) -> ReportDocument:
    now = datetime.now(UTC)
    return ReportDocument(
        report_id=1024, version=1, title="医学影像诊断报告", reporting_institution="县人民医院",
        source_institution="城关镇卫生院", patient_name="王小东", patient_sex="男",
        patient_age="61岁", patient_local_id="BR01-000123", exam_name="头颅CT平扫",
        modality="CT", accession="DEMO0001", exam_at=now, findings_label="检查所见",
        findings="左侧基底节区见斑片状低密度影，边界欠清，CT值约18HU。脑室系统大小形态正常，"
                 "脑沟脑裂未见增宽，中线结构居中。颅骨骨质未见异常。" * 2,
        impression_label="诊断意见", impression="左侧基底节区腔隙性脑梗死，建议MRI检查。",
        verify_url="http://127.0.0.1:8000/verify/Zm9vYmFyYmF6cXV4",
        verify_code="Zm9vYmFyYmF6cXV4",
        fields=(("颅内出血", "无"), ("中线移位", "0 mm"), ("梗死灶", "有")),
        images=(KeyImage(image, "关键图像"),),
        signers=(SignerLine("书写医师", "李放射", now), SignerLine("审核医师", "赵主任", now)),
        recognition="医共体HR · CT-HEAD",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--algorithm", default=DEFAULT_ALGORITHM,
                        help="ecdsa-p256-sha256 (default) or rsa-pkcs1v15-sha256")
    args = parser.parse_args()
    signing_key, ca_cert = make_keys(args.algorithm)
    doc = document(key_image())
    canonical = canonical_json({"findings": doc.findings, "impression": doc.impression})
    signed = sign_pdf(render_pdf(doc), signing_key, reason="审核", location="县人民医院",
                      signer_name="赵主任")  # warm-up: font registration, imports
    assert validate_pdf(signed, [ca_cert]).ok
    render_ms, sign_ms, total_ms = [], [], []
    for _ in range(args.runs):
        t0 = time.perf_counter()
        pdf = render_pdf(doc)
        t1 = time.perf_counter()
        signed = sign_pdf(pdf, signing_key, reason="审核", location="县人民医院",
                          signer_name="赵主任")
        sign_detached(signing_key, canonical)
        t2 = time.perf_counter()
        render_ms.append((t1 - t0) * 1000)
        sign_ms.append((t2 - t1) * 1000)
        total_ms.append((t2 - t0) * 1000)
    t = time.perf_counter()
    ok = validate_pdf(signed, [ca_cert]).ok
    verify_ms = (time.perf_counter() - t) * 1000

    def p95(xs: list[float]) -> float:
        return sorted(xs)[max(int(len(xs) * 0.95) - 1, 0)]

    print(f"algorithm {args.algorithm}, {args.runs} runs, PDF {len(signed) / 1024:.0f} KiB")
    print(f"render  median {statistics.median(render_ms):7.1f} ms  p95 {p95(render_ms):7.1f} ms")
    print(f"sign    median {statistics.median(sign_ms):7.1f} ms  p95 {p95(sign_ms):7.1f} ms")
    print(f"total   median {statistics.median(total_ms):7.1f} ms  p95 {p95(total_ms):7.1f} ms"
          "  (goal < 300 ms)")
    print(f"verify (pyHanko, one PDF) {verify_ms:.1f} ms, valid={ok}")


if __name__ == "__main__":
    main()
