"""``rollguard demo --kafka``: the whole loop on a real broker, told as the same story as ``rollguard demo``.

simulator → ``rollguard.events`` → ``rollguard worker`` → alert topics and commands on
``rollguard.control`` → ``rollguard controller flagd`` (edits a flagd flags file) → acks on
``rollguard.acks`` → the worker. Every piece is the real command, run as its own process; the demo
starts the project's local broker (``scripts/kafka.sh``, a fresh data directory, a free port) unless
``--bootstrap`` names one (then its topics get a prefix of their own, so nothing else is touched), and
stops everything it started at the end. The story is read from the topics as records arrive and from
the worker's ``/status`` (the live table); at the end the dashboard page is saved next to the flags file.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any, Final

import httpx
import orjson
import yaml
from rich.console import Console

from rollguard.adapters.topic_contracts import default_topics_dir, load_topics, topic_for_role
from rollguard.demo import demo_scenario, intro_of
from rollguard.policy.policy import OPERATOR_ACTIONS
from rollguard.terminal.story import StoryEvent, StoryTeller, story_console

ROOT: Final = Path(__file__).resolve().parents[2]
KAFKA_SH: Final = ROOT / "scripts" / "kafka.sh"
ROLES: Final = ("events", "control", "acks", "alerts.critical", "alerts.warning", "alerts.info")


class DemoError(RuntimeError):
    """What stopped the demo, in one line."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cli(*argv: str) -> list[str]:
    return [sys.executable, "-m", "rollguard.cli", *argv]


@contextmanager
def local_broker(workdir: Path, console: Console) -> Iterator[str]:
    """The project's broker (scripts/kafka.sh) on a free port with a data directory of its own."""
    if not KAFKA_SH.exists():
        raise DemoError(f"{KAFKA_SH} not found: run from a checkout, or pass --bootstrap HOST:PORT")
    port, data = _free_port(), workdir / "kafka-data"
    with console.status(f"starting Kafka on 127.0.0.1:{port} (scripts/kafka.sh)"):
        proc = subprocess.run([str(KAFKA_SH), "start", "--port", str(port), "--data-dir", str(data)],
                              capture_output=True, text=True, timeout=600, check=False)  # fmt: skip
    if proc.returncode != 0:
        raise DemoError(f"scripts/kafka.sh start failed: {proc.stderr.strip().splitlines()[-1:]}")
    try:
        yield f"127.0.0.1:{port}"
    finally:
        subprocess.run([str(KAFKA_SH), "stop", "--data-dir", str(data)], capture_output=True, timeout=120,
                       check=False)  # fmt: skip


