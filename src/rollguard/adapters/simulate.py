"""``rollguard simulate``: the simulator's traffic as v1 events, to a file or to a Kafka topic at a rate.

What is simulated: a built-in scenario (``--scenario``, default ``aa``: the canary behaves like the
control), at ``--rate`` requests/s for ``--duration``, with a ``--canary-weight`` split, plus any
number of injected changes::

    --inject 'error_rate=0.08@10m:input_class=coding'     # set a rate from minute 10, in one segment
    --inject 'latency*1.3@5m:input_class=billing'          # multiply (latency, ttft, tokens_out, cost)
    --inject 'eval_score+-0.05@0'                          # add (quality), everywhere, from the start

i.e. ``METRIC`` (one of :data:`rollguard.sim.INJECTION_METRICS`), ``=`` set / ``*`` multiply / ``+``
add, the size, ``@ONSET`` (``90``, ``90s``, ``10m``, ``1h``; default 0) and ``:DIM=VALUE[,DIM=VALUE]``
for a cohort (default: every segment). The new version (canary and shadow arms) gets the change.

``--control-only 10m`` starts the canary ten minutes in: before it every request goes to control, so
that each cohort has its baseline before any traffic moves (times of ``--inject`` stay counted from the
start). ``--control-parts model=m-1,prompt=p6 --canary-parts model=m-2,prompt=p7`` writes
``variant_parts`` on every event (shadow copies carry the canary's), e.g. to show a bundled change.

To a file the events keep the scenario's own timestamps (deterministic: the same arguments give the
same bytes), unless ``--start now|EPOCH``. To Kafka they carry present-day timestamps (the traffic
starts now), so that command expiries mean something to a controller's clock, and they are sent at
the pace of their timestamps divided by ``--speed`` (1: real time; 60: an hour in a minute; 0: as fast
as the broker takes them), keyed by rollout id.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Final

import orjson

from rollguard.adapters.kafka_clients import BOOTSTRAP_DEFAULT, CONFIG_HELP, KafkaSetupError, load_connection
from rollguard.adapters.kafka_security import KafkaSecurity
from rollguard.settings.config import ConfigError
from rollguard.sim import (
    INJECTION_METRICS,
    Injection,
    Scenario,
    ScenarioError,
    VariantParts,
    generate,
    get_scenario,
)

_INJECT: Final = re.compile(
    r"(?P<metric>[a-z_]+)(?P<op>[=*+])(?P<value>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)"
    r"(?:@(?P<onset>\d+(?:\.\d+)?)(?P<unit>s|m|min|h)?)?(?::(?P<cohort>.+))?"
)
_UNITS: Final = {None: 1.0, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}
_MODES: Final = {"=": "set", "*": "multiply", "+": "add"}


def parse_injection(text: str) -> Injection:
    """One ``--inject`` argument as an :class:`~rollguard.sim.Injection` (checked by the scenario later).

    >>> i = parse_injection("error_rate=0.08@10m:input_class=coding")
    >>> (i.metric, i.value, i.mode, i.start_s, i.cohort)
    ('error_rate', 0.08, 'set', 600.0, {'input_class': 'coding'})
    >>> parse_injection("latency*1.3").mode, parse_injection("eval_score+-0.05@90").start_s
    ('multiply', 90.0)
    """
    m = _INJECT.fullmatch(text.strip())
    if m is None:
        raise argparse.ArgumentTypeError(
            f"not an injection: {text!r} (METRIC=|*|+VALUE[@ONSET][:DIM=VALUE,...], "
            "e.g. error_rate=0.08@10m:input_class=coding)"
        )
    if m["metric"] not in INJECTION_METRICS:
        raise argparse.ArgumentTypeError(
            f"unknown metric {m['metric']!r}: one of {', '.join(sorted(INJECTION_METRICS))}"
        )
    cohort: dict[str, str] = {}
    for part in (m["cohort"] or "").split(","):
        if not part:
            continue
        dim, sep, value = part.partition("=")
        if not sep or not dim or not value:
            raise argparse.ArgumentTypeError(f"{text!r}: the cohort is DIM=VALUE[,DIM=VALUE], got {part!r}")
        cohort[dim.strip()] = value.strip()
    onset = float(m["onset"] or 0.0) * _UNITS[m["unit"]]
    where = ",".join(f"{k}={v}" for k, v in sorted(cohort.items())) or "everywhere"
    change = {"=": f"set to {m['value']}", "*": f"×{m['value']}", "+": f"{float(m['value']):+g}"}[m["op"]]
    label = f"{m['metric']} {change} from minute {onset / 60:g} in {where}"
    return Injection(m["metric"], float(m["value"]), onset, cohort=cohort, mode=_MODES[m["op"]], label=label)


def duration(text: str) -> float:
    """``1800``, ``30m``, ``2h`` → seconds."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(s|m|min|h)?", text.strip())
    if m is None:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (e.g. 1800, 30m, 2h)")
    return float(m.group(1)) * _UNITS[m.group(2)]


