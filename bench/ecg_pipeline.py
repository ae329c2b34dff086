"""Parse + measure + render a 10 s 12-lead ECG; print the median time per ECG.

    .venv/bin/python bench/ecg_pipeline.py [--runs 30] [FILE ...]

Without FILE it uses a synthetic 10 s 12-lead WFDB record (500 Hz) plus, when the shared test
data is present, the DICOM waveform (1000 Hz) and HL7 aECG (500 Hz) samples. The issue's goal:
under 300 ms per ECG, and 1,000 ECGs a day using under 5 % of one worker's time.
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings
from pathlib import Path

from ecg_ingest.dicom_writer import to_dicom_bytes
from ecg_ingest.measure import measure
from ecg_ingest.readers import files_for_path, read_files
from ecg_ingest.render import render_png, render_svg
from ecg_ingest.synthetic import synthetic_ecg, to_wfdb_files

SHARED = Path(__file__).resolve().parents[2] / "shared" / "testdata" / "ecg"


def bench(name: str, files: dict[str, bytes], runs: int) -> None:
    stages: dict[str, list[float]] = {"parse": [], "measure": [], "render png": [],
                                      "total": [], "render svg": [], "to DICOM": []}
    for _ in range(runs):
        t0 = time.perf_counter()
        record = read_files(files)[0].record
        t1 = time.perf_counter()
        m = measure(record)
        t2 = time.perf_counter()
        render_png(record, m)
        t3 = time.perf_counter()
        render_svg(record, m)
        t4 = time.perf_counter()
        if 200 <= record.sampling_rate_hz <= 1000:
            to_dicom_bytes(record)
        t5 = time.perf_counter()
        for key, value in (("parse", t1 - t0), ("measure", t2 - t1), ("render png", t3 - t2),
                           ("total", t3 - t0), ("render svg", t4 - t3), ("to DICOM", t5 - t4)):
            stages[key].append(value * 1000)
    med = {k: statistics.median(v) for k, v in stages.items()}
    share = med["total"] * 1000 / 86_400_000 * 100
    print(f"{name}: {len(record.leads)} leads, {record.sampling_rate_hz:g} Hz, "
          f"{record.duration_s:g} s, {runs} runs")
    print("  median ms: " + ", ".join(f"{k} {v:.1f}" for k, v in med.items()))
    print(f"  parse+measure+render PNG median {med['total']:.1f} ms per ECG; 1,000 ECGs/day = "
          f"{share:.2f} % of one worker")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="*", type=Path)
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    inputs: list[tuple[str, dict[str, bytes]]] = []
    if args.files:
        inputs = [(str(p), files_for_path(p)) for p in args.files]
    else:
        inputs.append(("synthetic WFDB", to_wfdb_files(synthetic_ecg(72), "synthetic")))
        for rel in ("dicom/waveform_ecg.dcm", "aecg/Example_aECG.xml"):
            if (SHARED / rel).exists():
                inputs.append((rel, files_for_path(SHARED / rel)))
    # One warm-up so imports and filter design are not timed.
    measure(read_files(inputs[0][1])[0].record)
    for name, files in inputs:
        bench(name, files, args.runs)


if __name__ == "__main__":
    main()
