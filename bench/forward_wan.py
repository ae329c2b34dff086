"""Slow-link benchmark: plain C-STORE over 20 Mbit/s against the node's WAN transport.

The hub's Orthanc runs in its own network namespace behind a veth pair whose two ends are
shaped with a ``tbf`` qdisc (netem is not available on these kernels). Then, for 300 CT slices
of 512x512 (real header, phantom pixels):

  plain: dcmtk storescu -> Orthanc across the link (what a branch does without a node)
  node:  storescu -> node on the branch LAN -> HTTP + JPEG-LS lossless + gzip -> Orthanc

Prints both wall times, the speed-up, the compression ratios (the study and the real Siemens
MR series of the shared test data), and checks every archived instance's pixels against the
originals bit for bit. Needs root (ip netns, tc); exits non-zero with the reason otherwise.

    .venv/bin/python bench/forward_wan.py [--rate 20mbit] [--count 300]
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pydicom
import requests

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.forward_lan import HEADER, free_port, start_node, storescu  # noqa: E402
from dicom_node.config import Compression  # noqa: E402
from dicom_node.synthetic import write_ct_study  # noqa: E402
from dicom_node.transcode import compress_lossless  # noqa: E402
from hub.orthanc.server import OrthancConfig, OrthancProcess  # noqa: E402

MR_SERIES = HEADER.parent.parent / "series" / "study_stc_test_mr_siemens"
NS = f"ygwan{os.getpid() % 100000}"
HOST_IF, NS_IF = f"{NS}a", f"{NS}b"
SUBNET = 100 + os.getpid() % 100
HOST_IP, NS_IP = f"10.231.{SUBNET}.1", f"10.231.{SUBNET}.2"


class WanOrthancConfig(OrthancConfig):
    """The hub's Orthanc, reachable from the branch side of the veth (a remote address)."""

    def render(self) -> dict:
        cfg = super().render()
        cfg["RemoteAccessAllowed"] = True
        return cfg


def sh(*cmd: str) -> None:
    """Run a command; raise with its stderr when it fails."""
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: {r.stderr.strip() or r.returncode}")


def setup_link(rate: str) -> None:
    """Namespace + veth pair + tbf on both directions."""
    sh("ip", "netns", "add", NS)
    sh("ip", "link", "add", HOST_IF, "type", "veth", "peer", "name", NS_IF)
    sh("ip", "link", "set", NS_IF, "netns", NS)
    sh("ip", "addr", "add", f"{HOST_IP}/30", "dev", HOST_IF)
    sh("ip", "link", "set", HOST_IF, "up")
    sh("ip", "netns", "exec", NS, "ip", "addr", "add", f"{NS_IP}/30", "dev", NS_IF)
    sh("ip", "netns", "exec", NS, "ip", "link", "set", NS_IF, "up")
    sh("ip", "netns", "exec", NS, "ip", "link", "set", "lo", "up")
    tbf = ["tbf", "rate", rate, "burst", "32kbit", "latency", "400ms"]
    sh("tc", "qdisc", "add", "dev", HOST_IF, "root", *tbf)
    sh("ip", "netns", "exec", NS, "tc", "qdisc", "add", "dev", NS_IF, "root", *tbf)


def teardown_link() -> None:
    """Deleting the namespace removes its end of the veth pair, and with it the other end."""
    subprocess.run(["ip", "netns", "del", NS], capture_output=True)
    subprocess.run(["ip", "link", "del", HOST_IF], capture_output=True)


def wrapper(work: Path) -> Path:
    """An 'Orthanc binary' that starts the real one inside the namespace."""
    path = work / "orthanc-in-netns"
    path.write_text(f"#!/bin/sh\nexec ip netns exec {NS} /usr/sbin/Orthanc \"$@\"\n")
    path.chmod(0o755)
    return path


def count(s: requests.Session, url: str) -> int:
    """Instances the archive holds."""
    return int(s.get(url + "/statistics", timeout=30).json()["CountInstances"])


def clear(s: requests.Session, url: str) -> None:
    """Empty the archive."""
    for pid in s.get(url + "/patients", timeout=30).json():
        s.delete(f"{url}/patients/{pid}", timeout=60)


