#!/usr/bin/env bash
# A real, single-node Apache Kafka (KRaft, broker+controller in one JVM) on 127.0.0.1, from jars
# that Maven resolves into kafka/cache/ (no Docker, no tarball). See kafka/README.md.
#
#   scripts/kafka.sh fetch  [--line 3|4]                      resolve jars (no-op when up to date)
#   scripts/kafka.sh start  [--port P] [--data-dir D] [--line 3|4] [--timeout S]
#                           [--sasl-port P --sasl-user NAME:PASSWORD]   a SASL_PLAINTEXT listener too
#                           [--ssl-port P] [--mtls-port P]      TLS listeners (the second requires a client cert)
#                           [--sasl-ssl-port P --sasl-user NAME:PASSWORD]   a SASL_SSL listener
#   scripts/kafka.sh stop   [--data-dir D] [--timeout S]
#   scripts/kafka.sh status [--data-dir D]
#
# Defaults: port $ROLLGUARD_KAFKA_PORT or 9092; data dir $ROLLGUARD_KAFKA_DATA_DIR or .kafka-data
# in the checkout; line $ROLLGUARD_KAFKA_LINE or 3 (Kafka 3.9.2; 4 = Kafka 4.1.x, for checks only).
# JVM options: $KAFKA_HEAP_OPTS and $KAFKA_JVM_OPTS replace the defaults (see cmd_start).
# SASL listeners take PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512 for the one --sasl-user (its SCRAM
# credentials are stored when the storage is formatted). TLS listeners use a throwaway CA made on every
# start (scripts/kafka_tls.py): clients trust <data dir>/tls/ca.pem; client.crt/.key pass --mtls-port.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
KAFKA_DIR="$ROOT/kafka"
CACHE="$KAFKA_DIR/cache"
PORT=${ROLLGUARD_KAFKA_PORT:-9092}
DATA_DIR=${ROLLGUARD_KAFKA_DATA_DIR:-$ROOT/.kafka-data}
LINE=${ROLLGUARD_KAFKA_LINE:-3}
TIMEOUT=""
SASL_PORT=""
SASL_USER=""
SSL_PORT=""
SASL_SSL_PORT=""
MTLS_PORT=""
JAVA=${JAVA_HOME:+$JAVA_HOME/bin/}java
if [ -x "$ROOT/.venv/bin/python" ]; then PY="$ROOT/.venv/bin/python"; else PY=${PYTHON:-python3}; fi

log() { printf '[kafka] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

usage() {
  sed -n '2,18p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

parse_args() {
  while [ $# -gt 0 ]; do
    case "$1" in
      --port) PORT=${2:?--port needs a value}; shift 2 ;;
      --data-dir) DATA_DIR=${2:?--data-dir needs a value}; shift 2 ;;
      --line) LINE=${2:?--line needs a value}; shift 2 ;;
      --timeout) TIMEOUT=${2:?--timeout needs a value}; shift 2 ;;
      --sasl-port) SASL_PORT=${2:?--sasl-port needs a value}; shift 2 ;;
      --sasl-user) SASL_USER=${2:?--sasl-user needs NAME:PASSWORD}; shift 2 ;;
      --ssl-port) SSL_PORT=${2:?--ssl-port needs a value}; shift 2 ;;
      --sasl-ssl-port) SASL_SSL_PORT=${2:?--sasl-ssl-port needs a value}; shift 2 ;;
      --mtls-port) MTLS_PORT=${2:?--mtls-port needs a value}; shift 2 ;;
      -h|--help) usage ;;
      *) die "unknown option: $1" ;;
    esac
  done
  case "$LINE" in 3|4) ;; *) die "--line must be 3 or 4, got $LINE" ;; esac
  if [ -n "$SASL_PORT" ] && [[ "$SASL_USER" != *:* ]]; then die "--sasl-port needs --sasl-user NAME:PASSWORD"; fi
  if [ -n "$SASL_SSL_PORT" ] && [[ "$SASL_USER" != *:* ]]; then die "--sasl-ssl-port needs --sasl-user NAME:PASSWORD"; fi
  mkdir -p "$(dirname "$DATA_DIR")"
  DATA_DIR=$(cd "$(dirname "$DATA_DIR")" && pwd)/$(basename "$DATA_DIR")
  PID_FILE="$DATA_DIR/kafka.pid"
}

lib_dir() { if [ "$LINE" = 4 ]; then echo "$CACHE/lib-4"; else echo "$CACHE/lib"; fi; }

