"""``rollguard operator …``: the operator on call acts on a rollout — signed, with a key of their own.

Each action is a command v1 with an operator ``action`` (acknowledge_alert, silence, unsilence, hold,
release, approve, reject, override_verdict, declare_promotion, rehearse_revert), signed with the
operator's Ed25519 key
(:mod:`rollguard.policy.operators`) and published on the control topic keyed by the rollout id, where
every worker reads it — or appended to a file that ``rollguard replay --inputs`` applies at the action's
``issued_at``. rollguard checks the signature against the public keys of its ``operators`` section.

Key files are JSON: ``{"key_id", "operator", "private_key"}`` (the private key as the base64 of its 32
raw bytes), written with mode 0600 by ``rollguard operator keygen``, which also prints the lines to put
in the config. The default key file is ``$ROLLGUARD_OPERATOR_KEY``.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import os
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from rollguard.adapters.kafka_clients import (
    BOOTSTRAP_DEFAULT,
    CONFIG_HELP,
    KafkaConnection,
    KafkaSetupError,
    load_connection,
)
from rollguard.policy.alerts.manager import parse_matchers
from rollguard.policy.alerts.records import digest
from rollguard.policy.operators import public_bytes, sign_action
from rollguard.settings.alerts import KIND_STATES
from rollguard.settings.config import ConfigError

KEY_ENV: Final = "ROLLGUARD_OPERATOR_KEY"
DEFAULT_TTL_S: Final = 900.0
# CLI word -> the action on the wire (command v1)
ACTIONS: Final = {
    "acknowledge": "acknowledge_alert",
    "silence": "silence",
    "unsilence": "unsilence",
    "hold": "hold",
    "release": "release",
    "approve": "approve",
    "reject": "reject",
    "override": "override_verdict",
    "promote": "declare_promotion",
    "rehearse": "rehearse_revert",
}
_DURATION: Final = re.compile(r"(\d+(?:\.\d+)?)\s*(s|m|min|h|d)?")
_UNITS: Final = {None: 1.0, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "d": 86400.0}


class OperatorError(ValueError):
    """A problem with what the operator asked (bad key file, bad argument): one line, exit 2."""


@dataclass(frozen=True, slots=True)
class OperatorKeyFile:
    key_id: str
    operator: str
    private: Ed25519PrivateKey

    @property
    def public_b64(self) -> str:
        return base64.b64encode(public_bytes(self.private)).decode("ascii")


def duration(text: str) -> float:
    """``90``, ``90s``, ``30m``, ``2h``, ``1d`` → seconds.

    >>> duration("30m"), duration("1.5h"), duration("45")
    (1800.0, 5400.0, 45.0)
    """
    m = _DURATION.fullmatch(text.strip())
    if m is None:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (e.g. 90, 30m, 2h, 1d)")
    return float(m.group(1)) * _UNITS[m.group(2)]


def read_key_file(path: str | Path) -> OperatorKeyFile:
    p = Path(path)
    try:
        data = orjson.loads(p.read_bytes())
        raw = base64.b64decode(str(data["private_key"]), validate=True)
        private = Ed25519PrivateKey.from_private_bytes(raw)
        key_id, operator = str(data["key_id"]), str(data["operator"])
    except OSError as exc:
        raise OperatorError(f"{p}: cannot read the key file: {exc.strerror}") from exc
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, binascii.Error) as exc:
        raise OperatorError(
            f"{p}: not an operator key file (JSON with key_id, operator, private_key): {exc}"
        ) from exc
    if not key_id or not operator:
        raise OperatorError(f"{p}: key_id and operator must not be empty")
    return OperatorKeyFile(key_id, operator, private)


def write_key_file(path: str | Path, key_id: str, operator: str) -> OperatorKeyFile:
    """A new key, written only if ``path`` does not exist yet (a key is never overwritten)."""
    from cryptography.hazmat.primitives import serialization

    private = Ed25519PrivateKey.generate()
    raw = private.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    body = orjson.dumps(
        {"key_id": key_id, "operator": operator, "private_key": base64.b64encode(raw).decode("ascii")},
        option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE,
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(body)
    return OperatorKeyFile(key_id, operator, private)


def build_action(
    action: str,
    rollout_id: str,
    params: dict[str, Any],
    key: OperatorKeyFile,
    *,
    issued_at: float,
    ttl_s: float = DEFAULT_TTL_S,
) -> dict[str, Any]:
    """A signed operator action (command v1). Its id is a hash of what it says: the same action sent
    twice (a retry, a double click) is applied once."""
    body: dict[str, Any] = {
        "schema_version": 1,
        "rollout_id": rollout_id,
        "scope": {},
        "action": action,
        "issued_at": issued_at,
        "expires_at": issued_at + ttl_s,
        "dry_run": False,
        "issued_by": key.operator,
        "key_id": key.key_id,
        "operator": params,
    }
    body["command_id"] = "op-" + digest(body, n=24)
    return sign_action(body, key.private)


def params_of(args: argparse.Namespace, issued_at: float) -> dict[str, Any]:
    """The ``operator`` parameters of the CLI action ``args.op``."""
    op = args.op
    p: dict[str, Any] = {}
    if getattr(args, "comment", None):
        p["comment"] = args.comment
    if op == "acknowledge":
        p["alert_id"] = args.alert_id
    elif op == "silence":
        matchers = [*args.match, f"rollout={args.rollout}"] if not args.all_rollouts else list(args.match)
        parsed = parse_matchers(matchers)
        if isinstance(parsed, str):
            raise OperatorError(f"--match: {parsed}")
        p["matchers"] = matchers
        p["until"] = issued_at + args.duration
    elif op == "unsilence":
        p["silence_id"] = args.silence_id
    elif op == "hold":
        if args.duration is not None:
            p["until"] = issued_at + args.duration
    elif op in ("approve", "reject"):
        p["command_id"] = args.proposal_id
    elif op == "override":
        p.update(metric=args.metric, verdict=args.verdict, cohort=args.cohort)
        if args.duration is not None:
            p["until"] = issued_at + args.duration
    return p


def deliver(
    action: dict[str, Any], args: argparse.Namespace, connection: KafkaConnection | None = None
) -> str:
    """Publish on the control topic (key = rollout id) and wait for the broker, or append to a file."""
    line = orjson.dumps(action, option=orjson.OPT_SORT_KEYS)
    if args.to_file:
        with open(args.to_file, "ab") as fh:
            fh.write(line + b"\n")
        return f"appended to {args.to_file}"
    from rollguard.adapters.kafka_clients import producer as kafka_producer
    from rollguard.adapters.topic_contracts import load_topics, topic_for_role

    connection = connection or KafkaConnection(args.bootstrap)
    topic = topic_for_role(load_topics(args.topics_dir), "control").name
    producer = kafka_producer(
        connection.required_bootstrap(), connection.security, acks="all", client_id="rollguard-operator"
    )
    try:
        meta = producer.send(topic, key=str(action["rollout_id"]).encode(), value=line).get(timeout=30)
    finally:
        producer.close(timeout=10)
    return f"published to {topic}[{meta.partition}]@{meta.offset}"


def run_operator(args: argparse.Namespace) -> int:
    """The CLI entry point: 0 delivered, 2 a bad argument or key file, 1 Kafka or the file failed."""
    try:
        if args.op == "keygen":
            key = write_key_file(args.out, args.key_id, args.operator)
            print(f"wrote {args.out} (keep it private: mode 0600)")
            print("add to rollguard's config:")
            print("operators:\n  keys:")
            print(f"    {key.key_id}: {{operator: {key.operator}, public_key: {key.public_b64}}}")
            return 0
        key_path = args.key_file or os.environ.get(KEY_ENV)
        if not key_path:
            raise OperatorError(f"no key: pass --key-file or set {KEY_ENV}")
        key = read_key_file(key_path)
        connection = None
        if not args.to_file:
            connection = load_connection(args.config, args.bootstrap)
            if not connection.bootstrap:
                raise OperatorError(
                    "say where to: --bootstrap HOST:PORT (the control topic; or worker.kafka.bootstrap of "
                    "--config) or --to-file FILE"
                )
        issued_at = args.at if args.at is not None else time.time()
        action = build_action(
            ACTIONS[args.op],
            args.rollout,
            params_of(args, issued_at),
            key,
            issued_at=issued_at,
            ttl_s=args.ttl,
        )
    except FileExistsError:
        print(f"rollguard: {args.out} exists: a key is never overwritten", file=sys.stderr)
        return 2
    except (OperatorError, KafkaSetupError) as exc:
        print(f"rollguard: {exc}", file=sys.stderr)
        return 2
    except ConfigError as exc:
        for line in exc.lines():
            print(f"rollguard: bad config: {line}", file=sys.stderr)
        return 2
    try:
        where = deliver(action, args, connection)
    except Exception as exc:  # Kafka unreachable, topic missing, file not writable: one line
        print(f"rollguard: not delivered: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    who = f"{key.operator} ({key.key_id})"
    print(f"{action['action']} {action['rollout_id']} by {who}: {action['command_id']} {where}")
    return 0


def add_operator_parser(sub: Any) -> None:
    """``rollguard operator …`` and its actions."""
    operator = sub.add_parser("operator", help="act on a rollout as the operator on call (signed actions)")
    ops = operator.add_subparsers(dest="op", required=True, metavar="ACTION")

    def action(name: str, help_: str) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = ops.add_parser(name, help=help_)
        p.add_argument("rollout", metavar="ROLLOUT", help="the rollout id")
        where = p.add_mutually_exclusive_group()
        where.add_argument(
            "--bootstrap", help=f"publish on the control topic of this Kafka (HOST:PORT; {BOOTSTRAP_DEFAULT})"
        )
        where.add_argument("--to-file", metavar="FILE", help="append to a `rollguard replay --inputs` file")
        p.add_argument("--key-file", help=f"the operator's key (default: ${KEY_ENV})")
        p.add_argument("--config", default=None, help=CONFIG_HELP)
        p.add_argument(
            "--at", type=float, default=None, metavar="TS",
            help="issued_at, epoch seconds (default: now; for a replay, an event time of its traffic)",
        )  # fmt: skip
        p.add_argument("--ttl", type=duration, default=DEFAULT_TTL_S, help="refused after this (default 15m)")
        p.add_argument("--comment", default=None, help="why (kept in the audit)")
        p.add_argument("--topics-dir", default=None, help="topic contract directory (default: topics/)")
        return p

    action("acknowledge", "acknowledge a firing alert").add_argument("alert_id", metavar="ALERT_ID")
    silence = action("silence", "silence alerts matching labels (of this rollout unless --all-rollouts)")
    silence.add_argument("--match", action="append", default=[], metavar="LABEL=VALUE",
                         help="a matcher (=, !=, =~, !~); repeat for several")  # fmt: skip
    silence.add_argument("--for", dest="duration", type=duration, required=True, help="how long, e.g. 2h")
    silence.add_argument("--all-rollouts", action="store_true", help="do not add rollout=ROLLOUT")
    action("unsilence", "end a silence").add_argument("silence_id", metavar="SILENCE_ID")
    hold = action("hold", "hold automatic commands of the rollout")
    hold.add_argument("--for", dest="duration", type=duration, default=None, help="until released if absent")
    action("release", "release a hold")
    action("approve", "approve a proposed command").add_argument("proposal_id", metavar="PROPOSAL_ID")
    action("reject", "reject a proposed command").add_argument("proposal_id", metavar="PROPOSAL_ID")
    override = action("override", "override a verdict (cohort, metric)")
    override.add_argument("--metric", required=True)
    override.add_argument("--verdict", required=True, choices=KIND_STATES["verdict"])
    override.add_argument("--cohort", default="*", help="cohort key, e.g. input_class=coding (default: *)")
    override.add_argument("--for", dest="duration", type=duration, default=None)
    action("promote", "declare the rollout promoted to 100%%: post-rollout comparisons start")
    action("rehearse", "ask for a new revert rehearsal (a dry-run rollback; see rollguard preflight)")
    keygen = ops.add_parser("keygen", help="make an operator key file and print its config lines")
    keygen.add_argument("--operator", required=True, help="who holds the key, e.g. alice")
    keygen.add_argument("--key-id", required=True, help="the key's id, e.g. alice-2026")
    keygen.add_argument("--out", required=True, help="the key file to create (never overwritten)")
    operator.set_defaults(handler=run_operator)
