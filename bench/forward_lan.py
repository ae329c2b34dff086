"""LAN forwarding benchmark: modality -> node -> Orthanc against modality -> Orthanc directly.

300 CT slices of 512x512 (a real CT header with phantom pixels, see dicom_node/synthetic.py)
are sent with dcmtk ``storescu`` over one association, both ends with TCP_NODELAY:

  direct: storescu -> Orthanc                      (wall time until the last C-STORE-RSP)
  node:   storescu -> node (subprocess) -> Orthanc (wall time until Orthanc holds all 300)

Prints both wall times and their ratio (goal: node within 1.25x of direct).

    .venv/bin/python bench/forward_lan.py [--count 300] [--workers 4] [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from dicom_node.synthetic import write_ct_study  # noqa: E402
from hub.orthanc.server import OrthancConfig, OrthancProcess  # noqa: E402

HEADER = Path(
    os.environ.get("YIGONG_TESTDATA", REPO.parent / "shared" / "testdata")
) / "dicom" / "single" / "CT_small.dcm"


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def storescu(files_dir: Path, host: str, port: int, aec: str, aet: str = "CT1") -> float:
    """Send every file in ``files_dir`` over one association; returns seconds."""
    env = dict(os.environ, TCP_NODELAY="1")
    cmd = ["storescu", "-aet", aet, "-aec", aec, "+sd", host, str(port), str(files_dir)]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def orthanc_count(session: requests.Session, url: str) -> int:
    """Instances Orthanc holds."""
    return int(session.get(url + "/statistics", timeout=5).json()["CountInstances"])


def clear(session: requests.Session, url: str) -> None:
    """Delete every patient in Orthanc."""
    for pid in session.get(url + "/patients", timeout=10).json():
        session.delete(f"{url}/patients/{pid}", timeout=30)


def wait_count(session: requests.Session, url: str, n: int, deadline: float) -> None:
    """Poll until Orthanc holds ``n`` instances."""
    while orthanc_count(session, url) < n:
        if time.monotonic() > deadline:
            raise TimeoutError(f"Orthanc holds {orthanc_count(session, url)} of {n}")
        time.sleep(0.01)


def start_node(spool: Path, port: int, orthanc: OrthancConfig, workers: int,
               extra: dict[str, str] | None = None) -> subprocess.Popen:
    """Run the node as ``python -m dicom_node`` and wait until it answers C-ECHO."""
    env = dict(
        os.environ,
        YIGONG_NODE_PORT=str(port), YIGONG_NODE_SPOOL_DIR=str(spool),
        YIGONG_NODE_HUB_PORT=str(orthanc.dicom_port), YIGONG_NODE_HUB_AET=orthanc.aet,
        YIGONG_NODE_WORKERS=str(workers), YIGONG_NODE_LOG_LEVEL="WARNING",
        YIGONG_NODE_MIN_FREE_BYTES="0",
        YIGONG_NODE_ORTHANC_URL=orthanc.url, YIGONG_NODE_ORTHANC_USER=orthanc.user,
        YIGONG_NODE_ORTHANC_PASSWORD=orthanc.password,
    )
    env.update(extra or {})
    proc = subprocess.Popen([sys.executable, "-m", "dicom_node"], cwd=REPO, env=env)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        ok = subprocess.run(["echoscu", "-aec", "YIGONG-NODE", "127.0.0.1", str(port)],
                            capture_output=True).returncode == 0
        if ok:
            return proc
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError("node did not start")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--count", type=int, default=300)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--runs", type=int, default=3, help="repetitions; medians are reported")
    args = ap.parse_args()
    if not shutil.which("storescu"):
        print("dcmtk storescu not found (apt-get install dcmtk)", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="yigong-bench-lan-"))
    try:
        files = work / "study"
        write_ct_study(HEADER, files, args.count)
        size = sum(p.stat().st_size for p in files.iterdir())
        print(f"study: {args.count} CT slices 512x512, {size / 1e6:.1f} MB")
        cfg = OrthancConfig(root=work / "orthanc", http_port=free_port(), dicom_port=free_port())
        direct_t: list[float] = []
        node_t: list[float] = []
        with OrthancProcess(cfg):
            s = requests.Session()
            s.auth = (cfg.user, cfg.password)
            node_port = free_port()
            node = start_node(work / "spool", node_port, cfg, args.workers)
            try:
                for run in range(args.runs):
                    clear(s, cfg.url)
                    t = storescu(files, "127.0.0.1", cfg.dicom_port, cfg.aet)
                    wait_count(s, cfg.url, args.count, time.monotonic() + 60)
                    direct_t.append(t)
                    clear(s, cfg.url)
                    t0 = time.perf_counter()
                    send_t = storescu(files, "127.0.0.1", node_port, "YIGONG-NODE")
                    wait_count(s, cfg.url, args.count, time.monotonic() + 120)
                    node_t.append(time.perf_counter() - t0)
                    print(f"run {run + 1}: direct {direct_t[-1]:.2f} s, node {node_t[-1]:.2f} s"
                          f" (modality done after {send_t:.2f} s)")
            finally:
                node.terminate()
                node.wait(30)
        d, n = statistics.median(direct_t), statistics.median(node_t)
        print(f"direct dcmtk -> Orthanc : {d:.2f} s ({args.count / d:.0f} instances/s)")
        print(f"dcmtk -> node -> Orthanc: {n:.2f} s ({args.count / n:.0f} instances/s)")
        paired = statistics.median(nt / dt for nt, dt in zip(node_t, direct_t, strict=True))
        print(f"ratio node/direct       : {n / d:.2f}x of medians, {paired:.2f}x median of"
              f" per-run ratios (goal <= 1.25x)")
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