def parts(text: str) -> dict[str, str]:
    """``model=m-2,prompt=p7`` → ``{"model": "m-2", "prompt": "p7"}`` (checked by the scenario later).

    >>> parts("model=m-2026-01, prompt=p7")
    {'model': 'm-2026-01', 'prompt': 'p7'}
    """
    out: dict[str, str] = {}
    for item in text.split(","):
        name, sep, value = item.partition("=")
        if not sep or not name.strip() or not value.strip():
            raise argparse.ArgumentTypeError(f"not variant parts: {text!r} (NAME=VALUE[,NAME=VALUE], "
                                             "e.g. model=m-2026-01,prompt=p7)")  # fmt: skip
        out[name.strip()] = value.strip()
    return out


def build_scenario(args: argparse.Namespace, start_ts: float | None) -> Scenario:
    knobs: dict[str, Any] = {"seed": args.seed, "duration_s": args.duration, "rate_per_s": args.rate}
    if args.canary_weight is not None:
        knobs["canary_weight"] = args.canary_weight
    try:
        sc = get_scenario(args.scenario, **knobs)
    except KeyError as exc:
        raise ScenarioError(str(exc.args[0])) from None
    except TypeError as exc:  # a scenario without one of the knobs
        raise ScenarioError(f"scenario {args.scenario!r}: {exc}") from None
    sc.injections.extend(args.inject)
    sc.control_only_s = args.control_only
    if (args.control_parts is None) != (args.canary_parts is None):
        raise ScenarioError("variant parts: give both --control-parts and --canary-parts")
    if args.control_parts is not None:
        sc.variant_parts = VariantParts(args.control_parts, args.canary_parts)
    if args.rollout_id:
        sc.rollout_id = args.rollout_id
    if start_ts is not None:
        sc.start_ts = start_ts
    sc.validate()
    return sc


def send_paced(
    events: Iterator[dict[str, Any]],
    send: Callable[[bytes, bytes], None],
    *,
    start_ts: float,
    speed: float,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    tick: Callable[[int, float], None] | None = None,
) -> int:
    """Send each event when its time comes (event time from ``start_ts``, divided by ``speed``)."""
    t0 = clock()
    n = 0
    for ev in events:
        if speed > 0:
            due = t0 + (float(ev["ts"]) - start_ts) / speed
            ahead = due - clock()
            if ahead > 0.005:
                sleep(ahead)
        send(str(ev["rollout_id"]).encode(), orjson.dumps(ev))
        n += 1
        if tick is not None and not n % 500:
            tick(n, float(ev["ts"]) - start_ts)
    return n


