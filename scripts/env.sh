#!/usr/bin/env bash
# Make .venv ready: the dependencies in an environment kept outside the checkout (built once per
# machine and dependency spec, so torch's ~3 GB is downloaded and unpacked once), layered under a
# light per-checkout virtual environment that holds rollguard itself (editable).
# Does nothing when both are already up to date.
set -euo pipefail
# Any failing step names itself: the line, the command and its exit status, instead of a bare
# "make: *** [env] Error" (set -E carries the trap into functions and subshells).
set -E
trap 'rc=$?; printf "[env] failed (exit %s) at scripts/env.sh:%s: %s\n" "$rc" "$LINENO" "$BASH_COMMAND" >&2; exit "$rc"' ERR
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3
ENV_HOME=${ROLLGUARD_ENV_HOME:-$HOME/.cache/rollguard/envs}
KEY=$("$PY" scripts/dep_key.py)
BASE="$ENV_HOME/deps-$KEY"
log() { printf '[env] %s\n' "$*" >&2; }

if [ ! -f "$BASE/.complete" ]; then
  mkdir -p "$ENV_HOME"
  exec 9>"$ENV_HOME/.lock-$KEY"
  flock 9
  if [ ! -f "$BASE/.complete" ]; then
    log "building the shared dependency environment $BASE (once per machine and dependency spec)"
    rm -rf "$BASE"
    # Seed from the newest complete environment of another spec when there is one: a changed
    # dependency then costs its own install, not another multi-GB torch download and unpack.
    # (On a first run there is nothing to list; that must not end the script under pipefail.)
    SEED=$( (ls -1dt "$ENV_HOME"/deps-*/.complete 2>/dev/null || true) | head -n 1 | xargs -r dirname)
    if [ -n "$SEED" ]; then
      log "seeding from $SEED"
      cp -a "$SEED" "$BASE.partial"
      rm -f "$BASE.partial/.complete"
      # Scripts in bin/ name their interpreter by absolute path; grep exits 1 when none does.
      { grep -rlI --null -F "$SEED" "$BASE.partial/bin" || true; } | xargs -0 -r sed -i "s#$SEED#$BASE#g"
      mv "$BASE.partial" "$BASE"
    else
      "$PY" -m venv "$BASE"
    fi
    "$BASE/bin/python" -m pip install --quiet --upgrade pip setuptools wheel
    shopt -s nullglob
    local_torch=(/opt/wheels/torch-*.whl)
    if [ ${#local_torch[@]} -gt 0 ]; then
      log "installing local CPU torch wheel(s) first: ${local_torch[*]}"
      "$BASE/bin/python" -m pip install --quiet --find-links /opt/wheels "${local_torch[@]}"
    else
      log "no local torch wheel in /opt/wheels: installing PyPI's torch (large, once per machine)"
    fi
    "$PY" scripts/dep_key.py --requirements > "$BASE/requirements.txt"
    "$BASE/bin/python" -m pip install --quiet --find-links /opt/wheels -r "$BASE/requirements.txt"
    "$BASE/bin/python" -m pip freeze > "$BASE/freeze.txt"
    touch "$BASE/.complete"
    log "shared environment ready"
    # Keep the two newest complete environments (this one and its predecessor) and drop the rest,
    # including half-built ones left by an interrupted or failed install.
    for dir in "$ENV_HOME"/deps-*/; do
      dir=${dir%/}
      [ "$dir" = "$BASE" ] || [ -f "$dir/.complete" ] || rm -rf "$dir"
    done
    { ls -1dt "$ENV_HOME"/deps-*/.complete 2>/dev/null || true; } | tail -n +3 | xargs -r -n1 dirname | xargs -r rm -rf
  fi
  flock -u 9
fi

STAMP="$KEY $(sha256sum pyproject.toml | cut -c1-16)"
if [ -f .venv/.rollguard-stamp ] && [ "$(cat .venv/.rollguard-stamp)" = "$STAMP" ] \
   && [ -x .venv/bin/rollguard ]; then
  exit 0
fi
log "layering .venv over $BASE"
rm -rf .venv
"$PY" -m venv --without-pip .venv
SITE=$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
BASE_SITE=$("$BASE/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
printf 'import site; site.addsitedir(%s)\n' "'$BASE_SITE'" > "$SITE/_rollguard_deps.pth"
.venv/bin/python -m pip install --quiet --no-deps --no-build-isolation -e .
echo "$STAMP" > .venv/.rollguard-stamp
log ".venv ready"