def prefixed_contracts(directory: Path, prefix: str) -> Path:
    """The project's topic contracts with every topic name prefixed (a demo on a shared cluster)."""
    source = default_topics_dir()
    directory.mkdir(parents=True, exist_ok=True)
    shutil.copytree(source / "schemas", directory / "schemas", dirs_exist_ok=True)
    for path in sorted(source.glob("*.yaml")):
        doc = yaml.safe_load(path.read_text())
        doc["name"] = f"{prefix}.{doc['name']}"
        (directory / f"{doc['name']}.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    return directory


@contextmanager
def _process(
    argv: list[str], log: Path, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """A child process of the demo, stopped (SIGTERM, then SIGKILL) when the demo ends."""
    with open(log, "wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env)
        try:
            yield proc
        finally:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=10)


def _wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log.read_text(errors="replace").strip().splitlines()[-3:]
            raise DemoError(f"the worker exited with {proc.returncode}: {' | '.join(tail)}")
        try:
            if httpx.get(url, timeout=1.0).json().get("status") == "ready":
                return
        except (httpx.HTTPError, ValueError):
            pass
        time.sleep(0.3)
    raise DemoError(f"the worker was not ready after {timeout:.0f} s (log: {log})")


def _point_of(rollout: dict[str, Any]) -> dict[str, Any] | None:
    """A timeline point (as the story reads them) from the worker's /status of one rollout."""
    snapshot = rollout.get("snapshot")
    clock = rollout.get("clock")
    if snapshot is None or clock is None:
        return None
    signals: dict[str, dict[str, dict[str, str]]] = {}
    for entry in rollout.get("signals") or []:
        for check in entry["checks"]:
            if check["kind"] == "verdict":
                signals.setdefault(entry["cohort"], {}).setdefault(check["metric"], {})[check["window"]] = (
                    check["state"]
                )
    applied = int(rollout.get("applied_here") or 0) + int(rollout.get("duplicates") or 0)
    return {"at": float(clock), "clock": clock, "snapshot": snapshot, "signals": signals, "policy": rollout,
            "applied": applied}  # fmt: skip


def write_flag(path: Path, sc: Any) -> Path:
    """The flagd flags file the controller edits: the rollout's flag, split as the scenario routes."""
    weight = round(sc.weights[0].weight * 100)
    flag = {
        "state": "ENABLED",
        "variants": {"control": sc.control_variant, "canary": sc.canary_variant},
        "defaultVariant": "control",
        "targeting": {"fractional": [["canary", weight], ["control", 100 - weight]]},
        "metadata": {"version": "1"},
    }
    doc = {"$schema": "https://flagd.dev/schema/v0/flags.json", "flags": {sc.rollout_id: flag}}
    path.write_text(json.dumps(doc, indent=2) + "\n")
    return path


def describe_targeting(flag: dict[str, Any]) -> str:
    """A flagd flag's targeting in words (the reference controller's leading rules, then the split).

    >>> describe_targeting({"targeting": {"if": [{"and": [{"==": [{"var": "input_class"}, "coding"]}]},
    ...     "control", {"fractional": [["canary", 10], ["control", 90]]}]}})
    'input_class=coding → control; everything else → canary 10%, control 90%'
    """
    rules: list[str] = []
    node: Any = flag.get("targeting")
    while isinstance(node, dict) and "if" in node and len(node["if"]) == 3:
        cond, then, rest = node["if"]
        terms = cond.get("and", [cond]) if isinstance(cond, dict) else []
        parts = [f"{t['=='][0]['var']}={t['=='][1]}" for t in terms if isinstance(t, dict) and "==" in t]
        rules.append(f"{','.join(parts) or json.dumps(cond)} → {then}")
        node = rest
    if isinstance(node, dict) and "fractional" in node:
        weights = [w for w in node["fractional"] if isinstance(w, list) and len(w) == 2]
        total = sum(float(w[1]) for w in weights) or 1.0
        rest_text = ", ".join(f"{w[0]} {float(w[1]) / total:.0%}" for w in weights)
    else:
        rest_text = str(flag.get("defaultVariant")) if node in (None, {}) else json.dumps(node)
    return "; ".join([*rules, f"{'everything else' if rules else 'everyone'} → {rest_text}"])


def run_kafka_demo(
    scenario: str,
    minutes: float,
    seed: int,
    out_dir: str | Path,
    *,
    bootstrap: str | None = None,
    speed: float = 30.0,
    console: Console | None = None,
) -> int:
    console = console or story_console()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    try:
        with ExitStack() as stack:
            work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="rollguard-demo-")))
            if bootstrap is None:
                bootstrap = stack.enter_context(local_broker(work, console))
                topics_dir = default_topics_dir()
                where = f"the project's local broker at {bootstrap} (scripts/kafka.sh, stopped at the end)"
            else:
                topics_dir = prefixed_contracts(work / "topics", f"demo{int(time.time())}")
                where = f"{bootstrap} (topics prefixed for this run)"
            return _run(scenario, minutes, seed, out, bootstrap, topics_dir, speed, console, stack, where,
                        started)  # fmt: skip
    except DemoError as exc:
        console.print(f"rollguard: demo --kafka stopped: {exc}")
        return 1


