#!/usr/bin/env bash
# Make the services the tests run for real present on this machine: Alertmanager and Prometheus
# (the Alertmanager bridge and /metrics tests), Chromium and its WebDriver (the dashboard test).
# They come from Debian's packages, never from a download of their own. Does nothing, silently,
# when all are installed; installs only what is missing (apt-get update first, once).
#
# The tests start their own processes on free loopback ports with temporary configs and data;
# the packages' own services are never used. Where no /usr/sbin/policy-rc.d forbids it, a
# temporary one keeps the install from starting them (there is no systemd here, but invoke-rc.d
# would fall back to an init script).
set -euo pipefail
# Any failing step names itself, like scripts/env.sh: the line, the command and its exit status.
set -E
trap 'rc=$?; printf "[services] failed (exit %s) at scripts/services.sh:%s: %s\n" "$rc" "$LINENO" "$BASH_COMMAND" >&2; exit "$rc"' ERR

PACKAGES=(prometheus-alertmanager prometheus chromium chromium-driver)
# What the tests call, by absolute path (tests/services.py and the dashboard test).
BINARIES=(/usr/bin/prometheus-alertmanager /usr/bin/prometheus /usr/bin/chromium /usr/bin/chromedriver)
log() { printf '[services] %s\n' "$*" >&2; }

installed() {
  [ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null || true)" = "installed" ]
}

missing=()
for pkg in "${PACKAGES[@]}"; do
  installed "$pkg" || missing+=("$pkg")
done

if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    log "missing Debian packages: ${missing[*]}"
    log "installing them needs root; run as root:"
    log "  apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ${missing[*]}"
    exit 1
  fi
  if ! command -v apt-get >/dev/null; then
    log "missing packages (${missing[*]}) and no apt-get on this machine: install them by hand"
    exit 1
  fi
  log "installing Debian packages: ${missing[*]}"
  started=$SECONDS
  temporary_policy=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    temporary_policy=/usr/sbin/policy-rc.d
    printf '#!/bin/sh\n# scripts/services.sh: do not start services while installing\nexit 101\n' >"$temporary_policy"
    chmod 755 "$temporary_policy"
    trap 'rm -f "$temporary_policy"' EXIT
  fi
  # Another apt run on the machine (a parallel session) holds the lock: wait for it, not fail.
  apt_opts=(-o DPkg::Lock::Timeout=600 -o Acquire::Retries=3)
  apt-get "${apt_opts[@]}" update -qq
  DEBIAN_FRONTEND=noninteractive apt-get "${apt_opts[@]}" install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  log "installed in $((SECONDS - started)) s"
fi

for bin in "${BINARIES[@]}"; do
  if [ ! -x "$bin" ]; then
    log "$bin is missing although its package is installed (dpkg -S $bin; apt-get install --reinstall)"
    exit 1
  fi
done
