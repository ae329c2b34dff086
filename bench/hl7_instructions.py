"""Instructions per lab message in the bridge's own code: not moved by the machine's speed.

Runs ``bench/hl7_record_cost.py`` (prepare + record + commit in batches, against a fresh
PostgreSQL database) twice under callgrind, with N and 3N messages, in parallel, and prints the
difference divided by 2N: the client-side instructions one message costs, start-up excluded.
PostgreSQL's own work and the kernel's (system calls, round trips) are not in it; count the
round trips per batch separately (docs/lab.md, "Batch write path").

    .venv/bin/python bench/hl7_instructions.py --messages 200 --batch 4

Takes a few minutes (callgrind runs the interpreter about 50 times slower). Needs valgrind
(Debian's ``valgrind`` package), which the test command does not install.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--messages", type=int, default=200, help="N: the runs record N and 3N")
    ap.add_argument("--batch", type=int, default=4, help="messages per transaction")
    args = ap.parse_args()
    if shutil.which("valgrind") is None:
        sys.exit("valgrind is not installed (Debian: apt-get install valgrind)")

    with tempfile.TemporaryDirectory() as tmp:
        runs = {}
        for count in (args.messages, 3 * args.messages):
            print(f"callgrind: {count} messages in batches of {args.batch} ...", flush=True)
            runs[count] = subprocess.Popen(
                ["valgrind", "--tool=callgrind", f"--callgrind-out-file={tmp}/cg.{count}",
                 sys.executable, str(REPO / "bench" / "hl7_record_cost.py"),
                 "--messages", str(count), "--warmup", "40", "--batch", str(args.batch)],
                cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        collected = {}
        for count, proc in runs.items():
            _out, err = proc.communicate()
            found = re.search(r"Collected : (\d+)", err)
            if proc.returncode != 0 or not found:
                sys.exit(f"callgrind run with {count} messages failed:\n{err[-2000:]}")
            collected[count] = int(found.group(1))
    low, high = args.messages, 3 * args.messages
    per_message = (collected[high] - collected[low]) / (high - low)
    print(f"instructions per message (prepare + record, batches of {args.batch}): "
          f"{per_message / 1e6:.2f} M")


if __name__ == "__main__":
    main()
