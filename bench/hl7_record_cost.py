"""CPU cost of one lab message inside the bridge, without sockets: prepare + record + commit.

Feeds the same ORU^R01 mix as ``bench/hl7_throughput.py`` through the bridge's frame preparer
and ``record_batch`` in batches (as the group committer does) against a fresh PostgreSQL
database, and prints the process CPU time per message for each stage. Unlike the wall-clock
benchmark this barely depends on what else the machine is doing.

    .venv/bin/python bench/hl7_record_cost.py --messages 2000 --batch 4
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.hl7_throughput import (  # noqa: E402
    _cpu_seconds,
    _pg_backends,
    create_database,
    drop_database,
    oru,
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--messages", type=int, default=2000)
    ap.add_argument("--warmup", type=int, default=400)
    ap.add_argument("--batch", type=int, default=4, help="messages per transaction")
    ap.add_argument("--patients", type=int, default=2000)
    ap.add_argument("--profile", metavar="FILE", help="write a cProfile of the timed run")
    args = ap.parse_args()

    from hub.clock import utcnow
    from hub.config import Settings
    from hub.db.session import HeldConnection
    from hub.domain.lab_rules import parse_ranges
    from hub.intake import IntakeRules
    from hub.services.lab import InstitutionMap, LabRules, record_batch
    from lis_bridge.config import LisSettings
    from lis_bridge.server import FramePreparer

    name, url = create_database()
    try:
        settings = LisSettings()
        preparer = FramePreparer(settings)
        rules = LabRules(IntakeRules.from_settings(Settings()),
                         parse_ranges(settings.critical_ranges))
        institutions = InstitutionMap()
        held = HeldConnection(url)  # as the bridge's committer thread holds one

        def run(frames: list[bytes]) -> tuple[float, float]:
            prep = rec = 0.0
            for start in range(0, len(frames), args.batch):
                t0 = time.process_time()
                inbounds = [preparer.prepare(f, "bench", utcnow())
                            for f in frames[start:start + args.batch]]
                t1 = time.process_time()
                with held.session() as session, session.begin():
                    out = record_batch(session, inbounds, rules, institutions, now=utcnow())
                rec += time.process_time() - t1
                prep += t1 - t0
                assert all(r.ack_code == "AA" for r in out), [r.ack for r in out]
            return prep, rec

        run([oru(10_000_000 + n, args.patients) for n in range(args.warmup)])
        frames = [oru(n, args.patients) for n in range(args.messages)]
        profiler = None
        if args.profile:
            import cProfile

            profiler = cProfile.Profile()
            profiler.enable()
        backends = _pg_backends(name)
        pg0 = _cpu_seconds(backends)
        t0 = time.perf_counter()
        prep, rec = run(frames)
        wall = time.perf_counter() - t0
        pg = _cpu_seconds(backends) - pg0
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(args.profile)
        n = args.messages
        print(f"{n} messages in batches of {args.batch}, load average {os.getloadavg()[0]:.1f}")
        print(f"CPU per message: prepare {prep / n * 1000:.3f} ms, record + commit "
              f"{rec / n * 1000:.3f} ms, total {(prep + rec) / n * 1000:.3f} ms "
              f"(wall {wall / n * 1000:.3f} ms); PostgreSQL backend {pg / n * 1000:.3f} ms")
        held.close()
    finally:
        drop_database(name)


if __name__ == "__main__":
    main()