def _run(
    scenario: str, minutes: float, seed: int, out: Path, bootstrap: str, topics_dir: Path, speed: float,
    console: Console, stack: ExitStack, where: str, started: float,
) -> int:  # fmt: skip
    specs = load_topics(str(topics_dir))
    names = {role: topic_for_role(specs, role).name for role in ROLES}
    created = subprocess.run(_cli("topics", "apply", "--bootstrap", bootstrap, "--dir", str(topics_dir)),
                             capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    if created.returncode not in (0, 2):
        raise DemoError(f"topics apply failed: {created.stderr.strip()}")
    run_id = time.strftime("%H%M%S")
    sc = demo_scenario(scenario, minutes, seed)
    sc.rollout_id = f"{sc.rollout_id}-{run_id}"
    sc.start_ts = time.time()
    # The flag the controller edits: the rollout's, 10% canary (as the scenario routes).
    flags = write_flag(out / "flags.json", sc)
    key = secrets.token_hex(16)
    (out / "command.key").write_text(key + "\n")
    os.chmod(out / "command.key", 0o600)
    port = _free_port()
    config = out / "rollguard.yaml"
    config.write_text(yaml.safe_dump({
        "worker": {"web_port": port, "idle_after_s": 3, "tick_s": 0.5, "app_id": f"rollguard-demo-{run_id}"},
    }))  # fmt: skip
    env = {**os.environ, "ROLLGUARD_SIGNING_KEY": key, "OPENBLAS_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    logs = out / "logs"
    logs.mkdir(exist_ok=True)
    n_events = int(sc.arrivals.rate_per_s * sc.duration_s)
    intro = intro_of(sc, n_events, f"{names['events']} at {where}", approximate=True)
    teller = StoryTeller(console, intro, controller="rollguard controller flagd")
    loop = (
        f"simulator → {names['events']} → rollguard worker → {names['alerts.critical']} …, "
        f"{names['control']} → rollguard controller flagd ({flags}) → {names['acks']} → the worker"
    )

    common = ["--bootstrap", bootstrap, "--topics-dir", str(topics_dir), "--log-level", "warning"]
    worker_argv = _cli("worker", *common, "--config", str(config), "--data-dir", str(out / "worker-data"))
    worker = stack.enter_context(_process(worker_argv, logs / "worker.log", env))
    # A group of this run's own: its topics are this run's, and a group shared with another run's
    # controller (other topics) would make every join wait on members that read something else.
    state = [
        "--state-dir",
        str(out / "controller-state"),
        "--group-id",
        f"rollguard-demo-{run_id}-controller",
    ]
    controller_argv = _cli("controller", "flagd", *common, "--flags", str(flags), "--key-file",
                           str(out / "command.key"), *state)  # fmt: skip
    stack.enter_context(_process(controller_argv, logs / "controller.log", env))
    base = f"http://127.0.0.1:{port}"
    with console.status("starting the worker and the controller"):
        _wait_ready(f"{base}/rollguard/health/", worker, 180, logs / "worker.log")

    from kafka.consumer import KafkaConsumer
    from kafka.structs import TopicPartition

    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, client_id="rollguard-demo"
    )
    parts = [TopicPartition(t, p) for role in ROLES if role != "events" for t in [names[role]]
             for p in sorted(consumer.partitions_for_topic(t) or [])]  # fmt: skip
    consumer.assign(parts)
    consumer.seek_to_end(*parts)
    for tp in parts:
        consumer.position(tp)

    from rollguard.adapters.simulate import send_paced
    from rollguard.sim import generate

    sent = [0]
    failure: list[BaseException] = []

    def simulate() -> None:
        from kafka.producer import KafkaProducer

        producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=20, client_id="demo-sim")
        try:

            def send(k: bytes, v: bytes) -> None:
                producer.send(names["events"], key=k, value=v)
                sent[0] += 1

            send_paced(generate(sc), send, start_ts=sc.start_ts, speed=speed)
            producer.flush(timeout=60)
        except BaseException as exc:  # reported by the main thread
            failure.append(exc)
        finally:
            producer.close(timeout=10)

    sim = threading.Thread(target=simulate, name="demo-simulator", daemon=True)
    teller.start()
    sim.start()
    teller.say(f"[bold]loop[/] {loop}")
    story = TopicStory(teller, names, sc.rollout_id, sc.start_ts)
    finished_at: float | None = None  # when the worker had applied every event sent
    last_poll = 0.0
    applied = 0
    http = httpx.Client(base_url=base, timeout=5.0)
    try:
        while True:
            for records in consumer.poll(timeout_ms=200).values():
                for rec in records:
                    story.record(rec.topic, rec.value)
            now = time.monotonic()
            if now - last_poll >= 0.5:
                last_poll = now
                point = _poll_point(http, sc.rollout_id)
                if point is not None:
                    story.clock = max(story.clock, point["at"])
                    teller.on(StoryEvent(point["at"], "point", point))
                    applied = point["applied"]
            if failure:
                raise DemoError(f"the simulator stopped: {failure[0]}")
            if not sim.is_alive() and finished_at is None and applied >= sent[0]:
                finished_at = now
            if finished_at is not None and now - finished_at > 6.0:  # the idle tick's batch, the last acks
                break
        story.flush()
        page = http.get("/", params={"static": "1"})
        dashboard = out / "dashboard.html"
        dashboard.write_text(page.text)
    finally:
        http.close()
        consumer.close()
    flag = json.loads(flags.read_text())["flags"][sc.rollout_id]
    version = flag["metadata"].get("version")
    teller.say(f"[bold]flag {sc.rollout_id}[/] (version {version}): {describe_targeting(flag)}")
    teller.say(
        "  (the simulator does not read the flag: an application evaluating it gets what this line says)"
    )
    outputs = [
        (
            "events, verdicts, alerts, commands, acks, audit",
            f"topics {', '.join(sorted(names.values()))} at {bootstrap}",
        ),
        ("the flag the controller edited", str(flags)),
        ("the controller's acks (SQLite)", str(out / "controller-state")),
        ("the dashboard as it was at the end (HTML)", f"{dashboard} ({dashboard.stat().st_size:,} bytes)"),
        ("worker and controller logs", str(logs)),
        ("the config the worker ran with", str(config)),
    ]
    teller.finish(outputs)
    console.print(f"\nsent {sent[0]:,} events in {time.monotonic() - started:.0f} s")
    return 0


