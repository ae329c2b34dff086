"""Worklist query latency on PostgreSQL with 100,000 items and 50 concurrent clients.

    .venv/bin/python bench/worklist_api.py [--items 100000] [--clients 50] [--requests 2000]

Creates a scratch database on the local PostgreSQL, fills it, then measures two things:
  1. the worklist query itself (service layer, 50 threads each with its own DB connection);
  2. GET /api/worklist end to end over HTTP (uvicorn, 50 concurrent keep-alive clients).
Prints p50/p95/p99 for each. Goal (issue 2): p95 under 50 ms.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hub.clock import utcnow  # noqa: E402
from hub.db.migrate import upgrade  # noqa: E402
from hub.db.session import get_sessionmaker  # noqa: E402
from hub.domain.access import Role, Viewer, worklist_scope  # noqa: E402
from hub.services.worklist import WorklistQuery, worklist_statements  # noqa: E402

ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
INSTITUTIONS = ["LEAD", "BR01", "BR02", "BR03", "BR04", "BR05", "BR06", "BR07"]


def fill(url: str, n: int) -> None:
    """Bulk-load ``n`` items with COPY (the ORM would take minutes and measures nothing useful)."""
    now = utcnow()
    kinds = [("imaging", "radiology", "CT"), ("imaging", "radiology", "DX"),
             ("ecg", "cardiology", "ECG"), ("lab", "laboratory", None)]
    # A county hub's 100,000 items are mostly history: about 7% still wait for a report.
    statuses = (["delivered"] * 85 + ["final"] * 8 + ["ready"] * 4 + ["in_progress"] * 1
                + ["receiving"] * 1 + ["preliminary"] * 1)
    prios = ["routine"] * 8 + ["urgent", "stat"]
    rank = {"stat": 0, "urgent": 1, "routine": 2}
    turnaround = {"stat": 30, "urgent": 120, "routine": 1440}
    plain = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain) as conn, conn.cursor() as cur:
        cur.execute("INSERT INTO institutions (code, name, is_lead, ae_titles, hl7_facilities) "
                    "SELECT c, c, c = 'LEAD', '[]', '[]' FROM unnest(%s::text[]) c",
                    (INSTITUTIONS,))
        cols = ("kind, natural_key, status, priority, priority_rank, specialty, institution_code, "
                "patient_name, modality, series_count, instance_count, received_at, due_at, "
                "is_stable, is_critical, flags, details, updated_at")
        rnd = random.Random(7)
        with cur.copy(f"COPY worklist_items ({cols}) FROM STDIN") as copy:
            for i in range(n):
                kind, spec, mod = rnd.choice(kinds)
                prio = rnd.choice(prios)
                received = now - timedelta(minutes=rnd.randint(0, 60 * 24 * 90))
                copy.write_row((kind, f"1.2.826.0.1.{i}", rnd.choice(statuses), prio, rank[prio],
                                spec,
                                rnd.choice(INSTITUTIONS), f"患者{i}", mod, 1, 10, received,
                                received + timedelta(minutes=turnaround[prio]), True, False,
                                "[]", "{}", now))
        cur.execute("ANALYZE worklist_items")
        conn.commit()


def percentiles(samples: list[float]) -> str:
    s = sorted(samples)
    q = statistics.quantiles(s, n=100)
    return (f"n={len(s)} p50={q[49] * 1000:.1f} ms p95={q[94] * 1000:.1f} ms "
            f"p99={q[98] * 1000:.1f} ms max={s[-1] * 1000:.1f} ms")


def bench_sql(url: str, clients: int, seconds: int) -> list[float]:
    """The worklist's SQL under ``clients`` concurrent connections, driven by pgbench (C), so
    the load generator's own interpreter does not colour the figure."""
    import subprocess

    from sqlalchemy.dialects import postgresql

    now = utcnow()
    lead_reader = worklist_scope(Viewer(1, Role.RADIOLOGIST, "LEAD", True))
    branch = worklist_scope(Viewer(2, Role.TECHNICIAN, "BR03", False))
    admin = worklist_scope(Viewer(3, Role.ADMIN, "LEAD", True))
    cases = [(WorklistQuery(), lead_reader), (WorklistQuery(status="ready"), admin),
             (WorklistQuery(kind="ecg"), admin), (WorklistQuery(priority="stat"), admin),
             (WorklistQuery(institution="BR02"), admin), (WorklistQuery(), branch)]
    work = Path(tempfile.mkdtemp())
    scripts = []
    def literal(stmt) -> str:  # noqa: ANN001
        return str(stmt.compile(dialect=postgresql.dialect(),
                                compile_kwargs={"literal_binds": True})).replace("\n", " ")

    plain = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain) as conn:
        for n, (q, scope) in enumerate(cases):
            overdue, rest = worklist_statements(q, scope, now)
            # One pgbench transaction = one worklist page, the statements list_items would run:
            # the second half only when the overdue half does not fill the page.
            sql, have = [], 0
            if overdue is not None:
                sql.append(literal(overdue))
                have = len(conn.execute(sql[0]).fetchall())
            if have < q.limit:
                sql.append(literal(rest.limit(q.limit - have)))
            path = work / f"q{n}.sql"
            path.write_text("".join(f"{s};\n" for s in sql))
            scripts += ["-f", str(path)]
    db = url.rsplit("/", 1)[1]
    # -M prepared: psycopg prepares a statement after its fifth use, so the hub plans once too.
    subprocess.run(["pgbench", "-h", "127.0.0.1", "-U", "postgres", "-n", "-M", "prepared",
                    "-c", str(clients),
                    "-j", "2", "-T", str(seconds), "-l", "--log-prefix", str(work / "log"),
                    *scripts, db], check=True, capture_output=True, text=True)
    samples = []
    for log in work.glob("log*"):
        for line in log.read_text().splitlines():
            samples.append(int(line.split()[2]) / 1e6)  # latency in microseconds
    print(f"  throughput: {len(samples) / seconds:.0f} pages/s")
    return samples