def ratio(paths: list[Path]) -> tuple[float, int, int]:
    """JPEG-LS lossless compression ratio over files (bytes in, bytes out)."""
    raw = out = 0
    for p in paths:
        data = p.read_bytes()
        enc = compress_lossless(data, Compression.JPEG_LS)
        raw += len(data)
        out += len(enc) if enc is not None else len(data)
    return raw / out, raw, out


def verify_pixels(storage: Path, originals: list[Path]) -> tuple[int, str]:
    """Compare every archived instance (read from Orthanc's storage area) with its original."""
    want = {}
    for p in originals:
        ds = pydicom.dcmread(p)
        want[str(ds.SOPInstanceUID)] = ds.pixel_array
    seen, syntax = 0, ""
    for f in storage.rglob("*"):
        if not f.is_file() or f.suffix == ".json":
            continue
        try:
            ds = pydicom.dcmread(io.BytesIO(f.read_bytes()))
        except Exception:  # noqa: BLE001 - Orthanc keeps other files there too
            continue
        uid = str(ds.SOPInstanceUID)
        if uid in want:
            if not np.array_equal(ds.pixel_array, want[uid]):
                raise AssertionError(f"pixels differ for {uid}")
            seen += 1
            syntax = ds.file_meta.TransferSyntaxUID.name
    return seen, syntax


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rate", default="20mbit")
    ap.add_argument("--count", type=int, default=300)
    ap.add_argument("--workers", type=int, default=4)
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("needs root for ip netns / tc", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="yigong-bench-wan-"))
    try:
        try:
            setup_link(args.rate)
        except (RuntimeError, FileNotFoundError) as exc:
            print(f"cannot build the shaped link: {exc}", file=sys.stderr)
            return 3
        files_dir = work / "study"
        files = write_ct_study(HEADER, files_dir, args.count)
        size = sum(p.stat().st_size for p in files)
        study_ratio, _, study_out = ratio(files)
        mr_files = sorted(MR_SERIES.rglob("*.dcm"))
        mr_ratio, mr_raw, mr_out = ratio(mr_files)
        print(f"study: {args.count} CT 512x512, {size / 1e6:.1f} MB; link {args.rate} (tbf)")
        print(f"JPEG-LS lossless ratio: CT study {study_ratio:.2f}x "
              f"({size / 1e6:.1f} -> {study_out / 1e6:.1f} MB); "
              f"real MR series {mr_ratio:.2f}x ({mr_raw / 1e3:.0f} -> {mr_out / 1e3:.0f} kB)")
        cfg = WanOrthancConfig(root=work / "orthanc", http_port=free_port(),
                               dicom_port=free_port(), host=NS_IP, binary=str(wrapper(work)))
        with OrthancProcess(cfg):
            s = requests.Session()
            s.auth = (cfg.user, cfg.password)
            plain = storescu(files_dir, NS_IP, cfg.dicom_port, cfg.aet)
            assert count(s, cfg.url) == args.count
            print(f"plain C-STORE over the link      : {plain:.1f} s")
            clear(s, cfg.url)
            node_port = free_port()
            node = start_node(work / "spool", node_port, cfg, args.workers, extra={
                "YIGONG_NODE_TRANSPORT": "http", "YIGONG_NODE_COMPRESSION": "jpeg-ls"})
            try:
                t0 = time.perf_counter()
                lan = storescu(files_dir, "127.0.0.1", node_port, "YIGONG-NODE")
                while count(s, cfg.url) < args.count:
                    if time.perf_counter() - t0 > 600:
                        raise TimeoutError("node did not deliver within 600 s")
                    time.sleep(0.5)
                wan = time.perf_counter() - t0
            finally:
                node.terminate()
                node.wait(30)
            print(f"node, HTTP + JPEG-LS + gzip      : {wan:.1f} s "
                  f"(modality released after {lan:.1f} s)")
            print(f"speed-up                         : {plain / wan:.2f}x (goal >= 3x)")
            seen, syntax = verify_pixels(cfg.root / "storage", files)
            print(f"pixels bit-identical             : {seen}/{args.count} instances ({syntax})")
        return 0 if seen == args.count else 1
    finally:
        teardown_link()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