def run_simulate(args: argparse.Namespace) -> int:
    """The CLI entry point: 0 done, 2 bad arguments, 1 Kafka or the file failed."""
    connection = None
    if args.bootstrap is not None or not args.out:  # Kafka asked for, or the config's Kafka by default
        try:
            connection = load_connection(args.config, args.bootstrap)
        except ConfigError as exc:
            for line in exc.lines():
                print(f"rollguard: bad config: {line}", file=sys.stderr)
            return 2
        except KafkaSetupError as exc:
            print(f"rollguard: {exc}", file=sys.stderr)
            return 2
    to_kafka = connection is not None and connection.bootstrap is not None
    if not to_kafka and not args.out:
        print("rollguard: say where to: --out FILE (or -) or --bootstrap HOST:PORT", file=sys.stderr)
        return 2
    start = args.start
    start_ts = (
        time.time() if (start == "now" or (start is None and to_kafka)) else (float(start) if start else None)
    )
    try:
        sc = build_scenario(args, start_ts)
    except (ScenarioError, ValueError) as exc:
        print(f"rollguard: bad scenario: {exc}", file=sys.stderr)
        return 2
    what = (
        f"{sc.name} ({sc.rollout_id}): {sc.arrivals.rate_per_s:g} requests/s for {sc.duration_s / 60:g} min, "
        f"canary weight {sc.weight_at(sc.control_only_s):g}"
        + (f" from minute {sc.control_only_s / 60:g} (control only before)" if sc.control_only_s else "")
        + "".join(f"; {i.label or i.metric}" for i in sc.injections)
    )
    try:
        if not to_kafka:
            n = _to_file(sc, args.out)
            print(
                f"simulated {what}: {n} events -> {args.out}",
                file=sys.stderr if args.out == "-" else sys.stdout,
            )
            return 0
        assert connection is not None and connection.bootstrap is not None
        n = _to_kafka(sc, args, connection.bootstrap, connection.security)
    except KeyboardInterrupt:
        print("rollguard: simulate stopped", file=sys.stderr)
        return 130
    except OSError as exc:
        print(
            f"rollguard: simulate stopped: {exc.strerror or exc} ({getattr(exc, 'filename', '')})",
            file=sys.stderr,
        )
        return 1
    except Exception as exc:  # the broker: one line
        print(f"rollguard: simulate stopped: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(f"simulated {what}: {n} events -> {args.topic_name} at {connection.bootstrap}")
    return 0


def _to_file(sc: Scenario, out: str) -> int:
    dumps, opt = orjson.dumps, orjson.OPT_APPEND_NEWLINE
    n = 0
    if out == "-":
        write = sys.stdout.buffer.write
        for ev in generate(sc):
            write(dumps(ev, option=opt))
            n += 1
        sys.stdout.buffer.flush()
        return n
    with open(Path(out), "wb", buffering=1 << 20) as fh:
        for ev in generate(sc):
            fh.write(dumps(ev, option=opt))
            n += 1
    return n


def _to_kafka(sc: Scenario, args: argparse.Namespace, bootstrap: str, security: KafkaSecurity) -> int:
    from rollguard.adapters.kafka_clients import producer as kafka_producer
    from rollguard.adapters.topic_contracts import load_topics, topic_for_role

    topic = args.topic or topic_for_role(load_topics(args.topics_dir), "events").name
    args.topic_name = topic
    producer = kafka_producer(
        bootstrap, security, acks="all", linger_ms=20, batch_size=256 * 1024, client_id="rollguard-simulate"
    )
    failures: list[BaseException] = []

    def send(key: bytes, value: bytes) -> None:
        if failures:
            raise RuntimeError(f"the broker refused an event: {failures[0]}")
        producer.send(topic, key=key, value=value).add_errback(failures.append)

    tick = None
    if sys.stderr.isatty():
        t_start = time.monotonic()

        def tick(n: int, sim_s: float) -> None:
            rate = n / max(time.monotonic() - t_start, 1e-6)
            print(f"\r{n:,} events sent, t+{sim_s / 60:.1f} min, {rate:,.0f}/s ", end="", file=sys.stderr)

    try:
        n = send_paced(generate(sc), send, start_ts=sc.start_ts, speed=args.speed, tick=tick)
        producer.flush(timeout=60)
    finally:
        producer.close(timeout=10)
        if tick is not None:
            print(file=sys.stderr)
    if failures:
        raise RuntimeError(f"the broker refused an event: {failures[0]}")
    return n


def add_simulate_parser(sub: Any) -> None:
    p = sub.add_parser("simulate", help="the simulator's traffic to a file, or to a Kafka topic at a rate")
    p.add_argument("--scenario", default="aa", help="built-in scenario (default aa: no change)")
    p.add_argument("--rate", type=float, default=40.0, help="requests per second (default 40)")
    p.add_argument("--duration", type=duration, default=1800.0, help="simulated time, e.g. 30m (default)")
    p.add_argument("--canary-weight", type=float, default=None, help="canary share of units (default 0.1)")
    p.add_argument("--inject", type=parse_injection, action="append", default=[], metavar="SPEC",
                   help="a change: METRIC=|*|+VALUE[@ONSET][:DIM=VALUE,...], "
                   "e.g. error_rate=0.08@10m:input_class=coding (repeat for several)")  # fmt: skip
    p.add_argument("--control-only", type=duration, default=0.0, metavar="DURATION",
                   help="a control-only period before the canary starts, e.g. 10m (default 0)")  # fmt: skip
    p.add_argument("--control-parts", type=parts, default=None, metavar="NAME=VALUE,...",
                   help="variant_parts of control's events, e.g. model=m-1,prompt=p6 "
                   "(with --canary-parts)")  # fmt: skip
    p.add_argument("--canary-parts", type=parts, default=None, metavar="NAME=VALUE,...",
                   help="variant_parts of the canary's (and shadow) events, "
                   "e.g. model=m-2,prompt=p7")  # fmt: skip
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--rollout-id", default=None, help="default: SCENARIO-SEED")
    p.add_argument("--out", default=None, metavar="FILE", help="write JSON lines here (- for stdout)")
    p.add_argument(
        "--bootstrap", default=None,
        help="send to Kafka instead (HOST:PORT), present-day timestamps "
        f"(without --out: {BOOTSTRAP_DEFAULT})",
    )  # fmt: skip
    p.add_argument("--config", default=None, help=CONFIG_HELP)
    p.add_argument("--topic", default=None, help="default: the events topic of the topic contracts")
    p.add_argument("--topics-dir", default=None, help="topic contract directory (default: topics/)")
    p.add_argument("--speed", type=float, default=1.0,
                   help="simulated seconds per wall second to Kafka (1: real time; 0: at once)")  # fmt: skip
    p.add_argument(
        "--start", default=None, help="first event time: now or epoch seconds (file default: the scenario's)"
    )
    p.set_defaults(handler=run_simulate)