def bench_http(url: str, clients: int, requests: int, workers: int,
               interval: float = 0.0) -> list[float]:
    """Serve the API from uvicorn worker processes; drive it from asyncio clients here."""
    import asyncio
    import os
    import socket
    import subprocess

    import httpx

    from hub import audit
    from hub.domain.errors import Conflict
    from hub.services.users import create_user

    with get_sessionmaker(url)() as s:
        try:
            create_user(s, audit.SYSTEM, "bench", "bench-password", Role.RADIOLOGIST, "LEAD")
            s.commit()
        except Conflict:
            s.rollback()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = dict(os.environ, YIGONG_DATABASE_URL=url, YIGONG_SECRET_KEY="bench" * 8,
               YIGONG_DATA_DIR=tempfile.mkdtemp())
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "hub.api.main:create_app", "--factory", "--host",
         "127.0.0.1", "--port", str(port), "--workers", str(workers), "--log-level", "error",
         "--no-access-log", "--timeout-keep-alive", "60"], env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                httpx.get(base + "/api/health", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        token = httpx.post(base + "/api/auth/token",
                           data={"username": "bench", "password": "bench-password"}).json()
        headers = {"Authorization": f"Bearer {token['access_token']}"}
        params = [{}, {"status": "ready"}, {"kind": "ecg"}, {"priority": "stat"},
                  {"institution": "BR02"}]
        samples: list[float] = []

        async def client(idx: int, c: httpx.AsyncClient) -> None:
            rnd = random.Random(idx)
            if interval:
                await asyncio.sleep(rnd.uniform(0, interval))
            for _ in range(requests // clients):
                started = time.perf_counter()
                t0 = started
                r = await c.get("/api/worklist", params=rnd.choice(params))
                samples.append(time.perf_counter() - t0)
                r.raise_for_status()
                if interval:
                    # Open loop: a reader's screen refreshes on a timer, not on the last answer.
                    await asyncio.sleep(max(0.0, interval - (time.perf_counter() - started)))

        async def run() -> float:
            limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
            async with httpx.AsyncClient(base_url=base, headers=headers, timeout=60,
                                         limits=limits) as c:
                await asyncio.gather(*(client(i, c) for i in range(3)))  # warm-up
                samples.clear()
                t0 = time.perf_counter()
                await asyncio.gather(*(client(i, c) for i in range(clients)))
                return time.perf_counter() - t0

        elapsed = asyncio.run(run())
        print(f"  throughput: {len(samples) / elapsed:.0f} requests/s "
              f"({workers} uvicorn worker processes)")
        return samples
    finally:
        server.terminate()
        server.wait(20)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", type=int, default=100_000)
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--skip-http", action="store_true")
    ap.add_argument("--seconds", type=int, default=20, help="duration of the SQL run")
    ap.add_argument("--workers", type=int, default=2, help="uvicorn worker processes")
    ap.add_argument("--interval", type=float, default=2.0,
                    help="seconds between one client's refreshes in the open-loop run")
    args = ap.parse_args()
    name = f"yigong_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    try:
        upgrade(url)
        t0 = time.perf_counter()
        fill(url, args.items)
        print(f"filled {args.items} items in {time.perf_counter() - t0:.1f} s")
        print(f"worklist query (SQL of one page), {args.clients} concurrent PostgreSQL "
              "connections, pgbench:")
        print("  " + percentiles(bench_sql(url, args.clients, args.seconds)))
        if not args.skip_http:
            print(f"GET /api/worklist, {args.clients} HTTP clients each refreshing every "
                  f"{args.interval:g} s (open loop):")
            print("  " + percentiles(bench_http(url, args.clients, args.clients * 10,
                                                args.workers, args.interval)))
            print(f"GET /api/worklist, {args.clients} HTTP clients back to back (closed loop, "
                  "saturation):")
            print("  " + percentiles(bench_http(url, args.clients, args.requests,
                                                args.workers)))
    finally:
        from hub.db.session import get_engine

        get_engine(url).dispose()
        with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
