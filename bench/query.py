"""Z44 (evaluated history and forecast) latency while ingest runs at a steady rate.

Loads patients with 5-30 doses, then measures Z44 round trips from one
client while eight senders keep ingesting VXUs at ``--ingest-rate``.

Run: .venv/bin/python -m bench.query [--patients 200] [--queries 500] [--ingest-rate 200]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time
from pathlib import Path

from bench._common import ROOT, header, percentile
from bench.ingest import drive, split, start_server
from bench.synth import CHILD_DOSES, Synth
from engine.client import MllpSender
from parsers.client import ack_code


def run(args: argparse.Namespace) -> list[str]:
    """Measure and return the result lines."""
    lines = [header()]
    synth = Synth(seed=31)
    patients = []
    loads: list[bytes] = []
    for i in range(args.patients):
        person = synth.person()
        count = 5 + i % 26
        doses = synth.doses_for(person, count=min(count, len(CHILD_DOSES)))
        while len(doses) < count:
            doses += synth.doses_for(
                person, count=min(count - len(doses), len(CHILD_DOSES))
            )
        mrn = f"Q{person.person_id:07d}"
        loads.append(synth.vxu(person, doses, sender="CLINIC1", mrn=mrn).text.encode())
        patients.append((person, mrn))
    background = [s.text.encode() for s in synth.traffic(int(args.ingest_rate * 120))]
    cdsi = os.environ.get(
        "CAIRN_CDSI_DIR", str(ROOT.parent / "shared" / "cdsi" / "supporting-data")
    )
    with tempfile.TemporaryDirectory() as tmp:
        server = start_server(Path(tmp), extra_env={"CAIRN_CDSI_DIR": cdsi})
        try:
            drive(server, split(loads, 4))
            stop = threading.Event()

            def ingest() -> None:
                batches = split(background, 8)
                threads = [
                    threading.Thread(
                        target=lambda b=b: drive(
                            server, [b], rate_per_sender=args.ingest_rate / 8
                        ),
                        daemon=True,
                    )
                    for b in batches
                ]
                for t in threads:
                    t.start()
                stop.wait()

            threading.Thread(target=ingest, daemon=True).start()
            time.sleep(1.0)
            latencies = []
            codes: dict[str, int] = {}
            with MllpSender(server.host, server.port, timeout=60) as client:
                for n in range(args.queries):
                    person, mrn = patients[n % len(patients)]
                    query = synth.z44(
                        person, sender="CLINIC1", mrn=mrn, limit=1
                    ).encode()
                    t0 = time.perf_counter()
                    reply = client.send(query)
                    latencies.append((time.perf_counter() - t0) * 1000)
                    code = ack_code(reply) + (
                        "/Z42" if b"Z42^CDCPHINVS" in reply else ""
                    )
                    codes[code] = codes.get(code, 0) + 1
            stop.set()
        finally:
            server.stop()
    lines.append(
        f"Z44 with 5-30 doses per patient, ingest at {args.ingest_rate:.0f} msgs/s: {len(latencies)} queries, "
        f"p50 {percentile(latencies, 50):.1f} ms, p99 {percentile(latencies, 99):.1f} ms; answers {codes}"
    )
    print(lines[-1], flush=True)
    return lines


def main() -> None:
    """Command line."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--patients", type=int, default=200)
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--ingest-rate", type=float, default=200.0)
    run(parser.parse_args())


if __name__ == "__main__":
    main()
