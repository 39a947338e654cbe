"""Precision and recall of patient matching and dose de-duplication on generated data.

Generates true persons (with twins, look-alike siblings, look-alike
strangers: the same common name, birth date and sex and nothing else shared,
and boys and girls with near names, a birth date one digit off and the same
mother's maiden name; names drawn common and rare), has one to three
clinics report each of them, each clinic with its own record number and its
own typing of the demographics (typos, nicknames, swapped names, transposed
birth dates, missing fields), and the same doses reported as administered by
one clinic and as history by another. Everything goes through the real VXU
pipeline; the true identities are then compared with what the registry made
of them. A look-alike stranger is reported only by clinics that did not
report the child it looks like (so no record number keeps them apart: the
scores must).

Run: .venv/bin/python -m bench.matching [--patients 20000]
"""

from __future__ import annotations

import argparse
import logging
import random
import tempfile
import time
from collections import defaultdict
from itertools import combinations

import structlog
from sqlalchemy import text

from bench._common import header
from bench.synth import Person, Synth
from engine.pipeline import Inbound, MessagePipeline, Route, SenderPolicy
from handlers.codes import CodeTables
from handlers.dedup import DoseDeduplicator
from handlers.matching import MATCH_THRESHOLD, POSSIBLE_THRESHOLD, PatientMatcher
from handlers.vxu import VxuHandler
from storage import open_database

CLINICS = ("CLINIC1", "CLINIC2", "PEDSGROUP", "COUNTYHD", "SCHOOLRN")


def _pairs(groups: dict[object, list[str]]) -> set[tuple[str, str]]:
    out: set[tuple[str, str]] = set()
    for members in groups.values():
        out.update(tuple(sorted(p)) for p in combinations(sorted(set(members)), 2))  # type: ignore[misc]
    return out