# ---------------------------------------------------------------------------------------------- fetch
cmd_fetch() {
  local lib stamp want profile tmp
  lib=$(lib_dir)
  profile=kafka3; [ "$LINE" = 4 ] && profile=kafka4
  want="$(sha256sum "$KAFKA_DIR/pom.xml" | cut -c1-16) $profile"
  stamp="$lib/.fetched"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && compgen -G "$lib/kafka_2.13-*.jar" >/dev/null; then
    return 0
  fi
  mkdir -p "$CACHE"
  exec 8>"$CACHE/.fetch.lock"
  flock 8
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then flock -u 8; return 0; fi
  command -v mvn >/dev/null || die "mvn not found: install Maven (and Java 17) to resolve Kafka"
  log "resolving Kafka ($profile) from Maven Central into ${lib#"$ROOT"/}"
  tmp="$lib.tmp.$$"
  rm -rf "$tmp"
  # Into a fresh directory, then swapped in: a changed pom never leaves two Kafka versions on the classpath.
  if ! mvn -B -q -Dstyle.color=never -f "$KAFKA_DIR/pom.xml" -P "$profile" -Dkafka.lib.dir="$tmp" \
      dependency:copy-dependencies > "$CACHE/fetch.log" 2>&1; then
    cat "$CACHE/fetch.log" >&2
    rm -rf "$tmp"
    die "mvn could not resolve Kafka (network to Maven Central?); log: ${CACHE#"$ROOT"/}/fetch.log"
  fi
  echo "$want" > "$tmp/.fetched"
  rm -rf "$lib"
  mv "$tmp" "$lib"
  flock -u 8
  log "$(find "$lib" -name '*.jar' | wc -l) jars in ${lib#"$ROOT"/}"
}

# ---------------------------------------------------------------------------------------------- helpers
pid_alive() {
  # The pid file's process is alive *and* is our broker for this data dir (pids get reused).
  local pid
  [ -f "$PID_FILE" ] || return 1
  pid=$(cat "$PID_FILE")
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
  tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -q "kafka.Kafka $DATA_DIR/server.properties"
}

free_port() {
  "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

port_in_use() {
  "$PY" - "$1" <<'EOF'
import socket, sys
s = socket.socket()
# A port whose last connections are in TIME_WAIT is free for a listener (Kafka sets SO_REUSEADDR too).
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError:
    sys.exit(0)
finally:
    s.close()
sys.exit(1)
EOF
}

new_cluster_id() {
  # A Kafka Uuid: 16 random bytes, URL-safe base64 without padding (what `kafka-storage random-uuid` prints).
  head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n'
}

# The extra listeners asked for (those given a port), as ,NAME://127.0.0.1:PORT... with `addresses`
# or as ,NAME:PROTOCOL... with `protocols`: one table, so a listener's name, protocol and port agree.
extra_listeners() {
  local what=$1 name protocol port out=""
  while read -r name protocol port; do
    [ -n "$port" ] || continue
    case "$what" in
      addresses) out+=",$name://127.0.0.1:$port" ;;
      protocols) out+=",$name:$protocol" ;;
      *) die "extra_listeners: addresses or protocols, got $what" ;;
    esac
  done <<EOF
SASL_PLAINTEXT SASL_PLAINTEXT $SASL_PORT
SSL            SSL            $SSL_PORT
SASL_SSL       SASL_SSL       $SASL_SSL_PORT
MTLS           SSL            $MTLS_PORT
EOF
  echo "$out"
}

uses_tls() { [ -n "$SSL_PORT$SASL_SSL_PORT$MTLS_PORT" ]; }
uses_sasl() { [ -n "$SASL_PORT$SASL_SSL_PORT" ]; }

# A PEM file as one properties value: Java's Properties turns each \n back into a line break.
pem_value() { awk '{ printf "%s\\n", $0 }' "$1"; }

# The JAAS lines of one SASL listener: PLAIN with the user's password inline, SCRAM from the metadata.
sasl_listener_properties() {
  local name=$1
  cat <<EOF
listener.name.$name.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_${SASL_USER%%:*}="${SASL_USER#*:}";
listener.name.$name.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.$name.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
EOF
}

