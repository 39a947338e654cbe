"""The Grafana dashboard's panels over a real load run, rendered to a PNG.

No Grafana server installs here (Debian has none, the npm registry only
its component library), so this draws the panels of
``contrib/grafana/cairn.json`` itself: it runs ``cairn serve`` with its
HTTP listener, scrapes ``/metrics`` every ``--interval`` seconds while the
load runs, and computes each panel's expression from the scrapes the way
PromQL would (``rate`` over a window, ``histogram_quantile`` by linear
interpolation inside the bucket). The panels and their titles come from the
dashboard file; a panel this script cannot draw is an error, so the two
cannot drift apart (tests/bench/test_dashboard.py checks it too).

The load, in three phases: patients with 5-30 doses each (for Z44), then
eight senders as fast as their ACKs come back, then a steady Poisson load
at ``--rate`` messages a second with one client sending Z44 queries beside
it. The traffic carries resends and a few bad messages (AE, AR).

Run: .venv/bin/python -m bench.dashboard [--messages 6000] [--rate 150]
     [--out contrib/grafana/cairn-dashboard.png]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench._common import ROOT, header
from bench.ingest import drive, split, start_server
from bench.synth import CHILD_DOSES, Synth

DASHBOARD = ROOT / "contrib" / "grafana" / "cairn.json"

#: (metric name, sorted label pairs) -> value
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@dataclass(frozen=True)
class Scrape:
    """One scrape of /metrics: seconds since the first, and every sample."""

    at: float
    samples: Samples

    def value(self, name: str, **labels: str) -> float:
        """One sample's value (0 when absent)."""
        return self.samples.get((name, tuple(sorted(labels.items()))), 0.0)

    def matching(
        self, name: str, **labels: str
    ) -> dict[tuple[tuple[str, str], ...], float]:
        """Every sample of ``name`` whose labels include ``labels``."""
        want = set(labels.items())
        return {
            key: value
            for (metric, key), value in self.samples.items()
            if metric == name and want <= set(key)
        }