def _poll_point(http: httpx.Client, rollout_id: str) -> dict[str, Any] | None:
    try:
        body = http.get("/status", params={"rollout": rollout_id}).json()
    except (httpx.HTTPError, ValueError):
        return None
    rollouts = body.get("rollouts") or []
    return _point_of(rollouts[0]) if rollouts else None


class TopicStory:
    """Tells the rollout's records as they are read from its topics, in the order a reader expects.

    Records of different topics arrive in no guaranteed order (one fetch per partition): the
    controller's ack of a command can be read before the command itself. An ack whose command has
    not been told yet is held until it is (or until :meth:`flush` at the end), so "ACK applied …"
    always follows the command it answers and names its action. Acks carry the controller's wall
    clock, not event time: they are told at the rollout's clock as far as the story knows it.
    """

    def __init__(self, teller: StoryTeller, names: dict[str, str], rollout_id: str, clock: float) -> None:
        self.teller = teller
        self.names = names
        self.rollout_id = rollout_id
        self.clock = clock
        self.told: set[str] = set()  # command ids told
        self.held: dict[str, list[dict[str, Any]]] = {}  # acks waiting for their command

    def record(self, topic: str, value: bytes | None) -> None:
        try:
            record = orjson.loads(value or b"")
        except orjson.JSONDecodeError:
            return
        if not isinstance(record, dict) or record.get("rollout_id") != self.rollout_id:
            return
        names = self.names
        if topic == names["acks"]:
            cid = str(record.get("command_id"))
            if cid in self.told:
                self._ack(record)
            else:
                self.held.setdefault(cid, []).append(record)
        elif topic == names["control"]:
            if record.get("kind") == "readiness":  # rollguard's pre-flight checklist
                self.clock = max(self.clock, float(record.get("at") or self.clock))
                self.teller.on(StoryEvent(self.clock, "readiness", record))
            elif record.get("action") not in OPERATOR_ACTIONS:  # its own commands (operators' are audited)
                self.clock = max(self.clock, float(record.get("issued_at") or self.clock))
                self.teller.on(StoryEvent(self.clock, "command", record))
                cid = str(record.get("command_id"))
                self.told.add(cid)
                for ack in self.held.pop(cid, []):
                    self._ack(ack)
        elif topic.startswith(names["alerts.critical"].rsplit(".", 1)[0]):
            self.clock = max(self.clock, float((record.get("notification") or {}).get("at") or self.clock))
            self.teller.on(StoryEvent(self.clock, "alert", record))

    def flush(self) -> None:
        """Tell the acks still held (their command was never read: told without its action)."""
        for acks in self.held.values():
            for ack in acks:
                self._ack(ack)
        self.held.clear()

    def _ack(self, record: dict[str, Any]) -> None:
        ack = {"type": "ack", "command_id": record.get("command_id"), "status": record.get("status"),
               "at": self.clock, "result": record.get("reason")}  # fmt: skip
        self.teller.on(StoryEvent(self.clock, "audit", ack))