write_properties() {
  local controller_port=$1 extra
  extra=$(extra_listeners addresses)
  cat > "$DATA_DIR/server.properties" <<EOF
# Written by scripts/kafka.sh on every start (ports may change); edits here are overwritten.
# Single combined KRaft node on 127.0.0.1 for development and tests (Kafka line $LINE).
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$controller_port
listeners=PLAINTEXT://127.0.0.1:$PORT,CONTROLLER://127.0.0.1:$controller_port$extra
advertised.listeners=PLAINTEXT://127.0.0.1:$PORT$extra
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT$(extra_listeners protocols)
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
log.dirs=$DATA_DIR/kraft-logs

# One node: every internal topic has one replica.
num.partitions=1
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=4
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1

# Tests start many consumer groups: no 3 s wait before each group's first rebalance.
group.initial.rebalance.delay.ms=0
# Topics come from topics/ (rollguard topics apply) or from the app that owns them, never by accident.
auto.create.topics.enable=false

# A small machine: few threads, a small log-cleaner buffer (compacted topics still work).
num.network.threads=2
num.io.threads=2
background.threads=2
num.recovery.threads.per.data.dir=1
log.cleaner.threads=1
log.cleaner.dedupe.buffer.size=8388608
log.retention.hours=24
log.segment.bytes=67108864
EOF
  if uses_sasl; then
    # Listeners for clients that authenticate (for tests of client settings): one user, every mechanism.
    {
      echo
      echo "sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256,SCRAM-SHA-512"
      [ -z "$SASL_PORT" ] || sasl_listener_properties sasl_plaintext
      [ -z "$SASL_SSL_PORT" ] || sasl_listener_properties sasl_ssl
    } >> "$DATA_DIR/server.properties"
  fi
  if uses_tls; then
    # The throwaway CA's server certificate, inline (a PEM key *file* would need a key password).
    {
      echo
      echo "ssl.keystore.type=PEM"
      echo "ssl.keystore.key=$(pem_value "$DATA_DIR/tls/server.key")"
      echo "ssl.keystore.certificate.chain=$(pem_value "$DATA_DIR/tls/server.crt")"
      echo "ssl.truststore.type=PEM"
      echo "ssl.truststore.certificates=$(pem_value "$DATA_DIR/tls/ca.pem")"
      [ -z "$MTLS_PORT" ] || echo "listener.name.mtls.ssl.client.auth=required"
    } >> "$DATA_DIR/server.properties"
  fi
  chmod 600 "$DATA_DIR/server.properties"  # a password and a private key, however throwaway
}

make_tls() {
  rm -rf "$DATA_DIR/tls"
  "$PY" "$ROOT/scripts/kafka_tls.py" --out "$DATA_DIR/tls" --label "$(basename "$DATA_DIR")" \
    || die "could not make the throwaway TLS certificates"
  log "TLS: clients trust $DATA_DIR/tls/ca.pem (client certificate: $DATA_DIR/tls/client.crt, .key)"
}

