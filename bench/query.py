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
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

from bench._common import ROOT, header, percentile
from bench.ingest import drive, split, start_server
from bench.synth import CHILD_DOSES, DoseEvent, Person, Synth
from engine.client import MllpSender
from parsers.client import ack_code


def exact_doses(synth: Synth, person: Person, count: int) -> list[DoseEvent]:
    """``count`` distinct doses, 30 days apart from the birth date, all given by CLINIC1.

    Thirty days apart is beyond the de-duplication window (23 days), so the
    registry keeps every one of them: a patient of exactly ``count`` doses.
    """
    doses = []
    for n in range(count):
        cvx, mvx, _day = CHILD_DOSES[n % len(CHILD_DOSES)]
        given = person.birth_date + timedelta(days=30 * (n + 1))
        doses.append(
            DoseEvent(
                900_000 + 1000 * person.person_id + n,
                cvx,
                mvx,
                given,
                f"L{n}",
                "CLINIC1",
            )
        )
    return doses


def under_ingest(
    groups: dict[str, list[int]],
    queries: int,
    ingest_rate: float,
    *,
    exact: bool = False,
    ingest_seconds: float = 120.0,
    arrivals: str = "lockstep",
) -> dict[str, tuple[list[float], dict[str, int], int]]:
    """Z44 round trips from one client while eight senders ingest at ``ingest_rate`` (Poisson).

    ``groups`` names lists of dose counts, one patient each; the queries go
    round the groups in turn (the same ingest beside all of them), ``queries``
    per group. ``exact`` gives each patient exactly its count of distinct
    doses (:func:`exact_doses`), as opposed to generated histories. Returns,
    per group, the latencies (ms), the answers' codes, and the doses in the
    first answer to its first patient (its RXA segments but the forecast's,
    CVX 998).
    ``arrivals`` is how the ingest arrives, as :func:`bench.ingest.drive` takes it.
    """
    synth = Synth(seed=31)
    patients: dict[str, list[tuple[Person, str]]] = {}
    loads: list[bytes] = []
    for label, counts in groups.items():
        for count in counts:
            person = synth.person()
            if exact:
                born = synth.today - timedelta(days=30 * count + 60)
                person = replace(person, birth_date=born)
                doses = exact_doses(synth, person, count)
            else:
                doses = synth.doses_for(person, count=min(count, len(CHILD_DOSES)))
                while len(doses) < count:
                    doses += synth.doses_for(
                        person, count=min(count - len(doses), len(CHILD_DOSES))
                    )
            mrn = f"Q{person.person_id:07d}"
            loads.append(
                synth.vxu(person, doses, sender="CLINIC1", mrn=mrn).text.encode()
            )
            patients.setdefault(label, []).append((person, mrn))
    background = [
        s.text.encode() for s in synth.traffic(int(ingest_rate * ingest_seconds))
    ]
    cdsi = os.environ.get(
        "CAIRN_CDSI_DIR", str(ROOT.parent / "shared" / "cdsi" / "supporting-data")
    )
    out: dict[str, tuple[list[float], dict[str, int], int]] = {
        label: ([], {}, 0) for label in patients
    }
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
                            server,
                            [b],
                            rate_per_sender=ingest_rate / 8,
                            arrivals=arrivals,
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
            with MllpSender(server.host, server.port, timeout=60) as client:
                for n in range(queries):
                    for label, people in patients.items():
                        latencies, codes, rxa = out[label]
                        person, mrn = people[n % len(people)]
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
                        if n == 0:
                            rxa = reply.count(b"\rRXA|") - reply.count(b"|998^")
                            out[label] = (latencies, codes, rxa)
            stop.set()
        finally:
            server.stop()
    return out


def run(args: argparse.Namespace) -> list[str]:
    """Measure and return the result lines."""
    lines = [header()]
    counts = [5 + i % 26 for i in range(args.patients)]
    latencies, codes, _rxa = under_ingest(
        {"5-30": counts}, args.queries, args.ingest_rate
    )["5-30"]
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
