"""``rollguard preflight ROLLOUT``: is this rollout ready, and if not, what is missing?

The readiness of a rollout is computed by the core (:mod:`rollguard.policy.readiness`) and published by
the worker as signed ``kind: readiness`` records on the control topic whenever it changes; the worker's
``/status`` shows the current one too. This command reads it — from the control topic (the record with
the highest ``sequence`` for the rollout; its signature checked when the command signing key is known)
or, with ``--status-url``, from a worker — prints the checklist (each check's mode, state, evidence and
what would satisfy it) and exits **0 only when the rollout is ready** (1 not ready, 3 nothing known about
it yet, 2 a usage or config error), so a deploy script can gate the ramp on it.

``--rehearse`` asks for a new revert rehearsal first: a signed operator action (``rehearse_revert``, with
the operator's key, as ``rollguard operator`` sends them) on the control topic; the worker's policy then
issues a fresh dry-run rollback, and the command waits (``--wait``) for the readiness that follows its
answer.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from typing import Any, Final

import orjson

from rollguard.adapters.kafka_clients import (
    BOOTSTRAP_DEFAULT,
    PLAINTEXT,
    KafkaSetupError,
    connection_from,
    consumer,
    producer,
)
from rollguard.adapters.kafka_security import KafkaSecurity
from rollguard.policy.commands.signing import verify_command

EXIT_READY: Final = 0
EXIT_NOT_READY: Final = 1
EXIT_USAGE: Final = 2
EXIT_UNKNOWN: Final = 3
REHEARSE_ACTION: Final = "rehearse_revert"


class PreflightError(ValueError):
    """Something the user must fix (bad argument, unreadable config or key): one line, exit 2."""


def latest_record(records: Sequence[Mapping[str, Any]], rollout_id: str) -> dict[str, Any] | None:
    """The rollout's current readiness among control-topic records: the highest ``sequence``.

    >>> latest_record([{"kind": "readiness", "rollout_id": "a", "sequence": 2, "ready": True},
    ...                {"kind": "readiness", "rollout_id": "a", "sequence": 1, "ready": False},
    ...                {"action": "rollback", "rollout_id": "a"}], "a")["sequence"]
    2
    """
    best: dict[str, Any] | None = None
    for rec in records:
        if rec.get("kind") != "readiness" or rec.get("rollout_id") != rollout_id:
            continue
        seq = rec.get("sequence")
        if isinstance(seq, int) and (best is None or seq > int(best["sequence"])):
            best = dict(rec)
    return best


def signature_state(record: Mapping[str, Any], key: bytes | None) -> str:
    """``verified``, ``INVALID (reason)`` or ``not checked`` (no key known here)."""
    if key is None:
        return "not checked (no command signing key)"
    check = verify_command(record, key)
    return "verified" if check.ok else f"INVALID ({check.reason})"


class ControlTopicReadiness:
    """The rollout's readiness records on its partition of the control topic, read by one consumer
    that stays open: each :meth:`latest` reads only what was published since the last one (a
    ``--wait`` polls every second, and re-reading the partition from its beginning each time would
    cost a new connection and the whole partition's history per look)."""

    def __init__(
        self, bootstrap: str, topic: str, rollout_id: str, security: KafkaSecurity = PLAINTEXT
    ) -> None:
        from kafka.structs import TopicPartition

        from rollguard.adapters.worker.topics import partition_for

        self.rollout_id = rollout_id
        self.best: dict[str, Any] | None = None
        self.consumer = consumer(
            bootstrap,
            security,
            enable_auto_commit=False,
            group_id=None,
            client_id="rollguard-preflight",
        )
        try:
            parts = self.consumer.partitions_for_topic(topic)
            if not parts:
                raise PreflightError(f"the control topic {topic} does not exist on {bootstrap}")
            self.tp = TopicPartition(topic, partition_for(rollout_id.encode("utf-8"), len(parts)))
            self.consumer.assign([self.tp])
            self.consumer.seek_to_beginning(self.tp)
        except BaseException:
            self.consumer.close()
            raise

    def latest(self, timeout_s: float) -> dict[str, Any] | None:
        """The current readiness: the highest ``sequence`` read so far, after reading up to the
        partition's end as it is now (or until ``timeout_s``)."""
        end = self.consumer.end_offsets([self.tp])[self.tp]
        deadline = time.monotonic() + timeout_s
        while self.consumer.position(self.tp) < end and time.monotonic() < deadline:
            records: list[Mapping[str, Any]] = [] if self.best is None else [self.best]
            for messages in self.consumer.poll(timeout_ms=500).values():
                for m in messages:
                    try:
                        value = orjson.loads(m.value) if m.value is not None else None
                    except orjson.JSONDecodeError:
                        continue  # not ours to judge here: the worker dead-letters what it cannot read
                    if isinstance(value, dict):
                        records.append(value)
            self.best = latest_record(records, self.rollout_id)
        return self.best

    def close(self) -> None:
        self.consumer.close()


def read_status(url: str, rollout_id: str, timeout_s: float) -> dict[str, Any] | None:
    """The rollout's readiness from a worker's ``/status`` (None: the worker does not hold it)."""
    import httpx

    base = url.rstrip("/")
    base = base[: -len("/status")] if base.endswith("/status") else base
    response = httpx.get(f"{base}/status", params={"rollout": rollout_id}, timeout=timeout_s)
    response.raise_for_status()
    for rollout in response.json().get("rollouts", []):
        if rollout.get("rollout_id") == rollout_id and rollout.get("readiness"):
            return {"rollout_id": rollout_id, **rollout["readiness"]}
    return None


def render(record: Mapping[str, Any], source: str, signature: str | None) -> str:
    """The checklist as plain text (also what a terminal shows, in a table)."""
    verdict = "READY" if record.get("ready") else "NOT READY"
    seq = f"readiness #{record['sequence']}, " if record.get("sequence") else ""
    lines = [f"{record.get('rollout_id')}: {verdict}  ({seq}from {source})"]
    if signature is not None:
        lines.append(f"  signature: {signature}")
    for check in record.get("checks", []):
        mark = {"met": "ok", "off": "--", "pending": "..", "unmet": "XX"}.get(str(check.get("state")), "??")
        lines.append(
            f"  [{mark}] {check.get('check')} ({check.get('mode')}, {check.get('state')}): "
            f"{check.get('evidence')}"
        )
        if check.get("to_satisfy") and check.get("state") not in ("met", "off"):
            lines.append(f"       to satisfy: {check['to_satisfy']}")
    if record.get("blocking"):
        lines.append(f"  blocking: {', '.join(record['blocking'])}")
    if record.get("warnings"):
        lines.append(f"  warnings: {', '.join(record['warnings'])}")
    return "\n".join(lines)


def _print(record: Mapping[str, Any], source: str, signature: str | None) -> None:
    if not sys.stdout.isatty():
        print(render(record, source, signature))
        return
    from rich.console import Console
    from rich.table import Table

    ready = bool(record.get("ready"))
    table = Table(
        title=f"{record.get('rollout_id')}: " + ("[green]READY[/]" if ready else "[red]NOT READY[/]"),
        caption=(f"readiness #{record['sequence']} " if record.get("sequence") else "")
        + f"from {source}"
        + (f"; signature {signature}" if signature else ""),
    )
    for column in ("check", "mode", "state", "evidence", "to satisfy"):
        table.add_column(column, overflow="fold")
    colours = {"met": "green", "off": "dim", "pending": "yellow", "unmet": "red"}
    for c in record.get("checks", []):
        state = str(c.get("state"))
        table.add_row(
            str(c.get("check")),
            str(c.get("mode")),
            f"[{colours.get(state, 'white')}]{state}[/]",
            str(c.get("evidence")),
            "" if state in ("met", "off") else str(c.get("to_satisfy", "")),
        )
    Console().print(table)


def _config_and_key(path: str | None) -> tuple[Any, bytes | None]:
    from rollguard.policy.commands.signing import resolve_signing_key
    from rollguard.settings.config import ConfigError, load_config

    try:
        config = load_config(path)
    except ConfigError as exc:
        raise PreflightError("; ".join(exc.lines()) if hasattr(exc, "lines") else str(exc)) from exc
    c = config.commands
    return config, resolve_signing_key(c.signing_key, c.signing_key_env, os.environ)


def _connection(config: Any, args: argparse.Namespace) -> tuple[str | None, KafkaSecurity]:
    """The Kafka to read (``--bootstrap``, else the config's ``worker.kafka``) and its security."""
    try:
        connection = connection_from(config, args.bootstrap, source=args.config)
    except KafkaSetupError as exc:
        raise PreflightError(str(exc)) from exc
    return connection.bootstrap, connection.security


def _ask_rehearsal(args: argparse.Namespace, topic: str, security: KafkaSecurity) -> str:
    from rollguard.adapters.operator import KEY_ENV, OperatorError, build_action, read_key_file

    key_path = args.key_file or os.environ.get(KEY_ENV)
    if not key_path:
        raise PreflightError(f"--rehearse needs the operator's key: pass --key-file or set {KEY_ENV}")
    try:
        key = read_key_file(key_path)
    except OperatorError as exc:
        raise PreflightError(str(exc)) from exc
    now = time.time()
    action = build_action(
        REHEARSE_ACTION, args.rollout, {"comment": "rollguard preflight"}, key, issued_at=now
    )
    sender = producer(args.bootstrap, security, acks="all", client_id="rollguard-preflight")
    try:
        sender.send(topic, key=args.rollout.encode("utf-8"), value=orjson.dumps(action)).get(timeout=30)
    finally:
        sender.close(timeout=10)
    return str(action["command_id"])


def run_preflight(args: argparse.Namespace) -> int:
    """The CLI entry point (see the module docstring for the exit codes)."""
    try:
        config, key = _config_and_key(args.config)
        args.bootstrap, security = _connection(config, args)
        if not args.bootstrap and not args.status_url:
            raise PreflightError(
                "say where to look: --bootstrap HOST:PORT (the control topic; or worker.kafka.bootstrap of "
                "--config) or --status-url URL"
            )
        if args.rehearse and not args.bootstrap:
            raise PreflightError("--rehearse publishes on the control topic: it needs --bootstrap")
        topic = None
        if args.bootstrap:
            from rollguard.adapters.topic_contracts import TopicContractError, load_topics, topic_for_role

            try:
                topic = topic_for_role(load_topics(args.topics_dir), "control").name
            except TopicContractError as exc:
                raise PreflightError(str(exc)) from exc
        with ExitStack() as stack:
            control = None
            if topic is not None and not args.status_url:
                control = ControlTopicReadiness(args.bootstrap, topic, args.rollout, security)
                stack.callback(control.close)
            before = None
            if args.rehearse:
                assert topic is not None
                known = (
                    control.latest(30.0)
                    if control is not None
                    else _latest_on_topic(args.bootstrap, topic, args.rollout, security)
                )
                before = int(known["sequence"]) if known is not None else 0
                command_id = _ask_rehearsal(args, topic, security)
                print(f"asked for a revert rehearsal of {args.rollout}: {command_id}", file=sys.stderr)
            deadline = time.monotonic() + (args.wait or (120.0 if args.rehearse else 0.0))
            while True:
                if control is not None:
                    record, source = control.latest(30.0), f"the control topic {topic}"
                else:
                    record = read_status(args.status_url, args.rollout, 10.0)
                    source = f"the worker at {args.status_url}"
                settled = record is not None and (
                    before is None
                    or (int(record["sequence"]) > before and _revert_state(record) != "pending")
                )
                if settled or time.monotonic() >= deadline:
                    break
                time.sleep(1.0)
    except PreflightError as exc:
        print(f"rollguard: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as exc:  # Kafka or the worker unreachable: one line
        print(f"rollguard: preflight failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if record is None:
        print(
            f"{args.rollout}: no readiness known yet (no record from {source}): has the rollout sent traffic?"
        )
        return EXIT_UNKNOWN
    signature = signature_state(record, key) if source.startswith("the control topic") else None
    if args.json:
        print(orjson.dumps({**record, "source": source, "signature_state": signature}).decode())
    else:
        _print(record, source, signature)
    if signature is not None and signature.startswith("INVALID"):
        return EXIT_NOT_READY  # a record that does not verify says nothing
    return EXIT_READY if record.get("ready") else EXIT_NOT_READY


def _latest_on_topic(
    bootstrap: str, topic: str, rollout_id: str, security: KafkaSecurity
) -> dict[str, Any] | None:
    """The readiness last published on the control topic (one look, the consumer closed after)."""
    control = ControlTopicReadiness(bootstrap, topic, rollout_id, security)
    try:
        return control.latest(30.0)
    finally:
        control.close()


def _revert_state(record: Mapping[str, Any]) -> str | None:
    for check in record.get("checks", []):
        if check.get("check") == "revert":
            return str(check.get("state"))
    return None


def add_preflight_parser(sub: Any) -> None:
    """``rollguard preflight ROLLOUT``."""
    from rollguard.adapters.operator import KEY_ENV, duration

    p = sub.add_parser(
        "preflight", help="is a rollout ready? its pre-flight checklist (exit 0 only when ready)"
    )
    p.add_argument("rollout", metavar="ROLLOUT", help="the rollout id")
    p.add_argument(
        "--bootstrap",
        help=f"read the readiness records on the control topic of this Kafka (HOST:PORT; "
        f"{BOOTSTRAP_DEFAULT})",
    )
    p.add_argument("--status-url", help="or ask a worker (its web address, e.g. http://localhost:6066)")
    p.add_argument(
        "--config",
        default=None,
        help="rollguard's config: the command signing key checks records; worker.kafka reaches the cluster",
    )
    p.add_argument("--topics-dir", default=None, help="topic contract directory (default: topics/)")
    p.add_argument(
        "--rehearse", action="store_true", help="ask for a new revert rehearsal first (signed action)"
    )
    p.add_argument("--key-file", help=f"the operator's key for --rehearse (default: ${KEY_ENV})")
    p.add_argument(
        "--wait",
        type=duration,
        default=0.0,
        help="wait up to this long for the readiness (after --rehearse, default 2m: for its outcome)",
    )
    p.add_argument("--json", action="store_true", help="print the record as JSON")
    p.set_defaults(handler=run_preflight)
