"""Real Alertmanager and Prometheus for tests, from Debian's packages (``scripts/services.sh``, run by
``make test``), plus a tiny webhook sink that Alertmanager's receivers notify.

Each service runs as its own process on a free loopback port with a temporary config and data
directory; readiness is its own ``/-/ready``. ``restart()`` stops it and starts it again on the same
port with the same data, as an operator's restart would: Alertmanager keeps its silences and
notification log on disk but *not* its alerts (clients must re-post them), Prometheus replays its
write-ahead log. Alertmanager runs the routing tree of ``deploy/alertmanager.yml`` (only the receivers'
URLs and the group timings are swapped for the sink and seconds), so the tests exercise the file users
deploy. The packages' own services are never used.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from kafka_broker import free_port, record_timing

ROOT = Path(__file__).resolve().parent.parent
ALERTMANAGER_BIN = Path("/usr/bin/prometheus-alertmanager")
PROMETHEUS_BIN = Path("/usr/bin/prometheus")
DEPLOY_ALERTMANAGER = ROOT / "deploy" / "alertmanager.yml"
RECEIVERS = ("oncall-pager", "team-chat", "digest")


class ServiceError(RuntimeError):
    """A service that did not start or stop; the message carries the tail of its log."""


def require(binary: Path) -> None:
    """Fail (never skip) when a service binary is missing: ``make test`` installs it."""
    if not (binary.is_file() and os.access(binary, os.X_OK)):
        pytest.fail(f"{binary} is not installed: run `make services` (scripts/services.sh) as root")


@dataclass
class Service:
    """One service process: ``argv(port)`` builds its command line, ``/-/ready`` says it is up."""

    name: str
    argv: Callable[[int], list[str]]
    data_dir: Path
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0
    log_path: Path = field(init=False)

    def __post_init__(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.data_dir / f"{self.name}.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0, attempts: int = 3) -> Service:
        """Start and wait until ready. A first start takes a free port (another one if that port was
        taken meanwhile) unless one was given; a restart keeps its port."""
        if self.starts or self.port:
            self._start_once(timeout)
        else:
            for attempt in range(attempts):
                self.port = free_port()
                try:
                    self._start_once(timeout)
                    break
                except ServiceError:
                    if attempt == attempts - 1:
                        raise
        self.starts += 1
        return self

    def _start_once(self, timeout: float) -> None:
        t0 = time.monotonic()
        log = open(self.log_path, "ab")  # noqa: SIM115 - the child writes it until stop()
        try:
            self.proc = subprocess.Popen(
                self.argv(self.port), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        finally:
            log.close()
        deadline = t0 + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ServiceError(f"{self.name} exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as resp:
                    if resp.status == 200:
                        what = "restart" if self.starts else "start"
                        record_timing(f"{self.name} {what} (to /-/ready)", time.monotonic() - t0)
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.05)
        self.stop()
        raise ServiceError(f"{self.name} not ready after {timeout:.0f} s:\n{self.log_tail()}")

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM (a clean shutdown that flushes its data), SIGKILL if it does not exit in time."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)

    def restart(self, timeout: float = 60.0) -> Service:
        """Stop and start again on the same port with the same data directory."""
        self.stop()
        return self.start(timeout)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def configured_service(
    name: str, binary: Path, workdir: Path, config: dict[str, Any], flags: list[str]
) -> Service:
    """A server of the Prometheus family (not started): ``config`` written to ``workdir/<name>.yml``,
    ``flags`` (storage, logging) after ``--config.file``, listening on loopback at the port it starts on."""
    require(binary)
    workdir.mkdir(parents=True, exist_ok=True)
    config_file = workdir / f"{name}.yml"
    config_file.write_text(yaml.safe_dump(config, sort_keys=False))

    def argv(port: int) -> list[str]:
        return [str(binary), f"--config.file={config_file}", *flags, f"--web.listen-address=127.0.0.1:{port}"]

    return Service(name, argv, workdir)


# ----------------------------------------------------------------------------- local HTTP servers


class QuietHandler(BaseHTTPRequestHandler):
    """A request handler that does not log every request to stderr (the test output stays readable)."""

    def log_message(self, format: str, *args: Any) -> None:
        pass


class LoopbackServer:
    """A threaded HTTP server on a free 127.0.0.1 port, serving ``handler`` from a daemon thread until
    :meth:`close`: what the webhook sink and the recording proxy below have in common."""

    def __init__(self, handler: type[BaseHTTPRequestHandler], name: str) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.thread = threading.Thread(target=self.server.serve_forever, name=name, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# ------------------------------------------------------------------------------------------- sink


@dataclass(frozen=True)
class Notification:
    """One webhook call from Alertmanager: the receiver (URL path) and its JSON body."""

    receiver: str
    body: dict[str, Any]
    at: float  # time.monotonic() when it arrived

    @property
    def alerts(self) -> list[dict[str, Any]]:
        alerts: list[dict[str, Any]] = self.body.get("alerts", [])
        return alerts


class WebhookSink(LoopbackServer):
    """A local HTTP server that records every POST (Alertmanager's webhook receivers point here)."""

    def __init__(self) -> None:
        self.notifications: list[Notification] = []
        self._lock = threading.Lock()
        sink = self

        class Handler(QuietHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                with sink._lock:
                    sink.notifications.append(Notification(self.path.strip("/"), body, time.monotonic()))
                self.send_response(200)
                self.end_headers()

        super().__init__(Handler, "webhook-sink")

    def received(self) -> list[Notification]:
        with self._lock:
            return list(self.notifications)

    def wait_for(self, predicate: Callable[[Notification], bool], timeout: float = 30.0) -> Notification:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for n in self.received():
                if predicate(n):
                    return n
            time.sleep(0.05)
        raise AssertionError(f"no matching notification in {timeout:.0f} s; got {self.received()!r}")


# ---------------------------------------------------------------------------------- Alertmanager


def alertmanager_config(
    sink_url: str, *, group_wait: str = "0s", group_interval: str = "1s", resolve_timeout: str | None = None
) -> dict[str, Any]:
    """``deploy/alertmanager.yml`` with its receivers pointed at ``sink_url/<receiver>`` and every
    route's group timings shortened for tests; the routing tree itself is the deployed one."""
    config: dict[str, Any] = yaml.safe_load(DEPLOY_ALERTMANAGER.read_text())
    for receiver in config["receivers"]:
        for hook in receiver.get("webhook_configs", []):
            hook["url"] = f"{sink_url}/{receiver['name']}"

    def shorten(route: dict[str, Any], root: bool) -> None:
        if root or "group_wait" in route:
            route["group_wait"] = group_wait
        if root or "group_interval" in route:
            route["group_interval"] = group_interval
        for child in route.get("routes", []):
            shorten(child, False)

    shorten(config["route"], True)
    if resolve_timeout is not None:
        config.setdefault("global", {})["resolve_timeout"] = resolve_timeout
    return config


def alertmanager_service(workdir: Path, config: dict[str, Any]) -> Service:
    """An Alertmanager (not started) with ``config``, storage in ``workdir``, no cluster gossip."""
    flags = [f"--storage.path={workdir / 'data'}", "--cluster.listen-address=", "--log.level=info"]
    return configured_service("alertmanager", ALERTMANAGER_BIN, workdir, config, flags)


def am_get(url: str, path: str, **params: str) -> Any:
    """GET a JSON document from an Alertmanager or Prometheus API."""
    query = f"?{urllib.parse.urlencode(params)}" if params else ""
    with urllib.request.urlopen(f"{url}{path}{query}", timeout=10) as resp:
        return json.loads(resp.read())


def am_alerts(url: str, **filters: str) -> list[dict[str, Any]]:
    """``GET /api/v2/alerts``: the active (unresolved) alerts, each with its receivers and status."""
    alerts: list[dict[str, Any]] = am_get(url, "/api/v2/alerts", **filters)
    return alerts


def am_post(url: str, path: str, payload: Any) -> Any:
    request = urllib.request.Request(
        f"{url}{path}",
        data=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as resp:
        body = resp.read()
        return json.loads(body) if body else None


def am_silence(url: str, matchers: dict[str, str], *, minutes: float = 60.0, comment: str = "test") -> str:
    """Create a silence (equality matchers) in Alertmanager; returns its id."""
    now = time.time()
    payload = {
        "matchers": [{"name": k, "value": v, "isRegex": False, "isEqual": True} for k, v in matchers.items()],
        "startsAt": _rfc3339(now - 1),
        "endsAt": _rfc3339(now + minutes * 60),
        "createdBy": "tests",
        "comment": comment,
    }
    created = am_post(url, "/api/v2/silences", payload)
    silence_id: str = created["silenceID"]
    return silence_id


def metric_value(url: str, name: str, **labels: str) -> float:
    """The sum of the samples of a Prometheus-format ``/metrics`` page that carry ``labels``."""
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    return sum(
        float(sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
    )


def _rfc3339(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int(ts % 1 * 1000):03d}Z"


# ------------------------------------------------------------------------------------- Prometheus


def prometheus_service(
    workdir: Path, targets: list[str], *, scrape_interval: str = "1s", job: str = "targets"
) -> Service:
    """A Prometheus (not started) scraping ``targets`` (``host:port``, path ``/metrics``)."""
    config = {
        "global": {"scrape_interval": scrape_interval, "evaluation_interval": scrape_interval},
        "scrape_configs": [{"job_name": job, "static_configs": [{"targets": list(targets)}]}],
    }
    flags = [f"--storage.tsdb.path={workdir / 'tsdb'}", "--log.level=warn"]
    return configured_service("prometheus", PROMETHEUS_BIN, workdir, config, flags)


def prom_query(url: str, expr: str) -> list[dict[str, Any]]:
    """``GET /api/v1/query``: the instant vector's samples (``metric`` labels and ``value``)."""
    doc = am_get(url, "/api/v1/query", query=expr)
    if doc.get("status") != "success":
        raise AssertionError(f"query {expr!r} failed: {doc}")
    result: list[dict[str, Any]] = doc["data"]["result"]
    return result


def wait_until(
    check: Callable[[], Any],
    timeout: float = 30.0,
    interval: float = 0.05,
    what: str = "",
) -> Any:
    """Poll ``check`` until it returns something truthy; fail naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what or check}: last {last!r}")


# ---------------------------------------------------------------------------------------- fixtures


@pytest.fixture
def webhook_sink() -> Iterator[WebhookSink]:
    sink = WebhookSink()
    try:
        yield sink
    finally:
        sink.close()


@pytest.fixture
def alertmanager(tmp_path: Path, webhook_sink: WebhookSink) -> Iterator[Service]:
    """A running Alertmanager with the deployed routing tree, notifying ``webhook_sink``."""
    service = alertmanager_service(tmp_path / "alertmanager", alertmanager_config(webhook_sink.url))
    service.start()
    try:
        yield service
    finally:
        service.stop()


@pytest.fixture
def prometheus_for(tmp_path: Path) -> Iterator[Callable[[list[str]], Service]]:
    """``prometheus_for(["127.0.0.1:PORT", ...])``: a running Prometheus scraping those targets."""
    started: list[Service] = []

    def start(targets: list[str]) -> Service:
        service = prometheus_service(tmp_path / f"prometheus-{len(started)}", targets)
        started.append(service)
        return service.start()

    try:
        yield start
    finally:
        for service in started:
            service.stop()


# ---------------------------------------------------------------------------------- recording proxy


@dataclass(frozen=True)
class Post:
    """One request that went through the proxy: what was sent and what the client was answered."""

    path: str
    body: Any
    status: int
    at: float  # time.monotonic()


class RecordingProxy(LoopbackServer):
    """An HTTP proxy in front of a real service that records every POST and its answer.

    It can also answer in the service's place, to put the client through what the real service says
    in cases a test cannot provoke on demand: ``fail_next(n, 503)`` (an overloaded Alertmanager) or
    ``refuse(predicate, 400, message)`` for a body holding an alert the predicate picks (the answer
    Alertmanager gives an alert it finds malformed). Everything else is forwarded as it is.
    """

    def __init__(self, target: str) -> None:
        self.target = target.rstrip("/")
        self.posts: list[Post] = []
        self._lock = threading.Lock()
        self._fail: list[int] = []
        self._refuse: tuple[Callable[[dict[str, Any]], bool], int, str] | None = None
        self.delay_s = 0.0  # added before every answer: a slow Alertmanager
        proxy = self

        class Handler(QuietHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                time.sleep(proxy.delay_s)
                status, answer = proxy._answer(self.path, raw)
                with proxy._lock:
                    proxy.posts.append(Post(self.path, json.loads(raw or b"null"), status, time.monotonic()))
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

        super().__init__(Handler, "recording-proxy")

    def fail_next(self, n: int, status: int = 503) -> None:
        with self._lock:
            self._fail.extend([status] * n)

    def refuse(self, predicate: Callable[[dict[str, Any]], bool], status: int, message: str) -> None:
        self._refuse = (predicate, status, message)

    def _answer(self, path: str, raw: bytes) -> tuple[int, bytes]:
        with self._lock:
            if self._fail:
                return self._fail.pop(0), b'"injected failure"'
        if self._refuse is not None:
            predicate, status, message = self._refuse
            body = json.loads(raw or b"null")
            if isinstance(body, list) and any(predicate(alert) for alert in body):
                return status, json.dumps(message).encode()
        request = urllib.request.Request(
            f"{self.target}{path}", data=raw, headers={"Content-Type": "application/json"}, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()
        except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
            return 502, json.dumps(f"proxy: {exc}").encode()

    def alert_posts(self) -> list[Post]:
        with self._lock:
            return [p for p in self.posts if p.path == "/api/v2/alerts"]

    def posted_alerts(self, *, accepted_only: bool = True) -> list[dict[str, Any]]:
        """Every alert posted, in order (each post's alerts in their order)."""
        return [a for p in self.alert_posts() if not accepted_only or p.status == 200 for a in p.body]