def parse(text: str) -> Samples:
    """The samples of a Prometheus text page."""
    from prometheus_client.parser import text_string_to_metric_families

    return {
        (s.name, tuple(sorted(s.labels.items()))): float(s.value)
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def quantile(q: float, buckets: Sequence[tuple[float, float]]) -> float | None:
    """``histogram_quantile``: the q-quantile of cumulative (upper bound, count) buckets.

    Linear interpolation inside the bucket the rank falls in, the lowest
    bucket starting at 0; a rank in the +Inf bucket gives the highest finite
    bound (as PromQL does). None when the histogram is empty.
    """
    ordered = sorted(buckets)
    if not ordered or ordered[-1][1] <= 0:
        return None
    rank = q * ordered[-1][1]
    lower, below = 0.0, 0.0
    for bound, count in ordered:
        if count >= rank:
            if bound == float("inf"):
                return lower
            if count == below:
                return bound
            return lower + (bound - lower) * (rank - below) / (count - below)
        lower, below = bound, count
    return lower  # pragma: no cover - the last bucket holds every count


#: A panel series: (legend, times, values)
Series = tuple[str, list[float], list[float | None]]


class Panels:
    """The dashboard's expressions computed over a list of scrapes.

    Args:
        scrapes: in time order.
        window: the ``rate`` window in seconds.
    """

    def __init__(self, scrapes: Sequence[Scrape], window: float) -> None:
        self.scrapes = list(scrapes)
        self.window = window

    def _pairs(self) -> list[tuple[Scrape, Scrape]]:
        """(earlier, later) per scrape: the earliest one within the window before it."""
        out = []
        for i, later in enumerate(self.scrapes):
            earlier = next(
                (s for s in self.scrapes[:i] if later.at - s.at <= self.window + 1e-9),
                None,
            )
            if earlier is not None and later.at > earlier.at:
                out.append((earlier, later))
        return out

    def rate_by(self, name: str, by: str, **labels: str) -> list[Series]:
        """``sum by (by) (rate(name{labels}[window]))``."""
        keys = sorted(
            {
                dict(key).get(by, "")
                for s in self.scrapes
                for key in s.matching(name, **labels)
            }
        )
        out: list[Series] = []
        for key in keys:
            xs, ys = [], []
            for a, b in self._pairs():
                total = 0.0
                for sel, v in b.matching(name, **labels, **{by: key}).items():
                    total += v - a.samples.get((name, sel), 0.0)
                xs.append(b.at)
                ys.append(total / (b.at - a.at))
            out.append((key, xs, ys))
        return out

    def rate(self, name: str, **labels: str) -> tuple[list[float], list[float | None]]:
        """``sum(rate(name{labels}[window]))``."""
        xs, ys = [], []
        for a, b in self._pairs():
            now = sum(b.matching(name, **labels).values())
            then = sum(a.matching(name, **labels).values())
            xs.append(b.at)
            ys.append((now - then) / (b.at - a.at))
        return xs, ys

    def ratio(self, num: str, den: str) -> tuple[list[float], list[float | None]]:
        """``sum(rate(num)) / sum(rate(den))``; None where the denominator is 0."""
        xs, top = self.rate(num)
        _, bottom = self.rate(den)
        return xs, [
            (t / b) if t is not None and b else None
            for t, b in zip(top, bottom, strict=True)
        ]

    def histogram_quantile(
        self, q: float, name: str, **labels: str
    ) -> tuple[list[float], list[float | None]]:
        """``histogram_quantile(q, sum by (le) (rate(name_bucket{labels}[window])))``."""
        xs, ys = [], []
        for a, b in self._pairs():
            by_le: dict[float, float] = {}
            for key, v in b.matching(f"{name}_bucket", **labels).items():
                le = float(dict(key)["le"])
                by_le[le] = (
                    by_le.get(le, 0.0) + v - a.samples.get((f"{name}_bucket", key), 0.0)
                )
            xs.append(b.at)
            ys.append(quantile(q, list(by_le.items())))
        return xs, ys

    def gauge(self, name: str) -> tuple[list[float], list[float | None]]:
        """``sum(name)`` at each scrape."""
        return (
            [s.at for s in self.scrapes],
            [sum(s.matching(name).values()) for s in self.scrapes],
        )

    def increase(self, name: str, **labels: str) -> float:
        """``sum(increase(name{labels}[range]))`` over the whole run."""
        first, last = self.scrapes[0], self.scrapes[-1]
        return sum(last.matching(name, **labels).values()) - sum(
            first.matching(name, **labels).values()
        )


#: What each panel of contrib/grafana/cairn.json draws, by title: a stat
#: (text) or a list of series. Same expressions as the JSON's targets.
def _stat_cdsi(p: Panels) -> str:
    return (
        "yes"
        if p.scrapes[-1].value("cairn_cdsi_loaded") == 1
        else "NO: Z44 without forecast"
    )


def _stat_messages(p: Panels) -> str:
    return f"{p.increase('cairn_messages_total'):,.0f}"


def _stat_aa(p: Panels) -> str:
    total = p.increase("cairn_messages_total")
    aa = p.increase("cairn_messages_total", outcome="AA")
    return f"{100 * aa / total:.1f} %" if total else "-"


def _latency(p: Panels) -> list[Series]:
    out: list[Series] = []
    for q, path in (
        (0.5, "ingest"),
        (0.95, "ingest"),
        (0.99, "ingest"),
        (0.95, "query"),
    ):
        xs, ys = p.histogram_quantile(q, "cairn_ack_latency_seconds", path=path)
        out.append((f"{path} p{round(q * 100)}", xs, ys))
    return out


def _forecast(p: Panels) -> list[Series]:
    return [
        (f"p{round(q * 100)}", *p.histogram_quantile(q, "cairn_forecast_seconds"))
        for q in (0.5, 0.95)
    ]


def _errors_by_sender(p: Panels) -> list[Series]:
    """``topk(10, sum by (sender) (rate(...{outcome=~"AE|AR"})))``, ranked over the run."""
    summed: dict[str, tuple[list[float], list[float]]] = {}
    for outcome in ("AE", "AR"):
        for sender, xs, ys in p.rate_by(
            "cairn_messages_total", "sender", outcome=outcome
        ):
            _xs, total = summed.setdefault(sender, (xs, [0.0] * len(xs)))
            for i, y in enumerate(ys):
                total[i] += y or 0.0
    series: list[Series] = [
        (sender, xs, list[float | None](ys)) for sender, (xs, ys) in summed.items()
    ]
    return sorted(series, key=lambda s: -sum(v or 0.0 for v in s[2]))[:10]


PANELS: dict[str, Callable[[Panels], Any]] = {
    "CDSi data loaded": _stat_cdsi,
    "Messages answered (range)": _stat_messages,
    "Share answered AA (range)": _stat_aa,
    "Messages per second by outcome (MSA-1)": lambda p: p.rate_by(
        "cairn_messages_total", "outcome"
    ),
    "Messages per second by type": lambda p: p.rate_by(
        "cairn_messages_total", "message_type"
    ),
    "Errors (AE, AR) per second by sender": _errors_by_sender,
    "ACK latency": _latency,
    "Queue depth (waiting for the writer or a reader)": lambda p: [
        ("queued", *p.gauge("cairn_queue_depth"))
    ],
    "Writer busy (share of time)": lambda p: [
        ("writer", *p.rate("cairn_writer_busy_seconds_total"))
    ],
    "Group commit size (messages per transaction)": lambda p: [
        (
            "mean",
            *p.ratio("cairn_group_commit_size_sum", "cairn_group_commit_size_count"),
        )
    ],
    "Database errors per second by kind": lambda p: p.rate_by(
        "cairn_database_errors_total", "kind"
    ),
    "Forecast time (one Z44 patient)": _forecast,
}

_UNITS = {"s": "seconds", "reqps": "per second", "percentunit": "share", "short": ""}
_COLOURS = {
    "AA": "#73BF69",
    "AE": "#FF9830",
    "AR": "#F2495C",
    "none": "#8AB8FF",
}
_PALETTE = [
    "#73BF69",
    "#F2CC0C",
    "#8AB8FF",
    "#FF780A",
    "#F2495C",
    "#5794F2",
    "#B877D9",
    "#FADE2A",
]


def dashboard_panels(path: Path = DASHBOARD) -> list[dict[str, Any]]:
    """The panels of the Grafana dashboard, in layout order."""
    panels = json.loads(path.read_text())["panels"]
    return sorted(panels, key=lambda p: (p["gridPos"]["y"], p["gridPos"]["x"]))


def render(scrapes: Sequence[Scrape], out: Path, *, window: float, note: str) -> None:
    """Draw every panel of the dashboard over ``scrapes`` into a PNG, laid out as in Grafana."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = dashboard_panels()
    missing = [p["title"] for p in panels if p["title"] not in PANELS]
    if missing:
        raise SystemExit(f"bench.dashboard cannot draw these panels: {missing}")
    data = Panels(scrapes, window)
    rows = max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in panels)
    fig = plt.figure(figsize=(18, 2.4 + rows * 0.6), facecolor="#111217")
    grid = fig.add_gridspec(
        rows, 24, hspace=2.2, wspace=0.8, top=0.95, bottom=0.05, left=0.04, right=0.99
    )
    fig.suptitle(
        f"Cairn engine  ·  {note}", color="#ccccdc", fontsize=13, x=0.01, ha="left"
    )
    for panel in panels:
        pos = panel["gridPos"]
        ax = fig.add_subplot(
            grid[pos["y"] : pos["y"] + pos["h"], pos["x"] : pos["x"] + pos["w"]]
        )
        ax.set_facecolor("#181b1f")
        for spine in ax.spines.values():
            spine.set_color("#2c3235")
        ax.set_title(panel["title"], color="#ccccdc", fontsize=10, loc="left")
        result = PANELS[panel["title"]](data)
        if panel["type"] == "stat":
            ax.set_xticks([])
            ax.set_yticks([])
            bad = result.startswith("NO")
            ax.text(
                0.5,
                0.42,
                result,
                ha="center",
                va="center",
                fontsize=22,
                color="#F2495C"
                if bad
                else "#73BF69"
                if panel["title"] == "CDSi data loaded"
                else "#ccccdc",
                transform=ax.transAxes,
                weight="bold",
            )
            continue
        unit = panel["fieldConfig"]["defaults"].get("unit", "short")
        stacked = (
            panel["fieldConfig"]["defaults"]["custom"]["stacking"]["mode"] == "normal"
        )
        scale = 1000.0 if unit == "s" else 100.0 if unit == "percentunit" else 1.0
        label = {"s": "ms", "percentunit": "%"}.get(unit, _UNITS.get(unit, ""))
        base: list[float] | None = None
        for n, (legend, xs, ys) in enumerate(result):
            colour = _COLOURS.get(legend, _PALETTE[n % len(_PALETTE)])
            values = [float("nan") if y is None else y * scale for y in ys]
            if stacked:
                lower = base if base is not None else [0.0] * len(values)
                upper = [
                    lo + (0.0 if v != v else v)
                    for lo, v in zip(lower, values, strict=True)
                ]
                ax.fill_between(xs, lower, upper, color=colour, alpha=0.35, linewidth=0)
                ax.plot(xs, upper, color=colour, linewidth=1.2, label=legend or "-")
                base = upper
            else:
                ax.plot(xs, values, color=colour, linewidth=1.4, label=legend or "-")
        ax.tick_params(colors="#9fa7b3", labelsize=8)
        ax.grid(color="#2c3235", linewidth=0.6)
        ax.set_ylabel(label, color="#9fa7b3", fontsize=8)
        if pos["y"] + pos["h"] == rows:
            ax.set_xlabel("seconds into the run", color="#9fa7b3", fontsize=8)
        ax.set_ylim(bottom=0)
        if result:
            ax.legend(
                loc="upper left",
                fontsize=7,
                facecolor="#181b1f",
                edgecolor="#2c3235",
                labelcolor="#ccccdc",
                ncol=min(4, len(result)),
            )
        else:
            ax.text(
                0.5,
                0.5,
                "No data",
                ha="center",
                va="center",
                color="#9fa7b3",
                transform=ax.transAxes,
            )
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=80, facecolor=fig.get_facecolor())
    plt.close(fig)


class Scraper:
    """Scrapes /metrics every ``interval`` seconds on a thread until stopped."""

    def __init__(self, url: str, interval: float) -> None:
        self.url = url
        self.interval = interval
        self.scrapes: list[Scrape] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._t0 = 0.0

    def start(self) -> None:
        """Take the first scrape now, then one every interval."""
        self._t0 = time.monotonic()
        self._thread.start()

    def stop(self) -> list[Scrape]:
        """Stop, after one last scrape."""
        self._stop.set()
        self._thread.join(30)
        self._scrape()
        return self.scrapes

    def _scrape(self) -> None:
        # An http:// URL this script built (the server it started).
        with urllib.request.urlopen(self.url, timeout=10) as reply:  # noqa: S310
            text = reply.read().decode()
        self.scrapes.append(Scrape(time.monotonic() - self._t0, parse(text)))

    def _run(self) -> None:
        while not self._stop.is_set():
            self._scrape()
            self._stop.wait(self.interval)


def _shown(path: Path) -> str:
    """A path as the results file shows it: relative to the checkout when inside it."""
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run(args: argparse.Namespace) -> list[str]:
    """Run the load with the scraper beside it; draw the PNG; return the result lines."""
    lines = [header()]
    synth = Synth(seed=41)
    patients, loads = [], []
    for i in range(args.patients):
        person = synth.person()
        doses = synth.doses_for(person, count=min(5 + i % 26, len(CHILD_DOSES)))
        mrn = f"D{person.person_id:07d}"
        loads.append(synth.vxu(person, doses, sender="CLINIC1", mrn=mrn).text.encode())
        patients.append((person, mrn))
    traffic = [
        s.text.encode()
        for s in synth.traffic(args.messages, duplicate_share=0.02, bad_share=0.03)
    ]
    fast, steady = traffic[: args.messages // 2], traffic[args.messages // 2 :]
    cdsi = os.environ.get(
        "CAIRN_CDSI_DIR", str(ROOT.parent / "shared" / "cdsi" / "supporting-data")
    )
    http = f"127.0.0.1:{_free_port()}"
    with tempfile.TemporaryDirectory() as tmp:
        server = start_server(
            Path(tmp), extra_env={"CAIRN_CDSI_DIR": cdsi, "CAIRN_HTTP__LISTEN": http}
        )
        scraper = Scraper(f"http://{http}/metrics", args.interval)
        try:
            scraper.start()
            time.sleep(2 * args.interval)  # an idle start
            drive(server, split(loads, 4))
            drive(server, split(fast, 8))
            done = threading.Event()

            def queries() -> None:
                from engine.client import MllpSender

                with MllpSender(server.host, server.port, timeout=60) as client:
                    n = 0
                    while not done.is_set():
                        person, mrn = patients[n % len(patients)]
                        client.send(
                            synth.z44(
                                person, sender="CLINIC1", mrn=mrn, limit=1
                            ).encode()
                        )
                        n += 1
                        done.wait(1 / args.query_rate)

            querier = threading.Thread(target=queries, daemon=True)
            querier.start()
            drive(
                server,
                split(steady, 8),
                rate_per_sender=args.rate / 8,
                arrivals="poisson",
            )
            done.set()
            querier.join(60)
            time.sleep(2 * args.interval)  # an idle end
            scrapes = scraper.stop()
        finally:
            server.stop()
    data = Panels(scrapes, args.window)
    last = scrapes[-1]
    total = data.increase("cairn_messages_total")
    outcomes = {
        dict(key)["outcome"]: 0.0 for key in last.matching("cairn_messages_total")
    }
    for key, value in last.matching("cairn_messages_total").items():
        outcomes[dict(key)["outcome"]] += value

    def whole(q: float, name: str, **labels: str) -> float:
        found = quantile(
            q,
            [
                (float(dict(k)["le"]), v)
                for k, v in last.matching(f"{name}_bucket", **labels).items()
            ],
        )
        return (found or 0.0) * 1000

    note = (
        f"{total:,.0f} messages in {last.at:.0f} s: {len(loads)} patients with history, "
        f"{len(fast):,} VXU from 8 senders at full speed, then {len(steady):,} at "
        f"{args.rate:.0f}/s (Poisson) with Z44 queries beside them"
    )
    render(scrapes, Path(args.out), window=args.window, note=note)
    lines.append(
        f"dashboard run: {note}; answers {dict(sorted((k, int(v)) for k, v in outcomes.items()))}; "
        f"ingest ACK p50 {whole(0.5, 'cairn_ack_latency_seconds', path='ingest'):.1f} ms, "
        f"p99 {whole(0.99, 'cairn_ack_latency_seconds', path='ingest'):.1f} ms (from the histogram); "
        f"mean group commit {last.value('cairn_group_commit_size_sum') / max(1.0, last.value('cairn_group_commit_size_count')):.1f}; "
        f"forecast p50 {whole(0.5, 'cairn_forecast_seconds'):.1f} ms; "
        f"{len(scrapes)} scrapes; panels drawn to {_shown(Path(args.out))}"
    )
    print(lines[-1], flush=True)
    return lines


def main() -> None:
    """Command line."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--messages", type=int, default=6000, help="VXUs of the two load phases"
    )
    parser.add_argument(
        "--patients", type=int, default=100, help="patients with history, for Z44"
    )
    parser.add_argument(
        "--rate", type=float, default=150.0, help="steady phase: messages a second"
    )
    parser.add_argument(
        "--query-rate",
        type=float,
        default=10.0,
        help="Z44 queries a second in the steady phase",
    )
    parser.add_argument(
        "--interval", type=float, default=1.0, help="seconds between scrapes"
    )
    parser.add_argument(
        "--window", type=float, default=5.0, help="rate window, seconds"
    )
    parser.add_argument(
        "--out",
        default=str(ROOT / "contrib" / "grafana" / "cairn-dashboard.png"),
        help="the PNG to write",
    )
    run(parser.parse_args())


if __name__ == "__main__":
    main()