def run(args: argparse.Namespace) -> list[str]:
    """Generate, load, score; return the result lines."""
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING)
    )
    rng = random.Random(args.seed)
    synth = Synth(seed=args.seed, skewed_names=True)
    persons: list[Person] = []
    #: (child, stranger who looks like it, kind)
    lookalikes: list[tuple[int, int, str]] = []
    while len(persons) < args.patients:
        roll = rng.random()
        if roll < 0.04:
            persons.extend(synth.twins())
        elif roll < 0.08 and persons:
            persons.append(synth.person(sibling_of=rng.choice(persons[-50:])))
        elif roll < 0.08 + args.lookalikes:
            pair = synth.lookalike_pair()
            persons.extend(pair)
            lookalikes.append((pair[0].person_id, pair[1].person_id, "look-alike"))
        elif roll < 0.08 + args.lookalikes * 1.25:
            pair = synth.boy_and_girl()
            persons.extend(pair)
            lookalikes.append((pair[0].person_id, pair[1].person_id, "boy/girl"))
        else:
            persons.append(synth.person())
    messages: list[tuple[bytes, str, int]] = []  # (message, control id, person id)
    stranger_of = {b: a for a, b, _k in lookalikes}
    sources_of: dict[int, list[str]] = {}
    for person in persons:
        events = synth.doses_for(person)
        free = [
            c
            for c in CLINICS
            if c not in sources_of.get(stranger_of.get(person.person_id, -1), ())
        ]
        sources = rng.sample(free, min(len(free), rng.choice((1, 1, 2, 2, 3))))
        sources_of[person.person_id] = sources
        for n, clinic in enumerate(sources):
            shown = person if n == 0 else synth.noisy(person)
            mrn = f"{clinic[:3]}{person.person_id:07d}"
            reported = events if n == 0 else [e for e in events if rng.random() < 0.7]
            if not reported:
                continue
            sub = synth.vxu(shown, reported, sender=clinic, mrn=mrn, historical=n > 0)
            messages.append((sub.text.encode(), sub.control_id, person.person_id))
    rng.shuffle(messages)
    with tempfile.TemporaryDirectory() as tmp:
        db = open_database(f"sqlite:///{tmp}/m.sqlite3", sqlite_synchronous="NORMAL")
        db.upgrade()
        codes = CodeTables.load()
        pipeline = MessagePipeline(
            database=db,
            routes={
                "VXU": Route(
                    VxuHandler(
                        codes,
                        PatientMatcher(args.match, args.possible),
                        DoseDeduplicator(codes),
                    ),
                    "VXU_V04",
                )
            },
            senders=SenderPolicy({}, "accept", "BAY"),
        )
        started = time.perf_counter()
        for i in range(0, len(messages), 200):
            pipeline.process_batch(
                [Inbound(m, "bench", "bench") for m, _c, _p in messages[i : i + 200]]
            )
        elapsed = time.perf_counter() - started
        with db.engine.connect() as conn:
            patient_of = dict(
                conn.execute(
                    text(
                        "SELECT j.control_id, d.patient_id FROM match_decisions d JOIN message_journal j ON j.id = d.journal_id"
                    )
                ).all()
            )
            reviews = conn.execute(
                text("SELECT kind, count(*) FROM review_items GROUP BY kind")
            ).all()
            decisions = conn.execute(
                text(
                    "SELECT j.control_id, d.candidate_id, d.outcome, d.score, d.reasons FROM match_decisions d "
                    "JOIN message_journal j ON j.id = d.journal_id WHERE d.candidate_id IS NOT NULL"
                )
            ).all()
            all_reasons = conn.execute(
                text(
                    "SELECT j.control_id, d.outcome || ' ' || coalesce(d.candidate_id, '-') || ' ' || d.reasons FROM match_decisions d "
                    "JOIN message_journal j ON j.id = d.journal_id"
                )
            ).all()
            doses = conn.execute(
                text("SELECT id, filler_id, duplicate_of, patient_id FROM vaccinations")
            ).all()
        db.close()
    truth: dict[object, list[str]] = defaultdict(list)
    predicted: dict[object, list[str]] = defaultdict(list)
    for _m, control, person_id in messages:
        truth[person_id].append(control)
        if control in patient_of:
            predicted[patient_of[control]].append(control)
    true_pairs, found_pairs = _pairs(truth), _pairs(predicted)
    tp = len(true_pairs & found_pairs)
    precision = tp / len(found_pairs) if found_pairs else 1.0
    recall = tp / len(true_pairs) if true_pairs else 1.0
    event_of = {row.id: row.filler_id.rsplit("-", 1)[-1] for row in doses}
    dose_truth: dict[object, list[str]] = defaultdict(list)
    for row in doses:
        dose_truth[event_of[row.id]].append(str(row.id))
    dose_true_pairs = _pairs(dose_truth)
    # A record marked as a duplicate points at the record kept; chains (a
    # third report of the same event) are followed to the consolidated dose,
    # and every two records that end at the same one count as a found pair.
    parent = {row.id: row.duplicate_of for row in doses}

    def consolidated(dose_id: int) -> int:
        seen = 0
        while parent.get(dose_id) is not None and seen < 100:
            dose_id = parent[dose_id]
            seen += 1
        return dose_id

    clusters: dict[object, list[str]] = defaultdict(list)
    for row in doses:
        clusters[consolidated(row.id)].append(str(row.id))
    dose_found = _pairs(clusters)
    dose_tp = len(dose_true_pairs & dose_found)
    dose_precision = dose_tp / len(dose_found) if dose_found else 1.0
    dose_recall = dose_tp / len(dose_true_pairs) if dose_true_pairs else 1.0
    patients_of: dict[int, set[object]] = defaultdict(set)
    for _m, control, person_id in messages:
        if control in patient_of:
            patients_of[person_id].add(patient_of[control])
    merged: dict[str, int] = defaultdict(int)
    kinds: dict[str, int] = defaultdict(int)
    for a, b, kind in lookalikes:
        kinds[kind] += 1
        if patients_of[a] & patients_of[b]:
            merged[kind] += 1
    strangers = ", ".join(
        f"{kind} {kinds[kind]} pairs, {merged[kind]} merged automatically"
        for kind in sorted(kinds)
    )
    lines = [
        header(),
        f"generated {len(persons)} persons, {len(messages)} VXU from {len(CLINICS)} clinics; loaded in {elapsed:.0f} s; review queue {dict(reviews)}; thresholds match {args.match} / possible {args.possible} bits",
        f"patient matching: precision {precision:.4f} ({tp} of {len(found_pairs)} merged pairs right), recall {recall:.4f} ({tp} of {len(true_pairs)} true pairs found); targets 0.9995 / 0.97",
        f"look-alike strangers (other clinics): {strangers}; target 0 merged",
        f"dose de-duplication: precision {dose_precision:.4f} ({dose_tp} of {len(dose_found)}), recall {dose_recall:.4f} ({dose_tp} of {len(dose_true_pairs)}); targets 0.995 / 0.98",
    ]
    if args.explain:
        person_of = {control: person_id for _m, control, person_id in messages}
        person_of_patient = {
            patient_of[c]: p for c, p in person_of.items() if c in patient_of
        }
        buckets: dict[tuple[str, bool], list[float]] = defaultdict(list)
        for control, candidate, outcome, score, reasons in decisions:
            same = person_of_patient.get(candidate) == person_of.get(control)
            buckets[(outcome, same)].append(score)
            if (outcome == "match" and not same) or (
                outcome != "match" and same and args.explain > 1
            ):
                lines.append(f"  {outcome} same={same} score={score:.3f}: {reasons}")
        rejected = [c for c in person_of if c not in patient_of]
        lines.append(f"  messages not stored (rejected): {len(rejected)}")
        split: dict[int, set[object]] = defaultdict(set)
        for control, person_id in person_of.items():
            if control in patient_of:
                split[person_id].add(patient_of[control])
        apart = {p for p, patients in split.items() if len(patients) > 1}
        lines.append(f"  persons split over several patients: {len(apart)}")
        if args.explain > 1:
            for control, reason in all_reasons:
                if person_of.get(control) in apart:
                    lines.append(f"  split {person_of[control]} {control}: {reason}")
        for (outcome, same), scores in sorted(buckets.items()):
            scores.sort()
            lines.append(
                f"  {outcome:<8} same person={same!s:<5} n={len(scores):>5} min {scores[0]:.3f} median {scores[len(scores) // 2]:.3f} max {scores[-1]:.3f}"
            )
    for line in lines:
        print(line, flush=True)
    return lines


def main() -> None:
    """Command line."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--patients", type=int, default=20000)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--match", type=float, default=MATCH_THRESHOLD)
    parser.add_argument("--possible", type=float, default=POSSIBLE_THRESHOLD)
    parser.add_argument(
        "--lookalikes",
        type=float,
        default=0.02,
        help="share of draws that add a look-alike stranger pair (a quarter as many boy/girl pairs)",
    )
    parser.add_argument(
        "--explain",
        action="count",
        default=0,
        help="score distributions (twice: every miss)",
    )
    run(parser.parse_args())


if __name__ == "__main__":
    main()
