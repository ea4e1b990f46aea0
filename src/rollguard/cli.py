"""The ``rollguard`` command line: one sub-command per job, each a thin shell over the core or an adapter."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

Handler = Callable[[argparse.Namespace], int]


def _topics_apply(args: argparse.Namespace) -> int:
    from rollguard.adapters.kafka_clients import KafkaSetupError, load_connection
    from rollguard.adapters.topics_admin import EXIT_ERROR, run_topics_apply
    from rollguard.settings.config import ConfigError

    # Exit 1, not the other commands' 2, for a config that cannot give a connection: topics apply's 2
    # says "the cluster's topics differ from the contracts", which scripts act on.
    try:
        connection = load_connection(args.config, args.bootstrap)
        bootstrap = connection.required_bootstrap()
    except ConfigError as exc:
        bad_config(exc)
        return EXIT_ERROR
    except KafkaSetupError as exc:
        print(f"rollguard: {exc}", file=sys.stderr)
        return EXIT_ERROR
    return run_topics_apply(
        bootstrap=bootstrap, topics_dir=args.dir, dry_run=args.dry_run, security=connection.security
    )


def _worker(args: argparse.Namespace) -> int:
    from rollguard.adapters.worker.cli import run_worker

    return run_worker(args)


def _bridge_alertmanager(args: argparse.Namespace) -> int:
    from rollguard.adapters.alertmanager_bridge import run_bridge_alertmanager

    return run_bridge_alertmanager(args)


def bad_config(exc: Exception) -> int:
    """Print every problem of a refused config file, one ``rollguard: bad config: file:line: …`` each."""
    lines = exc.lines() if hasattr(exc, "lines") else [str(exc)]
    for line in lines:
        print(f"rollguard: bad config: {line}", file=sys.stderr)
    return 2


def _config_check(args: argparse.Namespace) -> int:
    from pathlib import Path

    from rollguard.settings.config import check_config

    path = Path(args.file)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        print(f"{path}: cannot read the file: {getattr(exc, 'strerror', None) or exc}", file=sys.stderr)
        return 2
    errors = check_config(text, str(path))
    for err in errors:
        print(err.where())
    if errors:
        print(f"{path}: {len(errors)} error(s)", file=sys.stderr)
        return 2
    print(f"{path}: valid")
    return 0


def _config_example(args: argparse.Namespace) -> int:
    from importlib import resources

    sys.stdout.write(
        resources.files("rollguard.settings").joinpath("example.yaml").read_text(encoding="utf-8")
    )
    return 0


def _replay(args: argparse.Namespace) -> int:
    from rollguard.adapters.replay import replay
    from rollguard.settings.config import ConfigError, load_config

    try:
        config = load_config(args.config)
    except ConfigError as exc:
        return bad_config(exc)
    from rollguard.terminal.progress import file_progress

    try:
        with file_progress(args.events, "replay") as tick:
            summary = replay(
                args.events,
                config,
                args.out,
                signing_key=_signing_key(config),
                inputs=args.inputs,
                auto_ack_s=args.auto_ack,
                timeline_every_s=args.timeline_every or None,
                progress=tick,
                fmt=args.format,
            )
    except OSError as exc:
        return _stopped("replay", exc)
    print(
        f"replayed {summary.events} events ({summary.rejected} rejected, {summary.late_events} late) "
        f"from {summary.rollouts} rollout(s): {summary.verdict_changes} verdict changes, "
        f"{summary.alerts} alert notifications, {summary.commands} commands -> {args.out}"
        + (f" ({summary.inputs_rejected} input line(s) rejected)" if summary.inputs_rejected else "")
    )
    if summary.otlp is not None:
        o = summary.otlp
        print(
            f"otlp: {o['payloads']} payloads, {o['spans']} spans, {o['inference_spans']} inference spans -> "
            f"{o['events']} events; {o['unjoined']} unjoined, {o['unmapped_variant']} unmapped variant, "
            f"{o['not_inference']} not inference, {o['late']} late, {o['malformed_spans']} malformed spans, "
            f"{o['bad_payloads']} bad payloads"
        )
    return 0


def _report(args: argparse.Namespace) -> int:
    from rollguard.report import write_report

    try:
        path = write_report(args.out_dir, args.out)
    except OSError as exc:
        return _stopped("report", exc)
    except ValueError as exc:  # a line that is not JSON: not a replay's output
        print(f"rollguard: report stopped: {args.out_dir} holds a file that is not replay output: {exc}",
              file=sys.stderr)  # fmt: skip
        return 1
    print(f"report: {path} ({path.stat().st_size:,} bytes)")
    return 0


def _stopped(command: str, exc: OSError) -> int:
    """Exit 1 with one line, no traceback, for the unreadable input or the unwritable or full output
    directory that stopped ``command``."""
    where = f" ({exc.filename})" if exc.filename else ""
    print(f"rollguard: {command} stopped: {exc.strerror or exc}{where}", file=sys.stderr)
    return 1


def _signing_key(config: object) -> bytes | None:
    """The command signing key: environment (``commands.signing_key_env``) first, then the config file."""
    import os

    from rollguard.policy.commands.signing import resolve_signing_key
    from rollguard.settings.config import Config

    assert isinstance(config, Config)
    c = config.commands
    return resolve_signing_key(c.signing_key, c.signing_key_env, os.environ)


def _gate(args: argparse.Namespace) -> int:
    from pathlib import Path

    import orjson

    from rollguard.detect.eval_gate import gate_files
    from rollguard.settings.config import ConfigError, load_config

    try:
        config = load_config(args.config)
    except ConfigError as exc:
        return bad_config(exc)
    try:
        report = gate_files(args.baseline, args.candidate, config)
    except OSError as exc:
        print(f"rollguard: cannot read eval run: {exc}", file=sys.stderr)
        return 2
    print(report.table())
    if args.out:
        option = orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS
        Path(args.out).write_bytes(orjson.dumps(report.to_dict(), option=option))
    return report.exit_code


def _controller_flagd(args: argparse.Namespace) -> int:
    from rollguard.adapters.controller.consumer import run_flagd_controller

    return run_flagd_controller(args)


def _demo(args: argparse.Namespace) -> int:
    from rollguard.demo import run_demo

    if args.kafka:
        from rollguard.demo_kafka import run_kafka_demo

        return run_kafka_demo(
            args.scenario, args.minutes, args.seed, args.out, bootstrap=args.bootstrap, speed=args.speed
        )
    return run_demo(args.scenario, args.minutes, args.seed, args.out, wall_s=args.story_seconds)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rollguard", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    topics = sub.add_parser("topics", help="Kafka topic contracts (topics/)")
    topics_sub = topics.add_subparsers(dest="topics_command", required=True, metavar="ACTION")
    apply = topics_sub.add_parser(
        "apply", help="create missing topics; report (never change) existing ones whose settings differ"
    )
    apply.add_argument(
        "--bootstrap", default=None,
        help="Kafka bootstrap servers, HOST:PORT[,HOST:PORT] (default: worker.kafka.bootstrap of --config)",
    )  # fmt: skip
    apply.add_argument(
        "--config", default=None, help="rollguard config file (YAML): the cluster's worker.kafka section"
    )
    apply.add_argument("--dir", default=None, help="topic contract directory (default: topics/)")
    apply.add_argument("--dry-run", action="store_true", help="report what would be created, create nothing")
    apply.set_defaults(handler=_topics_apply)

    cfg = sub.add_parser("config", help="check a config file, or print a commented example")
    cfg_sub = cfg.add_subparsers(dest="config_command", required=True, metavar="ACTION")
    check = cfg_sub.add_parser(
        "check", help="validate a config file without running anything (exit 0 valid, 2 with every error)"
    )
    check.add_argument("file", metavar="FILE", help="the YAML config file")
    check.set_defaults(handler=_config_check)
    example = cfg_sub.add_parser("example", help="print a fully commented example config (valid as it is)")
    example.set_defaults(handler=_config_example)

    rep = sub.add_parser(
        "replay", help="run the core over a file of v1 events or of OTLP JSON trace payloads (JSON lines)"
    )
    rep.add_argument("events", help="events file: one v1 event, or one OTLP JSON export request, per line")
    rep.add_argument(
        "--format", choices=("auto", "v1", "otlp-json"), default="auto",
        help="what the file holds (default: told by its first line)",
    )  # fmt: skip
    rep.add_argument("--config", default=None, help="rollguard config file (YAML)")
    rep.add_argument("--out", required=True, help="output directory (verdicts.jsonl, rejected.jsonl, ...)")
    rep.add_argument(
        "--inputs", default=None, help="acks and operator actions to replay (JSON lines, applied in time)"
    )
    rep.add_argument(
        "--auto-ack", type=float, default=None, metavar="SECONDS",
        help="play a controller that applies every command SECONDS after it was issued",
    )  # fmt: skip
    rep.add_argument(
        "--timeline-every", type=float, default=60.0, metavar="SECONDS",
        help="write each rollout's dashboard point to DIR/timeline.jsonl every SECONDS of event time "
        "(the report's charts; default 60, 0: no timeline)",
    )  # fmt: skip
    rep.set_defaults(handler=_replay)

    report = sub.add_parser("report", help="one self-contained HTML report of a replay's outputs")
    report.add_argument("out_dir", metavar="OUT_DIR", help="a `rollguard replay --out` directory")
    report.add_argument("--out", default=None, help="the HTML file (default: OUT_DIR/report.html)")
    report.set_defaults(handler=_report)

    gate = sub.add_parser(
        "gate", help="offline eval gate: compare two eval runs; exit 0 pass, 1 regression, 2 inconclusive"
    )
    gate.add_argument("--baseline", required=True, help="baseline eval run (JSON lines, one item per line)")
    gate.add_argument("--candidate", required=True, help="candidate eval run (JSON lines)")
    gate.add_argument("--config", default=None, help="rollguard config (YAML): margins, gate, trade-offs")
    gate.add_argument("--out", default=None, help="write the JSON report here")
    gate.set_defaults(handler=_gate)

    demo = sub.add_parser("demo", help="simulate a rollout with a known regression and replay it")
    demo.add_argument("--scenario", default="error_spike_coding", help="built-in scenario name")
    demo.add_argument("--minutes", type=float, default=20.0, help="simulated minutes")
    demo.add_argument("--seed", type=int, default=7)
    demo.add_argument("--out", default="out/demo", help="output directory")
    demo.add_argument(
        "--kafka", action="store_true",
        help="run the full loop on a real broker: simulator, worker, reference controller, acks",
    )  # fmt: skip
    demo.add_argument(
        "--bootstrap", default=None,
        help="with --kafka: this Kafka (topics prefixed for the run) instead of starting scripts/kafka.sh",
    )  # fmt: skip
    demo.add_argument(
        "--speed", type=float, default=30.0,
        help="with --kafka: simulated seconds per wall second (default 30: 20 minutes in 40 s)",
    )  # fmt: skip
    demo.add_argument(
        "--story-seconds", type=float, default=20.0, metavar="S",
        help="on a terminal, play simulated time back over about S seconds (default 20; 0: at once)",
    )  # fmt: skip
    demo.set_defaults(handler=_demo)

    from rollguard.adapters.operator import add_operator_parser
    from rollguard.adapters.preflight import add_preflight_parser
    from rollguard.adapters.simulate import add_simulate_parser

    add_operator_parser(sub)
    add_preflight_parser(sub)
    add_simulate_parser(sub)

    worker = sub.add_parser("worker", help="run the streaming worker (Faust): the core on Kafka")
    worker.add_argument(
        "--bootstrap", default=None,
        help="Kafka bootstrap servers, HOST:PORT[,HOST:PORT] "
        "(default: ROLLGUARD_BOOTSTRAP, else worker.kafka.bootstrap)",
    )  # fmt: skip
    worker.add_argument("--config", default=None, help="rollguard config file (YAML)")
    worker.add_argument(
        "--app-id", default=None, help="Faust app id: consumer group, table names (default: worker.app_id)"
    )
    worker.add_argument("--data-dir", default=None, help="local state directory for tables")
    worker.add_argument("--topics-dir", default=None, help="topic contract directory (default: topics/)")
    worker.add_argument("--log-level", default="info")
    worker.set_defaults(handler=_worker)

    controller = sub.add_parser("controller", help="rollout controllers that apply rollguard's commands")
    controller_sub = controller.add_subparsers(dest="controller_command", required=True, metavar="KIND")
    flagd = controller_sub.add_parser(
        "flagd", help="apply signed commands to an OpenFeature flagd flags file (JSON) and ack each one"
    )
    flagd.add_argument(
        "--bootstrap", default=None,
        help="Kafka bootstrap servers, HOST:PORT[,HOST:PORT] (default: worker.kafka.bootstrap of --config)",
    )  # fmt: skip
    flagd.add_argument("--flags", required=True, help="the flagd flag definitions file (JSON) to edit")
    flagd.add_argument("--key-file", required=True, help="file holding the HMAC key commands are signed with")
    flagd.add_argument(
        "--config", default=None,
        help="rollguard config file (YAML): its controller section, and worker.kafka to reach the cluster",
    )  # fmt: skip
    flagd.add_argument(
        "--accept-unsigned", action="store_true", help='also apply unsigned commands (signature "")'
    )
    flagd.add_argument(
        "--state-dir",
        default=None,
        help="durable acks and sequences (default: .rollguard-controller/ beside --flags)",
    )
    flagd.add_argument(
        "--group-id",
        default=None,
        help="consumer group (default: controller.group_id, rollguard-controller-flagd)",
    )
    flagd.add_argument("--topics-dir", default=None, help="topic contract directory (default: topics/)")
    flagd.add_argument("--log-level", default="info")
    flagd.set_defaults(handler=_controller_flagd)
    bridge = sub.add_parser("bridge", help="deliver the alert topics to another system")
    bridge_sub = bridge.add_subparsers(dest="bridge_command", required=True, metavar="TARGET")
    am = bridge_sub.add_parser(
        "alertmanager",
        help="post the alert topics to Alertmanager's v2 API (re-posts firing, never drops a resolve)",
    )
    am.add_argument(
        "--bootstrap", default=None,
        help="Kafka bootstrap servers, HOST:PORT[,HOST:PORT] (default: worker.kafka.bootstrap of --config)",
    )  # fmt: skip
    am.add_argument("--url", required=True, help="Alertmanager's base URL, e.g. http://alertmanager:9093")
    am.add_argument(
        "--config", default=None,
        help="rollguard config file (YAML): bridge.alertmanager, and worker.kafka for the cluster",
    )  # fmt: skip
    am.add_argument(
        "--group-id",
        default=None,
        help="consumer group (default: bridge.alertmanager.group_id, rollguard-bridge-alertmanager)",
    )
    am.add_argument("--topics-dir", default=None, help="topic contract directory (default: topics/)")
    am.add_argument("--log-level", default="info")
    am.set_defaults(handler=_bridge_alertmanager)
    return parser


def command_names(parser: argparse.ArgumentParser | None = None) -> set[tuple[str, ...]]:
    """Every (sub)command path the CLI accepts, e.g. ``("topics", "apply")``: used by tests of the
    deployment files to check that the commands they name exist."""
    parser = parser or build_parser()
    found: set[tuple[str, ...]] = set()

    def walk(p: argparse.ArgumentParser, prefix: tuple[str, ...]) -> None:
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, child in action.choices.items():
                    found.add((*prefix, name))
                    walk(child, (*prefix, name))

    walk(parser, ())
    return found


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler = args.handler
    return handler(args)


if __name__ == "__main__":
    sys.exit(main())
