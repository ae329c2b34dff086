#!/usr/bin/env bash
# Install everything Yigong Hub needs on Debian/Ubuntu; safe to run again (only adds what's missing).
#   scripts/install.sh          system packages + .venv with the project
#   scripts/install.sh --test   the same plus test tools (browser, test extras)
set -euo pipefail
cd "$(dirname "$0")/.."

WITH_TEST=0
[[ "${1:-}" == "--test" ]] && WITH_TEST=1

SYSTEM_PACKAGES=(orthanc orthanc-dicomweb dcmtk redis-server python3-venv iproute2 fonts-wqy-microhei)
[[ $WITH_TEST == 1 ]] && SYSTEM_PACKAGES+=(postgresql chromium)
# The viewer is built with npm; use the machine's Node.js when it has one.
command -v npm >/dev/null || SYSTEM_PACKAGES+=(nodejs npm)

SUDO=""
[[ $(id -u) -ne 0 ]] && SUDO="sudo"

missing=()
for pkg in "${SYSTEM_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  echo "==> installing system packages: ${missing[*]}"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q "${missing[@]}"
fi

# Debian starts its own Orthanc on 8042/4242 where systemd runs; the hub runs its own instance.
if command -v systemctl >/dev/null && systemctl is-active --quiet orthanc 2>/dev/null; then
  echo "==> stopping the distribution's Orthanc service (the hub starts its own)"
  $SUDO systemctl disable --now orthanc || true
fi

# Services the stack and the tests talk to, started only when nothing answers.
if ! redis-cli -h 127.0.0.1 ping >/dev/null 2>&1; then
  echo "==> starting redis-server on 127.0.0.1:6379"
  $SUDO redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no
fi
if [[ $WITH_TEST == 1 ]] && ! pg_isready -h 127.0.0.1 -q 2>/dev/null; then
  if command -v pg_ctlcluster >/dev/null && ls /etc/postgresql >/dev/null 2>&1; then
    echo "==> starting PostgreSQL"
    $SUDO pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start || true
  fi
fi

PY=${PYTHON:-python3}
if [[ ! -x .venv/bin/python ]]; then
  echo "==> creating .venv"
  "$PY" -m venv .venv
fi
stamp=.venv/.yigong-installed
extras=""
[[ $WITH_TEST == 1 ]] && extras="[test]"
want="$(sha256sum pyproject.toml | cut -c1-16)$extras"
if [[ ! -f $stamp || "$(cat $stamp)" != "$want" ]]; then
  echo "==> installing the project into .venv ${extras}"
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -e ".${extras}"
  echo "$want" > $stamp
fi

if [[ -f viewer/package.json ]]; then
  if [[ ! -d viewer/node_modules || viewer/package-lock.json -nt viewer/node_modules ]]; then
    echo "==> installing the viewer's npm packages"
    (cd viewer && npm ci --no-audit --no-fund) && touch viewer/node_modules
  fi
  dist=viewer/static/dist/index.html
  if [[ ! -f $dist || -n "$(find viewer/src viewer/public viewer/index.html viewer/vite.config.ts \
        viewer/package-lock.json -newer $dist -print -quit)" ]]; then
    echo "==> building the viewer"
    (cd viewer && npm run build)
  fi
fi
echo "==> install done"
