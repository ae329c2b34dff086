"""HL7 bridge throughput: ORU^R01 over concurrent MLLP connections, ACK after durable commit.

Creates a fresh PostgreSQL database, starts the bridge as a subprocess (``python -m lis_bridge``)
and drives it with N connections, each sending its next message only after the previous ACK, as
MLLP senders do. Prints messages/s and ACK latency percentiles; every ACK must be AA.

    .venv/bin/python bench/hl7_throughput.py --messages 3000 --connections 8 --workers 2

PostgreSQL keeps ``synchronous_commit=on`` and ``fsync=on``: an AA means the rows are on disk.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psycopg

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from lis_bridge.mllp import FrameDecoder, frame  # noqa: E402

PG_ADMIN = os.environ.get("YIGONG_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


def oru(n: int, patients: int) -> bytes:
    """A typical chemistry result: 1 OBR, 6 OBX, Chinese name, UTF-8."""
    p = n % patients
    segs = [
        f"MSH|^~\\&|LIS|BRANCH1|YIGONG|HUB|20261126080000||ORU^R01^ORU_R01|B{n:08d}|P|2.5.1"
        "||||||UNICODE UTF-8",
        f"PID|1||P{p:06d}^^^BRANCH1^MR||王^测试{p}||{1940 + p % 60}{p % 12 + 1:02d}"
        f"{p % 28 + 1:02d}|M",
        f"OBR|1|PL{n}^HIS|FL{n}^LIS|CHEM^生化^L|||20261126073000|||||||||||||||20261126075500"
        "|||F",
    ]
    tests = [("K", "4.1", "mmol/L", "3.5-5.5"), ("NA", "140", "mmol/L", "135-145"),
             ("GLU", "5.6", "mmol/L", "3.9-6.1"), ("CREA", "80", "umol/L", "57-111"),
             ("UREA", "5.0", "mmol/L", "2.9-8.2"), ("ALT", "25", "U/L", "9-50")]
    for i, (code, value, unit, rng) in enumerate(tests, start=1):
        segs.append(f"OBX|{i}|NM|{code}^{code}^L||{value}|{unit}|{rng}|N|||F|||20261126073000")
    return ("\r".join(segs) + "\r").encode("utf-8")


async def connection(port: int, messages: list[bytes], latencies: list[float],
                     codes: dict[str, int]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    decoder = FrameDecoder(1 << 20)
    for msg in messages:
        t0 = time.perf_counter()
        writer.write(frame(msg))
        frames: list = []
        while not frames:
            async with asyncio.timeout(60):
                data = await reader.read(65536)
            if not data:
                raise ConnectionError("bridge closed the connection")
            frames = decoder.feed(data)
        latencies.append(time.perf_counter() - t0)
        code = frames[0].split(b"\rMSA|")[1][:2].decode()
        codes[code] = codes.get(code, 0) + 1
    writer.close()


async def drive(port: int, total: int, conns: int, patients: int, offset: int
                ) -> tuple[float, list[float], dict[str, int]]:
    per = [[oru(offset + n, patients) for n in range(k, total, conns)] for k in range(conns)]
    latencies: list[float] = []
    codes: dict[str, int] = {}
    t0 = time.perf_counter()
    await asyncio.gather(*(connection(port, msgs, latencies, codes) for msgs in per))
    return time.perf_counter() - t0, latencies, codes


def _children(pid: int) -> list[int]:
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with open(task / "children") as f:
            out += [int(x) for x in f.read().split()]
    return out


def _cpu_seconds(pids: list[int]) -> float:
    """utime + stime of processes (all their threads), from /proc."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / tick


def _pg_backends(dbname: str) -> list[int]:
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        return [r[0] for r in conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s", (dbname,))]


def create_database() -> tuple[str, str]:
    """A fresh, migrated database with the sending branch configured; (name, SQLAlchemy URL)."""
    from hub import audit
    from hub.db.migrate import upgrade
    from hub.db.session import get_sessionmaker
    from hub.services.users import upsert_institution

    name = f"yigong_labbench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = PG_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://") + "/" + name
    upgrade(url)
    # A live community knows its branches: results from BRANCH1 file under that institution
    # (an unknown facility would be flagged on every item and looked up on every batch).
    with get_sessionmaker(url)() as session, session.begin():
        upsert_institution(session, audit.SYSTEM, "BRANCH1", "乡镇卫生院一",
                           hl7_facilities=["BRANCH1"])
    return name, url