# ---------------------------------------------------------------------------------------------- start
cmd_start() {
  local lib controller_port pid t0 t1 jvm_heap jvm_opts log_opts timeout
  timeout=${TIMEOUT:-90}
  cmd_fetch
  lib=$(lib_dir)
  command -v "$JAVA" >/dev/null || die "java not found (Java 17+ needed)"
  mkdir -p "$DATA_DIR/logs"
  exec 9>"$DATA_DIR/.lock"
  flock -n 9 || die "another kafka.sh is starting or stopping the broker in $DATA_DIR"
  if pid_alive; then
    local running
    running=$(sed -n 's/^advertised.listeners=PLAINTEXT:\/\/\([^,]*\).*$/\1/p' "$DATA_DIR/server.properties")
    log "already running (pid $(cat "$PID_FILE")) at $running from $DATA_DIR"
    [ "$running" = "127.0.0.1:$PORT" ] || log "warning: requested port $PORT, but it listens on $running"
    echo "$running"
    return 0
  fi
  rm -f "$PID_FILE"
  if port_in_use "$PORT"; then die "port $PORT on 127.0.0.1 is already in use"; fi
  controller_port=$(free_port)
  if uses_tls; then make_tls; fi
  write_properties "$controller_port"

  if [ ! -f "$DATA_DIR/kraft-logs/meta.properties" ]; then
    local cluster_id scram=()
    cluster_id=$(new_cluster_id)
    # SCRAM credentials live in the cluster metadata: stored at format time, before any client exists.
    if uses_sasl; then
      scram=(--add-scram "SCRAM-SHA-256=[name=${SASL_USER%%:*},password=${SASL_USER#*:}]"
             --add-scram "SCRAM-SHA-512=[name=${SASL_USER%%:*},password=${SASL_USER#*:}]")
    fi
    log "formatting KRaft storage in $DATA_DIR/kraft-logs (cluster id $cluster_id)"
    "$JAVA" -Xshare:auto -XX:TieredStopAtLevel=1 -XX:+UseSerialGC -cp "$lib/*" \
      -Dlog4j.configuration="file:$KAFKA_DIR/log4j.properties" \
      -Dlog4j2.configurationFile="$KAFKA_DIR/log4j2.properties" -Dkafka.logs.dir="$DATA_DIR/logs" \
      kafka.tools.StorageTool format -t "$cluster_id" -c "$DATA_DIR/server.properties" ${scram[@]+"${scram[@]}"} \
      > "$DATA_DIR/logs/format.log" 2>&1 \
      || { cat "$DATA_DIR/logs/format.log" >&2; die "storage format failed"; }
  fi

  # Quick start beats peak throughput here: C1 only (no C2 compile storms on 2 cores), serial GC,
  # a modest heap, class data sharing for the JDK's own classes.
  jvm_heap=${KAFKA_HEAP_OPTS:--Xms256m -Xmx1g}
  jvm_opts=${KAFKA_JVM_OPTS:--XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Xshare:auto -XX:-UsePerfData -Djava.awt.headless=true}
  if [ "$LINE" = 4 ]; then
    log_opts="-Dlog4j2.configurationFile=$KAFKA_DIR/log4j2.properties"
  else
    log_opts="-Dlog4j.configuration=file:$KAFKA_DIR/log4j.properties"
  fi
  t0=$(date +%s.%N)
  # shellcheck disable=SC2086  # the option strings are meant to be split into words
  setsid "$JAVA" $jvm_heap $jvm_opts $log_opts -Dkafka.logs.dir="$DATA_DIR/logs" -cp "$lib/*" \
    kafka.Kafka "$DATA_DIR/server.properties" > "$DATA_DIR/logs/kafka.out" 2>&1 < /dev/null 8>&- 9>&- &
  pid=$!
  echo "$pid" > "$PID_FILE"
  log "started pid $pid (Kafka line $LINE) on 127.0.0.1:$PORT, controller :$controller_port; logs in $DATA_DIR/logs"
  if ! "$PY" "$ROOT/scripts/kafka_ready.py" --bootstrap "127.0.0.1:$PORT" --timeout "$timeout" --pid "$pid"; then
    log "broker did not become ready; last log lines:"
    tail -n 30 "$DATA_DIR/logs/server.log" "$DATA_DIR/logs/kafka.out" >&2 2>/dev/null || true
    kill -TERM "$pid" 2>/dev/null || true
    die "start failed"
  fi
  t1=$(date +%s.%N)
  log "ready in $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }') s"
  echo "127.0.0.1:$PORT"
}

# ---------------------------------------------------------------------------------------------- stop
cmd_stop() {
  local pid timeout waited
  timeout=${TIMEOUT:-30}
  [ -d "$DATA_DIR" ] || { log "no data dir $DATA_DIR: nothing to stop"; return 0; }
  exec 9>"$DATA_DIR/.lock"
  flock -w 60 9 || die "could not lock $DATA_DIR"
  if ! pid_alive; then
    rm -f "$PID_FILE"
    log "not running ($DATA_DIR)"
    return 0
  fi
  pid=$(cat "$PID_FILE")
  log "stopping pid $pid (SIGTERM: controlled shutdown)"
  kill -TERM "$pid" 2>/dev/null || true
  waited=0
  while kill -0 "$pid" 2>/dev/null; do
    if [ "$waited" -ge $((timeout * 10)) ]; then
      log "still alive after ${timeout}s: SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      break
    fi
    sleep 0.1
    waited=$((waited + 1))
  done
  rm -f "$PID_FILE"
  log "stopped"
}

# ---------------------------------------------------------------------------------------------- status
cmd_status() {
  local port
  if pid_alive; then
    port=$(sed -n 's/^advertised.listeners=PLAINTEXT:\/\/\([^,]*\).*$/\1/p' "$DATA_DIR/server.properties")
    echo "running pid $(cat "$PID_FILE") at $port data $DATA_DIR"
    return 0
  fi
  echo "not running (data dir $DATA_DIR)"
  return 3
}

[ $# -ge 1 ] || usage
cmd=$1; shift
parse_args "$@"
case "$cmd" in
  fetch) cmd_fetch ;;
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  *) usage ;;
esac
