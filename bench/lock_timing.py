"""Can a stranger tell a locked child from an absent one by the time an NF takes?

A locked record (PD1-12 = Y) is answered NF to an organization that never
submitted data for it, exactly like a query for nobody. If the locked NF
takes longer, timing alone tells the attacker the child is in the registry
(issue 14, item 8). This loads locked patients from one clinic, then a second
clinic sends Z34 queries, shuffled, for those children and for absent ones
(the same birth dates, other names), over MLLP to a real ``cairn serve``.

The attacker's best classifier here is a threshold on the round-trip time,
fitted on one half of the queries and scored on the other half (and the
reverse, averaged): 50 % means timing tells nothing. The aim is at most 60 %.

Run: .venv/bin/python -m bench.lock_timing [--patients 300] [--queries 2000] [--database URL]
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from pathlib import Path

from bench._common import header, percentile
from bench.ingest import drive, split, start_server, upgrade
from bench.synth import Person, Synth
from engine.client import MllpSender


def _z34(person: Person, family: str, given: str, control: str) -> bytes:
    return (
        f"MSH|^~\\&|EHR|PROBE|CAIRN|CAIRN|20261101120000-0800||QBP^Q11^QBP_Q11|{control}|P|2.5.1|||ER|AL|||||Z34^CDCPHINVS\r"
        f"QPD|Z34^Request Immunization History^CDCPHINVS|T{control}||{family}^{given}^^^^^L||{person.birth_date:%Y%m%d}|{person.sex}\r"
        "RCP|I|5^RD&records&HL70126\r"
    ).encode()


def best_threshold_accuracy(locked: list[float], absent: list[float]) -> float:
    """Accuracy of the best threshold rule (either direction) on these samples."""
    points = sorted([(t, 1) for t in locked] + [(t, 0) for t in absent])
    total = len(points)
    n_locked = len(locked)
    best = 0.5
    below_locked = 0
    below_absent = 0
    for i, (_t, is_locked) in enumerate(points):
        if is_locked:
            below_locked += 1
        else:
            below_absent += 1
        if i + 1 < total and points[i + 1][0] == points[i][0]:
            continue
        # "locked if slower than t": right = absent below + locked above.
        slower = below_absent + (n_locked - below_locked)
        best = max(best, slower / total, (total - slower) / total)
    return best


def _fit_and_score(
    train: tuple[list[float], list[float]], test: tuple[list[float], list[float]]
) -> float:
    """Fit the threshold and its direction on train; return the accuracy on test."""
    points = sorted([(t, 1) for t in train[0]] + [(t, 0) for t in train[1]])
    n_locked = len(train[0])
    best = (0.0, points[0][0], True)
    below_locked = below_absent = 0
    for i, (t, is_locked) in enumerate(points):
        if is_locked:
            below_locked += 1
        else:
            below_absent += 1
        # The cut lies halfway to the next sample, not on this one.
        cut = (t + points[i + 1][0]) / 2 if i + 1 < len(points) else t
        slower = (below_absent + n_locked - below_locked) / len(points)
        best = max(best, (slower, cut, True), (1 - slower, cut, False))
    _acc, cut, slower_is_locked = best
    right = sum((t > cut) == slower_is_locked for t in test[0])
    right += sum((t > cut) != slower_is_locked for t in test[1])
    return right / (len(test[0]) + len(test[1]))


def cross_validated_accuracy(locked: list[float], absent: list[float]) -> float:
    """Two-fold cross-validated accuracy of a threshold classifier."""
    a = (locked[0::2], absent[0::2])
    b = (locked[1::2], absent[1::2])
    return (_fit_and_score(a, b) + _fit_and_score(b, a)) / 2


def run(args: argparse.Namespace) -> list[str]:
    """Measure and return the result lines."""
    synth = Synth(seed=53)
    people = [synth.person() for _ in range(args.patients)]
    loads = []
    for i, person in enumerate(people):
        text = synth.vxu(
            person, synth.doses_for(person, count=3), sender="OWNER", mrn=f"L{i:06d}"
        ).text
        loads.append(text.replace("|N|20200101|||A|", "|Y|20200101|||A|").encode())
    rng = random.Random(7)
    probes: list[tuple[bool, bytes]] = []
    for n in range(args.queries):
        person = rng.choice(people)
        if n % 2:
            probes.append((True, _z34(person, person.family, person.given, f"P{n}")))
        else:
            stranger = synth.person()  # another name, on a birth date that is stored
            probes.append(
                (False, _z34(person, stranger.family, stranger.given, f"P{n}"))
            )
    rng.shuffle(probes)
    locked: list[float] = []
    absent: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        if args.database:
            upgrade(args.database)
        server = start_server(Path(tmp), args.database)
        try:
            drive(server, split(loads, 4))
            with MllpSender(server.host, server.port) as client:
                for _is_locked, message in probes[:50]:  # warm the caches
                    client.send(message)
                for is_locked, message in probes:
                    started = time.perf_counter()
                    reply = client.send(message)
                    elapsed = (time.perf_counter() - started) * 1000
                    assert b"|NF|" in reply or b"NF" in reply.split(b"\rQAK|")[1][:40]
                    (locked if is_locked else absent).append(elapsed)
        finally:
            server.stop()
    accuracy = cross_validated_accuracy(locked, absent)
    return [
        header(),
        f"- {args.patients} locked patients from one clinic; {len(locked)} Z34 for them and "
        f"{len(absent)} for absent children on the same birth dates, from another clinic, shuffled",
        f"- NF round trip, locked: median {statistics.median(locked):.3f} ms, "
        f"p90 {percentile(locked, 90):.3f} ms; absent: median {statistics.median(absent):.3f} ms, "
        f"p90 {percentile(absent, 90):.3f} ms",
        f"- threshold classifier, two-fold cross-validated accuracy: {accuracy:.1%} "
        f"(50 % = timing tells nothing; aim <= 60 %); best threshold on all samples "
        f"(an upper bound): {best_threshold_accuracy(locked, absent):.1%}",
    ]


def main() -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--patients", type=int, default=300)
    parser.add_argument("--queries", type=int, default=2000)
    parser.add_argument(
        "--database", help="a PostgreSQL URL of an empty database (default: SQLite)"
    )
    for line in run(parser.parse_args()):
        print(line)


if __name__ == "__main__":
    main()