def drop_database(name: str) -> None:
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def machine_reference() -> tuple[float, float]:
    """Two fixed measures of this machine's speed at the moment, to compare runs across days.

    CPU milliseconds for 10^6 iterations of a plain Python loop, and CPU microseconds (client
    process) per ``SELECT 1`` round trip to the benchmark's PostgreSQL.
    """
    t0 = time.process_time()
    total = 0
    for i in range(1_000_000):
        total += i
    loop_ms = (time.process_time() - t0) * 1000
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute("SELECT 1")
        t0 = time.process_time()
        for _ in range(2000):
            conn.execute("SELECT 1")
        select_us = (time.process_time() - t0) / 2000 * 1e6
    return loop_ms, select_us


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--messages", type=int, default=6000)
    ap.add_argument("--warmup", type=int, default=400)
    ap.add_argument("--connections", type=int, default=8)
    ap.add_argument("--workers", type=int, default=2, help="bridge worker processes")
    ap.add_argument("--patients", type=int, default=2000, help="distinct patients in the mix")
    ap.add_argument("--window-ms", type=float, default=2.0, help="group-commit window")
    ap.add_argument("--commit-threads", type=int, default=1, help="committer threads/process")
    ap.add_argument("--keep", action="store_true", help="keep the benchmark database")
    args = ap.parse_args()

    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        sync = conn.execute("SHOW synchronous_commit").fetchone()[0]
        fsync = conn.execute("SHOW fsync").fetchone()[0]
    name, url = create_database()
    port = free_port()
    env = {**os.environ, "YIGONG_DATABASE_URL": url, "YIGONG_LIS_PORT": str(port),
           "YIGONG_LIS_WORKERS": str(args.workers),
           "YIGONG_LIS_COMMIT_WINDOW_MS": str(args.window_ms),
           "YIGONG_LIS_COMMIT_THREADS": str(args.commit_threads)}
    proc = subprocess.Popen([sys.executable, "-m", "lis_bridge", "--no-migrate",
                             "--log-level", "warning"], cwd=REPO, env=env)
    try:
        deadline = time.time() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if time.time() > deadline:
                    raise
                time.sleep(0.1)
        time.sleep(1.0 if args.workers > 1 else 0.2)  # let every worker bind
        asyncio.run(drive(port, args.warmup, args.connections, args.patients, 10_000_000))
        # CPU used by the bridge processes and their PostgreSQL backends during the timed run:
        # this machine is shared, so wall-clock throughput alone depends on the neighbours.
        bridge_pids = [proc.pid, *_children(proc.pid)]
        pg_pids = _pg_backends(name)
        cpu0 = (_cpu_seconds(bridge_pids), _cpu_seconds(pg_pids))
        load0 = os.getloadavg()[0]
        gen0 = time.process_time()
        elapsed, lat, codes = asyncio.run(
            drive(port, args.messages, args.connections, args.patients, 0))
        gen_ms = (time.process_time() - gen0) / args.messages * 1000
        cpu1 = (_cpu_seconds(bridge_pids), _cpu_seconds(pg_pids))
        load1 = os.getloadavg()[0]
    finally:
        proc.terminate()
        proc.wait(30)
    lat.sort()
    p = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] * 1000  # noqa: E731
    print(f"PostgreSQL synchronous_commit={sync} fsync={fsync}; {os.cpu_count()} CPUs; "
          f"bridge workers={args.workers}, connections={args.connections}, "
          f"group-commit window={args.window_ms} ms, committer threads={args.commit_threads}")
    print(f"messages: {args.messages} (+{args.warmup} warm-up), ACK codes: {codes}")
    print(f"throughput: {args.messages / elapsed:.0f} msgs/s  ({elapsed:.2f} s)")
    print(f"ACK latency ms: p50 {p(0.50):.1f}  p95 {p(0.95):.1f}  p99 {p(0.99):.1f}  "
          f"mean {statistics.fmean(lat) * 1000:.1f}")
    bridge_ms = (cpu1[0] - cpu0[0]) / args.messages * 1000
    pg_ms = (cpu1[1] - cpu0[1]) / args.messages * 1000
    print(f"CPU per message: bridge {bridge_ms:.2f} ms + PostgreSQL backends {pg_ms:.2f} ms "
          f"= {bridge_ms + pg_ms:.2f} ms -> at most {2000 / (bridge_ms + pg_ms):.0f} msgs/s on "
          f"2 dedicated cores (excluding the load generator)")
    print(f"load generator (this process, 8 senders): {gen_ms:.2f} ms of CPU per message")
    print(f"load average during the run: {load0:.1f} -> {load1:.1f}")
    loop_ms, select_us = machine_reference()
    print(f"machine reference after the run: Python loop of 10^6 additions {loop_ms:.0f} ms CPU, "
          f"SELECT 1 round trip {select_us:.0f} us CPU (client)")
    if not args.keep:
        drop_database(name)
    if set(codes) != {"AA"}:
        sys.exit("not every message was acknowledged AA")


if __name__ == "__main__":
    main()
